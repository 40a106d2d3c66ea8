//! Frame body decoding for the analyzer: the identify body, business
//! packets, a user's schema when the profile maps the cmd, otherwise
//! schema-less protobuf, otherwise hex with an entropy figure.

use serde_json::Value;

use super::{KeyMap, Options};
use crate::body::identify::Identify;
use crate::body::protobuf::{decode_raw, to_json, Blob};
use crate::proto::longlink::{Header, SEQ_IDENTIFY};

/// A decoded body and what trackers need from it.
pub struct Decoded {
    pub value: Value,
    pub synckey: Option<KeyMap>,
    pub synckey_source: Option<&'static str>,
    pub business: Option<Value>,
}

fn blob(body: &[u8]) -> Value {
    serde_json::to_value(Blob::new(body)).unwrap_or(Value::Null)
}

/// Decodes a long-link frame body.
pub fn decode(opts: &Options, h: &Header, body: &[u8]) -> Decoded {
    let mut d = Decoded {
        value: Value::Null,
        synckey: None,
        synckey_source: None,
        business: None,
    };
    if h.cmd == 205 && h.seq == SEQ_IDENTIFY {
        if let Ok(id) = Identify::decode(body) {
            d.synckey = Some(id.synckey.to_map());
            d.synckey_source = Some("longlink_identify");
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
        // A business packet: its header is readable, its body encrypted.
        d.value = blob(body);
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
