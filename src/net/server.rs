//! The reference server: [`run`] serves the long link on a bound listener
//! until `shutdown` completes, then drains (mini-redis's shape: tests bind
//! port 0 and pass the listener in).
//!
//! One task per connection reads frames (check-then-parse, capped), answers
//! requests in order and writes newnotify pushes when another connection
//! stored a message for its user. Store calls go to one writer thread
//! that commits them in batches ([`Committer`], group commit); a
//! newsendmsg is committed before it is answered, and pushed after.
//!
//! Bad input (a header that is not a long-link header, a length over the
//! cap, an unknown cmd, a body that does not decode, a request before
//! identify, silence past the idle timeout) is answered with one error
//! frame ([`CMD_ERROR`], body `BaseResponse {Ret, ErrMsg}`, seq of the
//! request or 0), the connection is closed and one [`Event`] is logged.
//! Nothing a peer sends stops the server.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::futures::OwnedNotified;
use tokio::sync::{broadcast, mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{sleep, timeout, Instant};

use super::frame::{Connection, Frame, FrameError, ReadError, DEFAULT_MAX_FRAME_LEN};
use super::messages::{ret, IdentifyExt, IdentifyReply};
use super::store::{Committer, NewMessage, Sent, Store, StoreError, StoredMessage, UserId};
use super::{
    response, CMDID_ADDMSG, CMD_AUTOAUTH, CMD_ERROR, CMD_IDENTIFY, CMD_MANUALAUTH, CMD_NEWNOTIFY,
    CMD_NEWSENDMSG, CMD_NEWSYNC, CMD_NOOP, KEY_MESSAGES, MSG_TYPE_TEXT,
};
use crate::body::messages::{
    self, AddMsg, AutoAuthRequest, AutoAuthResponse, BaseResponse, BodyError, CmdItem, CmdList,
    ManualAuthRequest, ManualAuthResponse, MicroMsgResponseNew, NewSendMsgRequest,
    NewSendMsgResponse, NewSyncRequest, NewSyncResponse, SkBuiltinBuffer, SkBuiltinString,
};
use crate::body::synckey::SyncKey;
use crate::proto::longlink::SEQ_PUSH;

mod shortlink;
mod web;

/// The store as the server shares it between connections.
pub type SharedStore = Arc<Mutex<Store>>;

/// Receives the server's log events (one line each when displayed).
pub type Logger = Arc<dyn Fn(&Event) + Send + Sync>;

/// Server settings.
#[derive(Clone)]
pub struct Config {
    /// Connections served at once; one more is answered "busy" and closed.
    pub max_connections: usize,
    /// Cap on a frame, header included.
    pub max_frame_len: u32,
    /// AddMsg items per newsync response.
    pub page_size: usize,
    /// A connection with no complete frame for this long is closed.
    pub idle_timeout: Duration,
    /// Time allowed between connecting and identifying.
    pub identify_timeout: Duration,
    /// Time allowed for a frame (or an HTTP request) from its first byte
    /// to its last: a peer that trickles one is closed (slowloris).
    pub frame_timeout: Duration,
    /// Time allowed for one write (a peer that does not read is dropped).
    pub write_timeout: Duration,
    /// Unknown user names are created on identify and as recipients
    /// (`false`: only users already in the store, e.g. from `--users`).
    pub auto_register: bool,
    /// Test users (`--users`): web logins are confirmed automatically for
    /// them (a jslogin without `user=` takes the first one without a web
    /// session). Empty: a jslogin must name its user.
    pub test_users: Vec<String>,
    /// How long a web synccheck (and an unconfirmed login poll) is held
    /// when there is nothing to tell (25 s on the real service).
    pub web_poll: Duration,
    pub log: Option<Logger>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_connections: 16_384,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            page_size: 100,
            idle_timeout: Duration::from_secs(600),
            identify_timeout: Duration::from_secs(30),
            frame_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            auto_register: true,
            test_users: Vec::new(),
            web_poll: Duration::from_secs(25),
            log: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("max_connections", &self.max_connections)
            .field("max_frame_len", &self.max_frame_len)
            .field("page_size", &self.page_size)
            .field("idle_timeout", &self.idle_timeout)
            .field("identify_timeout", &self.identify_timeout)
            .field("frame_timeout", &self.frame_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("auto_register", &self.auto_register)
            .field("test_users", &self.test_users)
            .field("web_poll", &self.web_poll)
            .field("log", &self.log.is_some())
            .finish()
    }
}

/// What the server reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A connection was closed for bad input (after its error frame).
    BadInput {
        peer: SocketAddr,
        ret: i32,
        error: String,
    },
    /// A connection ended in the middle of a frame.
    Truncated { peer: SocketAddr, have: usize },
    /// A connection was refused at the connection cap.
    Busy { peer: SocketAddr },
    /// accept() failed (e.g. out of file descriptors); retried.
    Accept { error: String },
    /// A manualauth (`auto: false`) or an autoauth was accepted.
    Authenticated {
        peer: SocketAddr,
        uin: u32,
        device: String,
        auto: bool,
    },
    /// A device identified.
    Identified {
        peer: SocketAddr,
        user: String,
        device: String,
        primary: bool,
    },
    /// Shutdown began with this many connections open.
    Draining { connections: usize },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::BadInput { peer, ret, error } => {
                write!(f, "{peer}: closed for bad input (ret {ret}): {error}")
            }
            Event::Truncated { peer, have } => {
                write!(f, "{peer}: closed {have} bytes into a frame")
            }
            Event::Busy { peer } => write!(f, "{peer}: refused, at the connection cap"),
            Event::Accept { error } => write!(f, "accept failed: {error}"),
            Event::Identified {
                peer,
                user,
                device,
                primary,
            } => write!(
                f,
                "{peer}: identified as {user}/{device} ({})",
                if *primary { "primary" } else { "secondary" }
            ),
            Event::Authenticated {
                peer,
                uin,
                device,
                auto,
            } => write!(
                f,
                "{peer}: {} for uin {uin} device {device}",
                if *auto { "autoauth" } else { "manualauth" }
            ),
            Event::Draining { connections } => {
                write!(f, "shutting down, draining {connections} connections")
            }
        }
    }
}

