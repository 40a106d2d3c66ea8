//! The web client (`syncscope client --web`): the user's device `web`
//! over the web endpoints of protocol.md section 6, served by the
//! reference server on the long link's port.
//!
//! * [`WebSession::login`]: `jslogin` (with syncscope's `user=` so only
//!   that user may confirm the login), the confirmation (with a password:
//!   by the client itself over the long link, as the user's device
//!   `config.device`, [`client::confirm_web_login`]; without one a server
//!   in test mode confirms at once, else the uuid goes to
//!   [`Config::web_login`] for a device to confirm), the `login` poll
//!   until `window.code=200` gives the redirect_uri, then the ticket page
//!   whose XML holds skey, wxsid, wxuin and pass_ticket (and cookies);
//!   [`WebSession::init`] (`webwxinit`: own UserName, first SyncKey) and
//!   [`WebSession::status_notify`].
//! * [`listen`]: `webwxsync` until ContinueFlag is 0, then `synccheck`
//!   (held by the server until data comes) on a second connection, and
//!   again. A page's messages are handed over before its SyncKey is
//!   presented, as on the long link; a refused session (1101) logs in
//!   again, with backoff.
//! * [`send`]: `webwxsendmsg`, retried with the same ClientMsgId.
//!
//! User names are shown without the web's `@`, as the long-link client
//! shows them; the output types are the long-link client's.

mod answers;
pub mod http;

use std::collections::BTreeMap;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};
use tokio::time::{sleep, timeout, timeout_at, Instant};

pub use self::answers::{
    chat_message, parse_jslogin, parse_json, parse_login_poll, parse_synccheck, parse_ticket,
    plain_name, redirect_target, web_name, LoginPoll, Ticket,
};
use self::http::{Conn, Request, Response};
use super::client::{
    self, unix_now, ClientError, Config, ListenOptions, ListenOutcome, ListenSink, Listener, Retry,
    SendAck, SendFailed, SendOptions, Stop,
};
use super::messages::{ChatMessage, IdentifyExt};
use crate::net::KEY_MESSAGES;
use crate::proto::web::{self as wire, KeyMap};

/// The web client's appid (the real one, which the server expects).
pub const APPID: &str = "wx782c26e4c19acffb";
/// Path prefix of the web cgi endpoints.
pub const CGI: &str = "/cgi-bin/mmwebwx-bin/";
/// MsgType of a status-notify message (the web's own bookkeeping, not a
/// chat message: [`listen`] skips it).
pub const MSG_TYPE_STATUS_NOTIFY: u64 = 51;
/// How long a held request (login poll, synccheck) may take: the server
/// holds them up to 25 s.
pub const LONG_POLL: Duration = Duration::from_secs(35);
/// How long a login may wait for its confirmation (the server forgets an
/// unconfirmed one after 60 s).
pub const LOGIN_WAIT: Duration = Duration::from_secs(60);
/// A login poll not answered within this long is waiting for a device's
/// confirmation ([`Config::web_login`] is told the uuid).
const CONFIRM_HINT: Duration = Duration::from_secs(1);

/// Query values: everything but the unreserved characters is encoded
/// (so the synccheck key's `|` goes out as `%7C`).
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A query value percent-encoded as the web client sends it.
pub(crate) fn enc(s: &str) -> String {
    utf8_percent_encode(s, QUERY).to_string()
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// One webwxsync answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebPage {
    pub messages: Vec<ChatMessage>,
    /// SyncKey for the next webwxsync (not yet presented).
    pub synckey: KeyMap,
    /// SyncCheckKey for the next synccheck.
    pub synccheck_key: KeyMap,
    pub more: bool,
}

/// Which connection a GET goes on, and how long it may take.
#[derive(Debug, Clone, Copy)]
enum Via {
    /// The request connection, within the request timeout.
    Api,
    /// The request connection, held by the server (login poll): [`LONG_POLL`].
    ApiHeld,
    /// The second connection (synccheck): [`LONG_POLL`].
    Poll,
}

