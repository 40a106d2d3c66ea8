//! `-j 2` (`syncscope::parallel`): the reader thread and the sink thread
//! give the same records, report and flows as one thread, on every corpus
//! capture (real and nDPI) and on several inputs merged.

use std::path::{Path, PathBuf};

use syncscope::analyze::{Analyzer, FrameRecord, Options};
use syncscope::capture::Inputs;
use syncscope::flow::{self, Scope};
use syncscope::parallel;

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
    let inputs = Inputs::expand(paths).ok()?;
    let mut source = inputs.open().ok()?;
    let current = source.current_file();
    let opts = Options::default();
    let mut records = Vec::new();
    let mut an = Analyzer::new(&opts, |r: &FrameRecord| {
        let mut r = r.clone();
        r.file = Some(current.get().to_string());
        records.push(serde_json::to_string(&r).unwrap());
    });
    let ran = parallel::run(
        jobs,
        &mut source,
        flow::Config::default(),
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

#[test]
fn two_threads_keep_the_file_of_each_record() {
    // Several inputs at once: the file a record names is the one of the
    // packet that completed it, as on one thread.
    let real = captures(&shared().join("corpus/real"));
    let samples: Vec<PathBuf> = ["longlink-8080.pcap", "serve-client-longlink.pcapng"]
        .iter()
        .map(|f| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("samples")
                .join(f)
        })
        .chain(real.into_iter().take(6))
        .collect();
    assert!(same_on(&samples));
}
