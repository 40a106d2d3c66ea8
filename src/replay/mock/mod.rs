//! `syncscope serve --replay CAPTURE`: a mock server that answers clients
//! from a recording (a bot tested without a phone). No store: every
//! answer is one the capture holds, matched on (cmd or endpoint, the
//! request's fields minus the volatile ones; [`index`]).
//!
//! * Long link ([`longlink`]): the answer's header gets the live request's
//!   seq; the SyncKeys are the recorded ones, issued in order. The pushes
//!   (newnotify) a recorded session got after an answer are sent after
//!   that answer, so a listening client syncs again and gets the next
//!   recorded page.
//! * HTTP ([`http`]): the recorded response, Content-Length and
//!   Connection made to fit, Set-Cookie as recorded (the client presents
//!   the recorded cookies back, which matching ignores), the recorded
//!   server's address in a body (a login's redirect_uri) replaced by the
//!   live Host. A web synccheck gets its recorded answers (the selector
//!   that made the client sync); once they are used up it is held, as the
//!   server holds it, and answered "nothing new".
//! * A request the recording does not hold: by [`Unmatched`] (an error
//!   frame or HTTP 404 naming it, or the nearest recorded request's
//!   answer), each one reported as an [`Event`] and counted in the
//!   [`Summary`].

pub mod http;
pub mod index;
pub mod longlink;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc};
use tokio::time::timeout;

use crate::analyze::Options;
use crate::net::frame::{Connection, DEFAULT_MAX_FRAME_LEN};
use crate::proto::commands::{IDENTIFY, MANUALAUTH, NOOP};
use crate::proto::web::Endpoint;
use crate::replay::recording::{Link, Recording, Step};

pub use index::{request_volatile, strip_volatile, Found, Index, Unmatched, ANY};

/// A recorded long-link answer and the pushes that followed it.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameAnswer {
    pub cmd: u32,
    pub body: Vec<u8>,
    /// (cmd, seq, body) of each push, in order.
    pub pushes: Vec<(u32, u32, Vec<u8>)>,
}

/// A recorded HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpAnswer {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, Vec<u8>)>,
    /// De-chunked and decoded (then `Content-Encoding` is not sent).
    pub body: Vec<u8>,
    pub decoded: bool,
    /// The recorded server's `host:port` (replaced by the live Host in
    /// the body).
    pub server: String,
}

/// What the mock has of a recording.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Indexed {
    /// Sessions indexed (long link, HTTP).
    pub sessions: usize,
    /// Recorded exchanges indexed.
    pub exchanges: usize,
    pub pushes: usize,
    /// Sessions the mock cannot answer (Mars framing, MMTLS short link,
    /// unknown), by link.
    pub skipped: Vec<(u64, Link)>,
}

/// The recording, indexed, and the decoding of live requests.
pub struct Mock {
    frames: Mutex<Index<FrameAnswer>>,
    http: Mutex<Index<HttpAnswer>>,
    opts: Options,
    pub indexed: Indexed,
}

/// The long-link name of a cmd in the index.
fn cmd_key(cmd: u32) -> String {
    format!("cmd {cmd}")
}

/// The HTTP name of a request in the index: method and web endpoint, or
/// method and path without the query.
pub fn http_key(method: &str, path: &str) -> String {
    let name = match Endpoint::from_path(path) {
        Some(e) => e.as_str().to_owned(),
        None => path.split('?').next().unwrap_or(path).to_owned(),
    };
    format!("{method} {name}")
}

/// User and device a long-link request names (manualauth, identify).
pub fn identity(cmd: u32, value: &Value) -> Option<(String, String)> {
    let s = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
    let (user, device) = match cmd {
        MANUALAUTH => (s(&value["UserName"]["String"]), s(&value["DeviceId"])),
        IDENTIFY => (
            s(&value["identify"]["network_id_ctx"]),
            s(&value["identify"]["network_id"]),
        ),
        _ => return None,
    };
    Some((user?, device.unwrap_or_default()))
}

/// Scopes to look in, most specific first.
pub fn scopes(who: Option<&(String, String)>) -> Vec<String> {
    match who {
        Some((u, d)) => vec![format!("{u}/{d}"), u.clone(), ANY.to_owned()],
        None => vec![ANY.to_owned()],
    }
}

