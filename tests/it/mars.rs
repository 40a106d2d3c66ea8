//! The Tencent Mars framing (20-byte header): detected by content at the
//! start of a direction and mid-stream, split in any chunking, paired
//! (responses echo the request's cmd and seq), resynchronised, its bogus
//! lengths shown up; a profile's `[mars] client_version` filters frames.

use syncscope::analyze::{AnomalyKind, FrameRecord, Options, Report};
use syncscope::capture::Reader;
use syncscope::flow::Direction;
use syncscope::proto::commands::{NEWNOTIFY, NEWSENDMSG, NEWSYNC, NOOP, SEQ_HEARTBEAT, SEQ_PUSH};
use syncscope::proto::longlink::mars::encode;

const C2S: Direction = Direction::ClientToServer;
const S2C: Direction = Direction::ServerToClient;
const VERSION: u32 = 0x2800_1737;

/// (direction, layer, kind, cmd, seq, stream offset, whether a latency was measured).
type Row = (Direction, String, String, u32, u32, u64, bool);

fn rows(records: &[FrameRecord]) -> Vec<Row> {
    let mut v: Vec<Row> = records
        .iter()
        .filter_map(|r| {
            Some((
                r.dir,
                r.layer.as_str().to_owned(),
                r.kind.clone(),
                r.cmd?,
                r.seq?,
                r.stream_offset,
                r.latency_us.is_some(),
            ))
        })
        .collect();
    v.sort_by_key(|f| (f.0 == S2C, f.5));
    v
}

fn anomalies(report: &Report) -> Vec<(Direction, u64, AnomalyKind, String)> {
    let mut v: Vec<_> = report
        .anomalies
        .iter()
        .map(|a| (a.dir, a.offset, a.kind, a.detail.clone()))
        .collect();
    v.sort_by_key(|s| (s.0 == S2C, s.1));
    v
}

fn row(dir: Direction, kind: &str, cmd: u32, seq: u32, off: u64, lat: bool) -> Row {
    (dir, "mars".into(), kind.into(), cmd, seq, off, lat)
}

/// A Mars conversation: noops echoed with the same cmd and seq, two
/// requests answered with their own cmd and seq, a push.
fn conversation() -> (Vec<u8>, Vec<u8>, Vec<Row>) {
    let mut c2s = encode(VERSION, NOOP, SEQ_HEARTBEAT, b""); // 0..20
    c2s.extend(encode(VERSION, NEWSYNC, 1, &[7; 10])); // 20..50
    c2s.extend(encode(VERSION, NEWSENDMSG, 2, b"hello")); // 50..75
    let mut s2c = encode(VERSION, NOOP, SEQ_HEARTBEAT, b""); // 0..20
    s2c.extend(encode(VERSION, NEWSYNC, 1, &[9; 30])); // 20..70
    s2c.extend(encode(VERSION, NEWNOTIFY, SEQ_PUSH, &[1, 2, 3, 4])); // 70..94
    s2c.extend(encode(VERSION, NEWSENDMSG, 2, b"ok!")); // 94..117
    let want = vec![
        row(C2S, "heartbeat", NOOP, SEQ_HEARTBEAT, 0, false),
        row(C2S, "request", NEWSYNC, 1, 20, false),
        row(C2S, "request", NEWSENDMSG, 2, 50, false),
        // Mars answers a noop with the same cmd and seq: paired.
        row(S2C, "response", NOOP, SEQ_HEARTBEAT, 0, true),
        row(S2C, "response", NEWSYNC, 1, 20, true),
        row(S2C, "push", NEWNOTIFY, SEQ_PUSH, 70, false),
        row(S2C, "response", NEWSENDMSG, 2, 94, true),
    ];
    (c2s, s2c, want)
}

#[test]
fn a_mars_conversation_in_every_chunking() {
    let (c2s, s2c, want) = conversation();
    for step in 1..=c2s.len().max(s2c.len()) {
        let (records, report) = crate::midstream::run(&c2s, &s2c, step);
        assert_eq!(rows(&records), want, "step {step}");
        assert_eq!(anomalies(&report), vec![], "step {step}");
        assert!(report.unanswered.is_empty(), "step {step}");
        let row = &report.connections[0];
        assert_eq!(row.kind.as_str(), "longlink", "step {step}");
    }
}

