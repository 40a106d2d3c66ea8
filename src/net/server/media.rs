//! Media on every link: an image uploaded in parts (uploadmsgimg), a voice
//! recording in chunks (uploadvoice), both merged in the store by the
//! sender's client id ([`crate::net::store::Part`]) and, once whole,
//! stored with one message (MsgType 3 or 34) delivered like any other;
//! read back by MsgId (getmsgimg, downloadvoice).
//!
//! The answers follow the protocol notes: each image part is answered
//! with an UploadMsgImgResponse (its StartPos and DataLen echoed, MsgId 0
//! until the image is whole; the answer that completes it carries the
//! MsgId and, as syncscope's `Thumb`, a JPEG thumbnail made with the
//! `image` crate); each voice chunk with an UploadVoiceResponse saying the
//! server has it (MsgId once the last chunk, EndFlag 1, made it whole).
//! Images must decode as PNG or JPEG; an upload that does not is dropped.
//!
//! Caps ([`Config`](super::Config)): bytes per part, bytes per object,
//! unfinished uploads per user; an upload left unfinished for
//! `upload_ttl` is dropped (counted, and logged as
//! [`Event::UploadsExpired`](super::Event::UploadsExpired)).

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};

use prost::Message;
use sha2::{Digest, Sha256};

use super::service::{unix_now, with_store, Answer, Failure, Service, Then, Wake};
use super::Event;
use crate::body::messages::{
    self, string_of, BaseResponse, DownloadVoiceRequest, DownloadVoiceResponse, GetMsgImgRequest,
    GetMsgImgResponse, SkBuiltinBuffer, UploadMsgImgRequest, UploadMsgImgResponse,
    UploadVoiceRequest, UploadVoiceResponse,
};
use crate::net::messages::{ret, IdentifyExt};
use crate::net::store::{Media, NewMessage, Part, PartOutcome, Sent, UserId};
use crate::net::{FILEHELPER, MSG_TYPE_IMAGE, MSG_TYPE_VOICE};
use crate::proto::commands::{response, DOWNLOADVOICE, GETMSGIMG, UPLOADMSGIMG, UPLOADVOICE};

/// Longest side of the thumbnail, in pixels.
pub const THUMB_SIDE: u32 = 120;

/// Counters of the media side (the server's stats).
#[derive(Debug, Default)]
pub(super) struct MediaStats {
    /// Unix second of the last sweep for expired uploads.
    last_sweep: AtomicU64,
    /// Unfinished uploads dropped for age.
    pub(super) expired: AtomicU64,
}

/// Whether a client id (ClientImgId, a voice's ClientMsgId) is acceptable:
/// 1 to 64 characters among letters, digits and `-_.:@` (it goes into the
/// message's XML as is).
pub fn valid_client_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@".contains(&b))
}

/// A JPEG thumbnail of a PNG or JPEG image, at most [`THUMB_SIDE`] pixels
/// on its longest side.
pub fn thumbnail(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(16_384);
    limits.max_image_height = Some(16_384);
    limits.max_alloc = Some(256 << 20);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| e.to_string())?;
    let thumb = img.thumbnail(THUMB_SIDE, THUMB_SIDE).to_rgb8();
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80)
        .encode_image(&thumb)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// [`thumbnail`] on a blocking thread.
pub(super) async fn thumbnail_of(bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    tokio::task::spawn_blocking(move || thumbnail(&bytes))
        .await
        .unwrap_or_else(|e| Err(format!("the thumbnail task failed: {e}")))
}

/// What an upload part led to, for the answer.
enum Uploaded {
    Partial,
    /// The object is stored with message `sent`; `wake` when it is new.
    Finished {
        sent: Sent,
        thumb: Option<Vec<u8>>,
        wake: Option<Wake>,
    },
}

/// One part, as the cgis (and the web's webwxuploadmedia) give it.
pub(super) struct Incoming {
    pub(super) kind: u32,
    pub(super) client_id: String,
    pub(super) to: String,
    pub(super) total: Option<u64>,
    pub(super) start: u64,
    pub(super) data: Vec<u8>,
    /// A recording's length in milliseconds (voice only).
    pub(super) voice_ms: u32,
}

pub(super) fn refused(why: impl std::fmt::Display) -> Failure {
    Failure::new(ret::MEDIA_REFUSED, why)
}

/// The content of a media message: what a client needs to fetch it.
pub(super) fn content(
    kind: u32,
    client_id: &str,
    data: &[u8],
    thumb: Option<&[u8]>,
    voice_ms: u32,
) -> String {
    let sha = hex::encode(Sha256::digest(data));
    if kind == MSG_TYPE_IMAGE {
        format!(
            "<msg><img length=\"{}\" thumblength=\"{}\" sha256=\"{sha}\" clientimgid=\"{client_id}\"/></msg>",
            data.len(),
            thumb.map_or(0, <[u8]>::len)
        )
    } else {
        format!(
            "<msg><voicemsg endflag=\"1\" length=\"{}\" voicelength=\"{voice_ms}\" sha256=\"{sha}\" clientmsgid=\"{client_id}\"/></msg>",
            data.len()
        )
    }
}

