pub mod analyze;
pub mod client;
pub mod common;
pub mod dissector;
pub mod export_objects;
pub mod flows;
pub mod frames;
pub mod replay;
pub mod serve;
#[cfg(feature = "live")]
pub mod sniff;
pub mod sync;

use std::io::IsTerminal;
use std::path::Path;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use syncscope::capture::{Inputs, MergedSource, PacketSource};
use syncscope::pipeline::RunSummary;

/// The capture files of a command: files and directories expanded, in
/// time order; files skipped in directories are listed on stderr (unless
/// `quiet`).
pub fn inputs(paths: &[PathBuf], quiet: bool) -> anyhow::Result<Inputs> {
    let inputs = Inputs::expand(paths)?;
    if !quiet {
        for (p, why) in &inputs.skipped {
            eprintln!("syncscope: skipped {}: {why}", p.display());
        }
    }
    Ok(inputs)
}

/// How the inputs are named in messages: the file, or the first file and a count.
pub fn inputs_label(inputs: &Inputs) -> String {
    match inputs.files.as_slice() {
        [one] => one.display().to_string(),
        [first, rest @ ..] => format!("{} (and {} more files)", first.display(), rest.len()),
        [] => String::new(),
    }
}

/// Runs `f` over the captures with a progress bar on stderr when stderr is a
/// terminal and the input is large plain files (gzip and stdin get none:
/// their size is unknown).
pub fn run_with_progress<T>(
    inputs: &Inputs,
    quiet: bool,
    reader: &mut MergedSource,
    f: impl FnOnce(&mut MergedSource, &mut dyn FnMut(u64)) -> T,
) -> T {
    const LARGE: u64 = 64 << 20;
    let bar = match inputs.total_len() {
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

/// What `--help` says of the exit status of the capture commands.
pub const EXIT_STATUS: &str = "Exit status: 0 done; 1 anomalies were found and --fail-on-anomaly \
was given; 2 an error (bad arguments, an unreadable capture, or with --strict a truncated or \
corrupt one).";

/// Runs the analyzer over the capture for its report only (no frame
/// records), listing `max_examples` anomalies of each kind at most; the
/// capture's first packet starts `times`.
pub fn report_only(
    args: &common::DissectArgs,
    max_examples: usize,
    times: &syncscope::report::view::Times,
    plots: bool,
) -> anyhow::Result<(syncscope::analyze::Report, RunSummary, Inputs)> {
    report_of(args, &args.captures, max_examples, times, plots)
}

/// [`report_only`] over `captures` (not the ones `args` names).
pub fn report_of(
    args: &common::DissectArgs,
    captures: &[PathBuf],
    max_examples: usize,
    times: &syncscope::report::view::Times,
    plots: bool,
) -> anyhow::Result<(syncscope::analyze::Report, RunSummary, Inputs)> {
    let mut opts = args.options()?;
    opts.plots = plots;
    let scope = args.scope.scope()?;
    let inputs = inputs(captures, args.quiet)?;
    let mut reader = inputs.open()?;
    let mut an = syncscope::analyze::Analyzer::new(&opts, |_| {})
        .without_records()
        .max_examples(max_examples);
    let mut summary = run_with_progress(&inputs, args.quiet, &mut reader, |r, tick| {
        syncscope::parallel::analyze(
            args.jobs(),
            r,
            args.flow_config(),
            scope,
            Some(times),
            &mut an,
            tick,
        )
        .summary
    });
    nothing_read(&inputs_label(&inputs), &summary)?;
    let report = an.into_report();
    summary.anomalies = report.anomaly_counts();
    Ok((report, summary, inputs))
}

/// Writes the HTML report of `command` (`analyze`, `sync`) on `inputs`:
/// the plots of `report` above `text` (the command's tables).
pub fn write_html(
    path: &Path,
    command: &str,
    inputs: &str,
    report: &syncscope::analyze::Report,
    text: &[u8],
) -> anyhow::Result<()> {
    let title = format!("syncscope {command} {inputs}");
    let page = syncscope::report::html::page(&title, report, &String::from_utf8_lossy(text));
    std::fs::write(path, page).with_context(|| {
        format!(
            "--html {}: cannot write the report (is the directory there and writable?)",
            path.display()
        )
    })
}

/// Whether an analyze report holds anomalies (its one list has the SyncKey
/// sessions' too).
pub fn report_has_anomalies(report: &syncscope::analyze::Report) -> bool {
    report.anomalies.total() > 0
}

/// An error when the capture broke before its first packet: no results
/// to print (call before printing them).
pub fn nothing_read(name: &str, summary: &RunSummary) -> anyhow::Result<()> {
    match &summary.read_error {
        Some(e) if summary.read.packets == 0 => {
            anyhow::bail!(
                "{name}: {e}; no packet could be read (is the file complete? `capinfos {name}` \
                 shows the damage too)"
            )
        }
        _ => Ok(()),
    }
}

/// How a capture command ends: the stderr summary, then the exit code.
pub struct Finish<'a> {
    /// The inputs as messages name them ([`inputs_label`]).
    pub capture: &'a str,
    pub quiet: bool,
    /// `--strict`: a truncated or corrupt capture exits 2.
    pub strict: bool,
    /// `--fail-on-anomaly`, and whether there were any.
    pub fail_on_anomaly: bool,
    pub anomalies: bool,
}

impl Finish<'_> {
    /// The stderr summary and the exit code: 2 when nothing could be read
    /// or (with --strict) the capture is truncated or corrupt, 1 when
    /// anomalies were found with --fail-on-anomaly, else 0.
    pub fn exit(&self, summary: &RunSummary) -> anyhow::Result<ExitCode> {
        if !self.quiet {
            eprint!("{}", syncscope::report::summary(summary));
        }
        let name = self.capture;
        nothing_read(self.capture, summary)?;
        if let Some(e) = &summary.read_error {
            eprintln!(
                "syncscope: warning: {name}: {e}; the results cover the {} packets before it{}",
                summary.read.packets,
                if self.strict {
                    ""
                } else {
                    " (--strict: exit 2)"
                }
            );
            if self.strict {
                return Ok(ExitCode::from(2));
            }
        }
        if self.fail_on_anomaly && self.anomalies {
            return Ok(ExitCode::from(1));
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl common::DissectArgs {
    /// [`Finish`] with this command's capture, `--quiet`, `--strict` and
    /// `--fail-on-anomaly`, given whether anomalies were found.
    pub fn finish(
        &self,
        inputs: &Inputs,
        summary: &RunSummary,
        anomalies: bool,
    ) -> anyhow::Result<ExitCode> {
        Finish {
            capture: &inputs_label(inputs),
            quiet: self.quiet,
            strict: self.strict,
            fail_on_anomaly: self.scope.fail_on_anomaly,
            anomalies,
        }
        .exit(summary)
    }
}
