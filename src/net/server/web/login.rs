//! The login endpoints of web WeChat: `jslogin` (a uuid), the `login`
//! poll (held until a device confirms, then the redirect to the ticket
//! page) and the ticket page `webwxnewloginpage` (the session: XML body
//! and cookies, answered 301 as the real service does in UOS mode).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio::time::{sleep_until, Instant};

use super::session::{random_hex, Login, Session, LOGIN_TTL, MAX_LOGINS};
use super::{js, store_error, Web, RET_BAD_TICKET, WEB_DEVICE, WEB_PREFIX};
use crate::net::messages::{ret, IdentifyExt};
use crate::net::server::conn::Close;
use crate::net::server::http::{http, Reply, Request};
use crate::net::server::service::{unix_now, with_store, Online};
use crate::net::server::Event;

impl Web<'_, '_> {
    /// `jslogin`, GET or POST as on the real service: a new pending login.
    pub(super) fn jslogin(&mut self, q: &BTreeMap<String, String>) -> Result<Reply, Close> {
        let config = &self.service.config;
        let test_users = &config.test_users;
        let wanted = match q.get("user") {
            Some(u) if !IdentifyExt::valid_user(u) => {
                return Err(http(400, ret::UNKNOWN_USER, "jslogin: invalid user name"))
            }
            Some(u)
                if (!test_users.is_empty() && !test_users.contains(u))
                    || (config.access.enforced_mode() && !config.access.has_user(u)) =>
            {
                return Err(http(
                    403,
                    ret::UNKNOWN_USER,
                    format!("jslogin: {u:?} is not a user of this server (--users)"),
                ))
            }
            u => u.cloned(),
        };
        let mut inner = self.lock_swept();
        // Confirmed at once (test mode, or --web-auto-confirm) for the
        // user asked for, else the first test user without a web session;
        // otherwise when a device of the user confirms it.
        let user = match &wanted {
            _ if !config.access.auto_confirm() => None,
            Some(u) => Some(u.clone()),
            None => {
                let busy = |u: &String| {
                    inner.sessions.values().any(|s| &s.name == u)
                        || inner.logins.values().any(|l| l.user.as_ref() == Some(u))
                };
                test_users
                    .iter()
                    .find(|u| !busy(u))
                    .or(test_users.first())
                    .cloned()
            }
        };
        let uuid = random_hex(8)?;
        let login = Login {
            wanted,
            user,
            scanned: false,
            ticket: None,
            created: Instant::now(),
            peer: self.origin.peer.ip().to_canonical(),
            confirmed: Arc::new(Notify::new()),
        };
        inner.add_login(uuid.clone(), login, MAX_LOGINS);
        Ok(js(format!(
            "window.QRLogin.code = 200; window.QRLogin.uuid = \"{uuid}\";"
        )))
    }

    /// The `login` poll: 201 once, then 200 and the redirect when
    /// confirmed; held meanwhile.
    pub(super) async fn login_poll(
        &mut self,
        req: &Request,
        q: &BTreeMap<String, String>,
    ) -> Result<Reply, Close> {
        let Some(uuid) = q.get("uuid") else {
            return Err(http(400, ret::BAD_BODY, "login: no uuid parameter"));
        };
        // The Host goes into the redirect_uri JavaScript string: only
        // host[:port] characters.
        if !valid_host(&req.host) {
            return Err(http(
                400,
                ret::BAD_BODY,
                "login: the Host header is not a host name or address with an optional port",
            ));
        }
        let deadline = Instant::now() + self.service.config.web_poll;
        loop {
            let waiting = {
                let mut inner = self.service.web.lock();
                match inner.logins.get_mut(uuid) {
                    None => return Ok(js("window.code=400;".to_owned())),
                    // Made under the lock: it sees a confirmation that
                    // comes after the lock is let go.
                    Some(l) if l.user.is_none() => Arc::clone(&l.confirmed).notified_owned(),
                    Some(l) if !l.scanned => {
                        l.scanned = true;
                        return Ok(js("window.code=201;window.userAvatar = '';".to_owned()));
                    }
                    Some(l) => {
                        let ticket = match &l.ticket {
                            Some(t) => t.clone(),
                            None => {
                                let t = random_hex(16)?;
                                l.ticket = Some(t.clone());
                                t
                            }
                        };
                        let host = if req.host.is_empty() {
                            self.origin
                                .local
                                .map(|a| a.to_string())
                                .unwrap_or_else(|| "127.0.0.1".to_owned())
                        } else {
                            req.host.clone()
                        };
                        return Ok(js(format!(
                            "window.code=200;\nwindow.redirect_uri=\"http://{host}{WEB_PREFIX}\
                             webwxnewloginpage?ticket={ticket}&uuid={uuid}&lang=zh_CN&scan={}\";",
                            unix_now()
                        )));
                    }
                }
            };
            // Not confirmed yet: held until a device confirms it, then
            // answered again; else "keep polling".
            tokio::select! {
                _ = self.origin.shutdown.recv() => break,
                _ = sleep_until(deadline) => break,
                _ = waiting => {}
            }
        }
        Ok(js("window.code=408;".to_owned()))
    }

