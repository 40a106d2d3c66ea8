//! One direction's reassembly on hand-made segments.

use super::*;

/// Feeds segments (seq, flags, payload) and ACKs; returns delivered bytes and the other events.
#[derive(Default)]
struct Run {
    bytes: Vec<u8>,
    events: Vec<String>,
}

enum Step<'a> {
    Seg(u32, &'a str, &'a [u8]),
    Cut(u32, &'a [u8], u32),
    Ack(u32),
    Finish,
}

fn run(steps: &[Step<'_>]) -> (Run, Stats) {
    let mut h = HalfStream::new(Config::default());
    let mut budget = Budget::new(usize::MAX);
    let mut r = Run::default();
    let mut expect = 0u64;
    for s in steps {
        let mut out = |ev: Event<'_>| match ev {
            Event::Data { offset, bytes, .. } => {
                assert_eq!(offset, expect, "data is contiguous");
                expect += bytes.len() as u64;
                r.bytes.extend_from_slice(bytes);
            }
            Event::Gap {
                offset,
                len,
                reason,
            } => {
                assert_eq!(offset, expect, "gaps are contiguous");
                expect += len;
                r.events.push(format!("gap {offset}+{len} {reason:?}"));
            }
            other => r.events.push(format!("{other:?}")),
        };
        match *s {
            Step::Seg(seq, flags, payload) => h.segment(
                Segment {
                    seq,
                    syn: flags.contains('S'),
                    fin: flags.contains('F'),
                    rst: flags.contains('R'),
                    payload,
                    wire_len: payload.len() as u32,
                    packet: 0,
                },
                &mut budget,
                &mut out,
            ),
            Step::Cut(seq, payload, wire_len) => h.segment(
                Segment {
                    seq,
                    payload,
                    wire_len,
                    ..Segment::default()
                },
                &mut budget,
                &mut out,
            ),
            Step::Ack(a) => h.peer_ack(a, &mut budget, &mut out),
            Step::Finish => h.finish(&mut budget, &mut out),
        }
    }
    assert_eq!(budget.used, h.held(), "budget matches what is held");
    (r, *h.stats())
}
use Step::*;

#[test]
fn in_order_with_syn_and_fin() {
    let (r, st) = run(&[
        Seg(100, "S", b""),
        Seg(101, "", b"hello "),
        Seg(107, "F", b"world"),
        Finish,
    ]);
    assert_eq!(r.bytes, b"hello world");
    assert_eq!(r.events, ["Fin { offset: 11 }"]);
    assert_eq!((st.bytes, st.gaps), (11, 0));
}

#[test]
fn accepted_bytes_win_and_a_different_overlap_is_reported() {
    let (r, st) = run(&[
        Seg(0, "S", b""),
        Seg(1, "", b"GOOD"),
        Seg(1, "", b"EVIL"),
        Seg(3, "", b"XXYY"),
    ]);
    assert_eq!(r.bytes, b"GOODYY");
    assert_eq!(
        r.events,
        [
            "Anomaly(OverlapMismatch { offset: 0, len: 4, packet: 0 })",
            "Anomaly(OverlapMismatch { offset: 2, len: 2, packet: 0 })"
        ]
    );
    assert_eq!(st.dup_bytes, 6);
}

#[test]
fn identical_retransmission_is_silent() {
    let (r, _) = run(&[Seg(0, "S", b""), Seg(1, "", b"abcd"), Seg(1, "", b"abcdef")]);
    assert_eq!(r.bytes, b"abcdef");
    assert!(r.events.is_empty(), "{:?}", r.events);
}

#[test]
fn later_in_order_bytes_win_over_an_early_out_of_order_segment() {
    // tshark: "WWWW"@+4 first, then "AAAAZZ"@0 -> "AAAAZZWW".
    let (r, _) = run(&[Seg(0, "S", b""), Seg(5, "", b"WWWW"), Seg(1, "", b"AAAAZZ")]);
    assert_eq!(r.bytes, b"AAAAZZWW");
}

#[test]
fn out_of_order_is_released_in_order() {
    let (r, _) = run(&[
        Seg(0, "S", b""),
        Seg(7, "", b"ghi"),
        Seg(4, "", b"def"),
        Seg(1, "", b"abc"),
    ]);
    assert_eq!(r.bytes, b"abcdefghi");
}

