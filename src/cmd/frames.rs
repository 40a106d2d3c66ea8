//! `syncscope frames`: one record per application frame.

use std::io;
use std::process::ExitCode;

use anyhow::Context;
use clap::builder::{PossibleValuesParser, TypedValueParser};

use syncscope::analyze::{Analyzer, CmdMatch, FrameRecord, Layer, RecordFilter};
use syncscope::parallel;
use syncscope::report::parquet::FramesPrinter;
use syncscope::report::{self, Printer};

use super::common::{output_dir, output_parser, DissectArgs, Output, ViewArgs, ALL_FORMATS};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: DissectArgs,
    /// Output format; parquet writes the frames table (docs/parquet.md) under --output DIR.
    #[arg(long, default_value = "table", value_parser = output_parser(ALL_FORMATS))]
    pub format: Output,
    /// With --format parquet: the dataset directory; each run adds
    /// DIR/frames/part-<capture>-<hash>.parquet (created if missing).
    #[arg(long, value_name = "DIR")]
    pub output: Option<std::path::PathBuf>,
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
    let dir = output_dir(args.format, args.output.as_deref())?;
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
    let mut printer: Box<dyn Printer<FrameRecord>> = match (args.format, dir) {
        (Output::Print(f), _) => report::spilling(f, view, io::BufWriter::new(io::stdout().lock())),
        (Output::Parquet, dir) => {
            let dir = dir.expect("output_dir gives Parquet a directory");
            Box::new(
                FramesPrinter::create(dir, inputs.names(), args.common.quiet).with_context(
                    || {
                        format!(
                            "--output {}: cannot create the dataset (give a directory you can \
                             write to)",
                            dir.display()
                        )
                    },
                )?,
            )
        }
    };
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
    printer.end().context("writing frames")?;
    args.common
        .finish(&inputs, &summary, super::report_has_anomalies(&report))
}
