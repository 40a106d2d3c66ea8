//! The reference client: a [`Session`] is one identified long-link
//! connection (requests matched to answers by seq, pushes noted while
//! waiting); [`send`] and [`listen`] are what `syncscope client` runs.
//!
//! * [`send`]: one ClientMsgId for every attempt, so a resend after a lost
//!   ack is recognised by the server and answered with the original MsgId;
//!   a limited number of attempts, then an error.
//! * [`listen`]: identify, newsync until ContinueFlag is 0, then wait for
//!   newnotify pushes (heartbeat in between), reconnecting with backoff.
//!   A page's messages are handed over before its SyncKey is presented,
//!   so the server counts them consumed only after that; message ids
//!   already handed over are not handed over again. (`client/listen.rs`.)
//! * [`confirm_web_login`]: authenticates (no identify) and confirms a
//!   pending web login by its uuid, as the phone confirms a QR code.

use std::hash::{BuildHasher, Hash, Hasher};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message;
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout};

use super::frame::{Connection, ReadError, DEFAULT_MAX_FRAME_LEN};
use super::messages::{ret, ChatMessage, IdentifyExt, IdentifyReply, Receipt, CLIENT_VERSION};
pub(super) use super::unix_now;
use super::{MSG_TYPE_STATUS, MSG_TYPE_TEXT};
use crate::body::messages::{
    self, AutoAuthRequest, AutoAuthResponse, BaseResponse, BodyError, ManualAuthRequest,
    ManualAuthResponse, MicroMsgRequestNew, NewSendMsgRequest, NewSendMsgResponse, NewSyncRequest,
    NewSyncResponse, SkBuiltinString, WebLoginConfirmRequest, WebLoginConfirmResponse,
};
use crate::body::synckey::SyncKey;
mod listen;

pub(super) use self::listen::{key_at, listen_on, Fetched, Link, Listener, Mailbox, Stop};
pub use self::listen::{listen, ListenOptions, ListenOutcome, ListenSink};

use crate::proto::commands::{
    response, AUTOAUTH, ERROR, IDENTIFY, MANUALAUTH, NEWNOTIFY, NEWSENDMSG, NEWSYNC, NOOP,
    SEQ_HEARTBEAT, SEQ_IDENTIFY, SEQ_PUSH, WEBLOGIN_CONFIRM,
};

/// Client settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// `host:port` of the server.
    pub server: String,
    pub user: String,
    pub device: String,
    /// The user's password, sent in manualauth (a server that enforces
    /// identity needs it; one in test mode ignores it).
    pub password: Option<String>,
    pub connect_timeout: Duration,
    /// Time allowed for an answer.
    pub request_timeout: Duration,
    /// Heartbeat interval while listening.
    pub heartbeat: Duration,
    pub max_frame_len: u32,
    /// The uin and autoauth key of the last manualauth, shared by this
    /// config's clones: a reconnect does an autoauth instead.
    pub auth: AuthCache,
    /// Web client: told the uuid of a login that waits for a device's
    /// confirmation (`syncscope client confirm UUID`).
    pub web_login: Option<LoginNotice>,
    /// The web endpoints over HTTPS (`client --web --tls-ca`): the TLS
    /// configuration its connections use (`None`: plain HTTP).
    pub web_tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Config {
    /// The user name and device id are ones the server takes.
    pub fn check_names(&self) -> Result<(), ClientError> {
        for (what, value, ok) in [
            ("user name", &self.user, IdentifyExt::valid_user(&self.user)),
            (
                "device id",
                &self.device,
                IdentifyExt::valid_device(&self.device),
            ),
        ] {
            if !ok {
                return Err(ClientError::InvalidName {
                    what,
                    value: value.clone(),
                });
            }
        }
        Ok(())
    }
}

/// Called with the uuid of a web login that waits for a device's
/// confirmation.
#[derive(Clone)]
pub struct LoginNotice(pub Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for LoginNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginNotice")
    }
}

