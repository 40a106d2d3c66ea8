//! Issue 12 and 13: the Mars noop echo pairs as a response, and the lists
//! that grow per event (anomalies, unanswered requests) keep the first N of
//! each kind and count them all.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use syncscope::analyze::{Analyzer, FrameRecord, Options, Report};
use syncscope::capture::writer::PcapWriter;
use syncscope::capture::{Linktype, Reader, Timestamp};
use syncscope::proto::commands::{response, NEWSYNC, NOOP, SEQ_HEARTBEAT};
use syncscope::synth::{later, longlink_frame, Conversation, Frame, Side};
use syncscope::{flow, pipeline};

fn syncscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_syncscope"))
        .args(args)
        .output()
        .expect("run syncscope")
}

fn json(o: &Output) -> Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Writes `frames` (with their times) as an Ethernet pcap.
fn write_pcap(path: &Path, frames: &[(Timestamp, Frame)]) {
    let mut w = PcapWriter::new(
        std::fs::File::create(path).unwrap(),
        Linktype::ETHERNET,
        false,
    )
    .unwrap();
    for (ts, f) in frames {
        w.write(*ts, f, None).unwrap();
    }
}

/// Frames of `conv` sent by `side` at `ts`.
fn at(out: &mut Vec<(Timestamp, Frame)>, ts: Timestamp, frames: Vec<Frame>) {
    out.extend(frames.into_iter().map(|f| (ts, f)));
}

/// The analyzer over a capture, with `max` examples per kind.
fn analyze(path: &Path, max: Option<usize>) -> (Vec<FrameRecord>, Report) {
    let opts = Options::default();
    let mut records = Vec::new();
    let mut an = Analyzer::new(&opts, |r: &FrameRecord| records.push(r.clone()));
    if let Some(n) = max {
        an = an.max_examples(n);
    }
    let mut reader = Reader::open(path).unwrap();
    pipeline::run(&mut reader, flow::Config::default(), &mut an, |_| {});
    let report = an.into_report();
    (records, report)
}

/// Two long links: on the first the server echoes each noop Mars style (cmd
/// 6, the noop's seq) 40 ms after it and answers a newsync the WeChat way
/// (10^9 + 121); on the second it answers noops with 1000000006.
fn echo_capture(path: &Path) {
    let t0 = Timestamp::new(1_700_000_000, 0, 6);
    let mut out = Vec::new();
    for (port, mars) in [(40000u16, true), (40001, false)] {
        let c = format!("10.0.0.1:{port}").parse().unwrap();
        let mut conv = Conversation::new(c, "10.0.0.2:8080".parse().unwrap(), 1000, 5000);
        let mut ts = t0;
        at(&mut out, ts, conv.handshake());
        let sync = longlink_frame(NEWSYNC, 1, b"");
        at(&mut out, ts, conv.send(Side::Client, &sync));
        for _ in 0..3 {
            ts = later(ts, 1_000_000);
            let noop = longlink_frame(NOOP, SEQ_HEARTBEAT, b"");
            at(&mut out, ts, conv.send(Side::Client, &noop));
            let answer = if mars { NOOP } else { response(NOOP) };
            let echo = longlink_frame(answer, SEQ_HEARTBEAT, b"");
            at(&mut out, later(ts, 40_000), conv.send(Side::Server, &echo));
        }
        let sync_resp = longlink_frame(response(NEWSYNC), 1, b"");
        at(
            &mut out,
            later(ts, 50_000),
            conv.send(Side::Server, &sync_resp),
        );
        at(&mut out, later(ts, 60_000), conv.close());
    }
    write_pcap(path, &out);
}

