//! The analyzer's reading of the known messages: what it needs from a
//! captured NewSyncRequest or NewSyncResponse (the SyncKey of the KeyBuf,
//! the MsgIds of the AddMsg items), read with body's [`WireReader`] and the
//! field numbers of the message types (`FIELD_*`), never failing.
//!
//! Why not the prost structs with a merge that keeps what came before an
//! error: captured bodies are read more loosely than the server reads its
//! requests, and these rules are what the analyzer's figures rest on:
//! - each message read is one well-formed protobuf level (or nothing is
//!   taken from it), and the *first* field of a number with the expected
//!   wire type is used: a later duplicate, or an earlier one of another
//!   wire type, is ignored (prost merges duplicates and rejects wrong wire
//!   types, even in fields the analyzer does not need);
//! - a KeyBuf may hold the SyncKey in the `{1: iLen, 2: Buffer}` wrapper or
//!   plain ([`SyncKey::decode`] takes both), and a CmdBuf the AddMsg in its
//!   `SKBuiltinBuffer_t` wrapper or plain;
//! - a MsgId is the varint as sent (a negative int32 shows as its 64-bit
//!   two's complement), falling back to NewMsgId;
//! - a CmdItem or AddMsg that does not parse is skipped; the others still
//!   count (partial results).

use super::{AddMsg, CmdItem, CmdList, NewSyncRequest, NewSyncResponse, SkBuiltinBuffer};
use crate::body::protobuf::{WireField, WireReader, WireValue};
use crate::body::synckey::{KeyMap, SyncKey};

/// The SyncKey of a NewSyncRequest (its KeyBuf, field 3).
pub fn newsync_request_synckey(body: &[u8]) -> Option<KeyMap> {
    keybuf_synckey(body, NewSyncRequest::FIELD_KEY_BUF)
}

/// The SyncKey of a NewSyncResponse (its KeyBuf, field 4).
pub fn newsync_response_synckey(body: &[u8]) -> Option<KeyMap> {
    keybuf_synckey(body, NewSyncResponse::FIELD_KEY_BUF)
}

/// The SyncKey in field `field` (a KeyBuf, wrapped or plain) of a message;
/// None when the message is not well-formed, has no such length-delimited
/// field, or its first one is not a SyncKey.
pub fn keybuf_synckey(msg: &[u8], field: u32) -> Option<KeyMap> {
    let fields = shallow(msg)?;
    SyncKey::decode(len_field(&fields, field)?)
        .ok()
        .map(|k| k.to_map())
}

/// MsgIds of the AddMsg items of a NewSyncResponse, in wire order: CmdList
/// (field 2) -> CmdItem (field 2, repeated) with CmdId (1) = 5 -> CmdBuf (2:
/// a buffer wrapper `{1: len, 2: bytes}` or the message itself) -> AddMsg,
/// MsgId (field 1) or else NewMsgId (12). Best effort: what does not parse
/// is skipped.
pub fn newsync_response_msg_ids(resp: &[u8]) -> Vec<String> {
    let mut ids = Vec::new();
    let Some(cmdlist) = shallow(resp)
        .and_then(|top| len_field(&top, NewSyncResponse::FIELD_CMD_LIST).and_then(shallow))
    else {
        return ids;
    };
    for item in cmdlist.iter().filter(|f| f.number == CmdList::FIELD_LIST) {
        if let WireValue::Len(b) = item.value {
            ids.extend(cmd_item_msg_id(b));
        }
    }
    ids
}

/// The MsgId a CmdItem (the bytes of one CmdList `List` field) delivers:
/// CmdId (1) = 5, CmdBuf (2: a buffer wrapper `{1: len, 2: bytes}` or the
/// message itself) -> AddMsg, MsgId (field 1) or else NewMsgId (12). None
/// when it is another item or does not parse.
pub fn cmd_item_msg_id(item: &[u8]) -> Option<String> {
    let item = shallow(item)?;
    if varint_field(&item, CmdItem::FIELD_CMD_ID) != Some(super::CMDID_ADDMSG as u64) {
        return None;
    }
    let buf = len_field(&item, CmdItem::FIELD_CMD_BUF)?;
    let wrapped = shallow(buf).and_then(|w| {
        let inner = len_field(&w, SkBuiltinBuffer::FIELD_BUFFER)?;
        (w.len() == 2 && varint_field(&w, SkBuiltinBuffer::FIELD_I_LEN) == Some(inner.len() as u64))
            .then_some(inner)
    });
    let add = shallow(wrapped.unwrap_or(buf))?;
    varint_field(&add, AddMsg::FIELD_MSG_ID)
        .or_else(|| varint_field(&add, AddMsg::FIELD_NEW_MSG_ID))
        .map(|id| id.to_string())
}

/// Top-level fields of a message, read shallowly (no guessing at nested
/// messages): None when the bytes are not a well-formed message.
fn shallow(msg: &[u8]) -> Option<Vec<WireField<'_>>> {
    WireReader::new(msg).collect::<Result<Vec<_>, _>>().ok()
}

/// The first length-delimited field `n`.
fn len_field<'a>(fields: &[WireField<'a>], n: u32) -> Option<&'a [u8]> {
    fields.iter().find_map(|f| match (f.number, f.value) {
        (m, WireValue::Len(b)) if m == n => Some(b),
        _ => None,
    })
}

/// The first varint field `n`.
fn varint_field(fields: &[WireField<'_>], n: u32) -> Option<u64> {
    fields.iter().find_map(|f| match (f.number, f.value) {
        (m, WireValue::Varint(v)) if m == n => Some(v),
        _ => None,
    })
}
