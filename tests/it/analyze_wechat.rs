//! `analyze` / `frames` on the real WeChat capture with its key log,
//! checked against `../shared/corpus/wechat/expected.json`.

use serde_json::Value;

use syncscope::analyze::{FrameRecord, Layer, Options, Report};
use syncscope::capture::Reader;
use syncscope::proto::keylog::KeyLog;

use crate::common::{analyze_capture, shared};

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
    analyze_capture(&mut reader, &opts)
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

#[test]
fn connections_mmtls_short_links_business_packets_and_synckeys() {
    let exp = expected();
    let (records, report) = analyze();

    // Connection kinds by content (EXPECTED.md: http 2, mmtls_long 2, mmtls_short 25, no_payload 5).
    for c in exp["tcp_connections"].as_array().unwrap() {
        let id = c["id"].as_u64().unwrap();
        let row = report.connections.iter().find(|r| r.id == id).unwrap();
        assert_eq!(row.kind, c["protocol"].as_str().unwrap(), "conn {id}");
    }
    let by: Vec<(String, u64)> = report
        .by_protocol
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_eq!(
        by,
        [
            ("http".into(), 2),
            ("mmtls_long".into(), 2),
            ("mmtls_short".into(), 25),
            ("no_payload".into(), 5)
        ]
    );

    // MMTLS records: 204 (0x15 47, 0x16 61, 0x17 50, 0x19 46); 117 decrypt, 33 no key, 0 fail.
    let m = &report.mmtls;
    assert_eq!(
        (m.records, m.decrypted, m.no_key, m.failed, m.plaintext),
        (204, 117, 33, 0, 54)
    );
    let types: Vec<(&str, u64)> = m.by_type.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        types,
        [("0x15", 47), ("0x16", 61), ("0x17", 50), ("0x19", 46)]
    );
    // Every MMTLS record of expected.json, with its crypto status, by (conn, dir, index).
    let mut want_records = 0;
    for conn in exp["mmtls"].as_array().unwrap() {
        for dir in ["c2s", "s2c"] {
            for r in conn[dir].as_array().unwrap() {
                want_records += 1;
                let got = records
                    .iter()
                    .find(|g| {
                        g.layer == Layer::Mmtls
                            && g.conn == conn["conn"].as_u64().unwrap()
                            && g.dir.as_str() == dir
                            && g.mmtls_record == r["i"].as_u64()
                    })
                    .unwrap_or_else(|| panic!("record {r}"));
                assert_eq!(got.stream_offset, r["stream_off"].as_u64().unwrap(), "{r}");
                assert_eq!(got.len, r["len"].as_u64().unwrap() + 5, "{r}");
                let want_crypto = r["crypto"].as_str().unwrap();
                assert_eq!(
                    got.crypto,
                    Some(if want_crypto == "plaintext" {
                        "plaintext"
                    } else {
                        want_crypto
                    }),
                    "{r}"
                );
            }
        }
    }
    assert_eq!(want_records, 204);

    // Short links: 21 decrypted requests with their URIs, 15 decrypted responses.
    let short: Vec<&FrameRecord> = records
        .iter()
        .filter(|r| r.layer == Layer::Shortlink)
        .collect();
    let reqs: Vec<&&FrameRecord> = short.iter().filter(|r| r.kind == "request").collect();
    assert_eq!(reqs.len(), 21);
    assert_eq!(short.len() - reqs.len(), 15);
    let mut uris: Vec<&str> = reqs.iter().map(|r| r.uri.as_deref().unwrap()).collect();
    uris.sort();
    uris.dedup();
    assert_eq!(uris.len(), 10);
    for s in exp["shortlink"].as_array().unwrap() {
        if let Some(ed) = s.get("early_data").filter(|e| e["uri"].is_string()) {
            let conn = s["conn"].as_u64().unwrap();
            assert!(
                reqs.iter()
                    .any(|r| r.conn == conn && r.uri.as_deref() == ed["uri"].as_str()),
                "conn {conn} uri {}",
                ed["uri"]
            );
        }
    }

    // Business packets: all 38 visible ones decrypted to the same plaintext.
    let business: Vec<&FrameRecord> = records.iter().filter(|r| r.business.is_some()).collect();
    let want_bp = exp["business_packets"].as_array().unwrap();
    assert_eq!(business.len(), want_bp.len());
    assert_eq!(business.len(), 38);
    for w in want_bp {
        let conn = w["conn"].as_u64().unwrap();
        let sha = w["protobuf"]["sha256"].as_str().unwrap();
        let got = business
            .iter()
            .find(|r| {
                r.conn == conn
                    && r.dir.as_str() == w["dir"].as_str().unwrap()
                    && r.business.as_ref().unwrap()["plaintext_sha256"] == sha
            })
            .unwrap_or_else(|| {
                panic!(
                    "business packet {} (conn {conn}) not decrypted to {sha}",
                    w["id"]
                )
            });
        let b = got.business.as_ref().unwrap();
        assert_eq!(b["cgi"], w["header"]["cgi"]);
        assert_eq!(b["algo"], w["header"]["algo"]);
        assert_eq!(b["uin"], w["header"]["uin"]);
        assert_eq!(b["decrypted"], true);
        assert_eq!(b["plaintext_len"], w["protobuf"]["len"]);
    }

    // The 5 SyncKey observations, in order, compared as maps.
    let obs = exp["synckeys"]["observations"].as_array().unwrap();
    assert_eq!(report.synckeys.len(), obs.len());
    for (g, w) in report.synckeys.iter().zip(obs) {
        assert_eq!(g.conn, w["conn"].as_u64().unwrap());
        assert_eq!(g.dir.as_str(), w["dir"].as_str().unwrap());
        let source = w["source"].as_str().unwrap();
        assert!(
            source.starts_with(g.source.as_str()),
            "{} vs {source}",
            g.source
        );
        let want: std::collections::BTreeMap<u32, u64> = w["map"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.parse().unwrap(), v.as_u64().unwrap()))
            .collect();
        assert_eq!(g.keys, want);
    }
}

