//! The flow table: TCP connections keyed by their 4-tuple and the tunnel
//! they are carried in (if any), in order of first packet, with
//! client/server roles, port reuse, idle expiry and caps. Each packet is
//! handed to the reassembler of its direction and the resulting events go to
//! a [`Sink`].

mod lru;
mod scope;

use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};

use hashbrown::HashTable;

use crate::capture::{Mapped, Timestamp};
use crate::reassembly::{self, Budget, Event, HalfStream, Segment};
use crate::wire::{TcpSegment, Tunnel, TunnelKey, TunnelKind};

pub use scope::{HostMatch, Scope, Scoped, TimeBound};

/// Direction relative to the connection's roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Direction {
    #[serde(rename = "c2s")]
    ClientToServer,
    #[serde(rename = "s2c")]
    ServerToClient,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ClientToServer => "c2s",
            Direction::ServerToClient => "s2c",
        }
    }
}

/// Which endpoint sent: the sender of the connection's first packet or the
/// other one. Stable for the life of a connection, unlike the client/server
/// roles, which a later SYN or SYN+ACK can still settle differently: key
/// per-direction state by `Side`, label output with [`FlowMeta::direction`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    First,
    Second,
}

impl Side {
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn other(self) -> Side {
        match self {
            Side::First => Side::Second,
            Side::Second => Side::First,
        }
    }

    fn from_index(i: usize) -> Side {
        if i == 0 {
            Side::First
        } else {
            Side::Second
        }
    }
}

/// How the client was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientBy {
    /// Sender of the first SYN without ACK.
    Syn,
    /// Receiver of the first SYN+ACK.
    Synack,
    /// Sender of the first packet.
    FirstPacket,
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum End {
    Fin,
    Rst,
    Open,
}

impl End {
    pub fn as_str(self) -> &'static str {
        match self {
            End::Fin => "fin",
            End::Rst => "rst",
            End::Open => "open",
        }
    }
}

/// Connections tracked at once by default.
pub const DEFAULT_MAX_FLOWS: usize = 500_000;

/// Limits and timeouts of the flow table.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub reassembly: reassembly::Config,
    /// Out-of-order bytes held over all connections.
    pub max_buffer_total: usize,
    /// An open connection with no packet for this long (capture time) is closed out.
    pub idle_timeout_secs: i64,
    /// A connection that saw RST or FINs both ways is closed out after this long idle.
    pub closed_timeout_secs: i64,
    /// A connection is only closed out for being idle when, besides the
    /// timeout, at least this many packets went by since its last one: a
    /// clock that jumps (captures with odd timestamps) then cannot cut live
    /// connections in two.
    pub idle_min_packets: u64,
    /// Connections tracked at once; beyond it the least recently active
    /// (by packet order) is closed out.
    pub max_flows: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            reassembly: reassembly::Config::default(),
            max_buffer_total: 256 << 20,
            idle_timeout_secs: 600,
            closed_timeout_secs: 60,
            idle_min_packets: 10_000,
            max_flows: DEFAULT_MAX_FLOWS,
        }
    }
}

/// What is known about a connection while it is live.
#[derive(Debug, Clone)]
pub struct FlowMeta {
    /// 0-based, in order of first packet.
    pub id: u64,
    /// Sender of the connection's first packet (side 0).
    pub first_src: SocketAddr,
    pub first_dst: SocketAddr,
    pub first_ts: Timestamp,
    pub last_ts: Timestamp,
    /// Timestamp of the packet being processed (events happen "now").
    pub now: Timestamp,
    pub packets: u64,
    /// Capture-wide number of the packet being processed (1-based, as
    /// Wireshark numbers frames; 0 when the caller did not number them).
    pub packet: u64,
    /// Table-wide packet number of the last packet.
    last_packet: u64,
    syn_sender: Option<u8>,
    synack_receiver: Option<u8>,
    /// The tunnel the connection is carried in (boxed: most have none).
    pub tunnel: Option<Box<FlowTunnel>>,
}

/// The tunnel a connection is carried in, by [`Side`]: the outer address
/// each side's packets come from, and each side's id (a GTP-U TEID differs
/// by direction; the first one seen).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowTunnel {
    pub kind: TunnelKind,
    pub outer: [IpAddr; 2],
    pub ids: [Option<u32>; 2],
    /// Encapsulations in all, this tunnel included (nested tunnels, MPLS, PPPoE).
    pub depth: u8,
    key: TunnelKey,
}

