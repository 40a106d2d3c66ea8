//! Web WeChat's session state: pending logins (by uuid, with their
//! tickets) and live sessions (by wxsid), how a request names its session
//! (query, cookies, `BaseRequest`), and their expiry. A held synccheck
//! waits on its session's `notify`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::super::conn::Close;
use super::super::http::{http, Request};
use super::super::service::random_fill;
use crate::net::messages::ret;
use crate::net::store::UserId;
use crate::proto::web::id_string;

/// A login not confirmed and fetched within this long is forgotten.
pub(super) const LOGIN_TTL: Duration = Duration::from_secs(300);
/// A session with no request for this long is ended.
pub(super) const SESSION_IDLE: Duration = Duration::from_secs(1800);

/// Pending logins and live sessions.
#[derive(Default)]
pub(in crate::net::server) struct WebState {
    inner: Mutex<Inner>,
}

#[derive(Default)]
pub(super) struct Inner {
    /// By uuid.
    pub(super) logins: HashMap<String, Login>,
    /// By wxsid.
    pub(super) sessions: HashMap<String, Arc<Session>>,
}

pub(super) struct Login {
    /// Whom the login is confirmed for (None: nobody, it stays at 408).
    pub(super) user: Option<String>,
    pub(super) scanned: bool,
    pub(super) ticket: Option<String>,
    pub(super) created: Instant,
}

pub(super) struct Session {
    pub(super) sid: String,
    pub(super) skey: String,
    pub(super) pass_ticket: String,
    pub(super) user: UserId,
    pub(super) name: String,
    /// Its entry in the server's online list (pushes wake `notify`).
    pub(super) conn: u64,
    pub(super) notify: Arc<Notify>,
    pub(super) last_seen: Mutex<Instant>,
}

impl WebState {
    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live session named by `cred`, its last-seen time refreshed.
    pub(super) fn session(&self, cred: &Credentials) -> Option<Arc<Session>> {
        let (sid, uin, skey) = cred;
        let s = self.lock().sessions.get(sid.as_deref()?)?.clone();
        if uin.as_deref().is_some_and(|u| u != s.user.to_string()) {
            return None;
        }
        if skey
            .as_deref()
            .is_some_and(|k| !k.is_empty() && k != s.skey)
        {
            return None;
        }
        *s.last_seen.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        Some(s)
    }
}

impl Inner {
    /// Forgets stale logins and removes idle sessions: the sessions ended
    /// (for the caller to take off the online list).
    #[must_use]
    pub(super) fn sweep(&mut self) -> Vec<Arc<Session>> {
        let now = Instant::now();
        self.logins
            .retain(|_, l| now.duration_since(l.created) < LOGIN_TTL);
        let idle: Vec<String> = self
            .sessions
            .values()
            .filter(|s| {
                let seen = *s.last_seen.lock().unwrap_or_else(|p| p.into_inner());
                now.duration_since(seen) >= SESSION_IDLE
            })
            .map(|s| s.sid.clone())
            .collect();
        idle.iter()
            .filter_map(|sid| self.sessions.remove(sid))
            .collect()
    }
}

/// Random hex from the operating system's source.
pub(super) fn random_hex(bytes: usize) -> Result<String, Close> {
    let mut b = [0u8; 32];
    let b = &mut b[..bytes.min(32)];
    random_fill(b).map_err(|e| http(500, ret::STORE, e))?;
    Ok(hex::encode(b))
}

/// `name=value` pairs of a Cookie header.
pub(super) fn cookies(header: &str) -> BTreeMap<String, String> {
    header
        .split(';')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// How a request names its session: (sid, uin, skey).
pub(super) type Credentials = (Option<String>, Option<String>, Option<String>);

/// From the query string, else the cookies.
pub(super) fn query_credentials(q: &BTreeMap<String, String>, req: &Request) -> Credentials {
    let c = cookies(&req.cookie);
    let pick = |param: &str, cookie: &str| {
        q.get(param)
            .filter(|v| !v.is_empty())
            .or_else(|| c.get(cookie))
            .cloned()
    };
    (
        pick("sid", "wxsid"),
        pick("uin", "wxuin"),
        q.get("skey").cloned(),
    )
}

/// From `BaseRequest`, else as [`query_credentials`].
pub(super) fn body_credentials(
    body: &Value,
    q: &BTreeMap<String, String>,
    req: &Request,
) -> Credentials {
    let b = &body["BaseRequest"];
    let (sid, uin, skey) = query_credentials(q, req);
    let field = |k: &str| Some(id_string(&b[k])).filter(|s| !s.is_empty());
    (
        field("Sid").or(sid),
        field("Uin").or(uin),
        field("Skey").or(skey),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_header() {
        let c = cookies("wxsid=abc; wxuin=7;webwx_data_ticket=x=y");
        assert_eq!(c.get("wxsid").map(String::as_str), Some("abc"));
        assert_eq!(c.get("wxuin").map(String::as_str), Some("7"));
        assert_eq!(c.get("webwx_data_ticket").map(String::as_str), Some("x=y"));
    }

    #[test]
    fn ids_are_random_and_long() {
        let a = random_hex(16).expect("random");
        let b = random_hex(16).expect("random");
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