impl Mock {
    /// Indexes `rec`; `opts` decode the live requests as the recording's
    /// were decoded (the same schemas and profile).
    pub fn new(rec: &Recording, opts: Options) -> Mock {
        let volatile = request_volatile();
        let mut frames = Index::new(volatile.clone());
        let mut http = Index::new(volatile);
        let mut indexed = Indexed::default();
        // HTTP clients spread requests over connections (a pool, a second
        // one for the held poll): their exchanges are indexed in recorded
        // time order across connections.
        let mut http_steps: Vec<(&Step, &str)> = Vec::new();
        for s in &rec.sessions {
            match s.link {
                Link::Longlink => {
                    let who = s.steps.iter().find_map(|st| match st {
                        Step::Frame { request, .. } => identity(request.cmd, &request.value),
                        _ => None,
                    });
                    let scopes = scopes(who.as_ref());
                    // Pushes go after the answer to the session's last
                    // request before them; heartbeats do not count (their
                    // timing is the client's clock, not the conversation).
                    let mut last = Vec::new();
                    for st in &s.steps {
                        match st {
                            Step::Frame {
                                request,
                                answer: Some(a),
                            } => {
                                let slots = frames.insert(
                                    &scopes,
                                    &cmd_key(request.cmd),
                                    &request.value,
                                    FrameAnswer {
                                        cmd: a.cmd,
                                        body: a.body.clone(),
                                        pushes: Vec::new(),
                                    },
                                );
                                indexed.exchanges += 1;
                                if request.cmd != NOOP {
                                    last = slots;
                                }
                            }
                            Step::Push(w) => {
                                for slot in &last {
                                    if let Some(a) = frames.at(slot) {
                                        a.pushes.push((w.cmd, w.seq, w.body.clone()));
                                    }
                                }
                                indexed.pushes += usize::from(!last.is_empty());
                            }
                            _ => {}
                        }
                    }
                    indexed.sessions += 1;
                }
                Link::Http => {
                    http_steps.extend(s.steps.iter().map(|st| (st, s.server.as_str())));
                    indexed.sessions += 1;
                }
                link => indexed.skipped.push((s.conn, link)),
            }
        }
        http_steps.sort_by(|a, b| a.0.ts().nanos_since(&b.0.ts()).cmp(&0));
        for (st, server) in http_steps {
            let Step::Http {
                request, response, ..
            } = st
            else {
                continue;
            };
            let m = &request.message;
            let r = &response.message;
            let crate::proto::http::Start::Response { status, reason } = &r.start else {
                continue;
            };
            http.insert(
                &[ANY.to_owned()],
                &http_key(m.method().unwrap_or(""), m.path().unwrap_or("")),
                &request.value,
                HttpAnswer {
                    status: *status,
                    reason: reason.clone(),
                    headers: r.headers.clone(),
                    body: r.body.clone(),
                    decoded: r.decoded,
                    server: server.to_owned(),
                },
            );
            indexed.exchanges += 1;
        }
        Mock {
            frames: Mutex::new(frames),
            http: Mutex::new(http),
            opts,
            indexed,
        }
    }

    fn frames(&self) -> MutexGuard<'_, Index<FrameAnswer>> {
        self.frames.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn http(&self) -> MutexGuard<'_, Index<HttpAnswer>> {
        self.http.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A cmd's name for people (`newsync (cmd 121)`).
    fn cmd_name(&self, cmd: u32) -> String {
        match self.opts.registry.name(cmd) {
            Some(n) => format!("{n} (cmd {cmd})"),
            None => format!("cmd {cmd}"),
        }
    }
}

/// Receives the mock's events.
pub type Logger = Arc<dyn Fn(&Event) + Send + Sync>;

/// How the mock serves.
#[derive(Clone)]
pub struct Config {
    pub unmatched: Unmatched,
    /// Cap on a request frame or HTTP body.
    pub max_frame_len: u32,
    /// Time allowed for one frame or HTTP request, first byte to last.
    pub frame_timeout: Duration,
    /// A connection with nothing for this long is closed.
    pub idle_timeout: Duration,
    /// How long a web synccheck with nothing recorded left is held.
    pub web_poll: Duration,
    pub log: Option<Logger>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            unmatched: Unmatched::Error,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            frame_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(600),
            web_poll: Duration::from_secs(25),
            log: None,
        }
    }
}