/// Runs `f` on the store in the writer thread's next batch (group
/// commit): the result comes once the batch is committed.
async fn with_store<T, F>(store: &Committer, f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
{
    store.run(f).await
}

struct Online {
    conn: u64,
    device: String,
    notify: Arc<Notify>,
}

struct Shared {
    store: Committer,
    config: Config,
    online: Mutex<HashMap<UserId, Vec<Online>>>,
    next_conn: AtomicU64,
    web: web::WebState,
    auth_keys: Mutex<AuthKeys>,
}

/// autoauth keys given by manualauth: key -> (uin, device), the oldest
/// forgotten past [`MAX_AUTH_KEYS`]. In memory: after a restart, autoauth
/// is refused and the client does a manualauth again.
#[derive(Default)]
struct AuthKeys {
    by_key: HashMap<Vec<u8>, (u32, String)>,
    order: std::collections::VecDeque<Vec<u8>>,
}

/// An accepted auth: the uin and the device.
type Auth = Option<(u32, String)>;

/// autoauth keys remembered at most.
const MAX_AUTH_KEYS: usize = 1 << 16;

/// Fills `buf` from the operating system's random source.
fn random_fill(buf: &mut [u8]) -> Result<(), String> {
    getrandom::fill(buf).map_err(|e| format!("no random source: {e}"))
}

impl Shared {
    fn log(&self, e: Event) {
        if let Some(log) = &self.config.log {
            log(&e);
        }
    }

    fn online(&self) -> MutexGuard<'_, HashMap<UserId, Vec<Online>>> {
        self.online.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes every online connection of `user`, except those of device
    /// `except` (the sender's own device).
    fn push(&self, user: UserId, except: Option<&str>) {
        if let Some(list) = self.online().get(&user) {
            for o in list {
                if except != Some(o.device.as_str()) {
                    o.notify.notify_one();
                }
            }
        }
    }
}

/// Serves with the default [`Config`] until `shutdown` completes.
pub async fn run(listener: TcpListener, store: SharedStore, shutdown: impl Future) {
    run_with(listener, store, Config::default(), shutdown).await
}

/// Serves until `shutdown` completes, then stops accepting, tells every
/// connection to finish the request it is on and close, and returns when
/// all have.
pub async fn run_with(
    listener: TcpListener,
    store: SharedStore,
    config: Config,
    shutdown: impl Future,
) {
    let limit = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let max = config.max_connections.max(1);
    let shared = Arc::new(Shared {
        store: Committer::spawn(store),
        config,
        online: Mutex::new(HashMap::new()),
        next_conn: AtomicU64::new(1),
        web: web::WebState::default(),
        auth_keys: Mutex::new(AuthKeys::default()),
    });
    let (notify_shutdown, _) = broadcast::channel::<()>(1);
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    tokio::select! {
        _ = accept_loop(&listener, &shared, &limit, &notify_shutdown, &done_tx) => {}
        _ = shutdown => {}
    }
    drop(listener);
    shared.log(Event::Draining {
        connections: max - limit.available_permits(),
    });
    drop(notify_shutdown);
    drop(done_tx);
    // Every connection task holds a sender; recv returns None when all
    // have ended.
    let _ = done_rx.recv().await;
}

async fn accept_loop(
    listener: &TcpListener,
    shared: &Arc<Shared>,
    limit: &Arc<Semaphore>,
    notify_shutdown: &broadcast::Sender<()>,
    done: &mpsc::Sender<()>,
) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(a) => {
                backoff = Duration::from_millis(10);
                a
            }
            Err(e) => {
                shared.log(Event::Accept {
                    error: e.to_string(),
                });
                sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let Ok(permit) = Arc::clone(limit).try_acquire_owned() else {
            shared.log(Event::Busy { peer });
            let cap = shared.config.max_frame_len;
            tokio::spawn(async move {
                let mut conn = Connection::new(socket, cap);
                let body = BaseResponse::error(ret::BUSY, "server busy: too many connections");
                close_with(
                    &mut conn,
                    &super::frame::encode(CMD_ERROR, 0, &body.encode_to_vec()),
                )
                .await;
            });
            continue;
        };
        let handler = Handler {
            id: shared.next_conn.fetch_add(1, Ordering::Relaxed),
            shared: Arc::clone(shared),
            conn: Connection::new(socket, shared.config.max_frame_len),
            peer,
            session: None,
            shutdown: notify_shutdown.subscribe(),
            _done: done.clone(),
            _permit: permit,
        };
        tokio::spawn(handler.run());
    }
}