/// Issue 4's proof on the real capture: uin 1505495844's timeline holds the
/// 5 observations of EXPECTED.md and the one transition that changes keys
/// 2, 24, 25, 27 and 201, with their deltas.
#[test]
fn synckey_timeline_of_the_real_user() {
    let exp = expected();
    let (_, report) = analyze();
    assert_eq!(report.sessions.len(), 1);
    let s = &report.sessions[0];
    assert_eq!(s.uin, Some(1_505_495_844));
    let obs = exp["synckeys"]["observations"].as_array().unwrap();
    assert_eq!(s.observations.len(), obs.len());
    let messages: Vec<&str> = s.observations.iter().map(|o| o.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "newsync_request",
            "newsync_response",
            "identify",
            "newsync_request",
            "newsync_response"
        ]
    );
    assert_eq!(s.transitions.len(), 1);
    let want = exp["synckeys"]["diffs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["identical"] == false)
        .unwrap();
    let tr = &s.transitions[0];
    assert_eq!(
        (tr.from as u64, tr.to as u64),
        (want["from"].as_u64().unwrap(), want["to"].as_u64().unwrap())
    );
    let changed: Vec<u32> = tr.changed.keys().copied().collect();
    assert_eq!(changed, [2, 24, 25, 27, 201]);
    for (k, c) in &tr.changed {
        let w = &want["changed"][k.to_string()];
        assert_eq!(c.from, w["from"].as_u64(), "key {k}");
        assert_eq!(c.to, w["to"].as_u64(), "key {k}");
        assert_eq!(c.delta, w["delta"].as_i64(), "key {k}");
    }
    assert!(s.anomalies.is_empty(), "{:?}", s.anomalies);
}