/// The uin and autoauth key a manualauth gave a user's device.
#[derive(Debug, Clone, Default)]
pub struct AuthCache(Arc<Mutex<Option<AuthKey>>>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct AuthKey {
    user: String,
    device: String,
    uin: u32,
    key: Vec<u8>,
}

impl AuthCache {
    fn get(&self, user: &str, device: &str) -> Option<AuthKey> {
        let k = self.0.lock().unwrap_or_else(|p| p.into_inner());
        k.clone().filter(|k| k.user == user && k.device == device)
    }

    fn set(&self, key: Option<AuthKey>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = key;
    }

    /// The uin of the last manualauth, if any.
    pub fn uin(&self) -> Option<u32> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|k| k.uin)
    }
}

impl Config {
    pub fn new(server: impl Into<String>, user: impl Into<String>) -> Config {
        Config {
            server: server.into(),
            user: user.into(),
            device: "phone".into(),
            password: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            heartbeat: Duration::from_secs(60),
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            auth: AuthCache::default(),
            web_login: None,
            web_tls: None,
        }
    }
}

/// What went wrong on the client side.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {server}: {source}")]
    Connect {
        server: String,
        #[source]
        source: io::Error,
    },
    #[error("no answer to {what} within {secs:.1} s")]
    Timeout { what: &'static str, secs: f64 },
    #[error("reading from the server: {0}")]
    Read(#[from] ReadError),
    #[error("writing to the server: {0}")]
    Write(#[source] io::Error),
    #[error("the server closed the connection")]
    Closed,
    #[error("the server refused {what} (ret {ret}): {message}")]
    Refused {
        what: &'static str,
        ret: i32,
        message: String,
    },
    #[error("malformed answer from the server: {0}")]
    Body(#[from] BodyError),
    #[error("invalid {what} {value:?}: 1 to 64 printable characters without spaces")]
    InvalidName { what: &'static str, value: String },
    /// Web client: the connection failed during a request.
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    /// Web client: an HTTP status other than 200.
    #[error("the server answered {what} with HTTP {status}: {body}")]
    Http {
        what: &'static str,
        status: u16,
        body: String,
    },
    /// Web client: an answer that is not what the step expects.
    #[error("malformed answer to {what}: {detail}")]
    Malformed { what: &'static str, detail: String },
}

impl ClientError {
    /// Whether trying again cannot help (the server said no for good).
    pub fn is_permanent(&self) -> bool {
        match self {
            ClientError::Refused { ret: r, .. } => matches!(
                *r,
                ret::UNKNOWN_USER
                    | ret::BAD_RECIPIENT
                    | ret::BAD_BODY
                    | ret::UNKNOWN_CMD
                    | ret::NOT_IDENTIFIED
                    | ret::OVERSIZE
                    | ret::BAD_FRAME
                    | ret::NOT_AUTHENTICATED
                    | ret::NO_SUCH_LOGIN
                    | ret::TOO_LARGE
                    | ret::MEDIA_REFUSED
                    | ret::NO_SUCH_MEDIA
            ),
            ClientError::InvalidName { .. } => true,
            // A web endpoint the server does not serve or will not take.
            ClientError::Http { status, .. } => (400..500).contains(status) && *status != 408,
            _ => false,
        }
    }
}

/// The server's answer to a newsendmsg.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SendAck {
    pub msg_id: u64,
    pub client_msg_id: String,
    pub create_time: u64,
}

/// One newsync page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPage {
    pub messages: Vec<ChatMessage>,
    /// The receipts for this user's messages (status messages, MsgType
    /// 51), apart from the messages.
    pub receipts: Vec<Receipt>,
    /// The key the server issued with this page (not yet presented).
    pub synckey: SyncKey,
    pub more: bool,
}

/// One identified connection.
#[derive(Debug)]
pub struct Session {
    conn: Connection<TcpStream>,
    next_seq: u32,
    request_timeout: Duration,
    /// The key to present next: the newest one whose page was handled.
    pub synckey: SyncKey,
    /// A newnotify arrived and no sync has run since.
    notified: bool,
    pub uin: u32,
    pub primary: bool,
}

impl Session {
    /// Connects and identifies with `synckey` (which confirms it).
    pub async fn connect(config: &Config, synckey: SyncKey) -> Result<Session, ClientError> {
        let mut s = Session::open(config, synckey).await?;
        let body = IdentifyExt {
            uin: s.uin,
            user: Some(config.user.clone()),
            device: Some(config.device.clone()),
            synckey: s.synckey.clone(),
        }
        .encode();
        let answer = s.request("identify", IDENTIFY, SEQ_IDENTIFY, &body).await?;
        let reply = IdentifyReply::decode(&answer).ok_or(ClientError::Refused {
            what: "identify",
            ret: ret::BAD_BODY,
            message: format!("identify answer of {} bytes, expected 16", answer.len()),
        })?;
        if reply.ret != 0 {
            return Err(ClientError::Refused {
                what: "identify",
                ret: reply.ret,
                message: "identify answer with a non-zero ret".into(),
            });
        }
        s.uin = reply.uin;
        s.primary = reply.primary;
        Ok(s)
    }

    /// Connects and authenticates (autoauth with a cached key, else
    /// manualauth), not identified: [`Session::uin`] is the auth's.
    async fn open(config: &Config, synckey: SyncKey) -> Result<Session, ClientError> {
        config.check_names()?;
        let connect_err = |source| ClientError::Connect {
            server: config.server.clone(),
            source,
        };
        let stream = timeout(config.connect_timeout, TcpStream::connect(&config.server))
            .await
            .map_err(|_| connect_err(io::ErrorKind::TimedOut.into()))?
            .map_err(connect_err)?;
        let _ = stream.set_nodelay(true);
        let mut s = Session {
            conn: Connection::new(stream, config.max_frame_len),
            next_seq: 1,
            request_timeout: config.request_timeout,
            synckey,
            notified: false,
            uin: 0,
            primary: false,
        };
        s.uin = s.authenticate(config).await?;
        Ok(s)
    }

    /// Confirms pending web login `uuid` (its jslogin's) as this
    /// session's user, as the phone does by scanning the QR code.
    pub async fn confirm_web_login(&mut self, uuid: &str) -> Result<(), ClientError> {
        let req = WebLoginConfirmRequest {
            uuid: Some(uuid.to_owned()),
        };
        let seq = self.take_seq();
        let body = self
            .request(
                "web login confirmation",
                WEBLOGIN_CONFIRM,
                seq,
                &req.encode_to_vec(),
            )
            .await?;
        let resp: WebLoginConfirmResponse = messages::decode("WebLoginConfirmResponse", &body)?;
        accepted("web login confirmation", &resp.base_response)
    }

    /// autoauth with the cached key, else manualauth: the uin to identify
    /// with.
    async fn authenticate(&mut self, config: &Config) -> Result<u32, ClientError> {
        if let Some((uin, req)) = autoauth_request(config) {
            let seq = self.take_seq();
            let body = self
                .request("autoauth", AUTOAUTH, seq, &req.encode_to_vec())
                .await?;
            if autoauth_accepted(config, &body)? {
                return Ok(uin);
            }
        }
        let req = manualauth_request(config);
        let seq = self.take_seq();
        let body = self
            .request("manualauth", MANUALAUTH, seq, &req.encode_to_vec())
            .await?;
        manualauth_answer(config, &body)
    }

    fn take_seq(&mut self) -> u32 {
        let seq = self.next_seq;
        self.next_seq = match seq.wrapping_add(1) {
            SEQ_PUSH | SEQ_IDENTIFY | SEQ_HEARTBEAT => 1,
            n => n,
        };
        seq
    }

    /// Sends a request and waits for its answer (same seq, cmd + 10^9);
    /// pushes that arrive meanwhile are noted, an error frame is returned
    /// as [`ClientError::Refused`].
    async fn request(
        &mut self,
        what: &'static str,
        cmd: u32,
        seq: u32,
        body: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        let limit = self.request_timeout;
        let exchange = async {
            self.conn
                .write_frame(cmd, seq, body)
                .await
                .map_err(ClientError::Write)?;
            loop {
                let f = self.conn.read_frame().await?.ok_or(ClientError::Closed)?;
                let h = f.header;
                if h.cmd == NEWNOTIFY {
                    self.notified = true;
                } else if h.cmd == ERROR && (h.seq == seq || h.seq == 0) {
                    return Err(refused(what, &f.body));
                } else if h.cmd == response(cmd) && h.seq == seq {
                    return Ok(f.body);
                }
                // Anything else (a late answer to an abandoned request) is
                // not ours: skip it.
            }
        };
        timeout(limit, exchange)
            .await
            .map_err(|_| ClientError::Timeout {
                what,
                secs: limit.as_secs_f64(),
            })?
    }

    /// Sends any request `cmd` (with the next seq) and gives the answer's
    /// body: the media requests (`net::media`) use it.
    pub async fn call(
        &mut self,
        what: &'static str,
        cmd: u32,
        body: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        let seq = self.take_seq();
        self.request(what, cmd, seq, body).await
    }

    /// Sends one text message.
    pub async fn send(
        &mut self,
        to: &str,
        content: &str,
        client_msg_id: u64,
    ) -> Result<SendAck, ClientError> {
        let req = text_message(to, content, client_msg_id, unix_now() as u32);
        let seq = self.take_seq();
        let body = self
            .request("newsendmsg", NEWSENDMSG, seq, &req.encode_to_vec())
            .await?;
        send_answer(&body, to, client_msg_id)
    }

    /// One newsync presenting [`Session::synckey`]. The new key is returned
    /// with the page, not adopted: call [`Session::adopt`] once the page is
    /// handled.
    pub async fn sync(&mut self) -> Result<SyncPage, ClientError> {
        self.notified = false;
        let req = sync_request(&self.synckey);
        let seq = self.take_seq();
        let body = self
            .request("newsync", NEWSYNC, seq, &req.encode_to_vec())
            .await?;
        sync_answer(&body)
    }

    /// Makes `key` the one presented next (after its page was handled).
    pub fn adopt(&mut self, key: SyncKey) {
        self.synckey = key;
    }

    /// Sends a heartbeat and waits for its answer.
    pub async fn heartbeat(&mut self) -> Result<(), ClientError> {
        self.request("heartbeat", NOOP, SEQ_HEARTBEAT, &[])
            .await
            .map(drop)
    }

    /// Waits for a newnotify push (at once if one came during a request).
    /// Cancel safe.
    pub async fn wait_push(&mut self) -> Result<(), ClientError> {
        if self.notified {
            return Ok(());
        }
        loop {
            let f = self.conn.read_frame().await?.ok_or(ClientError::Closed)?;
            match f.header.cmd {
                NEWNOTIFY => {
                    self.notified = true;
                    return Ok(());
                }
                ERROR => return Err(refused("the connection", &f.body)),
                _ => {}
            }
        }
    }

    /// Confirms [`Session::synckey`] to the server with a last newsync
    /// whose page is dropped (it is offered again next time).
    pub async fn confirm(&mut self) -> Result<(), ClientError> {
        self.sync().await.map(drop)
    }
}

/// The autoauth of a cached key (with its uin), if there is one.
pub(super) fn autoauth_request(config: &Config) -> Option<(u32, AutoAuthRequest)> {
    config.auth.get(&config.user, &config.device).map(|k| {
        (
            k.uin,
            AutoAuthRequest {
                uin: Some(k.uin),
                auto_auth_key: Some(k.key.clone()),
                device_id: Some(config.device.clone()),
            },
        )
    })
}

/// Whether an autoauth was accepted; a refused one forgets the key (the
/// server restarted: a manualauth again).
pub(super) fn autoauth_accepted(config: &Config, body: &[u8]) -> Result<bool, ClientError> {
    let resp: AutoAuthResponse = messages::decode("AutoAuthResponse", body)?;
    if base_ret(&resp.base_response) == 0 {
        return Ok(true);
    }
    config.auth.set(None);
    Ok(false)
}

/// The manualauth of `config`'s user, device and password.
pub(super) fn manualauth_request(config: &Config) -> ManualAuthRequest {
    ManualAuthRequest {
        user_name: Some(SkBuiltinString::new(config.user.clone())),
        device_id: Some(config.device.clone()),
        client_version: Some(CLIENT_VERSION),
        password: config.password.clone(),
    }
}

/// The uin a manualauth answer gives; its autoauth key is cached.
pub(super) fn manualauth_answer(config: &Config, body: &[u8]) -> Result<u32, ClientError> {
    let resp: ManualAuthResponse = messages::decode("ManualAuthResponse", body)?;
    accepted("manualauth", &resp.base_response)?;
    let uin = resp.uin.unwrap_or(0);
    if let Some(key) = resp.auto_auth_key.filter(|k| !k.is_empty()) {
        config.auth.set(Some(AuthKey {
            user: config.user.clone(),
            device: config.device.clone(),
            uin,
            key,
        }));
    }
    Ok(uin)
}

/// A newsync request presenting `synckey`.
pub(super) fn sync_request(synckey: &SyncKey) -> NewSyncRequest {
    NewSyncRequest {
        oplog: None,
        selector: Some(7),
        key_buf: Some(messages::keybuf(synckey)),
        scene: Some(7),
        device_type: Some("syncscope".into()),
    }
}

/// A newsync answer: the page, or the refusal its ret says.
pub(super) fn sync_answer(body: &[u8]) -> Result<SyncPage, ClientError> {
    let resp: NewSyncResponse = messages::decode("NewSyncResponse", body)?;
    if let Some(r) = resp.ret.filter(|&r| r != 0) {
        return Err(ClientError::Refused {
            what: "newsync",
            ret: r,
            message: "newsync answer with a non-zero ret".into(),
        });
    }
    let synckey = messages::synckey_of("NewSyncResponse", &resp.key_buf)?;
    let mut receipts = Vec::new();
    let mut chat = Vec::new();
    for m in messages::add_msgs(&resp)?.iter().map(|m| m.to_chat()) {
        match (m.msg_type == MSG_TYPE_STATUS)
            .then(|| Receipt::parse(&m.content))
            .flatten()
        {
            Some(r) => receipts.push(r),
            None => chat.push(m),
        }
    }
    Ok(SyncPage {
        messages: chat,
        receipts,
        synckey,
        more: resp.continue_flag.unwrap_or(0) != 0,
    })
}

/// A newsendmsg answer for one message to `to`: its ack, or the refusal.
pub(super) fn send_answer(
    body: &[u8],
    to: &str,
    client_msg_id: u64,
) -> Result<SendAck, ClientError> {
    let resp: NewSendMsgResponse = messages::decode("NewSendMsgResponse", body)?;
    let item = resp.list.first().ok_or(ClientError::Refused {
        what: "newsendmsg",
        ret: ret::BAD_BODY,
        message: "the answer lists no message".into(),
    })?;
    match item.ret.unwrap_or(0) {
        0 => Ok(SendAck {
            msg_id: item
                .new_msg_id
                .unwrap_or_else(|| u64::from(item.msg_id.unwrap_or(0))),
            client_msg_id: client_msg_id.to_string(),
            create_time: u64::from(item.create_time.unwrap_or(0)),
        }),
        r => Err(ClientError::Refused {
            what: "newsendmsg",
            ret: r,
            // The server says why in the BaseResponse.
            message: match resp.base_response.as_ref().map(BaseResponse::message) {
                Some(why) if !why.is_empty() => why.to_owned(),
                _ if r == ret::BAD_RECIPIENT => format!("unknown recipient {to:?}"),
                _ => "message refused".into(),
            },
        }),
    }
}

fn base_ret(b: &Option<BaseResponse>) -> i32 {
    b.as_ref().and_then(|b| b.ret).unwrap_or(0)
}

/// Ok when an answer's BaseResponse says Ret 0 (or is absent), else the
/// refusal with its Ret and ErrMsg.
fn accepted(what: &'static str, b: &Option<BaseResponse>) -> Result<(), ClientError> {
    match base_ret(b) {
        0 => Ok(()),
        ret => Err(ClientError::Refused {
            what,
            ret,
            message: b
                .as_ref()
                .map(|b| b.message().to_owned())
                .unwrap_or_default(),
        }),
    }
}

fn refused(what: &'static str, body: &[u8]) -> ClientError {
    match BaseResponse::decode(body) {
        Ok(b) => ClientError::Refused {
            what,
            ret: b.ret.unwrap_or(0),
            message: b.message().to_owned(),
        },
        Err(e) => ClientError::Refused {
            what,
            ret: 0,
            message: format!("undecodable error frame: {e}"),
        },
    }
}

/// A newsendmsg request of one text message.
pub fn text_message(
    to: &str,
    content: &str,
    client_msg_id: u64,
    create_time: u32,
) -> NewSendMsgRequest {
    NewSendMsgRequest {
        count: Some(1),
        list: vec![MicroMsgRequestNew {
            to_user_name: Some(SkBuiltinString::new(to)),
            content: Some(content.to_owned()),
            msg_type: Some(MSG_TYPE_TEXT),
            create_time: Some(create_time),
            client_msg_id: Some(client_msg_id),
        }],
    }
}

/// A fresh non-zero ClientMsgId: 64 random-looking bits from the clock,
/// the process id and a counter, so ids from different devices do not
/// collide.
pub fn new_client_msg_id() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
        .hash(&mut h);
    std::process::id().hash(&mut h);
    COUNTER.fetch_add(1, Ordering::Relaxed).hash(&mut h);
    h.finish().max(1)
}

/// How [`send`] retries.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubled each time, up to 5 s.
    pub backoff: Duration,
    /// The ClientMsgId (default: a fresh one).
    pub client_msg_id: Option<u64>,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            attempts: 3,
            backoff: Duration::from_millis(200),
            client_msg_id: None,
        }
    }
}

