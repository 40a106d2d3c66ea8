//! A capture read as sessions to send again: per client connection, what
//! the client sent in order, each with the answer it got, and the pushes
//! the server sent. Built on the analyzer (the same reassembly, detection,
//! framing, MMTLS decryption and HTTP parsing as `analyze`), with
//! [`Options::raw`] set so that every record carries its bytes.

use std::collections::{BTreeMap, VecDeque};

use serde_json::Value;

use crate::analyze::{Analyzer, ConnKind, FrameRecord, Layer, Options, Raw};
use crate::capture::{PacketSource, Timestamp};
use crate::flow::{self, Direction};
use crate::pipeline::{self, RunSummary};
use crate::proto::commands::response;
use crate::proto::http;

/// One long-link frame as recorded.
#[derive(Debug, Clone)]
pub struct Wire {
    pub ts: Timestamp,
    pub cmd: u32,
    pub seq: u32,
    pub body: Vec<u8>,
    /// The body as the analyzer decoded it.
    pub value: Value,
    /// Framed with the Tencent Mars 20-byte header.
    pub mars: bool,
}

/// One HTTP message as recorded, with its decoded body.
#[derive(Debug, Clone)]
pub struct HttpPart {
    pub message: http::Message,
    pub value: Value,
}

/// One thing a session did, in the order of the capture.
#[derive(Debug, Clone)]
pub enum Step {
    /// A long-link frame the client sent and the answer it got (none: no
    /// answer in the capture; heartbeats and requests expect one).
    Frame { request: Wire, answer: Option<Wire> },
    /// A frame the server sent unasked (newnotify, or an answer to nothing
    /// the capture shows).
    Push(Wire),
    /// An HTTP exchange (web, plain short link, other HTTP). `name`: the
    /// web endpoint or the path's last segment.
    Http {
        name: String,
        request: Box<HttpPart>,
        response: Box<HttpPart>,
    },
    /// Something recorded that cannot be sent again, and why.
    Unsendable {
        ts: Timestamp,
        name: String,
        why: String,
    },
}

impl Step {
    /// When the client sent it (a push: when it arrived).
    pub fn ts(&self) -> Timestamp {
        match self {
            Step::Frame { request, .. } => request.ts,
            Step::Push(w) => w.ts,
            Step::Http { request, .. } => request.message.ts_first,
            Step::Unsendable { ts, .. } => *ts,
        }
    }

    /// When its answer arrived, if one was recorded.
    pub fn answer_ts(&self) -> Option<Timestamp> {
        match self {
            Step::Frame { answer, .. } => answer.as_ref().map(|a| a.ts),
            Step::Push(w) => Some(w.ts),
            Step::Http { response, .. } => Some(response.message.ts_last),
            Step::Unsendable { .. } => None,
        }
    }
}

/// How a session is sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Link {
    /// Long-link frames (16-byte header), plain or from MMTLS records.
    Longlink,
    /// Long-link frames with the Tencent Mars 20-byte header.
    Mars,
    /// HTTP requests (web, the plain short link, other HTTP).
    Http,
    /// MMTLS short-link business packets.
    Shortlink,
    /// Nothing the replay knows how to send.
    None,
}

/// One recorded client connection.
#[derive(Debug, Clone)]
pub struct Session {
    pub conn: u64,
    pub client: String,
    pub server: String,
    pub kind: ConnKind,
    pub link: Link,
    pub steps: Vec<Step>,
}

impl Session {
    /// First timestamp of the session's steps.
    pub fn start(&self) -> Option<Timestamp> {
        self.steps.iter().map(Step::ts).min()
    }
}

/// A capture's sessions, in order of connection id.
#[derive(Debug, Default)]
pub struct Recording {
    pub sessions: Vec<Session>,
    pub summary: RunSummary,
}

/// Collects records into sessions.
#[derive(Default)]
struct Collect {
    steps: BTreeMap<u64, Vec<Step>>,
    /// Steps of a connection still waiting for their answer.
    pending: BTreeMap<u64, VecDeque<usize>>,
    layers: BTreeMap<u64, Layer>,
}