/// Writes a last message (error frame or HTTP error), closes the write
/// side, and reads (and drops) what the peer still sends for a moment, so
/// the close is a FIN after the message rather than a reset that could
/// destroy it.
async fn close_with(conn: &mut Connection<TcpStream>, last: &[u8]) {
    let linger = async {
        conn.write_raw(last).await?;
        conn.shutdown().await?;
        let mut sink = [0u8; 8192];
        let mut left = 1usize << 20;
        let stream = conn.get_mut();
        while left > 0 {
            let n = stream.read(&mut sink).await?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
        }
        Ok::<_, std::io::Error>(())
    };
    let _ = timeout(Duration::from_millis(500), linger).await;
}

/// Why a connection is closed.
enum Close {
    /// Bad input: answered with an error frame and logged.
    Bad { ret: i32, seq: u32, error: String },
    /// The peer went away mid-frame.
    Truncated(usize),
    /// An I/O error (reset, write timeout): nothing to tell the peer.
    Io,
    /// Bad input on the short link: an HTTP error response, logged.
    Http {
        status: u16,
        ret: i32,
        error: String,
    },
}

impl Close {
    fn bad(ret: i32, seq: u32, error: impl fmt::Display) -> Close {
        Close::Bad {
            ret,
            seq,
            error: error.to_string(),
        }
    }

    fn body(seq: u32, e: BodyError) -> Close {
        Close::bad(ret::BAD_BODY, seq, e)
    }

    fn store(seq: u32, e: StoreError) -> Close {
        Close::bad(ret::STORE, seq, e)
    }
}

/// The identified side of a connection.
struct Session {
    user: UserId,
    device: String,
    notify: Arc<Notify>,
}

