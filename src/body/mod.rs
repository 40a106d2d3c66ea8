//! Body decoding: protobuf with a user's schema (protox + prost-reflect) or
//! schema-less, and the identify (cmd 205) body with its SyncKey.

pub mod identify;
pub mod protobuf;
pub mod synckey;