impl Service {
    /// A long-link media request of an identified device.
    pub(super) async fn media_request(
        &self,
        user: UserId,
        device: &str,
        cmd: u32,
        body: &[u8],
    ) -> Result<Answer, Failure> {
        let (body, wake) = match cmd {
            UPLOADMSGIMG => self.uploadmsgimg(user, device, body).await?,
            UPLOADVOICE => self.uploadvoice(user, device, body).await?,
            GETMSGIMG => (self.getmsgimg(user, body).await?, None),
            DOWNLOADVOICE => (self.downloadvoice(user, body).await?, None),
            _ => {
                return Err(Failure::new(
                    ret::UNKNOWN_CMD,
                    format!("cmd {cmd} is not media"),
                ))
            }
        };
        Ok(Answer {
            cmd: response(cmd),
            body,
            then: wake.map_or(Then::Nothing, Then::Push),
        })
    }

    /// One image part (cgi uploadmsgimg): the UploadMsgImgResponse body,
    /// and whom to push to when it completed the image.
    pub(super) async fn uploadmsgimg(
        &self,
        user: UserId,
        device: &str,
        body: &[u8],
    ) -> Result<(Vec<u8>, Option<Wake>), Failure> {
        let req: UploadMsgImgRequest = messages::decode("UploadMsgImgRequest", body)?;
        let data = req
            .data
            .as_ref()
            .map(|d| d.bytes().to_vec())
            .unwrap_or_default();
        if req.data_len.is_some_and(|n| n as usize != data.len()) {
            return Err(refused(format!(
                "DataLen {} but {} bytes of data",
                req.data_len.unwrap_or_default(),
                data.len()
            )));
        }
        let Some(total) = req.total_len.filter(|&t| t > 0) else {
            return Err(refused("an image part needs its TotalLen"));
        };
        let incoming = Incoming {
            kind: MSG_TYPE_IMAGE,
            client_id: string_of(&req.client_img_id).to_owned(),
            to: string_of(&req.to_user_name).to_owned(),
            total: Some(u64::from(total)),
            start: u64::from(req.start_pos.unwrap_or(0)),
            data,
            voice_ms: 0,
        };
        let (start, len) = (incoming.start, incoming.data.len());
        let up = self.upload(user, device, incoming).await?;
        let mut resp = UploadMsgImgResponse {
            base_response: Some(BaseResponse::error(0, "")),
            msg_id: Some(0),
            client_img_id: req.client_img_id.clone(),
            from_user_name: req.from_user_name.clone(),
            to_user_name: req.to_user_name.clone(),
            total_len: Some(total),
            start_pos: Some(start as u32),
            data_len: Some(len as u32),
            create_time: Some(0),
            new_msg_id: Some(0),
            thumb: None,
        };
        let wake = match up {
            Uploaded::Partial => None,
            Uploaded::Finished { sent, thumb, wake } => {
                resp.msg_id = Some(u32::try_from(sent.msg_id).unwrap_or(0));
                resp.new_msg_id = Some(sent.msg_id);
                resp.create_time = Some(sent.create_time as u32);
                resp.thumb = thumb;
                wake
            }
        };
        Ok((resp.encode_to_vec(), wake))
    }

    /// One voice chunk (cgi uploadvoice).
    pub(super) async fn uploadvoice(
        &self,
        user: UserId,
        device: &str,
        body: &[u8],
    ) -> Result<(Vec<u8>, Option<Wake>), Failure> {
        let req: UploadVoiceRequest = messages::decode("UploadVoiceRequest", body)?;
        let data = req
            .data
            .as_ref()
            .map(|d| d.bytes().to_vec())
            .unwrap_or_default();
        if req.length.is_some_and(|n| n as usize != data.len()) {
            return Err(refused(format!(
                "Length {} but {} bytes of data",
                req.length.unwrap_or_default(),
                data.len()
            )));
        }
        let start = u64::from(req.offset.unwrap_or(0));
        let end = req.end_flag.unwrap_or(0) != 0;
        let incoming = Incoming {
            kind: MSG_TYPE_VOICE,
            client_id: req.client_msg_id.clone().unwrap_or_default(),
            to: req.to_user_name.clone().unwrap_or_default(),
            total: end.then_some(start + data.len() as u64),
            start,
            voice_ms: req.voice_length.unwrap_or(0),
            data,
        };
        let len = incoming.data.len();
        let up = self.upload(user, device, incoming).await?;
        let mut resp = UploadVoiceResponse {
            from_user_name: req.from_user_name.clone(),
            to_user_name: req.to_user_name.clone(),
            offset: Some(start as u32),
            length: Some(len as u32),
            create_time: Some(0),
            client_msg_id: req.client_msg_id.clone(),
            msg_id: Some(0),
            voice_length: req.voice_length,
            end_flag: Some(0),
            base_response: Some(BaseResponse::error(0, "")),
            new_msg_id: Some(0),
        };
        let wake = match up {
            Uploaded::Partial => None,
            Uploaded::Finished { sent, wake, .. } => {
                resp.msg_id = Some(u32::try_from(sent.msg_id).unwrap_or(0));
                resp.new_msg_id = Some(sent.msg_id);
                resp.create_time = Some(sent.create_time as u32);
                resp.end_flag = Some(1);
                wake
            }
        };
        Ok((resp.encode_to_vec(), wake))
    }