/// What the mock reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A request the recording does not hold, and what was done.
    Unmatched {
        conn: u64,
        peer: SocketAddr,
        /// `newsendmsg (cmd 237)`, `POST webwxsendmsg`.
        what: String,
        applied: Applied,
    },
    /// A connection closed for bad input (after an error frame or HTTP error).
    BadInput {
        conn: u64,
        peer: SocketAddr,
        error: String,
    },
}

/// What was done with an unmatched request.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// `--unmatched error`: an error frame or HTTP 404.
    Error,
    /// `--unmatched nearest`, but nothing of its cmd or endpoint was
    /// recorded: the error.
    NothingNear,
    /// The nearest recorded request's answer; the fields that differ.
    Nearest { differing: Vec<String> },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Unmatched {
                conn,
                peer,
                what,
                applied,
            } => {
                write!(f, "unmatched: conn {conn} ({peer}) {what}: ")?;
                match applied {
                    Applied::Error => write!(f, "policy error: answered with an error"),
                    Applied::NothingNear => write!(
                        f,
                        "policy nearest: nothing of this kind recorded, answered with an error"
                    ),
                    Applied::Nearest { differing } => write!(
                        f,
                        "policy nearest: answered as the recorded request that differs in {}",
                        if differing.is_empty() {
                            "no field".to_owned()
                        } else {
                            differing.join(", ")
                        }
                    ),
                }
            }
            Event::BadInput { conn, peer, error } => {
                write!(f, "conn {conn} ({peer}) closed for bad input: {error}")
            }
        }
    }
}

/// Counts of a mock's run.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub connections: u64,
    /// Requests answered from the recording (exact matches).
    pub answered: u64,
    /// Unmatched requests answered with an error.
    pub unmatched_error: u64,
    /// Unmatched requests answered with the nearest recorded answer.
    pub unmatched_nearest: u64,
    /// Pushes sent (newnotify).
    pub pushes: u64,
    /// Web synccheck polls held with nothing recorded left.
    pub held: u64,
}

impl Summary {
    pub fn unmatched(&self) -> u64 {
        self.unmatched_error + self.unmatched_nearest
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} connection(s); {} request(s) answered from the recording; {} unmatched \
             ({} answered with an error, {} with the nearest recorded answer); {} pushes sent",
            self.connections,
            self.answered,
            self.unmatched(),
            self.unmatched_error,
            self.unmatched_nearest,
            self.pushes
        )
    }
}

#[derive(Default)]
struct Stats {
    connections: AtomicU64,
    answered: AtomicU64,
    unmatched_error: AtomicU64,
    unmatched_nearest: AtomicU64,
    pushes: AtomicU64,
    held: AtomicU64,
}

impl Stats {
    fn add(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn summary(&self) -> Summary {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Summary {
            connections: g(&self.connections),
            answered: g(&self.answered),
            unmatched_error: g(&self.unmatched_error),
            unmatched_nearest: g(&self.unmatched_nearest),
            pushes: g(&self.pushes),
            held: g(&self.held),
        }
    }
}

/// What a connection task shares.
pub(crate) struct Shared {
    mock: Arc<Mock>,
    config: Config,
    stats: Stats,
}

impl Shared {
    fn log(&self, e: Event) {
        if let Some(l) = &self.config.log {
            l(&e);
        }
    }

