//! Message lifecycles (`sync` and `analyze`) on
//! `samples/serve-client-receipts.pcapng` (bench/make-samples.sh receipts):
//! every figure is checked against what the recording's own clients printed
//! (samples/serve-client-receipts/*.ndjson): the MsgIds and ClientMsgIds
//! `send` got, the messages each of bob's devices showed, the receipts
//! alice's phone received (device, kind, server time); and the per-step
//! percentiles against the messages' own latencies.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn lines(name: &str) -> Vec<Value> {
    let p = root().join("samples/serve-client-receipts").join(name);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("an NDJSON line"))
        .collect()
}

fn json_of(cmd: &str, capture: &Path) -> Value {
    crate::common::syncscope_json([
        cmd.as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
        capture.as_os_str(),
    ])
}

fn secs(step: &Value) -> i64 {
    let ts = step["ts"].as_str().expect("ts");
    // 2026-12-03T11:32:53.407823103Z: the seconds since the epoch.
    let (date, time) = ts.split_once('T').expect("rfc3339");
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let t: Vec<i64> = time[..8].split(':').map(|x| x.parse().unwrap()).collect();
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2]
}

/// The server's clock (whole seconds) and the capture's agree within a second.
fn close(step: &Value, unix: u64, what: &str) {
    let d = secs(step) - unix as i64;
    assert!((-1..=1).contains(&d), "{what}: capture {step} vs {unix}");
}

/// Nearest-rank percentile of `v` in ms, rounded to the microsecond as the report does.
fn pct(v: &mut [f64], p: usize) -> f64 {
    let mut us: Vec<u64> = v.iter().map(|m| (m * 1000.0).round() as u64).collect();
    us.sort_unstable();
    let rank = (p * us.len()).div_ceil(100).max(1);
    us[rank - 1] as f64 / 1000.0
}

#[test]
fn lifecycles_match_what_the_clients_saw() {
    let capture = root().join("samples/serve-client-receipts.pcapng");
    let sync = json_of("sync", &capture);
    let life = &sync["lifecycle"];
    let messages = life["messages"].as_array().expect("messages");

    // Sent and acknowledged: what `send` printed, in order.
    let sends = lines("sends.ndjson");
    let got: Vec<(String, String)> = messages
        .iter()
        .map(|m| {
            (
                m["msg_id"].as_str().unwrap_or("-").to_owned(),
                m["client_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = sends
        .iter()
        .map(|s| {
            (
                s["msg_id"].as_u64().unwrap().to_string(),
                s["client_msg_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(got, want);
    for (m, s) in messages.iter().zip(&sends) {
        close(&m["sent"], s["create_time"].as_u64().unwrap(), "sent");
        assert!(m["acknowledged"]["ts"].as_str() >= m["sent"]["ts"].as_str());
        assert_eq!(m["sender"], "alice/phone");
    }

    // Delivered: to the devices whose listen showed the message.
    let mut shown: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, device) in [
        ("bob-phone.ndjson", "bob/phone"),
        ("bob-pad.ndjson", "bob/pad"),
    ] {
        for m in lines(file) {
            shown
                .entry(m["msg_id"].as_u64().unwrap().to_string())
                .or_default()
                .insert(device.to_owned());
        }
    }
    // Receipts alice's phone got: (msg_id, kind) -> (user/device, time).
    let mut receipts: BTreeMap<(String, String), BTreeMap<String, u64>> = BTreeMap::new();
    for r in lines("alice-receipts.ndjson") {
        let r = &r["receipt"];
        receipts
            .entry((
                r["msg_id"].as_u64().unwrap().to_string(),
                r["kind"].as_str().unwrap().to_owned(),
            ))
            .or_default()
            .insert(
                format!(
                    "{}/{}",
                    r["user"].as_str().unwrap(),
                    r["device"].as_str().unwrap()
                ),
                r["time"].as_u64().unwrap(),
            );
    }
    let mut never_delivered = 0;
    let mut deliveries = Vec::new();
    let mut reads = Vec::new();
    for m in messages {
        let id = m["msg_id"].as_str().unwrap().to_owned();
        let delivered: BTreeMap<String, &Value> = m["delivered"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["device"].as_str().unwrap().to_owned(), d))
            .collect();
        let want = shown.get(&id).cloned().unwrap_or_default();
        assert_eq!(
            delivered.keys().cloned().collect::<BTreeSet<_>>(),
            want,
            "{id}"
        );
        let receipted = receipts
            .get(&(id.clone(), "delivered".into()))
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            receipted.keys().cloned().collect::<BTreeSet<_>>(),
            want,
            "{id}"
        );
        for (dev, d) in &delivered {
            close(d, receipted[dev], "delivered");
            deliveries.push(d["after_ms"].as_f64().unwrap());
        }
        match receipts.get(&(id.clone(), "read".into())) {
            Some(read) => {
                let (dev, time) = read.iter().next().unwrap();
                assert_eq!(m["read"]["device"].as_str(), Some(dev.as_str()), "{id}");
                close(&m["read"], *time, "read");
                assert_eq!(m["reached"], "read");
                reads.push(m["read"]["after_ms"].as_f64().unwrap());
            }
            None => assert!(m["read"].is_null(), "{id}"),
        }
        if want.is_empty() {
            // Never delivered, listed as such (carol never came).
            assert_eq!(m["reached"], "acknowledged", "{id}");
            never_delivered += 1;
        }
    }
    assert!(
        never_delivered > 0,
        "the recording has a message never delivered"
    );
    assert!(!reads.is_empty(), "the recording has read messages");
    assert!(
        shown.values().any(|d| d.contains("bob/pad")),
        "the offline device's backlog"
    );
    assert_eq!(life["reach"]["never_delivered"], never_delivered);
    assert_eq!(life["reach"]["read"], reads.len());
    assert_eq!(life["reach"]["messages"], sends.len());

    // Per-step figures: counts and percentiles of the messages' own latencies.
    let step = |name: &str| {
        life["latency"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == name)
            .unwrap_or_else(|| panic!("step {name}"))
            .clone()
    };
    let mut acks: Vec<f64> = messages
        .iter()
        .map(|m| m["ack_ms"].as_f64().unwrap())
        .collect();
    for (name, v) in [
        ("sent->acknowledged", &mut acks),
        ("acknowledged->delivered", &mut deliveries),
        ("delivered->read", &mut reads),
    ] {
        let s = step(name);
        assert_eq!(s["count"], v.len(), "{name}");
        assert_eq!(s["p50_ms"].as_f64(), Some(pct(v, 50)), "{name}");
        assert_eq!(s["p99_ms"].as_f64(), Some(pct(v, 99)), "{name}");
    }

    // analyze reports the same lifecycles.
    let analyze = json_of("analyze", &capture);
    assert_eq!(analyze["lifecycle"], *life);
}

#[test]
fn lifecycle_table_names_what_never_happened() {
    let out = Command::new(env!("CARGO_BIN_EXE_syncscope"))
        .arg("sync")
        .arg(root().join("samples/serve-client-receipts.pcapng"))
        .output()
        .expect("run syncscope");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("Message lifecycles:"))
        .expect("the lifecycle section");
    assert!(
        line.contains("1 acknowledged and never delivered"),
        "{line}"
    );
    assert!(text.contains("sent->acknowledged"), "{text}");
    let carol = text
        .lines()
        .find(|l| l.contains(" carol "))
        .expect("carol's message");
    assert!(carol.contains("never"), "{carol}");
}
