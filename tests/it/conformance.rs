//! Conformance with tshark's reassembly (`expected/*.json` of the real
//! corpus and of nDPI's test captures in `../shared/corpus`): per stream,
//! the client/server endpoints and each direction's byte count and sha256
//! must match, and no connection may be missing or extra. Where our bytes
//! differ on purpose, `tests/data/conformance-*justified.tsv` says how and
//! why, and the test checks exactly that:
//!
//! * `superset`: tshark loses data (behind a hole no ACK covers, ...):
//!   its bytes must be a prefix of ours;
//! * `split`: tshark gave one connection several stream indexes (`0+1`):
//!   ours is their bytes end to end, direction by direction;
//! * `drop DIR A-B[,C-D]`: tshark's bytes in `c2s` or `s2c` are ours with
//!   those byte ranges taken out.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::Path;

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

/// How our bytes differ from tshark's on a justified stream.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Superset,
    /// The tshark streams (the first is the entry's).
    Split(Vec<u64>),
    /// Direction (0 c2s, 1 s2c) and the ranges of ours tshark lacks.
    Drop(usize, Vec<Range<usize>>),
}

#[derive(Debug)]
struct Justified {
    kind: Kind,
    #[allow(dead_code)] // read by whoever reads the file
    reason: String,
}

/// `file<TAB>stream[+stream...]<TAB>kind<TAB>reason` lines.
fn justified(text: &str) -> BTreeMap<(String, u64), Justified> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.splitn(4, '\t').collect();
            assert_eq!(f.len(), 4, "file, stream, kind and reason: {l}");
            let streams: Vec<u64> = f[1].split('+').map(|s| s.parse().unwrap()).collect();
            let mut words = f[2].split(' ');
            let kind = match words.next().unwrap() {
                "superset" => Kind::Superset,
                "split" => {
                    assert!(streams.len() > 1, "split needs streams a+b: {l}");
                    Kind::Split(streams.clone())
                }
                "drop" => {
                    let dir = match words.next() {
                        Some("c2s") => 0,
                        Some("s2c") => 1,
                        _ => panic!("drop c2s|s2c RANGES: {l}"),
                    };
                    let ranges = words
                        .next()
                        .unwrap()
                        .split(',')
                        .map(|r| {
                            let (a, b) = r.split_once('-').unwrap();
                            a.parse().unwrap()..b.parse().unwrap()
                        })
                        .collect();
                    Kind::Drop(dir, ranges)
                }
                k => panic!("unknown kind {k}: {l}"),
            };
            let reason = f[3].to_owned();
            assert!(reason.len() > 30, "say why our bytes are right: {l}");
            ((f[0].to_owned(), streams[0]), Justified { kind, reason })
        })
        .collect()
}

/// What one corpus gave.
#[derive(Default)]
struct Outcome {
    total: usize,
    matched: usize,
    justified: usize,
    /// Streams tshark has and we have no connection for.
    missing: usize,
    failures: Vec<String>,
}

impl Outcome {
    fn figure(&self) -> String {
        format!(
            "{}/{} streams match, {} justified, {} missing",
            self.matched, self.total, self.justified, self.missing
        )
    }

    fn assert_clean(&self) {
        assert!(
            self.failures.is_empty(),
            "{}\n{} problems:\n{}",
            self.figure(),
            self.failures.len(),
            self.failures.join("\n")
        );
        assert_eq!(self.matched + self.justified, self.total);
        assert_eq!(self.missing, 0);
    }
}

/// A direction of a tshark stream: its length and sha256.
fn want(st: &Value, d: usize) -> (usize, &str) {
    let key = ["client_to_server", "server_to_client"][d];
    (
        st[key]["len"].as_u64().unwrap() as usize,
        st[key]["sha256"].as_str().unwrap(),
    )
}

/// Whether `ours` fits a justified difference of `kind` from tshark's
/// stream `st` (and, for a split, the streams after it in `all`).
fn fits(kind: &Kind, ours: &[Vec<u8>; 2], st: &Value, all: &BTreeMap<u64, &Value>) -> bool {
    (0..2).all(|d| {
        let (len, digest) = want(st, d);
        match kind {
            Kind::Superset => ours[d].len() >= len && sha(&ours[d][..len]) == digest,
            Kind::Split(ids) => {
                let mut at = 0;
                for id in ids {
                    let (len, digest) = want(all[id], d);
                    if at + len > ours[d].len() || sha(&ours[d][at..at + len]) != digest {
                        return false;
                    }
                    at += len;
                }
                at == ours[d].len()
            }
            Kind::Drop(dd, ranges) if *dd == d => {
                let mut kept = Vec::new();
                let mut at = 0;
                for r in ranges {
                    if r.start < at || r.end > ours[d].len() {
                        return false;
                    }
                    kept.extend_from_slice(&ours[d][at..r.start]);
                    at = r.end;
                }
                kept.extend_from_slice(&ours[d][at..]);
                kept.len() == len && sha(&kept) == digest
            }
            Kind::Drop(..) => ours[d].len() == len && sha(&ours[d]) == digest,
        }
    })
}

