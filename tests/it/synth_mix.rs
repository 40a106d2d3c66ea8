//! The realistic capture generator (`synth::mix`, `gencap --mix real`): the
//! same seed gives the same bytes, and `syncscope flows` reassembles every
//! connection it wrote, byte for byte, without gaps (it inserts none), so the
//! generator cannot silently break the throughput bench's second capture.

use std::collections::BTreeMap;

use serde_json::Value;
use syncscope::synth::mix::{self, Params, Totals};

fn small(seed: u64) -> Params {
    Params {
        bytes: 3 << 20,
        conns: 6,
        seed,
        scan_syns: 40,
        http_conns: 2,
        sync_max: 256 << 10,
        ..Params::default()
    }
}

fn capture(p: &Params) -> (Vec<u8>, Totals) {
    let mut out = Vec::new();
    let t = mix::generate(&mut out, p).expect("generate");
    (out, t)
}

#[test]
fn same_seed_same_bytes() {
    let (a, ta) = capture(&small(7));
    let (b, tb) = capture(&small(7));
    assert!(a == b, "two runs with seed 7 differ");
    assert_eq!(ta, tb);
    assert_eq!(ta.pcap_bytes, a.len() as u64);
    let (c, _) = capture(&small(8));
    assert!(a != c, "seeds 7 and 8 give the same capture");
}

#[test]
fn flows_reassembles_every_connection_without_gaps() {
    let p = small(1);
    let (bytes, t) = capture(&p);
    // Close to the size asked for (the last newsync may pass it).
    assert!(t.pcap_bytes >= p.bytes * 9 / 10, "{} bytes", t.pcap_bytes);
    assert!(
        t.pcap_bytes <= p.bytes + p.sync_max as u64 * 2,
        "{} bytes",
        t.pcap_bytes
    );
    // Everything the mix promises is in this small one too.
    assert_eq!(t.conns.len(), p.conns + p.http_conns);
    assert_eq!(t.scan_syns, p.scan_syns as u64);
    assert!(
        t.noops > 0 && t.noop_echoes > 0 && t.noop_echoes < t.noops,
        "{t:?}"
    );
    assert!(t.pushes > 0 && t.sends > 0, "{t:?}");
    assert!(t.retransmits > 0 && t.reordered > 0, "{t:?}");

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("mix.pcap");
    std::fs::write(&file, &bytes).expect("write capture");
    let flows: Vec<Value> = serde_json::from_value(crate::common::syncscope_json([
        "flows",
        file.to_str().unwrap(),
        "--format",
        "json",
        "-q",
    ]))
    .expect("a JSON array");
    let mut by_client: BTreeMap<String, &Value> = BTreeMap::new();
    for f in &flows {
        for dir in ["c2s", "s2c"] {
            assert_eq!(f[dir]["gaps"], 0, "gap in {f}");
            assert_eq!(f[dir]["gap_bytes"], 0, "gap in {f}");
        }
        by_client.insert(f["client"].as_str().unwrap().to_string(), f);
    }
    for c in &t.conns {
        let f = by_client
            .get(&c.client.to_string())
            .unwrap_or_else(|| panic!("no flow for {}", c.client));
        assert_eq!(f["server"], c.server.to_string().as_str());
        assert_eq!(f["c2s"]["bytes"], c.payload[0], "{f}");
        assert_eq!(f["s2c"]["bytes"], c.payload[1], "{f}");
        assert_eq!(f["end"], "fin", "{f}");
    }
    // Data connections, plus one SYN-only connection per scanned port.
    assert_eq!(
        flows.len(),
        t.conns.len() + p.scan_syns,
        "{} flows",
        flows.len()
    );
}
