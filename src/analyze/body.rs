//! Frame body decoding for the analyzer: the identify body, business
//! packets, a user's schema when the profile maps the cmd, otherwise
//! schema-less protobuf, otherwise hex with an entropy figure.

use serde_json::Value;

use super::{KeyMap, Options};
use crate::body::identify::Identify;
use crate::body::protobuf::{decode_raw, to_json, Blob, WireField, WireReader, WireValue};
use crate::proto::longlink::{Header, SEQ_IDENTIFY};

/// A decoded body and what trackers need from it.
pub struct Decoded {
    pub value: Value,
    pub synckey: Option<KeyMap>,
    pub synckey_source: Option<&'static str>,
    pub business: Option<Value>,
    /// The user, when the body names one (identify, business header).
    pub uin: Option<u64>,
    /// The device, when the body names one (the identify's network-id
    /// string: the device id on syncscope's server).
    pub device: Option<String>,
    /// MsgIds of the AddMsg items a newsync response delivers.
    pub msg_ids: Vec<String>,
}

fn blob(body: &[u8]) -> Value {
    serde_json::to_value(Blob::new(body)).unwrap_or(Value::Null)
}

/// Decodes a long-link frame body. Without `want_value` only what the
/// trackers need (SyncKeys, uin, MsgIds, the business summary) is worked out.
pub fn decode(opts: &Options, h: &Header, body: &[u8], want_value: bool) -> Decoded {
    let mut d = Decoded {
        value: Value::Null,
        synckey: None,
        synckey_source: None,
        business: None,
        uin: None,
        device: None,
        msg_ids: Vec::new(),
    };
    if h.cmd == 205 && h.seq == SEQ_IDENTIFY {
        if let Ok(id) = Identify::decode(body) {
            d.synckey = Some(id.synckey.to_map());
            d.synckey_source = Some("longlink_identify");
            d.uin = Some(id.uin as u64);
            d.device = id.network_id.clone().filter(|n| !n.is_empty());
            d.value = serde_json::json!({
                "identify": {
                    "uin": id.uin,
                    "synckey": id.synckey.to_map(),
                    "synckey_count": id.synckey_count,
                    "client_version": format!("0x{:08x}", id.client_version),
                    "locale": id.locale,
                    "network_id": id.network_id,
                    "network_id_ctx": id.network_id_ctx,
                }
            });
            return d;
        }
    }
    if body.first() == Some(&0xBF) {
        if let Some(b) = business(opts, body) {
            d.value = b.body;
            d.business = Some(b.summary);
            d.uin = b.uin;
            d.msg_ids = b.msg_ids;
            if let Some((source, keys)) = b.synckey {
                d.synckey = Some(keys);
                d.synckey_source = Some(source);
            }
            return d;
        }
    }
    // A plain-protobuf newsync (the reference server's long link, old
    // clients): the request's KeyBuf is field 3, the response's field 4.
    if h.request_cmd() == 121 {
        let response = h.cmd != 121;
        let (field, source) = if response {
            (4, "newsync_response")
        } else {
            (3, "newsync_request")
        };
        if let Some(k) = keybuf(body, field) {
            d.synckey = Some(k);
            d.synckey_source = Some(source);
            if response {
                d.msg_ids = add_msg_ids(body);
            }
        }
    }
    if !want_value {
        return d;
    }
    if let (Some(name), Some(schemas)) = (opts.registry.message(h.cmd), &opts.schemas) {
        match schemas.decode(name, body) {
            Ok(v) => {
                d.value = v;
                return d;
            }
            Err(e) => {
                d.value =
                    serde_json::json!({ "schema_error": e.to_string(), "raw": raw_or_blob(body) });
                return d;
            }
        }
    }
    d.value = raw_or_blob(body);
    d
}

/// Schema-less protobuf when the bytes parse as a message, else hex.
pub fn raw_or_blob(body: &[u8]) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    match decode_raw(body) {
        Ok(fields) if !fields.is_empty() => serde_json::json!({ "protobuf": to_json(&fields) }),
        _ => blob(body),
    }
}

/// A business packet: header fields, the decrypted protobuf when a key
/// opens it, and a SyncKey when it is a newsync.
pub struct Business {
    /// The `business` object of a frame record.
    pub summary: Value,
    /// The body to show: decoded plaintext, or the encrypted bytes.
    pub body: Value,
    pub synckey: Option<(&'static str, KeyMap)>,
    /// The header's uin (0 in responses: None).
    pub uin: Option<u64>,
    /// MsgIds of the AddMsg items of a newsync response.
    pub msg_ids: Vec<String>,
}

/// Parses a `0xBF` business packet and, with a key log, decrypts it.
pub fn business(opts: &Options, packet: &[u8]) -> Option<Business> {
    use crate::proto::business::{self, BusinessHeader, Outcome};
    use sha2::{Digest, Sha256};

    let (h, body_off) = BusinessHeader::parse(packet).ok()?;
    let body = packet.get(body_off..).unwrap_or(&[]);
    let outcome = match &opts.keylog {
        Some(keys) => business::decode_body(&h, body, keys),
        None => Outcome::NoKey,
    };
    let mut summary = serde_json::json!({
        "cgi": h.cgi,
        "cgi_name": business::cgi_name(h.cgi),
        "algo": h.algo.0,
        "compress": h.compress.0,
        "uin": h.uin,
        "decrypted": false,
    });
    let mut out = Business {
        summary: Value::Null,
        body: blob(body),
        synckey: None,
        uin: Some(h.uin as u64).filter(|&u| u != 0),
        msg_ids: Vec::new(),
    };
    match outcome {
        Outcome::Decoded(d) => {
            summary["decrypted"] = true.into();
            summary["plaintext_len"] = d.plaintext.len().into();
            summary["plaintext_sha256"] = hex::encode(Sha256::digest(&d.plaintext)).into();
            summary["keylog_lines"] = serde_json::json!(d.key_lines);
            out.body = raw_or_blob(&d.plaintext);
            if h.cgi == 138 {
                // newsync: the request's KeyBuf is field 3, the response's field 4.
                let (field, source) = if h.is_response() {
                    (4, "newsync_response")
                } else {
                    (3, "newsync_request")
                };
                out.synckey = keybuf(&d.plaintext, field).map(|k| (source, k));
                if h.is_response() {
                    out.msg_ids = add_msg_ids(&d.plaintext);
                }
            }
        }
        Outcome::Failed(e) => summary["error"] = e.to_string().into(),
        Outcome::NoKey => {}
    }
    out.summary = summary;
    Some(out)
}

/// Top-level fields of a message, read shallowly (no guessing at nested
/// messages): None when the bytes are not a well-formed message.
fn shallow(msg: &[u8]) -> Option<Vec<WireField<'_>>> {
    WireReader::new(msg).collect::<Result<Vec<_>, _>>().ok()
}

