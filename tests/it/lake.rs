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