#[test]
fn mars_noop_echo_pairs_as_a_response() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("echo.pcap");
    echo_capture(&pcap);
    let (records, report) = analyze(&pcap, None);

    assert_eq!(report.anomalies.total(), 0, "{:?}", &report.anomalies[..]);
    assert_eq!(report.unanswered.total(), 0, "{:?}", &report.unanswered[..]);
    assert_eq!(report.pairing_by_conn.len(), 2);
    for (p, echoes) in report.pairing_by_conn.iter().zip([3, 0]) {
        let c = &p.counts;
        assert_eq!(
            (c.requests, c.responses, c.pairs, c.heartbeats, c.echoes),
            (4, 4, 4, 3, echoes),
            "conn {}",
            p.conn
        );
        assert_eq!(
            (
                c.duplicate_requests,
                c.unanswered_requests,
                c.responses_without_request
            ),
            (0, 0, 0)
        );
    }
    // Latency of the noop over both styles: six pairs of 40 ms.
    let noop = report.latency.iter().find(|l| l.cmd == NOOP).unwrap();
    assert_eq!(
        (noop.latency.count, noop.latency.p50_us, noop.latency.max_us),
        (6, 40_000, 40_000)
    );
    let sync = report.latency.iter().find(|l| l.cmd == NEWSYNC).unwrap();
    assert_eq!(sync.latency.count, 2);

    // Records: the echo is a response with its latency; the client's noop
    // and the 10^9 answer keep their heartbeat kind; the newsync answer is
    // a response either way.
    let kinds = |conn: u64| -> Vec<(u32, String, Option<u64>)> {
        records
            .iter()
            .filter(|r| r.conn == conn)
            .map(|r| (r.cmd.unwrap(), r.kind.to_string(), r.latency_us))
            .collect()
    };
    let mars = kinds(0);
    assert_eq!(mars.len(), 8);
    assert_eq!(mars[0], (NEWSYNC, "request".into(), None));
    for i in 0..3 {
        assert_eq!(mars[1 + 2 * i], (NOOP, "heartbeat".into(), None));
        assert_eq!(mars[2 + 2 * i], (NOOP, "response".into(), Some(40_000)));
    }
    assert_eq!(
        mars[7],
        (response(NEWSYNC), "response".into(), Some(3_050_000))
    );
    let wechat = kinds(1);
    assert_eq!(
        wechat[2],
        (response(NOOP), "heartbeat".into(), Some(40_000)),
        "10^9 answers are unchanged"
    );

    // The command table counts the echoes as responses of cmd 6.
    let cmd6 = report.commands.iter().find(|c| c.cmd == NOOP).unwrap();
    assert_eq!((cmd6.heartbeats, cmd6.responses), (6, 3));

    // JSON: `echoes` only where there were some; nothing omitted.
    let doc = json(&syncscope(&[
        "analyze",
        pcap.to_str().unwrap(),
        "--format",
        "json",
        "-q",
    ]));
    assert_eq!(doc["pairing_by_conn"][0]["echoes"], 3);
    assert!(doc["pairing_by_conn"][1].get("echoes").is_none());
    assert!(doc.get("anomalies_omitted").is_none());
    assert!(doc.get("unanswered_omitted").is_none());
    assert_eq!(doc["anomalies"], serde_json::json!([]));
}

/// One connection whose client sends `holes` one-byte segments with a
/// one-byte hole before each (unknown protocol: one gap anomaly per hole),
/// and one long link where the client sends `n` newsync and `n` newsendmsg
/// requests twice each (a duplicate_request each) and gets no answer.
fn flood_capture(path: &Path, holes: u32, n: u32) {
    let t0 = Timestamp::new(1_700_000_000, 0, 6);
    let mut out = Vec::new();
    let c = "10.0.0.1:40000".parse().unwrap();
    let mut conv = Conversation::new(c, "10.0.0.2:9000".parse().unwrap(), 1000, 5000);
    at(&mut out, t0, conv.handshake());
    for i in 0..holes {
        let seg = conv.segment(Side::Client, 1001 + 2 * i + 1, "PA", b"x");
        out.push((t0, seg));
    }
    conv.seq[0] = 1001 + 2 * holes;
    at(&mut out, later(t0, 1), conv.close());

    let c = "10.0.0.1:40001".parse().unwrap();
    let mut conv = Conversation::new(c, "10.0.0.2:8080".parse().unwrap(), 1000, 5000);
    at(&mut out, t0, conv.handshake());
    let mut bytes = Vec::new();
    for seq in 1..=n {
        for cmd in [NEWSYNC, syncscope::proto::commands::NEWSENDMSG] {
            bytes.extend(longlink_frame(cmd, seq, b""));
            bytes.extend(longlink_frame(cmd, seq, b""));
        }
    }
    at(&mut out, later(t0, 2), conv.send(Side::Client, &bytes));
    at(&mut out, later(t0, 3), conv.close());
    write_pcap(path, &out);
}

