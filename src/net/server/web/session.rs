//! Web WeChat's session state: pending logins (by uuid, with their
//! tickets) and live sessions (by wxsid), how a request names its session
//! (query, cookies, `BaseRequest`), and their expiry. A held synccheck
//! waits on its session's `notify`, a held login poll on its login's
//! `confirmed`.
//!
//! Both tables are bounded without refusing anyone: a pending login lives
//! [`LOGIN_TTL`]; one address holds at most [`MAX_LOGINS_PER_PEER`]
//! pending logins and [`MAX_SESSIONS_PER_PEER`] sessions, and a new one
//! past a cap (the address's or the table's) ends the oldest (logins) or
//! the least recently used (sessions) rather than being refused.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
pub(super) const LOGIN_TTL: Duration = Duration::from_secs(60);
/// A session with no request for this long is ended.
pub(super) const SESSION_IDLE: Duration = Duration::from_secs(1800);
/// Pending logins at most (past it the oldest is forgotten).
pub(super) const MAX_LOGINS: usize = 4096;
/// Pending logins one address may hold (past it its oldest is forgotten).
pub(super) const MAX_LOGINS_PER_PEER: usize = 16;
/// Sessions one address may hold (past it its least recently used ends).
pub(super) const MAX_SESSIONS_PER_PEER: usize = 64;
/// Idle sessions are looked for at most this often.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Pending logins and live sessions.
#[derive(Default)]
pub(in crate::net::server) struct WebState {
    inner: Mutex<Inner>,
}

#[derive(Default)]
pub(super) struct Inner {
    /// By uuid.
    pub(super) logins: HashMap<String, Login>,
    /// uuids, oldest first (some may be gone already).
    login_order: VecDeque<String>,
    /// The pending logins of each address, oldest first.
    logins_by_peer: HashMap<IpAddr, VecDeque<String>>,
    /// By wxsid.
    pub(super) sessions: HashMap<String, Arc<Session>>,
    last_sweep: Option<Instant>,
}

pub(super) struct Login {
    /// The user the jslogin asked for (`user=`), if any: only that user's
    /// device may confirm it.
    pub(super) wanted: Option<String>,
    /// Whom the login is confirmed for (None: nobody yet, the poll waits).
    pub(super) user: Option<String>,
    pub(super) scanned: bool,
    pub(super) ticket: Option<String>,
    pub(super) created: Instant,
    /// Who asked for it.
    pub(super) peer: IpAddr,
    /// Signalled when a device confirms it (wakes every held poll).
    pub(super) confirmed: Arc<Notify>,
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
    /// Who logged in.
    pub(super) peer: IpAddr,
    /// Mailbox position of its webwxinit (at first, of its login): a sync
    /// or synccheck presenting less (key 0) starts from here, so the
    /// session gets only what came after.
    pub(super) floor: AtomicU64,
    /// Logged out or ended (idle, evicted): a held synccheck answers 1101.
    pub(super) ended: AtomicBool,
}

impl Session {
    /// Ends the session for the polls it holds: they are woken and answer
    /// "logged out".
    pub(super) fn end(&self) {
        self.ended.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
        // And a poll between its check and its wait.
        self.notify.notify_one();
    }

    pub(super) fn is_ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }

    fn seen(&self) -> Instant {
        *self.last_seen.lock().unwrap_or_else(|p| p.into_inner())
    }
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

    /// A device of user `name` confirms pending login `uuid` (idempotent);
    /// why not otherwise.
    pub(super) fn confirm(&self, uuid: &str, name: &str) -> Result<(), String> {
        let mut inner = self.lock();
        let gone = || format!("no pending web login {uuid:?} (unknown, expired or used)");
        let Some(l) = inner.logins.get_mut(uuid) else {
            return Err(gone());
        };
        if Instant::now().duration_since(l.created) >= LOGIN_TTL {
            return Err(gone());
        }
        let other = |u: &Option<String>| u.as_deref().is_some_and(|u| u != name);
        if other(&l.wanted) || other(&l.user) {
            return Err(format!("web login {uuid:?} is another user's"));
        }
        if l.user.is_none() {
            l.user = Some(name.to_owned());
            l.confirmed.notify_waiters();
        }
        Ok(())
    }
}