    /// The ticket page: the session (XML and cookies), answered `301`
    /// without a `Location` as the real service does in UOS mode (clients
    /// that read the XML only on a 301 need it; the others read the body
    /// or the cookies whatever the status).
    pub(super) async fn ticket_page(
        &mut self,
        q: &BTreeMap<String, String>,
    ) -> Result<Reply, Close> {
        let xml_error = |msg: &str| Reply {
            status: 200,
            content_type: "text/plain",
            body: format!("<error><ret>{RET_BAD_TICKET}</ret><message>{msg}</message></error>")
                .into_bytes(),
            cookies: Vec::new(),
            wake: None,
        };
        let (uuid, ticket) = match (q.get("uuid"), q.get("ticket")) {
            (Some(u), Some(t)) => (u, t),
            _ => return Ok(xml_error("ticket and uuid parameters are required")),
        };
        let login = {
            let mut inner = self.service.web.lock();
            match inner.logins.get(uuid) {
                Some(l)
                    if l.ticket.as_ref() == Some(ticket)
                        && Instant::now().duration_since(l.created) < LOGIN_TTL =>
                {
                    inner.remove_login(uuid)
                }
                _ => None,
            }
        };
        let Some(name) = login.and_then(|l| l.user) else {
            return Ok(xml_error("the ticket is unknown, expired or already used"));
        };
        let auto = self.service.config.auto_register;
        let n = name.clone();
        let user = with_store(&self.service.store, move |st| {
            let Some(id) = st.user(&n, auto)? else {
                return Ok(None);
            };
            st.register_device_as(id, WEB_DEVICE, false)?;
            Ok(Some((id, st.last_seq(id)?)))
        })
        .await
        .map_err(store_error)?;
        let Some((user, last)) = user else {
            return Ok(xml_error("unknown user"));
        };
        let session = Arc::new(Session {
            sid: random_hex(16)?,
            skey: format!("@crypt_{}_{}", random_hex(4)?, random_hex(16)?),
            pass_ticket: random_hex(16)?,
            user,
            name: name.clone(),
            conn: self
                .service
                .next_conn
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            notify: Arc::new(Notify::new()),
            last_seen: Mutex::new(Instant::now()),
            peer: self.origin.peer.ip().to_canonical(),
            floor: AtomicU64::new(last),
            ended: AtomicBool::new(false),
        });
        let ended = {
            let mut inner = self.lock_swept();
            let max = self.service.config.max_connections;
            inner.add_session(Arc::clone(&session), max)
        };
        for s in ended {
            self.service.offline(s.user, s.conn);
        }
        self.service.online().entry(user).or_default().push(Online {
            conn: session.conn,
            device: WEB_DEVICE.to_owned(),
            notify: Arc::clone(&session.notify),
        });
        self.service.log(Event::Identified {
            peer: self.origin.peer,
            user: name,
            device: WEB_DEVICE.to_owned(),
            primary: false,
        });
        let data_ticket = random_hex(16)?;
        let body = format!(
            "<error><ret>0</ret><message></message><skey>{}</skey><wxsid>{}</wxsid>\
             <wxuin>{user}</wxuin><pass_ticket>{}</pass_ticket><isgrayscale>1</isgrayscale>\
             </error>",
            session.skey, session.sid, session.pass_ticket
        );
        Ok(Reply {
            status: 301,
            content_type: "text/plain",
            body: body.into_bytes(),
            cookies: vec![
                format!("wxsid={}; Path=/", session.sid),
                format!("wxuin={user}; Path=/"),
                format!("webwx_data_ticket={data_ticket}; Path=/"),
            ],
            wake: None,
        })
    }
}

/// Whether a Host header may go into the login redirect: empty (absent),
/// or a host name, IPv4 or bracketed IPv6 address with an optional port,
/// 255 characters at most.
fn valid_host(host: &str) -> bool {
    host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
}
