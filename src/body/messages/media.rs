//! The media messages of `proto/wechat.proto` (field numbers from
//! betteray/WeChat `WeChat/Proto/mm.proto`): an image uploaded in parts
//! (uploadmsgimg) and read back (getmsgimg), a voice recording uploaded in
//! chunks (uploadvoice) and read back (downloadvoice); and statusnotify,
//! the read report receipts come from.

use prost::Message;

use super::{BaseResponse, SkBuiltinBuffer, SkBuiltinString};

/// cgi uploadmsgimg: one part of an image.
#[derive(Clone, PartialEq, Message)]
pub struct UploadMsgImgRequest {
    #[prost(message, optional, tag = "2")]
    pub client_img_id: Option<SkBuiltinString>,
    #[prost(message, optional, tag = "3")]
    pub from_user_name: Option<SkBuiltinString>,
    #[prost(message, optional, tag = "4")]
    pub to_user_name: Option<SkBuiltinString>,
    #[prost(uint32, optional, tag = "5")]
    pub total_len: Option<u32>,
    #[prost(uint32, optional, tag = "6")]
    pub start_pos: Option<u32>,
    #[prost(uint32, optional, tag = "7")]
    pub data_len: Option<u32>,
    #[prost(message, optional, tag = "8")]
    pub data: Option<SkBuiltinBuffer>,
    #[prost(uint32, optional, tag = "9")]
    pub msg_type: Option<u32>,
}

/// The answer to one part; the ids are 0 until the image is whole.
#[derive(Clone, PartialEq, Message)]
pub struct UploadMsgImgResponse {
    #[prost(message, optional, tag = "1")]
    pub base_response: Option<BaseResponse>,
    #[prost(uint32, optional, tag = "2")]
    pub msg_id: Option<u32>,
    #[prost(message, optional, tag = "3")]
    pub client_img_id: Option<SkBuiltinString>,
    #[prost(message, optional, tag = "4")]
    pub from_user_name: Option<SkBuiltinString>,
    #[prost(message, optional, tag = "5")]
    pub to_user_name: Option<SkBuiltinString>,
    #[prost(uint32, optional, tag = "6")]
    pub total_len: Option<u32>,
    #[prost(uint32, optional, tag = "7")]
    pub start_pos: Option<u32>,
    #[prost(uint32, optional, tag = "8")]
    pub data_len: Option<u32>,
    #[prost(uint32, optional, tag = "9")]
    pub create_time: Option<u32>,
    #[prost(uint64, optional, tag = "10")]
    pub new_msg_id: Option<u64>,
    /// syncscope extension: the thumbnail, in the answer that completed
    /// the image.
    #[prost(bytes = "vec", optional, tag = "100")]
    pub thumb: Option<Vec<u8>>,
}

