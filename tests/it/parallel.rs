//! `-j N` (`syncscope::parallel`): the analyzer split by connection over
//! several workers (`parallel::analyze`) gives the same records and report
//! as one thread, and the two-stage run (`parallel::run`, the flows sink) the
//! same flows, on every corpus capture (real and nDPI), on several inputs
//! merged, on a generated capture of many connections, and with the flow
//! table at its caps (eviction, idle expiry, the out-of-order budget) or
//! with a port filter. And a mapped capture (whose payload the hand-over
//! and the retention windows keep as places in the file) gives what the
//! same bytes read through a buffer give.

use std::path::{Path, PathBuf};

use syncscope::analyze::{Analyzer, FrameRecord, Options};
use syncscope::capture::{Inputs, Reader};
use syncscope::flow::{self, Scope};
use syncscope::{parallel, pipeline};

use super::common::{shared, Collect};

fn captures(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            p.is_file() && (n.contains(".pcap") || n.contains(".cap"))
        })
        .collect();
    v.sort();
    v
}

/// Records (as JSON, with the file each names) and the report, over `jobs` threads.
fn analyze(paths: &[PathBuf], jobs: usize) -> Option<(Vec<String>, String, String)> {
    analyze_with(
        paths,
        jobs,
        flow::Config::default(),
        &Options::default(),
        true,
    )
}

/// [`analyze`] with this flow table and these options, with or without
/// records; three examples of each kind at most, so that the capped lists
/// show any change of order.
fn analyze_with(
    paths: &[PathBuf],
    jobs: usize,
    cfg: flow::Config,
    opts: &Options,
    with_records: bool,
) -> Option<(Vec<String>, String, String)> {
    let inputs = Inputs::expand(paths).ok()?;
    let mut source = inputs.open().ok()?;
    let current = source.current_file();
    let mut records = Vec::new();
    let mut an = Analyzer::new(opts, |r: &FrameRecord| {
        let mut r = r.clone();
        r.file = Some(current.get().to_string());
        records.push(serde_json::to_string(&r).unwrap());
    })
    .max_examples(3);
    if !with_records {
        an = an.without_records();
    }
    let ran = parallel::analyze(
        jobs,
        &mut source,
        cfg,
        Scope::default(),
        None,
        &mut an,
        |_| {},
    );
    let report = serde_json::to_string(&an.into_report()).unwrap();
    let summary = serde_json::to_string(&ran.summary).unwrap();
    Some((records, report, summary))
}

/// Connections, bytes and events (the flows sink's view), over `jobs` threads.
fn flows(paths: &[PathBuf], jobs: usize) -> Option<String> {
    let inputs = Inputs::expand(paths).ok()?;
    let mut source = inputs.open().ok()?;
    let mut c = Collect::default();
    let ran = parallel::run(
        jobs,
        &mut source,
        flow::Config::default(),
        Scope::default(),
        None,
        &mut c,
        |_| {},
    );
    Some(format!(
        "{:?}\n{:?}\n{}",
        c.flows, c.events, ran.scoped_anomalies
    ))
}

fn same_on(paths: &[PathBuf]) -> bool {
    let one = analyze(paths, 1);
    let two = analyze(paths, 2);
    assert_eq!(one.is_some(), two.is_some(), "{paths:?}");
    let Some(one) = one else { return false };
    let two = two.unwrap();
    assert_eq!(one.0, two.0, "records of {paths:?}");
    assert_eq!(one.1, two.1, "report of {paths:?}");
    assert_eq!(one.2, two.2, "summary of {paths:?}");
    assert_eq!(flows(paths, 1), flows(paths, 2), "flows of {paths:?}");
    !one.0.is_empty()
}

#[test]
fn two_threads_give_what_one_gives_on_every_corpus_capture() {
    let mut with_records = 0;
    let mut files = 0;
    for dir in ["corpus/real", "corpus/ndpi"] {
        for p in captures(&shared().join(dir)) {
            files += 1;
            with_records += usize::from(same_on(&[p]));
        }
    }
    assert!(files > 500, "{files} corpus captures");
    assert!(with_records > 50, "{with_records} captures with records");
}

