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

use super::answer::{latest_key, session_uin, short_message};
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
            // The body goes at once: no interim 100 to wait for (and take
            // for the answer).
            "expect" => {}
            // Answers are read as they come (by Content-Length or to the
            // end): none compressed, none chunked.
            "accept-encoding" | "te" => {}
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
                _ if UIN_PARAMS.contains(&k) => sid
                    .and_then(|sid| session_uin(tokens, sid))
                    .or_else(|| v.parse::<u64>().ok().and_then(|u| tokens.get_u64(u)))
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
    let uin_before = v["BaseRequest"]["Uin"].clone();
    *n += tokens.substitute_json(v, live.volatile);
    let Some(obj) = v.as_object_mut() else {
        return;
    };
    // The session's own live uin, when known, over any value learned.
    let own = sid.and_then(|sid| session_uin(tokens, sid));
    if let (Some(u), Some(b)) = (
        own,
        obj.get_mut("BaseRequest").and_then(Value::as_object_mut),
    ) {
        if let Some(x) = b.get_mut("Uin") {
            let was_changed = *x != uin_before;
            let new = if x.is_string() {
                Value::from(u.to_string())
            } else {
                Value::from(u)
            };
            match (was_changed, new == uin_before) {
                (true, true) => *n -= 1,
                (false, false) => *n += 1,
                _ => {}
            }
            *x = new;
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Timestamp;
    use crate::flow::Direction;
    use crate::proto::http::Start;
    use crate::proto::web::KeyMap;
    use crate::replay::http::answer::key_slot;
    use serde_json::json;

    fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Message {
        Message {
            dir: Direction::ClientToServer,
            start: Start::Request {
                method: method.into(),
                path: path.into(),
            },
            version: 1,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
            body: body.to_vec(),
            wire_body_len: body.len() as u64,
            encoding: None,
            decoded: false,
            chunked: false,
            stream_offset: 0,
            end_offset: 0,
            ts_first: Timestamp::new(0, 0, 6),
            ts_last: Timestamp::new(0, 0, 6),
            complete: true,
            problems: Vec::new(),
        }
    }

    fn opts() -> Options {
        crate::replay::schema::options(&[], &[], None).unwrap().0
    }

    fn build_with(t: &mut Tokens, jar: &[(&str, &str)], fresh: bool, m: &Message) -> Built {
        let opts = opts();
        let jar: BTreeMap<String, String> = jar
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let live = Live {
            server: "10.0.0.9:80",
            volatile: &Volatile::default(),
            fresh_ids: fresh,
            opts: &opts,
            jar: &jar,
        };
        let sid = crate::replay::http::recorded_sid(m);
        build(t, &live, m, sid.as_deref())
    }

    fn text(b: &Built) -> String {
        String::from_utf8_lossy(&b.bytes).into_owned()
    }

    /// The header lines and the body of an encoded request.
    fn parts(b: &Built) -> (Vec<String>, Vec<u8>) {
        let t = text(b);
        let (head, _) = t.split_once("\r\n\r\n").unwrap();
        let at = head.len() + 4;
        (
            head.lines().map(str::to_owned).collect(),
            b.bytes[at..].to_vec(),
        )
    }

    #[test]
    fn host_names_the_live_server() {
        let m = request(
            "GET",
            "/jslogin?appid=x",
            &[
                ("Host", "127.0.0.1:8080"),
                ("Expect", "100-continue"),
                ("Accept-Encoding", "gzip, deflate"),
            ],
            b"",
        );
        let b = build_with(&mut Tokens::default(), &[], false, &m);
        let (head, _) = parts(&b);
        assert_eq!(head[1], "Host: 10.0.0.9:80");
        assert_eq!(head.len(), 2, "{head:?}");
        assert_eq!(b.substituted, 1);
        assert!(
            !text(&b).contains("Content-Length"),
            "a GET without a body has none"
        );
    }

    #[test]
    fn cookies_are_the_live_ones() {
        let mut t = Tokens::default();
        // Set on another connection of the session, for the recorded value.
        t.learn(&json!("T-old"), &json!("T-new"));
        let m = request(
            "GET",
            "/cgi-bin/mmwebwx-bin/webwxgetcontact?r=1",
            &[(
                "Cookie",
                "webwx_data_ticket=T-old; wxsid=S-old; wxuin=2; other=x",
            )],
            b"",
        );
        // Set on this connection: by name, before anything learned.
        t.learn(&json!("2"), &json!("77"));
        let b = build_with(&mut t, &[("wxsid", "S-new"), ("wxuin", "3")], false, &m);
        assert!(
            text(&b).contains("Cookie: webwx_data_ticket=T-new; wxsid=S-new; wxuin=3; other=x\r\n"),
            "{}",
            text(&b)
        );
        assert_eq!(b.substituted, 3);
    }

    #[test]
    fn session_parameters_uin_and_user_are_live() {
        let mut t = Tokens::default();
        for (r, l) in [
            ("S-old", "S-new"),
            ("@crypt_old", "@crypt_new"),
            ("PT-old", "PT-new"),
            ("U-old", "U-new"),
            ("T-old", "T+new"),
            ("M-old", "M-new"),
        ] {
            t.learn(&json!(r), &json!(l));
        }
        t.learn(&json!(2), &json!(5));
        t.map_user("bob", "carol");
        let m = request(
            "GET",
            "/x?sid=S-old&skey=%40crypt_old&pass_ticket=PT-old&uuid=U-old&ticket=T-old\
             &mmsid=M-old&uin=2&wxuin=2&user=bob&r=2&flag",
            &[],
            b"",
        );
        let b = build_with(&mut t, &[], false, &m);
        assert_eq!(
            b.target,
            "/x?sid=S-new&skey=%40crypt_new&pass_ticket=PT-new&uuid=U-new&ticket=T%2Bnew\
             &mmsid=M-new&uin=5&wxuin=5&user=carol&r=2&flag"
        );
        assert_eq!(b.substituted, 9);
    }

    #[test]
    fn a_web_session_presents_its_own_live_uin() {
        let mut t = Tokens::default();
        // Something else recorded as 2 became 9 (a MsgId, another user).
        t.learn(&json!(2), &json!(9));
        t.remember(key_slot("Uin", "S1"), json!(5));
        let body = br#"{"BaseRequest":{"Sid":"S1","Uin":2}}"#;
        let m = request("POST", "/cgi-bin/mmwebwx-bin/webwxinit?r=1", &[], body);
        let b = build_with(&mut t, &[], false, &m);
        let v: Value = serde_json::from_slice(&parts(&b).1).unwrap();
        assert_eq!(v["BaseRequest"]["Uin"], 5);
        assert_eq!(b.substituted, 1);
        let m = request(
            "GET",
            "/cgi-bin/mmwebwx-bin/synccheck?sid=S1&uin=2",
            &[],
            b"",
        );
        assert_eq!(
            build_with(&mut t, &[], false, &m).target,
            "/cgi-bin/mmwebwx-bin/synccheck?sid=S1&uin=5"
        );
        // Another session: what was learned.
        let m = request(
            "GET",
            "/cgi-bin/mmwebwx-bin/synccheck?sid=S2&uin=2",
            &[],
            b"",
        );
        assert!(build_with(&mut t, &[], false, &m).target.ends_with("uin=9"));
    }

    #[test]
    fn the_synccheck_presents_the_latest_live_key_of_its_session() {
        let mut t = Tokens::default();
        let path = "/cgi-bin/mmwebwx-bin/synccheck?sid=S1&uin=2&synckey=1_1%7C2_0%7C3_1&_=5";
        let m = request("GET", path, &[], b"");
        // Nothing issued live yet: the recorded key.
        assert_eq!(build_with(&mut t, &[], false, &m).target, path);
        let key = |v: u64| synckey_to_json(&KeyMap::from([(1, 1), (2, v), (3, 1)]));
        t.remember(key_slot("SyncKey", "S1"), key(4));
        assert!(build_with(&mut t, &[], false, &m)
            .target
            .contains("&synckey=1_1%7C2_4%7C3_1&"));
        // The SyncCheckKey first; another session's key is not used.
        t.remember(key_slot("SyncCheckKey", "S1"), key(5));
        t.remember(key_slot("SyncCheckKey", "S2"), key(9));
        assert!(build_with(&mut t, &[], false, &m)
            .target
            .contains("&synckey=1_1%7C2_5%7C3_1&"));
    }

    #[test]
    fn a_web_sync_presents_the_latest_live_synckey_and_ids_are_substituted() {
        let mut t = Tokens::default();
        t.learn(&json!("S-old"), &json!("S-longer-new"));
        t.learn(&json!(2), &json!(1));
        let body = br#"{"BaseRequest":{"DeviceID":"e1","Sid":"S-old","Skey":"@k","Uin":2},"SyncKey":{"Count":2,"List":[{"Key":1,"Val":2},{"Key":2,"Val":0}]},"rr":-1}"#;
        let m = request(
            "POST",
            "/cgi-bin/mmwebwx-bin/webwxsync?sid=S-old&lang=zh_CN",
            &[("Content-Length", &body.len().to_string())],
            body,
        );
        let live_key = KeyMap::from([(1, 3), (2, 7)]);
        t.remember(key_slot("SyncKey", "S-old"), synckey_to_json(&live_key));
        let b = build_with(&mut t, &[], false, &m);
        let (head, sent) = parts(&b);
        let v: Value = serde_json::from_slice(&sent).unwrap();
        assert_eq!(v["BaseRequest"]["Sid"], "S-longer-new");
        assert_eq!(v["BaseRequest"]["Uin"], 1);
        // The whole key is the live one (its Val 2 is not taken for a uin).
        assert_eq!(v["SyncKey"], synckey_to_json(&live_key));
        assert_eq!(v["rr"], -1);
        assert!(head.contains(&format!("Content-Length: {}", sent.len())));
        assert_ne!(sent.len(), body.len());
        assert!(b.target.contains("sid=S-longer-new"));
    }

    #[test]
    fn message_ids_are_kept_unless_fresh_ones_are_asked() {
        let body = br#"{"BaseRequest":{"Uin":2},"Msg":{"ClientMsgId":"123","LocalID":"123","Content":"x","ToUserName":"@alice"},"Scene":0}"#;
        let m = request("POST", "/cgi-bin/mmwebwx-bin/webwxsendmsg", &[], body);
        let mut t = Tokens::default();
        // Even a learned value does not replace a kept id.
        t.learn(&json!("123"), &json!("999"));
        let b = build_with(&mut t, &[], false, &m);
        let (_, sent) = parts(&b);
        let v: Value = serde_json::from_slice(&sent).unwrap();
        assert_eq!(v["Msg"]["ClientMsgId"], "123");
        assert_eq!(v["Msg"]["LocalID"], "123");

        let mut t = Tokens::default();
        let b = build_with(&mut t, &[], true, &m);
        let (_, sent) = parts(&b);
        let v: Value = serde_json::from_slice(&sent).unwrap();
        let id = v["Msg"]["ClientMsgId"].as_str().unwrap().to_owned();
        assert_ne!(id, "123");
        assert_eq!(
            v["Msg"]["LocalID"],
            id.as_str(),
            "one new id for the one recorded"
        );
        // A resend of the same recorded id gets the same new one.
        let again = build_with(&mut t, &[], true, &m);
        let v2: Value = serde_json::from_slice(&parts(&again).1).unwrap();
        assert_eq!(v2["Msg"]["ClientMsgId"], id.as_str());
    }

    #[test]
    fn a_short_link_newsync_presents_the_live_keybuf() {
        use crate::body::messages::{NewSyncRequest, SkBuiltinBuffer};
        let req = NewSyncRequest {
            selector: Some(7),
            key_buf: Some(SkBuiltinBuffer {
                i_len: Some(3),
                buffer: Some(b"old".to_vec()),
            }),
            ..Default::default()
        };
        let body = req.encode_to_vec();
        let m = request("POST", "/cgi-bin/micromsg-bin/newsync?user=bob", &[], &body);
        let mut t = Tokens::default();
        assert_eq!(
            build_with(&mut t, &[], false, &m).body,
            body,
            "nothing learned"
        );
        let b64 = |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b);
        t.learn(&json!(b64(b"old")), &json!(b64(b"new")));
        let b = build_with(&mut t, &[], false, &m);
        let sent = NewSyncRequest::decode(&b.body[..]).unwrap();
        assert_eq!(sent.key_buf.unwrap().buffer.as_deref(), Some(&b"new"[..]));
        assert_eq!(sent.selector, Some(7));
    }
}
