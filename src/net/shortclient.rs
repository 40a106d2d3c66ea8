//! The short-link client (`syncscope client --short`): the long link's
//! requests as HTTP POSTs to `/cgi-bin/micromsg-bin/<cgi>` with the same
//! protobuf bodies (protocol.md section 7), served by the reference server
//! on the long link's port (`net/server/shortlink.rs`).
//!
//! * [`ShortSession::login`]: `manualauth` (or `autoauth` with the key of
//!   an earlier one), whose answer sets the session cookie `mmsid` that
//!   every later request sends back; one keep-alive connection.
//! * [`send`]: `newsendmsg`, retried with the same ClientMsgId, as on the
//!   long link.
//! * [`listen`]: `newsync` until ContinueFlag is 0, then again every poll
//!   interval (the short link has no pushes: each request is answered and
//!   that is all). A page's messages are handed over before its SyncKey is
//!   presented, as on the long link; an unknown session (the server
//!   restarted) logs in again.

use std::time::Duration;

use prost::Message;
use tokio::time::{sleep, timeout, timeout_at, Instant};

use super::client::{
    self, autoauth_accepted, autoauth_request, manualauth_answer, manualauth_request, send_answer,
    sync_answer, text_message, unix_now, ClientError, Config, Link, ListenOptions, ListenOutcome,
    ListenSink, Listener, Mailbox, Retry, SendAck, SendFailed, SendOptions, Stop, SyncPage,
};
use super::messages::ret;
use super::webclient::http::{Conn, Response};
use crate::body::synckey::SyncKey;
use crate::proto::http::message::encode_request;

/// Path prefix of the short link's cgis.
pub const CGI_PREFIX: &str = "/cgi-bin/micromsg-bin/";
/// The session cookie an accepted auth sets.
pub const SESSION_COOKIE: &str = "mmsid";

/// A logged-in short-link session: the cookie and one keep-alive
/// connection (reopened when the server closes it).
#[derive(Debug)]
pub struct ShortSession {
    conn: Conn,
    host: String,
    request_timeout: Duration,
    /// `mmsid=...`, once an auth was accepted.
    cookie: Option<String>,
    pub uin: u32,
    /// The key the next newsync presents.
    pub synckey: SyncKey,
}

impl ShortSession {
    /// Authenticates `config.user` on `config.device`: autoauth with a
    /// cached key, else manualauth (with the password, if any).
    pub async fn login(config: &Config) -> Result<ShortSession, ClientError> {
        config.check_names()?;
        let mut s = ShortSession {
            conn: Conn::new(&config.server),
            host: config.server.clone(),
            request_timeout: config.request_timeout,
            cookie: None,
            uin: 0,
            synckey: SyncKey::default(),
        };
        if let Some((uin, req)) = autoauth_request(config) {
            let (body, cookie) = s.post("autoauth", &req.encode_to_vec()).await?;
            if autoauth_accepted(config, &body)? {
                s.uin = uin;
                s.cookie = cookie;
                return Ok(s);
            }
        }
        let req = manualauth_request(config);
        let (body, cookie) = s.post("manualauth", &req.encode_to_vec()).await?;
        s.uin = manualauth_answer(config, &body)?;
        s.cookie = cookie;
        if s.cookie.is_none() {
            return Err(ClientError::Malformed {
                what: "manualauth",
                detail: format!("the answer sets no {SESSION_COOKIE} cookie"),
            });
        }
        Ok(s)
    }

    /// Another session with the same cookie on a connection of its own
    /// (for requests in parallel, as uploads are).
    pub fn fork(&self) -> ShortSession {
        ShortSession {
            conn: Conn::new(&self.host),
            host: self.host.clone(),
            request_timeout: self.request_timeout,
            cookie: self.cookie.clone(),
            uin: self.uin,
            synckey: self.synckey.clone(),
        }
    }

    /// POSTs `body` to `cgi` with the session cookie: the answer's body.
    pub async fn call(&mut self, cgi: &'static str, body: &[u8]) -> Result<Vec<u8>, ClientError> {
        self.post(cgi, body).await.map(|(b, _)| b)
    }

    /// POSTs `body` to the cgi, with the session cookie; the answer's
    /// body and the session cookie it sets, if any.
    async fn post(
        &mut self,
        cgi: &'static str,
        body: &[u8],
    ) -> Result<(Vec<u8>, Option<String>), ClientError> {
        let target = format!("{CGI_PREFIX}{cgi}");
        let len = body.len().to_string();
        let mut headers = vec![
            ("Host", self.host.as_str()),
            ("User-Agent", "syncscope"),
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", len.as_str()),
        ];
        if let Some(c) = &self.cookie {
            headers.push(("Cookie", c.as_str()));
        }
        let bytes = encode_request("POST", &target, &headers, body);
        let r = self
            .conn
            .send_bytes(cgi, &bytes, self.request_timeout, || {})
            .await?;
        if r.status != 200 {
            return Err(refusal(cgi, &r));
        }
        let cookie = r
            .set_cookies()
            .find(|(k, _)| *k == SESSION_COOKIE)
            .map(|(k, v)| format!("{k}={v}"));
        Ok((r.body, cookie))
    }