#[test]
fn ack_inside_the_hole_keeps_waiting_ack_past_held_data_gives_it_up() {
    let (r, _) = run(&[
        Seg(0, "S", b""),
        Seg(1, "", b"abc"),
        Seg(10, "", b"xyz"), // hole at offsets 3..9
        Ack(8),              // inside the hole: a retransmission may come
    ]);
    assert_eq!(r.bytes, b"abc");
    assert!(r.events.is_empty());
    let (r, _) = run(&[
        Seg(0, "S", b""),
        Seg(1, "", b"abc"),
        Seg(10, "", b"xyz"),
        Ack(11),
    ]);
    assert_eq!(r.bytes, b"abcxyz");
    assert_eq!(r.events, ["gap 3+6 Acked"]);
}

#[test]
fn unacked_hole_is_given_up_at_the_end_and_the_rest_delivered() {
    let (r, st) = run(&[
        Seg(0, "S", b""),
        Seg(1, "", b"ab"),
        Seg(5, "F", b"ef"),
        Finish,
    ]);
    assert_eq!(r.bytes, b"abef");
    assert_eq!(r.events, ["gap 2+2 Ended", "Fin { offset: 6 }"]);
    assert_eq!((st.gaps, st.gap_bytes), (1, 2));
}

#[test]
fn keepalive_is_not_data() {
    let (r, st) = run(&[
        Seg(0, "S", b""),
        Seg(1, "", b"abc"),
        Seg(3, "", b"\0"),
        Seg(4, "", b"d"),
    ]);
    assert_eq!(r.bytes, b"abcd");
    assert!(r.events.is_empty(), "{:?}", r.events);
    assert_eq!(st.keepalives, 1);
}

#[test]
fn sequence_numbers_wrap() {
    let isn = u32::MAX - 2;
    let (r, _) = run(&[
        Seg(isn, "S", b""),
        Seg(isn.wrapping_add(1), "", b"ab"),
        Seg(isn.wrapping_add(3), "", b"cd"), // crosses 0
        Seg(isn.wrapping_add(5), "", b"ef"),
    ]);
    assert_eq!(r.bytes, b"abcdef");
}

#[test]
fn midstream_pickup_reports_older_data() {
    let (r, st) = run(&[Seg(105, "", b"WORLD"), Seg(100, "", b"HELO ")]);
    assert_eq!(r.bytes, b"WORLD");
    assert_eq!(r.events, ["Anomaly(LateData { offset: -5, len: 5 })"]);
    assert_eq!(st.anomalies, 1);
}

#[test]
fn snaplen_cut_is_a_gap_of_the_missing_bytes() {
    let (r, _) = run(&[Seg(0, "S", b""), Cut(1, b"abcd", 10), Seg(11, "", b"klm")]);
    assert_eq!(r.bytes, b"abcdklm");
    assert_eq!(r.events, ["gap 4+6 Uncaptured"]);
}

#[test]
fn payload_on_syn_and_rst_is_data() {
    let (r, _) = run(&[Seg(0, "S", b"Hi!"), Seg(4, "R", b"bye")]);
    assert_eq!(r.bytes, b"Hi!bye");
    assert_eq!(r.events, ["Rst { offset: 6 }"]);
}

#[test]
fn a_syn_after_a_bare_rst_anchors_the_direction() {
    // A refused first attempt (RST, seq 0), then the SYN+ACK of the retry.
    let (r, _) = run(&[
        Seg(0, "R", b""),
        Seg(5000, "S", b""),
        Seg(5001, "", b"data"),
    ]);
    assert_eq!(r.bytes, b"data");
}

