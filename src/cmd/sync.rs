use std::io::{self, Write};
use std::process::ExitCode;

use super::common::OutFormat;

use super::common::DissectArgs;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: DissectArgs,
    /// Output format: a timeline per session, `{"sessions": [...]}`, or one session per line.
    #[arg(long, value_enum, default_value_t = OutFormat::Table)]
    pub format: OutFormat,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (report, summary) = super::report_only(&args.common)?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    match args.format {
        OutFormat::Json => {
            serde_json::to_writer_pretty(
                &mut out,
                &serde_json::json!({ "sessions": report.sessions }),
            )
            .map_err(io::Error::from)?;
            out.write_all(b"\n")?;
        }
        OutFormat::Ndjson => {
            for s in &report.sessions {
                serde_json::to_writer(&mut out, s).map_err(io::Error::from)?;
                out.write_all(b"\n")?;
            }
        }
        OutFormat::Table => {
            out.write_all(syncscope::report::table::sessions(&report.sessions).as_bytes())?
        }
    }
    out.flush()?;
    super::finish(&args.common, &summary)
}
