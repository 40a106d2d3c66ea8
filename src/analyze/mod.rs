//! The analyzer: a [`crate::flow::Sink`] that detects each direction's protocol by
//! content and runs the dissectors on the reassembled bytes: long-link
//! frames (plaintext, or inside MMTLS data records when a key log opens
//! them), MMTLS records, and short-link HTTP exchanges. Every application
//! frame becomes a [`FrameRecord`] handed to the caller as it completes;
//! totals accumulate into a [`Report`].

mod body;
mod report;

use std::collections::HashMap;

use serde::Serialize;

use crate::body::protobuf::Schemas;
use crate::capture::Timestamp;
use crate::detect::{self, Protocol};
use crate::flow::{Direction, FlowMeta, FlowSummary, Side, Sink};
use crate::proto::commands::Registry;
use crate::proto::http::{self, HttpEvent};
use crate::proto::keylog::{Decrypt, KeyLog};
use crate::proto::longlink::{self, Framer, FramerEvent, Header};
use crate::proto::mmtls::{self, Splitter};
use crate::reassembly::Event;
use crate::track::pairing::{LatencyTable, Paired, Pairing};
use crate::track::synckey::{Ids, Observation, Source, Timeline};

pub use report::{AnomalyRow, CmdRow, ConnRow, LatencyRow, MmtlsTotals, Report, SyncKeySeen};

/// What the analyzer needs besides the bytes.
#[derive(Default)]
pub struct Options {
    pub registry: Registry,
    pub keylog: Option<KeyLog>,
    pub schemas: Option<Schemas>,
    /// Only connections with this port on either side.
    pub port: Option<u16>,
    /// Cap on a long-link frame's length.
    pub max_frame: Option<u32>,
}

/// Which dissector produced a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    Longlink,
    Shortlink,
    Mmtls,
    /// An HTTP exchange that is not a known web endpoint.
    Http,
    /// A web WeChat exchange (jslogin ... webwxsendmsg).
    Web,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Longlink => "longlink",
            Layer::Shortlink => "shortlink",
            Layer::Mmtls => "mmtls",
            Layer::Http => "http",
            Layer::Web => "web",
        }
    }
}

/// One application frame (or, on the `mmtls` layer, one MMTLS record).
#[derive(Debug, Clone, Serialize)]
pub struct FrameRecord {
    pub ts: Timestamp,
    pub conn: u64,
    pub dir: Direction,
    pub layer: Layer,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u32>,
    /// Frame (or record) length, header included.
    pub len: u64,
    /// request, response, push, heartbeat; for MMTLS records the record type.
    pub kind: String,
    /// Offset of the frame's first byte in its direction's TCP stream (for
    /// frames inside MMTLS records: of the record).
    pub stream_offset: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<u64>,
    pub after_gap: bool,
    /// Decoded body, or hex with an entropy figure.
    pub body: serde_json::Value,
    /// Index of the MMTLS record (per direction) the frame came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mmtls_record: Option<u64>,
    /// MMTLS records: plaintext, decrypted, no_key or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crypto: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business: Option<serde_json::Value>,
    /// HTTP exchanges: the request method and path (with query), the status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Web exchanges: the endpoint (webwxsync, synccheck, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<&'static str>,
}

/// Bytes held per direction to decide its protocol.
#[derive(Debug)]
enum Dissector {
    /// Not decided yet: the first bytes so far (at most
    /// [`detect::SNIFF_LEN`]) and their stream offset.
    Sniffing {
        at: u64,
        first: Vec<u8>,
    },
    Longlink(Framer),
    Mmtls(Box<MmtlsSide>),
    /// HTTP/1.x: both directions go to the connection's [`http::Conn`].
    Http,
    /// Anything else: counted, not dissected.
    Other,
}

/// A short-link request waiting for its response.
#[derive(Debug, Clone)]
struct ShortReq {
    uri: String,
    host: String,
    ts: Timestamp,
}

/// Where an MMTLS record was found.
enum RecCtx {
    /// On a long link (records straight on TCP), sent by this side.
    Long(Side),
    /// In a short-link request body.
    ShortRequest,
    /// In a short-link response body, with the request it answers.
    ShortResponse(Option<ShortReq>),
}

#[derive(Debug, Default)]
struct MmtlsSide {
    splitter: Splitter,
}

#[derive(Debug)]
struct SideState {
    dissector: Dissector,
    protocol: Option<Protocol>,
    preview: String,
    frames: u64,
}

impl Default for SideState {
    fn default() -> Self {
        SideState {
            dissector: Dissector::Sniffing {
                at: 0,
                first: Vec::new(),
            },
            protocol: None,
            preview: String::new(),
            frames: 0,
        }
    }
}

