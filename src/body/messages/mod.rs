//! The known long-link messages, one set of types for the server, the
//! clients and the analyzer: the prost structs below as declared in
//! `proto/wechat.proto` (package `micromsg`; field numbers from
//! protocol.md section 3 and the public reverse-engineering work it names).
//! A test checks that these structs and the `.proto` file agree.
//!
//! Strict decoding ([`decode`]) is for the server and the clients: a body
//! that is not the message is an error. The analyzer reads captured bodies
//! with [`lenient`]: the same messages and field numbers (the `FIELD_*`
//! constants on the types), read without failing on truncated or odd bodies
//! (partial results, see that module for the exact rules).
//!
//! The SyncKey inside a KeyBuf is encoded and decoded by
//! [`crate::body::synckey::SyncKey`], the identify body by
//! [`crate::body::identify::Identify`]: one codec each for the analyzer and
//! the server.

use prost::Message;

use crate::body::identify::IdentifyError;
use crate::body::synckey::{SyncKey, SyncKeyError};

pub mod lenient;
mod media;
pub mod scan;

pub use media::{
    DownloadVoiceRequest, DownloadVoiceResponse, GetMsgImgRequest, GetMsgImgResponse,
    StatusNotifyRequest, StatusNotifyResponse, UploadMsgImgRequest, UploadMsgImgResponse,
    UploadVoiceRequest, UploadVoiceResponse,
};
#[cfg(test)]
pub(crate) mod tests;

/// CmdId of an AddMsg item in a CmdList.
pub const CMDID_ADDMSG: i32 = 5;

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

/// The string of an optional `SKBuiltinString_t` (empty when absent).
pub fn string_of(s: &Option<SkBuiltinString>) -> &str {
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
    /// syncscope extension: the message's position in the receiver's
    /// mailbox, so a client that stops inside a page can confirm up to it.
    #[prost(uint64, optional, tag = "101")]
    pub msg_seq: Option<u64>,
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
    /// The user's password (a server that enforces identity).
    #[prost(string, optional, tag = "4")]
    pub password: Option<String>,
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

/// syncscope's long-link cmd 900001: a device confirms a pending web login
/// (see proto/wechat.proto).
#[derive(Clone, PartialEq, Message)]
pub struct WebLoginConfirmRequest {
    #[prost(string, optional, tag = "1")]
    pub uuid: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct WebLoginConfirmResponse {
    #[prost(message, optional, tag = "1")]
    pub base_response: Option<BaseResponse>,
}

// Field numbers [`lenient`] reads, as in the prost tags above (a test
// checks that they agree).

impl SkBuiltinBuffer {
    pub const FIELD_I_LEN: u32 = 1;
    pub const FIELD_BUFFER: u32 = 2;
}

impl CmdList {
    pub const FIELD_LIST: u32 = 2;
}

impl CmdItem {
    pub const FIELD_CMD_ID: u32 = 1;
    pub const FIELD_CMD_BUF: u32 = 2;
}

impl NewSyncRequest {
    pub const FIELD_KEY_BUF: u32 = 3;
}

impl NewSyncResponse {
    pub const FIELD_CMD_LIST: u32 = 2;
    pub const FIELD_KEY_BUF: u32 = 4;
}

impl AddMsg {
    pub const FIELD_MSG_ID: u32 = 1;
    pub const FIELD_NEW_MSG_ID: u32 = 12;
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

impl MicroMsgRequestNew {
    pub fn to(&self) -> &str {
        string_of(&self.to_user_name)
    }
}

/// The AddMsg items of a newsync response (other CmdIds are skipped).
pub fn add_msgs(resp: &NewSyncResponse) -> Result<Vec<AddMsg>, BodyError> {
    let mut out = Vec::new();
    for item in resp.cmd_list.iter().flat_map(|l| &l.list) {
        if item.cmd_id == Some(CMDID_ADDMSG) {
            let buf = item.cmd_buf.as_ref().map(|b| b.bytes()).unwrap_or_default();
            out.push(decode("AddMsg", buf)?);
        }
    }
    Ok(out)
}
