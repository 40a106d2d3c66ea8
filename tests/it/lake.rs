//! Several inputs and the Parquet dataset: rotated captures read as one, and
//! the proof that DuckDB and Spark (local mode) find in the Parquet what
//! `analyze --format json` reports (tests/lake/queries.py holds the queries).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};
use syncscope::capture::writer::PcapWriter;
use syncscope::capture::Reader;

fn syncscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_syncscope"))
        .args(args)
        .output()
        .expect("run syncscope")
}

fn ok_stdout(args: &[&str]) -> String {
    let out = syncscope(args);
    assert!(
        out.status.success(),
        "syncscope {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tmp(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Cuts `capture` into pieces of `per` packets, as `tcpdump -C` rotates,
/// named so that name order is NOT time order (the merge must sort by time).
fn rotate(capture: &Path, per: usize, dir: &Path) -> usize {
    let mut r = Reader::open(capture).unwrap();
    let mut pieces = 0;
    let mut w: Option<PcapWriter<std::fs::File>> = None;
    let mut n = 0;
    while let Some(p) = r.next_packet().unwrap() {
        if n % per == 0 {
            let f = std::fs::File::create(dir.join(format!("piece-{}.pcap", 9 - pieces))).unwrap();
            w = Some(PcapWriter::new(f, p.linktype, true).unwrap());
            pieces += 1;
        }
        w.as_mut()
            .unwrap()
            .write(p.ts, p.data, Some(p.orig_len))
            .unwrap();
        n += 1;
    }
    pieces
}

#[test]
fn rotated_pieces_read_as_one_capture() {
    let cap = manifest().join("samples/serve-client-longlink.pcapng");
    let dir = tmp("rotated");
    assert!(rotate(&cap, 25, &dir) > 3);
    let whole: Value = serde_json::from_str(&ok_stdout(&[
        "analyze",
        "--format",
        "json",
        "-q",
        cap.to_str().unwrap(),
    ]))
    .unwrap();
    let pieces: Value = serde_json::from_str(&ok_stdout(&[
        "analyze",
        "--format",
        "json",
        "-q",
        dir.to_str().unwrap(),
    ]))
    .unwrap();
    // Connections cut by the rotation are joined: the same report.
    assert_eq!(whole, pieces);
    // Records name the file of the packet that completed them, in time order.
    let frames = ok_stdout(&["frames", "--format", "ndjson", "-q", dir.to_str().unwrap()]);
    let files: Vec<String> = frames
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["file"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        files.first().unwrap(),
        &dir.join("piece-9.pcap").display().to_string()
    );
    assert!(
        files.iter().any(|f| f.ends_with("piece-6.pcap")),
        "{files:?}"
    );
    let flows = ok_stdout(&["flows", "--format", "ndjson", "-q", dir.to_str().unwrap()]);
    assert!(flows.lines().all(|l| l.contains("\"file\":")), "{flows}");
    // One file: no file field, as before.
    let one = ok_stdout(&["frames", "--format", "ndjson", "-q", cap.to_str().unwrap()]);
    assert!(!one.contains("\"file\""));
}

/// Copies `capture` with every time moved to start at `start` (seconds).
fn shifted(capture: &Path, start: i64, out: &Path) {
    let mut r = Reader::open(capture).unwrap();
    let mut w: Option<PcapWriter<std::fs::File>> = None;
    let mut delta = None;
    while let Some(p) = r.next_packet().unwrap() {
        let d = *delta.get_or_insert(start - p.ts.secs);
        let w = w.get_or_insert_with(|| {
            PcapWriter::new(std::fs::File::create(out).unwrap(), p.linktype, true).unwrap()
        });
        let mut ts = p.ts;
        ts.secs += d;
        w.write(ts, p.data, Some(p.orig_len)).unwrap();
    }
}

#[test]
fn captures_that_overlap_in_time_are_interleaved() {
    // Two vantage points recording at once: packets are merged by time
    // (as mergecap does), every connection of both is found whole.
    let dir = tmp("overlap");
    let a = manifest().join("samples/serve-client-longlink.pcapng");
    let b = manifest().join("samples/longlink-8080.pcap");
    shifted(&a, 1_000_000, &dir.join("a.pcap"));
    // b (under a millisecond long) falls inside a (1.6 s).
    shifted(&b, 1_000_001, &dir.join("b.pcap"));
    let report = |args: &[&str]| -> Value {
        let mut all = vec!["analyze", "--format", "json", "-q"];
        all.extend(args);
        serde_json::from_str(&ok_stdout(&all)).unwrap()
    };
    let (ra, rb) = (
        report(&[a.to_str().unwrap()]),
        report(&[b.to_str().unwrap()]),
    );
    let both = report(&[dir.to_str().unwrap()]);
    let conns = |r: &Value| r["connections"].as_array().unwrap().len();
    assert_eq!(conns(&both), conns(&ra) + conns(&rb));
    let frames = |r: &Value| -> u64 {
        r["commands"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["count"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(frames(&both), frames(&ra) + frames(&rb));
    assert_eq!(both["anomalies"], json!([]));
    // Interleaved: the records of the two files alternate, not one file then the other.
    let out = ok_stdout(&["frames", "--format", "ndjson", "-q", dir.to_str().unwrap()]);
    let files: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["file"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let switches = files.windows(2).filter(|w| w[0] != w[1]).count();
    assert_eq!(switches, 2, "{files:?}");
    assert!(files.first().unwrap().ends_with("a.pcap"), "{files:?}");
    assert!(files.last().unwrap().ends_with("a.pcap"), "{files:?}");
}

#[test]
fn a_directory_without_captures_is_a_clear_error() {
    let dir = tmp("no-captures");
    std::fs::write(dir.join("notes.txt"), "not a capture").unwrap();
    let out = syncscope(&["analyze", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no capture file among the inputs"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Python with duckdb and pyspark, in a venv under the target dir (made
/// once; needs python3 with venv and PyPI, as CI has).
fn lake_python() -> PathBuf {
    crate::common::python_venv("lake-venv", &["duckdb", "pyspark"], "the Parquet proof")
}

fn queries(engine: &str, dir: &Path) -> Value {
    let out = Command::new(lake_python())
        .arg(manifest().join("tests/lake/queries.py"))
        .arg(engine)
        .arg(dir)
        .output()
        .expect("run queries.py");
    assert!(
        out.status.success(),
        "queries.py {engine}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("queries.py prints JSON")
}

/// Equal, file by file and figure by figure (a readable failure).
fn assert_same(got: &Value, want: &Value) {
    for (file, w) in want.as_object().unwrap() {
        for (fig, v) in w.as_object().unwrap() {
            assert_eq!(&got[file][fig], v, "{fig} of {file}");
        }
    }
    assert_eq!(got, want);
}

/// The same figures from `analyze --format json`.
fn expected(report: &Value) -> Value {
    let mut frames = serde_json::Map::new();
    for c in report["commands"].as_array().unwrap() {
        frames.insert(c["cmd"].to_string(), c["count"].clone());
    }
    let mut p99 = serde_json::Map::new();
    for l in report["latency"].as_array().unwrap() {
        p99.insert(l["cmd"].to_string(), json!([l["count"], l["p99_us"]]));
    }
    let mut keys = serde_json::Map::new();
    for s in report["sessions"].as_array().unwrap() {
        let mut parts = Vec::new();
        for f in ["uin", "sid", "user", "device"] {
            match &s[f] {
                Value::Null => {}
                Value::String(v) => parts.push(format!("{f}={v}")),
                v => parts.push(format!("{f}={v}")),
            }
        }
        // A session without observations has no row to count.
        let n = s["observations"].as_array().unwrap().len();
        if n > 0 {
            keys.insert(parts.join(","), json!(n));
        }
    }
    json!({"frames": frames, "p99": p99, "synckeys": keys})
}

/// Each capture (with its extra arguments) analysed into one dataset and as JSON.
fn dataset(name: &str, captures: &[(PathBuf, Vec<String>)]) -> (PathBuf, Value) {
    let dir = tmp(name);
    let mut want = serde_json::Map::new();
    for (cap, extra) in captures {
        let c = cap.to_str().unwrap();
        let mut args = vec!["analyze", "-q", c];
        args.extend(extra.iter().map(String::as_str));
        let mut json_args = args.clone();
        json_args.extend(["--format", "json"]);
        let report: Value = serde_json::from_str(&ok_stdout(&json_args)).unwrap();
        let mut pq = args.clone();
        pq.extend(["--format", "parquet", "--output", dir.to_str().unwrap()]);
        ok_stdout(&pq);
        let e = expected(&report);
        // An engine lists no file without rows: nor does the expectation.
        let empty = e
            .as_object()
            .unwrap()
            .values()
            .all(|v| v.as_object().unwrap().is_empty());
        if !empty {
            want.insert(c.to_owned(), e);
        }
    }
    (dir, Value::Object(want))
}

fn captures() -> Vec<(PathBuf, Vec<String>)> {
    let wechat = manifest().join("../shared/corpus/wechat");
    vec![
        (manifest().join("samples/longlink-8080.pcap"), vec![]),
        (
            manifest().join("samples/serve-client-longlink.pcapng"),
            vec![],
        ),
        (
            manifest().join("samples/serve-client-shortlink.pcapng"),
            vec![],
        ),
        (
            wechat.join("capture-logged-in-all-keys.pcapng"),
            vec![
                "--keylog".into(),
                wechat
                    .join("frida-logged-in-all-keys.log")
                    .display()
                    .to_string(),
            ],
        ),
    ]
}

#[test]
fn duckdb_finds_in_the_parquet_what_analyze_reports() {
    let (dir, want) = dataset("lake-duckdb", &captures());
    assert!(want.as_object().unwrap().len() >= 3, "{want}");
    let got = queries("duckdb", &dir);
    assert_same(&got, &want);
    // Running a capture again replaces its own part: no duplicate rows.
    let (cap, _) = &captures()[0];
    ok_stdout(&[
        "analyze",
        "-q",
        "--format",
        "parquet",
        "--output",
        dir.to_str().unwrap(),
        cap.to_str().unwrap(),
    ]);
    assert_same(&queries("duckdb", &dir), &want);
}

#[test]
fn spark_runs_the_same_queries_over_a_directory_of_captures() {
    let (dir, want) = dataset("lake-spark", &captures());
    assert_eq!(
        std::fs::read_dir(dir.join("frames")).unwrap().count(),
        captures().len()
    );
    let got = queries("spark", &dir);
    assert_same(&got, &want);
}

/// Rows of `query` (DuckDB, over the views `frames`, `tcp`, `flows`,
/// `synckeys` of `dir` that exist) as JSON arrays.
fn duckdb_rows(dir: &Path, query: &str) -> Vec<Value> {
    let script = r#"
import json, os, sys
import duckdb
d, q = sys.argv[1], sys.argv[2]
con = duckdb.connect()
for t in ("frames", "tcp", "flows", "synckeys", "anomalies"):
    if os.path.isdir(os.path.join(d, t)):
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{d}/{t}/*.parquet')")
print(json.dumps([list(r) for r in con.execute(q).fetchall()], default=str))
"#;
    let out = Command::new(lake_python())
        .args(["-c", script])
        .arg(dir)
        .arg(query)
        .output()
        .expect("run duckdb");
    assert!(
        out.status.success(),
        "duckdb {query}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON rows")
}

fn ndjson(args: &[&str]) -> Vec<Value> {
    ok_stdout(args)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn frames_and_flows_write_parquet_that_holds_their_records() {
    let dir = tmp("lake-commands");
    let d = dir.to_str().unwrap();
    let web = manifest().join("samples/serve-client-web-tls.pcapng");
    let keys = manifest().join("samples/serve-client-web-tls.keys");
    let (web, keys) = (web.to_str().unwrap(), keys.to_str().unwrap());
    let base = ["-q", web, "--keylog", keys];

    // frames: the rows are the NDJSON records, in their order.
    let records = ndjson(&[&["frames", "--format", "ndjson"][..], &base].concat());
    ok_stdout(&[&["frames", "--format", "parquet", "--output", d][..], &base].concat());
    let rows = duckdb_rows(
        &dir,
        "SELECT conn, layer, len, body, uin, sid, ret, msg_id, synckey, server_name, file \
         FROM frames",
    );
    assert_eq!(rows.len(), records.len());
    assert!(records.len() > 50, "{}", records.len());
    let mut seen = [0; 5];
    for (row, rec) in rows.iter().zip(&records) {
        assert_eq!(row[0], rec["conn"]);
        assert_eq!(row[1], rec["layer"]);
        assert_eq!(row[2], rec["len"]);
        assert_eq!(row[10], json!(web));
        let body: Value = serde_json::from_str(row[3].as_str().unwrap()).unwrap();
        assert_eq!(body, rec["body"]);
        // The known fields are the body's, where the analyzer's summary has them.
        let info = &rec["body"]["info"];
        if let Some(u) = info["uin"]
            .as_u64()
            .or(rec["body"]["identify"]["uin"].as_u64())
        {
            assert_eq!(row[4], json!(u), "{rec}");
            seen[0] += 1;
        }
        if let Some(s) = info["sid"].as_str() {
            assert_eq!(row[5], json!(s));
            seen[1] += 1;
        }
        if let Some(r) = info["ret"].as_i64() {
            assert_eq!(row[6], json!(r));
            seen[2] += 1;
        }
        if info["synckey_issued"].is_object() {
            let k: Value = serde_json::from_str(row[8].as_str().unwrap()).unwrap();
            assert_eq!(k, info["synckey_issued"]);
            seen[3] += 1;
        }
        if let Some(n) = rec["body"]["server_name"].as_str() {
            assert_eq!(row[9], json!(n));
            seen[4] += 1;
        }
        if info.is_null() && rec["body"]["identify"].is_null() {
            assert_eq!(row[4], Value::Null, "{rec}");
        }
    }
    // Every kind of field was met (the sample has logins, syncs and hellos).
    assert!(seen.iter().all(|&n| n > 0), "{seen:?}");

    // flows: the tcp table, one row per connection of every input, per file.
    let caps: Vec<String> = [
        "samples/serve-client-longlink.pcapng",
        "samples/serve-client-web.pcapng",
    ]
    .iter()
    .map(|c| manifest().join(c).display().to_string())
    .collect();
    let caps: Vec<&str> = caps.iter().map(String::as_str).collect();
    let flows = ndjson(&[&["flows", "--format", "ndjson", "--hash", "-q"][..], &caps].concat());
    ok_stdout(
        &[
            &[
                "flows", "--format", "parquet", "--hash", "-q", "--output", d,
            ][..],
            &caps,
        ]
        .concat(),
    );
    let rows = duckdb_rows(
        &dir,
        "SELECT file, conn, client, server, packets_c2s, bytes_c2s, sha256_c2s, bytes_s2c, \
         sha256_s2c, \"end\" FROM tcp ORDER BY conn",
    );
    assert_eq!(rows.len(), flows.len());
    for f in &flows {
        let row = rows
            .iter()
            .find(|r| r[1] == f["id"])
            .expect("a row per flow");
        assert_eq!(row[0], f["file"]);
        assert_eq!(row[2], f["client"]);
        assert_eq!(row[3], f["server"]);
        assert_eq!(row[4], f["c2s"]["packets"]);
        assert_eq!(row[5], f["c2s"]["bytes"]);
        assert_eq!(row[6], f["c2s"]["sha256"]);
        assert_eq!(row[7], f["s2c"]["bytes"]);
        assert_eq!(row[8], f["s2c"]["sha256"]);
        assert_eq!(row[9], f["end"]);
    }
    let files: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r[0].as_str().unwrap()).collect();
    assert_eq!(files, caps.iter().copied().collect());

    // analyze over both: each row of flows, synckeys and anomalies names the
    // capture of its connection, as `flows` does (not every input joined).
    let lake = tmp("lake-analyze-files");
    ok_stdout(
        &[
            &[
                "analyze",
                "--format",
                "parquet",
                "-q",
                "--output",
                lake.to_str().unwrap(),
            ][..],
            &caps,
        ]
        .concat(),
    );
    for (conn, file) in duckdb_rows(&lake, "SELECT conn, file FROM flows")
        .iter()
        .chain(&duckdb_rows(&lake, "SELECT conn, file FROM synckeys"))
        .map(|r| (r[0].clone(), r[1].clone()))
    {
        let f = flows.iter().find(|f| f["id"] == conn).expect("the flow");
        assert_eq!(file, f["file"], "conn {conn}");
    }
}
