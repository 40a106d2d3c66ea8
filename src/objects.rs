//! Media objects in a capture (`syncscope export-objects`, as Wireshark's
//! "Export Objects"): the images and voice recordings uploaded in parts,
//! put together again. Built on [`crate::replay::Recording`] (the
//! analyzer's reassembly, detection, MMTLS decryption with a key log, HTTP
//! parsing), it takes the requests that carry parts: short-link
//! `POST .../uploadmsgimg` and `.../uploadvoice` (plain HTTP), long-link
//! cmds 9 and 19 (plain, or MMTLS records decrypted with `--keylog`), and
//! web `POST .../webwxuploadmedia` forms (chunks of 512 KiB, an image by
//! its `ClientMediaId`; [`web_upload_part`]).
//! Parts are grouped by kind, sender and client id (ClientImgId, or the
//! voice's ClientMsgId), and each object says which parts it has, which
//! overlap (sent again with other bytes, or not on the same boundaries),
//! which byte ranges are missing, and, when whole, its bytes and sha256.
//! A part sent twice with the same bytes (a resend) counts once.
//! Sans-IO: the caller writes the files.

use std::collections::BTreeMap;

use prost::Message as _;
use sha2::{Digest, Sha256};

use crate::body::messages::{string_of, UploadMsgImgRequest, UploadVoiceRequest};
use crate::proto::commands::{UPLOADMSGIMG, UPLOADVOICE};
use crate::proto::http::multipart;
use crate::proto::web::{as_u64, id_string};
use crate::replay::{Recording, Step};

/// An object put together from its parts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Object {
    /// `image` or `voice`.
    pub kind: &'static str,
    pub client_id: String,
    pub from: String,
    pub to: String,
    /// Its length when the parts say (an image's TotalLen; the end of a
    /// voice's chunk with EndFlag).
    pub total: Option<u64>,
    /// Parts seen, repeats with the same bytes counted once.
    pub parts: usize,
    /// Parts sent again with the same bytes.
    pub repeats: usize,
    /// Byte ranges `[start, end)` where parts overlap with other bytes or
    /// other boundaries.
    pub overlaps: Vec<(u64, u64)>,
    /// Byte ranges `[start, end)` no part covers (up to `total`).
    pub missing: Vec<(u64, u64)>,
    /// Whole: every byte covered, no overlap.
    pub complete: bool,
    /// sha256 of the bytes, when complete.
    pub sha256: Option<String>,
    /// Connections the parts came on.
    pub conns: Vec<u64>,
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

impl Object {
    /// A file name for it: `KIND-CLIENTID.EXT` (png, jpg or img by the
    /// bytes' signature; voice), with only `[A-Za-z0-9._-]` kept.
    pub fn file_name(&self) -> String {
        let ext = if self.kind == "voice" {
            "voice"
        } else if self.bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            "png"
        } else if self.bytes.starts_with(b"\xff\xd8\xff") {
            "jpg"
        } else {
            "img"
        };
        let id: String = self
            .client_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("{}-{id}.{ext}", self.kind)
    }
}

#[derive(Default)]
struct Pieces {
    to: String,
    total: Option<u64>,
    /// start -> every distinct part starting there.
    parts: BTreeMap<u64, Vec<Vec<u8>>>,
    repeats: usize,
    conns: Vec<u64>,
}

