//! The web media endpoints as the analyzer reads them: `webwxuploadmedia`
//! (a multipart/form-data chunk: the `uploadmediarequest` JSON, `chunk` /
//! `chunks`, the file part with its name; answered with the `MediaId` once
//! the upload is whole), `webwxsendmsgimg` (the image message naming the
//! MediaId) and `webwxgetmsgimg` (the image, or its thumbnail with
//! `type=slave`, read back by MsgID). Facts: `src/net/server/web/media.rs`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::{as_u64, id_string};
use crate::proto::http::multipart;

/// Parts a form may have before it is not an upload.
const MAX_FORM_PARTS: usize = 32;

/// What one media exchange says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WebMedia {
    /// The client's id of the upload (`ClientMediaId`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_media_id: Option<String>,
    /// The server's id of a whole upload (`MediaId`: in the answer of the
    /// chunk that completed it, and in webwxsendmsgimg).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_id: Option<String>,
    /// The file's name (the file part's `filename`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// The whole file's size (`TotalLen`), or the bytes read back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// This chunk's bytes, its number and the number of chunks (absent
    /// for a one-chunk upload).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunk_len: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunk: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunks: Option<u64>,
    /// `FileMd5`, as the client gave it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    /// webwxgetmsgimg: the message read and whether it is the thumbnail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub thumbnail: bool,
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// The boundary of a form body: its first line is `--BOUNDARY` (the
/// analyzer decodes bodies without their headers).
fn sniffed_boundary(body: &[u8]) -> Option<String> {
    let line = body.split(|&b| b == b'\n').next()?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let b = std::str::from_utf8(line.strip_prefix(b"--")?).ok()?;
    (!b.is_empty() && b.len() <= 70 && !b.contains(' ')).then(|| b.to_owned())
}

/// A webwxuploadmedia request body: its `uploadmediarequest` JSON (the
/// exchange's request value) and what it says of the chunk. `None` when
/// it is not such a form.
pub fn upload_form(body: &[u8]) -> Option<(Value, WebMedia)> {
    let boundary = sniffed_boundary(body)?;
    let form = multipart::parse(body, &boundary, MAX_FORM_PARTS).ok()?;
    let meta: Value =
        serde_json::from_slice(multipart::field(&form, "uploadmediarequest")?.data).ok()?;
    let file =
        multipart::field(&form, "filename").or_else(|| form.iter().find(|p| p.filename.is_some()));
    let number = |name: &str| {
        multipart::field(&form, name)
            .and_then(|p| std::str::from_utf8(p.data).ok()?.trim().parse::<u64>().ok())
    };
    let m = WebMedia {
        client_media_id: non_empty(id_string(&meta["ClientMediaId"])),
        file_name: file
            .and_then(|f| f.filename.clone())
            .filter(|n| !n.is_empty()),
        size: as_u64(&meta["TotalLen"]),
        chunk_len: file.map(|f| f.data.len() as u64),
        chunk: number("chunk"),
        chunks: number("chunks"),
        md5: non_empty(id_string(&meta["FileMd5"])),
        ..WebMedia::default()
    };
    Some((meta, m))
}

impl WebMedia {
    /// An upload chunk with its answer's `MediaId` (empty until whole).
    pub fn answered(mut self, response: &Value) -> WebMedia {
        self.media_id = non_empty(id_string(&response["MediaId"]));
        self
    }

    /// The `Msg` of a webwxsendmsgimg.
    pub fn sent(msg: &Value) -> WebMedia {
        WebMedia {
            media_id: non_empty(id_string(&msg["MediaId"])),
            ..WebMedia::default()
        }
    }

    /// A webwxgetmsgimg: its query and the bytes answered.
    pub fn read_back(params: &BTreeMap<String, String>, body: Option<&[u8]>) -> WebMedia {
        WebMedia {
            msg_id: params.get("MsgID").cloned().filter(|s| !s.is_empty()),
            thumbnail: params.get("type").is_some_and(|t| t == "slave"),
            size: body.map(|b| b.len() as u64),
            ..WebMedia::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{decode, Endpoint};
    use crate::proto::http::multipart;

    #[test]
    fn an_upload_chunk_its_answer_the_message_and_the_read_back() {
        let meta = br#"{"BaseRequest":{"Uin":7,"Sid":"S"},"ClientMediaId":"cm1","TotalLen":600000,"FileMd5":"abc","StartPos":0}"#;
        let body = multipart::encode(
            "XyZ",
            &[
                ("chunk", None, b"1"),
                ("chunks", None, b"2"),
                ("uploadmediarequest", None, meta),
                ("filename", Some("photo.png"), &[7u8; 1000]),
            ],
        );
        let ex = decode(
            "/cgi-bin/mmwebwx-bin/webwxuploadmedia?f=json",
            &body,
            Some(br#"{"BaseResponse":{"Ret":0},"MediaId":"@m1","StartPos":600000}"#),
        )
        .unwrap();
        assert_eq!(ex.endpoint, Endpoint::Webwxuploadmedia);
        assert_eq!((ex.info.sid.as_deref(), ex.info.uin), (Some("S"), Some(7)));
        let m = ex.info.media.unwrap();
        assert_eq!(m.client_media_id.as_deref(), Some("cm1"));
        assert_eq!(m.media_id.as_deref(), Some("@m1"));
        assert_eq!(m.file_name.as_deref(), Some("photo.png"));
        assert_eq!(
            (m.size, m.chunk_len, m.chunk, m.chunks),
            (Some(600000), Some(1000), Some(1), Some(2))
        );
        assert_eq!(m.md5.as_deref(), Some("abc"));

        // Not a form: no media facts, no panic.
        let ex = decode(
            "/cgi-bin/mmwebwx-bin/webwxuploadmedia",
            b"--x\r\ngarbage",
            None,
        )
        .unwrap();
        assert_eq!(ex.info.media, None);

        let ex = decode(
            "/cgi-bin/mmwebwx-bin/webwxsendmsgimg?fun=async&f=json",
            br#"{"BaseRequest":{"Uin":7},"Msg":{"Type":3,"MediaId":"@m1","ClientMsgId":"55","LocalID":"55","FromUserName":"@a","ToUserName":"@b"}}"#,
            Some(br#"{"BaseResponse":{"Ret":0},"MsgID":"9","LocalID":"55"}"#),
        )
        .unwrap();
        assert_eq!(ex.endpoint, Endpoint::Webwxsendmsgimg);
        assert_eq!(
            (ex.info.client_msg_id.as_deref(), ex.info.msg_id.as_deref()),
            (Some("55"), Some("9"))
        );
        assert_eq!(ex.info.media.unwrap().media_id.as_deref(), Some("@m1"));

        let ex = decode(
            "/cgi-bin/mmwebwx-bin/webwxgetmsgimg?MsgID=9&skey=k&type=slave",
            b"",
            Some(&[1u8; 321]),
        )
        .unwrap();
        assert_eq!(ex.endpoint, Endpoint::Webwxgetmsgimg);
        let m = ex.info.media.unwrap();
        assert_eq!(
            (m.msg_id.as_deref(), m.thumbnail, m.size),
            (Some("9"), true, Some(321))
        );
    }
}
