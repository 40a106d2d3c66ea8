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
    let top = first_fields(msg, [field], [])?;
    SyncKey::decode(top.len[0]?).ok().map(|k| k.to_map())
}

/// MsgIds of the AddMsg items of a NewSyncResponse, in wire order: CmdList
/// (field 2) -> CmdItem (field 2, repeated) with CmdId (1) = 5 -> CmdBuf (2:
/// a buffer wrapper `{1: len, 2: bytes}` or the message itself) -> AddMsg,
/// MsgId (field 1) or else NewMsgId (12). Best effort: what does not parse
/// is skipped.
pub fn newsync_response_msg_ids(resp: &[u8]) -> Vec<String> {
    let mut ids = Vec::new();
    let Some(cmdlist) = first_fields(resp, [NewSyncResponse::FIELD_CMD_LIST], [])
        .and_then(|top| shallow(top.len[0]?))
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
    let item = first_fields(item, [CmdItem::FIELD_CMD_BUF], [CmdItem::FIELD_CMD_ID])?;
    if item.varint[0] != Some(super::CMDID_ADDMSG as u64) {
        return None;
    }
    let buf = item.len[0]?;
    let wrapped = first_fields(
        buf,
        [SkBuiltinBuffer::FIELD_BUFFER],
        [SkBuiltinBuffer::FIELD_I_LEN],
    )
    .and_then(|w| {
        let inner = w.len[0]?;
        (w.fields == 2 && w.varint[0] == Some(inner.len() as u64)).then_some(inner)
    });
    let add = first_fields(
        wrapped.unwrap_or(buf),
        [],
        [AddMsg::FIELD_MSG_ID, AddMsg::FIELD_NEW_MSG_ID],
    )?;
    add.varint[0].or(add.varint[1]).map(|id| id.to_string())
}

/// What one pass over a message's top level found: for each number asked
/// for, its first length-delimited value (`len`) or its first varint
/// (`varint`), in the order asked; and how many fields the level has.
struct FirstFields<'a, const L: usize, const V: usize> {
    len: [Option<&'a [u8]>; L],
    varint: [Option<u64>; V],
    fields: usize,
}

/// Reads `msg`'s top level as [`shallow`] does (None when it is not a
/// well-formed message; the *first* field of a number and wire type
/// counts) without collecting its fields: the per-item
/// reading of a NewSync response, which meets every message a capture
/// delivers, allocates nothing.
fn first_fields<'a, const L: usize, const V: usize>(
    msg: &'a [u8],
    lens: [u32; L],
    varints: [u32; V],
) -> Option<FirstFields<'a, L, V>> {
    let mut found = FirstFields {
        len: [None; L],
        varint: [None; V],
        fields: 0,
    };
    for f in WireReader::new(msg) {
        let f = f.ok()?;
        match f.value {
            WireValue::Len(b) => {
                if let Some(i) = lens.iter().position(|&n| n == f.number) {
                    found.len[i].get_or_insert(b);
                }
            }
            WireValue::Varint(v) => {
                if let Some(i) = varints.iter().position(|&n| n == f.number) {
                    found.varint[i].get_or_insert(v);
                }
            }
            _ => {}
        }
        found.fields += 1;
    }
    Some(found)
}

/// Top-level fields of a message, read shallowly (no guessing at nested
/// messages): None when the bytes are not a well-formed message.
fn shallow(msg: &[u8]) -> Option<Vec<WireField<'_>>> {
    WireReader::new(msg).collect::<Result<Vec<_>, _>>().ok()
}