    /// Sends one text message.
    pub async fn send(
        &mut self,
        to: &str,
        content: &str,
        client_msg_id: u64,
    ) -> Result<SendAck, ClientError> {
        let req = text_message(to, content, client_msg_id, unix_now() as u32);
        let (body, _) = self.post("newsendmsg", &req.encode_to_vec()).await?;
        send_answer(&body, to, client_msg_id)
    }

    /// One newsync presenting [`ShortSession::synckey`]; the new key comes
    /// with the page, not adopted.
    pub async fn sync(&mut self) -> Result<SyncPage, ClientError> {
        let req = client::sync_request(&self.synckey);
        let (body, _) = self.post("newsync", &req.encode_to_vec()).await?;
        sync_answer(&body)
    }
}

/// An HTTP refusal: the server's error text is `syncscope: WHY (ret N)`,
/// which becomes [`ClientError::Refused`]; an unknown session (the server
/// restarted) is one that logging in again may cure.
fn refusal(what: &'static str, r: &Response) -> ClientError {
    let text = r.body_excerpt();
    let parsed = text
        .strip_prefix("syncscope: ")
        .and_then(|t| t.strip_suffix(')'))
        .and_then(|t| t.rsplit_once(" (ret "))
        .and_then(|(why, n)| Some((why.to_owned(), n.parse::<i32>().ok()?)));
    match parsed {
        Some((_, ret::NOT_AUTHENTICATED)) if r.status == 401 && what != "manualauth" => {
            ClientError::Io {
                what,
                source: std::io::Error::other(
                    "the server does not know this session (restarted?): logging in again",
                ),
            }
        }
        Some((message, ret)) => ClientError::Refused { what, ret, message },
        None => ClientError::Http {
            what,
            status: r.status,
            body: text,
        },
    }
}

/// Sends one message over the short link, retrying with the same
/// ClientMsgId when no answer comes.
pub async fn send(
    config: &Config,
    to: &str,
    content: &str,
    opts: &SendOptions,
) -> Result<SendAck, SendFailed> {
    let mut retry = Retry::new(opts);
    let mut session: Option<ShortSession> = None;
    loop {
        let attempt = async {
            let s = match &mut session {
                Some(s) => s,
                None => session.insert(ShortSession::login(config).await?),
            };
            s.send(to, content, retry.client_msg_id).await
        };
        match attempt.await {
            Ok(ack) => return Ok(ack),
            Err(e) => {
                session = None;
                retry.failed(e).await?
            }
        }
    }
}

impl Mailbox for ShortSession {
    type Key = SyncKey;

    async fn fetch(&mut self) -> Result<client::Fetched<SyncKey>, ClientError> {
        let page = self.sync().await?;
        Ok((page.messages, page.receipts, page.more, page.synckey))
    }

    fn adopt_key(&mut self, key: SyncKey) {
        self.synckey = key;
    }

    fn key_at(key: &SyncKey, seq: u64) -> SyncKey {
        client::key_at(key, seq)
    }
}

/// The short link for [`client::listen_on`]: newsync every `poll`.
struct Short<'a> {
    config: &'a Config,
    poll: Duration,
    /// The last key handled, kept across logins.
    key: SyncKey,
}

impl Link for Short<'_> {
    type Session = ShortSession;

    async fn open(&mut self) -> Result<ShortSession, ClientError> {
        let mut s = ShortSession::login(self.config).await?;
        s.synckey = self.key.clone();
        Ok(s)
    }

    async fn run<S: ListenSink>(
        &mut self,
        l: &mut Listener<'_, S>,
        s: &mut ShortSession,
        deadline: Instant,
    ) -> Result<Stop, ClientError> {
        let poll = self.poll;
        let run = async {
            loop {
                if let Err(stop) = l.drain(s).await? {
                    return Ok(stop);
                }
                sleep(poll).await;
            }
        };
        let r = timeout_at(deadline, run)
            .await
            .unwrap_or(Ok(Stop::TimedOut));
        self.key = s.synckey.clone();
        r
    }

    async fn close(&mut self, mut s: ShortSession) {
        // Presents the last handled key; the page it brings is offered again.
        let _ = timeout(Duration::from_secs(2), s.sync()).await;
    }
}

/// [`client::listen`] over the short link: newsync every `poll` (there
/// are no pushes), with the same output, reconnects and backoff.
pub async fn listen<S: ListenSink>(
    config: &Config,
    opts: &ListenOptions,
    poll: Duration,
    sink: &mut S,
) -> Result<ListenOutcome, ClientError> {
    let mut link = Short {
        config,
        poll,
        key: SyncKey::default(),
    };
    client::listen_on(&mut link, opts, sink).await
}
