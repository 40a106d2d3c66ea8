pub mod analyze;
pub mod common;
pub mod flows;
pub mod frames;

use std::process::ExitCode;

use syncscope::pipeline::RunSummary;

/// The stderr summary and the exit code for a truncated or corrupt capture.
pub fn finish(args: &common::DissectArgs, summary: &RunSummary) -> anyhow::Result<ExitCode> {
    if !args.quiet {
        flows::print_summary(summary);
    }
    if let Some(e) = &summary.read_error {
        eprintln!("syncscope: warning: {}: {e}", args.capture.display());
        if args.strict {
            return Ok(ExitCode::from(2));
        }
    }
    Ok(ExitCode::SUCCESS)
}