/// A logged-in web session: one connection for requests (the login poll
/// included), a second one for the held synccheck.
#[derive(Debug)]
pub struct WebSession {
    api: Conn,
    poll: Conn,
    request_timeout: Duration,
    cookies: BTreeMap<String, String>,
    pub uin: u64,
    pub sid: String,
    pub skey: String,
    pub pass_ticket: String,
    /// `e` + 15 digits.
    pub device_id: String,
    /// Own web UserName (`@NAME`), from webwxinit.
    pub user_name: String,
    /// The key the next webwxsync presents.
    pub synckey: KeyMap,
    /// The key the next synccheck sends.
    pub synccheck_key: KeyMap,
}

impl WebSession {
    /// Logs in as `config.user` (jslogin, poll, ticket page).
    pub async fn login(config: &Config) -> Result<WebSession, ClientError> {
        if !IdentifyExt::valid_user(&config.user) {
            return Err(ClientError::InvalidName {
                what: "user name",
                value: config.user.clone(),
            });
        }
        let mut s = WebSession {
            api: Conn::new(&config.server).with_tls(config.web_tls.clone()),
            poll: Conn::new(&config.server).with_tls(config.web_tls.clone()),
            request_timeout: config.request_timeout,
            cookies: BTreeMap::new(),
            uin: 0,
            sid: String::new(),
            skey: String::new(),
            pass_ticket: String::new(),
            device_id: format!(
                "e{:015}",
                client::new_client_msg_id() % 1_000_000_000_000_000
            ),
            user_name: web_name(&config.user),
            synckey: KeyMap::new(),
            synccheck_key: KeyMap::new(),
        };
        let target = format!(
            "/jslogin?appid={APPID}&fun=new&lang=zh_CN&user={}&_={}",
            enc(&config.user),
            unix_ms()
        );
        let r = s.get("jslogin", &target, Via::Api).await?;
        let uuid = parse_jslogin(&text(&r))?;
        if config.password.is_some() {
            // As the user's phone would, by scanning the QR code.
            client::confirm_web_login(config, &uuid).await?;
        }
        let redirect = s.poll_login(config, &uuid).await?;
        let target = redirect_target(&redirect).ok_or_else(|| ClientError::Malformed {
            what: "login",
            detail: format!("redirect_uri {redirect:?} has no path"),
        })?;
        let r = s
            .get(
                "webwxnewloginpage",
                &format!("{target}&fun=new&version=v2"),
                Via::Api,
            )
            .await?;
        let t = parse_ticket(&text(&r))?;
        s.skey = t.skey;
        s.sid = t.sid;
        s.uin = t.uin;
        s.pass_ticket = t.pass_ticket;
        Ok(s)
    }

    /// Polls `login` until confirmed, for [`LOGIN_WAIT`] at most; tells
    /// [`Config::web_login`] the uuid when the first poll is held.
    async fn poll_login(&mut self, config: &Config, uuid: &str) -> Result<String, ClientError> {
        let give_up = Instant::now() + LOGIN_WAIT;
        let mut hint = config.web_login.as_ref();
        let mut tip = 1;
        loop {
            let target = format!(
                "{CGI}login?loginicon=true&uuid={}&tip={tip}&r={}&_={}",
                enc(uuid),
                !(unix_ms() as u32),
                unix_ms()
            );
            let asked = Instant::now();
            let until = match hint {
                Some(_) => give_up.min(asked + CONFIRM_HINT),
                None => give_up,
            };
            let r = match timeout_at(until, self.get("login", &target, Via::ApiHeld)).await {
                Ok(r) => r?,
                Err(_) if until < give_up => {
                    // Held: nobody confirmed it yet.
                    if let Some(h) = hint.take() {
                        (h.0)(uuid);
                    }
                    continue;
                }
                Err(_) => {
                    return Err(ClientError::Timeout {
                        what: "login (never confirmed)",
                        secs: LOGIN_WAIT.as_secs_f64(),
                    })
                }
            };
            match parse_login_poll(&text(&r))? {
                LoginPoll::Confirmed { redirect_uri } => return Ok(redirect_uri),
                LoginPoll::Scanned => tip = 0,
                // A quick 408 (the server did not hold the poll): pause.
                LoginPoll::Wait if asked.elapsed() < Duration::from_secs(1) => {
                    sleep(Duration::from_millis(250)).await
                }
                LoginPoll::Wait => {}
            }
        }
    }

