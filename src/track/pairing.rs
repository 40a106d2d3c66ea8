//! Pairs long-link requests with responses by (cmd, seq) per connection and
//! keeps latency statistics per command, with bounded memory.
//!
//! A response is recognised two ways: by its cmd (request cmd + 10^9, the
//! WeChat rule), or, from the server only, by repeating the cmd and seq of
//! a request the client has outstanding (the Tencent Mars rule: Mars answers
//! a noop with cmd 6 and the noop's seq; see docs/protocol.md section 2).
//!
//! A (cmd, seq) sent again while outstanding is one request sent again: a
//! 10^9 response answers it (latency from the last send) and it counts
//! once if never answered. Mars echoes answer each send in turn, oldest
//! first: two noops in flight are paired with the two echoes in order.

use std::collections::{BTreeMap, HashMap};

use crate::capture::Timestamp;
use crate::flow::Direction;
use crate::proto::commands::RESPONSE_OFFSET;
use crate::proto::longlink::{Header, Kind};

/// Outstanding requests kept per connection; beyond it the oldest is
/// counted as unanswered.
pub const MAX_OUTSTANDING: usize = 65_536;
/// Sends of one outstanding (cmd, seq) remembered after its first (for
/// Mars echoes, oldest first); beyond it the oldest send is forgotten.
pub const MAX_IN_FLIGHT: usize = 64;
/// Latency samples kept per command for percentiles; beyond it a seeded
/// reservoir sample stands in for all (count and max stay exact).
pub const MAX_SAMPLES: usize = 100_000;

/// What pairing says about one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paired {
    /// A request, now outstanding. `duplicate`: the same (cmd, seq) was
    /// already outstanding (a resend).
    Request {
        duplicate: bool,
    },
    /// A response and the latency since its request (None: no request seen).
    Response {
        latency_ns: Option<i64>,
        request_frame: Option<u64>,
    },
    /// A Mars-style response: a server frame with the cmd and seq of an
    /// outstanding client request (the noop echo), and the latency since it.
    Echo {
        latency_ns: i64,
        request_frame: u64,
    },
    Push,
    Heartbeat,
}

impl Paired {
    /// What the frame is: its header's [`Header::kind`], except for a
    /// Mars echo, which is a response although its cmd is a request's.
    pub fn kind(&self, h: &Header) -> Kind {
        match self {
            Paired::Echo { .. } => Kind::Response,
            _ => h.kind(),
        }
    }

    /// Request-to-response time, for a response whose request was seen.
    pub fn latency_ns(&self) -> Option<i64> {
        match *self {
            Paired::Response { latency_ns, .. } => latency_ns,
            Paired::Echo { latency_ns, .. } => Some(latency_ns),
            _ => None,
        }
    }
}

/// Latency figures of one command, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

#[derive(Debug, Clone, Default)]
struct Samples {
    count: u64,
    max: u64,
    kept: Vec<u64>,
    rng: u64,
}

impl Samples {
    fn add(&mut self, us: u64) {
        self.count += 1;
        self.max = self.max.max(us);
        if self.kept.len() < MAX_SAMPLES {
            self.kept.push(us);
            return;
        }
        // Reservoir sampling (Algorithm R) with a fixed-seed xorshift: repeatable.
        if self.rng == 0 {
            self.rng = 0x9E37_79B9_7F4A_7C15;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let j = self.rng % self.count;
        if (j as usize) < MAX_SAMPLES {
            self.kept[j as usize] = us;
        }
    }

    fn latency(&self) -> Latency {
        let mut v = self.kept.clone();
        v.sort_unstable();
        // Nearest-rank percentile.
        let pct = |p: u64| -> u64 {
            if v.is_empty() {
                return 0;
            }
            let rank = (p * v.len() as u64).div_ceil(100).max(1) as usize;
            v[rank - 1]
        };
        Latency {
            count: self.count,
            p50_us: pct(50),
            p90_us: pct(90),
            p99_us: pct(99),
            max_us: self.max,
        }
    }
}

/// Counters of one connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PairCounts {
    pub requests: u64,
    pub responses: u64,
    pub pairs: u64,
    pub pushes: u64,
    pub heartbeats: u64,
    pub duplicate_requests: u64,
    pub responses_without_request: u64,
    pub unanswered_requests: u64,
    /// Responses that repeat their request's cmd (Mars echoes), included
    /// in `responses` and `pairs`; absent when none.
    #[serde(skip_serializing_if = "is_zero")]
    pub echoes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One send of an outstanding request.
#[derive(Debug, Clone, Copy)]
struct Send {
    ts: Timestamp,
    frame_no: u64,
    from_server: bool,
}

/// An outstanding (cmd, seq): its sends, oldest first (one, unless it was
/// sent again before its answer). `later` allocates only then.
#[derive(Debug)]
struct Outstanding {
    first: Send,
    later: Vec<Send>,
}

impl Outstanding {
    fn newest(&self) -> Send {
        *self.later.last().unwrap_or(&self.first)
    }

