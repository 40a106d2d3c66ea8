//! The `syncscope` command line: a thin layer over the library. Each
//! subcommand lives in `cmd/`; this file maps errors to exit codes
//! (0 ok, 1 anomalies found with `--fail-on-anomaly` (and `client`'s own
//! failures), 2 usage or unreadable input; a closed stdout pipe is not an
//! error).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

#[derive(Parser)]
#[command(
    name = "syncscope",
    version,
    about = "Makes sync-style messaging protocols visible on the wire",
    after_help = "Exit status: 0 done; 1 anomalies were found with --fail-on-anomaly (flows, \
analyze, frames, sync), or for client a send never confirmed or listen timed out; 2 an error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Reassemble every TCP connection of a capture and list them.
    #[command(after_help = cmd::EXIT_STATUS)]
    Flows(cmd::flows::Args),
    /// Dissect a capture and report: protocols, commands, latency, MMTLS, SyncKeys, anomalies.
    #[command(after_help = cmd::EXIT_STATUS)]
    Analyze(cmd::analyze::Args),
    /// One record per application frame (long link, short link, MMTLS records).
    #[command(after_help = cmd::EXIT_STATUS)]
    Frames(cmd::frames::Args),
    /// The SyncKey timeline per user across binary and web flows, with its anomalies.
    #[command(after_help = cmd::EXIT_STATUS)]
    Sync(cmd::sync::Args),
    /// Capture live from an interface: frames as they complete, then the analyze report.
    #[cfg(feature = "live")]
    Sniff(cmd::sniff::Args),
    /// Run the reference server: long link, short link and web, on a durable store.
    Serve(cmd::serve::Args),
    /// Reference client: send a message, or listen for messages.
    Client(cmd::client::Args),
    /// Replay a capture's client sessions against a live server and diff the answers.
    Replay(cmd::replay::Args),
    /// Write a Wireshark / tshark Lua dissector for the long link (names from the command table).
    Dissector(cmd::dissector::Args),
    /// Write the images and voice recordings a capture uploads (put together from their
    /// parts) to a directory, with a report of missing or overlapping parts and each sha256.
    ExportObjects(cmd::export_objects::Args),
}

/// mimalloc instead of the C library's allocator: the server allocates a
/// little per frame on every worker thread (`bench/load.sh`).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Flows(args) => cmd::flows::run(args),
        Command::Analyze(args) => cmd::analyze::run(args),
        Command::Frames(args) => cmd::frames::run(args),
        #[cfg(feature = "live")]
        Command::Sniff(args) => cmd::sniff::run(args),
        Command::Sync(args) => cmd::sync::run(args),
        Command::Serve(args) => cmd::serve::run(args),
        Command::Client(args) => cmd::client::run(args),
        Command::Replay(args) => cmd::replay::run(args),
        Command::Dissector(args) => cmd::dissector::run(args),
        Command::ExportObjects(args) => cmd::export_objects::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("syncscope: error: {}", message(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, `: `-separated, leaving out a cause that the
/// message before it already quotes (errors that print their source).
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