/// cgi getmsgimg: a range of a stored image (CompressType 1: of its
/// thumbnail).
#[derive(Clone, PartialEq, Message)]
pub struct GetMsgImgRequest {
    #[prost(uint32, optional, tag = "2")]
    pub msg_id: Option<u32>,
    #[prost(message, optional, tag = "3")]
    pub from_user_name: Option<SkBuiltinString>,
    #[prost(message, optional, tag = "4")]
    pub to_user_name: Option<SkBuiltinString>,
    #[prost(uint32, optional, tag = "5")]
    pub total_len: Option<u32>,
    #[prost(uint32, optional, tag = "6")]
    pub start_pos: Option<u32>,
    #[prost(uint32, optional, tag = "7")]
    pub data_len: Option<u32>,
    #[prost(uint32, optional, tag = "8")]
    pub compress_type: Option<u32>,
    #[prost(uint64, optional, tag = "9")]
    pub new_msg_id: Option<u64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct GetMsgImgResponse {
    #[prost(message, optional, tag = "1")]
    pub base_response: Option<BaseResponse>,
    #[prost(uint32, optional, tag = "2")]
    pub msg_id: Option<u32>,
    #[prost(message, optional, tag = "3")]
    pub from_user_name: Option<SkBuiltinString>,
    #[prost(message, optional, tag = "4")]
    pub to_user_name: Option<SkBuiltinString>,
    #[prost(uint32, optional, tag = "5")]
    pub total_len: Option<u32>,
    #[prost(uint32, optional, tag = "6")]
    pub start_pos: Option<u32>,
    #[prost(uint32, optional, tag = "7")]
    pub data_len: Option<u32>,
    #[prost(message, optional, tag = "8")]
    pub data: Option<SkBuiltinBuffer>,
    #[prost(uint64, optional, tag = "9")]
    pub new_msg_id: Option<u64>,
}

/// cgi uploadvoice: one chunk of a recording; EndFlag 1 on the last.
#[derive(Clone, PartialEq, Message)]
pub struct UploadVoiceRequest {
    #[prost(string, optional, tag = "1")]
    pub from_user_name: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub to_user_name: Option<String>,
    #[prost(uint32, optional, tag = "3")]
    pub offset: Option<u32>,
    #[prost(uint32, optional, tag = "4")]
    pub length: Option<u32>,
    #[prost(string, optional, tag = "5")]
    pub client_msg_id: Option<String>,
    #[prost(uint32, optional, tag = "6")]
    pub msg_id: Option<u32>,
    /// The recording's length in milliseconds.
    #[prost(uint32, optional, tag = "7")]
    pub voice_length: Option<u32>,
    #[prost(message, optional, tag = "8")]
    pub data: Option<SkBuiltinBuffer>,
    #[prost(uint32, optional, tag = "9")]
    pub end_flag: Option<u32>,
}

#[derive(Clone, PartialEq, Message)]
pub struct UploadVoiceResponse {
    #[prost(string, optional, tag = "1")]
    pub from_user_name: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub to_user_name: Option<String>,
    #[prost(uint32, optional, tag = "3")]
    pub offset: Option<u32>,
    #[prost(uint32, optional, tag = "4")]
    pub length: Option<u32>,
    #[prost(uint32, optional, tag = "5")]
    pub create_time: Option<u32>,
    #[prost(string, optional, tag = "6")]
    pub client_msg_id: Option<String>,
    #[prost(uint32, optional, tag = "7")]
    pub msg_id: Option<u32>,
    #[prost(uint32, optional, tag = "8")]
    pub voice_length: Option<u32>,
    #[prost(uint32, optional, tag = "9")]
    pub end_flag: Option<u32>,
    #[prost(message, optional, tag = "10")]
    pub base_response: Option<BaseResponse>,
    #[prost(uint64, optional, tag = "12")]
    pub new_msg_id: Option<u64>,
}

/// cgi downloadvoice: a range of a stored recording.
#[derive(Clone, PartialEq, Message)]
pub struct DownloadVoiceRequest {
    #[prost(uint32, optional, tag = "1")]
    pub msg_id: Option<u32>,
    #[prost(uint32, optional, tag = "2")]
    pub offset: Option<u32>,
    #[prost(uint32, optional, tag = "3")]
    pub length: Option<u32>,
    #[prost(string, optional, tag = "4")]
    pub client_msg_id: Option<String>,
    #[prost(uint64, optional, tag = "6")]
    pub new_msg_id: Option<u64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct DownloadVoiceResponse {
    #[prost(uint32, optional, tag = "1")]
    pub msg_id: Option<u32>,
    #[prost(uint32, optional, tag = "2")]
    pub offset: Option<u32>,
    #[prost(uint32, optional, tag = "3")]
    pub length: Option<u32>,
    #[prost(uint32, optional, tag = "5")]
    pub voice_length: Option<u32>,
    #[prost(string, optional, tag = "6")]
    pub client_msg_id: Option<String>,
    #[prost(message, optional, tag = "7")]
    pub data: Option<SkBuiltinBuffer>,
    #[prost(uint32, optional, tag = "8")]
    pub end_flag: Option<u32>,
    #[prost(message, optional, tag = "9")]
    pub base_response: Option<BaseResponse>,
    #[prost(uint64, optional, tag = "11")]
    pub new_msg_id: Option<u64>,
}

/// cgi statusnotify: Code 1 reports the chat with ToUserName read;
/// syncscope's MsgId (field 100) names the newest message read.
#[derive(Clone, PartialEq, Message)]
pub struct StatusNotifyRequest {
    #[prost(uint32, optional, tag = "2")]
    pub code: Option<u32>,
    #[prost(string, optional, tag = "3")]
    pub from_user_name: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub to_user_name: Option<String>,
    #[prost(string, optional, tag = "5")]
    pub client_msg_id: Option<String>,
    #[prost(uint64, optional, tag = "100")]
    pub msg_id: Option<u64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct StatusNotifyResponse {
    #[prost(message, optional, tag = "1")]
    pub base_response: Option<BaseResponse>,
    #[prost(uint32, optional, tag = "2")]
    pub msg_id: Option<u32>,
    #[prost(uint64, optional, tag = "3")]
    pub new_msg_id: Option<u64>,
}
