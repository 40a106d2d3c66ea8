//! What the reference server and client add to the known messages of
//! [`crate::body::messages`]: the ret codes they use, the identify tail
//! extension ([`IdentifyExt`]) and reply ([`IdentifyReply`]), and a message
//! as a client shows it ([`ChatMessage`]).

use crate::body::identify::{Identify, Tail, RESPONSE_WORDS};
use crate::body::messages::{string_of, AddMsg, BodyError};
use crate::body::synckey::SyncKey;

/// Ret codes the server uses (BaseResponse, MicroMsgResponseNew, error
/// frames). 0 is success.
pub mod ret {
    /// The bytes are not a long-link frame.
    pub const BAD_FRAME: i32 = -1;
    /// The frame's length is over the server's cap.
    pub const OVERSIZE: i32 = -2;
    /// The cmd is not one the server serves.
    pub const UNKNOWN_CMD: i32 = -3;
    /// The body is not the protobuf (or identify body) the cmd needs.
    pub const BAD_BODY: i32 = -4;
    /// newsync or newsendmsg before identify.
    pub const NOT_IDENTIFIED: i32 = -5;
    /// The identify names a user the server does not know.
    pub const UNKNOWN_USER: i32 = -6;
    /// The server is at its connection cap.
    pub const BUSY: i32 = -7;
    /// The store failed; nothing was acknowledged.
    pub const STORE: i32 = -8;
    /// A newsendmsg item names no recipient or an unknown one.
    pub const BAD_RECIPIENT: i32 = -9;
    /// The connection was silent for too long.
    pub const TIMEOUT: i32 = -10;
    /// Not authenticated: a wrong password, or a request that needs a
    /// successful manualauth or autoauth first (a server that enforces
    /// identity).
    pub const NOT_AUTHENTICATED: i32 = -11;
    /// A web login confirmation names no pending login (unknown, expired,
    /// or for another user).
    pub const NO_SUCH_LOGIN: i32 = -12;
    /// A message too large for any sync page to carry: refused, not stored.
    pub const TOO_LARGE: i32 = -13;
    /// The replay mock (`serve --replay`) has no recorded answer for the
    /// request (`--unmatched error`).
    pub const NOT_RECORDED: i32 = -14;
    /// An upload part refused: it overlaps a stored part, goes past the
    /// object's length, names another recipient than the upload's first
    /// part, the user has too many unfinished uploads, or the image does
    /// not decode.
    pub const MEDIA_REFUSED: i32 = -15;
    /// getmsgimg or downloadvoice names no object the user may read.
    pub const NO_SUCH_MEDIA: i32 = -16;
}

/// What a receipt says of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiptKind {
    /// A device of the recipient presented a SyncKey that covers it.
    Delivered = 1,
    /// A device of the recipient reported the chat read.
    Read = 2,
}

impl ReceiptKind {
    pub fn name(self) -> &'static str {
        match self {
            ReceiptKind::Delivered => "delivered",
            ReceiptKind::Read => "read",
        }
    }
}

/// A receipt, as the server sends it to the sender's devices: a status
/// message (MsgType 51) from the recipient whose content is
/// `<msg><receipt kind="delivered|read" msgid="N" user="U" device="D" time="T"/></msg>`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Receipt {
    pub kind: ReceiptKind,
    /// The message it is about.
    pub msg_id: u64,
    /// The recipient and the device.
    pub user: String,
    pub device: String,
    /// Unix seconds.
    pub time: u64,
}

impl Receipt {
    pub fn content(&self) -> String {
        format!(
            "<msg><receipt kind=\"{}\" msgid=\"{}\" user=\"{}\" device=\"{}\" time=\"{}\"/></msg>",
            self.kind.name(),
            self.msg_id,
            self.user,
            self.device,
            self.time
        )
    }

    /// The receipt a status message carries, if it is one.
    pub fn parse(content: &str) -> Option<Receipt> {
        let attr = |name: &str| {
            let key = format!(" {name}=\"");
            let start = content.find(&key)? + key.len();
            let len = content[start..].find('"')?;
            Some(&content[start..start + len])
        };
        if !content.starts_with("<msg><receipt ") {
            return None;
        }
        Some(Receipt {
            kind: match attr("kind")? {
                "delivered" => ReceiptKind::Delivered,
                "read" => ReceiptKind::Read,
                _ => return None,
            },
            msg_id: attr("msgid")?.parse().ok()?,
            user: attr("user")?.to_owned(),
            device: attr("device")?.to_owned(),
            time: attr("time")?.parse().ok()?,
        })
    }
}

/// A message as a client shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    pub from: String,
    pub to: String,
    pub content: String,
    pub msg_id: u64,
    pub client_msg_id: Option<String>,
    /// Its position in the receiver's mailbox, when the server says
    /// (syncscope's `MsgSeq`): what a client presents to confirm up to it.
    #[serde(skip)]
    pub seq: Option<u64>,
    /// MsgType (1 text, 3 image, 34 voice); shown when not text.
    #[serde(default = "text_type", skip_serializing_if = "is_text")]
    pub msg_type: u32,
}

fn text_type() -> u32 {
    crate::net::MSG_TYPE_TEXT
}

fn is_text(t: &u32) -> bool {
    *t == crate::net::MSG_TYPE_TEXT
}

