//! `syncscope sync`: the SyncKey timeline per user.

use std::io::{self, Write};
use std::process::ExitCode;

use syncscope::report::{self, Format, SyncReport};

use super::common::{format_parser, DissectArgs, ViewArgs, ALL_FORMATS};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: DissectArgs,
    /// Output format: a timeline per session and the message lifecycles, `{"sessions": [...],
    /// "lifecycle": {...}}`, or one session per line then `{"lifecycle": ...}`.
    #[arg(long, default_value_t = Format::Table, value_parser = format_parser(ALL_FORMATS))]
    pub format: Format,
    #[command(flatten)]
    pub view: ViewArgs,
    /// Also write a self-contained HTML report: each session's keys over time with its
    /// anomalies (and the analyze report's other plots), above the timeline tables.
    #[arg(long, value_name = "FILE.html")]
    pub html: Option<std::path::PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let view = args.view.view();
    let (report, summary, inputs) = super::report_only(
        &args.common,
        report::DEFAULT_MAX_EXAMPLES,
        &view.time,
        args.html.is_some(),
    )?;
    // What `sync` shows: the sessions' SyncKey anomalies.
    let anomalies = report.sessions.iter().any(|s| !s.anomalies.is_empty());
    let doc = SyncReport {
        sessions: report.sessions.clone(),
        lifecycle: report.lifecycle.clone(),
    };
    if let Some(path) = &args.html {
        let mut text = Vec::new();
        let mut table = report::printer(Format::Table, Default::default(), &mut text);
        table.begin()?;
        table.record(&doc)?;
        table.end()?;
        drop(table);
        super::write_html(path, "sync", &super::inputs_label(&inputs), &report, &text)?;
    }
    let out = io::BufWriter::new(io::stdout().lock());
    if args.format == Format::Ndjson {
        // A line per session, then one `{"lifecycle": ...}` when there are sends.
        let mut printer = report::printer(Format::Ndjson, view, out);
        printer.begin()?;
        for s in doc.sessions {
            printer.record_owned(s)?;
        }
        printer.end()?;
        drop(printer);
        if !doc.lifecycle.messages.is_empty() || doc.lifecycle.untracked > 0 {
            let mut out = io::stdout().lock();
            report::json::to_writer(&mut out, &serde_json::json!({ "lifecycle": doc.lifecycle }))?;
            out.write_all(b"\n")?;
            out.flush()?;
        }
    } else {
        let mut printer = report::printer(args.format, view, out);
        printer.begin()?;
        printer.record_owned(doc)?;
        printer.end()?;
    }
    args.common.finish(&inputs, &summary, anomalies)
}
