//! The flow table on hand-made segments: roles, port reuse, expiry, caps,
//! SYN-only connections and tunnels.

use super::*;
use crate::wire::{TcpFlags, Tunnel, TunnelKind};

#[derive(Default)]
struct Rec {
    ended: Vec<FlowSummary>,
    data: Vec<(u64, Side, Direction, Vec<u8>)>,
}

impl Sink for Rec {
    fn event(&mut self, flow: &FlowMeta, side: Side, ev: Event<'_>) {
        if let Event::Data { bytes, .. } = ev {
            self.data
                .push((flow.id, side, flow.direction(side), bytes.to_vec()));
        }
    }
    fn flow_end(&mut self, s: &FlowSummary) {
        self.ended.push(s.clone());
    }
}

const C: &str = "10.0.0.1:5000";
const S: &str = "10.0.0.2:8080";

fn seg<'a>(
    src: &str,
    dst: &str,
    seq: u32,
    ack: Option<u32>,
    flags: &str,
    payload: &'a [u8],
) -> TcpSegment<'a> {
    TcpSegment {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        seq,
        ack: ack.unwrap_or(0),
        flags: TcpFlags {
            syn: flags.contains('S'),
            ack: ack.is_some(),
            fin: flags.contains('F'),
            rst: flags.contains('R'),
        },
        window: 1000,
        payload,
        wire_len: payload.len() as u32,
        packet: 0,
        tunnel: None,
    }
}

fn ts(secs: i64) -> Timestamp {
    Timestamp::new(secs, 0, 6)
}

#[test]
fn roles_follow_the_syn_even_when_the_synack_comes_first() {
    let mut t = FlowTable::new(Config::default());
    let mut r = Rec::default();
    t.packet(ts(1), &seg(S, C, 500, Some(101), "S", b""), &mut r); // SYN+ACK first
    t.packet(ts(1), &seg(C, S, 100, None, "S", b""), &mut r);
    t.packet(ts(1), &seg(C, S, 101, Some(501), "", b"req"), &mut r);
    t.packet(ts(1), &seg(S, C, 501, Some(104), "", b"resp"), &mut r);
    t.finish(&mut r);
    let f = &r.ended[0];
    assert_eq!(
        (f.client.to_string(), f.server.to_string()),
        (C.into(), S.into())
    );
    assert_eq!(f.client_by, ClientBy::Syn);
    assert_eq!((f.c2s.bytes, f.s2c.bytes), (3, 4));
    assert_eq!(f.end, End::Open);
}

#[test]
fn without_syn_the_first_sender_is_the_client() {
    let mut t = FlowTable::new(Config::default());
    let mut r = Rec::default();
    t.packet(ts(1), &seg(S, C, 7, Some(9), "", b"late"), &mut r);
    t.finish(&mut r);
    assert_eq!(r.ended[0].client.to_string(), S);
    assert_eq!(r.ended[0].client_by, ClientBy::FirstPacket);
}

#[test]
fn new_syn_on_a_closed_tuple_is_a_new_connection_syn_retransmission_is_not() {
    let mut t = FlowTable::new(Config::default());
    let mut r = Rec::default();
    t.packet(ts(1), &seg(C, S, 100, None, "S", b""), &mut r);
    t.packet(ts(1), &seg(C, S, 100, None, "S", b""), &mut r); // retransmitted SYN
    t.packet(ts(1), &seg(S, C, 0, Some(101), "R", b""), &mut r);
    t.packet(ts(2), &seg(C, S, 9000, None, "S", b""), &mut r); // port reuse
    t.packet(ts(2), &seg(C, S, 9001, Some(1), "", b"x"), &mut r);
    t.finish(&mut r);
    assert_eq!(r.ended.len(), 2);
    assert_eq!(
        (r.ended[0].id, r.ended[0].end, r.ended[0].packets),
        (0, End::Rst, 3)
    );
    assert_eq!((r.ended[1].id, r.ended[1].c2s.bytes), (1, 1));
    assert_eq!(t.stats().reused, 1);
}

