pub mod analyze;
pub mod client;
pub mod common;
pub mod flows;
pub mod frames;
pub mod replay;
pub mod serve;
#[cfg(feature = "live")]
pub mod sniff;
pub mod sync;

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};

use syncscope::capture::Reader;
use syncscope::pipeline::RunSummary;

/// Runs `f` over the capture with a progress bar on stderr when stderr is a
/// terminal and the input is a large plain file (gzip and stdin get none:
/// their size is unknown).
pub fn run_with_progress(
    path: &Path,
    quiet: bool,
    reader: &mut Reader,
    f: impl FnOnce(&mut Reader, &mut dyn FnMut(u64)) -> RunSummary,
) -> RunSummary {
    const LARGE: u64 = 64 << 20;
    let len = std::fs::metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    let bar = match len {
        Some(len)
            if len >= LARGE
                && !quiet
                && std::io::stderr().is_terminal()
                && !reader.stats().gzip =>
        {
            let bar = ProgressBar::new(len);
            if let Ok(style) = ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            ) {
                bar.set_style(style);
            }
            Some(bar)
        }
        _ => None,
    };
    let mut n = 0u64;
    let mut tick = |offset: u64| {
        n += 1;
        if n % 8192 == 0 {
            if let Some(b) = &bar {
                b.set_position(offset);
            }
        }
    };
    let summary = f(reader, &mut tick);
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    summary
}

/// Runs the analyzer over the capture for its report only (no frame
/// records), listing `max_examples` anomalies of each kind at most; the
/// capture's first packet starts `times`.
pub fn report_only(
    args: &common::DissectArgs,
    max_examples: usize,
    times: &syncscope::report::view::Times,
) -> anyhow::Result<(syncscope::analyze::Report, RunSummary)> {
    let opts = args.options()?;
    let mut reader = Reader::open(&args.capture)?;
    let mut an = syncscope::analyze::Analyzer::new(&opts, |_| {})
        .without_records()
        .max_examples(max_examples);
    let summary = run_with_progress(&args.capture, args.quiet, &mut reader, |r, tick| {
        syncscope::pipeline::run(&mut times.watch(r), args.flow_config(), &mut an, tick)
    });
    Ok((an.into_report(), summary))
}

/// The stderr summary and the exit code for a truncated or corrupt capture.
pub fn finish(
    capture: &Path,
    quiet: bool,
    strict: bool,
    summary: &RunSummary,
) -> anyhow::Result<ExitCode> {
    if !quiet {
        eprint!("{}", syncscope::report::summary(summary));
    }
    if let Some(e) = &summary.read_error {
        eprintln!("syncscope: warning: {}: {e}", capture.display());
        if strict {
            return Ok(ExitCode::from(2));
        }
    }
    Ok(ExitCode::SUCCESS)
}

impl common::DissectArgs {
    /// [`finish`] with this command's capture, `--quiet` and `--strict`.
    pub fn finish(&self, summary: &RunSummary) -> anyhow::Result<ExitCode> {
        finish(&self.capture, self.quiet, self.strict, summary)
    }
}