struct Handler {
    id: u64,
    shared: Arc<Shared>,
    conn: Connection<TcpStream>,
    peer: SocketAddr,
    session: Option<Session>,
    shutdown: broadcast::Receiver<()>,
    _done: mpsc::Sender<()>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Handler {
    fn drop(&mut self) {
        if let Some(s) = &self.session {
            let mut online = self.shared.online();
            if let Some(list) = online.get_mut(&s.user) {
                list.retain(|o| o.conn != self.id);
                if list.is_empty() {
                    online.remove(&s.user);
                }
            }
        }
    }
}

impl Handler {
    async fn run(mut self) {
        match self.serve().await {
            Ok(()) | Err(Close::Io) => {}
            Err(Close::Truncated(have)) => self.shared.log(Event::Truncated {
                peer: self.peer,
                have,
            }),
            Err(Close::Bad { ret, seq, error }) => {
                let body = BaseResponse::error(ret, error.clone()).encode_to_vec();
                self.shared.log(Event::BadInput {
                    peer: self.peer,
                    ret,
                    error,
                });
                close_with(&mut self.conn, &super::frame::encode(CMD_ERROR, seq, &body)).await;
            }
            Err(Close::Http { status, ret, error }) => {
                let body = format!("syncscope: {error} (ret {ret})\n");
                self.shared.log(Event::BadInput {
                    peer: self.peer,
                    ret,
                    error,
                });
                let resp = shortlink::response(status, "text/plain", body.as_bytes(), false);
                close_with(&mut self.conn, &resp).await;
            }
        }
    }

    async fn serve(&mut self) -> Result<(), Close> {
        let config = &self.shared.config;
        let (idle, identify) = (config.idle_timeout, config.identify_timeout);
        let frame_timeout = config.frame_timeout;
        // The shutdown signal, the deadline's timer and the push signal
        // live across the loop's turns: registered once, not once per
        // frame (10 000 connections share the shutdown channel's lock and
        // the timer wheel's). The timer fires at the deadline it was set
        // for; a frame that came meanwhile moved `deadline` on, and the
        // timer is then set again (once per idle period, not per frame).
        let mut stop = self.shutdown.resubscribe();
        let stop = async move {
            let _ = stop.recv().await;
        };
        tokio::pin!(stop);
        let mut deadline = Instant::now() + identify;
        let timer = tokio::time::sleep_until(deadline);
        tokio::pin!(timer);
        // The first byte tells the long link (a frame's length: 0x00 for
        // any frame under 16 MiB) from HTTP (an upper-case method name).
        while self.conn.buffered() == 0 {
            tokio::select! {
                biased;
                _ = &mut stop => return Ok(()),
                r = self.conn.fill() => match r {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(_) => return Err(Close::Io),
                },
                _ = &mut timer => {
                    return Err(Close::bad(
                        ret::TIMEOUT,
                        0,
                        format!("no identify within {} s", identify.as_secs()),
                    ));
                }
            }
        }
        if self.conn.buffer()[0].is_ascii_uppercase() {
            return self.serve_http().await;
        }
        let mut notified: Option<Pin<Box<OwnedNotified>>> = None;
        loop {
            if notified.is_none() {
                notified = self
                    .session
                    .as_ref()
                    .map(|s| Box::pin(Arc::clone(&s.notify).notified_owned()));
            }
            let pushed = async {
                match notified.as_mut() {
                    Some(n) => n.as_mut().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = &mut stop => return Ok(()),
                r = self.conn.read_frame_within(Some(frame_timeout)) => {
                    let frame = match r {
                        Ok(Some(f)) => f,
                        Ok(None) => return Ok(()),
                        Err(ReadError::Io(_)) => return Err(Close::Io),
                        Err(ReadError::Truncated { have }) => return Err(Close::Truncated(have)),
                        Err(e @ ReadError::Slow { .. }) => return Err(Close::bad(ret::TIMEOUT, 0, e)),
                        Err(ReadError::Frame(e @ FrameError::Oversize { .. })) => {
                            return Err(Close::bad(ret::OVERSIZE, 0, e))
                        }
                        Err(ReadError::Frame(e)) => return Err(Close::bad(ret::BAD_FRAME, 0, e)),
                    };
                    self.handle(frame).await?;
                    // Until identify, the deadline counts from connecting
                    // (heartbeats do not extend it).
                    if self.session.is_some() {
                        deadline = Instant::now() + idle;
                    }
                }
                _ = pushed => {
                    notified = None;
                    self.write(CMD_NEWNOTIFY, SEQ_PUSH, &[]).await?;
                }
                _ = &mut timer => {
                    if Instant::now() < deadline {
                        timer.as_mut().reset(deadline);
                        continue;
                    }
                    let error = match self.session {
                        Some(_) => format!("no frame for {} s", idle.as_secs()),
                        None => format!("no identify within {} s", identify.as_secs()),
                    };
                    return Err(Close::bad(ret::TIMEOUT, 0, error));
                }
            }
        }
    }

    async fn write(&mut self, cmd: u32, seq: u32, body: &[u8]) -> Result<(), Close> {
        match timeout(
            self.shared.config.write_timeout,
            self.conn.write_frame(cmd, seq, body),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) | Err(_) => Err(Close::Io),
        }
    }