#[test]
fn idle_connections_expire_only_after_time_and_packets() {
    let cfg = Config {
        idle_timeout_secs: 100,
        idle_min_packets: 3,
        ..Config::default()
    };
    let mut t = FlowTable::new(cfg);
    let mut r = Rec::default();
    t.packet(ts(0), &seg(C, S, 1, None, "", b"a"), &mut r);
    // A clock jump alone does not expire it ...
    t.packet(ts(10_000), &seg("10.0.0.3:1", S, 1, None, "", b"b"), &mut r);
    assert!(r.ended.is_empty());
    // ... time and enough other packets do (sweeps run at most every 1024 packets).
    for i in 0..1100u32 {
        t.packet(
            ts(10_020),
            &seg("10.0.0.3:1", S, 2 + i, None, "", b"c"),
            &mut r,
        );
    }
    assert_eq!(r.ended.len(), 1);
    assert_eq!(r.ended[0].id, 0);
    assert_eq!(t.stats().expired_idle, 1);
    assert_eq!(t.active(), 1);
}

#[test]
fn flow_cap_evicts_the_least_recently_active() {
    let mut t = FlowTable::new(Config {
        max_flows: 2,
        ..Config::default()
    });
    let mut r = Rec::default();
    t.packet(ts(1), &seg("10.0.0.3:1", S, 1, None, "", b"a"), &mut r);
    t.packet(ts(2), &seg("10.0.0.4:1", S, 1, None, "", b"b"), &mut r);
    t.packet(ts(3), &seg("10.0.0.3:1", S, 2, None, "", b"c"), &mut r);
    t.packet(ts(4), &seg("10.0.0.5:1", S, 1, None, "", b"d"), &mut r);
    assert_eq!(r.ended.len(), 1);
    assert_eq!(r.ended[0].client.to_string(), "10.0.0.4:1");
    assert_eq!(t.active(), 2);
    assert_eq!(t.stats().evicted, 1);
}

#[test]
fn events_carry_the_direction() {
    let mut t = FlowTable::new(Config::default());
    let mut r = Rec::default();
    t.packet(ts(1), &seg(C, S, 100, None, "S", b""), &mut r);
    t.packet(ts(1), &seg(S, C, 500, Some(101), "S", b""), &mut r);
    t.packet(ts(1), &seg(C, S, 101, Some(501), "", b"up"), &mut r);
    t.packet(ts(1), &seg(S, C, 501, Some(103), "F", b"down"), &mut r);
    t.packet(ts(1), &seg(C, S, 103, Some(506), "F", b""), &mut r);
    t.finish(&mut r);
    assert_eq!(
        r.data,
        [
            (0, Side::First, Direction::ClientToServer, b"up".to_vec()),
            (0, Side::Second, Direction::ServerToClient, b"down".to_vec())
        ]
    );
    assert_eq!(r.ended[0].end, End::Fin);
}

#[test]
fn a_syn_only_connection_keeps_its_counts_when_it_goes_on() {
    let mut t = FlowTable::new(Config::default());
    let mut r = Rec::default();
    t.packet(ts(1), &seg(C, S, 100, None, "S", b""), &mut r);
    t.packet(ts(2), &seg(C, S, 100, None, "S", b""), &mut r); // retransmitted
    assert!(matches!(t.flows.get(0).halves, Halves::Syn(_)));
    t.packet(ts(2), &seg(S, C, 500, Some(101), "S", b""), &mut r);
    assert!(matches!(t.flows.get(0).halves, Halves::Full(_)));
    t.packet(ts(3), &seg(C, S, 101, Some(501), "", b"abc"), &mut r);
    // A keep-alive: one byte below the next expected, counted apart from data.
    t.packet(ts(3), &seg(C, S, 103, Some(501), "", b"x"), &mut r);
    // A SYN-only connection that never goes on.
    t.packet(ts(4), &seg("10.0.0.9:1", S, 7, None, "S", b""), &mut r);
    t.packet(ts(4), &seg("10.0.0.9:1", S, 7, None, "S", b""), &mut r);
    t.finish(&mut r);
    let f = &r.ended[0];
    assert_eq!((f.c2s.segments, f.c2s.bytes, f.c2s.keepalives), (4, 3, 1));
    assert_eq!((f.s2c.segments, f.s2c.bytes), (1, 0));
    assert_eq!(
        (f.client_by, f.packets, f.end),
        (ClientBy::Syn, 5, End::Open)
    );
    let g = &r.ended[1];
    assert_eq!((g.c2s.segments, g.s2c.segments, g.packets), (2, 0, 2));
    assert_eq!(
        g.c2s,
        reassembly::Stats {
            segments: 2,
            ..Default::default()
        }
    );
}