/// Every capture of `corpus` that has an `expected/NAME.json` against it:
/// per tshark stream, the first of our connections (in id order) on the same
/// 4-tuple, its roles, and each direction's bytes; then no connection
/// tshark does not see.
fn check_corpus(corpus: &Path, justified: &BTreeMap<(String, u64), Justified>) -> Outcome {
    let mut used_justified = HashSet::new();
    let dir = corpus.join("expected");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (is ../shared beside the checkout?)", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut out = Outcome::default();
    for exp_path in files {
        let exp: Value =
            serde_json::from_str(&std::fs::read_to_string(&exp_path).unwrap()).unwrap();
        let name = exp["file"].as_str().unwrap().to_owned();
        let path = corpus.join(&name);
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
        let streams: BTreeMap<u64, &Value> = exp["streams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|st| (st["stream"].as_u64().unwrap(), st))
            .collect();
        // Streams a split entry folds into the one before them.
        let folded: HashSet<u64> = justified
            .iter()
            .filter(|((f, _), _)| *f == name)
            .filter_map(|(_, j)| match &j.kind {
                Kind::Split(ids) => Some(ids[1..].to_vec()),
                _ => None,
            })
            .flatten()
            .collect();
        for (&sid, st) in &streams {
            out.total += 1;
            if folded.contains(&sid) {
                continue; // counted with the stream it was split from
            }
            let client = endpoint(&st["client"]);
            let server = endpoint(&st["server"]);
            // The first of our connections, in id order, on the same 4-tuple.
            let Some(i) = got.flows.iter().enumerate().position(|(i, (f, _))| {
                !taken[i]
                    && ((f.client == client && f.server == server)
                        || (f.client == server && f.server == client))
            }) else {
                out.missing += 1;
                out.failures.push(format!(
                    "{name} stream {sid}: no connection {client} <-> {server}"
                ));
                continue;
            };
            taken[i] = true;
            let (f, bytes) = &got.flows[i];
            // Ours by tshark's roles: [client to server, server to client].
            let ours = if f.client == client {
                [bytes[0].clone(), bytes[1].clone()]
            } else {
                [bytes[1].clone(), bytes[0].clone()]
            };
            let mut problems = Vec::new();
            if (f.client, f.server) != (client, server) {
                problems.push(format!(
                    "roles: ours {} -> {}, tshark {client} -> {server}",
                    f.client, f.server
                ));
            }
            for (d, key) in [(0, "c2s"), (1, "s2c")] {
                let (len, digest) = want(st, d);
                if ours[d].len() != len || sha(&ours[d]) != digest {
                    problems.push(format!("{key}: ours {} bytes, tshark {len}", ours[d].len()));
                }
            }
            let k = (name.clone(), sid);
            match (problems.is_empty(), justified.get(&k)) {
                (true, None) => out.matched += 1,
                (true, Some(_)) => out.failures.push(format!(
                    "{name} stream {sid}: listed as a justified difference but now matches tshark; remove it"
                )),
                (false, Some(j))
                    if problems.iter().all(|p| !p.starts_with("roles"))
                        && fits(&j.kind, &ours, st, &streams) =>
                {
                    used_justified.insert(k);
                    out.justified += match &j.kind {
                        Kind::Split(ids) => ids.len(),
                        _ => 1,
                    };
                }
                (false, j) => out.failures.push(format!(
                    "{name} stream {sid}: {}{}",
                    problems.join("; "),
                    if j.is_some() { " (not as justified)" } else { "" }
                )),
            }
        }
        // And no connection that tshark does not see.
        for (i, (f, _)) in got.flows.iter().enumerate() {
            if !taken[i] {
                out.failures.push(format!(
                    "{name}: extra connection {} {} -> {}",
                    f.id, f.client, f.server
                ));
            }
        }
    }
    for k in justified.keys() {
        if !used_justified.contains(k)
            && !out
                .failures
                .iter()
                .any(|f| f.starts_with(&format!("{} stream {}", k.0, k.1)))
        {
            out.failures
                .push(format!("{} stream {}: justified entry not used", k.0, k.1));
        }
    }
    out
}

#[test]
fn reassembly_matches_tshark_on_the_real_corpus() {
    let justified = justified(include_str!("../data/conformance-justified.tsv"));
    let out = check_corpus(&corpus_real(), &justified);
    assert!(
        out.total >= 80,
        "expected the whole corpus, found {}",
        out.total
    );
    println!("real corpus: {}", out.figure());
    out.assert_clean();
}

/// nDPI's public test captures (`../shared/corpus/ndpi`): tunnels (GTP-U,
/// VXLAN, CAPWAP, IP in IP), MPLS, Cisco HDLC and PPP, fuzzed files.
#[test]
fn reassembly_matches_tshark_on_the_ndpi_corpus() {
    let justified = justified(include_str!("../data/conformance-ndpi-justified.tsv"));
    let out = check_corpus(&crate::common::shared().join("corpus/ndpi"), &justified);
    assert!(
        out.total >= 4900,
        "expected the whole corpus, found {}",
        out.total
    );
    println!("ndpi corpus: {}", out.figure());
    out.assert_clean();
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