impl FlowTunnel {
    fn new(t: &Tunnel) -> Self {
        FlowTunnel {
            kind: t.kind,
            outer: [t.src, t.dst],
            ids: [t.id, None],
            depth: t.depth,
            key: t.key(),
        }
    }
}

impl FlowMeta {
    /// Side (0 = sender of the first packet, 1 = the other) that is the
    /// client according to what has been seen so far.
    pub fn client_side(&self) -> usize {
        usize::from(self.syn_sender.or(self.synack_receiver).unwrap_or(0))
    }

    pub fn client_by(&self) -> ClientBy {
        if self.syn_sender.is_some() {
            ClientBy::Syn
        } else if self.synack_receiver.is_some() {
            ClientBy::Synack
        } else {
            ClientBy::FirstPacket
        }
    }

    pub fn client(&self) -> SocketAddr {
        if self.client_side() == 0 {
            self.first_src
        } else {
            self.first_dst
        }
    }

    pub fn server(&self) -> SocketAddr {
        if self.client_side() == 0 {
            self.first_dst
        } else {
            self.first_src
        }
    }

    /// The direction `side` sends in, by the roles as known now.
    pub fn direction(&self, side: Side) -> Direction {
        if side.index() == self.client_side() {
            Direction::ClientToServer
        } else {
            Direction::ServerToClient
        }
    }
}

/// A finished connection.
#[derive(Debug, Clone)]
pub struct FlowSummary {
    pub id: u64,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub client_by: ClientBy,
    pub first_ts: Timestamp,
    pub last_ts: Timestamp,
    pub packets: u64,
    pub c2s: reassembly::Stats,
    pub s2c: reassembly::Stats,
    pub end: End,
    /// Which side turned out to be the client.
    pub client_side: Side,
    /// The tunnel it was carried in, by side (see [`FlowSummary::client_side`]).
    pub tunnel: Option<Box<FlowTunnel>>,
}

impl FlowSummary {
    /// The direction `side` sent in, by the final roles.
    pub fn direction(&self, side: Side) -> Direction {
        if side == self.client_side {
            Direction::ClientToServer
        } else {
            Direction::ServerToClient
        }
    }
}

/// Receives everything the flow table produces.
pub trait Sink {
    /// A reassembly event of the bytes `side` sent on a live connection.
    fn event(&mut self, flow: &FlowMeta, side: Side, ev: Event<'_>);
    /// A connection is over; no more events for `summary.id`.
    fn flow_end(&mut self, summary: &FlowSummary);
    /// The capture's first packet (any packet, TCP or not) was captured at
    /// `ts`; called once, before anything else (by `pipeline::run`).
    fn capture_start(&mut self, _ts: Timestamp) {}
}

#[derive(Debug)]
struct Flow {
    meta: FlowMeta,
    halves: Halves,
}

/// The reassembly state of both directions. A connection that has seen
/// nothing but bare SYNs (a port scan, a SYN flood, an unanswered connect)
/// keeps only their sequence numbers and counts; the two [`HalfStream`]s
/// are made at its first other packet, by feeding them those SYNs, so the
/// result is the same as if they had been there from the start.
#[derive(Debug)]
enum Halves {
    Syn(SynOnly),
    Full(Box<[HalfStream; 2]>),
}

#[derive(Debug, Default)]
struct SynOnly {
    isn: [Option<u32>; 2],
    segments: [u64; 2],
}

impl SynOnly {
    /// Whether this packet leaves the connection SYN-only: a bare SYN with
    /// the same sequence number as any earlier SYN of its side.
    fn takes(&self, side: usize, seg: &TcpSegment<'_>) -> bool {
        let f = seg.flags;
        f.syn
            && !f.ack
            && !f.fin
            && !f.rst
            && seg.payload.is_empty()
            && seg.wire_len == 0
            && self.isn[side].is_none_or(|isn| isn == seg.seq)
    }

    fn full(&self, cfg: reassembly::Config, budget: &mut Budget) -> Box<[HalfStream; 2]> {
        let mut h = Box::new([HalfStream::new(cfg), HalfStream::new(cfg)]);
        for side in 0..2 {
            if let Some(isn) = self.isn[side] {
                for _ in 0..self.segments[side] {
                    let syn = Segment {
                        seq: isn,
                        syn: true,
                        fin: false,
                        rst: false,
                        payload: &[],
                        wire_len: 0,
                        packet: 0,
                    };
                    // A bare SYN makes no event.
                    h[side].segment(syn, budget, &mut |_| {});
                }
            }
        }
        h
    }

