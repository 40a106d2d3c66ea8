//! The long-link bodies the server and client exchange, as declared in
//! `proto/wechat.proto` (package `micromsg`; field numbers from
//! protocol.md section 3 and the public reverse-engineering work it names).
//! A test checks that these structs and the `.proto` file agree.
//!
//! The SyncKey inside a KeyBuf is encoded and decoded by
//! [`crate::body::synckey::SyncKey`], the identify body by
//! [`crate::body::identify::Identify`]: one codec each for the analyzer and
//! the server.

use prost::Message;

use crate::body::identify::{Identify, IdentifyError};
use crate::body::synckey::{SyncKey, SyncKeyError};

/// `SKBuiltinBuffer_t`: a length-prefixed buffer (KeyBuf, CmdBuf).
#[derive(Clone, PartialEq, Message)]
pub struct SkBuiltinBuffer {
    #[prost(uint32, optional, tag = "1")]
    pub i_len: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub buffer: Option<Vec<u8>>,
}

impl SkBuiltinBuffer {
    pub fn new(bytes: Vec<u8>) -> Self {
        SkBuiltinBuffer {
            i_len: Some(bytes.len() as u32),
            buffer: Some(bytes),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        self.buffer.as_deref().unwrap_or_default()
    }
}

/// `SKBuiltinString_t`.
#[derive(Clone, PartialEq, Message)]
pub struct SkBuiltinString {
    #[prost(string, optional, tag = "1")]
    pub string: Option<String>,
}

impl SkBuiltinString {
    pub fn new(s: impl Into<String>) -> Self {
        SkBuiltinString {
            string: Some(s.into()),
        }
    }
}

fn string_of(s: &Option<SkBuiltinString>) -> &str {
    s.as_ref()
        .and_then(|s| s.string.as_deref())
        .unwrap_or_default()
}

#[derive(Clone, PartialEq, Message)]
pub struct BaseResponse {
    #[prost(int32, optional, tag = "1")]
    pub ret: Option<i32>,
    #[prost(message, optional, tag = "2")]
    pub err_msg: Option<SkBuiltinString>,
}

impl BaseResponse {
    pub fn error(ret: i32, msg: impl Into<String>) -> Self {
        BaseResponse {
            ret: Some(ret),
            err_msg: Some(SkBuiltinString::new(msg)),
        }
    }

