//! One HTTP exchange decoded the way the analyzer decodes it (web
//! endpoints by [`web::decode`], the reference server's plain short link
//! by its protobuf messages, other HTTP as text), the recorded one and the
//! live one through the same function; and what a live answer teaches the
//! replay (session ids, cookies, the login's uuid and ticket, the web
//! SyncKeys), learned before the answer is marked arrived.

use serde_json::Value;

use crate::analyze::{http_body_value, schema_or_raw, Options};
use crate::proto::commands::{response, AUTOAUTH, MANUALAUTH, NEWSENDMSG, NEWSYNC};
use crate::proto::web::{self, parse_query, synckey_json, synckey_to_json, KeyMap, WebInfo};
use crate::replay::diff::{self, FieldDiff, Volatile};
use crate::replay::tokens::Tokens;

/// Path prefix of the plain short link (protobuf bodies, as the long link's).
pub const SHORT_PREFIX: &str = "/cgi-bin/micromsg-bin/";

/// The reference server's plain short-link cgis and the long-link cmds
/// whose bodies they carry.
const SHORT_CGIS: &[(&str, u32)] = &[
    ("newsync", NEWSYNC),
    ("newsendmsg", NEWSENDMSG),
    ("manualauth", MANUALAUTH),
    ("autoauth", AUTOAUTH),
];

/// The long-link cmd of a plain short-link path (`POST
/// /cgi-bin/micromsg-bin/newsync?...`), if it is one.
pub fn short_cmd(path: &str) -> Option<u32> {
    let p = path.split('?').next().unwrap_or(path);
    let cgi = p.strip_prefix(SHORT_PREFIX)?;
    SHORT_CGIS.iter().find(|(n, _)| *n == cgi).map(|&(_, c)| c)
}

/// The protobuf message of a plain short-link request (or response) body.
pub fn short_message<'o>(opts: &'o Options, path: &str, is_response: bool) -> Option<&'o str> {
    let cmd = short_cmd(path)?;
    opts.registry
        .message(if is_response { response(cmd) } else { cmd })
}

/// An exchange's bodies, decoded.
#[derive(Debug, Clone, Default)]
pub struct Decoded {
    pub request: Value,
    pub response: Value,
    /// Web endpoints: what the exchange tells.
    pub info: Option<WebInfo>,
}

/// Decodes an exchange (`path` with its query).
pub fn decode(opts: &Options, path: &str, req_body: &[u8], resp_body: &[u8]) -> Decoded {
    if let Some(ex) = web::decode(path, req_body, Some(resp_body)) {
        return Decoded {
            request: ex.request,
            response: ex.response,
            info: Some(ex.info),
        };
    }
    if short_cmd(path).is_some() {
        let body = |b: &[u8], is_response| {
            if b.is_empty() {
                Value::Null
            } else {
                schema_or_raw(opts, short_message(opts, path, is_response), b)
            }
        };
        let mut response = body(resp_body, true);
        if let Some(s) = &opts.schemas {
            crate::replay::schema::expand_add_msgs(&mut response, s);
        }
        return Decoded {
            request: body(req_body, false),
            response,
            info: None,
        };
    }
    Decoded {
        request: http_body_value(req_body),
        response: http_body_value(resp_body),
        info: None,
    }
}

/// CmdId of a new chat message in a newsync CmdList (`AddMsg`).
/// Cookies as `(name, value)`.
pub type Cookies = [(String, String)];