    fn base_request(&self) -> Value {
        json!({
            "Uin": self.uin,
            "Sid": self.sid,
            "Skey": self.skey,
            "DeviceID": self.device_id,
        })
    }

    fn cookie(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// A GET, checked for status 200 (or 301 for the ticket page).
    async fn get(
        &mut self,
        what: &'static str,
        target: &str,
        via: Via,
    ) -> Result<Response, ClientError> {
        let cookie = self.cookie();
        let req = Request {
            method: "GET",
            target,
            cookie: Some(&cookie),
            body: None,
        };
        let r = match via {
            Via::Api => self.api.request(what, &req, self.request_timeout).await?,
            Via::ApiHeld => self.api.request(what, &req, LONG_POLL).await?,
            Via::Poll => self.poll.request(what, &req, LONG_POLL).await?,
        };
        self.checked(what, r)
    }

    /// A JSON POST on the request connection; the answer's BaseResponse
    /// checked.
    async fn post(
        &mut self,
        what: &'static str,
        target: &str,
        body: &Value,
    ) -> Result<Value, ClientError> {
        let cookie = self.cookie();
        let body = body.to_string();
        let req = Request {
            method: "POST",
            target,
            cookie: Some(&cookie),
            body: Some(body.as_bytes()),
        };
        let r = self.api.request(what, &req, self.request_timeout).await?;
        let r = self.checked(what, r)?;
        parse_json(what, &r.body)
    }

    fn checked(&mut self, what: &'static str, r: Response) -> Result<Response, ClientError> {
        for (k, v) in r.set_cookies() {
            self.cookies.insert(k.to_owned(), v.to_owned());
        }
        // The ticket page comes as a 301 without a Location (the real
        // service in UOS mode), or a 200: its body is the answer either way.
        let ok = r.status == 200 || (what == "webwxnewloginpage" && r.status == 301);
        if !ok {
            return Err(ClientError::Http {
                what,
                status: r.status,
                body: r.body_excerpt(),
            });
        }
        Ok(r)
    }

    fn take_skey(&mut self, v: &Value) {
        if let Some(s) = v["SKey"].as_str().filter(|s| !s.is_empty()) {
            self.skey = s.to_owned();
        }
    }

    /// webwxinit: own UserName and the first SyncKey.
    pub async fn init(&mut self) -> Result<(), ClientError> {
        let target = format!(
            "{CGI}webwxinit?r={}&lang=zh_CN&pass_ticket={}",
            !(unix_ms() as u32),
            enc(&self.pass_ticket)
        );
        let v = self
            .post(
                "webwxinit",
                &target,
                &json!({"BaseRequest": self.base_request()}),
            )
            .await?;
        if let Some(name) = v["User"]["UserName"].as_str().filter(|n| !n.is_empty()) {
            self.user_name = name.to_owned();
        }
        let key = wire::synckey_json(&v["SyncKey"]).ok_or(ClientError::Malformed {
            what: "webwxinit",
            detail: "no SyncKey.List".into(),
        })?;
        self.synccheck_key = key.clone();
        self.synckey = key;
        self.take_skey(&v);
        Ok(())
    }

    /// webwxstatusnotify (Code 3: "this client opened").
    pub async fn status_notify(&mut self) -> Result<(), ClientError> {
        let target = format!(
            "{CGI}webwxstatusnotify?lang=zh_CN&pass_ticket={}",
            enc(&self.pass_ticket)
        );
        let body = json!({
            "BaseRequest": self.base_request(),
            "Code": 3,
            "FromUserName": self.user_name,
            "ToUserName": self.user_name,
            "ClientMsgId": unix_ms(),
        });
        self.post("webwxstatusnotify", &target, &body)
            .await
            .map(drop)
    }

    /// synccheck with [`WebSession::synccheck_key`], held by the server
    /// until data comes (or 25 s): the selector, 0 for nothing new.
    pub async fn synccheck(&mut self) -> Result<u32, ClientError> {
        let target = format!(
            "{CGI}synccheck?r={}&skey={}&sid={}&uin={}&deviceid={}&synckey={}&_={}",
            unix_ms(),
            enc(&self.skey),
            enc(&self.sid),
            self.uin,
            self.device_id,
            enc(&wire::synckey_to_param(&self.synccheck_key)),
            unix_ms()
        );
        let r = self.get("synccheck", &target, Via::Poll).await?;
        parse_synccheck(&text(&r))
    }

    /// One webwxsync presenting [`WebSession::synckey`] (which confirms
    /// what it covers). The new keys come with the page, not adopted: call
    /// [`WebSession::adopt`] once the page is handled.
    pub async fn sync(&mut self) -> Result<WebPage, ClientError> {
        let target = format!(
            "{CGI}webwxsync?sid={}&skey={}&lang=zh_CN&pass_ticket={}",
            enc(&self.sid),
            enc(&self.skey),
            enc(&self.pass_ticket)
        );
        let body = json!({
            "BaseRequest": self.base_request(),
            "SyncKey": wire::synckey_to_json(&self.synckey),
            "rr": !(unix_now() as u32),
        });
        let v = self.post("webwxsync", &target, &body).await?;
        self.take_skey(&v);
        let synckey = wire::synckey_json(&v["SyncKey"])
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| self.synckey.clone());
        let synccheck_key = wire::synckey_json(&v["SyncCheckKey"])
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| synckey.clone());
        let messages = match &v["AddMsgList"] {
            Value::Array(list) => list.iter().filter_map(chat_message).collect(),
            Value::Null => Vec::new(),
            _ => {
                return Err(ClientError::Malformed {
                    what: "webwxsync",
                    detail: "AddMsgList is not a list".into(),
                })
            }
        };
        Ok(WebPage {
            messages,
            synckey,
            synccheck_key,
            more: wire::as_u64(&v["ContinueFlag"]).unwrap_or(0) != 0,
        })
    }

    /// Makes the page's keys the ones presented next.
    pub fn adopt(&mut self, page: &WebPage) {
        self.synckey = page.synckey.clone();
        self.synccheck_key = page.synccheck_key.clone();
    }

    /// webwxsendmsg of one text message to `to` (with or without `@`).
    pub async fn send(
        &mut self,
        to: &str,
        content: &str,
        client_msg_id: u64,
    ) -> Result<SendAck, ClientError> {
        const WHAT: &str = "webwxsendmsg";
        let target = format!(
            "{CGI}webwxsendmsg?lang=zh_CN&pass_ticket={}",
            enc(&self.pass_ticket)
        );
        let cid = client_msg_id.to_string();
        let body = json!({
            "BaseRequest": self.base_request(),
            "Msg": {
                "Type": 1,
                "Content": content,
                "FromUserName": self.user_name,
                "ToUserName": web_name(to),
                "LocalID": cid,
                "ClientMsgId": cid,
            },
            "Scene": 0,
        });
        let v = self.post(WHAT, &target, &body).await?;
        let msg_id = wire::as_u64(&v["MsgID"])
            .filter(|&n| n != 0)
            .ok_or_else(|| ClientError::Malformed {
                what: WHAT,
                detail: format!("MsgID {} is not a message id", v["MsgID"]),
            })?;
        Ok(SendAck {
            msg_id,
            client_msg_id: cid,
            // The web answer carries no CreateTime: the client's clock at
            // the confirmation.
            create_time: unix_now(),
        })
    }

    /// webwxlogout: ends the session on the server (later requests are
    /// refused with 1101).
    pub async fn logout(&mut self) -> Result<(), ClientError> {
        self.poll.close();
        let target = format!(
            "{CGI}webwxlogout?redirect=1&type=1&skey={}&sid={}&uin={}",
            enc(&self.skey),
            enc(&self.sid),
            self.uin
        );
        let cookie = self.cookie();
        let req = Request {
            method: "GET",
            target: &target,
            cookie: Some(&cookie),
            body: None,
        };
        // Any answer will do (a redirect, most likely).
        self.api
            .request("webwxlogout", &req, self.request_timeout)
            .await
            .map(drop)
    }

    /// Confirms [`WebSession::synckey`] with a last webwxsync whose page
    /// is dropped (it is offered again next time).
    pub async fn confirm(&mut self) -> Result<(), ClientError> {
        self.sync().await.map(drop)
    }
}

