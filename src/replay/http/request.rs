//! A recorded HTTP request made live: the Host header names the live
//! server, cookies are the ones the live server set, the session's query
//! parameters and JSON fields carry the live values learned so far
//! ([`Tokens`]), a web sync presents the latest SyncKey the live server
//! issued to this web session, a plain short-link protobuf body has its
//! volatile fields substituted, and Content-Length is counted again. The
//! bytes are encoded by the shared HTTP encoder.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use prost::Message as _;
use serde_json::Value;

use super::answer::{latest_key, short_message};
use crate::analyze::Options;
use crate::net::webclient::enc;
use crate::proto::http::{message, Message};
use crate::proto::web::{parse_synckey_param, synckey_to_json, synckey_to_param, Endpoint};
use crate::replay::diff::Volatile;
use crate::replay::tokens::Tokens;

/// What is needed to make a request live.
pub struct Live<'a> {
    pub server: &'a str,
    pub volatile: &'a Volatile,
    pub fresh_ids: bool,
    pub opts: &'a Options,
    /// Cookies the live server set on this session (name -> value).
    pub jar: &'a BTreeMap<String, String>,
}

/// The request to send.
#[derive(Debug, Clone)]
pub struct Built {
    pub bytes: Vec<u8>,
    /// Target (path and query) as sent.
    pub target: String,
    pub body: Vec<u8>,
    /// Values substituted.
    pub substituted: usize,
}

/// Query parameters that carry a session's ids (looked up as text).
const ID_PARAMS: &[&str] = &["sid", "skey", "pass_ticket", "uuid", "ticket", "mmsid"];
/// Query parameters that carry a uin (looked up as a number).
const UIN_PARAMS: &[&str] = &["uin", "wxuin"];

/// The recorded request `m` as it goes to the live server now.
/// `recorded_sid`: the web session the request belongs to (its SyncKeys).
pub fn build(
    tokens: &mut Tokens,
    live: &Live<'_>,
    m: &Message,
    recorded_sid: Option<&str>,
) -> Built {
    let mut n = 0;
    let method = m.method().unwrap_or("GET");
    let target = m.path().unwrap_or("/");
    let endpoint = Endpoint::from_path(target);
    let target = query(tokens, target, recorded_sid, &mut n);
    let body = body(tokens, live, m, endpoint, &target, recorded_sid, &mut n);

    let mut headers: Vec<(String, String)> = Vec::new();
    let mut had_length = false;
    for (name, value) in &m.headers {
        let value = String::from_utf8_lossy(value).into_owned();
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "host" => {
                if value != live.server {
                    n += 1;
                }
                headers.push((name.clone(), live.server.to_owned()));
            }
            "content-length" => had_length = true,
            "transfer-encoding" => had_length = true,
            // The recorded body is kept decoded.
            "content-encoding" if m.decoded => {}
            "cookie" => headers.push((name.clone(), cookie(tokens, live.jar, &value, &mut n))),
            _ => headers.push((name.clone(), value)),
        }
    }
    if had_length || !body.is_empty() {
        headers.push(("Content-Length".into(), body.len().to_string()));
    }
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    Built {
        bytes: message::encode_request(method, &target, &h, &body),
        target,
        body,
        substituted: n,
    }
}