/// `name=value` of each `Set-Cookie` (attributes dropped).
pub fn set_cookies<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<(String, String)> {
    headers
        .into_iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, v)| {
            let (name, value) = v.split(';').next()?.split_once('=')?;
            Some((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect()
}

/// The slot of a web session's latest SyncKey (`SyncKey`) or SyncCheckKey
/// in [`Tokens`], by the session's recorded sid.
pub fn key_slot(kind: &str, recorded_sid: &str) -> String {
    format!("web {kind} {recorded_sid}")
}

/// The live uin of the web session recorded as `sid`.
pub fn session_uin(tokens: &Tokens, sid: &str) -> Option<u64> {
    tokens.recall(&key_slot("Uin", sid)).and_then(Value::as_u64)
}

/// The latest key of that kind the live server issued to the web session
/// recorded as `sid`.
pub fn latest_key(tokens: &Tokens, kind: &str, sid: &str) -> Option<KeyMap> {
    tokens.recall(&key_slot(kind, sid)).and_then(synckey_json)
}

/// A recorded exchange and its live answer, compared: the differences
/// outside volatile fields that the substitutions do not explain. What the
/// answer teaches goes to `tokens` first.
#[allow(clippy::too_many_arguments)]
pub fn learn_and_compare(
    tokens: &mut Tokens,
    volatile: &Volatile,
    recorded: &Decoded,
    live: &Decoded,
    recorded_sid: Option<&str>,
    cookies: (&Cookies, &Cookies),
    status: (Option<u16>, u16),
) -> Vec<FieldDiff> {
    // Cookies by name.
    for (name, rv) in cookies.0 {
        if let Some((_, lv)) = cookies.1.iter().find(|(n, _)| n == name) {
            tokens.learn(&Value::from(rv.as_str()), &Value::from(lv.as_str()));
        }
    }
    if let (Some(r), Some(l)) = (&recorded.info, &live.info) {
        learn_login(tokens, r, l);
        // The session's own uin (the ticket page names it with the sid):
        // small numbers stand for other things in other fields.
        if let (Some(sid), Some(_), Some(uin)) = (&r.sid, r.uin, l.uin) {
            tokens.remember(key_slot("Uin", sid), Value::from(uin));
        }
        if let Some(sid) = recorded_sid {
            for (kind, key) in [
                ("SyncKey", &l.synckey_issued),
                ("SyncCheckKey", &l.synccheckkey_issued),
            ] {
                if let Some(k) = key {
                    tokens.remember(key_slot(kind, sid), synckey_to_json(k));
                }
            }
        }
    }
    // SyncKeys are substituted whole (above), never value by value: their
    // small numbers would stand for uins and ids elsewhere.
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("SyncKey");
            m.remove("SyncCheckKey");
        }
        v
    };
    let (mut diffs, mut learned) = (Vec::new(), Vec::new());
    diff::compare(
        &strip(&recorded.response),
        &strip(&live.response),
        volatile,
        &mut diffs,
        &mut learned,
    );
    tokens.learn_all(&learned);
    diffs.retain(|d| match (&d.recorded, &d.live) {
        (Some(r), Some(l)) => !tokens.explains(r, l),
        _ => true,
    });
    if status.0 != Some(status.1) {
        diffs.insert(
            0,
            FieldDiff {
                path: "status".into(),
                recorded: status.0.map(Value::from),
                live: Some(Value::from(status.1)),
            },
        );
    }
    diffs
}

/// The login flow's texts: the jslogin uuid, and the redirect_uri's
/// ticket and uuid.
fn learn_login(tokens: &mut Tokens, r: &WebInfo, l: &WebInfo) {
    let s = |x: &str| Value::from(x);
    if let (Some(a), Some(b)) = (&r.uuid, &l.uuid) {
        tokens.learn(&s(a), &s(b));
    }
    if let (Some(a), Some(b)) = (&r.redirect_uri, &l.redirect_uri) {
        let q = |u: &str| parse_query(u.split_once('?').map_or("", |(_, q)| q));
        let (qa, qb) = (q(a), q(b));
        for name in ["ticket", "uuid"] {
            if let (Some(x), Some(y)) = (qa.get(name), qb.get(name)) {
                tokens.learn(&s(x), &s(y));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_short_link_paths() {
        assert_eq!(short_cmd("/cgi-bin/micromsg-bin/newsync?user=a"), Some(121));
        assert_eq!(short_cmd("/cgi-bin/micromsg-bin/manualauth?"), Some(253));
        assert_eq!(short_cmd("/cgi-bin/micromsg-bin/getprofile"), None);
        assert_eq!(short_cmd("/cgi-bin/mmwebwx-bin/webwxsync"), None);
    }

    #[test]
    fn login_texts_and_cookies_are_learned() {
        let mut t = Tokens::default();
        let dec = |uri: &str| Decoded {
            info: Some(WebInfo {
                uuid: Some(uri[..2].to_owned()),
                redirect_uri: Some(format!("http://h/x?ticket=T{uri}&uuid=U{uri}")),
                ..WebInfo::default()
            }),
            ..Decoded::default()
        };
        let diffs = learn_and_compare(
            &mut t,
            &Volatile::default(),
            &dec("r1"),
            &dec("l1"),
            None,
            (
                &[("wxsid".into(), "old".into())],
                &[("wxsid".into(), "new".into())],
            ),
            (Some(200), 500),
        );
        assert_eq!(t.get_str("r1"), Some("l1"));
        assert_eq!(t.get_str("Tr1"), Some("Tl1"));
        assert_eq!(t.get_str("Ur1"), Some("Ul1"));
        assert_eq!(t.get_str("old"), Some("new"));
        assert_eq!(diffs.len(), 1);
        assert_eq!(diffs[0].path, "status");
        assert_eq!(diffs[0].live, Some(json!(500)));
    }

    #[test]
    fn synckeys_are_kept_whole_not_learned_value_by_value() {
        let mut t = Tokens::default();
        let key = |v: u64| json!({"Count": 1, "List": [{"Key": 1, "Val": v}]});
        let dec = |v: u64| Decoded {
            response: json!({"SyncKey": key(v), "BaseResponse": {"Ret": 0}}),
            info: Some(WebInfo {
                synckey_issued: synckey_json(&key(v)),
                ..WebInfo::default()
            }),
            ..Decoded::default()
        };
        let d = learn_and_compare(
            &mut t,
            &Volatile::default(),
            &dec(2),
            &dec(3),
            Some("S"),
            (&[], &[]),
            (Some(200), 200),
        );
        assert!(d.is_empty());
        assert!(t.is_empty(), "a Val of 2 must not stand for 3 elsewhere");
        assert_eq!(latest_key(&t, "SyncKey", "S"), Some(KeyMap::from([(1, 3)])));
    }
}
