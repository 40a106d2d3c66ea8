//! Conformance with tshark's reassembly (`../shared/corpus/real/expected`):
//! per stream, the client/server endpoints and each direction's byte count
//! and sha256 must match. Streams where tshark loses data by design are
//! listed in `tests/data/conformance-justified.tsv`; for those, tshark's
//! bytes must be a prefix of ours (we deliver the data it drops).

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::common::{corpus_real, run_file};

fn endpoint(v: &Value) -> SocketAddr {
    let ip: IpAddr = v["addr"].as_str().unwrap().parse().unwrap();
    SocketAddr::new(ip, v["port"].as_u64().unwrap() as u16)
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn justified() -> BTreeMap<(String, u64), String> {
    let text = include_str!("../data/conformance-justified.tsv");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut f = l.splitn(3, '\t');
            let file = f.next().unwrap().to_owned();
            let stream = f.next().unwrap().parse().unwrap();
            let reason = f
                .next()
                .expect("a reason for every justified stream")
                .to_owned();
            assert!(reason.len() > 10, "reason too short: {l}");
            ((file, stream), reason)
        })
        .collect()
}

#[test]
fn reassembly_matches_tshark_on_the_real_corpus() {
    let justified = justified();
    let mut used_justified = HashSet::new();
    let dir = corpus_real().join("expected");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (is ../shared beside the checkout?)", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 40,
        "expected the whole corpus, found {}",
        files.len()
    );
    let (mut total, mut matched, mut just) = (0, 0, 0);
    let mut failures = Vec::new();
    for exp_path in files {
        let exp: Value =
            serde_json::from_str(&std::fs::read_to_string(&exp_path).unwrap()).unwrap();
        let name = exp["file"].as_str().unwrap().to_owned();
        let path = corpus_real().join(&name);
        if let Err(e) = syncscope::capture::Reader::open(&path) {
            // Refused when opened (its start is damaged): so is it by tshark.
            assert!(
                exp["frames"] == 0 && exp["error"].is_string(),
                "{name}: refused ({e}) but tshark reads it"
            );
            continue;
        }
        let (got, _summary) = run_file(&path);
        let mut taken = vec![false; got.flows.len()];
        for st in exp["streams"].as_array().unwrap() {
            total += 1;
            let sid = st["stream"].as_u64().unwrap();
            let client = endpoint(&st["client"]);
            let server = endpoint(&st["server"]);
            // The first of our connections, in id order, on the same 4-tuple.
            let Some(i) = got.flows.iter().enumerate().position(|(i, (f, _))| {
                !taken[i]
                    && ((f.client == client && f.server == server)
                        || (f.client == server && f.server == client))
            }) else {
                failures.push(format!(
                    "{name} stream {sid}: no connection {client} <-> {server}"
                ));
                continue;
            };
            taken[i] = true;
            let (f, bytes) = &got.flows[i];
            let mut problems = Vec::new();
            if (f.client, f.server) != (client, server) {
                problems.push(format!(
                    "roles: ours {} -> {}, tshark {client} -> {server}",
                    f.client, f.server
                ));
            }
            let mut prefix_ok = true;
            for (d, key) in [(0, "client_to_server"), (1, "server_to_client")] {
                let want_len = st[key]["len"].as_u64().unwrap() as usize;
                let want_sha = st[key]["sha256"].as_str().unwrap();
                let ours = if f.client == client {
                    &bytes[d]
                } else {
                    &bytes[1 - d]
                };
                if ours.len() != want_len || sha(ours) != want_sha {
                    problems.push(format!(
                        "{key}: ours {} bytes, tshark {want_len}",
                        ours.len()
                    ));
                    if ours.len() < want_len || sha(&ours[..want_len]) != want_sha {
                        prefix_ok = false;
                    }
                }
            }
            let k = (name.clone(), sid);
            match (problems.is_empty(), justified.get(&k)) {
                (true, None) => matched += 1,
                (true, Some(_)) => failures.push(format!(
                    "{name} stream {sid}: listed as a justified difference but now matches tshark; remove it"
                )),
                (false, Some(_)) if prefix_ok && problems.iter().all(|p| !p.starts_with("roles")) => {
                    used_justified.insert(k);
                    just += 1;
                }
                (false, _) => failures.push(format!("{name} stream {sid}: {}", problems.join("; "))),
            }
        }
        // And no connection that tshark does not see.
        for (i, (f, _)) in got.flows.iter().enumerate() {
            if !taken[i] {
                failures.push(format!(
                    "{name}: extra connection {} {} -> {}",
                    f.id, f.client, f.server
                ));
            }
        }
    }
    for k in justified.keys() {
        if !used_justified.contains(k)
            && !failures
                .iter()
                .any(|f| f.starts_with(&format!("{} stream {}", k.0, k.1)))
        {
            failures.push(format!("{} stream {}: justified entry not used", k.0, k.1));
        }
    }
    println!("{matched}/{total} streams match, {just} justified differences");
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(matched + just, total);
}

/// The real WeChat capture: every connection's id, roles, start time and
/// per-direction payload (count and sha256) as `../shared/corpus/wechat/expected.json` lists them.
#[test]
fn wechat_capture_connections_match_expected() {
    let base = crate::common::shared().join("corpus/wechat");
    let exp: Value =
        serde_json::from_str(&std::fs::read_to_string(base.join("expected.json")).unwrap())
            .unwrap();
    let (got, summary) = run_file(&base.join("capture-logged-in-all-keys.pcapng"));
    let conns = exp["tcp_connections"].as_array().unwrap();
    assert_eq!(got.flows.len(), conns.len(), "connection count");
    assert_eq!(summary.packets, 489);
    for c in conns {
        let id = c["id"].as_u64().unwrap();
        let (f, bytes) = &got.flows[id as usize];
        assert_eq!(f.id, id);
        assert_eq!(
            f.client.to_string(),
            c["client"].as_str().unwrap(),
            "conn {id} client"
        );
        assert_eq!(
            f.server.to_string(),
            c["server"].as_str().unwrap(),
            "conn {id} server"
        );
        assert_eq!(
            f.first_ts.to_rfc3339(),
            c["start"].as_str().unwrap(),
            "conn {id} start"
        );
        for (d, k) in [(0, "c2s"), (1, "s2c")] {
            assert_eq!(
                bytes[d].len() as u64,
                c["payload_bytes"][k].as_u64().unwrap(),
                "conn {id} {k} bytes"
            );
            assert_eq!(
                sha(&bytes[d]),
                c["payload_sha256"][k].as_str().unwrap(),
                "conn {id} {k} sha256"
            );
        }
        let state = c["close"]["state"].as_str().unwrap();
        let want = if state.starts_with("fin") || state.starts_with("half_closed") {
            "fin"
        } else if state.starts_with("aborted") || state.starts_with("reset") {
            "rst"
        } else {
            "open"
        };
        assert_eq!(f.end.as_str(), want, "conn {id} close state {state}");
    }
}