#[test]
fn mars_after_garbage_mid_stream() {
    let (c2s, s2c, want) = conversation();
    // The client's side starts with 13 bytes of garbage, the server's
    // inside its first frame (7 bytes of it missing).
    let mut g = b"\x01garbage-here".to_vec();
    g.extend(&c2s);
    let s = &s2c[7..];
    let want: Vec<Row> = want
        .into_iter()
        .filter(|r| !(r.0 == S2C && r.5 == 0))
        .map(|mut r| {
            r.5 = if r.0 == C2S { r.5 + 13 } else { r.5 - 7 };
            r
        })
        .collect();
    let mid = |n: u64| {
        format!("{n} bytes before the first Mars frame skipped (the direction starts mid-stream)")
    };
    for step in [1, 5, 7, 19, 20, 21, 1000] {
        let (records, report) = crate::midstream::run(&g, s, step);
        assert_eq!(rows(&records), want, "step {step}");
        assert_eq!(
            anomalies(&report),
            vec![
                (C2S, 0, AnomalyKind::Resync, mid(13)),
                (S2C, 0, AnomalyKind::Resync, mid(13)),
            ],
            "step {step}"
        );
    }
}

#[test]
fn two_noops_in_flight_pair_with_their_echoes_in_order() {
    // The client sends two noops before the first echo comes back: each
    // echo answers one of them, oldest first, with its own latency.
    let mut c2s = encode(VERSION, NOOP, SEQ_HEARTBEAT, b""); // 0..20
    c2s.extend(encode(VERSION, NOOP, SEQ_HEARTBEAT, b"")); // 20..40
    let mut s2c = encode(VERSION, NOOP, SEQ_HEARTBEAT, b""); // 0..20
    s2c.extend(encode(VERSION, NOOP, SEQ_HEARTBEAT, b"")); // 20..40
    let (records, report) = crate::midstream::run(&c2s, &s2c, 1000);
    assert_eq!(
        rows(&records),
        vec![
            row(C2S, "heartbeat", NOOP, SEQ_HEARTBEAT, 0, false),
            row(C2S, "heartbeat", NOOP, SEQ_HEARTBEAT, 20, false),
            row(S2C, "response", NOOP, SEQ_HEARTBEAT, 0, true),
            row(S2C, "response", NOOP, SEQ_HEARTBEAT, 20, true),
        ]
    );
    let pc = &report.pairing_by_conn[0].counts;
    assert_eq!((pc.pairs, pc.echoes, pc.unanswered_requests), (2, 2, 0));
    assert!(report.unanswered.is_empty());
}

#[test]
fn a_bogus_mars_length_is_skipped() {
    let mut c2s = encode(VERSION, NEWSYNC, 1, b"a"); // 0..21
    let mut bogus = encode(VERSION, NEWSYNC, 2, b""); // 21..41, claims 100000 bytes
    bogus[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    c2s.extend(bogus);
    c2s.extend(encode(VERSION, NEWSYNC, 3, b"b")); // 41..62
    c2s.extend(encode(VERSION, NEWSYNC, 4, b"c")); // 62..83
    c2s.extend(encode(VERSION, NOOP, SEQ_HEARTBEAT, b"")); // 83..103
    for step in [1, 3, 20, 1000] {
        let (records, report) = crate::midstream::run(&c2s, b"", step);
        assert_eq!(
            rows(&records),
            vec![
                row(C2S, "request", NEWSYNC, 1, 0, false),
                row(C2S, "request", NEWSYNC, 3, 41, false),
                row(C2S, "request", NEWSYNC, 4, 62, false),
                row(C2S, "heartbeat", NOOP, SEQ_HEARTBEAT, 83, false),
            ],
            "step {step}"
        );
        assert_eq!(
            anomalies(&report),
            vec![(
                C2S,
                21,
                AnomalyKind::Resync,
                "20 bytes skipped: a frame length that frames found inside it show bogus".into()
            )],
            "step {step}"
        );
    }
}

#[test]
fn a_profile_client_version_filters_mars_frames() {
    let (c2s, s2c, want) = conversation();
    let analyze = |profile: &str| {
        let mut opts = Options::default();
        opts.registry.apply_profile(profile).unwrap();
        let mut reader = Reader::from_read(
            Box::new(std::io::Cursor::new(crate::midstream::capture(
                &c2s, &s2c, 1000,
            ))),
            "mars",
        )
        .unwrap();
        crate::common::analyze_capture(&mut reader, &opts)
    };
    let (records, _) = analyze(&format!("[mars]\nclient_version = {VERSION:#x}\n"));
    assert_eq!(rows(&records), want);
    // Another client version: no Mars frame at all, not even detected.
    let (records, report) = analyze("[mars]\nclient_version = 0x1\n");
    assert_eq!(rows(&records), vec![]);
    assert_eq!(report.connections[0].kind.as_str(), "unknown");
}