    /// Takes out the oldest send from the client; `true` when none is left.
    fn take_client_send(&mut self) -> (Option<Send>, bool) {
        if !self.first.from_server {
            let s = self.first;
            if self.later.is_empty() {
                return (Some(s), true);
            }
            self.first = self.later.remove(0);
            return (Some(s), false);
        }
        match self.later.iter().position(|s| !s.from_server) {
            Some(i) => (Some(self.later.remove(i)), false),
            None => (None, false),
        }
    }
}

/// Pairing state of one connection.
#[derive(Debug, Default)]
pub struct Pairing {
    /// (request cmd, seq) -> its outstanding sends.
    outstanding: HashMap<(u32, u32), Outstanding>,
    /// Insertion order, to drop the oldest when over the cap.
    order: std::collections::VecDeque<(u32, u32)>,
    counts: PairCounts,
    last_heartbeat: Option<Timestamp>,
    heartbeat_gaps: Samples,
}

impl Pairing {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn counts(&self) -> &PairCounts {
        &self.counts
    }

    /// Feeds one frame whose direction is not known: pairs by the 10^9
    /// rule only (see [`Pairing::frame_from`]).
    pub fn frame(
        &mut self,
        h: &Header,
        ts: Timestamp,
        frame_no: u64,
        latencies: &mut LatencyTable,
    ) -> Paired {
        self.feed(h, None, ts, frame_no, latencies)
    }

    /// Feeds one frame sent in `dir` (client requests and heartbeats,
    /// server responses and pushes); `latencies` collects per-command
    /// figures across connections. A server frame with the cmd (below
    /// 10^9) and seq of a request the client has outstanding is that
    /// request's response ([`Paired::Echo`]).
    pub fn frame_from(
        &mut self,
        dir: Direction,
        h: &Header,
        ts: Timestamp,
        frame_no: u64,
        latencies: &mut LatencyTable,
    ) -> Paired {
        self.feed(h, Some(dir), ts, frame_no, latencies)
    }

    fn feed(
        &mut self,
        h: &Header,
        dir: Option<Direction>,
        ts: Timestamp,
        frame_no: u64,
        latencies: &mut LatencyTable,
    ) -> Paired {
        let from_server = dir == Some(Direction::ServerToClient);
        if from_server && h.cmd < RESPONSE_OFFSET {
            if let Some(p) = self.echo(h, ts, latencies) {
                return p;
            }
        }
        match h.kind() {
            Kind::Heartbeat if h.cmd < RESPONSE_OFFSET => {
                self.counts.heartbeats += 1;
                if let Some(prev) = self.last_heartbeat {
                    let gap = ts.nanos_since(&prev).max(0) as u64 / 1000;
                    self.heartbeat_gaps.add(gap);
                }
                self.last_heartbeat = Some(ts);
                self.request(h, from_server, ts, frame_no)
            }
            Kind::Push => {
                self.counts.pushes += 1;
                Paired::Push
            }
            Kind::Request => self.request(h, from_server, ts, frame_no),
            Kind::Response | Kind::Heartbeat => {
                self.counts.responses += 1;
                match self.answer((h.request_cmd(), h.seq), ts, latencies) {
                    Some((ns, req_no)) => Paired::Response {
                        latency_ns: Some(ns),
                        request_frame: Some(req_no),
                    },
                    None => {
                        self.counts.responses_without_request += 1;
                        Paired::Response {
                            latency_ns: None,
                            request_frame: None,
                        }
                    }
                }
            }
        }
    }