fn text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// Logs in, webwxinit, webwxstatusnotify: a session ready to sync and send.
pub async fn open(config: &Config) -> Result<WebSession, ClientError> {
    let mut s = WebSession::login(config).await?;
    s.init().await?;
    s.status_notify().await?;
    Ok(s)
}

/// Whether the server ended the session (log in again).
fn session_gone(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Refused {
            ret: 1100..=1102,
            ..
        }
    )
}

/// Sends one message as the web device of `config.user`, retrying with
/// the same ClientMsgId (after logging in again when the session ended),
/// then logs out.
pub async fn send(
    config: &Config,
    to: &str,
    content: &str,
    opts: &SendOptions,
) -> Result<SendAck, SendFailed> {
    let mut retry = Retry::new(opts);
    let mut session: Option<WebSession> = None;
    loop {
        let attempt = async {
            let s = match &mut session {
                Some(s) => s,
                None => session.insert(open(config).await?),
            };
            s.send(to, content, retry.client_msg_id).await
        };
        match attempt.await {
            Ok(ack) => {
                if let Some(s) = &mut session {
                    let _ = timeout(Duration::from_secs(2), s.logout()).await;
                }
                return Ok(ack);
            }
            Err(e) => {
                if session_gone(&e) {
                    session = None;
                }
                retry.failed(e).await?
            }
        }
    }
}

