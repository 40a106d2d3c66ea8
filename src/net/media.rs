//! The client side of media: [`send_image`] uploads an image over the
//! short link in parts of [`PART_LEN`] bytes, several POSTs at once on
//! [`UPLOAD_CONNS`] connections, as the real client does (uploadmsgimg);
//! [`send_voice`] sends a recording over the long link in chunks of at most
//! [`PART_LEN`] bytes by offset, the last with EndFlag 1 (uploadvoice);
//! [`fetch`] reads a received image or recording back (getmsgimg,
//! downloadvoice) and checks it against the sha256 its message names.
//! The server side is `net/server/media.rs`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use prost::Message;
use sha2::{Digest, Sha256};

use super::client::{ClientError, Config, Retry, SendFailed, SendOptions, Session};
use super::messages::ChatMessage;
use super::shortclient::ShortSession;
use super::{MSG_TYPE_IMAGE, MSG_TYPE_VOICE};
use crate::body::messages::{
    self, BaseResponse, DownloadVoiceRequest, DownloadVoiceResponse, GetMsgImgRequest,
    GetMsgImgResponse, SkBuiltinBuffer, SkBuiltinString, UploadMsgImgRequest, UploadMsgImgResponse,
    UploadVoiceRequest, UploadVoiceResponse,
};
use crate::body::synckey::SyncKey;
use crate::proto::commands::UPLOADVOICE;

/// Bytes per upload part ("about 1.5 KB", protocol.md section 7).
pub const PART_LEN: usize = 1500;
/// Connections an image upload uses at once.
pub const UPLOAD_CONNS: usize = 4;

/// What the server answered an upload with.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MediaAck {
    pub msg_id: u64,
    /// The ClientImgId (image) or ClientMsgId (voice) of the upload.
    pub client_id: String,
    pub create_time: u64,
    /// Bytes sent, in `parts` parts.
    pub len: usize,
    pub parts: usize,
    pub sha256: String,
    /// Bytes of the thumbnail the server made (images).
    pub thumb_len: usize,
    #[serde(skip)]
    pub thumb: Vec<u8>,
}

/// A media message's description, from its content
/// (`<msg><img length=".." sha256=".."/></msg>`, `<msg><voicemsg .../></msg>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRef {
    pub msg_type: u32,
    pub length: usize,
    pub sha256: String,
}

/// The value of attribute `name` in `xml` (`name="value"`).
fn attr<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let start = xml.find(&key)? + key.len();
    let len = xml[start..].find('"')?;
    Some(&xml[start..start + len])
}

impl MediaRef {
    /// The media a message carries, if it is an image or a recording.
    pub fn of(m: &ChatMessage) -> Option<MediaRef> {
        if m.msg_type != MSG_TYPE_IMAGE && m.msg_type != MSG_TYPE_VOICE {
            return None;
        }
        Some(MediaRef {
            msg_type: m.msg_type,
            length: attr(&m.content, "length")?.parse().ok()?,
            sha256: attr(&m.content, "sha256").unwrap_or_default().to_owned(),
        })
    }

    /// The file extension to save it with: by the bytes' signature for
    /// images (`png`, `jpg`, else `img`), `voice` for recordings.
    pub fn extension(&self, bytes: &[u8]) -> &'static str {
        if self.msg_type == MSG_TYPE_VOICE {
            "voice"
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            "png"
        } else if bytes.starts_with(b"\xff\xd8\xff") {
            "jpg"
        } else {
            "img"
        }
    }
}