#[test]
fn of_several_syns_before_any_data_the_last_one_counts() {
    let (r, st) = run(&[
        Seg(100, "S", b""),
        Seg(900, "S", b""),
        Seg(901, "", b"data"),
        Seg(100, "S", b""), // once data went, a SYN no longer moves it
        Seg(905, "", b"more"),
    ]);
    assert_eq!(r.bytes, b"datamore");
    assert_eq!(st.anomalies, 2);
    assert_eq!(
        r.events,
        [
            "Anomaly(IsnChanged { isn: 100, new: 900 })",
            "Anomaly(IsnChanged { isn: 900, new: 100 })"
        ]
    );
    // The peer acknowledged the first SYN: a second one does not move it.
    let (r, _) = run(&[
        Seg(100, "S", b""),
        Ack(101),
        Seg(900, "S", b""),
        Seg(101, "", b"data"),
    ]);
    assert_eq!(r.bytes, b"data");
    // Two SYNs, then the peer acknowledges the first: back to it.
    let (r, _) = run(&[
        Seg(100, "S", b""),
        Seg(900, "S", b""),
        Ack(101),
        Seg(101, "", b"data"),
        Seg(900, "S", b""),
    ]);
    assert_eq!(r.bytes, b"data");
}

#[test]
fn buffer_cap_gives_up_the_hole() {
    let cap = 2 * (4 + SEGMENT_OVERHEAD);
    let mut h = HalfStream::new(Config {
        max_buffer_per_direction: cap,
        ..Config::default()
    });
    let mut b = Budget::new(usize::MAX);
    let mut ev = Vec::new();
    let mut out = |e: Event<'_>| ev.push(format!("{e:?}"));
    let seg = |seq, payload| Segment {
        seq,
        payload,
        wire_len: 4,
        packet: 0,
        ..Segment::default()
    };
    h.segment(seg(0, b"aaaa"), &mut b, &mut out);
    h.segment(seg(10, b"bbbb"), &mut b, &mut out);
    h.segment(seg(20, b"cccc"), &mut b, &mut out);
    assert_eq!(h.buffered(), 8, "two segments fit the cap");
    h.segment(seg(30, b"dddd"), &mut b, &mut out);
    assert!(h.held() <= cap);
    assert!(ev.iter().any(|e| e.contains("BufferCap")), "{ev:?}");
    assert_eq!(b.used, h.held());
}

/// Holes of one byte each (a segment, a hole, a segment, ...) never
/// ACKed: what is held stays within the cap counted with each
/// segment's overhead, not only its bytes (2,000,000 such holes took
/// 167 MB when only bytes counted).
#[test]
fn a_flood_of_one_byte_segments_is_bounded_by_the_cap() {
    let cap = 64 << 10;
    let mut h = HalfStream::new(Config {
        max_buffer_per_direction: cap,
        ..Config::default()
    });
    let mut b = Budget::new(usize::MAX);
    let mut caps = 0;
    let mut out = |e: Event<'_>| {
        if matches!(e, Event::Anomaly(Anomaly::BufferCap { .. })) {
            caps += 1;
        }
    };
    h.segment(
        Segment {
            seq: 0,
            syn: true,
            ..Segment::default()
        },
        &mut b,
        &mut out,
    );
    for i in 0..20_000u32 {
        let seg = Segment {
            seq: 3 + 2 * i,
            payload: b"x",
            wire_len: 1,
            packet: 0,
            ..Segment::default()
        };
        h.segment(seg, &mut b, &mut out);
        assert!(h.held() <= cap, "held {} over the cap", h.held());
    }
    assert!(h.buffered() <= cap / (1 + SEGMENT_OVERHEAD));
    assert!(caps > 0);
    assert_eq!(b.used, h.held());
}

#[test]
fn streams_longer_than_4_gib_keep_64_bit_offsets() {
    let mut h = HalfStream::new(Config::default());
    let mut b = Budget::new(usize::MAX);
    let mut last = (0, 0);
    let mut out = |e: Event<'_>| {
        if let Event::Data { offset, bytes, .. } = e {
            last = (offset, bytes.len());
        }
    };
    let seg = |seq: u32, payload| Segment {
        seq,
        payload,
        wire_len: 1,
        packet: 0,
        ..Segment::default()
    };
    h.segment(seg(0, b"a"), &mut b, &mut out);
    // Five acknowledged jumps of 1 GiB each: 5 GiB of holes in all.
    for i in 1..=5u64 {
        let seq = (i << 30) as u32;
        h.segment(seg(seq, b"x"), &mut b, &mut out);
        h.peer_ack(seq.wrapping_add(1), &mut b, &mut out);
    }
    assert_eq!(last.0, 5 << 30);
    assert_eq!(h.stats().gap_bytes, (5u64 << 30) - 5);
}