impl Inner {
    /// Forgets stale logins and (at most every [`SWEEP_EVERY`]) removes
    /// idle sessions: the sessions ended (for the caller to take off the
    /// online list).
    #[must_use]
    pub(super) fn sweep(&mut self) -> Vec<Arc<Session>> {
        let now = Instant::now();
        // Logins are in order of creation: the expired ones lead.
        while let Some(uuid) = self.login_order.front() {
            let expired = self
                .logins
                .get(uuid)
                .is_none_or(|l| now.duration_since(l.created) >= LOGIN_TTL);
            if !expired {
                break;
            }
            if let Some(uuid) = self.login_order.pop_front() {
                self.remove_login(&uuid);
            }
        }
        if self
            .last_sweep
            .is_some_and(|t| now.duration_since(t) < SWEEP_EVERY)
        {
            return Vec::new();
        }
        self.last_sweep = Some(now);
        let idle: Vec<String> = self
            .sessions
            .values()
            .filter(|s| now.duration_since(s.seen()) >= SESSION_IDLE)
            .map(|s| s.sid.clone())
            .collect();
        let ended: Vec<Arc<Session>> = idle
            .iter()
            .filter_map(|sid| self.sessions.remove(sid))
            .collect();
        ended.iter().for_each(|s| s.end());
        ended
    }

    /// Adds a pending login; past a cap (its address's, or `max` in all)
    /// the oldest pending login (of that address, or of all) is forgotten
    /// first.
    pub(super) fn add_login(&mut self, uuid: String, login: Login, max: usize) {
        let peer = login.peer;
        let mine = self.logins_by_peer.get(&peer).map_or(0, VecDeque::len);
        if mine >= MAX_LOGINS_PER_PEER {
            if let Some(old) = self.logins_by_peer.get(&peer).and_then(|q| q.front()) {
                let old = old.clone();
                self.remove_login(&old);
            }
        }
        while self.logins.len() >= max.max(1) {
            let Some(old) = self.login_order.pop_front() else {
                break;
            };
            self.remove_login(&old);
        }
        // Entries of logins gone meanwhile (fetched tickets) are dropped
        // when they pile up.
        if self.login_order.len() >= 2 * max.max(1) {
            let logins = &self.logins;
            self.login_order.retain(|u| logins.contains_key(u));
        }
        self.login_order.push_back(uuid.clone());
        self.logins_by_peer
            .entry(peer)
            .or_default()
            .push_back(uuid.clone());
        self.logins.insert(uuid, login);
    }

    /// Removes a pending login (its entry in `login_order` is left to be
    /// skipped).
    pub(super) fn remove_login(&mut self, uuid: &str) -> Option<Login> {
        let login = self.logins.remove(uuid)?;
        if let Some(q) = self.logins_by_peer.get_mut(&login.peer) {
            q.retain(|u| u != uuid);
            if q.is_empty() {
                self.logins_by_peer.remove(&login.peer);
            }
        }
        Some(login)
    }

    /// Adds a session; past a cap (its address's, or `max` in all) the
    /// least recently used session (of that address, or of all) ends
    /// first: the sessions ended (for the caller to take off the online
    /// list).
    #[must_use]
    pub(super) fn add_session(&mut self, session: Arc<Session>, max: usize) -> Vec<Arc<Session>> {
        let mut ended = Vec::new();
        let lru = |sessions: &HashMap<String, Arc<Session>>, peer: Option<IpAddr>| {
            sessions
                .values()
                .filter(|s| peer.is_none_or(|p| s.peer == p))
                .min_by_key(|s| s.seen())
                .map(|s| s.sid.clone())
        };
        let mine = self
            .sessions
            .values()
            .filter(|s| s.peer == session.peer)
            .count();
        if mine >= MAX_SESSIONS_PER_PEER {
            if let Some(sid) = lru(&self.sessions, Some(session.peer)) {
                ended.extend(self.sessions.remove(&sid));
            }
        }
        while self.sessions.len() >= max.max(1) {
            let Some(sid) = lru(&self.sessions, None) else {
                break;
            };
            ended.extend(self.sessions.remove(&sid));
        }
        self.sessions.insert(session.sid.clone(), session);
        ended.iter().for_each(|s| s.end());
        ended
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
pub(in crate::net::server) fn cookies(header: &str) -> BTreeMap<String, String> {
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
            .filter(|v| !v.is_empty() && *v != "0")
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
    // Ids as numbers or strings; null, empty or 0 (a client that did not
    // read them) name nothing, and the cookies decide.
    let field = |k: &str| Some(id_string(&b[k])).filter(|s| !s.is_empty() && s != "0");
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