#[derive(Debug, Default)]
struct Conn {
    sides: [SideState; 2],
    pairing: Pairing,
    frames: u64,
    skip: bool,
    /// Short-link requests in order, for their responses (HTTP/1.1 answers in order).
    short_pending: std::collections::VecDeque<Option<ShortReq>>,
    short_links: u64,
    /// HTTP state of the connection (both directions), once a side speaks HTTP.
    http: Option<Box<http::Conn>>,
    /// MMTLS records found in HTTP bodies, numbered per direction (c2s, s2c).
    http_records: [u64; 2],
}

/// The analyzer. `F` receives each record as it completes.
pub struct Analyzer<'o, F: FnMut(&FrameRecord)> {
    opts: &'o Options,
    out: F,
    /// Per connection id: ids are dense and ours, a fast hash is enough.
    conns: HashMap<u64, Conn, foldhash::fast::FixedState>,
    latencies: LatencyTable,
    report: Report,
    timeline: Timeline,
    /// Whether frame records are wanted (bodies are decoded only then, or
    /// when a tracker needs them).
    records: bool,
}

impl<'o, F: FnMut(&FrameRecord)> Analyzer<'o, F> {
    pub fn new(opts: &'o Options, out: F) -> Self {
        Analyzer {
            opts,
            out,
            conns: HashMap::default(),
            latencies: LatencyTable::default(),
            report: Report::default(),
            timeline: Timeline::new(),
            records: true,
        }
    }

    /// Builds no frame records: only the report (faster: bodies are decoded
    /// only where the report needs them, for SyncKeys).
    pub fn without_records(mut self) -> Self {
        self.records = false;
        self
    }

    /// A SyncKey seen in a binary message: listed, and put on its session's timeline.
    fn synckey_seen(
        &mut self,
        here: &Here,
        (uin, device): (Option<u64>, Option<&str>),
        source: &str,
        keys: KeyMap,
    ) {
        let (src, message) = match source {
            "longlink_identify" => (Source::ClientPresented, "identify"),
            "newsync_response" => (Source::ServerIssued, "newsync_response"),
            "newsync_request" => (Source::ClientPresented, "newsync_request"),
            other => (
                if here.dir == Direction::ServerToClient {
                    Source::ServerIssued
                } else {
                    Source::ClientPresented
                },
                other,
            ),
        };
        self.report.synckeys.push(report::SyncKeySeen {
            ts: here.ts,
            conn: here.conn,
            dir: here.dir,
            source: source.to_owned(),
            keys: keys.clone(),
        });
        self.timeline.observe(
            Ids {
                uin,
                sid: None,
                device,
                conn: here.conn,
            },
            Observation::new(here.ts, here.conn, src, message, keys),
            false,
        );
    }

    /// The report; call after the pipeline finished.
    pub fn into_report(mut self) -> Report {
        self.report.latency = self
            .latencies
            .figures()
            .into_iter()
            .map(|(cmd, l)| (cmd, self.opts.registry.name(cmd).map(|n| n.into_owned()), l))
            .map(|(cmd, name, l)| LatencyRow {
                cmd,
                name,
                latency: l,
            })
            .collect();
        self.report.sessions = std::mem::take(&mut self.timeline).finish();
        self.report.finish();
        self.report
    }

    fn anomaly(&mut self, conn: u64, dir: Direction, offset: u64, kind: &str, detail: String) {
        self.report.anomalies.push(AnomalyRow {
            conn,
            dir,
            offset,
            kind: kind.to_owned(),
            detail,
        });
    }
}

/// Context of one event, to build records.
struct Here {
    conn: u64,
    dir: Direction,
    ts: Timestamp,
}

