//! Directions picked up mid-stream (no SYN, the first bytes inside a frame
//! or a body, or garbage) and bogus lengths: the exact frames recovered and
//! the skips reported.

use syncscope::analyze::{AnomalyKind, FrameRecord, Options, Report};
use syncscope::capture::Reader;
use syncscope::detect::Protocol;
use syncscope::flow::Direction;
use syncscope::proto::commands::{
    response, IDENTIFY, NEWNOTIFY, NEWSYNC, NOOP, SEQ_HEARTBEAT, SEQ_IDENTIFY, SEQ_PUSH,
};
use syncscope::proto::longlink::{encode, Header};
use syncscope::synth::{Conversation, Side};

/// One connection seen without its handshake: `c2s` and `s2c` sent in
/// turns of `step` bytes (segments of at most 100 bytes), then closed.
pub(crate) fn capture(c2s: &[u8], s2c: &[u8], step: usize) -> Vec<u8> {
    let mut c = Conversation::new(
        "10.0.0.1:40000".parse().unwrap(),
        "10.0.0.2:8080".parse().unwrap(),
        1000,
        9000,
    );
    c.mss = 100;
    let mut frames = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < c2s.len() || j < s2c.len() {
        let n = step.min(c2s.len() - i);
        if n > 0 {
            frames.extend(c.send(Side::Client, &c2s[i..i + n]));
        }
        i += n;
        let n = step.min(s2c.len() - j);
        if n > 0 {
            frames.extend(c.send(Side::Server, &s2c[j..j + n]));
        }
        j += n;
    }
    frames.extend(c.close());
    crate::common::pcap_of(&frames)
}

pub(crate) fn run(c2s: &[u8], s2c: &[u8], step: usize) -> (Vec<FrameRecord>, Report) {
    let opts = Options::default();
    let mut reader = Reader::from_read(
        Box::new(std::io::Cursor::new(capture(c2s, s2c, step))),
        "mid",
    )
    .unwrap();
    crate::common::analyze_capture(&mut reader, &opts)
}

/// (direction, cmd, seq, stream offset) of every long-link frame.
fn frames(records: &[FrameRecord]) -> Vec<(Direction, u32, u32, u64)> {
    records
        .iter()
        .filter_map(|r| Some((r.dir, r.cmd?, r.seq?, r.stream_offset)))
        .collect()
}

/// (direction, offset, kind, detail) of the anomalies.
fn skips(report: &Report) -> Vec<(Direction, u64, AnomalyKind, String)> {
    report
        .anomalies
        .iter()
        .map(|a| (a.dir, a.offset, a.kind, a.detail.clone()))
        .collect()
}

const C2S: Direction = Direction::ClientToServer;
const S2C: Direction = Direction::ServerToClient;

fn mid(n: u64) -> String {
    format!("{n} bytes before the first long-link frame skipped (the direction starts mid-stream)")
}

/// Each case in turns of 1000 bytes (everything at once) and of 7 bytes.
fn check(
    c2s: &[u8],
    s2c: &[u8],
    want_frames: &[(Direction, u32, u32, u64)],
    want_skips: &[(Direction, u64, AnomalyKind, String)],
) {
    for step in [1000, 7] {
        let (records, report) = run(c2s, s2c, step);
        let mut got = frames(&records);
        got.sort_by_key(|f| (f.0 == S2C, f.3));
        assert_eq!(got, want_frames, "step {step}");
        let mut sk = skips(&report);
        sk.sort_by_key(|s| (s.0 == S2C, s.1));
        assert_eq!(sk, want_skips, "step {step}");
    }
}

#[test]
fn a_long_link_direction_that_starts_inside_a_header() {
    let f0 = encode(NEWSYNC, 7, &[0x41; 40]); // 56 bytes, the first 5 not captured
    let mut c2s = f0[5..].to_vec(); // 0..51
    c2s.extend(encode(NEWSYNC, 8, b"abc")); // 51..70
    c2s.extend(encode(NOOP, SEQ_HEARTBEAT, b"")); // 70..86
    let mut s2c = encode(response(NEWSYNC), 8, b"xyz"); // 0..19
    s2c.extend(encode(NOOP, SEQ_HEARTBEAT, b"")); // 19..35
    check(
        &c2s,
        &s2c,
        &[
            (C2S, NEWSYNC, 8, 51),
            (C2S, NOOP, SEQ_HEARTBEAT, 70),
            (S2C, response(NEWSYNC), 8, 0),
            (S2C, NOOP, SEQ_HEARTBEAT, 19),
        ],
        &[(C2S, 0, AnomalyKind::Resync, mid(51))],
    );
}

