//! The `syncscope` command line: a thin layer over the library. Each
//! subcommand lives in `cmd/`; this file maps errors to exit codes
//! (0 ok, 2 usage or unreadable input; a closed stdout pipe is not an error).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

#[derive(Parser)]
#[command(
    name = "syncscope",
    version,
    about = "Makes sync-style messaging protocols visible on the wire"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Reassemble every TCP connection of a capture and list them.
    Flows(cmd::flows::Args),
    /// Dissect a capture and report: protocols, commands, latency, MMTLS, SyncKeys, anomalies.
    Analyze(cmd::analyze::Args),
    /// One record per application frame (long link, short link, MMTLS records).
    Frames(cmd::frames::Args),
    /// The SyncKey timeline per user across binary and web flows, with its anomalies.
    Sync(cmd::sync::Args),
    /// Capture live from an interface: frames as they complete, then the analyze report.
    #[cfg(feature = "live")]
    Sniff(cmd::sniff::Args),
    /// Run the reference server (long link): identify, heartbeat, newsync, newsendmsg, pushes.
    Serve(cmd::serve::Args),
    /// Reference client: send a message, or listen for messages.
    Client(cmd::client::Args),
    /// Replay a capture's client sessions against a live server and diff the answers.
    Replay(cmd::replay::Args),
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
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("syncscope: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