/// Every corpus capture read mapped and read through a buffer (standard
/// input's way: every retained byte a copy): the same flows, bytes, events
/// (overlap mismatches among them, found by comparing retransmissions
/// with the retained bytes) and summary.
#[test]
fn a_mapped_capture_gives_what_a_read_one_gives() {
    let (mut files, mut mismatches) = (0, 0);
    for dir in ["corpus/real", "corpus/ndpi"] {
        for p in captures(&shared().join(dir)) {
            let Ok(mut mapped) = Reader::open(&p) else {
                continue;
            };
            let whole = std::fs::read(&p).unwrap();
            let gzip = whole.starts_with(&[0x1f, 0x8b]);
            assert_eq!(mapped.mapped().is_some(), !gzip, "{p:?}");
            let mut read =
                Reader::from_read(Box::new(std::io::Cursor::new(whole)), "read").unwrap();
            assert!(read.mapped().is_none());
            let run = |r: &mut Reader| {
                let mut c = Collect::default();
                let s = pipeline::run(r, flow::Config::default(), &mut c, |_| {});
                (c, serde_json::to_string(&s).unwrap())
            };
            let (a, sa) = run(&mut mapped);
            let (b, sb) = run(&mut read);
            assert_eq!(format!("{:?}", a.flows), format!("{:?}", b.flows), "{p:?}");
            assert_eq!(a.events, b.events, "{p:?}");
            assert_eq!(sa, sb, "{p:?}");
            files += 1;
            mismatches += a
                .events
                .iter()
                .filter(|e| e.2.contains("OverlapMismatch"))
                .count();
        }
    }
    assert!(files > 400, "{files} captures");
    assert!(mismatches > 0, "no overlap mismatch in the corpus");
}

#[test]
fn two_threads_keep_the_file_of_each_record() {
    // Several inputs at once: the file a record names is the one of the
    // packet that completed it, as on one thread.
    let real = captures(&shared().join("corpus/real"));
    let mut paths = samples();
    paths.extend(real.into_iter().take(6));
    assert!(same_on(&paths));
    assert!(same_split(
        &paths,
        flow::Config::default(),
        &Options::default(),
        true
    ));
}

fn samples() -> Vec<PathBuf> {
    ["longlink-8080.pcap", "serve-client-longlink.pcapng"]
        .iter()
        .map(|f| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("samples")
                .join(f)
        })
        .collect()
}

/// One thread against 2 and 3 workers; whether there were records.
fn same_split(paths: &[PathBuf], cfg: flow::Config, opts: &Options, with_records: bool) -> bool {
    let one = analyze_with(paths, 1, cfg, opts, with_records).expect("readable");
    for jobs in [2, 3] {
        let n = analyze_with(paths, jobs, cfg, opts, with_records).unwrap();
        assert_eq!(one.0, n.0, "records of {paths:?} on {jobs}");
        assert_eq!(one.1, n.1, "report of {paths:?} on {jobs}");
        assert_eq!(one.2, n.2, "summary of {paths:?} on {jobs}");
    }
    !one.0.is_empty()
}

#[test]
fn split_by_connection_matches_one_thread_on_many_connections() {
    // Long links that look like real use (SyncKeys, newsyncs, sends and
    // pushes on each, latencies of every cmd), a SYN scan and HTTP, in one
    // file: the workers' connections interleave packet by packet.
    use syncscope::synth::mix::{self, Params};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mix.pcap");
    let p = Params {
        bytes: 6 << 20,
        conns: 12,
        seed: 7,
        scan_syns: 60,
        http_conns: 3,
        sync_max: 128 << 10,
        ..Params::default()
    };
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    mix::generate(&mut out, &p).expect("generate");
    drop(out);
    let paths = [path];
    let opts = Options::default();
    assert!(same_split(&paths, flow::Config::default(), &opts, true));
    same_split(&paths, flow::Config::default(), &opts, false);
    let (_, report, _) = analyze(&paths, 2).unwrap();
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    let sessions = report["sessions"].as_array().unwrap();
    assert!(sessions.len() >= 2, "{} sessions", sessions.len());
    assert!(!report["latency"].as_array().unwrap().is_empty());
    // A port filter (the HTTP connections on port 80 left out): the
    // analyzer's packet numbers skip the connections it leaves out.
    let port = Options {
        port: Some(8080),
        ..Options::default()
    };
    assert!(same_split(&paths, flow::Config::default(), &port, true));
}

#[test]
fn split_matches_one_thread_at_the_flow_table_caps() {
    // Two connections at most (the least recently active evicted), idle
    // expiry after a second and one packet, a small out-of-order budget
    // over all connections: the one flow table decides for every worker.
    let cfg = flow::Config {
        max_flows: 2,
        idle_timeout_secs: 1,
        closed_timeout_secs: 0,
        idle_min_packets: 1,
        max_buffer_total: 8 << 10,
        ..flow::Config::default()
    };
    let mut paths = samples();
    let real = captures(&shared().join("corpus/real"));
    paths.extend(real.iter().step_by(4).cloned());
    let (mut evicted, mut expired) = (0, 0);
    for p in &paths {
        let paths = [p.clone()];
        same_split(&paths, cfg, &Options::default(), true);
        let summary = analyze_with(&paths, 1, cfg, &Options::default(), false)
            .unwrap()
            .2;
        let s: serde_json::Value = serde_json::from_str(&summary).unwrap();
        evicted += s["flows"]["evicted"].as_u64().unwrap();
        expired += s["flows"]["expired_idle"].as_u64().unwrap();
    }
    assert!(
        evicted > 0 && expired > 0,
        "evicted {evicted}, expired {expired}"
    );
}