impl Collect {
    fn record(&mut self, r: &FrameRecord) {
        let Some(raw) = r.raw.as_deref() else {
            return;
        };
        self.layers.entry(r.conn).or_insert(r.layer);
        let steps = self.steps.entry(r.conn).or_default();
        match raw {
            Raw::Frame(body) => {
                let (Some(cmd), Some(seq)) = (r.cmd, r.seq) else {
                    return;
                };
                let wire = Wire {
                    ts: r.ts,
                    cmd,
                    seq,
                    body: body.clone(),
                    value: r.body.clone(),
                    mars: r.layer == Layer::Mars,
                };
                let pending = self.pending.entry(r.conn).or_default();
                if r.dir == Direction::ClientToServer {
                    if matches!(r.kind.as_str(), "request" | "heartbeat") {
                        pending.push_back(steps.len());
                    }
                    steps.push(Step::Frame {
                        request: wire,
                        answer: None,
                    });
                    return;
                }
                // An answer: the oldest waiting request with its cmd (or,
                // a Mars echo, the same cmd) and seq.
                let found = pending.iter().position(|&i| match &steps[i] {
                    Step::Frame { request, .. } => {
                        (response(request.cmd) == cmd || request.cmd == cmd && wire.mars)
                            && request.seq == seq
                    }
                    _ => false,
                });
                match found.and_then(|p| pending.remove(p)) {
                    Some(i) => {
                        if let Step::Frame { answer, .. } = &mut steps[i] {
                            *answer = Some(wire);
                        }
                    }
                    None => steps.push(Step::Push(wire)),
                }
            }
            Raw::Business(_) => {
                if r.dir == Direction::ClientToServer {
                    steps.push(Step::Unsendable {
                        ts: r.ts,
                        name: r.cmd_name.clone().unwrap_or_else(|| "short link".into()),
                        why: "an MMTLS short-link request: its business packet is \
                              encrypted with the session's key, which a plaintext \
                              server cannot read"
                            .into(),
                    });
                }
            }
            Raw::Exchange { request, response } => {
                let name = r.endpoint.map(str::to_owned).or_else(|| r.cmd_name.clone());
                let name = name.unwrap_or_else(|| "http".into());
                let Some(request) = request else {
                    steps.push(Step::Unsendable {
                        ts: response.ts_first,
                        name,
                        why: "a response whose request the capture does not hold \
                              (it starts mid-stream)"
                            .into(),
                    });
                    return;
                };
                if !request.complete {
                    steps.push(Step::Unsendable {
                        ts: request.ts_first,
                        name,
                        why: format!(
                            "the request was cut in the capture ({})",
                            request.problems.join("; ")
                        ),
                    });
                    return;
                }
                let (rq, rs) = match r.body.get("request") {
                    Some(v) => (
                        v.clone(),
                        r.body.get("response").cloned().unwrap_or_default(),
                    ),
                    None => (Value::Null, Value::Null),
                };
                steps.push(Step::Http {
                    name,
                    request: Box::new(HttpPart {
                        message: (**request).clone(),
                        value: rq,
                    }),
                    response: Box::new(HttpPart {
                        message: (**response).clone(),
                        value: rs,
                    }),
                });
            }
        }
    }
}

impl Recording {
    /// Reads a capture into sessions. `opts` decode the bodies (key log,
    /// schemas, profile); its `raw` is set here.
    pub fn read<P: PacketSource + ?Sized>(
        source: &mut P,
        opts: &mut Options,
        flow_cfg: flow::Config,
    ) -> Recording {
        opts.raw = true;
        let mut collect = Collect::default();
        let opts = &*opts;
        let mut an = Analyzer::new(opts, |r| collect.record(r));
        let summary = pipeline::run(source, flow_cfg, &mut an, |_| {});
        let report = an.into_report();
        let mut sessions = Vec::new();
        for row in report.connections {
            let steps = collect.steps.remove(&row.id).unwrap_or_default();
            if steps.is_empty() {
                continue;
            }
            let link = match (collect.layers.get(&row.id), row.kind) {
                (Some(Layer::Mars), _) => Link::Mars,
                (Some(Layer::Longlink), _) => Link::Longlink,
                (Some(Layer::Http | Layer::Web), _) => Link::Http,
                (Some(Layer::Shortlink), _) | (_, ConnKind::MmtlsShort) => Link::Shortlink,
                _ => Link::None,
            };
            sessions.push(Session {
                conn: row.id,
                client: row.client,
                server: row.server,
                kind: row.kind,
                link,
                steps,
            });
        }
        Recording { sessions, summary }
    }
}