#[test]
fn closed_connections_expire_on_their_own_timeout_behind_an_open_one() {
    let cfg = Config {
        idle_timeout_secs: 600,
        closed_timeout_secs: 60,
        idle_min_packets: 1,
        ..Config::default()
    };
    let mut t = FlowTable::new(cfg);
    let mut r = Rec::default();
    // Open and older: not idle long enough at t=100.
    t.packet(ts(0), &seg("10.0.0.3:1", S, 1, None, "", b"a"), &mut r);
    // Closed at t=10 (RST): idle 90 s > 60 s at t=100.
    t.packet(ts(10), &seg("10.0.0.4:1", S, 1, None, "R", b""), &mut r);
    for i in 0..1100u32 {
        t.packet(
            ts(100),
            &seg("10.0.0.5:1", S, 1 + i, None, "", b"c"),
            &mut r,
        );
    }
    let ended: Vec<String> = r.ended.iter().map(|f| f.client.to_string()).collect();
    assert_eq!(ended, ["10.0.0.4:1"]);
    assert_eq!((t.stats().expired_idle, t.active()), (1, 2));
}

fn gtp(src: &str, dst: &str, teid: u32) -> Option<Tunnel> {
    Some(Tunnel {
        kind: TunnelKind::GtpU,
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        id: Some(teid),
        depth: 1,
    })
}

#[test]
fn the_same_4_tuple_in_two_tunnels_is_two_connections() {
    let mut t = FlowTable::new(Config::default());
    let mut r = Rec::default();
    let mut p = |t: &mut FlowTable, src, dst, seq, ack, tun, data: &'static [u8]| {
        let mut s = seg(src, dst, seq, ack, "", data);
        s.tunnel = tun;
        t.packet(ts(1), &s, &mut r);
    };
    // Uplink and downlink of one GTP-U tunnel: one connection, a TEID each way.
    p(
        &mut t,
        C,
        S,
        1,
        None,
        gtp("192.168.0.1", "192.168.0.2", 7),
        b"up",
    );
    p(
        &mut t,
        S,
        C,
        9,
        Some(3),
        gtp("192.168.0.2", "192.168.0.1", 8),
        b"down",
    );
    // The same inner 4-tuple between other tunnel endpoints, and without a tunnel.
    p(
        &mut t,
        C,
        S,
        500,
        None,
        gtp("192.168.0.9", "192.168.0.2", 7),
        b"other",
    );
    p(&mut t, C, S, 800, None, None, b"plain");
    t.finish(&mut r);
    assert_eq!(r.ended.len(), 3);
    let ft = r.ended[0].tunnel.as_deref().unwrap();
    assert_eq!(ft.kind, TunnelKind::GtpU);
    assert_eq!(ft.ids, [Some(7), Some(8)]);
    assert_eq!(ft.outer[0].to_string(), "192.168.0.1");
    assert_eq!((r.ended[0].c2s.bytes, r.ended[0].s2c.bytes), (2, 4));
    assert_eq!(
        r.ended[1].tunnel.as_ref().map(|t| t.outer[0].to_string()),
        Some("192.168.0.9".into())
    );
    assert!(r.ended[2].tunnel.is_none());
    assert_eq!(r.ended[2].c2s.bytes, 5);
}