    /// A server frame repeating an outstanding client request's cmd and
    /// seq: the response, Mars style, to the oldest send of it from the
    /// client (None: no such send; a server's own request sent again is
    /// not answered by its resend).
    fn echo(&mut self, h: &Header, ts: Timestamp, latencies: &mut LatencyTable) -> Option<Paired> {
        let key = (h.cmd, h.seq);
        let entry = self.outstanding.get_mut(&key)?;
        let (send, emptied) = entry.take_client_send();
        let send = send?;
        if emptied {
            self.outstanding.remove(&key);
        }
        let ns = self.paired(key.0, send, ts, latencies);
        self.counts.responses += 1;
        self.counts.echoes += 1;
        Some(Paired::Echo {
            latency_ns: ns,
            request_frame: send.frame_no,
        })
    }

    /// The 10^9 response to the outstanding request `key`: it answers the
    /// request however often it was sent (latency from the last send);
    /// (latency in ns, request frame).
    fn answer(
        &mut self,
        key: (u32, u32),
        ts: Timestamp,
        latencies: &mut LatencyTable,
    ) -> Option<(i64, u64)> {
        let send = self.outstanding.remove(&key)?.newest();
        Some((self.paired(key.0, send, ts, latencies), send.frame_no))
    }

    /// A pair of `send` (of request cmd `cmd`) and its answer at `ts`:
    /// counted, its latency recorded; the latency in ns.
    fn paired(&mut self, cmd: u32, send: Send, ts: Timestamp, latencies: &mut LatencyTable) -> i64 {
        self.counts.pairs += 1;
        let ns = ts.nanos_since(&send.ts);
        latencies.add(cmd, ns.max(0) as u64 / 1000);
        ns
    }

    fn request(&mut self, h: &Header, from_server: bool, ts: Timestamp, frame_no: u64) -> Paired {
        self.counts.requests += 1;
        let key = (h.cmd, h.seq);
        let send = Send {
            ts,
            frame_no,
            from_server,
        };
        let duplicate = match self.outstanding.get_mut(&key) {
            Some(o) => {
                if o.later.len() >= MAX_IN_FLIGHT {
                    o.first = o.later.remove(0);
                }
                o.later.push(send);
                true
            }
            None => {
                self.outstanding.insert(
                    key,
                    Outstanding {
                        first: send,
                        later: Vec::new(),
                    },
                );
                false
            }
        };
        if duplicate {
            self.counts.duplicate_requests += 1;
        } else {
            self.order.push_back(key);
        }
        while self.outstanding.len() > MAX_OUTSTANDING {
            match self.order.pop_front() {
                Some(k) => {
                    if self.outstanding.remove(&k).is_some() {
                        self.counts.unanswered_requests += 1;
                    }
                }
                None => break,
            }
        }
        if self.order.len() > 2 * MAX_OUTSTANDING {
            let live = &self.outstanding;
            self.order.retain(|k| live.contains_key(k));
        }
        if h.kind() == Kind::Heartbeat {
            Paired::Heartbeat
        } else {
            Paired::Request { duplicate }
        }
    }

    /// The connection ended: what is still outstanding was never answered.
    pub fn finish(&mut self) -> Vec<(u32, u32, u64)> {
        self.counts.unanswered_requests += self.outstanding.len() as u64;
        let mut left: Vec<(u32, u32, u64)> = self
            .outstanding
            .drain()
            .map(|((c, s), o)| (c, s, o.newest().frame_no))
            .collect();
        left.sort_by_key(|&(_, _, n)| n);
        self.order.clear();
        left
    }

    /// Heartbeat intervals on this connection.
    pub fn heartbeat_intervals(&self) -> Latency {
        self.heartbeat_gaps.latency()
    }
}

/// Latency per request cmd (or other key: a short-link cgi, a web
/// endpoint) over all connections.
#[derive(Debug, Clone)]
pub struct LatencyTable<K = u32> {
    by_cmd: BTreeMap<K, Samples>,
    /// When logging: the samples added, in order, instead of kept (see
    /// [`LatencyTable::logging`]).
    log: Option<Vec<(K, u64)>>,
}

impl<K> Default for LatencyTable<K> {
    fn default() -> Self {
        LatencyTable {
            by_cmd: BTreeMap::new(),
            log: None,
        }
    }
}

impl<K: Ord + Clone> LatencyTable<K> {
    pub fn add(&mut self, cmd: K, us: u64) {
        if let Some(log) = &mut self.log {
            log.push((cmd, us));
            return;
        }
        self.by_cmd.entry(cmd).or_default().add(us);
    }