#[test]
fn a_long_link_direction_that_starts_inside_a_body_with_the_other_as_hint() {
    // The server side starts 30 bytes into a 1000-byte newsync response
    // whose body is text, then one whole frame and the start of another:
    // a chain of one frame is enough because the client side is a long link.
    let big = encode(response(NEWSYNC), 8, &[b'x'; 984]);
    let mut s2c = big[30..].to_vec(); // 0..970
    s2c.extend(encode(NEWNOTIFY, SEQ_PUSH, &[1, 2, 3, 4])); // 970..990
    s2c.extend(&encode(response(NEWSYNC), 9, &[0; 100])[..40]); // 990..1030, cut
    let mut c2s = encode(IDENTIFY, SEQ_IDENTIFY, &[9; 20]); // 0..36
    c2s.extend(encode(NEWSYNC, 9, b"k")); // 36..53
    check(
        &c2s,
        &s2c,
        &[
            (C2S, IDENTIFY, SEQ_IDENTIFY, 0),
            (C2S, NEWSYNC, 9, 36),
            (S2C, NEWNOTIFY, SEQ_PUSH, 970),
        ],
        &[
            (S2C, 0, AnomalyKind::Resync, mid(970)),
            (
                S2C,
                990,
                AnomalyKind::UnfinishedFrame,
                "40 bytes at the end of the stream are not a whole frame".into(),
            ),
        ],
    );
}

#[test]
fn a_long_link_direction_after_garbage_and_a_fake_huge_length() {
    let mut c2s = b"\x01\x02\x03".to_vec(); // 0..3 garbage
    c2s.extend(encode(NEWSYNC, 1, b"ab")); // 3..21
    c2s.extend(encode(NEWSYNC, 2, b"")); // 21..37
    let bogus = Header {
        len: 10 << 20,
        ..Header::new(NEWSYNC, 3, 0)
    };
    c2s.extend(bogus.emit()); // 37..53: claims 10 MiB
    c2s.extend(encode(NOOP, SEQ_HEARTBEAT, b"")); // 53..69
    c2s.extend(encode(NEWSYNC, 4, b"cd")); // 69..87
    c2s.extend(encode(NEWSYNC, 5, b"ef")); // 87..105
    check(
        &c2s,
        &[],
        &[
            (C2S, NEWSYNC, 1, 3),
            (C2S, NEWSYNC, 2, 21),
            (C2S, NOOP, SEQ_HEARTBEAT, 53),
            (C2S, NEWSYNC, 4, 69),
            (C2S, NEWSYNC, 5, 87),
        ],
        &[
            (C2S, 0, AnomalyKind::Resync, mid(3)),
            (
                C2S,
                37,
                AnomalyKind::Resync,
                "16 bytes skipped: a frame length that frames found inside it show bogus".into(),
            ),
        ],
    );
}

#[test]
fn an_over_cap_length_does_not_swallow_the_frames_after_it() {
    // A header claiming almost 4 GiB (over the 16 MiB cap), then frames:
    // they are decoded, the header is reported with its bytes.
    let mut c2s = encode(NEWSYNC, 1, b"ab"); // 0..18
    let huge = Header {
        len: 0xFFFF_0000,
        ..Header::new(NEWSYNC, 2, 0)
    };
    c2s.extend(huge.emit()); // 18..34
    c2s.extend(encode(NOOP, SEQ_HEARTBEAT, b"")); // 34..50
    c2s.extend(encode(NEWSYNC, 3, b"cd")); // 50..68
    c2s.extend(encode(NEWSYNC, 4, &[0x41; 300])); // 68..384
    let mut s2c = encode(response(NEWSYNC), 3, b"xy"); // 0..18
    s2c.extend(encode(response(NEWSYNC), 4, b"")); // 18..34
    check(
        &c2s,
        &s2c,
        &[
            (C2S, NEWSYNC, 1, 0),
            (C2S, NOOP, SEQ_HEARTBEAT, 34),
            (C2S, NEWSYNC, 3, 50),
            (C2S, NEWSYNC, 4, 68),
            (S2C, response(NEWSYNC), 3, 0),
            (S2C, response(NEWSYNC), 4, 18),
        ],
        &[
            (
                C2S,
                18,
                AnomalyKind::OversizeFrame,
                "cmd 121 seq 2 claims 4294901760 bytes, over the cap; \
                 bytes skipped to the next chain of headers"
                    .into(),
            ),
            (
                C2S,
                18,
                AnomalyKind::Resync,
                "16 bytes skipped: a frame length that frames found inside it show bogus".into(),
            ),
        ],
    );
}

