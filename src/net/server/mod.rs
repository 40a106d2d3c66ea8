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
//! ```text
//! mod.rs        Config, Event, run/run_with: the accept loop, the connection cap, the drain
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
//!   mod.rs        route(service, request, origin): the endpoints (jslogin ... held synccheck,
//!                 webwxsync, webwxsendmsg, logout); tests.rs: them on an in-memory store
//!   session.rs    WebState: pending logins, sessions, how a request names one, expiry
//! ```

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, Semaphore};
use tokio::time::sleep;

use super::frame::{self, Connection, DEFAULT_MAX_FRAME_LEN};
use super::messages::ret;
use super::store::{Committer, Store};
use crate::body::messages::BaseResponse;
use crate::proto::commands::ERROR;

mod conn;
mod http;
mod service;
mod shortlink;
mod web;

use conn::{close_with, Handler};
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
    let shared = Arc::new(Service::new(Committer::spawn(store), config));
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
    shared: &Arc<Service>,
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
                close_with(&mut conn, &frame::encode(ERROR, 0, &body.encode_to_vec())).await;
            });
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
        };
        tokio::spawn(handler.run());
    }
}