    fn stats(&self, side: usize) -> reassembly::Stats {
        reassembly::Stats {
            segments: self.segments[side],
            ..Default::default()
        }
    }
}

impl Flow {
    fn closed(&self) -> bool {
        match &self.halves {
            Halves::Syn(_) => false,
            Halves::Full(h) => {
                let [a, b] = &**h;
                a.saw_rst() || b.saw_rst() || (a.saw_fin() && b.saw_fin())
            }
        }
    }

    /// Initial sequence number and anchor of `side`, for telling a new
    /// connection on the same 4-tuple from a retransmitted SYN.
    fn isn_and_base(&self, side: usize) -> (Option<u32>, Option<u32>) {
        match &self.halves {
            Halves::Syn(s) => (s.isn[side], s.isn[side].map(|i| i.wrapping_add(1))),
            Halves::Full(h) => (h[side].isn(), h[side].base_seq()),
        }
    }
}

/// Counters of the flow table.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct TableStats {
    pub flows: u64,
    pub expired_idle: u64,
    pub evicted: u64,
    /// Connections that started on a 4-tuple whose previous connection was still tracked.
    pub reused: u64,
    pub max_active: u64,
}

/// A connection's identity: its two endpoints in either order and the
/// tunnel it is carried in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    a: SocketAddr,
    b: SocketAddr,
    tunnel: Option<TunnelKey>,
}

fn key(a: SocketAddr, b: SocketAddr, tunnel: Option<TunnelKey>) -> Key {
    let (a, b) = if a <= b { (a, b) } else { (b, a) };
    Key { a, b, tunnel }
}

/// The lists of [`lru::Lru`] the table keeps connections on.
const OPEN: usize = 0;
const CLOSED: usize = 1;

/// All live connections.
///
/// They sit in a slab on two lists in order of last packet (open ones and
/// ones that saw RST or FINs both ways), found by 4-tuple through a hash
/// table of slab indices: a connection costs its [`FlowMeta`] plus a few
/// dozen bytes while it has seen only bare SYNs, and expiry and eviction
/// look only at the fronts of the lists (O(1) per connection closed out).
#[derive(Debug)]
pub struct FlowTable {
    cfg: Config,
    flows: lru::Lru<Flow, 2>,
    index: HashTable<lru::Idx>,
    hasher: foldhash::fast::RandomState,
    budget: Budget,
    next_id: u64,
    /// Packets fed so far.
    packets: u64,
    /// Capture second and packet number of the last expiry sweep.
    last_sweep: Option<(i64, u64)>,
    stats: TableStats,
    /// The mapped capture file the packets lie in, when they do.
    base: Option<Mapped>,
}

impl FlowTable {
    pub fn new(cfg: Config) -> Self {
        FlowTable {
            cfg,
            flows: lru::Lru::default(),
            index: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
            budget: Budget::new(cfg.max_buffer_total),
            next_id: 0,
            packets: 0,
            last_sweep: None,
            stats: TableStats::default(),
            base: None,
        }
    }

    /// The packets fed from now on may lie in `base`, a mapped capture file
    /// (`PacketSource::mapped`): the bytes the reassembly keeps to compare
    /// retransmissions with are then kept as places in it, not copied.
    /// Packets elsewhere are handled as always.
    pub fn lend_from(&mut self, base: Option<Mapped>) {
        self.base = base;
    }

    pub fn stats(&self) -> &TableStats {
        &self.stats
    }

    /// Live connections.
    pub fn active(&self) -> usize {
        self.flows.len()
    }

    /// Out-of-order bytes held over all connections.
    pub fn buffered(&self) -> usize {
        self.budget.used
    }

    fn find(&self, k: &Key) -> Option<lru::Idx> {
        let flows = &self.flows;
        let (a, b) = (k.a, k.b);
        self.index
            .find(self.hasher.hash_one(k), |&i| {
                let m = &flows.get(i).meta;
                ((m.first_src == a && m.first_dst == b) || (m.first_src == b && m.first_dst == a))
                    && m.tunnel.as_ref().map(|t| t.key) == k.tunnel
            })
            .copied()
    }

