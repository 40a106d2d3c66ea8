//! The analyzer: a [`crate::flow::Sink`] that detects each direction's protocol by
//! content and runs the dissectors on the reassembled bytes: long-link
//! frames (plaintext, or inside MMTLS data records when a key log opens
//! them), MMTLS records, and short-link HTTP exchanges. Every application
//! frame becomes a [`FrameRecord`] handed to the caller as it completes;
//! totals accumulate into a [`Report`].
//!
//! This file holds the sink: per-connection and per-direction state,
//! protocol detection and dispatch. Each protocol's glue lives in its own
//! file, mirroring `proto/`: `longlink.rs`, `mmtls.rs`, `shortlink.rs`,
//! `web.rs` (HTTP and web WeChat); body decoding in `decode.rs`, the
//! record type in `record.rs`, the totals in `report.rs`.

/// `Display` and `== "name"` for a fact enum named by its `as_str`.
macro_rules! named {
    ($t:ty) => {
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

mod decode;
mod filter;
mod h2;
mod longlink;
mod mmtls;
mod packets;
pub mod plots;
mod record;
mod report;
mod roles;
mod sends;
mod shared;
mod shortlink;
mod tls;
mod web;

use std::collections::HashMap;

use crate::body::protobuf::Schemas;
use crate::capture::Timestamp;
use crate::detect::{self, Protocol};
use crate::flow::{Direction, FlowMeta, FlowSummary, Side, Sink};
use crate::proto::commands::Registry;
use crate::proto::http;
use crate::proto::keylog::KeyLog;
use crate::proto::longlink::{Variant, MARS_HEADER_LEN, MAX_FRAME_LEN};
use crate::proto::mmtls::Output as MmtlsOutput;
use crate::reassembly::Event;
use crate::track::pairing::Pairing;
use crate::track::synckey::Ids;

pub use crate::body::synckey::KeyMap;
pub use decode::{
    decode as decode_frame_body, resolve_profile, schema_or_raw, BusinessSummary,
    ProfileMessageError, SyncKeySource,
};
pub use filter::{CmdError, CmdMatch, RecordFilter};
pub use mmtls::Crypto;
pub use record::{FrameRecord, Layer, Raw};
pub use report::{
    AnomalyKind, AnomalyRow, CmdRow, ConnKind, ConnRow, LatencyRow, LayerCounts, MessageRow,
    MmtlsTotals, Report, SyncKeySeen,
};
pub use roles::RolesBy;
pub use shared::{Op, Shared};
pub use tls::TlsTotals;
pub use web::request_value as http_request_value;
pub use web::text as http_body_value;

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
    /// Records carry the bytes they were decoded from ([`FrameRecord::raw`]):
    /// what `replay` sends again and compares with.
    pub raw: bool,
    /// Collect what the HTML report plots ([`Report::plots`]).
    pub plots: bool,
}

/// Bytes held per direction to decide its protocol.
#[derive(Debug)]
enum Dissector {
    /// Not decided yet: the first bytes so far (at most
    /// [`detect::SNIFF_LEN`] while [`detect::detect`] judges the start;
    /// at most [`detect::SEARCH_LEN`] once it found no known protocol and
    /// [`detect::locate`] searches for a resync point from `search`) and
    /// their stream offset.
    Sniffing {
        at: u64,
        first: Vec<u8>,
        search: Option<usize>,
    },
    Longlink(longlink::LonglinkSide),
    Mmtls(Box<mmtls::MmtlsSide>),
    Tls(Box<tls::TlsSide>),
    /// HTTP/1.x: both directions go to the connection's [`http::Conn`].
    Http,
    /// HTTP/2 in clear text: both directions go to the connection's
    /// [`h2::Conn`](crate::proto::h2::Conn).
    H2,
    /// Anything else: counted, not dissected.
    Other,
}

impl Dissector {
    /// The stream ended: (offset, length) of bytes left that are not a
    /// whole record (MMTLS; a long-link framer is finished by the glue).
    fn finish(&mut self) -> Vec<(u64, u64)> {
        let mut skipped = Vec::new();
        // Long-link frames can still come out: see `longlink_finish`.
        if let Dissector::Mmtls(m) = self {
            m.splitter.finish(&mut |o| {
                if let MmtlsOutput::Skipped(sk) = o {
                    skipped.push((sk.stream_offset, sk.len));
                }
            });
        }
        skipped
    }
}

#[derive(Debug)]
struct SideState {
    dissector: Dissector,
    protocol: Option<Protocol>,
    preview: String,
    frames: u64,
    /// Set when a gap came before the direction's protocol was found: it
    /// is searched again after the gap. The offset and number of the bytes
    /// before the gap(s) that were no known protocol (reported when one is
    /// found).
    resumed: Option<(u64, u64)>,
}

impl Default for SideState {
    fn default() -> Self {
        SideState {
            dissector: Dissector::Sniffing {
                at: 0,
                first: Vec::new(),
                search: None,
            },
            protocol: None,
            preview: String::new(),
            frames: 0,
            resumed: None,
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
    short_pending: std::collections::VecDeque<Option<shortlink::ShortReq>>,
    short_links: u64,
    /// TLS state of the connection (both directions), once a record is seen.
    tls: Option<Box<tls::TlsConn>>,
    /// HTTP state of the connection (both directions), once a side speaks HTTP.
    http: Option<Box<http::Conn>>,
    /// HTTP/2 state of the connection (both directions), once a side speaks it.
    h2: Option<Box<crate::proto::h2::Conn>>,
    /// MMTLS records found in HTTP bodies, numbered per direction (c2s, s2c).
    http_records: [u64; 2],
    /// Client and server as the analyzer uses them (inferred without a handshake).
    roles: roles::Roles,
    /// Evidence seen against the inferred roles.
    role_conflicts: u64,
    /// Which packet carried which bytes, per side (see `packets.rs`).
    marks: [packets::Marks; 2],
    /// Messages per layer (`frames` is filled in at the end from the field above).
    layers: report::LayerCounts,
}

/// The analyzer. `F` receives each record as it completes.
pub struct Analyzer<'o, F: FnMut(&FrameRecord)> {
    opts: &'o Options,
    out: F,
    /// Per connection id: ids are dense and ours, a fast hash is enough.
    conns: HashMap<u64, Conn, foldhash::fast::FixedState>,
    /// The report, the SyncKey timeline and the latencies: what spans
    /// connections (see `shared.rs`).
    shared: Shared,
    /// In a worker of a split run: the changes to `shared`, logged instead
    /// of applied (see [`Analyzer::logging`]).
    log: Option<Vec<Op>>,
    /// Whether frame records are wanted (bodies are decoded only then, or
    /// when a tracker needs them).
    records: bool,
    /// Number of the packet being processed (0: not numbered).
    packet: u64,
}

impl<'o, F: FnMut(&FrameRecord)> Analyzer<'o, F> {
    pub fn new(opts: &'o Options, out: F) -> Self {
        Analyzer {
            opts,
            out,
            conns: HashMap::default(),
            shared: Shared::default(),
            log: None,
            records: true,
            packet: 0,
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
        source: SyncKeySource,
        keys: KeyMap,
    ) {
        let seen = report::SyncKeySeen {
            ts: here.ts,
            conn: here.conn,
            dir: here.dir,
            source,
            keys: keys.clone(),
        };
        let (conn, device) = (here.conn, device.map(str::to_owned));
        let obs = source.observation(here.ts, here.conn, keys);
        self.shared(move |g| {
            g.report.synckeys.push(seen);
            let ids = Ids {
                uin,
                sid: None,
                user: None,
                device: device.as_deref(),
                conn,
            };
            g.timeline.observe(ids, obs, false);
        });
    }

    /// The report; call after the pipeline finished.
    pub fn into_report(mut self) -> Report {
        self.shared.report.latency = self
            .shared
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
        if self.opts.plots {
            let registry = &self.opts.registry;
            self.shared.report.plots.latency = self
                .shared
                .latencies
                .samples()
                .into_iter()
                .map(|(cmd, s)| {
                    let name = registry
                        .name(cmd)
                        .map_or_else(|| cmd.to_string(), |n| n.into_owned());
                    (name, s.to_vec())
                })
                .collect();
            let more = self.shared.report.message_latency_samples();
            self.shared.report.plots.latency.extend(more);
        }
        (self.shared.report.sessions, self.shared.report.lifecycle) =
            std::mem::take(&mut self.shared.timeline).finish_all();
        // One anomaly list: the sessions' anomalies are in it too.
        for s in &self.shared.report.sessions {
            let who = match (s.uin, &s.sid) {
                (Some(u), _) => format!("uin {u}"),
                (None, Some(sid)) => format!("sid {sid}"),
                (None, None) => "session".to_owned(),
            };
            for a in &s.anomalies {
                self.shared.report.anomalies.push(AnomalyRow {
                    conn: a.conn,
                    dir: a.dir,
                    offset: 0,
                    packet: a.packet,
                    kind: AnomalyKind::Session(a.kind),
                    detail: format!("{who}: {}", a.detail),
                });
            }
        }
        self.shared.report.finish();
        self.shared.report
    }

    fn anomaly(
        &mut self,
        conn: u64,
        dir: Direction,
        offset: u64,
        kind: AnomalyKind,
        detail: String,
    ) {
        let packet = self.packet_at(conn, dir, offset);
        let row = AnomalyRow {
            conn,
            dir,
            offset,
            packet,
            kind,
            detail,
        };
        self.shared(move |g| {
            g.report.anomalies.push(row);
        });
    }
}

/// Context of one event, to build records.
struct Here {
    conn: u64,
    dir: Direction,
    ts: Timestamp,
    /// How the roles behind `dir` were decided.
    roles: RolesBy,
}

/// Whole microseconds of a duration in nanoseconds (negative: 0).
fn micros(ns: i64) -> u64 {
    ns.max(0) as u64 / 1000
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
        conn.roles.sync(meta);
        let here = Here {
            conn: meta.id,
            dir: conn.roles.direction(side),
            ts: meta.now,
            roles: conn.roles.by(),
        };
        self.packet = meta.packet;
        self.shared
            .timeline
            .at_packet((meta.packet > 0).then_some(meta.packet));
        match ev {
            Event::Data {
                offset,
                bytes,
                packet,
                ..
            } => {
                if !matches!(conn.sides[side.index()].dissector, Dissector::Other) {
                    let cap = if self.records {
                        packets::MAX_MARKS
                    } else {
                        packets::MAX_MARKS_REPORT_ONLY
                    };
                    conn.marks[side.index()].add(offset, packet, cap);
                }
                self.data(&here, side, offset, bytes)
            }
            Event::Gap { len, offset, .. } => self.gap(&here, side, offset, len),
            Event::Fin { .. } | Event::Rst { .. } => {}
            Event::Anomaly(a) => {
                // The packet that showed it (a retransmission, a new SYN).
                let row = AnomalyRow {
                    conn: meta.id,
                    dir: here.dir,
                    offset: a.offset().unwrap_or(0),
                    packet: a.packet().or((meta.packet > 0).then_some(meta.packet)),
                    kind: AnomalyKind::Reassembly(a.kind()),
                    detail: serde_json::to_string(&a).unwrap_or_default(),
                };
                self.shared(move |g| {
                    g.report.anomalies.push(row);
                });
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
                let roles = roles::Roles::of_summary(s);
                let s = roles.apply(s);
                self.shared(move |g| {
                    g.report.add_conn(
                        &s,
                        roles.by(),
                        [None, None],
                        ["".into(), "".into()],
                        report::LayerCounts::default(),
                        0,
                    );
                });
            }
            return;
        };
        if conn.skip {
            return;
        }
        // HTTP ends with the connection (close-delimited bodies, cut messages).
        self.conns.insert(s.id, conn);
        for side in [Side::First, Side::Second] {
            let here = self.here(s.id, side, s.last_ts);
            self.decide_now(&here, side);
            let st = &mut self.conns.get_mut(&s.id).expect("reinserted").sides[side.index()];
            if st.protocol.is_none() && st.resumed.is_some() {
                // Searched again after a gap, and nothing came.
                st.protocol = Some(Protocol::Unknown);
            }
        }
        let roles = {
            let r = &mut self.conns.get_mut(&s.id).expect("reinserted").roles;
            r.settle(s);
            *r
        };
        let s = &roles.apply(s);
        let here = self.here(s.id, roles.client(), s.last_ts);
        self.with_http(&here, |h, mut out| h.finish(&mut out));
        self.h2_finish(&here);
        for side in [Side::First, Side::Second] {
            let here = self.here(s.id, side, s.last_ts);
            let mut d = self.take_dissector(&here, side);
            if let Dissector::Longlink(fr) = &mut d {
                self.longlink_finish(&here, side, fr);
            }
            if let Dissector::Tls(t) = &mut d {
                self.tls_finish(&here, t);
            }
            for (offset, len) in d.finish() {
                self.anomaly(
                    s.id,
                    here.dir,
                    offset,
                    AnomalyKind::UnfinishedFrame,
                    format!("{len} bytes at the end of the stream are not a whole frame"),
                );
            }
        }
        let mut conn = self.conns.remove(&s.id).expect("reinserted");
        let unanswered: Vec<report::Unanswered> = conn
            .pairing
            .finish()
            .into_iter()
            .map(|(cmd, seq, _)| report::Unanswered {
                conn: s.id,
                cmd,
                name: self
                    .opts
                    .registry
                    .name(cmd)
                    .map(|n| n.into_owned())
                    .unwrap_or_default(),
                seq,
            })
            .collect();
        let protos = [conn.sides[0].protocol, conn.sides[1].protocol];
        let previews = [conn.sides[0].preview.clone(), conn.sides[1].preview.clone()];
        let (pc, ps) = if s.client_side == Side::First {
            (0, 1)
        } else {
            (1, 0)
        };
        let s = s.clone();
        let by = roles.by();
        let layers = report::LayerCounts {
            frames: conn.frames,
            ..conn.layers
        };
        let pairing = (
            s.id,
            conn.pairing.counts().clone(),
            conn.pairing.heartbeat_intervals(),
        );
        let (short_links, role_conflicts) = (conn.short_links, conn.role_conflicts);
        let tls = conn.tls.map(|t| t.facts);
        self.shared(move |g| {
            for u in unanswered {
                g.report.unanswered.push(u);
            }
            let row = g.report.add_conn(
                &s,
                by,
                [protos[pc], protos[ps]],
                [previews[pc].clone(), previews[ps].clone()],
                layers,
                short_links,
            );
            row.role_conflicts = role_conflicts;
            if let Some(facts) = tls {
                row.server_name.clone_from(&facts.server_name);
                row.tls = Some(facts);
            }
            g.report.pairing.push(pairing);
        });
    }
}

impl<F: FnMut(&FrameRecord)> Analyzer<'_, F> {
    /// Context of an event of `side` on `conn`, by the roles as known now.
    fn here(&self, conn: u64, side: Side, ts: Timestamp) -> Here {
        let roles = &self.conns.get(&conn).expect("conn").roles;
        Here {
            conn,
            dir: roles.direction(side),
            ts,
            roles: roles.by(),
        }
    }

    /// `side`'s protocol was just decided, its data starting with `first`
    /// at stream offset `offset`: if the connection's roles are still open,
    /// they are inferred now, before any of its records is built. If they
    /// were inferred already, a hello of the other role is a conflict
    /// (long-link and HTTP evidence is checked frame by frame, message by
    /// message: see [`Self::role_evidence`]).
    fn infer_roles(&mut self, conn: u64, side: Side, proto: Protocol, first: &[u8], offset: u64) {
        let evidence = roles::evidence(proto, first);
        let r = &mut self.conns.get_mut(&conn).expect("conn").roles;
        if r.by() == RolesBy::FirstPacket {
            r.infer(side, proto, evidence);
        } else if let Some(e) = evidence
            .filter(|_| matches!(proto, Protocol::Mmtls | Protocol::Tls | Protocol::Unknown))
        {
            let (by, dir) = (r.by(), r.direction(side));
            self.role_evidence(conn, by, dir, offset, e.client, || e.what.to_owned());
        }
    }

    /// Evidence that the sender of `dir` is the client (`client`) or the
    /// server: when it contradicts roles inferred (`by` protocol or port),
    /// the roles stay as they are and the conflict is reported and counted.
    /// `what` names the evidence (built only for a conflict).
    fn role_evidence(
        &mut self,
        conn: u64,
        by: RolesBy,
        dir: Direction,
        offset: u64,
        client: bool,
        what: impl FnOnce() -> String,
    ) {
        if !roles::Roles::contradicted(by, dir, client) {
            return;
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.role_conflicts += 1;
        }
        let sender = if dir == Direction::ClientToServer {
            "client"
        } else {
            "server"
        };
        self.anomaly(
            conn,
            dir,
            offset,
            AnomalyKind::RoleConflict,
            format!(
                "{} from the {sender} (roles inferred by {by}; kept)",
                what()
            ),
        );
    }

    fn data(&mut self, here: &Here, side: Side, offset: u64, mut bytes: &[u8]) {
        let mut offset = offset;
        let st = &mut self.conns.get_mut(&here.conn).expect("conn").sides[side.index()];
        if let Dissector::Sniffing { at, first, search } = &mut st.dissector {
            if first.is_empty() {
                *at = offset;
            }
            let start = *at;
            let held = first.len();
            if search.is_none() {
                let take = (detect::SNIFF_LEN - held).min(bytes.len());
                first.extend_from_slice(&bytes[..take]);
                match detect::detect(first, false) {
                    None => return, // fewer than SNIFF_LEN bytes and still undecided
                    Some(Protocol::Unknown) if detect::worth_searching(first) => {
                        // Mid-stream, or garbage first: search on.
                        *search = Some(0);
                        bytes = &bytes[take..];
                        offset += take as u64;
                    }
                    Some(proto) => {
                        let probe = std::mem::take(first);
                        self.set_dissector(here, side, proto, &probe);
                        let head = [&probe[..held], bytes].concat();
                        self.infer_roles(here.conn, side, proto, &head, start);
                        if held > 0 {
                            self.feed(here, side, start, &probe[..held]);
                        }
                        self.feed(here, side, offset, bytes);
                        return;
                    }
                }
            }
            let take = (detect::SEARCH_LEN - first.len()).min(bytes.len());
            first.extend_from_slice(&bytes[..take]);
            let full = first.len() >= detect::SEARCH_LEN;
            if !self.search(here, side, full) {
                return;
            }
            bytes = &bytes[take..];
            offset += take as u64;
        }
        self.feed(here, side, offset, bytes);
    }

    /// Searches a direction's held bytes for a resync point (see
    /// [`detect::locate`]); `complete`: no more bytes will be held. When one
    /// is found the bytes before it are reported and those after it fed;
    /// when none can be any more the direction is unknown. Whether the
    /// direction is decided.
    fn search(&mut self, here: &Here, side: Side, complete: bool) -> bool {
        let mars_version = self.opts.registry.mars_client_version();
        let conn = self.conns.get_mut(&here.conn).expect("conn");
        let hint = conn.sides[side.other().index()].protocol;
        let other_undecided = matches!(
            conn.sides[side.other().index()].dissector,
            Dissector::Sniffing { .. }
        );
        let responder = (conn.roles.by() != RolesBy::FirstPacket)
            .then_some(here.dir == Direction::ServerToClient);
        let Dissector::Sniffing { at, first, search } = &mut conn.sides[side.index()].dissector
        else {
            return true;
        };
        let from = search.unwrap_or(0);
        let found = match detect::locate_with(first, from, complete, hint, mars_version) {
            // Responses wait for the requests' side to find its first
            // request (or to give up), so that they can be paired; while
            // the roles are open, the status line tells a response side.
            detect::Located::At(Protocol::Http, p)
                if !complete
                    && other_undecided
                    && responder.unwrap_or_else(|| first[p..].starts_with(b"HTTP/")) =>
            {
                *search = Some(p);
                return false;
            }
            detect::Located::At(proto, p) => Some((proto, p)),
            // A header could also start in the last bytes (too few yet to
            // judge): they are searched again.
            detect::Located::More(p) if !complete => {
                *search = Some(p.min(first.len().saturating_sub(MARS_HEADER_LEN)));
                return false;
            }
            detect::Located::Nothing if !complete => {
                // (The longest header, Mars's 20 bytes, may have begun.)
                *search = Some(first.len().saturating_sub(MARS_HEADER_LEN));
                return false;
            }
            _ => None,
        };
        let (start, first) = (*at, std::mem::take(first));
        let after_gap = conn.sides[side.index()].resumed.is_some();
        let Some((proto, p)) = found else {
            self.set_dissector(here, side, Protocol::Unknown, &first);
            self.search_other(here, side);
            return true;
        };
        self.set_dissector(here, side, proto, &first);
        self.infer_roles(here.conn, side, proto, &first[p..], start + p as u64);
        let here = &self.here(here.conn, side, here.ts);
        let resync = start + p as u64;
        let conn = self.conns.get_mut(&here.conn).expect("conn");
        if let Dissector::Longlink(fr) = &mut conn.sides[side.index()].dissector {
            fr.framer = std::mem::take(&mut fr.framer).starting_at(resync);
        }
        if p > 0 {
            let what = match proto {
                Protocol::Longlink => "long-link frame",
                Protocol::Mmtls => "MMTLS record",
                Protocol::Mars => "Mars frame",
                Protocol::Tls => "TLS record",
                _ => "HTTP start line",
            };
            let why = if after_gap {
                "after a gap"
            } else {
                "the direction starts mid-stream"
            };
            self.anomaly(
                here.conn,
                here.dir,
                start,
                AnomalyKind::Resync,
                format!("{p} bytes before the first {what} skipped ({why})"),
            );
        }
        self.feed(here, side, resync, &first[p..]);
        self.search_other(here, side);
        true
    }

    /// This direction was decided: the other one, if it is still searching
    /// (a response waiting for its request, or a chain now shorter with
    /// this direction as a hint), searches again.
    fn search_other(&mut self, here: &Here, side: Side) {
        let conn = self.conns.get_mut(&here.conn).expect("conn");
        let Dissector::Sniffing {
            first,
            search: Some(_),
            ..
        } = &conn.sides[side.other().index()].dissector
        else {
            return;
        };
        let full = first.len() >= detect::SEARCH_LEN;
        let there = self.here(here.conn, side.other(), here.ts);
        self.search(&there, side.other(), full);
    }

    /// Sets a direction's dissector from its first bytes.
    fn set_dissector(&mut self, here: &Here, side: Side, proto: Protocol, first: &[u8]) {
        let cap = self.opts.max_frame.unwrap_or(MAX_FRAME_LEN);
        let keep_all = self.records || self.opts.keylog.is_some();
        let conn = self.conns.get_mut(&here.conn).expect("conn");
        let dissector = match proto {
            Protocol::Longlink => {
                Dissector::Longlink(longlink::LonglinkSide::new(longlink::framer(cap, keep_all)))
            }
            Protocol::Mars => Dissector::Longlink(longlink::LonglinkSide::new(
                longlink::framer(cap, keep_all).variant(Variant::Mars {
                    client_version: self.opts.registry.mars_client_version(),
                }),
            )),
            Protocol::Mmtls => Dissector::Mmtls(Box::default()),
            Protocol::Tls => Dissector::Tls(Box::default()),
            Protocol::Http
                if conn.h2.is_some()
                    || first.starts_with(b"PRI ")
                    || crate::proto::h2::looks_like_server_start(first) =>
            {
                conn.h2.get_or_insert_with(|| {
                    Box::new(crate::proto::h2::Conn::new(Default::default()))
                });
                Dissector::H2
            }
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
        if proto == Protocol::Unknown {
            return;
        }
        if let Some((offset, n)) = st.resumed.take().filter(|r| r.1 > 0) {
            self.anomaly(
                here.conn,
                here.dir,
                offset,
                AnomalyKind::Resync,
                format!("{n} bytes before a gap are no known protocol (searched again after it)"),
            );
        }
    }

    /// The direction ended (or hit a gap) while its protocol was still
    /// undecided: decide with the bytes there are and feed them.
    fn decide_now(&mut self, here: &Here, side: Side) {
        let st = &mut self.conns.get_mut(&here.conn).expect("conn").sides[side.index()];
        let Dissector::Sniffing { at, first, search } = &mut st.dissector else {
            return;
        };
        if first.is_empty() {
            return;
        }
        if search.is_none() {
            let proto = detect::detect(first, true).unwrap_or(Protocol::Unknown);
            if proto == Protocol::Unknown && detect::worth_searching(first) {
                *search = Some(0);
            } else {
                let (at, first) = (*at, std::mem::take(first));
                self.set_dissector(here, side, proto, &first);
                self.infer_roles(here.conn, side, proto, &first, at);
                self.feed(here, side, at, &first);
                return;
            }
        }
        self.search(here, side, true);
    }

    fn gap(&mut self, here: &Here, side: Side, offset: u64, len: u64) {
        let held = match &self.conns[&here.conn].sides[side.index()].dissector {
            Dissector::Sniffing { at, first, .. } if !first.is_empty() => {
                Some((*at, first.len() as u64))
            }
            _ => None,
        };
        self.decide_now(here, side);
        // Deciding may have inferred the roles.
        let here = &self.here(here.conn, side, here.ts);
        let st = &mut self.conns.get_mut(&here.conn).expect("conn").sides[side.index()];
        if let (Some((at, n)), Some(Protocol::Unknown)) = (held, st.protocol) {
            // No known protocol before the gap: the bytes after it are
            // searched as a mid-stream start (the other side as a hint).
            let (first_at, before) = st.resumed.unwrap_or((at, 0));
            st.resumed = Some((first_at, before + n));
            st.protocol = None;
            st.dissector = Dissector::Sniffing {
                at: 0,
                first: Vec::new(),
                search: None,
            };
        }
        let mut d = self.take_dissector(here, side);
        match &mut d {
            // Nothing seen yet: detection starts after the hole.
            Dissector::Sniffing { .. } | Dissector::Other => {}
            Dissector::Longlink(fr) => self.longlink_gap(here, fr, len),
            Dissector::Mmtls(m) => m.splitter.gap(len),
            Dissector::Tls(t) => self.tls_gap(here, t, len),
            Dissector::Http => self.with_http(here, |h, mut out| h.gap(here.dir, len, &mut out)),
            Dissector::H2 => self.with_h2(here, |h, mut out| h.gap(here.dir, len, &mut out)),
        }
        self.put_dissector(here, side, d);
        if self.opts.plots {
            let (conn, ts, dir) = (here.conn, here.ts, here.dir as usize);
            self.shared(move |g| g.report.plots.gap(conn, ts, dir));
        }
        self.anomaly(
            here.conn,
            here.dir,
            offset,
            AnomalyKind::Gap,
            format!("{len} bytes missing from the capture"),
        );
    }

    fn feed(&mut self, here: &Here, side: Side, offset: u64, bytes: &[u8]) {
        // The roles may have been inferred since the event began.
        let here = &self.here(here.conn, side, here.ts);
        let mut d = self.take_dissector(here, side);
        match &mut d {
            Dissector::Longlink(fr) => self.longlink_feed(here, side, fr, offset, bytes),
            Dissector::Mmtls(m) => self.mmtls_feed(here, side, m, offset, bytes),
            Dissector::Tls(t) => self.tls_feed(here, t, offset, bytes),
            Dissector::Http => self.with_http(here, |h, mut out| {
                h.feed(here.dir, offset, bytes, here.ts, &mut out)
            }),
            Dissector::H2 => self.with_h2(here, |h, mut out| {
                h.feed(here.dir, offset, bytes, here.ts, &mut out)
            }),
            Dissector::Sniffing { .. } | Dissector::Other => {}
        }
        self.put_dissector(here, side, d);
    }

    /// Takes a direction's dissector out while it runs, so that its
    /// callbacks can use the rest of the analyzer (frames stay borrowed
    /// from the chunk); [`Self::put_dissector`] puts it back.
    fn take_dissector(&mut self, here: &Here, side: Side) -> Dissector {
        let slot = &mut self.conns.get_mut(&here.conn).expect("conn").sides[side.index()].dissector;
        std::mem::replace(slot, Dissector::Other)
    }

    fn put_dissector(&mut self, here: &Here, side: Side, d: Dissector) {
        self.conns.get_mut(&here.conn).expect("conn").sides[side.index()].dissector = d;
    }
}