/// The two plain HTTP `GET /cgi-bin/micromsg-bin/newgetdns` on port 8080
/// (conns 4 and 16) are listed as HTTP exchanges.
#[test]
fn plain_http_newgetdns_exchanges() {
    let exp = expected();
    let (records, _) = analyze();
    let http: Vec<&FrameRecord> = records.iter().filter(|r| r.layer == Layer::Http).collect();
    assert_eq!(http.len(), 2);
    let want: Vec<u64> = exp["tcp_connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["protocol"] == "http")
        .map(|c| c["id"].as_u64().unwrap())
        .collect();
    for (r, id) in http.iter().zip(want) {
        assert_eq!(r.conn, id);
        assert_eq!(r.method.as_deref(), Some("GET"));
        assert!(r
            .path
            .as_deref()
            .unwrap()
            .starts_with("/cgi-bin/micromsg-bin/newgetdns?"));
        assert_eq!(r.status, Some(200));
        assert_eq!(r.cmd_name.as_deref(), Some("newgetdns"));
        let conn = &exp["tcp_connections"][id as usize];
        assert!(
            conn["server"].as_str().unwrap().ends_with(":8080"),
            "{conn}"
        );
    }
}

/// `analyze` shows every layer it decoded: the short-link messages per cgi
/// (with the business packets decrypted) and the HTTP exchanges, as the
/// records of `frames` have them, in the report built without records
/// (the `analyze` command) as in the one built with them; every
/// connection counts its messages of every layer.
#[test]
fn the_report_shows_every_layer_it_decoded() {
    let (records, report) = analyze();
    let base = shared().join("corpus/wechat");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_syncscope"))
        .arg("analyze")
        .arg(base.join("capture-logged-in-all-keys.pcapng"))
        .arg("--keylog")
        .arg(base.join("frida-logged-in-all-keys.log"))
        .args(["--format", "json", "-q"])
        .output()
        .expect("run analyze");
    let cli: Value = serde_json::from_slice(&out.stdout).expect("analyze JSON");
    assert_eq!(
        cli["messages"],
        serde_json::to_value(&report.messages).unwrap(),
        "the analyze command and the library disagree"
    );

    // Short link: one row per cgi, counted as the records are.
    let short: Vec<&FrameRecord> = records
        .iter()
        .filter(|r| r.layer == Layer::Shortlink)
        .collect();
    assert_eq!(short.len(), 36);
    let rows: Vec<_> = report
        .messages
        .iter()
        .filter(|m| m.layer == Layer::Shortlink)
        .collect();
    assert_eq!(rows.len(), 10, "{rows:?}");
    for row in &rows {
        let of: Vec<&&FrameRecord> = short
            .iter()
            .filter(|r| r.cmd_name.as_deref() == Some(row.name.as_str()))
            .collect();
        let n = |k: &str| of.iter().filter(|r| r.kind == k).count() as u64;
        assert_eq!(
            (row.requests, row.responses),
            (n("request"), n("response")),
            "{row:?}"
        );
        let opened = of
            .iter()
            .filter(|r| r.business.as_ref().is_some_and(|b| b["decrypted"] == true))
            .count() as u64;
        assert_eq!(row.decrypted, opened, "{row:?}");
        assert!(
            row.uri
                .as_deref()
                .is_some_and(|u| u.starts_with("/cgi-bin/micromsg-bin/")),
            "{row:?}"
        );
        assert!(row.latency.count > 0, "{row:?}");
    }
    let http: Vec<_> = report
        .messages
        .iter()
        .filter(|m| m.layer == Layer::Http)
        .collect();
    assert_eq!(http.len(), 1);
    assert_eq!(
        (http[0].name.as_str(), http[0].requests, http[0].responses),
        ("newgetdns", 2, 2)
    );

    // Connections: the messages of every layer, summed as the records count them.
    for c in &report.connections {
        let of = |l: Layer| {
            records
                .iter()
                .filter(|r| r.conn == c.id && r.layer == l)
                .count() as u64
        };
        // Short-link messages are counted opened or not; the records are
        // the business packets that came out of them.
        assert!(
            c.layers.short_link_messages >= of(Layer::Shortlink),
            "conn {}",
            c.id
        );
        assert_eq!(
            c.layers.http_exchanges,
            of(Layer::Http) + of(Layer::Web),
            "conn {}",
            c.id
        );
        assert_eq!(c.layers.mmtls_records, of(Layer::Mmtls), "conn {}", c.id);
        assert_eq!(
            c.layers.frames,
            of(Layer::Longlink) + of(Layer::Mars),
            "conn {}",
            c.id
        );
        assert_eq!(c.messages, c.layers.messages());
        if c.kind == "mmtls_short" {
            assert!(c.messages > 0, "{c:?}");
        }
    }

    // The text report has the tables.
    let text = std::process::Command::new(env!("CARGO_BIN_EXE_syncscope"))
        .arg("analyze")
        .arg(base.join("capture-logged-in-all-keys.pcapng"))
        .arg("--keylog")
        .arg(base.join("frida-logged-in-all-keys.log"))
        .arg("-q")
        .output()
        .expect("run analyze");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("Short-link messages per cgi"), "{text}");
    assert!(text.contains("Other HTTP exchanges per path"), "{text}");
    for row in rows {
        assert!(text.contains(&row.name), "{} missing:\n{text}", row.name);
    }
}