impl AddMsg {
    pub fn to_chat(&self) -> ChatMessage {
        ChatMessage {
            from: string_of(&self.from_user_name).to_owned(),
            to: string_of(&self.to_user_name).to_owned(),
            content: string_of(&self.content).to_owned(),
            msg_id: match self.new_msg_id {
                Some(id) => id as u64,
                None => self.msg_id.unwrap_or_default() as u64,
            },
            client_msg_id: self.client_msg_id.clone(),
            seq: self.msg_seq,
            msg_type: self
                .msg_type
                .map_or(crate::net::MSG_TYPE_TEXT, |t| t as u32),
        }
    }
}

/// syncscope's use of the identify tail (protocol.md section 2 leaves it
/// (unsure)): the usual words `2, 1, 1`, then the device id where the
/// real client puts its network id (printable ASCII, no spaces), then a
/// u32 length and the user name where it puts the network id context.
/// The uin in w1/w2 is the server's uin for the user, or 0 when the
/// client does not know it yet (the name then decides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifyExt {
    pub uin: u32,
    pub user: Option<String>,
    pub device: Option<String>,
    pub synckey: SyncKey,
}

/// Longest device id or user name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// Client version the syncscope client announces.
pub const CLIENT_VERSION: u32 = 0x1800_0000;

impl IdentifyExt {
    /// Checks a device id: 1 to 64 printable ASCII characters, no spaces.
    pub fn valid_device(d: &str) -> bool {
        !d.is_empty() && d.len() <= MAX_NAME_LEN && d.bytes().all(|b| b.is_ascii_graphic())
    }

    /// Checks a user name: 1 to 64 bytes, no whitespace or control
    /// characters.
    pub fn valid_user(u: &str) -> bool {
        !u.is_empty()
            && u.len() <= MAX_NAME_LEN
            && !u.chars().any(|c| c.is_whitespace() || c.is_control())
    }

    pub fn encode(&self) -> Vec<u8> {
        let tail = Tail {
            words: vec![2, 1, 1],
            network_id: self.device.clone(),
            network_id_ctx: self.user.clone(),
            fully_parsed: true,
        }
        .encode();
        Identify {
            uin: self.uin,
            synckey_len: 0,
            synckey: self.synckey.clone(),
            synckey_count: None,
            client_version: CLIENT_VERSION,
            locale: "en_US".into(),
            tail_words: Vec::new(),
            network_id: None,
            network_id_ctx: None,
            tail_fully_parsed: true,
            tail,
        }
        .encode()
    }

    pub fn decode(body: &[u8]) -> Result<IdentifyExt, BodyError> {
        let id = Identify::decode(body)?;
        let device = id.network_id;
        if device.as_deref().is_some_and(|d| !Self::valid_device(d)) {
            return Err(BodyError::IdentifyExt(
                "the device id (tail network id) is longer than 64 characters",
            ));
        }
        let user = id.network_id_ctx;
        if user.as_deref().is_some_and(|u| !Self::valid_user(u)) {
            return Err(BodyError::IdentifyExt(
                "the user name (tail context string) is empty, too long or has spaces",
            ));
        }
        if user.is_none() && id.uin == 0 {
            return Err(BodyError::IdentifyExt(
                "neither a uin nor a user name (tail context string)",
            ));
        }
        Ok(IdentifyExt {
            uin: id.uin,
            user,
            device,
            synckey: id.synckey,
        })
    }
}

/// The identify response body: four u32 words (ret, uin, role: 1 primary,
/// 2 secondary, 0), laid out as an identify [`Tail`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentifyReply {
    pub ret: i32,
    pub uin: u32,
    pub primary: bool,
}

impl IdentifyReply {
    pub fn encode(&self) -> Vec<u8> {
        let role: u32 = if self.primary { 1 } else { 2 };
        Tail {
            words: vec![self.ret as u32, self.uin, role, 0],
            ..Tail::default()
        }
        .encode()
    }

    /// Reads the leading words of the body as [`Tail::parse`] does; None
    /// when fewer than three are present.
    pub fn decode(body: &[u8]) -> Option<IdentifyReply> {
        match Tail::parse(body, RESPONSE_WORDS).words[..] {
            [ret, uin, role, ..] => Some(IdentifyReply {
                ret: ret as i32,
                uin,
                primary: role == 1,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identify_extension_round_trips_through_the_analyzer_codec() {
        let ext = IdentifyExt {
            uin: 0,
            user: Some("alice".into()),
            device: Some("phone-1".into()),
            synckey: SyncKey {
                keys: vec![(1, 1), (2, 9)],
            },
        };
        let body = ext.encode();
        let id = Identify::decode(&body).expect("identify");
        assert_eq!(id.tail_words, [2, 1, 1]);
        assert!(id.tail_fully_parsed);
        assert_eq!(IdentifyExt::decode(&body).expect("ext"), ext);
        let none = IdentifyExt {
            user: None,
            ..ext.clone()
        };
        assert!(IdentifyExt::decode(&none.encode()).is_err());
        let reply = IdentifyReply {
            ret: 0,
            uin: 7,
            primary: false,
        };
        assert_eq!(IdentifyReply::decode(&reply.encode()), Some(reply));
        assert_eq!(IdentifyReply::decode(&[0; 11]), None);
    }
}
