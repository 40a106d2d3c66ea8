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
//! frame ([`ERROR`], body `BaseResponse {Ret, ErrMsg}`, seq of the
//! request or 0), the connection is closed and one [`Event`] is logged.
//! Nothing a peer sends stops the server.
//!
//! Who may do what is [`Access`]'s: test mode (nothing checked) or
//! identity enforced on every link. A connection that has not
//! authenticated has [`Config::auth_timeout`] to do so, and one address
//! may hold at most [`Config::max_unauthenticated_per_ip`] of them; a
//! connection refused at a cap is told so in its own protocol (an error
//! frame, or HTTP 503 when its first byte starts an HTTP method).
//!
//! ```text
//! mod.rs        Config, Event, run/run_with: the accept loop, the caps, the drain; bind (backlog),
//!               raise_open_file_limit, default_max_connections
//! access.rs     Access (test mode or enforced: passwords, web auto-confirm), PeerSlots (the
//!               per-address cap on connections not yet authenticated)
//! conn.rs       Handler (the only one): one connection; the long-link frame loop (read, apply,
//!               write, push, idle timer); HTTP connections go to http::serve
//! service.rs    Service: the command logic without sockets (auth, identify, heartbeat, newsync,
//!               newsendmsg, pushes, offline), shared by the long link, the short link and the web
//!   tests.rs      the commands on an in-memory store (and the helpers the route tests share)
//! http.rs       HTTP on the same port: the request reader over proto::http, Request, Reply,
//!               Origin (what a route needs of its connection), serve: the loop that routes
//! shortlink.rs  route(service, request, peer): POST /cgi-bin/micromsg-bin/newsync|newsendmsg|
//!               manualauth|autoauth
//! web/          web WeChat, no socket either
//!   mod.rs        route(service, request, origin): the endpoints (contacts, held synccheck,
//!                 webwxsync, webwxsendmsg, logout); tests.rs: them on an in-memory store
//!   login.rs      jslogin (GET or POST), the login poll, the ticket page (301, XML, cookies)
//!   session.rs    WebState: pending logins, sessions, how a request names one, expiry
//! ```

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{broadcast, mpsc, Semaphore};
use tokio::time::{sleep, timeout};

use super::frame::{self, Connection, DEFAULT_MAX_FRAME_LEN};
use super::messages::ret;
use super::store::{Committer, Store};
use crate::body::messages::BaseResponse;
use crate::proto::commands::ERROR;

mod access;
mod conn;
mod h2;
mod http;
mod media;
mod receipts;
mod service;
mod shortlink;
pub mod tls;
mod web;