    /// Counts an unmatched request by how it was answered, and reports it.
    fn unmatched(&self, conn: u64, peer: SocketAddr, what: String, applied: Applied) {
        match applied {
            Applied::Nearest { .. } => Stats::add(&self.stats.unmatched_nearest),
            _ => Stats::add(&self.stats.unmatched_error),
        }
        self.log(Event::Unmatched {
            conn,
            peer,
            what,
            applied,
        });
    }
}

/// One live connection.
pub(crate) struct Peer {
    id: u64,
    addr: SocketAddr,
    shutdown: broadcast::Receiver<()>,
}

/// Serves `mock` on `listener` until `shutdown` completes, then closes
/// every connection (a held poll is answered at once) and returns the
/// counts.
pub async fn serve(
    listener: TcpListener,
    mock: Arc<Mock>,
    config: Config,
    shutdown: impl Future,
) -> Summary {
    let shared = Arc::new(Shared {
        mock,
        config,
        stats: Stats::default(),
    });
    let (stop, _) = broadcast::channel::<()>(1);
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let accept = async {
        let mut next = 0u64;
        loop {
            let Ok((socket, addr)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let _ = socket.set_nodelay(true);
            Stats::add(&shared.stats.connections);
            let peer = Peer {
                id: next,
                addr,
                shutdown: stop.subscribe(),
            };
            next += 1;
            let shared = Arc::clone(&shared);
            let done = done_tx.clone();
            tokio::spawn(async move {
                connection(&shared, socket, peer).await;
                drop(done);
            });
        }
    };
    tokio::select! {
        _ = accept => {}
        _ = shutdown => {}
    }
    drop(listener);
    drop(stop);
    drop(done_tx);
    let _ = done_rx.recv().await;
    shared.stats.summary()
}

/// The first byte tells HTTP (an upper-case method) from long-link frames.
async fn connection(shared: &Shared, socket: TcpStream, mut peer: Peer) {
    let mut conn = Connection::new(socket, shared.config.max_frame_len);
    let first = async {
        while conn.buffered() == 0 {
            if conn.fill().await.ok()? == 0 {
                return None;
            }
        }
        Some(())
    };
    let got = tokio::select! {
        r = timeout(shared.config.idle_timeout, first) => r.ok().flatten(),
        _ = peer.shutdown.recv() => None,
    };
    if got.is_none() {
        return;
    }
    if conn.buffer()[0].is_ascii_uppercase() {
        http::serve(shared, &mut conn, &mut peer).await
    } else {
        longlink::serve(shared, &mut conn, &mut peer).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::ConnKind;
    use crate::capture::Timestamp;
    use crate::flow::Direction;
    use crate::proto::http::{Message, Start};
    use crate::replay::recording::{HttpPart, Session};

    fn message(start: Start, dir: Direction, body: &[u8], at: i64) -> Message {
        let ts = Timestamp::new(1_700_000_000 + at, 0, 6);
        Message {
            dir,
            start,
            version: 1,
            headers: Vec::new(),
            body: body.to_vec(),
            wire_body_len: body.len() as u64,
            encoding: None,
            decoded: false,
            chunked: false,
            stream_offset: 0,
            end_offset: 0,
            ts_first: ts,
            ts_last: ts,
            complete: true,
            problems: Vec::new(),
        }
    }

    /// A synccheck at second `at` answered with `body`.
    fn synccheck(at: i64, body: &str) -> Step {
        let path = "/cgi-bin/mmwebwx-bin/synccheck?synckey=1_1".to_owned();
        let request = message(
            Start::Request {
                method: "GET".into(),
                path,
            },
            Direction::ClientToServer,
            b"",
            at,
        );
        let response = message(
            Start::Response {
                status: 200,
                reason: "OK".into(),
            },
            Direction::ServerToClient,
            body.as_bytes(),
            at,
        );
        Step::Http {
            name: "synccheck".into(),
            request: Box::new(HttpPart {
                message: request,
                value: Value::Null,
            }),
            response: Box::new(HttpPart {
                message: response,
                value: Value::Null,
            }),
        }
    }

    fn session(conn: u64, steps: Vec<Step>) -> Session {
        Session {
            conn,
            client: format!("127.0.0.1:{}", 1000 + conn),
            server: "127.0.0.1:8080".into(),
            kind: ConnKind::Http,
            link: Link::Http,
            steps,
        }
    }

    #[test]
    fn http_answers_keep_the_recorded_order_across_connections() {
        // A client whose polls went over two connections in turn.
        let rec = Recording {
            sessions: vec![
                session(0, vec![synccheck(1, "first"), synccheck(3, "third")]),
                session(1, vec![synccheck(2, "second")]),
            ],
            ..Recording::default()
        };
        let mock = Mock::new(&rec, Options::default());
        assert_eq!(mock.indexed.exchanges, 3);
        let key = http_key("GET", "/cgi-bin/mmwebwx-bin/synccheck");
        let got: Vec<String> = (0..3)
            .map(|_| {
                match mock
                    .http()
                    .answer(&[ANY.to_owned()], &key, &Value::Null, Unmatched::Error)
                {
                    Found::Exact { answer, .. } => String::from_utf8(answer.body).unwrap(),
                    f => panic!("{f:?}"),
                }
            })
            .collect();
        assert_eq!(got, ["first", "second", "third"]);
    }
}