fn len_field<'a>(fields: &[WireField<'a>], n: u32) -> Option<&'a [u8]> {
    fields.iter().find_map(|f| match (f.number, f.value) {
        (m, WireValue::Len(b)) if m == n => Some(b),
        _ => None,
    })
}

fn varint_field(fields: &[WireField<'_>], n: u32) -> Option<u64> {
    fields.iter().find_map(|f| match (f.number, f.value) {
        (m, WireValue::Varint(v)) if m == n => Some(v),
        _ => None,
    })
}

/// The SyncKey in field `n` (a KeyBuf) of a message.
pub fn keybuf(msg: &[u8], n: u32) -> Option<KeyMap> {
    use crate::body::synckey::SyncKey;
    let fields = shallow(msg)?;
    SyncKey::decode(len_field(&fields, n)?)
        .ok()
        .map(|k| k.to_map())
}

/// MsgIds of the AddMsg items in a NewSyncResponse: CmdList (field 2) ->
/// CmdItem (field 2, repeated) with CmdId (1) = 5 -> CmdBuf (2: a buffer
/// wrapper `{1: len, 2: bytes}` or the message itself) -> AddMsg, MsgId
/// (field 1) or else NewMsgId (12). Best effort: what does not parse is
/// skipped.
pub fn add_msg_ids(resp: &[u8]) -> Vec<String> {
    let mut ids = Vec::new();
    let Some(cmdlist) = shallow(resp).and_then(|top| len_field(&top, 2).and_then(shallow)) else {
        return ids;
    };
    for item in cmdlist.iter().filter(|f| f.number == 2) {
        let WireValue::Len(b) = item.value else {
            continue;
        };
        let Some(item) = shallow(b) else {
            continue;
        };
        if varint_field(&item, 1) != Some(5) {
            continue;
        }
        let Some(buf) = len_field(&item, 2) else {
            continue;
        };
        let wrapped = shallow(buf).and_then(|w| {
            let inner = len_field(&w, 2)?;
            (w.len() == 2 && varint_field(&w, 1) == Some(inner.len() as u64)).then_some(inner)
        });
        let Some(add) = shallow(wrapped.unwrap_or(buf)) else {
            continue;
        };
        if let Some(id) = varint_field(&add, 1).or_else(|| varint_field(&add, 12)) {
            ids.push(id.to_string());
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::protobuf::{encode_bytes_field, encode_varint_field};
    use crate::body::synckey::SyncKey;

    fn add_msg(id: u64) -> Vec<u8> {
        let mut from = Vec::new();
        encode_bytes_field(1, b"alice", &mut from);
        let mut m = Vec::new();
        encode_varint_field(1, id, &mut m);
        encode_bytes_field(2, &from, &mut m);
        m
    }

    /// A NewSyncResponse with two AddMsg items (one wrapped in a buffer, one
    /// not) and a KeyBuf: the MsgIds and the SyncKey come out.
    #[test]
    fn newsync_response_msg_ids_and_keybuf() {
        let mut items = Vec::new();
        for (i, id) in [41u64, 42].into_iter().enumerate() {
            let msg = add_msg(id);
            let mut buf = Vec::new();
            if i == 0 {
                encode_varint_field(1, msg.len() as u64, &mut buf);
                encode_bytes_field(2, &msg, &mut buf);
            } else {
                buf = msg;
            }
            let mut item = Vec::new();
            encode_varint_field(1, 5, &mut item);
            encode_bytes_field(2, &buf, &mut item);
            items.push(item);
        }
        let mut cmdlist = Vec::new();
        encode_varint_field(1, 2, &mut cmdlist);
        for it in &items {
            encode_bytes_field(2, it, &mut cmdlist);
        }
        let key = SyncKey {
            keys: vec![(1, 10), (2, 20)],
        };
        let mut resp = Vec::new();
        encode_varint_field(1, 0, &mut resp);
        encode_bytes_field(2, &cmdlist, &mut resp);
        encode_bytes_field(4, &key.encode_keybuf(), &mut resp);
        assert_eq!(add_msg_ids(&resp), ["41", "42"]);
        assert_eq!(keybuf(&resp, 4), Some(KeyMap::from([(1, 10), (2, 20)])));
        let h = Header::new(1_000_000_121, 7, resp.len());
        let d = decode(&Options::default(), &h, &resp, true);
        assert_eq!(d.synckey_source, Some("newsync_response"));
        assert_eq!(d.msg_ids, ["41", "42"]);
        assert_eq!(add_msg_ids(b"garbage"), Vec::<String>::new());
    }
}