    async fn handle(&mut self, f: Frame) -> Result<(), Close> {
        let (cmd, seq) = (f.header.cmd, f.header.seq);
        match cmd {
            CMD_NOOP => self.write(response(CMD_NOOP), seq, &[]).await,
            CMD_MANUALAUTH | CMD_AUTOAUTH => {
                let body = self
                    .auth(cmd == CMD_AUTOAUTH, &f.body)
                    .await
                    .map_err(|e| e.close(seq))?;
                self.write(response(cmd), seq, &body).await
            }
            CMD_IDENTIFY if self.session.is_none() => self.identify(seq, &f.body).await,
            CMD_IDENTIFY => Err(Close::bad(
                ret::BAD_BODY,
                seq,
                "identify on a connection that already identified",
            )),
            CMD_NEWSYNC | CMD_NEWSENDMSG if self.session.is_none() => Err(Close::bad(
                ret::NOT_IDENTIFIED,
                seq,
                format!("cmd {cmd} before identify (cmd {CMD_IDENTIFY})"),
            )),
            CMD_NEWSYNC => self.newsync(seq, &f.body).await,
            CMD_NEWSENDMSG => self.newsendmsg(seq, &f.body).await,
            _ => Err(Close::bad(
                ret::UNKNOWN_CMD,
                seq,
                format!(
                    "unknown cmd {cmd} (served: {CMD_NOOP} noop, {CMD_MANUALAUTH} manualauth, \
                     {CMD_AUTOAUTH} autoauth, {CMD_IDENTIFY} identify, {CMD_NEWSYNC} newsync, \
                     {CMD_NEWSENDMSG} newsendmsg)"
                ),
            )),
        }
    }

    /// A manualauth or autoauth (either link): the answer's body, and one
    /// event when it was accepted.
    async fn auth(&self, auto: bool, body: &[u8]) -> Result<Vec<u8>, Failure> {
        let (answer, accepted) = if auto {
            self.shared.autoauth(body)?
        } else {
            self.shared.manualauth(body).await?
        };
        if let Some((uin, device)) = accepted {
            self.shared.log(Event::Authenticated {
                peer: self.peer,
                uin,
                device,
                auto,
            });
        }
        Ok(answer)
    }

    async fn identify(&mut self, seq: u32, body: &[u8]) -> Result<(), Close> {
        let ext = IdentifyExt::decode(body).map_err(|e| Close::body(seq, e))?;
        let device = ext.device.clone().unwrap_or_else(|| "default".to_owned());
        let presented = position(&ext.synckey);
        let (user, user_name, dev) = self
            .shared
            .identify(ext.user, ext.uin, &device)
            .await
            .map_err(|f| f.close(seq))?;
        let primary = dev.primary;
        let d = device.clone();
        let acked = with_store(&self.shared.store, move |s| s.confirm(user, &d, presented))
            .await
            .map_err(|e| Close::store(seq, e))?;
        let notify = Arc::new(Notify::new());
        // Online before the pending check: a message stored in between
        // still wakes this connection.
        self.shared.online().entry(user).or_default().push(Online {
            conn: self.id,
            device: device.clone(),
            notify: Arc::clone(&notify),
        });
        self.session = Some(Session {
            user,
            device: device.clone(),
            notify,
        });
        self.shared.log(Event::Identified {
            peer: self.peer,
            user: user_name,
            device: device.clone(),
            primary,
        });
        let reply = IdentifyReply {
            ret: 0,
            uin: u32::try_from(user).unwrap_or(0),
            primary,
        };
        self.write(response(CMD_IDENTIFY), seq, &reply.encode())
            .await?;
        let pending = with_store(&self.shared.store, move |s| s.pending(user, &device, acked))
            .await
            .map_err(|e| Close::store(seq, e))?;
        if pending {
            self.write(CMD_NEWNOTIFY, SEQ_PUSH, &[]).await?;
        }
        Ok(())
    }