    /// A table that keeps nothing but logs each sample added, for
    /// [`LatencyTable::take_log`]: a worker of a split run hands its
    /// samples over in order, for the one table that keeps them.
    pub fn logging() -> Self {
        LatencyTable {
            by_cmd: BTreeMap::new(),
            log: Some(Vec::new()),
        }
    }

    /// The samples logged since the last call (none unless logging).
    pub fn take_log(&mut self) -> Vec<(K, u64)> {
        self.log.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Figures per key, in key order.
    pub fn figures(&self) -> Vec<(K, Latency)> {
        self.by_cmd
            .iter()
            .map(|(c, s)| (c.clone(), s.latency()))
            .collect()
    }

    /// The latencies kept of each key (all of them up to 100 000, then a
    /// uniform sample), in key order.
    pub fn samples(&self) -> Vec<(K, &[u64])> {
        self.by_cmd
            .iter()
            .map(|(c, s)| (c.clone(), s.kept.as_slice()))
            .collect()
    }

    /// The figures of one key (none: zero pairs).
    pub fn get(&self, cmd: &K) -> Latency {
        self.by_cmd
            .get(cmd)
            .map(Samples::latency)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::commands::{
        response, NEWNOTIFY, NEWSENDMSG, NEWSYNC, NOOP, SEQ_HEARTBEAT, SEQ_PUSH,
    };

    fn t(ms: i64) -> Timestamp {
        Timestamp::new(ms / 1000, ((ms % 1000) * 1_000_000) as u32, 6)
    }

    #[test]
    fn pairs_by_cmd_and_seq_with_latency() {
        let mut p = Pairing::new();
        let mut lat = LatencyTable::default();
        assert_eq!(
            p.frame(&Header::new(NEWSYNC, 1, 0), t(1000), 0, &mut lat),
            Paired::Request { duplicate: false }
        );
        assert_eq!(
            p.frame(&Header::new(NEWSENDMSG, 2, 0), t(1010), 1, &mut lat),
            Paired::Request { duplicate: false }
        );
        assert_eq!(
            p.frame(&Header::new(NEWSYNC, 1, 0), t(1020), 2, &mut lat),
            Paired::Request { duplicate: true }
        );
        assert_eq!(
            p.frame(
                &Header::new(response(NEWSENDMSG), 2, 0),
                t(1050),
                3,
                &mut lat
            ),
            Paired::Response {
                latency_ns: Some(40_000_000),
                request_frame: Some(1)
            }
        );
        // The resend re-armed the timer: latency from the last request.
        assert_eq!(
            p.frame(&Header::new(response(NEWSYNC), 1, 0), t(1120), 4, &mut lat),
            Paired::Response {
                latency_ns: Some(100_000_000),
                request_frame: Some(2)
            }
        );
        assert_eq!(
            p.frame(&Header::new(response(NEWSYNC), 9, 0), t(1130), 5, &mut lat),
            Paired::Response {
                latency_ns: None,
                request_frame: None
            }
        );
        assert_eq!(
            p.frame(&Header::new(NEWNOTIFY, SEQ_PUSH, 0), t(1140), 6, &mut lat),
            Paired::Push
        );
        assert_eq!(
            p.frame(&Header::new(NEWSYNC, 7, 0), t(1150), 7, &mut lat),
            Paired::Request { duplicate: false }
        );
        assert_eq!(p.finish(), vec![(121, 7, 7)]);
        let c = p.counts();
        assert_eq!((c.requests, c.responses, c.pairs, c.pushes), (4, 3, 2, 1));
        assert_eq!(
            (
                c.duplicate_requests,
                c.responses_without_request,
                c.unanswered_requests
            ),
            (1, 1, 1)
        );
        let figs = lat.figures();
        assert_eq!(figs[0].0, 121);
        assert_eq!((figs[0].1.count, figs[0].1.max_us), (1, 100_000));
        assert_eq!(figs[1].1.p50_us, 40_000);
    }

    #[test]
    fn heartbeats_pair_and_their_intervals_are_measured() {
        let mut p = Pairing::new();
        let mut lat = LatencyTable::default();
        for (i, ms) in [0, 300_000, 600_000].into_iter().enumerate() {
            assert_eq!(
                p.frame(
                    &Header::new(NOOP, SEQ_HEARTBEAT, 0),
                    t(ms),
                    i as u64,
                    &mut lat
                ),
                Paired::Heartbeat
            );
            let r = p.frame(
                &Header::new(response(NOOP), SEQ_HEARTBEAT, 0),
                t(ms + 50),
                10 + i as u64,
                &mut lat,
            );
            assert!(
                matches!(
                    r,
                    Paired::Response {
                        latency_ns: Some(50_000_000),
                        ..
                    }
                ),
                "{r:?}"
            );
        }
        let hb = p.heartbeat_intervals();
        assert_eq!(
            (hb.count, hb.p50_us, hb.max_us),
            (2, 300_000_000, 300_000_000)
        );
        assert_eq!(p.counts().heartbeats, 3);
    }

    #[test]
    fn a_server_echo_of_a_client_request_is_its_response() {
        use Direction::{ClientToServer as C2S, ServerToClient as S2C};
        let mut p = Pairing::new();
        let mut lat = LatencyTable::default();
        let noop = Header::new(NOOP, SEQ_HEARTBEAT, 0);
        let sync = Header::new(NEWSYNC, 3, 0);
        assert_eq!(
            p.frame_from(C2S, &noop, t(0), 1, &mut lat),
            Paired::Heartbeat
        );
        assert_eq!(
            p.frame_from(C2S, &sync, t(5), 2, &mut lat),
            Paired::Request { duplicate: false }
        );
        let echo = p.frame_from(S2C, &noop, t(30), 3, &mut lat);
        assert_eq!(
            echo,
            Paired::Echo {
                latency_ns: 30_000_000,
                request_frame: 1
            }
        );
        assert_eq!(
            (echo.kind(&noop), echo.latency_ns()),
            (Kind::Response, Some(30_000_000))
        );
        // A 10^9 answer on the same connection pairs as before.
        let r = p.frame_from(
            S2C,
            &Header::new(response(NEWSYNC), 3, 0),
            t(45),
            4,
            &mut lat,
        );
        assert_eq!(r.latency_ns(), Some(40_000_000));
        assert_eq!(
            r.kind(&Header::new(response(NEWSYNC), 3, 0)),
            Kind::Response
        );
        // A server noop with nothing outstanding is the server's own
        // heartbeat, and a second one its resend (a server request is
        // never taken for an echo); a client request sent twice is a resend.
        assert_eq!(
            p.frame_from(S2C, &noop, t(50), 5, &mut lat),
            Paired::Heartbeat
        );
        assert_eq!(
            p.frame_from(S2C, &noop, t(55), 6, &mut lat),
            Paired::Heartbeat
        );
        assert_eq!(
            p.frame_from(C2S, &sync, t(60), 7, &mut lat),
            Paired::Request { duplicate: false }
        );
        assert_eq!(
            p.frame_from(C2S, &sync, t(61), 8, &mut lat),
            Paired::Request { duplicate: true }
        );
        // Without a direction there is no echo: the old reading.
        assert_eq!(
            p.frame(&sync, t(62), 9, &mut lat),
            Paired::Request { duplicate: true }
        );
        let c = p.counts().clone();
        assert_eq!((c.pairs, c.echoes, c.responses), (2, 1, 2));
        assert_eq!(c.duplicate_requests, 3);
        assert_eq!(p.finish(), vec![(NOOP, SEQ_HEARTBEAT, 6), (NEWSYNC, 3, 9)]);
        let figs = lat.figures();
        assert_eq!(figs[0].0, NOOP);
        assert_eq!((figs[0].1.count, figs[0].1.max_us), (1, 30_000));
    }

    #[test]
    fn echoes_of_requests_in_flight_pair_oldest_first() {
        use Direction::{ClientToServer as C2S, ServerToClient as S2C};
        let mut p = Pairing::new();
        let mut lat = LatencyTable::default();
        let noop = Header::new(NOOP, SEQ_HEARTBEAT, 0);
        let sync = Header::new(NEWSYNC, 4, 0);
        // Two noops in flight (the second a resend), then a newsync sent
        // three times; the echoes come back one by one.
        assert_eq!(
            p.frame_from(C2S, &noop, t(0), 1, &mut lat),
            Paired::Heartbeat
        );
        assert_eq!(
            p.frame_from(C2S, &noop, t(10), 2, &mut lat),
            Paired::Heartbeat
        );
        for (ms, no) in [(20, 3), (21, 4), (22, 5)] {
            p.frame_from(C2S, &sync, t(ms), no, &mut lat);
        }
        let echo = |p: &mut Pairing, h: &Header, ms: i64, no: u64, lat: &mut LatencyTable| {
            p.frame_from(S2C, h, t(ms), no, lat)
        };
        assert_eq!(
            echo(&mut p, &noop, 30, 6, &mut lat),
            Paired::Echo {
                latency_ns: 30_000_000,
                request_frame: 1
            }
        );
        assert_eq!(
            echo(&mut p, &sync, 40, 7, &mut lat),
            Paired::Echo {
                latency_ns: 20_000_000,
                request_frame: 3
            }
        );
        assert_eq!(
            echo(&mut p, &noop, 45, 8, &mut lat),
            Paired::Echo {
                latency_ns: 35_000_000,
                request_frame: 2
            }
        );
        // Nothing of the noop left: a third is the server's own heartbeat.
        assert_eq!(echo(&mut p, &noop, 50, 9, &mut lat), Paired::Heartbeat);
        assert_eq!(
            echo(&mut p, &sync, 60, 10, &mut lat),
            Paired::Echo {
                latency_ns: 39_000_000,
                request_frame: 4
            }
        );
        let c = p.counts().clone();
        assert_eq!((c.pairs, c.echoes, c.responses), (4, 4, 4));
        assert_eq!(c.duplicate_requests, 3);
        // The newsync's last send and the server's noop are left.
        assert_eq!(p.finish(), vec![(NEWSYNC, 4, 5), (NOOP, SEQ_HEARTBEAT, 9)]);
        assert_eq!(p.counts().unanswered_requests, 2);
        let noops = lat.figures()[0].1.clone();
        assert_eq!((noops.count, noops.max_us), (2, 35_000));
    }

    #[test]
    fn sends_in_flight_are_bounded() {
        use Direction::{ClientToServer as C2S, ServerToClient as S2C};
        let mut p = Pairing::new();
        let mut lat = LatencyTable::default();
        let noop = Header::new(NOOP, 7, 0);
        let n = MAX_IN_FLIGHT as u64 + 10;
        for i in 0..n {
            p.frame_from(C2S, &noop, t(i as i64), i, &mut lat);
        }
        let mut frames = Vec::new();
        while let Paired::Echo { request_frame, .. } =
            p.frame_from(S2C, &noop, t(1000), 0, &mut lat)
        {
            frames.push(request_frame);
        }
        // The last MAX_IN_FLIGHT + 1 sends (the first kept and 64 later), oldest first.
        let want: Vec<u64> = (n - MAX_IN_FLIGHT as u64 - 1..n).collect();
        assert_eq!(frames, want);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut s = Samples::default();
        for us in 1..=100 {
            s.add(us);
        }
        let l = s.latency();
        assert_eq!(
            (l.p50_us, l.p90_us, l.p99_us, l.max_us, l.count),
            (50, 90, 99, 100, 100)
        );
    }

    #[test]
    fn outstanding_requests_are_bounded() {
        let mut p = Pairing::new();
        let mut lat = LatencyTable::default();
        for seq in 1..=(MAX_OUTSTANDING as u32 + 10) {
            p.frame(&Header::new(NEWSYNC, seq, 0), t(0), seq as u64, &mut lat);
        }
        assert_eq!(p.outstanding.len(), MAX_OUTSTANDING);
        assert_eq!(p.counts().unanswered_requests, 10);
    }
}