    /// Checks and stores one part (of at most `part_cap` bytes): what it
    /// led to, and the recipient.
    pub(super) async fn store_part(
        &self,
        user: UserId,
        p: Incoming,
        part_cap: usize,
    ) -> Result<(PartOutcome, UserId), Failure> {
        let cfg = &self.config;
        if !valid_client_id(&p.client_id) {
            return Err(refused(
                "the client id (ClientImgId, or the voice's ClientMsgId) must be 1 to 64 \
                 letters, digits or -_.:@",
            ));
        }
        if p.data.is_empty() {
            return Err(refused("a part with no data"));
        }
        if p.data.len() > part_cap {
            return Err(Failure::new(
                ret::OVERSIZE,
                format!(
                    "a part of {} bytes, over the cap of {} per part: send smaller parts",
                    p.data.len(),
                    part_cap
                ),
            ));
        }
        let end = p.start + p.data.len() as u64;
        if p.total.unwrap_or(end).max(end) > cfg.max_media_len as u64 {
            return Err(Failure::new(
                ret::OVERSIZE,
                format!(
                    "an object of {} bytes, over the cap of {}",
                    p.total.unwrap_or(end).max(end),
                    cfg.max_media_len
                ),
            ));
        }
        let now = unix_now();
        let sweep = self.media_stats.last_sweep.swap(now, Ordering::Relaxed) != now;
        let before = now.saturating_sub(cfg.upload_ttl.as_secs());
        let (auto, max_open) = (cfg.auto_register, cfg.max_open_uploads.max(1));
        let to_name = p.to.clone();
        let (expired, outcome, to) = with_store(&self.store, move |st| {
            let expired = if sweep { st.expire_uploads(before)? } else { 0 };
            let to = if p.to == FILEHELPER {
                Some(user)
            } else if IdentifyExt::valid_user(&p.to) {
                st.user(&p.to, auto)?
            } else {
                None
            };
            let Some(to) = to else {
                return Ok((expired, None, user));
            };
            let part = Part {
                user,
                kind: p.kind,
                client_id: &p.client_id,
                to,
                total: p.total,
                start: p.start,
                data: &p.data,
                now,
            };
            Ok((expired, Some(st.put_part(&part, max_open)?), to))
        })
        .await?;
        if expired > 0 {
            self.media_stats
                .expired
                .fetch_add(expired as u64, Ordering::Relaxed);
            self.log(Event::UploadsExpired { count: expired });
        }
        match outcome {
            Some(o) => Ok((o, to)),
            None => Err(Failure::new(
                ret::BAD_RECIPIENT,
                format!("unknown recipient {to_name:?}"),
            )),
        }
    }

    /// Stores one part; makes the object and its message once whole.
    async fn upload(&self, user: UserId, device: &str, p: Incoming) -> Result<Uploaded, Failure> {
        let (kind, client_id, voice_ms) = (p.kind, p.client_id.clone(), p.voice_ms);
        let (outcome, to) = self.store_part(user, p, self.config.max_media_part).await?;
        let whole = match outcome {
            PartOutcome::Partial { .. } => return Ok(Uploaded::Partial),
            PartOutcome::Refused(why) => return Err(refused(why)),
            PartOutcome::Done {
                msg_id,
                create_time,
            } => {
                let media = with_store(&self.store, move |st| st.media(msg_id)).await?;
                return Ok(Uploaded::Finished {
                    sent: Sent {
                        msg_id,
                        create_time,
                        duplicate: true,
                    },
                    thumb: media.and_then(|m| m.thumb),
                    wake: None,
                });
            }
            PartOutcome::Whole(bytes) => bytes,
        };
        let thumb = if kind == MSG_TYPE_IMAGE {
            match thumbnail_of(whole.clone()).await {
                Ok(t) => Some(t),
                Err(e) => {
                    let id = client_id.clone();
                    with_store(&self.store, move |st| st.drop_upload(user, kind, &id)).await?;
                    return Err(refused(format!(
                        "upload {client_id:?} is not a PNG or JPEG image ({e}): dropped"
                    )));
                }
            }
        } else {
            None
        };
        let m = NewMessage {
            from: user,
            from_device: device.to_owned(),
            to,
            client_msg_id: Some(client_id.clone()),
            msg_type: kind,
            content: content(kind, &client_id, &whole, thumb.as_deref(), voice_ms),
            create_time: unix_now(),
        };
        let stored_thumb = thumb.clone();
        let sent = with_store(&self.store, move |st| {
            st.finish_upload(user, kind, &client_id, &m, &whole, stored_thumb.as_deref())
        })
        .await?
        .ok_or_else(|| refused("the upload expired before it was whole: send it again"))?;
        let wake = (!sent.duplicate).then(|| Wake::new(user, device, to));
        Ok(Uploaded::Finished { sent, thumb, wake })
    }
}