    async fn newsync(&mut self, seq: u32, body: &[u8]) -> Result<(), Close> {
        let Some(s) = &self.session else {
            return Err(Close::bad(
                ret::NOT_IDENTIFIED,
                seq,
                "newsync before identify",
            ));
        };
        let (user, device) = (s.user, s.device.clone());
        let resp = self
            .shared
            .newsync(user, &device, body)
            .await
            .map_err(|f| f.close(seq))?;
        self.write(response(CMD_NEWSYNC), seq, &resp).await
    }

    async fn newsendmsg(&mut self, seq: u32, body: &[u8]) -> Result<(), Close> {
        let Some(s) = &self.session else {
            return Err(Close::bad(
                ret::NOT_IDENTIFIED,
                seq,
                "newsendmsg before identify",
            ));
        };
        let (user, device) = (s.user, s.device.clone());
        let (resp, wake) = self
            .shared
            .newsendmsg(user, &device, body)
            .await
            .map_err(|f| f.close(seq))?;
        // Committed; answered now; pushed after.
        self.write(response(CMD_NEWSENDMSG), seq, &resp).await?;
        self.shared.wake(wake);
        Ok(())
    }
}

/// A request the server refuses: the Ret code and why.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    ret: i32,
    error: String,
}

impl Failure {
    fn new(ret: i32, error: impl fmt::Display) -> Failure {
        Failure {
            ret,
            error: error.to_string(),
        }
    }

    fn close(self, seq: u32) -> Close {
        Close::Bad {
            ret: self.ret,
            seq,
            error: self.error,
        }
    }
}

impl From<BodyError> for Failure {
    fn from(e: BodyError) -> Self {
        Failure::new(ret::BAD_BODY, e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::new(ret::STORE, e)
    }
}

/// A message to store, as either link sends it.
struct Outgoing {
    /// The recipient's user name.
    to: String,
    content: String,
    msg_type: u32,
    client_msg_id: Option<String>,
}

/// Who to push to after a newsendmsg was answered.
#[derive(Debug, Default)]
struct Wake {
    from: UserId,
    from_device: String,
    to: Vec<UserId>,
}

impl Shared {
    /// Finds (or, with auto-registration, creates) a user by name, or by
    /// uin when there is no name, and registers the device.
    async fn identify(
        &self,
        name: Option<String>,
        uin: u32,
        device: &str,
    ) -> Result<(UserId, String, super::store::Device), Failure> {
        let auto = self.config.auto_register;
        let device = device.to_owned();
        with_store(&self.store, move |s| {
            let (user, name) = match name {
                Some(name) => match s.user(&name, auto)? {
                    Some(id) => (id, name),
                    None => return Ok(Err(format!("unknown user {name:?}"))),
                },
                None => match s.user_name(i64::from(uin))? {
                    Some(name) => (i64::from(uin), name),
                    None => return Ok(Err(format!("unknown uin {uin}"))),
                },
            };
            if uin != 0 && i64::from(uin) != user {
                return Ok(Err(format!("uin {uin} is not the uin of user {name:?}")));
            }
            let d = s.register_device(user, &device)?;
            Ok(Ok((user, name, d)))
        })
        .await?
        .map_err(|e| Failure::new(ret::UNKNOWN_USER, e))
    }

    /// A manualauth: the ManualAuthResponse body (a refusal is an answer
    /// with a non-zero Ret; only an undecodable body fails), and the uin
    /// and device when accepted.
    async fn manualauth(&self, body: &[u8]) -> Result<(Vec<u8>, Auth), Failure> {
        let req: ManualAuthRequest = messages::decode("ManualAuthRequest", body)?;
        let refuse = |ret: i32, why: String| {
            let body = ManualAuthResponse {
                base_response: Some(BaseResponse::error(ret, why)),
                uin: Some(0),
                auto_auth_key: None,
            }
            .encode_to_vec();
            (body, None)
        };
        let name = req.user().to_owned();
        let device = req.device_id.clone().unwrap_or_default();
        if !IdentifyExt::valid_user(&name) || !IdentifyExt::valid_device(&device) {
            return Ok(refuse(
                ret::UNKNOWN_USER,
                "manualauth needs a user name and a device id (1 to 64 characters, no spaces)"
                    .into(),
            ));
        }
        let auto = self.config.auto_register;
        let n = name.clone();
        let Some(user) = with_store(&self.store, move |s| s.user(&n, auto)).await? else {
            return Ok(refuse(ret::UNKNOWN_USER, format!("unknown user {name:?}")));
        };
        let Ok(uin) = u32::try_from(user) else {
            return Ok(refuse(
                ret::STORE,
                format!("uin {user} does not fit 32 bits"),
            ));
        };
        let mut key = vec![0u8; 16];
        random_fill(&mut key).map_err(|e| Failure::new(ret::STORE, e))?;
        {
            let mut keys = self.auth_keys.lock().unwrap_or_else(|p| p.into_inner());
            keys.by_key.insert(key.clone(), (uin, device.clone()));
            keys.order.push_back(key.clone());
            while keys.order.len() > MAX_AUTH_KEYS {
                if let Some(old) = keys.order.pop_front() {
                    keys.by_key.remove(&old);
                }
            }
        }
        let body = ManualAuthResponse {
            base_response: Some(BaseResponse::error(0, "")),
            uin: Some(uin),
            auto_auth_key: Some(key),
        }
        .encode_to_vec();
        Ok((body, Some((uin, device))))
    }