/// The objects of a recording, in order of (kind, sender, client id).
pub fn objects(rec: &Recording) -> Vec<Object> {
    let mut found: BTreeMap<(&'static str, String, String), Pieces> = BTreeMap::new();
    let mut add = |kind: &'static str,
                   from: String,
                   id: String,
                   to: String,
                   total: Option<u64>,
                   start: u64,
                   data: Vec<u8>,
                   conn: u64| {
        if data.is_empty() {
            return;
        }
        let p = found.entry((kind, from, id)).or_default();
        if p.to.is_empty() {
            p.to = to;
        }
        if total.is_some() {
            p.total = total;
        }
        if !p.conns.contains(&conn) {
            p.conns.push(conn);
        }
        let at = p.parts.entry(start).or_default();
        if at.contains(&data) {
            p.repeats += 1;
        } else {
            at.push(data);
        }
    };
    for s in &rec.sessions {
        for step in &s.steps {
            let (kind, body) = match step {
                Step::Http { name, request, .. } if name == "uploadmsgimg" => {
                    ("image", request.message.body.as_slice())
                }
                Step::Http { name, request, .. } if name == "uploadvoice" => {
                    ("voice", request.message.body.as_slice())
                }
                Step::Http { request, .. }
                    if request.message.path().is_some_and(|p| {
                        p.split('?')
                            .next()
                            .unwrap_or(p)
                            .ends_with("/webwxuploadmedia")
                    }) =>
                {
                    let m = &request.message;
                    if let Some(w) =
                        web_upload_part(m.header_str("content-type").unwrap_or(""), &m.body)
                    {
                        add(
                            "image",
                            w.from,
                            w.client_id,
                            w.to,
                            Some(w.total),
                            w.start,
                            w.data,
                            s.conn,
                        );
                    }
                    continue;
                }
                Step::Frame { request, .. } if request.cmd == UPLOADMSGIMG => {
                    ("image", request.body.as_slice())
                }
                Step::Frame { request, .. } if request.cmd == UPLOADVOICE => {
                    ("voice", request.body.as_slice())
                }
                _ => continue,
            };
            if kind == "image" {
                let Ok(r) = UploadMsgImgRequest::decode(body) else {
                    continue;
                };
                add(
                    kind,
                    string_of(&r.from_user_name).to_owned(),
                    string_of(&r.client_img_id).to_owned(),
                    string_of(&r.to_user_name).to_owned(),
                    r.total_len.map(u64::from),
                    u64::from(r.start_pos.unwrap_or(0)),
                    r.data.and_then(|d| d.buffer).unwrap_or_default(),
                    s.conn,
                );
            } else {
                let Ok(r) = UploadVoiceRequest::decode(body) else {
                    continue;
                };
                let data = r.data.and_then(|d| d.buffer).unwrap_or_default();
                let start = u64::from(r.offset.unwrap_or(0));
                let end = (r.end_flag.unwrap_or(0) != 0).then_some(start + data.len() as u64);
                add(
                    kind,
                    r.from_user_name.unwrap_or_default(),
                    r.client_msg_id.unwrap_or_default(),
                    r.to_user_name.unwrap_or_default(),
                    end,
                    start,
                    data,
                    s.conn,
                );
            }
        }
    }
    found
        .into_iter()
        .map(|((kind, from, client_id), p)| assemble(kind, from, client_id, p))
        .collect()
}

/// web WeChat's (and itchat's) upload chunk: 512 KiB.
pub const WEB_CHUNK: u64 = 512 << 10;

/// One chunk of a web upload, read from its form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebPart {
    pub from: String,
    pub client_id: String,
    pub to: String,
    pub total: u64,
    pub start: u64,
    pub data: Vec<u8>,
}

/// The chunk a `webwxuploadmedia` request carries (its Content-Type and
/// body): the `uploadmediarequest` JSON names the object
/// (`ClientMediaId`, `FromUserName`, `ToUserName`, `TotalLen`), the
/// `chunk` field places the file part at `chunk` x [`WEB_CHUNK`] (without
/// it, at `StartPos`). `None` for a body that is not such a form.
pub fn web_upload_part(content_type: &str, body: &[u8]) -> Option<WebPart> {
    let boundary = multipart::boundary(content_type)?;
    let form = multipart::parse(body, &boundary, 32).ok()?;
    let meta: serde_json::Value =
        serde_json::from_slice(multipart::field(&form, "uploadmediarequest")?.data).ok()?;
    let file = multipart::field(&form, "filename")
        .or_else(|| form.iter().find(|p| p.filename.is_some()))?;
    let chunk = multipart::field(&form, "chunk")
        .and_then(|p| std::str::from_utf8(p.data).ok()?.trim().parse::<u64>().ok());
    let start = match chunk {
        Some(c) => c.checked_mul(WEB_CHUNK)?,
        None => as_u64(&meta["StartPos"]).unwrap_or(0),
    };
    Some(WebPart {
        from: id_string(&meta["FromUserName"]),
        client_id: id_string(&meta["ClientMediaId"]),
        to: id_string(&meta["ToUserName"]),
        total: as_u64(&meta["TotalLen"])?,
        start,
        data: file.data.to_vec(),
    })
}