    /// Takes connection `i` out of the table.
    fn take(&mut self, i: lru::Idx) -> Flow {
        let k = flow_key(self.flows.get(i));
        let h = self.hasher.hash_one(k);
        if let Ok(e) = self.index.find_entry(h, |&j| j == i) {
            e.remove();
        }
        self.flows.remove(i)
    }

    /// Feeds one TCP segment captured at `ts`.
    pub fn packet<S: Sink>(&mut self, ts: Timestamp, seg: &TcpSegment<'_>, sink: &mut S) {
        self.packets += 1;
        self.sweep(ts, sink);
        let k = key(seg.src, seg.dst, seg.tunnel.map(|t| t.key()));
        let pure_syn = seg.flags.syn && !seg.flags.ack;
        // One hash lookup per packet on the common path.
        let mut found = self.find(&k);
        if let (true, Some(i)) = (pure_syn, found) {
            let flow = self.flows.get(i);
            let side = usize::from(seg.src != flow.meta.first_src);
            let same = match flow.isn_and_base(side) {
                (Some(isn), _) => isn == seg.seq,
                (None, Some(base)) => base == seg.seq.wrapping_add(1),
                (None, None) => true,
            };
            if !same {
                // A new connection on the same 4-tuple (port reuse).
                self.stats.reused += 1;
                let old = self.take(i);
                self.close_out(old, sink);
                found = None;
            }
        }
        let i = match found {
            Some(i) => i,
            None => {
                if self.flows.len() >= self.cfg.max_flows {
                    self.evict_one(sink);
                }
                self.stats.max_active = self.stats.max_active.max(self.flows.len() as u64 + 1);
                self.new_flow(k, ts, seg)
            }
        };
        let flow = self.flows.get_mut(i);
        let side = usize::from(seg.src != flow.meta.first_src);
        let meta = &mut flow.meta;
        meta.last_ts = meta.last_ts.max(ts);
        meta.now = ts;
        meta.packets += 1;
        meta.packet = seg.packet;
        meta.last_packet = self.packets;
        if let (Some(ft), Some(t)) = (&mut meta.tunnel, &seg.tunnel) {
            ft.ids[side] = ft.ids[side].or(t.id);
        }
        if pure_syn && meta.syn_sender.is_none() {
            meta.syn_sender = Some(side as u8);
        }
        if seg.flags.syn && seg.flags.ack && meta.synack_receiver.is_none() {
            meta.synack_receiver = Some(1 - side as u8);
        }
        if let Halves::Syn(s) = &mut flow.halves {
            if s.takes(side, seg) {
                s.isn[side] = Some(seg.seq);
                s.segments[side] += 1;
                self.flows.touch(i, OPEN);
                return;
            }
            flow.halves = Halves::Full(s.full(self.cfg.reassembly, &mut self.budget));
        }
        let Halves::Full(halves) = &mut flow.halves else {
            unreachable!("made full above")
        };
        let meta = &flow.meta;
        let [h0, h1] = &mut **halves;
        let (this, other) = if side == 0 { (h0, h1) } else { (h1, h0) };
        let (s, rs) = (Side::from_index(side), Side::from_index(1 - side));
        this.segment_in(
            Segment {
                seq: seg.seq,
                syn: seg.flags.syn,
                fin: seg.flags.fin,
                rst: seg.flags.rst,
                payload: seg.payload,
                wire_len: seg.wire_len,
                packet: seg.packet,
            },
            self.base.as_ref(),
            &mut self.budget,
            &mut |ev| sink.event(meta, s, ev),
        );
        if seg.flags.ack {
            other.peer_ack(seg.ack, &mut self.budget, &mut |ev| {
                sink.event(meta, rs, ev)
            });
        }
        let list = if flow.closed() { CLOSED } else { OPEN };
        self.flows.touch(i, list);
    }

    fn new_flow(&mut self, k: Key, ts: Timestamp, seg: &TcpSegment<'_>) -> lru::Idx {
        let meta = FlowMeta {
            id: self.next_id,
            first_src: seg.src,
            first_dst: seg.dst,
            first_ts: ts,
            last_ts: ts,
            now: ts,
            packets: 0,
            packet: seg.packet,
            last_packet: 0,
            syn_sender: None,
            synack_receiver: None,
            tunnel: seg.tunnel.map(|t| Box::new(FlowTunnel::new(&t))),
        };
        self.next_id += 1;
        self.stats.flows += 1;
        let i = self.flows.insert(
            OPEN,
            Flow {
                meta,
                halves: Halves::Syn(SynOnly::default()),
            },
        );
        let (flows, hasher) = (&self.flows, &self.hasher);
        self.index.insert_unique(hasher.hash_one(k), i, |&j| {
            hasher.hash_one(flow_key(flows.get(j)))
        });
        i
    }