    /// An autoauth: the AutoAuthResponse body, Ret 0 when the key is the
    /// one a manualauth gave this uin and device (then also the uin and
    /// device).
    fn autoauth(&self, body: &[u8]) -> Result<(Vec<u8>, Auth), Failure> {
        let req: AutoAuthRequest = messages::decode("AutoAuthRequest", body)?;
        let uin = req.uin.unwrap_or(0);
        let device = req.device_id.unwrap_or_default();
        let known = {
            let keys = self.auth_keys.lock().unwrap_or_else(|p| p.into_inner());
            req.auto_auth_key
                .as_ref()
                .and_then(|k| keys.by_key.get(k))
                .is_some_and(|(u, d)| *u == uin && *d == device)
        };
        let (ret, msg) = if known {
            (0, String::new())
        } else {
            (
                ret::UNKNOWN_USER,
                format!("autoauth key unknown for uin {uin} device {device:?}: do a manualauth"),
            )
        };
        let body = AutoAuthResponse {
            base_response: Some(BaseResponse::error(ret, msg)),
            uin: Some(if known { uin } else { 0 }),
        }
        .encode_to_vec();
        Ok((body, known.then_some((uin, device))))
    }

    /// A newsync of `device`: the NewSyncResponse body.
    async fn newsync(&self, user: UserId, device: &str, body: &[u8]) -> Result<Vec<u8>, Failure> {
        let req: NewSyncRequest = messages::decode("NewSyncRequest", body)?;
        let key = messages::synckey_of("NewSyncRequest", &req.key_buf)?;
        let presented = position(&key);
        let wants_messages = req.selector.is_none_or(|sel| sel & 0x2 != 0);
        let device = device.to_owned();
        let limit = self.config.page_size.max(1);
        let page = with_store(&self.store, move |st| {
            if wants_messages {
                st.sync(user, &device, presented, limit)
            } else {
                let acked = st.confirm(user, &device, presented)?;
                Ok(super::store::SyncPage {
                    messages: Vec::new(),
                    next_seq: acked,
                    more: false,
                })
            }
        })
        .await?;
        let items: Vec<CmdItem> = page
            .messages
            .iter()
            .map(|m| CmdItem {
                cmd_id: Some(CMDID_ADDMSG),
                cmd_buf: Some(SkBuiltinBuffer::new(add_msg(m).encode_to_vec())),
            })
            .collect();
        Ok(NewSyncResponse {
            ret: Some(0),
            cmd_list: Some(CmdList {
                count: Some(items.len() as u32),
                list: items,
            }),
            continue_flag: Some(u32::from(page.more)),
            key_buf: Some(messages::keybuf(&synckey(page.next_seq))),
            status: Some(0),
        }
        .encode_to_vec())
    }

