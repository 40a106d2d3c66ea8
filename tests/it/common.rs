use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use syncscope::capture::Reader;
use syncscope::flow::{self, Direction, FlowMeta, FlowSummary, Side, Sink};
use syncscope::pipeline::{self, RunSummary};
use syncscope::reassembly::Event;

/// `../shared` beside the checkout (read-only reference material).
pub fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

pub fn corpus_real() -> PathBuf {
    shared().join("corpus/real")
}

/// Everything a run produced, bytes included.
#[derive(Default)]
pub struct Collect {
    pub flows: Vec<(FlowSummary, [Vec<u8>; 2])>,
    live: BTreeMap<u64, [Vec<u8>; 2]>,
    pub events: Vec<(u64, Direction, String)>,
}

impl Sink for Collect {
    fn event(&mut self, meta: &FlowMeta, side: Side, ev: Event<'_>) {
        match ev {
            // By side: the roles may still change while the connection is live.
            Event::Data { bytes, .. } => {
                self.live.entry(meta.id).or_default()[side.index()].extend_from_slice(bytes)
            }
            other => self
                .events
                .push((meta.id, meta.direction(side), format!("{other:?}"))),
        }
    }
    fn flow_end(&mut self, s: &FlowSummary) {
        let [first, second] = self.live.remove(&s.id).unwrap_or_default();
        // Index 0 = client to server, 1 = server to client, by the final roles.
        let bytes = if s.client_side == Side::First {
            [first, second]
        } else {
            [second, first]
        };
        self.flows.push((s.clone(), bytes));
    }
}

pub fn run_file(path: &Path) -> (Collect, RunSummary) {
    let mut reader = Reader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut c = Collect::default();
    let s = pipeline::run(&mut reader, flow::Config::default(), &mut c, |_| {});
    c.flows.sort_by_key(|f| f.0.id);
    (c, s)
}

/// Runs the analyzer over a whole capture: every frame record, and the report.
pub fn analyze_capture(
    reader: &mut Reader,
    opts: &syncscope::analyze::Options,
) -> (
    Vec<syncscope::analyze::FrameRecord>,
    syncscope::analyze::Report,
) {
    use syncscope::analyze::{Analyzer, FrameRecord};
    let mut records = Vec::new();
    let mut an = Analyzer::new(opts, |r: &FrameRecord| records.push(r.clone()));
    pipeline::run(reader, flow::Config::default(), &mut an, |_| {});
    let report = an.into_report();
    (records, report)
}

/// A classic Ethernet pcap of generated frames, one millisecond apart.
pub fn pcap_of(frames: &[Vec<u8>]) -> Vec<u8> {
    use syncscope::capture::writer::PcapWriter;
    use syncscope::capture::{Linktype, Timestamp};
    let mut w = PcapWriter::new(Vec::new(), Linktype::ETHERNET, false).unwrap();
    let mut ts = Timestamp::new(1_700_000_000, 0, 6);
    for f in frames {
        ts = syncscope::synth::later(ts, 1000);
        w.write(ts, f, None).unwrap();
    }
    w.into_inner()
}

/// A Python with `packages` from PyPI, in the venv `name` under the target
/// dir (made once; needs python3 with venv and PyPI, as CI has). `needs`
/// says which test needs it, for the error.
pub fn python_venv(name: &str, packages: &[&str], needs: &str) -> PathBuf {
    use std::process::Command;
    use std::sync::Mutex;
    static ONCE: Mutex<()> = Mutex::new(());
    let _guard = ONCE.lock().unwrap_or_else(|p| p.into_inner());
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let python = venv.join("bin/python");
    let ready = venv.join(format!("{}.ready", packages.join("+")));
    if ready.exists() {
        return python;
    }
    let run = |cmd: &mut Command, what: &str| {
        let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            out.status.success(),
            "{what} failed ({needs} needs python3 with venv and PyPI):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(
        Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv),
        "python3 -m venv",
    );
    run(
        Command::new(&python)
            .args(["-m", "pip", "install", "--disable-pip-version-check", "-q"])
            .args(packages),
        &format!("pip install {}", packages.join(" ")),
    );
    std::fs::write(&ready, b"").expect("mark the venv ready");
    python
}

/// The JSON `syncscope ARGS...` prints on stdout; fails the test (with its
/// stderr) when the command fails or the output is not JSON.
pub fn syncscope_json<I, S>(args: I) -> serde_json::Value
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_syncscope"))
        .args(args)
        .output()
        .expect("run syncscope");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}
