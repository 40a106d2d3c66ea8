//! `analyze` / `frames` on the real WeChat capture with its key log,
//! checked against `../shared/corpus/wechat/expected.json`.

use serde_json::Value;

use syncscope::analyze::{Analyzer, FrameRecord, Layer, Options, Report};
use syncscope::capture::Reader;
use syncscope::proto::keylog::KeyLog;
use syncscope::{flow, pipeline};

use crate::common::shared;

fn expected() -> Value {
    let p = shared().join("corpus/wechat/expected.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn analyze() -> (Vec<FrameRecord>, Report) {
    let base = shared().join("corpus/wechat");
    let opts = Options {
        keylog: Some(KeyLog::load(base.join("frida-logged-in-all-keys.log")).unwrap()),
        ..Options::default()
    };
    let mut reader = Reader::open(&base.join("capture-logged-in-all-keys.pcapng")).unwrap();
    let mut records = Vec::new();
    let mut an = Analyzer::new(&opts, |r: &FrameRecord| records.push(r.clone()));
    pipeline::run(&mut reader, flow::Config::default(), &mut an, |_| {});
    let report = an.into_report();
    (records, report)
}

#[test]
fn long_link_frames_pairing_and_identify_synckey() {
    let exp = expected();
    let (records, report) = analyze();
    let ll = exp["longlink"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["conn"] == 31)
        .unwrap();
    let want = ll["frames"].as_array().unwrap();
    let got: Vec<&FrameRecord> = records
        .iter()
        .filter(|r| r.layer == Layer::Longlink)
        .collect();
    assert_eq!(got.len(), want.len(), "long-link frames");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.conn, 31);
        assert_eq!(g.cmd, Some(w["cmd"].as_u64().unwrap() as u32));
        assert_eq!(g.seq, Some(w["seq"].as_u64().unwrap() as u32));
        assert_eq!(g.len, w["len"].as_u64().unwrap());
        assert_eq!(g.dir.as_str(), w["dir"].as_str().unwrap());
        assert_eq!(g.cmd_name.as_deref(), w["cmd_name"].as_str());
        assert_eq!(g.mmtls_record, Some(w["record_i"].as_u64().unwrap()));
        let kind = w["kind"].as_str().unwrap();
        // expected.json calls the identify pair "identify"; by cmd/seq they are a request and its response.
        let want_kind = match (kind, g.cmd.unwrap() >= 1_000_000_000) {
            ("identify", false) => "request",
            ("identify", true) => "response",
            (k, _) => k,
        };
        assert_eq!(g.kind, want_kind);
    }
    // Pairs and their round-trip times (expected rtt_s is rounded to the microsecond).
    for p in ll["pairs"].as_array().unwrap() {
        let resp = got[p["resp"].as_u64().unwrap() as usize];
        let want_us = (p["rtt_s"].as_f64().unwrap() * 1e6).round() as u64;
        assert_eq!(resp.latency_us, Some(want_us), "cmd {} latency", p["cmd"]);
    }
    // The identify SyncKey: all 48 keys and values.
    let ident = &want[0]["identify"];
    let pairs = ident["synckey"]["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 48);
    let seen = report
        .synckeys
        .iter()
        .find(|s| s.source == "longlink_identify")
        .expect("identify SyncKey");
    assert_eq!(seen.keys.len(), 48);
    for p in pairs {
        let (k, v) = (p[0].as_u64().unwrap() as u32, p[1].as_u64().unwrap());
        assert_eq!(seen.keys.get(&k), Some(&v), "key {k}");
    }
    let body = &got[0].body["identify"];
    assert_eq!(body["uin"], ident["decoded_uin"]);
    assert_eq!(body["client_version"], ident["client_version"]);
    assert_eq!(body["locale"], ident["locale"]);
    // Pairing counts of the connection.
    let pc = report
        .pairing_by_conn
        .iter()
        .find(|p| p.conn == 31)
        .unwrap();
    assert_eq!(pc.counts.pairs, ll["counts"]["pairs"].as_u64().unwrap());
    assert_eq!(pc.counts.pushes, 0);
    assert_eq!(pc.counts.heartbeats, 0);
    assert_eq!(pc.counts.unanswered_requests, 0);
}