impl<F: FnMut(&FrameRecord)> Sink for Analyzer<'_, F> {
    fn event(&mut self, meta: &FlowMeta, side: Side, ev: Event<'_>) {
        let conn = self.conns.entry(meta.id).or_default();
        if conn.frames == 0 && conn.sides.iter().all(|s| s.protocol.is_none()) {
            if let Some(p) = self.opts.port {
                conn.skip = meta.first_src.port() != p && meta.first_dst.port() != p;
            }
        }
        if conn.skip {
            return;
        }
        let here = Here {
            conn: meta.id,
            dir: meta.direction(side),
            ts: meta.now,
        };
        match ev {
            Event::Data { offset, bytes, .. } => self.data(&here, side, offset, bytes),
            Event::Gap { len, offset, .. } => self.gap(&here, side, offset, len),
            Event::Fin { .. } | Event::Rst { .. } => {}
            Event::Anomaly(a) => {
                let detail = serde_json::to_string(&a).unwrap_or_default();
                self.anomaly(meta.id, here.dir, 0, a.kind(), detail);
            }
        }
    }

    fn flow_end(&mut self, s: &FlowSummary) {
        let Some(conn) = self.conns.remove(&s.id) else {
            // No payload at all.
            if self
                .opts
                .port
                .is_none_or(|p| s.client.port() == p || s.server.port() == p)
            {
                self.report
                    .add_conn(s, [None, None], ["".into(), "".into()], 0, 0);
            }
            return;
        };
        if conn.skip {
            return;
        }
        // HTTP ends with the connection (close-delimited bodies, cut messages).
        self.conns.insert(s.id, conn);
        for side in [Side::First, Side::Second] {
            let here = Here {
                conn: s.id,
                dir: s.direction(side),
                ts: s.last_ts,
            };
            self.decide_now(&here, side);
        }
        let here = Here {
            conn: s.id,
            dir: Direction::ClientToServer,
            ts: s.last_ts,
        };
        self.with_http(&here, |h, mut out| h.finish(&mut out));
        let mut conn = self.conns.remove(&s.id).expect("reinserted");
        for side in [Side::First, Side::Second] {
            let here = Here {
                conn: s.id,
                dir: s.direction(side),
                ts: s.last_ts,
            };
            let st = &mut conn.sides[side.index()];
            let mut skipped = Vec::new();
            match &mut st.dissector {
                Dissector::Longlink(fr) => fr.finish(&mut |e| {
                    if let FramerEvent::Skipped { offset, len, .. } = e {
                        skipped.push((offset, len));
                    }
                }),
                Dissector::Mmtls(m) => m.splitter.finish(&mut |o| {
                    if let mmtls::Output::Skipped(sk) = o {
                        skipped.push((sk.stream_offset, sk.len));
                    }
                }),
                _ => {}
            }
            for (offset, len) in skipped {
                self.anomaly(
                    s.id,
                    here.dir,
                    offset,
                    "unfinished_frame",
                    format!("{len} bytes at the end of the stream are not a whole frame"),
                );
            }
        }
        let unanswered = conn.pairing.finish();
        for (cmd, seq, _) in unanswered {
            let name = self
                .opts
                .registry
                .name(cmd)
                .map(|n| n.into_owned())
                .unwrap_or_default();
            self.report.unanswered.push(report::Unanswered {
                conn: s.id,
                cmd,
                name,
                seq,
            });
        }
        let protos = [conn.sides[0].protocol, conn.sides[1].protocol];
        let previews = [conn.sides[0].preview.clone(), conn.sides[1].preview.clone()];
        let (pc, ps) = if s.client_side == Side::First {
            (0, 1)
        } else {
            (1, 0)
        };
        self.report.add_conn(
            s,
            [protos[pc], protos[ps]],
            [previews[pc].clone(), previews[ps].clone()],
            conn.frames,
            conn.short_links,
        );
        self.report.pairing.push((
            s.id,
            conn.pairing.counts().clone(),
            conn.pairing.heartbeat_intervals(),
        ));
    }
}

