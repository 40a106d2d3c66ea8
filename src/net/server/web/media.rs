//! Images from web clients: `webwxuploadmedia` (a `multipart/form-data`
//! POST, in chunks of 512 KiB as web WeChat and itchat send it) then
//! `webwxsendmsgimg` (the message, naming the upload by its `MediaId`);
//! `webwxgetmsgimg` reads an image back.
//!
//! | request | answer |
//! |---|---|
//! | `POST .../webwxuploadmedia?f=json`, form fields `uploadmediarequest` (JSON: `BaseRequest`, `ClientMediaId`, `TotalLen`, `FileMd5`, ...), `chunk`/`chunks` (when over one chunk), the file as `filename` | `BaseResponse`, `MediaId` (once the upload is whole; `""` before), `StartPos`, `CDNThumbImgHeight`, `CDNThumbImgWidth` |
//! | `POST .../webwxsendmsgimg?fun=async&f=json` `{BaseRequest, Msg{Type: 3, MediaId, FromUserName, ToUserName, LocalID, ClientMsgId}}` | `BaseResponse`, `MsgID`, `LocalID` |
//! | `GET .../webwxgetmsgimg?MsgID=..&skey=..[&type=slave]` | the image (`slave`: its JPEG thumbnail) |
//!
//! The chunks are parts of one upload in the store (keyed by the
//! session's user and `ClientMediaId`), at offset `chunk` x 512 KiB, so
//! they may come in any order and twice; the whole object must match its
//! `FileMd5` (else it is dropped). It stays an unfinished upload until
//! webwxsendmsgimg sends it (as a MsgType 3 message like a long-link
//! image, downloadable with getmsgimg), so it expires like one if never
//! sent; a MediaId sent again gives the same message. Only images are
//! sent (webwxsendappmsg, files, is not served).

use std::collections::BTreeMap;

use md5::{Digest, Md5};
use serde_json::{json, Value};

use super::super::http::{http, Reply, Request};
use super::super::media::{content, refused, thumbnail_of, Incoming};
use super::super::service::{with_store, Failure, Wake};
use super::session::{body_credentials, query_credentials};
use super::{base, json_reply, logged_out, parse_json, send_answer, store_error, Web, WEB_DEVICE};
use crate::net::messages::{ret, IdentifyExt};
use crate::net::store::{NewMessage, PartOutcome};
use crate::net::{FILEHELPER, MSG_TYPE_IMAGE};
use crate::proto::http::multipart;
use crate::proto::web::{as_u64, id_string};

/// Bytes in each chunk but the last (web WeChat's uploader, itchat).
pub const WEB_CHUNK: usize = 512 << 10;
/// Fields a webwxuploadmedia form may have.
const MAX_FORM_PARTS: usize = 24;
/// The upload kind of web media in the store: apart from the long link's
/// uploads (kind = message type) so ids never mix.
const WEB_UPLOAD_KIND: u32 = 0x1_0000 | MSG_TYPE_IMAGE;
/// What a MediaId is: this, then the upload's ClientMediaId.
const MEDIA_ID_PREFIX: &str = "@media_";

fn bad_form(why: impl std::fmt::Display) -> super::Close {
    http(400, ret::BAD_BODY, format!("webwxuploadmedia: {why}"))
}

fn failed(f: &Failure) -> Value {
    json!({ "BaseResponse": base(f.ret, &f.error), "MediaId": "" })
}