    /// The capture is over: every live connection is closed out, in id order.
    pub fn finish<S: Sink>(&mut self, sink: &mut S) {
        // Ids and slots, not the flows: no second copy of the table.
        let mut all: Vec<(u64, lru::Idx)> =
            self.flows.iter().map(|(i, f)| (f.meta.id, i)).collect();
        all.sort_unstable();
        for (_, i) in all {
            let f = self.take(i);
            self.close_out(f, sink);
        }
    }

    /// Closes out connections idle for longer than their timeout (and at
    /// least `idle_min_packets` packets). Each list is walked from its least
    /// recently active connection and the walk stops at the first one that
    /// is not expired: in a capture whose clock runs forward that finds
    /// exactly the expired ones; where the clock jumps back, a connection
    /// can be closed out later than its timeout, never earlier.
    fn sweep<S: Sink>(&mut self, now: Timestamp, sink: &mut S) {
        match self.last_sweep {
            Some((t, p)) if (now.secs < t + 10 && now.secs >= t) || self.packets < p + 1024 => {
                return
            }
            _ => {}
        }
        self.last_sweep = Some((now.secs, self.packets));
        let (now_pkt, min_pkts) = (self.packets, self.cfg.idle_min_packets);
        let mut expired: Vec<(u64, lru::Idx)> = Vec::new();
        for (list, timeout) in [
            (OPEN, self.cfg.idle_timeout_secs),
            // A closed connection also goes when it is idle for the open timeout.
            (
                CLOSED,
                self.cfg.closed_timeout_secs.min(self.cfg.idle_timeout_secs),
            ),
        ] {
            let mut at = self.flows.front(list);
            while let Some(i) = at {
                let m = &self.flows.get(i).meta;
                let quiet = now.secs.saturating_sub(m.last_ts.secs);
                if now_pkt - m.last_packet < min_pkts || quiet <= timeout {
                    break;
                }
                expired.push((m.id, i));
                at = self.flows.next(i);
            }
        }
        expired.sort_unstable();
        for (_, i) in expired {
            let f = self.take(i);
            self.stats.expired_idle += 1;
            self.close_out(f, sink);
        }
    }

    /// Closes out the least recently active connection (by packet order).
    fn evict_one<S: Sink>(&mut self, sink: &mut S) {
        let last = |i: lru::Idx| self.flows.get(i).meta.last_packet;
        let oldest = match (self.flows.front(OPEN), self.flows.front(CLOSED)) {
            (Some(a), Some(b)) => Some(if last(b) < last(a) { b } else { a }),
            (a, b) => a.or(b),
        };
        if let Some(i) = oldest {
            let f = self.take(i);
            self.stats.evicted += 1;
            self.close_out(f, sink);
        }
    }

    fn close_out<S: Sink>(&mut self, flow: Flow, sink: &mut S) {
        let Flow { meta, halves } = flow;
        let cs = meta.client_side();
        let (stats, end) = match halves {
            Halves::Syn(s) => ([s.stats(0), s.stats(1)], End::Open),
            Halves::Full(mut h) => {
                for (side, half) in h.iter_mut().enumerate() {
                    let s = Side::from_index(side);
                    half.finish(&mut self.budget, &mut |ev| sink.event(&meta, s, ev));
                }
                let [a, b] = &*h;
                let end = if a.saw_rst() || b.saw_rst() {
                    End::Rst
                } else if a.saw_fin() || b.saw_fin() {
                    End::Fin
                } else {
                    End::Open
                };
                ([*a.stats(), *b.stats()], end)
            }
        };
        let summary = FlowSummary {
            id: meta.id,
            client: meta.client(),
            server: meta.server(),
            client_by: meta.client_by(),
            first_ts: meta.first_ts,
            last_ts: meta.last_ts,
            packets: meta.packets,
            c2s: stats[cs],
            s2c: stats[1 - cs],
            end,
            client_side: Side::from_index(cs),
            tunnel: meta.tunnel,
        };
        sink.flow_end(&summary);
    }
}

fn flow_key(f: &Flow) -> Key {
    let m = &f.meta;
    key(m.first_src, m.first_dst, m.tunnel.as_ref().map(|t| t.key))
}

#[cfg(test)]
mod tests;