use access::PeerSlots;
pub use access::{new_password, Access};
use conn::{close_with, Handler};
pub(crate) use http::{next_request, Request as HttpRequest};
pub use media::{thumbnail, valid_client_id, THUMB_SIDE};
pub use service::synckey;
use service::Service;

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
    /// Time allowed between connecting and authenticating (a manualauth
    /// or autoauth accepted; in test mode an identify counts too).
    pub auth_timeout: Duration,
    /// Connections one address may hold that have not authenticated yet
    /// (HTTP connections count for their whole life); more are refused as
    /// at the connection cap.
    pub max_unauthenticated_per_ip: usize,
    /// Time allowed for a frame (or an HTTP request) from its first byte
    /// to its last: a peer that trickles one is closed (slowloris).
    pub frame_timeout: Duration,
    /// Time allowed for one write (a peer that does not read is dropped).
    pub write_timeout: Duration,
    /// Unknown user names are created on identify and as recipients
    /// (`false`: only users already in the store, e.g. from `--users`).
    pub auto_register: bool,
    /// Test users (`--users`): when web logins are confirmed automatically
    /// ([`Access::auto_confirm`]), a jslogin without `user=` takes the
    /// first one without a web session; with `user=` it must be one of
    /// them. Empty: a jslogin names its user, or waits for a device.
    pub test_users: Vec<String>,
    /// Test mode, or identity enforced ([`Access`]).
    pub access: Access,
    /// Items a newsendmsg may carry ([`DEFAULT_MAX_SEND_ITEMS`]); more is
    /// refused whole.
    pub max_send_items: usize,
    /// How long a web synccheck (and an unconfirmed login poll) is held
    /// when there is nothing to tell (25 s on the real service).
    pub web_poll: Duration,
    /// Bytes one upload part (or one download answer) carries at most.
    pub max_media_part: usize,
    /// Bytes an image or a voice recording may have.
    pub max_media_len: usize,
    /// Uploads a user may have unfinished at once; a new one past it is
    /// refused.
    pub max_open_uploads: usize,
    /// An upload unfinished for this long is dropped (counted and logged).
    pub upload_ttl: Duration,
    /// Receipts (delivered, read) are made and sent to the senders'
    /// devices ([`crate::net::store::Store::set_receipts`]). Off by
    /// default: they add status messages to the senders' mailboxes, which
    /// changes the conversation the shipped samples recorded.
    pub receipts: bool,
    /// HTTPS on the same port (`--tls-cert`): connections whose first byte
    /// is a TLS handshake record are served HTTP over TLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub log: Option<Logger>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_connections: 16_384,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            page_size: 100,
            idle_timeout: Duration::from_secs(600),
            auth_timeout: Duration::from_secs(10),
            max_unauthenticated_per_ip: DEFAULT_MAX_UNAUTHENTICATED_PER_IP,
            frame_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            auto_register: true,
            test_users: Vec::new(),
            access: Access::test_mode(),
            max_send_items: DEFAULT_MAX_SEND_ITEMS,
            web_poll: Duration::from_secs(25),
            max_media_part: DEFAULT_MAX_MEDIA_PART,
            max_media_len: DEFAULT_MAX_MEDIA_LEN,
            max_open_uploads: DEFAULT_MAX_OPEN_UPLOADS,
            upload_ttl: Duration::from_secs(600),
            receipts: false,
            tls: None,
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
            .field("auth_timeout", &self.auth_timeout)
            .field(
                "max_unauthenticated_per_ip",
                &self.max_unauthenticated_per_ip,
            )
            .field("frame_timeout", &self.frame_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("auto_register", &self.auto_register)
            .field("test_users", &self.test_users)
            .field("access", &self.access)
            .field("max_send_items", &self.max_send_items)
            .field("web_poll", &self.web_poll)
            .field("max_media_part", &self.max_media_part)
            .field("max_media_len", &self.max_media_len)
            .field("max_open_uploads", &self.max_open_uploads)
            .field("upload_ttl", &self.upload_ttl)
            .field("receipts", &self.receipts)
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
    /// A connection was refused: its address holds `cap` connections that
    /// have not authenticated yet.
    PeerBusy { peer: SocketAddr, cap: usize },
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
    /// Unfinished uploads dropped for age ([`Config::upload_ttl`]).
    UploadsExpired { count: usize },
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
            Event::PeerBusy { peer, cap } => write!(
                f,
                "{peer}: refused, its address holds {cap} connections not yet authenticated"
            ),
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
            Event::UploadsExpired { count } => {
                write!(
                    f,
                    "dropped {count} unfinished uploads (older than the upload TTL)"
                )
            }
        }
    }
}

/// Default of [`Config::max_unauthenticated_per_ip`].
pub const DEFAULT_MAX_UNAUTHENTICATED_PER_IP: usize = 256;
/// Default of [`Config::max_media_part`]: 64 KiB (clients send about 1.5 KB).
pub const DEFAULT_MAX_MEDIA_PART: usize = 64 << 10;
/// Default of [`Config::max_media_len`]: 8 MiB.
pub const DEFAULT_MAX_MEDIA_LEN: usize = 8 << 20;
/// Default of [`Config::max_open_uploads`].
pub const DEFAULT_MAX_OPEN_UPLOADS: usize = 16;
/// Default of [`Config::max_send_items`].
pub const DEFAULT_MAX_SEND_ITEMS: usize = 100;
/// Default listen backlog ([`bind`]; the kernel may cap it, on Linux at
/// `net.core.somaxconn`).
pub const DEFAULT_BACKLOG: u32 = 1024;
/// File descriptors kept out of the connection cap: the store's files,
/// the runtime's, standard streams, and refusals being written.
pub const RESERVED_FDS: u64 = 256;
/// Refusals (error frame or 503) being written at once; past that a
/// refused connection is just closed.
const MAX_REFUSING: usize = 64;
/// How long a refused connection is given to send its first byte (which
/// says whether it is told in HTTP or in a long-link frame).
const REFUSAL_WAIT: Duration = Duration::from_secs(1);