/// [`send`] gave up.
#[derive(Debug, thiserror::Error)]
#[error("message not confirmed after {attempts} attempt(s) (ClientMsgId {client_msg_id}): {last}")]
pub struct SendFailed {
    pub attempts: u32,
    pub client_msg_id: u64,
    #[source]
    pub last: ClientError,
}

/// The attempts of one send (long link or web): one ClientMsgId for all.
pub(super) struct Retry {
    pub client_msg_id: u64,
    attempts: u32,
    made: u32,
    backoff: Duration,
}

impl Retry {
    pub(super) fn new(opts: &SendOptions) -> Retry {
        Retry {
            client_msg_id: opts.client_msg_id.unwrap_or_else(new_client_msg_id),
            attempts: opts.attempts.max(1),
            made: 0,
            backoff: opts.backoff,
        }
    }

    /// An attempt failed with `last`: gives up (permanent error or no
    /// attempts left) or waits before the next one.
    pub(super) async fn failed(&mut self, last: ClientError) -> Result<(), SendFailed> {
        self.made += 1;
        if last.is_permanent() || self.made >= self.attempts {
            return Err(SendFailed {
                attempts: self.made,
                client_msg_id: self.client_msg_id,
                last,
            });
        }
        sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(Duration::from_secs(5));
        Ok(())
    }
}

/// Sends one message on a fresh connection, retrying with the same
/// ClientMsgId when the answer does not come.
pub async fn send(
    config: &Config,
    to: &str,
    content: &str,
    opts: &SendOptions,
) -> Result<SendAck, SendFailed> {
    let mut retry = Retry::new(opts);
    loop {
        let attempt = async {
            let mut s = Session::connect(config, SyncKey::default()).await?;
            s.send(to, content, retry.client_msg_id).await
        };
        match attempt.await {
            Ok(ack) => return Ok(ack),
            Err(e) => retry.failed(e).await?,
        }
    }
}

/// Confirms pending web login `uuid` as `config.user` on a fresh
/// connection (authenticated with `config.device` and `config.password`;
/// not identified, so no device is registered).
pub async fn confirm_web_login(config: &Config, uuid: &str) -> Result<(), ClientError> {
    let mut s = Session::open(config, SyncKey::default()).await?;
    s.confirm_web_login(uuid).await
}