fn assemble(kind: &'static str, from: String, client_id: String, p: Pieces) -> Object {
    let mut overlaps = Vec::new();
    let mut missing = Vec::new();
    let mut bytes = Vec::new();
    let mut parts = 0;
    // Walk the parts in order of start; `bytes` holds what is covered from
    // 0 without a gap.
    let mut end = 0u64;
    let mut gapless = true;
    for (&start, versions) in &p.parts {
        parts += versions.len();
        let longest = versions.iter().map(Vec::len).max().unwrap_or(0) as u64;
        if versions.len() > 1 {
            overlaps.push((start, start + longest));
        }
        if start > end {
            missing.push((end, start));
            gapless = false;
        } else if start < end {
            overlaps.push((start, end.min(start + longest)));
        }
        if gapless && start == end {
            bytes.extend_from_slice(&versions[0]);
        }
        end = end.max(start + longest);
    }
    if let Some(total) = p.total {
        if end < total {
            missing.push((end, total));
        }
    }
    let complete = overlaps.is_empty()
        && missing.is_empty()
        && p.total.is_some_and(|t| bytes.len() as u64 == t);
    if !complete {
        bytes.clear();
    }
    Object {
        kind,
        client_id,
        from,
        to: p.to,
        total: p.total,
        parts,
        repeats: p.repeats,
        overlaps,
        missing,
        complete,
        sha256: complete.then(|| hex::encode(Sha256::digest(&bytes))),
        conns: p.conns,
        bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(total: Option<u64>, parts: &[(u64, &[u8])]) -> Pieces {
        let mut p = Pieces {
            total,
            ..Pieces::default()
        };
        for &(s, d) in parts {
            let at = p.parts.entry(s).or_default();
            if !at.contains(&d.to_vec()) {
                at.push(d.to_vec());
            }
        }
        p
    }

    #[test]
    fn web_upload_chunks() {
        let meta = br#"{"UploadType":2,"ClientMediaId":17001,"TotalLen":600000,"StartPos":0,"FromUserName":"@alice","ToUserName":"filehelper","FileMd5":"x"}"#;
        let body = multipart::encode(
            "bnd",
            &[
                ("chunks", None, b"2"),
                ("chunk", None, b"1"),
                ("uploadmediarequest", None, meta),
                ("filename", Some("a.png"), b"tail"),
            ],
        );
        let p = web_upload_part("multipart/form-data; boundary=bnd", &body).expect("a chunk");
        assert_eq!(
            p,
            WebPart {
                from: "@alice".into(),
                client_id: "17001".into(),
                to: "filehelper".into(),
                total: 600_000,
                start: WEB_CHUNK,
                data: b"tail".to_vec(),
            }
        );
        // One chunk: at StartPos.
        let body = multipart::encode(
            "bnd",
            &[
                ("uploadmediarequest", None, meta),
                ("filename", Some("a.png"), b"all"),
            ],
        );
        let p = web_upload_part("multipart/form-data; boundary=bnd", &body).expect("a chunk");
        assert_eq!((p.start, p.data.as_slice()), (0, &b"all"[..]));
        assert_eq!(web_upload_part("application/json", &body), None);
        assert_eq!(
            web_upload_part("multipart/form-data; boundary=other", &body),
            None
        );
    }

    #[test]
    fn whole_missing_and_overlapping() {
        let o = assemble(
            "image",
            "a".into(),
            "x".into(),
            pieces(Some(6), &[(4, b"ef"), (0, b"ab"), (2, b"cd")]),
        );
        assert!(o.complete);
        assert_eq!(o.bytes, b"abcdef");
        assert_eq!(o.sha256.as_deref().map(str::len), Some(64));
        let o = assemble(
            "image",
            "a".into(),
            "x".into(),
            pieces(Some(8), &[(0, b"ab"), (4, b"ef")]),
        );
        assert!(!o.complete);
        assert_eq!(o.missing, [(2, 4), (6, 8)]);
        assert!(o.bytes.is_empty() && o.sha256.is_none());
        let o = assemble(
            "image",
            "a".into(),
            "x".into(),
            pieces(Some(4), &[(0, b"abc"), (2, b"cd")]),
        );
        assert_eq!((o.complete, o.overlaps.as_slice()), (false, &[(2, 3)][..]));
        let o = assemble(
            "image",
            "a".into(),
            "x".into(),
            pieces(Some(2), &[(0, b"ab"), (0, b"xy")]),
        );
        assert_eq!((o.complete, o.overlaps.as_slice()), (false, &[(0, 2)][..]));
        // Voice without its last chunk: length unknown, not complete.
        let o = assemble("voice", "a".into(), "v".into(), pieces(None, &[(0, b"ab")]));
        assert!(!o.complete && o.missing.is_empty());
    }
}