/// The web for [`client::listen_on`].
struct Web<'a> {
    config: &'a Config,
}

impl client::Mailbox for WebSession {
    /// SyncKey and SyncCheckKey.
    type Key = (KeyMap, KeyMap);

    async fn fetch(&mut self) -> Result<client::Fetched<Self::Key>, ClientError> {
        let page = self.sync().await?;
        Ok((
            page.messages,
            Vec::new(),
            page.more,
            (page.synckey, page.synccheck_key),
        ))
    }

    fn adopt_key(&mut self, (synckey, synccheck_key): Self::Key) {
        self.synckey = synckey;
        self.synccheck_key = synccheck_key;
    }

    fn key_at((synckey, synccheck_key): &Self::Key, seq: u64) -> Self::Key {
        let at = |k: &KeyMap| {
            let mut k = k.clone();
            k.insert(KEY_MESSAGES, seq);
            k
        };
        (at(synckey), at(synccheck_key))
    }
}

impl client::Link for Web<'_> {
    type Session = WebSession;

    async fn open(&mut self) -> Result<WebSession, ClientError> {
        open(self.config).await
    }

    async fn run<S: ListenSink>(
        &mut self,
        l: &mut Listener<'_, S>,
        s: &mut WebSession,
        deadline: Instant,
    ) -> Result<Stop, ClientError> {
        let run = async {
            // Rounds in a row where synccheck said "new data" and webwxsync
            // brought no message: slow down rather than spin.
            let mut idle = 0u32;
            loop {
                match l.drain(s).await? {
                    Err(stop) => return Ok(stop),
                    Ok(true) => idle = 0,
                    Ok(false) => idle += 1,
                }
                if idle >= 2 {
                    sleep(Duration::from_millis(100 << idle.min(4))).await;
                }
                while s.synccheck().await? == 0 {
                    idle = 0;
                }
            }
        };
        timeout_at(deadline, run)
            .await
            .unwrap_or(Ok(Stop::TimedOut))
    }

    async fn close(&mut self, mut s: WebSession) {
        // The held synccheck is abandoned with its connection.
        s.poll.close();
        let _ = timeout(Duration::from_secs(2), s.confirm()).await;
        let _ = timeout(Duration::from_secs(2), s.logout()).await;
    }
}

/// [`client::listen`] as the web device of `config.user`: prints the same
/// messages, reconnects (logs in again) with the same backoff.
pub async fn listen<S: ListenSink>(
    config: &Config,
    opts: &ListenOptions,
    sink: &mut S,
) -> Result<ListenOutcome, ClientError> {
    client::listen_on(&mut Web { config }, opts, sink).await
}