/// A Cookie header with the live values: the cookie of that name the live
/// server set on this session, else the live value of the recorded one
/// (learned from a Set-Cookie on another connection of the session), else
/// the recorded value.
fn cookie(tokens: &Tokens, jar: &BTreeMap<String, String>, header: &str, n: &mut usize) -> String {
    header
        .split(';')
        .map(|kv| {
            let Some((name, value)) = kv.split_once('=') else {
                return kv.trim().to_owned();
            };
            let (name, value) = (name.trim(), value.trim());
            let live = jar
                .get(name)
                .cloned()
                .or_else(|| tokens.get_str(value).map(str::to_owned))
                .unwrap_or_else(|| value.to_owned());
            if live != value {
                *n += 1;
            }
            format!("{name}={live}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The target with the live session ids, uin, user and synccheck key.
/// Only the parameters that change are encoded again.
fn query(tokens: &Tokens, target: &str, sid: Option<&str>, n: &mut usize) -> String {
    let Some((path, q)) = target.split_once('?') else {
        return target.to_owned();
    };
    let parts: Vec<String> = q
        .split('&')
        .map(|part| {
            let Some((k, raw)) = part.split_once('=') else {
                return part.to_owned();
            };
            let v = percent_encoding::percent_decode_str(&raw.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned();
            let live: Option<String> = match k {
                _ if ID_PARAMS.contains(&k) => tokens.get_str(&v).map(str::to_owned),
                _ if UIN_PARAMS.contains(&k) => v
                    .parse::<u64>()
                    .ok()
                    .and_then(|u| tokens.get_u64(u))
                    .map(|u| u.to_string()),
                "user" => Some(tokens.user(&v).to_owned()),
                "synckey" => sid.and_then(|sid| {
                    let key = latest_key(tokens, "SyncCheckKey", sid)
                        .or_else(|| latest_key(tokens, "SyncKey", sid))?;
                    let recorded = parse_synckey_param(&v);
                    (recorded.as_ref() != Some(&key)).then(|| synckey_to_param(&key))
                }),
                _ => None,
            };
            match live {
                Some(l) if l != v => {
                    *n += 1;
                    format!("{k}={}", enc(&l))
                }
                _ => part.to_owned(),
            }
        })
        .collect();
    format!("{path}?{}", parts.join("&"))
}

/// The body with the live values: JSON (web) substituted through the
/// tokens, the web sync's SyncKey the latest live one, message ids kept
/// or renewed; a plain short-link protobuf body substituted in its
/// volatile fields; anything else as recorded.
fn body(
    tokens: &mut Tokens,
    live: &Live<'_>,
    m: &Message,
    endpoint: Option<Endpoint>,
    target: &str,
    sid: Option<&str>,
    n: &mut usize,
) -> Vec<u8> {
    if m.body.is_empty() {
        return Vec::new();
    }
    if endpoint.is_some() {
        let Ok(mut v) = serde_json::from_slice::<Value>(&m.body) else {
            return m.body.clone();
        };
        let before = *n;
        web_json(tokens, live, &mut v, endpoint, sid, n);
        if *n == before {
            return m.body.clone();
        }
        return serde_json::to_vec(&v).unwrap_or_else(|_| m.body.clone());
    }
    if let (Some(name), Some(schemas)) =
        (short_message(live.opts, target, false), &live.opts.schemas)
    {
        if let Ok(mut msg) = schemas.decode_message(name, &m.body) {
            let k = tokens.substitute_message(&mut msg, live.volatile);
            if k > 0 {
                *n += k;
                return msg.encode_to_vec();
            }
        }
    }
    m.body.clone()
}

/// The ids a client chose for a message: kept unless fresh ones are asked.
const ID_FIELDS: &[&str] = &["ClientMsgId", "LocalID"];

fn web_json(
    tokens: &mut Tokens,
    live: &Live<'_>,
    v: &mut Value,
    endpoint: Option<Endpoint>,
    sid: Option<&str>,
    n: &mut usize,
) {
    let Some(obj) = v.as_object_mut() else {
        *n += tokens.substitute_json(v, live.volatile);
        return;
    };
    // Set aside what is not substituted value by value.
    let key = obj.remove("SyncKey");
    let mut ids: Vec<(bool, &'static str, Value)> = Vec::new();
    for f in ID_FIELDS {
        if let Some(x) = obj.remove(*f) {
            ids.push((false, f, x));
        }
        if let Some(x) = obj
            .get_mut("Msg")
            .and_then(Value::as_object_mut)
            .and_then(|m| m.remove(*f))
        {
            ids.push((true, f, x));
        }
    }
    *n += tokens.substitute_json(v, live.volatile);
    let Some(obj) = v.as_object_mut() else {
        return;
    };
    if let Some(mut key) = key {
        let latest = match (endpoint, sid) {
            (Some(Endpoint::Webwxsync), Some(sid)) => latest_key(tokens, "SyncKey", sid),
            _ => None,
        };
        if let Some(l) = latest {
            let l = synckey_to_json(&l);
            if l != key {
                key = l;
                *n += 1;
            }
        }
        obj.insert("SyncKey".into(), key);
    }
    for (in_msg, f, mut x) in ids {
        if live.fresh_ids {
            let new = tokens.get(&x).cloned().unwrap_or_else(|| {
                let id = fresh_id();
                let new = if x.is_string() {
                    Value::from(id.to_string())
                } else {
                    Value::from(id)
                };
                tokens.learn(&x, &new);
                new
            });
            if new != x {
                x = new;
                *n += 1;
            }
        }
        let target = if in_msg {
            obj.get_mut("Msg").and_then(Value::as_object_mut)
        } else {
            Some(&mut *obj)
        };
        if let Some(t) = target {
            t.insert((*f).to_owned(), x);
        }
    }
}

/// A new message id: milliseconds since the epoch times 10^4 plus a
/// counter (the web client's ids are of that size).
fn fresh_id() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    ms.saturating_mul(10_000) + COUNTER.fetch_add(1, Ordering::Relaxed) % 10_000
}