/// A direction whose bytes before a gap are no known protocol is searched
/// again after the gap (the other side as a hint), and what it skipped on
/// either side of the gap is reported.
#[test]
fn a_direction_undecided_at_a_gap_is_searched_again_after_it() {
    for hint in [false, true] {
        let mut c = Conversation::new(
            "10.0.0.1:40000".parse().unwrap(),
            "10.0.0.2:8080".parse().unwrap(),
            1000,
            9000,
        );
        let mut packets = Vec::new();
        if hint {
            // The server side is decided first: one frame is then a chain.
            packets.extend(c.send(Side::Server, &encode(NEWNOTIFY, SEQ_PUSH, b"n")));
        }
        packets.extend(c.send(Side::Client, &[0xEE; 10])); // 0..10: no protocol
        let _lost = c.send(Side::Client, &[0xEE; 20]); // 10..30: never captured
        let mut after = vec![0xAB, 0xCD, 0xEF]; // 30..33: the end of a frame
        after.extend(encode(NEWSYNC, 5, b"abc")); // 33..52
        if !hint {
            after.extend(encode(NOOP, SEQ_HEARTBEAT, b"")); // 52..68
        }
        packets.extend(c.send(Side::Client, &after));
        packets.extend(c.close());
        let mut reader = Reader::from_read(
            Box::new(std::io::Cursor::new(crate::common::pcap_of(&packets))),
            "gap",
        )
        .unwrap();
        let (records, report) = crate::common::analyze_capture(&mut reader, &Options::default());
        let mut want = vec![(C2S, NEWSYNC, 5, 33)];
        if hint {
            want.push((S2C, NEWNOTIFY, SEQ_PUSH, 0));
        } else {
            want.push((C2S, NOOP, SEQ_HEARTBEAT, 52));
        }
        let mut got = frames(&records);
        got.sort_by_key(|f| (f.0 == S2C, f.3));
        assert_eq!(got, want, "hint {hint}");
        assert_eq!(
            skips(&report),
            [
                (
                    C2S,
                    0,
                    AnomalyKind::Resync,
                    "10 bytes before a gap are no known protocol (searched again after it)".into()
                ),
                (
                    C2S,
                    10,
                    AnomalyKind::Gap,
                    "20 bytes missing from the capture".into()
                ),
                (
                    C2S,
                    30,
                    AnomalyKind::Resync,
                    "3 bytes before the first long-link frame skipped (after a gap)".into()
                ),
            ],
            "hint {hint}"
        );
        let conn = &report.connections[0];
        assert_eq!(
            (conn.protocol_c2s, conn.client.as_str()),
            (Some(Protocol::Longlink), "10.0.0.1:40000"),
            "hint {hint}"
        );
    }
}

#[test]
fn an_http_direction_that_starts_inside_a_body() {
    let body = "k".repeat(50);
    let req = format!(
        "POST /cgi-bin/micromsg-bin/newsync HTTP/1.1\r\nHost: a\r\nContent-Length: 50\r\n\r\n{body}"
    );
    let resp = format!("HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{body}");
    // Each side starts inside an earlier message's body (the client 20
    // bytes before its end, the server 200: its answer comes after the
    // request, whatever the turns).
    let c2s = format!("{}{req}", "z".repeat(20));
    let s2c = format!("{}{resp}", "y".repeat(200));
    let mid = |dir, n| {
        (
            dir,
            0,
            AnomalyKind::Resync,
            format!("{n} bytes before the first HTTP start line skipped (the direction starts mid-stream)"),
        )
    };
    for step in [1000, 7] {
        let (records, report) = run(c2s.as_bytes(), s2c.as_bytes(), step);
        let got: Vec<_> = records
            .iter()
            .map(|r| {
                (
                    r.dir,
                    r.layer.as_str(),
                    r.method.as_deref(),
                    r.path.as_deref(),
                    r.status,
                    r.stream_offset,
                    r.len,
                )
            })
            .collect();
        assert_eq!(
            got,
            [(
                S2C,
                "http",
                Some("POST"),
                Some("/cgi-bin/micromsg-bin/newsync"),
                Some(200),
                200,
                89
            )],
            "step {step}"
        );
        assert_eq!(skips(&report), [mid(C2S, 20), mid(S2C, 200)], "step {step}");
    }
}

