//! Body decoding: protobuf with a user's schema (protox + prost-reflect) or
//! schema-less, the identify (cmd 205) body with its SyncKey, and the known
//! long-link messages (NewSync, CmdList, AddMsg, NewSendMsg, auth).

pub mod identify;
pub mod messages;
pub mod protobuf;
pub mod synckey;