/// Raises the open-file limit's soft value to its hard one; the new soft
/// limit.
pub fn raise_open_file_limit() -> io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// The connection cap an open-file limit allows: the limit less
/// [`RESERVED_FDS`], at least 16 and at most 65 536.
pub fn default_max_connections(open_files: u64) -> usize {
    let n = open_files.saturating_sub(RESERVED_FDS).clamp(16, 65_536);
    usize::try_from(n).unwrap_or(65_536)
}

/// A listener on `addr` (`host:port`; the first address it resolves to
/// that binds) with a listen backlog of `backlog` (SO_REUSEADDR set, as
/// tokio's `TcpListener::bind` does).
pub async fn bind(addr: &str, backlog: u32) -> io::Result<TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        };
        let bound = socket.and_then(|s| {
            #[cfg(unix)]
            s.set_reuseaddr(true)?;
            s.bind(a)?;
            s.listen(backlog)
        });
        match bound {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{addr} resolves to no address"),
        )
    }))
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
    let max = config.max_connections.max(1);
    let caps = Caps {
        connections: Arc::new(Semaphore::new(max)),
        unauthenticated: PeerSlots::new(config.max_unauthenticated_per_ip),
        refusing: Arc::new(Semaphore::new(MAX_REFUSING)),
    };
    store
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .set_receipts(config.receipts);
    let shared = Arc::new(Service::new(Committer::spawn(store), config));
    let (notify_shutdown, _) = broadcast::channel::<()>(1);
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    tokio::select! {
        _ = accept_loop(&listener, &shared, &caps, &notify_shutdown, &done_tx) => {}
        _ = shutdown => {}
    }
    drop(listener);
    shared.log(Event::Draining {
        connections: max - caps.connections.available_permits(),
    });
    drop(notify_shutdown);
    drop(done_tx);
    // Every connection task holds a sender; recv returns None when all
    // have ended.
    let _ = done_rx.recv().await;
}

/// The accept loop's caps.
struct Caps {
    /// Connections served at once.
    connections: Arc<Semaphore>,
    /// Connections not yet authenticated, per address.
    unauthenticated: Arc<PeerSlots>,
    /// Refusals being written.
    refusing: Arc<Semaphore>,
}

async fn accept_loop(
    listener: &TcpListener,
    shared: &Arc<Service>,
    caps: &Caps,
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
        let Ok(permit) = Arc::clone(&caps.connections).try_acquire_owned() else {
            shared.log(Event::Busy { peer });
            refuse(caps, socket, "server busy: too many connections");
            continue;
        };
        let Some(slot) = caps.unauthenticated.take(peer.ip()) else {
            let cap = caps.unauthenticated.cap();
            shared.log(Event::PeerBusy { peer, cap });
            refuse(
                caps,
                socket,
                "server busy: too many connections from your address are not authenticated yet",
            );
            continue;
        };
        let handler = Handler {
            link: shared.link(peer),
            shared: Arc::clone(shared),
            conn: Connection::new(socket, shared.config.max_frame_len),
            peer,
            shutdown: notify_shutdown.subscribe(),
            _done: done.clone(),
            _permit: permit,
            unauthenticated: Some(slot),
        };
        tokio::spawn(handler.run());
    }
}

/// Tells a refused connection why, in its own protocol: HTTP 503 when its
/// first byte starts an HTTP method, else a long-link error frame (Ret
/// busy). At most [`MAX_REFUSING`] at once; past that it is just closed.
fn refuse(caps: &Caps, socket: TcpStream, why: &'static str) {
    let Ok(permit) = Arc::clone(&caps.refusing).try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let mut conn = Connection::new(socket, 64);
        let mut first = [0u8; 1];
        let http = matches!(
            timeout(REFUSAL_WAIT, conn.get_mut().peek(&mut first)).await,
            Ok(Ok(1)) if first[0].is_ascii_uppercase()
        );
        let last = if http {
            let body = format!("syncscope: {why} (ret {})\n", ret::BUSY);
            http::response(503, "text/plain", body.as_bytes(), false)
        } else {
            let body = BaseResponse::error(ret::BUSY, why);
            frame::encode(ERROR, 0, &body.encode_to_vec())
        };
        close_with(&mut conn, &last).await;
    });
}