impl<F: FnMut(&FrameRecord)> Analyzer<'_, F> {
    fn data(&mut self, here: &Here, side: Side, offset: u64, bytes: &[u8]) {
        let st = &mut self.conns.get_mut(&here.conn).expect("conn").sides[side.index()];
        if let Dissector::Sniffing { at, first } = &mut st.dissector {
            if first.is_empty() {
                *at = offset;
            }
            let start = *at;
            let held = first.len();
            let take = (detect::SNIFF_LEN - held).min(bytes.len());
            first.extend_from_slice(&bytes[..take]);
            let Some(proto) = detect::detect(first, false) else {
                return; // fewer than SNIFF_LEN bytes and still undecided
            };
            let probe = std::mem::take(first);
            self.set_dissector(here, side, proto, &probe);
            if held > 0 {
                self.feed(here, side, start, &probe[..held]);
            }
        }
        self.feed(here, side, offset, bytes);
    }

    /// Sets a direction's dissector from its first bytes.
    fn set_dissector(&mut self, here: &Here, side: Side, proto: Protocol, first: &[u8]) {
        let cap = self.opts.max_frame.unwrap_or(longlink::MAX_FRAME_LEN);
        let keep_all = self.records || self.opts.keylog.is_some();
        let conn = self.conns.get_mut(&here.conn).expect("conn");
        let dissector = match proto {
            Protocol::Longlink => {
                let fr = Framer::new(cap);
                // Without records and keys, only identify bodies (SyncKeys) are needed.
                Dissector::Longlink(if keep_all {
                    fr
                } else {
                    fr.keep_bodies(|h| {
                        (h.cmd == 205 && h.seq == longlink::SEQ_IDENTIFY) || h.request_cmd() == 121
                    })
                })
            }
            Protocol::Mmtls => Dissector::Mmtls(Box::default()),
            Protocol::Http => {
                conn.http
                    .get_or_insert_with(|| Box::new(http::Conn::new(http::Config::default())));
                Dissector::Http
            }
            _ => Dissector::Other,
        };
        let st = &mut conn.sides[side.index()];
        st.protocol = Some(proto);
        st.preview = detect::preview(first);
        st.dissector = dissector;
    }

    /// The direction ended (or hit a gap) while its protocol was still
    /// undecided: decide with the bytes there are and feed them.
    fn decide_now(&mut self, here: &Here, side: Side) {
        let st = &mut self.conns.get_mut(&here.conn).expect("conn").sides[side.index()];
        let Dissector::Sniffing { at, first } = &mut st.dissector else {
            return;
        };
        if first.is_empty() {
            return;
        }
        let (at, first) = (*at, std::mem::take(first));
        let proto = detect::detect(&first, true).unwrap_or(Protocol::Unknown);
        self.set_dissector(here, side, proto, &first);
        self.feed(here, side, at, &first);
    }

    fn gap(&mut self, here: &Here, side: Side, offset: u64, len: u64) {
        self.decide_now(here, side);
        let conn = self.conns.get_mut(&here.conn).expect("conn");
        let st = &mut conn.sides[side.index()];
        match &mut st.dissector {
            // Nothing seen yet: detection starts after the hole.
            Dissector::Sniffing { .. } => {}
            Dissector::Longlink(fr) => {
                let mut skipped = Vec::new();
                fr.gap(len, &mut |e| {
                    if let FramerEvent::Skipped { offset, len, .. } = e {
                        skipped.push((offset, len));
                    }
                });
                for (o, l) in skipped {
                    self.anomaly(
                        here.conn,
                        here.dir,
                        o,
                        "frame_cut_by_gap",
                        format!("{l} bytes of a frame lost to a gap"),
                    );
                }
            }
            Dissector::Mmtls(m) => m.splitter.gap(len),
            Dissector::Http => self.with_http(here, |h, mut out| h.gap(here.dir, len, &mut out)),
            Dissector::Other => {}
        }
        self.anomaly(
            here.conn,
            here.dir,
            offset,
            "gap",
            format!("{len} bytes missing from the capture"),
        );
    }

    fn feed(&mut self, here: &Here, side: Side, offset: u64, bytes: &[u8]) {
        // The dissector is taken out while it runs so that its callbacks can
        // use the rest of the analyzer; frames stay borrowed from the chunk.
        let slot = &mut self.conns.get_mut(&here.conn).expect("conn").sides[side.index()].dissector;
        let mut d = std::mem::replace(slot, Dissector::Other);
        match &mut d {
            Dissector::Longlink(fr) => fr.feed(offset, bytes, &mut |e| match e {
                FramerEvent::Frame {
                    offset,
                    header,
                    body,
                    after_gap,
                } => self.frame(
                    here,
                    side,
                    Layer::Longlink,
                    offset,
                    header,
                    body,
                    after_gap,
                    None,
                ),
                FramerEvent::Skipped { offset, len, .. } => self.anomaly(
                    here.conn,
                    here.dir,
                    offset,
                    "resync",
                    format!("{len} bytes are not long-link frames"),
                ),
                FramerEvent::Oversize { offset, header } => self.anomaly(
                    here.conn,
                    here.dir,
                    offset,
                    "oversize_frame",
                    format!(
                        "cmd {} seq {} claims {} bytes, over the cap; skipped",
                        header.cmd, header.seq, header.len
                    ),
                ),
            }),
            Dissector::Mmtls(m) => m.splitter.feed_with(offset, bytes, &mut |o| match o {
                mmtls::Output::Record(r) => {
                    self.record(
                        here,
                        r.header,
                        r.index,
                        r.stream_offset,
                        r.raw,
                        &RecCtx::Long(side),
                    );
                }
                mmtls::Output::Skipped(sk) => self.anomaly(
                    here.conn,
                    here.dir,
                    sk.stream_offset,
                    "mmtls_skipped",
                    format!("{} bytes skipped ({:?})", sk.len, sk.reason),
                ),
            }),
            Dissector::Http => self.with_http(here, |h, mut out| {
                h.feed(here.dir, offset, bytes, here.ts, &mut out)
            }),
            _ => {}
        }
        self.conns.get_mut(&here.conn).expect("conn").sides[side.index()].dissector = d;
    }

    /// Runs `f` on the connection's HTTP state, handling what it reports.
    fn with_http(
        &mut self,
        here: &Here,
        f: impl FnOnce(&mut http::Conn, &mut dyn FnMut(HttpEvent<'_>)),
    ) {
        let Some(mut h) = self.conns.get_mut(&here.conn).and_then(|c| c.http.take()) else {
            return;
        };
        f(&mut h, &mut |ev| self.http_event(here, ev));
        if let Some(c) = self.conns.get_mut(&here.conn) {
            c.http = Some(h);
        }
    }

    fn http_event(&mut self, here: &Here, ev: HttpEvent<'_>) {
        match ev {
            HttpEvent::Skipped {
                dir,
                offset,
                len,
                reason,
            } => {
                self.anomaly(
                    here.conn,
                    dir,
                    offset,
                    "http_skipped",
                    format!("{len} bytes are not HTTP ({reason})"),
                );
            }
            HttpEvent::Request(rq) => {
                let at = Here {
                    conn: here.conn,
                    dir: rq.dir,
                    ts: rq.ts_last,
                };
                let path = rq.path().unwrap_or("");
                if crate::proto::shortlink::is_mmtls_path(path) {
                    self.conns.get_mut(&here.conn).expect("conn").short_links += 1;
                    let mut req = None;
                    for (idx, off, h, raw) in self.body_records(&at, rq) {
                        if let Some(q) = self.record(&at, h, idx, off, &raw, &RecCtx::ShortRequest)
                        {
                            req = Some(q);
                        }
                    }
                    self.conns
                        .get_mut(&here.conn)
                        .expect("conn")
                        .short_pending
                        .push_back(req);
                } else if rq.method() == Some("POST")
                    && path.starts_with("/cgi-bin/micromsg-bin/")
                    && rq.body.first() == Some(&0xBF)
                {
                    // Legacy short link: the body is a business packet.
                    self.conns.get_mut(&here.conn).expect("conn").short_links += 1;
                    let req = ShortReq {
                        uri: path.to_owned(),
                        host: rq.header_str("host").unwrap_or("").to_owned(),
                        ts: rq.ts_last,
                    };
                    self.short_frame(
                        &at,
                        rq.stream_offset,
                        0,
                        &rq.body,
                        "request",
                        Some(&req),
                        None,
                    );
                    self.conns
                        .get_mut(&here.conn)
                        .expect("conn")
                        .short_pending
                        .push_back(Some(req));
                }
            }
            HttpEvent::Response {
                response: rs,
                request,
            } => {
                let at = Here {
                    conn: here.conn,
                    dir: rs.dir,
                    ts: rs.ts_last,
                };
                let path = request.and_then(|r| r.path()).unwrap_or("");
                let conn = self.conns.get_mut(&here.conn).expect("conn");
                if crate::proto::shortlink::is_mmtls_path(path) {
                    let req = conn.short_pending.pop_front().flatten();
                    let ctx = RecCtx::ShortResponse(req);
                    for (idx, off, h, raw) in self.body_records(&at, rs) {
                        self.record(&at, h, idx, off, &raw, &ctx);
                    }
                } else if request
                    .is_some_and(|r| r.method() == Some("POST") && r.body.first() == Some(&0xBF))
                    && path.starts_with("/cgi-bin/micromsg-bin/")
                {
                    let req = conn.short_pending.pop_front().flatten();
                    let latency = req
                        .as_ref()
                        .map(|r| rs.ts_last.nanos_since(&r.ts).max(0) as u64 / 1000);
                    self.short_frame(
                        &at,
                        rs.stream_offset,
                        0,
                        &rs.body,
                        "response",
                        req.as_ref(),
                        latency,
                    );
                } else {
                    self.web_exchange(&at, request, rs);
                }
            }
        }
    }

    /// The MMTLS records in an HTTP message's body, with their stream offsets.
    fn body_records(
        &mut self,
        at: &Here,
        m: &http::Message,
    ) -> Vec<(u64, u64, mmtls::RecordHeader, Vec<u8>)> {
        let body_at = m.end_offset.saturating_sub(m.wire_body_len);
        let (recs, skipped) = mmtls::split_all(body_at, &m.body);
        for sk in skipped {
            self.anomaly(
                at.conn,
                at.dir,
                sk.stream_offset,
                "mmtls_skipped",
                format!(
                    "{} bytes of an HTTP body are not MMTLS records ({:?})",
                    sk.len, sk.reason
                ),
            );
        }
        let d = at.dir as usize;
        let conn = self.conns.get_mut(&at.conn).expect("conn");
        recs.into_iter()
            .map(|r| {
                let idx = conn.http_records[d];
                conn.http_records[d] += 1;
                (idx, r.stream_offset, r.header, r.raw.to_vec())
            })
            .collect()
    }

    /// A short-link `POST .../newsync` with plain protobuf bodies (the
    /// reference server's short link): its SyncKeys go on the timeline. The
    /// user comes from the `uin` query parameter when there is one.
    fn plain_short_newsync(
        &mut self,
        at: &Here,
        path: &str,
        request: Option<&http::Message>,
        rs: &http::Message,
    ) {
        let (p, q) = path.split_once('?').unwrap_or((path, ""));
        if !p.ends_with("/newsync") {
            return;
        }
        let params = crate::proto::web::parse_query(q);
        let uin = params.get("uin").and_then(|u| u.parse().ok());
        let ids = Ids {
            uin,
            sid: None,
            device: None,
            conn: at.conn,
        };
        if let Some(rq) = request {
            if let Some(k) = body::keybuf(&rq.body, 3) {
                let obs = Observation::new(
                    rq.ts_last,
                    at.conn,
                    Source::ClientPresented,
                    "newsync_request",
                    k,
                );
                self.timeline.observe(ids, obs, false);
                self.timeline.sync_request(ids, rq.ts_last);
            }
        }
        if let Some(k) = body::keybuf(&rs.body, 4) {
            let obs = Observation::new(
                rs.ts_last,
                at.conn,
                Source::ServerIssued,
                "newsync_response",
                k,
            );
            self.timeline.observe(ids, obs, false);
            let msg_ids = body::add_msg_ids(&rs.body);
            self.timeline
                .sync_result(ids, rs.ts_last, at.conn, msg_ids.len() as u64, &msg_ids);
        }
    }

    /// A plain HTTP or web WeChat exchange: a record, and the web protocol's
    /// facts on the SyncKey timeline.
    fn web_exchange(&mut self, at: &Here, request: Option<&http::Message>, rs: &http::Message) {
        use crate::proto::web::{self, Endpoint};
        let path = request.and_then(|r| r.path()).unwrap_or("").to_owned();
        let req_body = request.map(|r| r.body.as_slice()).unwrap_or(&[]);
        let ex = web::decode(&path, req_body, Some(&rs.body));
        if ex.is_none() {
            self.plain_short_newsync(at, &path, request, rs);
        }
        let latency_us = request.map(|r| rs.ts_last.nanos_since(&r.ts_last).max(0) as u64 / 1000);
        if let Some(ex) = &ex {
            let i = &ex.info;
            let ids = Ids {
                uin: i.uin,
                sid: i.sid.as_deref(),
                device: None,
                conn: at.conn,
            };
            let req_ts = request.map_or(rs.ts_first, |r| r.ts_last);
            let obs = |ts, source, message: &str, keys: &web::KeyMap| {
                Observation::new(ts, at.conn, source, message, keys.clone())
            };
            match ex.endpoint {
                Endpoint::Newloginpage | Endpoint::Webwxinit => self.timeline.start(ids),
                _ => {}
            }
            if let Some(k) = &i.synccheck_key {
                self.timeline.observe(
                    ids,
                    obs(req_ts, Source::SynccheckParam, "synccheck", k),
                    false,
                );
            }
            if let Some(k) = &i.synckey_presented {
                self.timeline.observe(
                    ids,
                    obs(req_ts, Source::ClientPresented, "webwxsync_request", k),
                    false,
                );
            }
            if ex.endpoint == Endpoint::Webwxsync {
                self.timeline.sync_request(ids, req_ts);
            }
            if let Some(k) = &i.synckey_issued {
                let m = if ex.endpoint == Endpoint::Webwxinit {
                    "webwxinit"
                } else {
                    "webwxsync_response"
                };
                self.timeline
                    .observe(ids, obs(rs.ts_last, Source::ServerIssued, m, k), false);
            }
            if let Some(k) = &i.synccheckkey_issued {
                self.timeline.observe(
                    ids,
                    obs(
                        rs.ts_last,
                        Source::ServerIssued,
                        "webwxsync_response.SyncCheckKey",
                        k,
                    ),
                    true,
                );
            }
            if ex.endpoint == Endpoint::Webwxsync {
                let brought = i.add_msg_count.unwrap_or(0) + i.mod_contact_count.unwrap_or(0);
                let ids_list: Vec<String> = i.add_msgs.iter().map(|m| m.msg_id.clone()).collect();
                self.timeline
                    .sync_result(ids, rs.ts_last, at.conn, brought, &ids_list);
            }
            if ex.endpoint == Endpoint::Synccheck {
                self.timeline.longpoll(ids, req_ts, rs.ts_last);
                if let Some(sel) = i.selector.filter(|&s| s > 0) {
                    self.timeline.notified(ids, rs.ts_last, Some(sel));
                }
            }
            if let Some(c) = &i.client_msg_id {
                self.timeline
                    .sent(ids, rs.ts_last, at.conn, c, i.msg_id.as_deref());
            }
        }
        if !self.records {
            return;
        }
        let text = |b: &[u8]| -> serde_json::Value {
            if b.is_empty() {
                serde_json::Value::Null
            } else if let Ok(v) = serde_json::from_slice(b) {
                v
            } else if let Ok(t) = std::str::from_utf8(b) {
                t.chars().take(2048).collect::<String>().into()
            } else {
                body::raw_or_blob(b)
            }
        };
        let name = ex
            .as_ref()
            .map(|e| e.endpoint.as_str().to_owned())
            .or_else(|| {
                let p = path.split('?').next().unwrap_or("");
                p.rsplit('/').find(|s| !s.is_empty()).map(str::to_owned)
            });
        let body = match &ex {
            Some(e) => {
                serde_json::json!({ "request": e.request, "response": e.response, "info": e.info })
            }
            None => serde_json::json!({ "request": text(req_body), "response": text(&rs.body) }),
        };
        let mut problems: Vec<&String> = rs.problems.iter().collect();
        if let Some(r) = request {
            problems.extend(r.problems.iter());
        }
        let mut body = body;
        if !problems.is_empty() {
            body["problems"] = serde_json::json!(problems);
        }
        let rec = FrameRecord {
            ts: at.ts,
            conn: at.conn,
            dir: at.dir,
            layer: if ex.is_some() {
                Layer::Web
            } else {
                Layer::Http
            },
            cmd: None,
            cmd_name: name,
            seq: None,
            len: rs.end_offset - rs.stream_offset,
            kind: "response".to_owned(),
            stream_offset: rs.stream_offset,
            latency_us,
            after_gap: !rs.complete || request.is_some_and(|r| !r.complete),
            body,
            mmtls_record: None,
            crypto: None,
            uri: None,
            host: request
                .and_then(|r| r.header_str("host"))
                .map(str::to_owned),
            business: None,
            method: request.and_then(|r| r.method()).map(str::to_owned),
            path: request.and_then(|r| r.path()).map(str::to_owned),
            status: rs.status(),
            endpoint: ex.as_ref().map(|e| e.endpoint.as_str()),
        };
        (self.out)(&rec);
    }

    /// Decrypted short-link early data: URI, host and a business packet.
    fn short_request(
        &mut self,
        here: &Here,
        offset: u64,
        index: u64,
        pt: &[u8],
    ) -> Option<ShortReq> {
        use crate::proto::shortlink::ShortLinkPayload;
        let (p, _) = match ShortLinkPayload::parse(pt) {
            Ok(v) => v,
            Err(e) => {
                self.anomaly(
                    here.conn,
                    here.dir,
                    offset,
                    "shortlink_payload",
                    e.to_string(),
                );
                return None;
            }
        };
        let req = ShortReq {
            uri: p.uri.to_owned(),
            host: p.host.to_owned(),
            ts: here.ts,
        };
        self.short_frame(here, offset, index, p.body, "request", Some(&req), None);
        Some(req)
    }

    /// A decrypted short-link response: a business packet.
    fn short_response(
        &mut self,
        here: &Here,
        offset: u64,
        index: u64,
        pt: &[u8],
        req: Option<&ShortReq>,
    ) {
        let latency = req.map(|r| here.ts.nanos_since(&r.ts).max(0) as u64 / 1000);
        self.short_frame(here, offset, index, pt, "response", req, latency);
    }

    #[allow(clippy::too_many_arguments)]
    fn short_frame(
        &mut self,
        here: &Here,
        offset: u64,
        index: u64,
        packet: &[u8],
        kind: &str,
        req: Option<&ShortReq>,
        latency_us: Option<u64>,
    ) {
        let (body, business) = match body::business(self.opts, packet) {
            Some(b) => {
                if let Some((source, keys)) = b.synckey {
                    self.synckey_seen(here, (b.uin, None), source, keys);
                }
                if b.summary["cgi"] == 138 && kind == "response" {
                    let ids = Ids {
                        uin: b.uin,
                        sid: None,
                        device: None,
                        conn: here.conn,
                    };
                    self.timeline.sync_result(
                        ids,
                        here.ts,
                        here.conn,
                        b.msg_ids.len() as u64,
                        &b.msg_ids,
                    );
                }
                if b.summary["cgi"] == 138 && kind == "request" {
                    self.timeline.sync_request(
                        Ids {
                            uin: b.uin,
                            sid: None,
                            device: None,
                            conn: here.conn,
                        },
                        here.ts,
                    );
                }
                (b.body, Some(b.summary))
            }
            None => (body::raw_or_blob(packet), None),
        };
        let cgi_name = business
            .as_ref()
            .and_then(|b| b["cgi_name"].as_str().map(str::to_owned))
            .or_else(|| req.map(|r| r.uri.rsplit('/').next().unwrap_or(&r.uri).to_owned()));
        self.report.short_links += 1;
        let rec = FrameRecord {
            ts: here.ts,
            conn: here.conn,
            dir: here.dir,
            layer: Layer::Shortlink,
            cmd: business
                .as_ref()
                .and_then(|b| b["cgi"].as_u64())
                .map(|c| c as u32),
            cmd_name: cgi_name,
            seq: None,
            len: packet.len() as u64,
            kind: kind.to_owned(),
            stream_offset: offset,
            latency_us,
            after_gap: false,
            body,
            mmtls_record: Some(index),
            crypto: None,
            uri: req.map(|r| r.uri.clone()),
            host: req.map(|r| r.host.clone()),
            business,
            method: None,
            path: None,
            status: None,
            endpoint: None,
        };
        (self.out)(&rec);
    }

    fn record(
        &mut self,
        here: &Here,
        h: mmtls::RecordHeader,
        index: u64,
        offset: u64,
        raw: &[u8],
        ctx: &RecCtx,
    ) -> Option<ShortReq> {
        let payload = raw.get(mmtls::HEADER_LEN..).unwrap_or(&[]);
        let (crypto, plaintext, line) = if mmtls::is_cleartext(h.typ, payload) {
            ("plaintext", None, None)
        } else {
            match self.opts.keylog.as_ref().map(|k| k.decrypt_record(raw)) {
                Some(Decrypt::Plaintext(o)) => ("decrypted", Some(o.plaintext), Some(o.line)),
                Some(Decrypt::Failed(f)) => {
                    self.anomaly(
                        here.conn,
                        here.dir,
                        offset,
                        "mmtls_decrypt_failed",
                        f.to_string(),
                    );
                    ("failed", None, None)
                }
                _ => ("no_key", None, None),
            }
        };
        self.report.mmtls.add(h.typ.0, crypto);
        let kind = h.typ.name().unwrap_or("unknown").to_owned();
        let mut body =
            serde_json::json!({ "type": format!("0x{:02x}", h.typ.0), "len": payload.len() });
        if let Some(l) = line {
            body["keylog_line"] = l.into();
        }
        let rec = FrameRecord {
            ts: here.ts,
            conn: here.conn,
            dir: here.dir,
            layer: Layer::Mmtls,
            cmd: None,
            cmd_name: None,
            seq: None,
            len: raw.len() as u64,
            kind,
            stream_offset: offset,
            latency_us: None,
            after_gap: false,
            body,
            mmtls_record: Some(index),
            crypto: Some(crypto),
            uri: None,
            host: None,
            business: None,
            method: None,
            path: None,
            status: None,
            endpoint: None,
        };
        (self.out)(&rec);
        let pt = plaintext?;
        if h.typ.0 != 0x17 {
            return None;
        }
        let side = match ctx {
            RecCtx::ShortRequest => return self.short_request(here, offset, index, &pt),
            RecCtx::ShortResponse(req) => {
                self.short_response(here, offset, index, &pt, req.as_ref());
                return None;
            }
            RecCtx::Long(side) => *side,
        };
        // A long-link data record holds one frame.
        if let Some(fh) = Header::parse(&pt)
            .ok()
            .filter(|_| longlink::looks_like_frame(&pt))
        {
            let end = (fh.len as usize).min(pt.len());
            let body = pt.get(longlink::HEADER_LEN..end).unwrap_or(&[]);
            self.frame(
                here,
                side,
                Layer::Longlink,
                offset,
                fh,
                body,
                false,
                Some(index),
            );
        }
        None
    }

    #[allow(clippy::too_many_arguments)]
    fn frame(
        &mut self,
        here: &Here,
        side: Side,
        layer: Layer,
        offset: u64,
        h: Header,
        body: &[u8],
        after_gap: bool,
        mmtls_record: Option<u64>,
    ) {
        let conn = self.conns.get_mut(&here.conn).expect("conn");
        conn.frames += 1;
        conn.sides[side.index()].frames += 1;
        let frame_no = conn.frames;
        let paired = conn
            .pairing
            .frame(&h, here.ts, frame_no, &mut self.latencies);
        let latency_us = match paired {
            Paired::Response {
                latency_ns: Some(ns),
                ..
            } => Some(ns.max(0) as u64 / 1000),
            _ => None,
        };
        if let Paired::Request { duplicate: true } = paired {
            self.anomaly(
                here.conn,
                here.dir,
                offset,
                "duplicate_request",
                format!("cmd {} seq {} sent again before its response", h.cmd, h.seq),
            );
        }
        let name = self.opts.registry.name(h.cmd).map(|n| n.into_owned());
        self.report
            .add_frame(h.cmd, name.clone(), h.len as u64, h.kind());
        let ids = Ids {
            uin: None,
            sid: None,
            device: None,
            conn: here.conn,
        };
        match (h.kind(), h.request_cmd()) {
            (longlink::Kind::Push, 24) => self.timeline.notified(ids, here.ts, None),
            (longlink::Kind::Request, 121) => self.timeline.sync_request(ids, here.ts),
            _ => {}
        }
        let needed = self.records
            || (h.cmd == 205 && h.seq == longlink::SEQ_IDENTIFY)
            || h.request_cmd() == 121
            || (self.opts.keylog.is_some() && body.first() == Some(&0xBF));
        if !needed {
            return;
        }
        let decoded = body::decode(self.opts, &h, body, self.records);
        if h.kind() == longlink::Kind::Response
            && h.request_cmd() == 121
            && decoded.synckey.is_some()
        {
            let ids = Ids {
                uin: decoded.uin,
                sid: None,
                device: None,
                conn: here.conn,
            };
            self.timeline.sync_result(
                ids,
                here.ts,
                here.conn,
                decoded.msg_ids.len() as u64,
                &decoded.msg_ids,
            );
        }
        if let Some(sk) = &decoded.synckey {
            self.synckey_seen(
                here,
                (decoded.uin, decoded.device.as_deref()),
                decoded.synckey_source.unwrap_or("body"),
                sk.clone(),
            );
        }
        let rec = FrameRecord {
            ts: here.ts,
            conn: here.conn,
            dir: here.dir,
            layer,
            cmd: Some(h.cmd),
            cmd_name: name,
            seq: Some(h.seq),
            len: h.len as u64,
            kind: h.kind().as_str().to_owned(),
            stream_offset: offset,
            latency_us,
            after_gap,
            body: decoded.value,
            mmtls_record,
            crypto: None,
            uri: None,
            host: None,
            business: decoded.business,
            method: None,
            path: None,
            status: None,
            endpoint: None,
        };
        (self.out)(&rec);
    }
}

pub use crate::body::synckey::KeyMap;