    /// A newsendmsg from `device`: stores every item (committed when this
    /// returns) and gives the NewSendMsgResponse body and whom to push to.
    async fn newsendmsg(
        &self,
        from: UserId,
        device: &str,
        body: &[u8],
    ) -> Result<(Vec<u8>, Wake), Failure> {
        let req: NewSendMsgRequest = messages::decode("NewSendMsgRequest", body)?;
        let now = unix_now();
        let outgoing = req
            .list
            .iter()
            .map(|item| Outgoing {
                to: item.to().to_owned(),
                content: item.content.clone().unwrap_or_default(),
                msg_type: item.msg_type.unwrap_or(MSG_TYPE_TEXT),
                client_msg_id: item
                    .client_msg_id
                    .filter(|&c| c != 0)
                    .map(|c| c.to_string()),
            })
            .collect();
        let (results, wake) = self.send_messages(from, device, outgoing).await?;
        let list: Vec<MicroMsgResponseNew> = req
            .list
            .iter()
            .zip(results)
            .map(|(item, r)| {
                let mut resp = MicroMsgResponseNew {
                    ret: Some(0),
                    to_user_name: Some(SkBuiltinString::new(item.to())),
                    msg_id: Some(0),
                    client_msg_id: item.client_msg_id,
                    create_time: Some(0),
                    server_time: Some(now as u32),
                    msg_type: Some(item.msg_type.unwrap_or(MSG_TYPE_TEXT)),
                    new_msg_id: Some(0),
                };
                match r {
                    Ok(sent) => {
                        resp.msg_id = Some(u32::try_from(sent.msg_id).unwrap_or(0));
                        resp.new_msg_id = Some(sent.msg_id);
                        resp.create_time = Some(sent.create_time as u32);
                    }
                    Err(ret) => resp.ret = Some(ret),
                }
                resp
            })
            .collect();
        let resp = NewSendMsgResponse {
            base_response: Some(BaseResponse::error(0, "")),
            count: Some(list.len() as u32),
            list,
        };
        Ok((resp.encode_to_vec(), wake))
    }

    /// Stores messages sent from `device` of `from` (committed when this
    /// returns; a ClientMsgId the sender already used gives the original
    /// message): per item the stored message or the Ret code of why not
    /// (unknown recipient), and whom to push to.
    async fn send_messages(
        &self,
        from: UserId,
        device: &str,
        items: Vec<Outgoing>,
    ) -> Result<(Vec<Result<Sent, i32>>, Wake), Failure> {
        let auto = self.config.auto_register;
        let now = unix_now();
        let from_device = device.to_owned();
        // (result, recipient to push to when the message is new)
        let results = with_store(&self.store, move |st| {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let to = if IdentifyExt::valid_user(&item.to) {
                    st.user(&item.to, auto)?
                } else {
                    None
                };
                let Some(to) = to else {
                    out.push((Err(ret::BAD_RECIPIENT), None));
                    continue;
                };
                let sent = st.send(&NewMessage {
                    from,
                    from_device: from_device.clone(),
                    to,
                    client_msg_id: item.client_msg_id,
                    msg_type: item.msg_type,
                    content: item.content,
                    create_time: now,
                })?;
                let new = (!sent.duplicate).then_some(to);
                out.push((Ok(sent), new));
            }
            Ok(out)
        })
        .await?;
        let mut wake = Wake {
            from,
            from_device: device.to_owned(),
            to: Vec::new(),
        };
        let results = results
            .into_iter()
            .map(|(r, to)| {
                wake.to.extend(to);
                r
            })
            .collect();
        Ok((results, wake))
    }

    /// Pushes newnotify for newly stored messages: to every online device
    /// of each recipient, and to the sender's other devices.
    fn wake(&self, mut w: Wake) {
        if w.to.is_empty() {
            return;
        }
        self.push(w.from, Some(&w.from_device));
        w.to.sort_unstable();
        w.to.dedup();
        for to in w.to.into_iter().filter(|&to| to != w.from) {
            self.push(to, None);
        }
    }
}

/// A device's mailbox position in its SyncKey.
fn position(sk: &SyncKey) -> u64 {
    sk.to_map().get(&KEY_MESSAGES).copied().unwrap_or(0)
}

/// The SyncKey the server issues for mailbox position `seq`: key 1
/// (profile) and 3 (contacts) stay at 1, key 2 counts messages.
pub fn synckey(seq: u64) -> SyncKey {
    SyncKey {
        keys: vec![(1, 1), (KEY_MESSAGES, seq), (3, 1)],
    }
}

fn add_msg(m: &StoredMessage) -> AddMsg {
    AddMsg {
        msg_id: Some(i32::try_from(m.msg_id).unwrap_or(0)),
        from_user_name: Some(SkBuiltinString::new(m.from.clone())),
        to_user_name: Some(SkBuiltinString::new(m.to.clone())),
        msg_type: Some(m.msg_type as i32),
        content: Some(SkBuiltinString::new(m.content.clone())),
        create_time: Some(m.create_time as u32),
        new_msg_id: Some(m.msg_id as i64),
        client_msg_id: m.client_msg_id.clone(),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
