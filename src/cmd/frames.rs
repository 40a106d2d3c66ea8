//! `syncscope frames`: one record per application frame.

use std::io;
use std::process::ExitCode;

use anyhow::Context;
use clap::builder::{PossibleValuesParser, TypedValueParser};

use syncscope::analyze::{Analyzer, CmdMatch, FrameRecord, Layer, RecordFilter};
use syncscope::parallel;
use syncscope::report::{self, Format};

use super::common::{format_parser, DissectArgs, ViewArgs, ALL_FORMATS};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: DissectArgs,
    /// Output format.
    #[arg(long, default_value_t = Format::Table, value_parser = format_parser(ALL_FORMATS))]
    pub format: Format,
    /// Only frames of this cmd: a number (121, or hex 0x79) or a name in any case (newsync;
    /// short-link cgis and web endpoints by theirs); a request's name or number also selects
    /// its responses. An unknown name is an error that lists the known ones.
    #[arg(long)]
    pub cmd: Option<String>,
    /// Only frames of this connection id (as `syncscope flows` numbers them).
    #[arg(long)]
    pub conn: Option<u64>,
    /// Only this layer, as the records name it.
    #[arg(long, value_parser = layer_parser())]
    pub layer: Option<Layer>,
    #[command(flatten)]
    pub view: ViewArgs,
}

/// `--layer`: exactly the names records print ([`Layer::ALL`]).
pub(super) fn layer_parser() -> impl TypedValueParser<Value = Layer> {
    PossibleValuesParser::new(Layer::ALL.map(Layer::as_str))
        .map(|s| s.parse::<Layer>().expect("one of Layer::ALL"))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let opts = args.common.options()?;
    let scope = args.common.scope.scope()?;
    // Names come from the analyzer's own table (with the profile's).
    let cmd = args
        .cmd
        .as_deref()
        .map(|c| CmdMatch::parse(c, &opts.registry))
        .transpose()?;
    let filter = RecordFilter {
        cmd,
        conn: args.conn,
        layer: args.layer,
    };
    let inputs = super::inputs(&args.common.captures, args.common.quiet)?;
    let mut reader = inputs.open()?;
    // Several inputs: each record names the file of the packet that completed it.
    let names = (inputs.files.len() > 1).then(|| inputs.names());
    let current = reader.current_file();
    let view = args.view.view();
    let times = view.time.clone();
    let mut printer = report::spilling(args.format, view, io::BufWriter::new(io::stdout().lock()));
    printer.begin()?;
    let mut err: Option<io::Error> = None;
    let (summary, report) = {
        let mut an = Analyzer::new(&opts, |r: &FrameRecord| {
            if !filter.keep(r) || err.is_some() {
                return;
            }
            let res = match &names {
                Some(names) => {
                    let mut r = r.clone();
                    r.file = names.get(current.get()).cloned();
                    printer.record(&r)
                }
                None => printer.record(r),
            };
            if let Err(e) = res {
                err = Some(e);
            }
        });
        let mut s = super::run_with_progress(&inputs, args.common.quiet, &mut reader, |r, tick| {
            parallel::analyze(
                args.common.jobs(),
                r,
                args.common.flow_config(),
                scope,
                Some(&times),
                &mut an,
                tick,
            )
            .summary
        });
        // The summary line counts what the analyzer found, as `analyze` does.
        let report = an.into_report();
        s.anomalies = report.anomaly_counts();
        (s, report)
    };
    if let Some(e) = err {
        return Err(e).context("writing frames");
    }
    super::nothing_read(&super::inputs_label(&inputs), &summary)?;
    printer.end()?;
    args.common
        .finish(&inputs, &summary, super::report_has_anomalies(&report))
}