impl Service {
    /// The stored object of message `id` (`NewMsgId`, else `MsgId`) of
    /// type `kind`, if `user` sent or received it.
    pub(super) async fn readable(
        &self,
        user: UserId,
        kind: u32,
        id: u64,
    ) -> Result<Media, Failure> {
        let media = with_store(&self.store, move |st| st.media(id)).await?;
        media
            .filter(|m| m.msg_type == kind && (m.from == user || m.to == user))
            .ok_or_else(|| {
                Failure::new(
                    ret::NO_SUCH_MEDIA,
                    format!("no {} with MsgId {id} for this user", kind_name(kind)),
                )
            })
    }

    /// The range `start..start+len` of `data`, `len` capped at a part (0:
    /// a whole part).
    fn range<'a>(&self, data: &'a [u8], start: u32, len: u32) -> &'a [u8] {
        let cap = self.config.max_media_part.max(1);
        let len = if len == 0 {
            cap
        } else {
            (len as usize).min(cap)
        };
        let start = (start as usize).min(data.len());
        &data[start..(start + len).min(data.len())]
    }

    /// cgi getmsgimg: a range of a stored image (CompressType 1: of its
    /// thumbnail).
    pub(super) async fn getmsgimg(&self, user: UserId, body: &[u8]) -> Result<Vec<u8>, Failure> {
        let req: GetMsgImgRequest = messages::decode("GetMsgImgRequest", body)?;
        let id = req
            .new_msg_id
            .filter(|&i| i != 0)
            .unwrap_or(u64::from(req.msg_id.unwrap_or(0)));
        let media = self.readable(user, MSG_TYPE_IMAGE, id).await?;
        let object = if req.compress_type == Some(1) {
            media.thumb.as_deref().unwrap_or_default()
        } else {
            media.data.as_slice()
        };
        let start = req.start_pos.unwrap_or(0);
        let part = self.range(object, start, req.data_len.unwrap_or(0));
        Ok(GetMsgImgResponse {
            base_response: Some(BaseResponse::error(0, "")),
            msg_id: Some(u32::try_from(id).unwrap_or(0)),
            from_user_name: req.from_user_name.clone(),
            to_user_name: req.to_user_name.clone(),
            total_len: Some(object.len() as u32),
            start_pos: Some(start),
            data_len: Some(part.len() as u32),
            data: Some(SkBuiltinBuffer::new(part.to_vec())),
            new_msg_id: Some(id),
        }
        .encode_to_vec())
    }

    /// cgi downloadvoice: a range of a stored recording; EndFlag 1 on the
    /// range that reaches its end.
    pub(super) async fn downloadvoice(
        &self,
        user: UserId,
        body: &[u8],
    ) -> Result<Vec<u8>, Failure> {
        let req: DownloadVoiceRequest = messages::decode("DownloadVoiceRequest", body)?;
        let id = req
            .new_msg_id
            .filter(|&i| i != 0)
            .unwrap_or(u64::from(req.msg_id.unwrap_or(0)));
        let media = self.readable(user, MSG_TYPE_VOICE, id).await?;
        let start = req.offset.unwrap_or(0);
        let part = self.range(&media.data, start, req.length.unwrap_or(0));
        let end = start as usize + part.len() >= media.data.len();
        Ok(DownloadVoiceResponse {
            msg_id: Some(u32::try_from(id).unwrap_or(0)),
            offset: Some(start),
            length: Some(part.len() as u32),
            voice_length: None,
            client_msg_id: req.client_msg_id.clone(),
            data: Some(SkBuiltinBuffer::new(part.to_vec())),
            end_flag: Some(u32::from(end)),
            base_response: Some(BaseResponse::error(0, "")),
            new_msg_id: Some(id),
        }
        .encode_to_vec())
    }
}

fn kind_name(kind: u32) -> &'static str {
    if kind == MSG_TYPE_IMAGE {
        "image"
    } else {
        "voice recording"
    }
}
