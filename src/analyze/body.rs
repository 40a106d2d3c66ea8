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
    /// The user, when the body names one (identify, business header).
    pub uin: Option<u64>,
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
        uin: None,
    };
    if h.cmd == 205 && h.seq == SEQ_IDENTIFY {
        if let Ok(id) = Identify::decode(body) {
            d.synckey = Some(id.synckey.to_map());
            d.synckey_source = Some("longlink_identify");
            d.uin = Some(id.uin as u64);
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
            if let Some((source, keys)) = b.synckey {
                d.synckey = Some(keys);
                d.synckey_source = Some(source);
            }
            return d;
        }
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
            }
        }
        Outcome::Failed(e) => summary["error"] = e.to_string().into(),
        Outcome::NoKey => {}
    }
    out.summary = summary;
    Some(out)
}

/// The SyncKey in field `n` (a KeyBuf) of a message.
fn keybuf(msg: &[u8], n: u32) -> Option<KeyMap> {
    use crate::body::protobuf::Value as PbValue;
    use crate::body::synckey::SyncKey;
    let fields = decode_raw(msg).ok()?;
    fields
        .iter()
        .find(|f| f.number == n)
        .and_then(|f| match &f.value {
            PbValue::Bytes(b) => SyncKey::decode(b.raw).ok().map(|k| k.to_map()),
            _ => None,
        })
}
