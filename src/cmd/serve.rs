//! `syncscope serve`: the reference server (see `syncscope::net::server`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};

use syncscope::net::frame::DEFAULT_MAX_FRAME_LEN;
use syncscope::net::messages::IdentifyExt;
use syncscope::net::server::{self, Config};
use syncscope::net::store::{Counts, Store};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to listen on; loopback unless you name another (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: String,
    /// Directory of the durable store, created if missing [default: ./syncscope-data].
    #[arg(long, value_name = "DIR", conflicts_with = "memory")]
    pub data: Option<PathBuf>,
    /// Keep everything in memory (lost when the server stops).
    #[arg(long)]
    pub memory: bool,
    /// Test users, comma-separated; then only they can identify or receive,
    /// and web logins are confirmed automatically for them (a jslogin
    /// without `user=` takes the first without a web session). Without it,
    /// any user name is created on first use (web logins must name theirs).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub users: Vec<String>,
    /// Connections served at once; more are answered "busy" and closed
    /// (the open-file limit, `ulimit -n`, must be higher).
    #[arg(long, default_value_t = 16_384, value_name = "N")]
    pub max_connections: usize,
    /// Cap on a request frame or HTTP body, header included. Answers are paged to
    /// fit it and the client's limit (1 MiB), whichever is smaller; a message
    /// larger than a page is refused when sent.
    #[arg(long, default_value_t = DEFAULT_MAX_FRAME_LEN, value_name = "BYTES")]
    pub max_frame: u32,
    /// Most messages per sync answer (pages are capped in bytes too; ContinueFlag
    /// says when more follow).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub page_size: usize,
    /// Close a connection silent for this long (heartbeats count).
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    pub idle_timeout: u64,
    /// Time allowed for one frame or HTTP request, first byte to last (slowloris guard).
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub frame_timeout: u64,
    /// Longest hold of a web synccheck with nothing to tell (the real service: 25).
    #[arg(long, default_value_t = 25, value_name = "SECS")]
    pub web_poll: u64,
    /// Log only errors (not every auth and identify).
    #[arg(short, long)]
    pub quiet: bool,
    /// Check the store (SQLite's integrity_check) and exit: 0 sound, 1 damaged
    /// or missing; writes nothing.
    #[arg(long, conflicts_with_all = ["memory", "repair"])]
    pub check: bool,
    /// Copy what is readable of a damaged store into a new one, keep the
    /// damaged files in DIR/damaged-TIME/, and exit: 0 repaired, 1 not.
    #[arg(long, conflicts_with = "memory")]
    pub repair: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    for u in &args.users {
        if !IdentifyExt::valid_user(u) {
            bail!("--users: {u:?} is not a valid user name (1 to 64 characters, no spaces)");
        }
    }
    if args.page_size == 0 || args.max_connections == 0 {
        bail!("--page-size and --max-connections must be at least 1");
    }
    if args.max_frame < 1024 {
        bail!("--max-frame must be at least 1024 bytes");
    }
    if args.check || args.repair {
        return check_or_repair(&args);
    }
    let (mut store, what) = if args.memory {
        (Store::memory()?, "in memory".to_owned())
    } else {
        let dir = args
            .data
            .clone()
            .unwrap_or_else(|| PathBuf::from("syncscope-data"));
        let store =
            Store::open(&dir).with_context(|| format!("opening the store in {}", dir.display()))?;
        let what = store
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        (store, what)
    };
    for u in &args.users {
        store.user(u, true)?;
    }
    let quiet = args.quiet;
    let config = Config {
        max_connections: args.max_connections,
        max_frame_len: args.max_frame,
        page_size: args.page_size,
        idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
        auto_register: args.users.is_empty(),
        frame_timeout: Duration::from_secs(args.frame_timeout.max(1)),
        test_users: args.users.clone(),
        web_poll: Duration::from_secs(args.web_poll.max(1)),
        log: Some(Arc::new(move |e: &server::Event| {
            let routine = matches!(
                e,
                server::Event::Identified { .. } | server::Event::Authenticated { .. }
            );
            if !(quiet && routine) {
                eprintln!("syncscope serve: {e}");
            }
        })),
        ..Config::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr: SocketAddr = listener.local_addr()?;
        if !addr.ip().is_loopback() {
            eprintln!(
                "syncscope serve: warning: listening on {addr}, reachable from other machines"
            );
        }
        let shutdown = shutdown_signal()?;
        eprintln!("syncscope serve: listening on {addr} (store {what})");
        let store = Arc::new(Mutex::new(store));
        server::run_with(listener, store, config, shutdown).await;
        eprintln!("syncscope serve: stopped");
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `--check` and `--repair` (store/check.rs, store/repair.rs).
fn check_or_repair(args: &Args) -> anyhow::Result<ExitCode> {
    let dir = args
        .data
        .clone()
        .unwrap_or_else(|| PathBuf::from("syncscope-data"));
    let counts = |c: &Counts| {
        format!(
            "{} users, {} devices, {} messages, {} mailbox entries",
            c.users, c.devices, c.messages, c.mailbox
        )
    };
    if args.check {
        let report = Store::check(&dir, true)?;
        let path = report.path.display();
        if let Some(c) = report.counts.as_ref().filter(|_| report.is_sound()) {
            println!("{path}: sound ({})", counts(c));
            return Ok(ExitCode::SUCCESS);
        }
        println!("{path}: damaged; problems found: {}", report.problems.len());
        for p in &report.problems {
            println!("  {p}");
        }
        println!(
            "syncscope serve refuses to start on it. `syncscope serve --data {} --repair` copies \
             what is readable into a new store (the damaged files are kept aside); or restore \
             the directory from a backup.",
            dir.display()
        );
        return Ok(ExitCode::from(1));
    }
    match Store::repair(&dir) {
        Ok(r) => {
            println!(
                "{}: repaired: copied {}{}; not copied (they refer to rows lost): {}; \
                 the damaged files are in {}",
                r.check.path.display(),
                counts(&r.copied),
                r.highest_msg_id
                    .map(|m| format!(" (the highest MsgId was {m})"))
                    .unwrap_or_default(),
                counts(&r.dropped),
                r.aside.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("syncscope serve --repair: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Ctrl-C (SIGINT), or SIGTERM on Unix. The handlers are installed when
/// this is called (before the address is printed), not when first polled,
/// so a signal sent right after the "listening" line is not lost.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
