use std::io::{self, Write};
use std::process::ExitCode;

use clap::ValueEnum;

use super::common::DissectArgs;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OutFormat {
    Table,
    Json,
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: DissectArgs,
    /// Output format: a readable report, or the same report as one JSON document.
    #[arg(long, value_enum, default_value_t = OutFormat::Table)]
    pub format: OutFormat,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (report, summary) = super::report_only(&args.common)?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    match args.format {
        OutFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &report).map_err(io::Error::from)?;
            out.write_all(b"\n")?;
        }
        OutFormat::Table => out.write_all(syncscope::report::table::analyze(&report).as_bytes())?,
    }
    out.flush()?;
    super::finish(&args.common, &summary)
}