impl Web<'_, '_> {
    /// POST webwxuploadmedia: one chunk of an upload.
    pub(super) async fn uploadmedia(
        &mut self,
        req: &Request,
        q: &BTreeMap<String, String>,
    ) -> Result<Reply, super::Close> {
        let boundary = multipart::boundary(&req.content_type).ok_or_else(|| {
            bad_form("the body must be multipart/form-data with a boundary (Content-Type)")
        })?;
        let form = multipart::parse(&req.body, &boundary, MAX_FORM_PARTS).map_err(bad_form)?;
        let text = |name: &str| {
            multipart::field(&form, name).map(|p| String::from_utf8_lossy(p.data).into_owned())
        };
        let request = multipart::field(&form, "uploadmediarequest")
            .ok_or_else(|| bad_form("no uploadmediarequest field"))?;
        let meta = parse_json("webwxuploadmedia's uploadmediarequest", request.data)?;
        let file = multipart::field(&form, "filename")
            .or_else(|| form.iter().find(|p| p.filename.is_some()))
            .ok_or_else(|| bad_form("no file part (filename)"))?;
        let Some(s) = self.service.web.session(&body_credentials(&meta, q, req)) else {
            return Ok(logged_out(
                "webwxuploadmedia: no such session (log in again)",
            ));
        };
        let number = |name: &str| -> Result<Option<u64>, super::Close> {
            text(name)
                .map(|t| {
                    t.trim()
                        .parse::<u64>()
                        .map_err(|_| bad_form(format!("{name} {t:?} is not a number")))
                })
                .transpose()
        };
        let (chunk, chunks) = (number("chunk")?, number("chunks")?);
        let total = as_u64(&meta["TotalLen"]).filter(|&t| t > 0);
        let Some(total) = total else {
            return Err(bad_form("uploadmediarequest has no TotalLen"));
        };
        let data = file.data;
        let start = match (chunk, chunks) {
            (None, None) => as_u64(&meta["StartPos"]).unwrap_or(0),
            (Some(c), Some(n)) => {
                let want = total.div_ceil(WEB_CHUNK as u64);
                if n != want || c >= n {
                    return Err(bad_form(format!(
                        "chunk {c} of {n}: {total} bytes are {want} chunks of {WEB_CHUNK}"
                    )));
                }
                if c + 1 < n && data.len() != WEB_CHUNK {
                    return Err(bad_form(format!(
                        "chunk {c} of {n} has {} bytes, not {WEB_CHUNK}",
                        data.len()
                    )));
                }
                c * WEB_CHUNK as u64
            }
            _ => return Err(bad_form("chunk and chunks go together")),
        };
        let client_id = id_string(&meta["ClientMediaId"]);
        let md5 = id_string(&meta["FileMd5"]).to_ascii_lowercase();
        let incoming = Incoming {
            kind: WEB_UPLOAD_KIND,
            client_id: client_id.clone(),
            to: FILEHELPER.to_owned(),
            total: Some(total),
            start,
            data: data.to_vec(),
            voice_ms: 0,
        };
        let cap = WEB_CHUNK.max(self.service.config.max_media_part);
        let user = s.user;
        let outcome = match self.service.store_part(user, incoming, cap).await {
            Ok((o, _)) => o,
            Err(f) => return Ok(json_reply(&failed(&f))),
        };
        let media_id = match outcome {
            PartOutcome::Partial { .. } => String::new(),
            PartOutcome::Refused(why) => return Ok(json_reply(&failed(&refused(why)))),
            PartOutcome::Done { .. } => format!("{MEDIA_ID_PREFIX}{client_id}"),
            PartOutcome::Whole(bytes) => {
                let got = hex::encode(Md5::digest(&bytes));
                if !md5.is_empty() && got != md5 {
                    let id = client_id.clone();
                    with_store(&self.service.store, move |st| {
                        st.drop_upload(user, WEB_UPLOAD_KIND, &id)
                    })
                    .await
                    .map_err(store_error)?;
                    let f = refused(format!(
                        "upload {client_id:?}: its MD5 is {got}, FileMd5 says {md5}: dropped, \
                         upload it again"
                    ));
                    return Ok(json_reply(&failed(&f)));
                }
                format!("{MEDIA_ID_PREFIX}{client_id}")
            }
        };
        Ok(json_reply(&json!({
            "BaseResponse": base(0, ""),
            "MediaId": media_id,
            "StartPos": start + data.len() as u64,
            "CDNThumbImgHeight": 0,
            "CDNThumbImgWidth": 0,
            "EncryFileName": "",
        })))
    }