    pub fn message(&self) -> &str {
        string_of(&self.err_msg)
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct CmdList {
    #[prost(uint32, optional, tag = "1")]
    pub count: Option<u32>,
    #[prost(message, repeated, tag = "2")]
    pub list: Vec<CmdItem>,
}

#[derive(Clone, PartialEq, Message)]
pub struct CmdItem {
    #[prost(int32, optional, tag = "1")]
    pub cmd_id: Option<i32>,
    #[prost(message, optional, tag = "2")]
    pub cmd_buf: Option<SkBuiltinBuffer>,
}

/// cgi newsync (long-link cmd 121).
#[derive(Clone, PartialEq, Message)]
pub struct NewSyncRequest {
    #[prost(message, optional, tag = "1")]
    pub oplog: Option<CmdList>,
    /// 0x1 profile, 0x2 messages, 0x4 contacts; default 7.
    #[prost(uint32, optional, tag = "2")]
    pub selector: Option<u32>,
    #[prost(message, optional, tag = "3")]
    pub key_buf: Option<SkBuiltinBuffer>,
    #[prost(uint32, optional, tag = "4")]
    pub scene: Option<u32>,
    #[prost(string, optional, tag = "5")]
    pub device_type: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NewSyncResponse {
    #[prost(int32, optional, tag = "1")]
    pub ret: Option<i32>,
    #[prost(message, optional, tag = "2")]
    pub cmd_list: Option<CmdList>,
    #[prost(uint32, optional, tag = "3")]
    pub continue_flag: Option<u32>,
    #[prost(message, optional, tag = "4")]
    pub key_buf: Option<SkBuiltinBuffer>,
    #[prost(uint32, optional, tag = "5")]
    pub status: Option<u32>,
}

/// CmdId 5: a chat message.
#[derive(Clone, PartialEq, Message)]
pub struct AddMsg {
    #[prost(int32, optional, tag = "1")]
    pub msg_id: Option<i32>,
    #[prost(message, optional, tag = "2")]
    pub from_user_name: Option<SkBuiltinString>,
    #[prost(message, optional, tag = "3")]
    pub to_user_name: Option<SkBuiltinString>,
    #[prost(int32, optional, tag = "4")]
    pub msg_type: Option<i32>,
    #[prost(message, optional, tag = "5")]
    pub content: Option<SkBuiltinString>,
    #[prost(uint32, optional, tag = "9")]
    pub create_time: Option<u32>,
    #[prost(int64, optional, tag = "12")]
    pub new_msg_id: Option<i64>,
    /// syncscope extension: the sender's ClientMsgId, so every device can
    /// tell a resend from a new message.
    #[prost(string, optional, tag = "100")]
    pub client_msg_id: Option<String>,
}

/// cgi newsendmsg (long-link cmd 237).
#[derive(Clone, PartialEq, Message)]
pub struct NewSendMsgRequest {
    #[prost(uint32, optional, tag = "1")]
    pub count: Option<u32>,
    #[prost(message, repeated, tag = "2")]
    pub list: Vec<MicroMsgRequestNew>,
}

#[derive(Clone, PartialEq, Message)]
pub struct MicroMsgRequestNew {
    #[prost(message, optional, tag = "1")]
    pub to_user_name: Option<SkBuiltinString>,
    #[prost(string, optional, tag = "2")]
    pub content: Option<String>,
    #[prost(uint32, optional, tag = "3")]
    pub msg_type: Option<u32>,
    #[prost(uint32, optional, tag = "4")]
    pub create_time: Option<u32>,
    /// uint32 on the real service; declared uint64 (same varint on the
    /// wire) so that random ids do not collide.
    #[prost(uint64, optional, tag = "5")]
    pub client_msg_id: Option<u64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NewSendMsgResponse {
    #[prost(message, optional, tag = "1")]
    pub base_response: Option<BaseResponse>,
    #[prost(uint32, optional, tag = "2")]
    pub count: Option<u32>,
    #[prost(message, repeated, tag = "3")]
    pub list: Vec<MicroMsgResponseNew>,
}

#[derive(Clone, PartialEq, Message)]
pub struct MicroMsgResponseNew {
    #[prost(int32, optional, tag = "1")]
    pub ret: Option<i32>,
    #[prost(message, optional, tag = "2")]
    pub to_user_name: Option<SkBuiltinString>,
    #[prost(uint32, optional, tag = "3")]
    pub msg_id: Option<u32>,
    #[prost(uint64, optional, tag = "4")]
    pub client_msg_id: Option<u64>,
    #[prost(uint32, optional, tag = "5")]
    pub create_time: Option<u32>,
    #[prost(uint32, optional, tag = "6")]
    pub server_time: Option<u32>,
    #[prost(uint32, optional, tag = "7")]
    pub msg_type: Option<u32>,
    #[prost(uint64, optional, tag = "8")]
    pub new_msg_id: Option<u64>,
}

/// cgi manualauth (long-link cmd 253), in clear: see proto/wechat.proto.
#[derive(Clone, PartialEq, Message)]
pub struct ManualAuthRequest {
    #[prost(message, optional, tag = "1")]
    pub user_name: Option<SkBuiltinString>,
    #[prost(string, optional, tag = "2")]
    pub device_id: Option<String>,
    #[prost(uint32, optional, tag = "3")]
    pub client_version: Option<u32>,
}

impl ManualAuthRequest {
    pub fn user(&self) -> &str {
        string_of(&self.user_name)
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct ManualAuthResponse {
    #[prost(message, optional, tag = "1")]
    pub base_response: Option<BaseResponse>,
    #[prost(uint32, optional, tag = "2")]
    pub uin: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub auto_auth_key: Option<Vec<u8>>,
}

/// cgi autoauth (long-link cmd 254).
#[derive(Clone, PartialEq, Message)]
pub struct AutoAuthRequest {
    #[prost(uint32, optional, tag = "1")]
    pub uin: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub auto_auth_key: Option<Vec<u8>>,
    #[prost(string, optional, tag = "3")]
    pub device_id: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AutoAuthResponse {
    #[prost(message, optional, tag = "1")]
    pub base_response: Option<BaseResponse>,
    #[prost(uint32, optional, tag = "2")]
    pub uin: Option<u32>,
}

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
}

/// A malformed body, for the error frame and the log.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("{what}: {source}")]
    Protobuf {
        what: &'static str,
        source: prost::DecodeError,
    },
    #[error("KeyBuf of {what}: {source}")]
    SyncKey {
        what: &'static str,
        source: SyncKeyError,
    },
    #[error(transparent)]
    Identify(#[from] IdentifyError),
    #[error("identify: {0}")]
    IdentifyExt(&'static str),
}

/// Decodes a protobuf body, naming the message in the error.
pub fn decode<M: Message + Default>(what: &'static str, body: &[u8]) -> Result<M, BodyError> {
    M::decode(body).map_err(|source| BodyError::Protobuf { what, source })
}

/// The SyncKey in a KeyBuf (an absent or empty KeyBuf is the empty key).
pub fn synckey_of(what: &'static str, kb: &Option<SkBuiltinBuffer>) -> Result<SyncKey, BodyError> {
    match kb {
        Some(kb) if !kb.bytes().is_empty() => {
            SyncKey::decode(kb.bytes()).map_err(|source| BodyError::SyncKey { what, source })
        }
        _ => Ok(SyncKey::default()),
    }
}

/// The KeyBuf for a SyncKey.
pub fn keybuf(sk: &SyncKey) -> SkBuiltinBuffer {
    SkBuiltinBuffer::new(sk.encode())
}

/// A message as a client shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    pub from: String,
    pub to: String,
    pub content: String,
    pub msg_id: u64,
    pub client_msg_id: Option<String>,
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
        }
    }
}

impl MicroMsgRequestNew {
    pub fn to(&self) -> &str {
        string_of(&self.to_user_name)
    }
}

/// The AddMsg items of a newsync response (other CmdIds are skipped).
pub fn add_msgs(resp: &NewSyncResponse) -> Result<Vec<AddMsg>, BodyError> {
    let mut out = Vec::new();
    for item in resp.cmd_list.iter().flat_map(|l| &l.list) {
        if item.cmd_id == Some(crate::net::CMDID_ADDMSG) {
            let buf = item.cmd_buf.as_ref().map(|b| b.bytes()).unwrap_or_default();
            out.push(decode("AddMsg", buf)?);
        }
    }
    Ok(out)
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
        let mut tail = Vec::new();
        for w in [2u32, 1, 1] {
            tail.extend_from_slice(&w.to_be_bytes());
        }
        if let Some(d) = &self.device {
            tail.extend_from_slice(d.as_bytes());
        }
        if let Some(u) = &self.user {
            tail.extend_from_slice(&(u.len() as u32).to_be_bytes());
            tail.extend_from_slice(u.as_bytes());
        }
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

/// The identify response body: four u32 words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentifyReply {
    pub ret: i32,
    pub uin: u32,
    pub primary: bool,
}

impl IdentifyReply {
    pub fn encode(&self) -> Vec<u8> {
        let role: u32 = if self.primary { 1 } else { 2 };
        [self.ret as u32, self.uin, role, 0]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect()
    }

    pub fn decode(body: &[u8]) -> Option<IdentifyReply> {
        let w = |i: usize| -> Option<u32> {
            let b = body.get(i * 4..i * 4 + 4)?;
            Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        Some(IdentifyReply {
            ret: w(0)? as i32,
            uin: w(1)?,
            primary: w(2)? == 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::protobuf::Schemas;

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

    /// The structs here and proto/wechat.proto must describe the same bytes.
    #[test]
    fn structs_agree_with_the_proto_file() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("proto/wechat.proto");
        let schemas = Schemas::compile(&[path], &[]).expect("proto/wechat.proto compiles");
        let add = AddMsg {
            msg_id: Some(3),
            from_user_name: Some(SkBuiltinString::new("alice")),
            to_user_name: Some(SkBuiltinString::new("bob")),
            msg_type: Some(1),
            content: Some(SkBuiltinString::new("hi")),
            create_time: Some(1_700_000_000),
            new_msg_id: Some(3),
            client_msg_id: Some("42".into()),
        };
        let send = NewSendMsgRequest {
            count: Some(1),
            list: vec![MicroMsgRequestNew {
                to_user_name: Some(SkBuiltinString::new("bob")),
                content: Some("hi".into()),
                msg_type: Some(1),
                create_time: Some(1),
                client_msg_id: Some(u64::MAX),
            }],
        };
        let sent = NewSendMsgResponse {
            base_response: Some(BaseResponse::error(0, "")),
            count: Some(1),
            list: vec![MicroMsgResponseNew {
                ret: Some(0),
                to_user_name: Some(SkBuiltinString::new("bob")),
                msg_id: Some(3),
                client_msg_id: Some(u64::MAX),
                create_time: Some(1),
                server_time: Some(2),
                msg_type: Some(1),
                new_msg_id: Some(3),
            }],
        };
        let sync = NewSyncResponse {
            ret: Some(0),
            cmd_list: Some(CmdList {
                count: Some(1),
                list: vec![CmdItem {
                    cmd_id: Some(5),
                    cmd_buf: Some(SkBuiltinBuffer::new(add.encode_to_vec())),
                }],
            }),
            continue_flag: Some(1),
            key_buf: Some(keybuf(&SyncKey { keys: vec![(2, 5)] })),
            status: Some(0),
        };
        let req = NewSyncRequest {
            oplog: None,
            selector: Some(7),
            key_buf: Some(keybuf(&SyncKey::default())),
            scene: Some(7),
            device_type: Some("syncscope".into()),
        };
        let check = |name: &str, bytes: Vec<u8>, expect: serde_json::Value| {
            let msg = schemas
                .message(&format!("micromsg.{name}"))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let dm = prost_reflect::DynamicMessage::decode(msg, bytes.as_slice())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                dm.unknown_fields().next().is_none(),
                "{name} has fields the .proto does not declare"
            );
            let json = serde_json::to_value(&dm).expect("json");
            for (k, v) in expect.as_object().expect("object") {
                assert_eq!(&json[k], v, "{name}.{k} in {json}");
            }
        };
        check(
            "AddMsg",
            add.encode_to_vec(),
            serde_json::json!({"MsgId": 3, "ClientMsgId": "42", "NewMsgId": "3", "CreateTime": 1_700_000_000}),
        );
        check(
            "NewSendMsgRequest",
            send.encode_to_vec(),
            serde_json::json!({"Count": 1}),
        );
        check(
            "NewSendMsgResponse",
            sent.encode_to_vec(),
            serde_json::json!({"Count": 1}),
        );
        check(
            "NewSyncResponse",
            sync.encode_to_vec(),
            serde_json::json!({"Ret": 0, "ContinueFlag": 1}),
        );
        check(
            "NewSyncRequest",
            req.encode_to_vec(),
            serde_json::json!({"Selector": 7, "DeviceType": "syncscope"}),
        );
        check(
            "BaseResponse",
            BaseResponse::error(-4, "bad").encode_to_vec(),
            serde_json::json!({"Ret": -4}),
        );
        // Field names of nested items too.
        let dm = prost_reflect::DynamicMessage::decode(
            schemas.message("micromsg.NewSendMsgRequest").expect("msg"),
            send.encode_to_vec().as_slice(),
        )
        .expect("decode");
        let json = serde_json::to_value(&dm).expect("json");
        assert_eq!(json["List"][0]["ClientMsgId"], u64::MAX.to_string());
        assert_eq!(json["List"][0]["ToUserName"]["String"], "bob");
        let dm = prost_reflect::DynamicMessage::decode(
            schemas.message("micromsg.NewSendMsgResponse").expect("msg"),
            sent.encode_to_vec().as_slice(),
        )
        .expect("decode");
        let json = serde_json::to_value(&dm).expect("json");
        assert_eq!(json["List"][0]["ServerTime"], 2);
        assert_eq!(json["List"][0]["NewMsgId"], "3");
        assert_eq!(json["BaseResponse"]["ErrMsg"]["String"], "");
        // The auth messages.
        let json_of = |name: &str, bytes: Vec<u8>| {
            let dm = prost_reflect::DynamicMessage::decode(
                schemas.message(name).expect("msg"),
                bytes.as_slice(),
            )
            .expect("decode");
            serde_json::to_value(&dm).expect("json")
        };
        let manual = ManualAuthRequest {
            user_name: Some(SkBuiltinString::new("alice")),
            device_id: Some("phone".into()),
            client_version: Some(CLIENT_VERSION),
        };
        let j = json_of("micromsg.ManualAuthRequest", manual.encode_to_vec());
        assert_eq!(j["UserName"]["String"], "alice");
        assert_eq!(j["DeviceId"], "phone");
        assert_eq!(j["ClientVersion"], CLIENT_VERSION);
        let answer = ManualAuthResponse {
            base_response: Some(BaseResponse::error(0, "")),
            uin: Some(7),
            auto_auth_key: Some(vec![1, 2, 3]),
        };
        let j = json_of("micromsg.ManualAuthResponse", answer.encode_to_vec());
        assert_eq!(
            (j["Uin"].clone(), j["AutoAuthKey"].clone()),
            (7.into(), "AQID".into())
        );
        let auto = AutoAuthRequest {
            uin: Some(7),
            auto_auth_key: Some(vec![1, 2, 3]),
            device_id: Some("phone".into()),
        };
        let j = json_of("micromsg.AutoAuthRequest", auto.encode_to_vec());
        assert_eq!(
            (j["Uin"].clone(), j["DeviceId"].clone()),
            (7.into(), "phone".into())
        );
        let j = json_of(
            "micromsg.AutoAuthResponse",
            AutoAuthResponse {
                base_response: Some(BaseResponse::error(-6, "no")),
                uin: Some(0),
            }
            .encode_to_vec(),
        );
        assert_eq!(j["BaseResponse"]["Ret"], -6);
    }
}