#[test]
fn anomalies_and_unanswered_requests_are_counted_with_n_examples_kept() {
    use syncscope::proto::commands::NEWSENDMSG;
    let (holes, n) = (300u32, 40u32);
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("flood.pcap");
    flood_capture(&pcap, holes, n);

    let (_, report) = analyze(&pcap, Some(7));
    let counts = report.anomalies.counts();
    assert_eq!(counts.get("gap"), Some(&(holes as u64)), "{counts:?}");
    assert_eq!(counts.get("duplicate_request"), Some(&(2 * n as u64)));
    assert_eq!(counts.len(), 2, "{counts:?}");
    assert_eq!(report.anomalies.len(), 14);
    assert_eq!(report.anomalies.total(), (holes + 2 * n) as u64);
    // The first of each kind are kept, sorted by connection and offset.
    let gaps: Vec<u64> = report
        .anomalies
        .iter()
        .filter(|a| a.kind == "gap")
        .map(|a| a.offset)
        .collect();
    assert_eq!(gaps, [0, 2, 4, 6, 8, 10, 12]);
    let o = report.anomalies_omitted.as_ref().unwrap();
    assert_eq!(
        (o.omitted, o.max_per_kind),
        ((holes + 2 * n - 14) as u64, 7)
    );

    let u = &report.unanswered;
    assert_eq!(u.total(), 2 * n as u64);
    assert_eq!(u.counts().get(&NEWSYNC), Some(&(n as u64)));
    assert_eq!(u.counts().get(&NEWSENDMSG), Some(&(n as u64)));
    assert_eq!(u.len(), 14);
    let seqs: Vec<u32> = u
        .iter()
        .filter(|r| r.cmd == NEWSYNC)
        .map(|r| r.seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(
        report.pairing_by_conn[0].counts.unanswered_requests,
        2 * n as u64
    );

    // The same through the CLI, as JSON.
    let path = pcap.to_str().unwrap();
    let doc = json(&syncscope(&[
        "analyze",
        path,
        "--format",
        "json",
        "-q",
        "--max-examples",
        "7",
    ]));
    assert_eq!(doc["anomalies"].as_array().unwrap().len(), 14);
    assert_eq!(
        doc["anomalies_omitted"],
        serde_json::json!({
            "omitted": holes + 2 * n - 14,
            "max_per_kind": 7,
            "counts": {"duplicate_request": 2 * n, "gap": holes}
        })
    );
    assert_eq!(doc["unanswered"].as_array().unwrap().len(), 14);
    assert_eq!(
        doc["unanswered_omitted"],
        serde_json::json!({
            "omitted": 2 * n - 14,
            "max_per_kind": 7,
            "counts": {NEWSYNC.to_string(): n, NEWSENDMSG.to_string(): n}
        })
    );
    // Under the default cap everything is listed, and nothing more is said.
    let doc = json(&syncscope(&["analyze", path, "--format", "json", "-q"]));
    assert_eq!(
        doc["anomalies"].as_array().unwrap().len(),
        (holes + 2 * n) as usize
    );
    assert_eq!(doc["unanswered"].as_array().unwrap().len(), 2 * n as usize);
    assert!(doc.get("anomalies_omitted").is_none());
    assert!(doc.get("unanswered_omitted").is_none());
    // The table gives the total and the counts per kind.
    let out = syncscope(&["analyze", path, "-q", "--max-examples", "7"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("Anomalies: {}", holes + 2 * n)),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "({} more; --format json lists the first 7 of each kind: duplicate_request {}, gap {holes})",
            holes + 2 * n - 14,
            2 * n
        )),
        "{text}"
    );
}

/// `flows -v` lists the first N reassembly anomalies of each kind and says
/// how many it left out.
#[test]
fn flows_lists_n_anomalies_of_each_kind() {
    let t0 = Timestamp::new(1_700_000_000, 0, 6);
    let c = "10.0.0.1:40000".parse().unwrap();
    let mut conv = Conversation::new(c, "10.0.0.2:9000".parse().unwrap(), 1000, 5000);
    let mut out = Vec::new();
    at(&mut out, t0, conv.handshake());
    at(&mut out, t0, conv.send(Side::Client, b"aaaa"));
    // The same four bytes again, different each time: an overlap mismatch each.
    for i in 0..10u8 {
        out.push((t0, conv.segment(Side::Client, 1001, "PA", &[b'b' + i; 4])));
    }
    at(&mut out, t0, conv.close());
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("overlaps.pcap");
    write_pcap(&pcap, &out);
    let o = syncscope(&["flows", pcap.to_str().unwrap(), "-v", "--max-examples", "3"]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    let listed = err.lines().filter(|l| l.starts_with("anomaly: ")).count();
    assert_eq!(listed, 3, "{err}");
    assert!(err.contains("overlap_mismatch 10"), "{err}");
    assert!(
        err.contains("anomalies not listed: 7 (the first 3 of each kind are; --max-examples N)"),
        "{err}"
    );
}