fn ok(what: &'static str, b: &Option<BaseResponse>) -> Result<(), ClientError> {
    match b {
        Some(b) if b.ret.unwrap_or(0) != 0 => Err(ClientError::Refused {
            what,
            ret: b.ret.unwrap_or(0),
            message: b.message().to_owned(),
        }),
        _ => Ok(()),
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A fresh client id for an upload (letters and digits).
pub fn new_client_id(prefix: &str) -> String {
    format!("{prefix}{}", super::client::new_client_msg_id())
}

/// Uploads `data` (a PNG or JPEG image) to `to` over the short link, in
/// parts of [`PART_LEN`] bytes on [`UPLOAD_CONNS`] connections at once;
/// a part whose answer does not come is sent again (the server takes a
/// part twice as once). Gives the message the server stored.
pub async fn send_image(
    config: &Config,
    to: &str,
    data: &[u8],
    opts: &SendOptions,
) -> Result<MediaAck, SendFailed> {
    let mut retry = Retry::new(opts);
    let client_id = format!("img{}", retry.client_msg_id);
    let parts: Vec<(usize, Vec<u8>)> = data
        .chunks(PART_LEN)
        .enumerate()
        .map(|(i, c)| (i * PART_LEN, c.to_vec()))
        .collect();
    let n = parts.len();
    let queue = Arc::new(Mutex::new(parts.into_iter().collect::<VecDeque<_>>()));
    loop {
        match upload_parts(config, to, data.len(), &client_id, &queue).await {
            Ok(Some((msg_id, create_time, thumb))) => {
                return Ok(MediaAck {
                    msg_id,
                    client_id,
                    create_time,
                    len: data.len(),
                    parts: n,
                    sha256: sha256_hex(data),
                    thumb_len: thumb.len(),
                    thumb,
                })
            }
            Ok(None) => {
                // Every part answered and none completed the image: the
                // upload expired meanwhile; send it all again.
                let again: VecDeque<_> = data
                    .chunks(PART_LEN)
                    .enumerate()
                    .map(|(i, c)| (i * PART_LEN, c.to_vec()))
                    .collect();
                *queue.lock().unwrap_or_else(|p| p.into_inner()) = again;
                retry
                    .failed(ClientError::Malformed {
                        what: "uploadmsgimg",
                        detail: "every part was answered, none completed the image".into(),
                    })
                    .await?;
            }
            Err(e) => retry.failed(e).await?,
        }
    }
}

/// Parts still to send: (start, bytes), shared by the upload's connections.
type PartQueue = Arc<Mutex<VecDeque<(usize, Vec<u8>)>>>;

/// (MsgId, CreateTime, thumbnail) of the part that completed the image.
type Completed = Option<(u64, u64, Vec<u8>)>;

/// Sends the queued parts on [`UPLOAD_CONNS`] connections; a part that
/// fails goes back to the queue and the error is returned.
async fn upload_parts(
    config: &Config,
    to: &str,
    total: usize,
    client_id: &str,
    queue: &PartQueue,
) -> Result<Completed, ClientError> {
    let first = ShortSession::login(config).await?;
    let mut tasks = tokio::task::JoinSet::new();
    let sessions: Vec<ShortSession> = (1..UPLOAD_CONNS).map(|_| first.fork()).collect();
    for mut s in std::iter::once(first).chain(sessions) {
        let queue = Arc::clone(queue);
        let (to, client_id, from) = (to.to_owned(), client_id.to_owned(), config.user.clone());
        tasks.spawn(async move {
            let mut done: Completed = None;
            loop {
                let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
                let Some((start, data)) = next else {
                    return Ok(done);
                };
                let req = UploadMsgImgRequest {
                    client_img_id: Some(SkBuiltinString::new(client_id.clone())),
                    from_user_name: Some(SkBuiltinString::new(from.clone())),
                    to_user_name: Some(SkBuiltinString::new(to.clone())),
                    total_len: Some(total as u32),
                    start_pos: Some(start as u32),
                    data_len: Some(data.len() as u32),
                    data: Some(SkBuiltinBuffer::new(data.clone())),
                    msg_type: Some(MSG_TYPE_IMAGE),
                };
                let answer = match s.call("uploadmsgimg", &req.encode_to_vec()).await {
                    Ok(a) => a,
                    Err(e) => {
                        queue
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push_back((start, data));
                        return Err(e);
                    }
                };
                let resp: UploadMsgImgResponse = messages::decode("UploadMsgImgResponse", &answer)?;
                ok("uploadmsgimg", &resp.base_response)?;
                if let Some(id) = resp.new_msg_id.filter(|&i| i != 0) {
                    done = Some((
                        id,
                        u64::from(resp.create_time.unwrap_or(0)),
                        resp.thumb.unwrap_or_default(),
                    ));
                }
            }
        });
    }
    let mut result: Result<Completed, ClientError> = Ok(None);
    while let Some(joined) = tasks.join_next().await {
        let r = joined.unwrap_or_else(|e| {
            Err(ClientError::Malformed {
                what: "uploadmsgimg",
                detail: format!("an upload task failed: {e}"),
            })
        });
        match (r, &mut result) {
            (Ok(Some(done)), Ok(slot)) => *slot = Some(done),
            (Ok(_), _) => {}
            (Err(e), r @ Ok(_)) => *r = Err(e),
            (Err(_), Err(_)) => {}
        }
    }
    result
}

/// Sends a recording to `to` over the long link in chunks of at most
/// [`PART_LEN`] bytes by offset, the last with EndFlag 1 (`voice_ms`: its
/// length in milliseconds). A failed attempt starts again on a new
/// connection with the same ClientMsgId (chunks the server has are taken
/// as duplicates).
pub async fn send_voice(
    config: &Config,
    to: &str,
    data: &[u8],
    voice_ms: u32,
    opts: &SendOptions,
) -> Result<MediaAck, SendFailed> {
    let mut retry = Retry::new(opts);
    let client_id = format!("voice{}", retry.client_msg_id);
    if data.is_empty() {
        return Err(SendFailed {
            attempts: 0,
            client_msg_id: retry.client_msg_id,
            last: ClientError::Malformed {
                what: "uploadvoice",
                detail: "an empty recording".into(),
            },
        });
    }
    loop {
        let attempt = async {
            let mut s = Session::connect(config, SyncKey::default()).await?;
            let chunks: Vec<&[u8]> = data.chunks(PART_LEN).collect();
            let mut offset = 0usize;
            for (i, c) in chunks.iter().enumerate() {
                let last = i + 1 == chunks.len();
                let req = UploadVoiceRequest {
                    from_user_name: Some(config.user.clone()),
                    to_user_name: Some(to.to_owned()),
                    offset: Some(offset as u32),
                    length: Some(c.len() as u32),
                    client_msg_id: Some(client_id.clone()),
                    msg_id: Some(0),
                    voice_length: Some(voice_ms),
                    data: Some(SkBuiltinBuffer::new(c.to_vec())),
                    end_flag: Some(u32::from(last)),
                };
                let answer = s
                    .call("uploadvoice", UPLOADVOICE, &req.encode_to_vec())
                    .await?;
                let resp: UploadVoiceResponse = messages::decode("UploadVoiceResponse", &answer)?;
                ok("uploadvoice", &resp.base_response)?;
                offset += c.len();
                if let Some(id) = resp.new_msg_id.filter(|&i| i != 0) {
                    return Ok(MediaAck {
                        msg_id: id,
                        client_id: client_id.clone(),
                        create_time: u64::from(resp.create_time.unwrap_or(0)),
                        len: data.len(),
                        parts: chunks.len(),
                        sha256: sha256_hex(data),
                        thumb_len: 0,
                        thumb: Vec::new(),
                    });
                }
            }
            Err(ClientError::Malformed {
                what: "uploadvoice",
                detail: "the last chunk's answer carries no MsgId".into(),
            })
        };
        match attempt.await {
            Ok(ack) => return Ok(ack),
            Err(e) => retry.failed(e).await?,
        }
    }
}

/// Reads the image or recording of message `m` back over the short link
/// (getmsgimg, downloadvoice) and checks its length and sha256 against
/// the message's. `None`: the message carries no media.
pub async fn fetch(config: &Config, m: &ChatMessage) -> Result<Option<Vec<u8>>, ClientError> {
    let Some(r) = MediaRef::of(m) else {
        return Ok(None);
    };
    let mut s = ShortSession::login(config).await?;
    let mut out = Vec::with_capacity(r.length);
    while out.len() < r.length {
        let start = out.len() as u32;
        let part = if r.msg_type == MSG_TYPE_IMAGE {
            let req = GetMsgImgRequest {
                msg_id: Some(u32::try_from(m.msg_id).unwrap_or(0)),
                from_user_name: Some(SkBuiltinString::new(m.from.clone())),
                to_user_name: Some(SkBuiltinString::new(m.to.clone())),
                total_len: Some(r.length as u32),
                start_pos: Some(start),
                data_len: Some(0),
                compress_type: Some(0),
                new_msg_id: Some(m.msg_id),
            };
            let answer = s.call("getmsgimg", &req.encode_to_vec()).await?;
            let resp: GetMsgImgResponse = messages::decode("GetMsgImgResponse", &answer)?;
            ok("getmsgimg", &resp.base_response)?;
            resp.data.map(|d| d.buffer.unwrap_or_default())
        } else {
            let req = DownloadVoiceRequest {
                msg_id: Some(u32::try_from(m.msg_id).unwrap_or(0)),
                offset: Some(start),
                length: Some(0),
                client_msg_id: m.client_msg_id.clone(),
                new_msg_id: Some(m.msg_id),
            };
            let answer = s.call("downloadvoice", &req.encode_to_vec()).await?;
            let resp: DownloadVoiceResponse = messages::decode("DownloadVoiceResponse", &answer)?;
            ok("downloadvoice", &resp.base_response)?;
            resp.data.map(|d| d.buffer.unwrap_or_default())
        };
        let part = part.unwrap_or_default();
        if part.is_empty() {
            return Err(ClientError::Malformed {
                what: "media download",
                detail: format!("no data at {start} of {} bytes", r.length),
            });
        }
        out.extend_from_slice(&part);
    }
    if out.len() != r.length || (!r.sha256.is_empty() && sha256_hex(&out) != r.sha256) {
        return Err(ClientError::Malformed {
            what: "media download",
            detail: format!(
                "{} bytes with sha256 {}, the message says {} bytes with sha256 {}",
                out.len(),
                sha256_hex(&out),
                r.length,
                r.sha256
            ),
        });
    }
    Ok(Some(out))
}