    /// POST webwxsendmsgimg: the image message of a whole upload.
    pub(super) async fn sendmsgimg(
        &mut self,
        req: &Request,
        q: &BTreeMap<String, String>,
    ) -> Result<Reply, super::Close> {
        let body = parse_json("webwxsendmsgimg", &req.body)?;
        let (s, msg, local_id) = match self.send_start("webwxsendmsgimg", &body, q, req)? {
            Ok(start) => start,
            Err(reply) => return Ok(reply),
        };
        let answer = |ret: i32, err: &str, msg_id: String| send_answer(&local_id, ret, err, msg_id);
        let media_id = id_string(&msg["MediaId"]);
        let Some(client_id) = media_id.strip_prefix(MEDIA_ID_PREFIX).map(str::to_owned) else {
            return Ok(answer(
                ret::NO_SUCH_MEDIA,
                &format!("MediaId {media_id:?} is none this server gave (webwxuploadmedia first)"),
                String::new(),
            ));
        };
        let to_web = id_string(&msg["ToUserName"]);
        let to_name = to_web.strip_prefix('@').unwrap_or(&to_web).to_owned();
        let user = s.user;
        let auto = self.service.config.auto_register;
        let id = client_id.clone();
        let (to, state) = with_store(&self.service.store, move |st| {
            let to = if to_name == FILEHELPER {
                Some(user)
            } else if IdentifyExt::valid_user(&to_name) {
                st.user(&to_name, auto)?
            } else {
                None
            };
            Ok((to, st.upload_state(user, WEB_UPLOAD_KIND, &id)?))
        })
        .await
        .map_err(store_error)?;
        let Some(to) = to else {
            return Ok(answer(
                ret::BAD_RECIPIENT,
                &format!("unknown recipient {to_web:?}"),
                String::new(),
            ));
        };
        let bytes = match state {
            Some(PartOutcome::Whole(b)) => b,
            Some(PartOutcome::Done { msg_id, .. }) => return Ok(answer(0, "", msg_id.to_string())),
            Some(PartOutcome::Partial { have, total }) => {
                return Ok(answer(
                    ret::MEDIA_REFUSED,
                    &format!("MediaId {media_id:?} is unfinished ({have} of {total} bytes)"),
                    String::new(),
                ))
            }
            Some(PartOutcome::Refused(_)) | None => {
                return Ok(answer(
                    ret::NO_SUCH_MEDIA,
                    &format!("no upload {media_id:?} (it expired, or was never made)"),
                    String::new(),
                ))
            }
        };
        let thumb = match thumbnail_of(bytes.clone()).await {
            Ok(t) => t,
            Err(e) => {
                let f = refused(format!("{media_id:?} is not a PNG or JPEG image ({e})"));
                return Ok(answer(f.ret, &f.error, String::new()));
            }
        };
        let client_msg_id = Some(id_string(&msg["ClientMsgId"]))
            .filter(|c| !c.is_empty() && c != "0")
            .unwrap_or_else(|| client_id.clone());
        let m = NewMessage {
            from: user,
            from_device: WEB_DEVICE.to_owned(),
            to,
            client_msg_id: Some(client_msg_id),
            msg_type: MSG_TYPE_IMAGE,
            content: content(MSG_TYPE_IMAGE, &client_id, &bytes, Some(&thumb), 0),
            create_time: super::unix_now(),
        };
        let sent = with_store(&self.service.store, move |st| {
            st.finish_upload(user, WEB_UPLOAD_KIND, &client_id, &m, &bytes, Some(&thumb))
        })
        .await
        .map_err(store_error)?;
        let Some(sent) = sent else {
            return Ok(answer(
                ret::NO_SUCH_MEDIA,
                &format!("upload {media_id:?} expired: upload it again"),
                String::new(),
            ));
        };
        let mut reply = answer(0, "", sent.msg_id.to_string());
        reply.wake = (!sent.duplicate).then(|| Wake::new(user, WEB_DEVICE, to));
        Ok(reply)
    }

    /// GET webwxgetmsgimg: a stored image (`type=slave`: its thumbnail)
    /// the session's user sent or received.
    pub(super) async fn getmsgimg(
        &mut self,
        req: &Request,
        q: &BTreeMap<String, String>,
    ) -> Result<Reply, super::Close> {
        let Some(s) = self.service.web.session(&query_credentials(q, req)) else {
            return Ok(logged_out("webwxgetmsgimg: no such session (log in again)"));
        };
        let Some(id) = q.get("MsgID").and_then(|v| v.parse::<u64>().ok()) else {
            return Err(http(
                400,
                ret::BAD_BODY,
                "webwxgetmsgimg: MsgID must be a message id",
            ));
        };
        let media = self
            .service
            .readable(s.user, MSG_TYPE_IMAGE, id)
            .await
            .map_err(|f| http(404, f.ret, f.error))?;
        let (body, content_type) = if q.get("type").is_some_and(|t| t == "slave") {
            (media.thumb.unwrap_or_default(), "image/jpeg")
        } else if media.data.starts_with(b"\x89PNG") {
            (media.data, "image/png")
        } else {
            (media.data, "image/jpeg")
        };
        Ok(Reply {
            status: 200,
            content_type,
            body,
            cookies: Vec::new(),
            wake: None,
        })
    }
}

#[cfg(test)]
mod tests;