#[test]
fn past_the_search_cap_a_direction_stays_unknown() {
    // 20 KiB of bytes that are no protocol, then frames: the search stops
    // at 16 KiB, the direction is unknown, nothing is decoded.
    let mut c2s = vec![0xEE; 20 << 10];
    for seq in 1..4 {
        c2s.extend(encode(NEWSYNC, seq, b"abc"));
    }
    let (records, report) = run(&c2s, &[], 1000);
    assert!(records.is_empty(), "{records:?}");
    assert!(report.anomalies.is_empty(), "{:?}", report.anomalies);
    // Within the cap they are found.
    c2s.drain(..10 << 10);
    check(
        &c2s,
        &[],
        &[
            (C2S, NEWSYNC, 1, 10 << 10),
            (C2S, NEWSYNC, 2, (10 << 10) + 19),
            (C2S, NEWSYNC, 3, (10 << 10) + 38),
        ],
        &[(C2S, 0, AnomalyKind::Resync, mid(10 << 10))],
    );
}

/// An MMTLS record: type, version f1 04, length, payload.
fn record(typ: u8, payload: &[u8]) -> Vec<u8> {
    let mut r = vec![typ, 0xf1, 0x04];
    r.extend((payload.len() as u16).to_be_bytes());
    r.extend(payload);
    r
}

#[test]
fn an_mmtls_direction_that_starts_inside_a_record() {
    let first = record(0x17, &[0x55; 60]);
    let mut c2s = first[25..].to_vec(); // 0..40
    c2s.extend(record(0x17, &[1; 30])); // 40..75
    c2s.extend(record(0x17, &[2; 20])); // 75..100
    c2s.extend(record(0x15, &[3; 2])); // 100..107
    let mut s2c = record(0x17, &[4; 10]); // 0..15
    s2c.extend(record(0x17, &[5; 10])); // 15..30
    for step in [1000, 7] {
        let (records, report) = run(&c2s, &s2c, step);
        let mut got: Vec<_> = records
            .iter()
            .map(|r| {
                (
                    r.dir,
                    r.layer.as_str(),
                    r.kind.clone(),
                    r.stream_offset,
                    r.len,
                )
            })
            .collect();
        got.sort_by_key(|r| (r.0 == S2C, r.3));
        let rec = |dir, kind: &str, off, len| (dir, "mmtls", kind.to_string(), off, len);
        assert_eq!(
            got,
            [
                rec(C2S, "data", 40, 35),
                rec(C2S, "data", 75, 25),
                rec(C2S, "alert", 100, 7),
                rec(S2C, "data", 0, 15),
                rec(S2C, "data", 15, 15),
            ],
            "step {step}"
        );
        assert_eq!(
            skips(&report),
            [(
                C2S,
                0,
                AnomalyKind::Resync,
                "40 bytes before the first MMTLS record skipped (the direction starts mid-stream)"
                    .to_string()
            )],
            "step {step}"
        );
    }
}

/// A long-link stream picked up at any byte, sent in turns of any size:
/// every frame that starts at or after the first byte seen is decoded,
/// and the bytes before the first of them are reported.
#[test]
fn a_long_link_stream_picked_up_anywhere() {
    use proptest::prelude::*;
    let strategy = (
        proptest::collection::vec((0u32..300, any::<u32>(), 0usize..40), 1..8),
        any::<proptest::sample::Index>(),
        1usize..60,
    );
    proptest!(ProptestConfig::with_cases(200), |((spec, cut, step) in strategy)| {
        let mut stream = Vec::new();
        let mut starts = Vec::new();
        for (cmd, seq, blen) in &spec {
            starts.push((stream.len() as u64, *cmd, *seq));
            // Bodies of 0xEE bytes never look like headers.
            stream.extend(encode(*cmd, *seq, &vec![0xEE; *blen]));
        }
        let cut = cut.index(stream.len()) as u64;
        let want: Vec<_> = starts
            .iter()
            .filter(|s| s.0 >= cut)
            .map(|&(o, cmd, seq)| (C2S, cmd, seq, o - cut))
            .collect();
        let want_skips = match want.first() {
            Some(&(_, _, _, first)) if first > 0 => vec![(C2S, 0, AnomalyKind::Resync, mid(first))],
            _ => vec![],
        };
        let (records, report) = run(&stream[cut as usize..], &[], step);
        prop_assert_eq!(frames(&records), want);
        prop_assert_eq!(skips(&report), want_skips);
    });
}
