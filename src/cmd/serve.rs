//! `syncscope serve`: the reference server (see `syncscope::net::server`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};

use syncscope::capture::Reader;

use syncscope::net::frame::DEFAULT_MAX_FRAME_LEN;
use syncscope::net::messages::IdentifyExt;
use syncscope::net::server::{self, Access, Config};
use syncscope::net::store::{Counts, Store, StoreError};
use syncscope::replay::mock::{self, Mock, Unmatched};
use syncscope::replay::recording::Link;
use syncscope::replay::{schema, Recording};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to listen on: IP:PORT, HOST:PORT, or :PORT for every interface; loopback unless
    /// you name another (port 0 picks a free port). Any other address enforces identity (then
    /// --users is required).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: String,
    /// Directory of the durable store, created if missing [default: ./syncscope-data].
    #[arg(long, value_name = "DIR", conflicts_with = "memory")]
    pub data: Option<PathBuf>,
    /// Keep everything in memory (lost when the server stops).
    #[arg(long)]
    pub memory: bool,
    /// Users, comma-separated, each NAME or NAME:PASSWORD; then only they
    /// can log in or receive. A password (or a non-loopback address, or
    /// --require-auth) enforces identity on every link, and each user given
    /// without a password gets a generated one, printed at start-up.
    /// Without --users any name is created on first use (test mode only).
    #[arg(long, value_delimiter = ',', value_name = "NAME[:PASSWORD]")]
    pub users: Vec<String>,
    /// Enforce identity on loopback too (passwords generated for users given without one).
    #[arg(long)]
    pub require_auth: bool,
    /// Confirm web logins without a device (for tests; always so in test mode).
    #[arg(long)]
    pub web_auto_confirm: bool,
    /// Connections served at once; more are answered "busy" and closed
    /// [default: the open-file limit (raised to its hard value at start-up) less 256, at most 65536].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Connections one address may hold before they authenticate (HTTP ones count throughout).
    #[arg(long, default_value_t = server::DEFAULT_MAX_UNAUTHENTICATED_PER_IP, value_name = "N")]
    pub max_unauthenticated_per_ip: usize,
    /// Close a connection that has not authenticated within this long (in test mode an identify counts).
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub auth_timeout: u64,
    /// Listen backlog: connections the kernel queues before they are accepted (capped by the
    /// kernel, on Linux at net.core.somaxconn).
    #[arg(long, default_value_t = server::DEFAULT_BACKLOG, value_name = "N")]
    pub backlog: u32,
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
    /// Serve HTTPS too, on the same port, with this PEM certificate chain (needs --tls-key);
    /// session secrets go to SSLKEYLOGFILE when it is set.
    #[arg(long, value_name = "CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Longest hold of a web synccheck or login poll with nothing to tell (the real service: 25).
    #[arg(long, default_value_t = 25, value_name = "SECS")]
    pub web_poll: u64,
    /// Bytes an uploaded image or voice recording may have.
    #[arg(long, default_value_t = server::DEFAULT_MAX_MEDIA_LEN, value_name = "BYTES")]
    pub max_media: usize,
    /// Uploads a user may have unfinished at once (a new one past it is refused).
    #[arg(long, default_value_t = server::DEFAULT_MAX_OPEN_UPLOADS, value_name = "N")]
    pub max_open_uploads: usize,
    /// An upload left unfinished this long is dropped (counted in the log).
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    pub upload_ttl: u64,
    /// Make receipts: delivered when a device of the recipient confirms a message, read on a
    /// read report (statusnotify Code 1), each sent to the sender's devices as a status message
    /// (MsgType 51). Off by default (the shipped samples were recorded without them).
    #[arg(long)]
    pub receipts: bool,
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
    /// Mock mode: answer clients from the recorded answers of CAPTURE (long link and
    /// HTTP/web sessions), matched on cmd or endpoint and the request's fields less
    /// the volatile ones (SyncKeys, ids, tickets, times); seqs, SyncKeys, cookies and
    /// pushes follow the recording. No store is opened.
    #[arg(long, value_name = "CAPTURE",
          conflicts_with_all = ["data", "memory", "users", "require_auth", "check", "repair"])]
    pub replay: Option<PathBuf>,
    /// With --replay: what a request the recording does not hold gets: error (an
    /// error frame, HTTP 404 naming the request) or nearest (the answer of the
    /// recorded request of the same cmd or endpoint with the fewest differing
    /// fields) [default: error]. Each one is reported on stderr and counted in the
    /// summary printed at shutdown.
    #[arg(long, value_name = "error|nearest", requires = "replay")]
    pub unmatched: Option<Unmatched>,
}

/// `--listen` as `bind` takes it: `:PORT` is every interface (0.0.0.0);
/// anything that is not IP:PORT or HOST:PORT is refused with the forms.
fn listen_addr(s: &str) -> anyhow::Result<String> {
    let form = || {
        anyhow::anyhow!(
            "--listen {s}: expected IP:PORT, HOST:PORT or :PORT (every interface), e.g. \
             127.0.0.1:8080 or :8080"
        )
    };
    if let Some(port) = s.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| form())?;
        return Ok(format!("0.0.0.0:{port}"));
    }
    if s.parse::<SocketAddr>().is_ok() {
        return Ok(s.to_owned());
    }
    match s.rsplit_once(':') {
        Some((host, port))
            if !host.is_empty() && !host.contains(':') && port.parse::<u16>().is_ok() =>
        {
            Ok(s.to_owned())
        }
        _ => Err(form()),
    }
}

/// `--users` split into names and passwords (None: to be generated).
fn parse_users(users: &[String]) -> anyhow::Result<Vec<(String, Option<String>)>> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for u in users {
        let (name, password) = match u.split_once(':') {
            Some((n, p)) => (n, Some(p.to_owned())),
            None => (u.as_str(), None),
        };
        if !IdentifyExt::valid_user(name) {
            bail!("--users: '{name}' is not a valid user name (1 to 64 characters, no spaces)");
        }
        if password.as_deref() == Some("") {
            bail!("--users: '{name}' has an empty password (leave out the colon to get one generated)");
        }
        if out.iter().any(|(n, _)| n == name) {
            bail!("--users: '{name}' is named twice");
        }
        out.push((name.to_owned(), password));
    }
    Ok(out)
}

pub fn run(mut args: Args) -> anyhow::Result<ExitCode> {
    args.listen = listen_addr(&args.listen)?;
    let users = parse_users(&args.users)?;
    let names: Vec<String> = users.iter().map(|(n, _)| n.clone()).collect();
    if args.page_size == 0 || args.max_connections == Some(0) || args.backlog == 0 {
        bail!("--page-size, --max-connections and --backlog must be at least 1");
    }
    if args.max_unauthenticated_per_ip == 0 {
        bail!("--max-unauthenticated-per-ip must be at least 1");
    }
    if args.max_frame < 1024 {
        bail!("--max-frame must be at least 1024 bytes");
    }
    if args.check || args.repair {
        return check_or_repair(&args);
    }
    if let Some(capture) = args.replay.clone() {
        return replay(&args, &capture);
    }
    // Whether the address is loopback is known once bound; a name that
    // resolves to loopback (localhost) counts as loopback.
    let open_files = match server::raise_open_file_limit() {
        Ok(n) => Some(n),
        Err(e) => {
            eprintln!("syncscope serve: warning: cannot raise the open-file limit: {e}");
            None
        }
    };
    let max_connections = match (args.max_connections, open_files) {
        (Some(n), Some(limit)) if n as u64 > limit.saturating_sub(server::RESERVED_FDS) => {
            eprintln!(
                "syncscope serve: warning: --max-connections {n} is above the open-file limit \
                 {limit} less {}: accept may fail with \"Too many open files\"",
                server::RESERVED_FDS
            );
            n
        }
        (Some(n), _) => n,
        (None, Some(limit)) => server::default_max_connections(limit),
        (None, None) => 1024,
    };
    let (mut store, what) = if args.memory {
        (Store::memory()?, "in memory".to_owned())
    } else {
        let dir = args
            .data
            .clone()
            .unwrap_or_else(|| PathBuf::from("syncscope-data"));
        let store = Store::open(&dir).map_err(|e| {
            // Damaged stores say what to do themselves; a directory that
            // cannot be made or written needs another one.
            let hint = match e {
                StoreError::Dir { .. } | StoreError::Marker { .. } => {
                    " (give a directory you can write to, or --memory)"
                }
                _ => "",
            };
            anyhow::Error::new(e).context(format!("--data {}{hint}", dir.display()))
        })?;
        let what = store
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        (store, what)
    };
    for u in &names {
        store.user(u, true)?;
    }
    let quiet = args.quiet;
    let mut config = Config {
        max_connections,
        max_frame_len: args.max_frame,
        page_size: args.page_size,
        idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
        auth_timeout: Duration::from_secs(args.auth_timeout.max(1)),
        max_unauthenticated_per_ip: args.max_unauthenticated_per_ip,
        auto_register: names.is_empty(),
        frame_timeout: Duration::from_secs(args.frame_timeout.max(1)),
        test_users: names.clone(),
        web_poll: Duration::from_secs(args.web_poll.max(1)),
        max_media_len: args.max_media,
        max_open_uploads: args.max_open_uploads.max(1),
        upload_ttl: Duration::from_secs(args.upload_ttl.max(1)),
        receipts: args.receipts,
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(c), Some(k)) => Some(
                server::tls::server_config(c, k).map_err(|e| anyhow::anyhow!("--tls-cert: {e}"))?,
            ),
            _ => None,
        },
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
        let listener = server::bind(&args.listen, args.backlog)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr: SocketAddr = listener.local_addr()?;
        let loopback = addr.ip().is_loopback();
        let enforce = args.require_auth || !loopback || users.iter().any(|(_, p)| p.is_some());
        let mut generated = Vec::new();
        let mode = if enforce {
            if users.is_empty() {
                bail!(
                    "identity is enforced ({}): name the users with --users \
                     NAME[:PASSWORD],... (a password is generated for each given without one)",
                    if loopback {
                        "--require-auth"
                    } else {
                        "listening on an address other than loopback"
                    }
                );
            }
            let mut with_passwords = Vec::new();
            for (name, password) in &users {
                let password = match password {
                    Some(p) => p.clone(),
                    None => {
                        let p = server::new_password().map_err(anyhow::Error::msg)?;
                        generated.push((name.clone(), p.clone()));
                        p
                    }
                };
                with_passwords.push((name.clone(), password));
            }
            config.access =
                Access::enforced(with_passwords).with_web_auto_confirm(args.web_auto_confirm);
            format!(
                "identity enforced for {} user(s){}",
                users.len(),
                if args.web_auto_confirm {
                    "; web logins confirmed automatically (--web-auto-confirm)"
                } else {
                    "; web logins confirmed by a device of the user"
                }
            )
        } else {
            "test mode: loopback and no passwords, identity not checked, web logins confirmed \
             automatically"
                .to_owned()
        };
        let shutdown = shutdown_signal()?;
        eprintln!(
            "syncscope serve: listening on {addr} (store {what}; up to {max_connections} \
             connections; {mode})"
        );
        for (name, password) in &generated {
            eprintln!("syncscope serve: password of {name}: {password}");
        }
        if !loopback {
            eprintln!(
                "syncscope serve: warning: listening on {addr}, reachable from other machines \
                 (in clear: no TLS)"
            );
        }
        let store = Arc::new(Mutex::new(store));
        server::run_with(listener, store, config, shutdown).await;
        eprintln!("syncscope serve: stopped");
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `--replay CAPTURE`: the mock server (replay/mock), no store.
fn replay(args: &Args, capture: &std::path::Path) -> anyhow::Result<ExitCode> {
    let (mut opts, _) = schema::options(&[], &[], None)?;
    let mut reader = Reader::open(capture).with_context(|| {
        format!(
            "--replay {}: cannot read it as a capture (pcap or pcapng)",
            capture.display()
        )
    })?;
    let recording = Recording::read(&mut reader, &mut opts, syncscope::flow::Config::default());
    let mock = Mock::new(&recording, opts);
    let ix = mock.indexed.clone();
    if ix.exchanges == 0 {
        bail!(
            "--replay {}: the capture holds no exchange the mock can answer (long-link \
             frames with their answers, or HTTP requests with their responses){}",
            capture.display(),
            if ix.skipped.is_empty() {
                String::new()
            } else {
                format!("; {} sessions of other links skipped", ix.skipped.len())
            }
        );
    }
    let quiet = args.quiet;
    let config = mock::Config {
        unmatched: args.unmatched.unwrap_or_default(),
        max_frame_len: args.max_frame,
        frame_timeout: Duration::from_secs(args.frame_timeout.max(1)),
        idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
        web_poll: Duration::from_secs(args.web_poll.max(1)),
        log: Some(Arc::new(move |e: &mock::Event| {
            if !(quiet && matches!(e, mock::Event::BadInput { .. })) {
                eprintln!("syncscope serve: {e}");
            }
        })),
    };
    let policy = config.unmatched;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let summary = rt.block_on(async move {
        let listener = server::bind(&args.listen, args.backlog)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr: SocketAddr = listener.local_addr()?;
        let shutdown = shutdown_signal()?;
        eprintln!(
            "syncscope serve: listening on {addr} (replaying {}: {} sessions, {} recorded \
             exchanges, {} pushes; unmatched requests: {}; no store)",
            capture.display(),
            ix.sessions,
            ix.exchanges,
            ix.pushes,
            policy.as_str()
        );
        for (conn, link) in &ix.skipped {
            let link = match link {
                Link::Longlink => "long link",
                Link::Mars => "Mars long link",
                Link::Http => "HTTP",
                Link::Shortlink => "MMTLS short link",
                Link::None => "no protocol the replay knows",
            };
            eprintln!(
                "syncscope serve: connection {conn} of the capture ({link}) is not answered: \
                 the mock serves the plain long link and HTTP"
            );
        }
        if !addr.ip().is_loopback() {
            eprintln!(
                "syncscope serve: warning: listening on {addr}, reachable from other machines \
                 (in clear: no TLS)"
            );
        }
        let summary = mock::serve(listener, Arc::new(mock), config, shutdown).await;
        anyhow::Ok(summary)
    })?;
    eprintln!("syncscope serve: stopped; replay summary: {summary}");
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
            "{} users, {} devices, {} messages, {} mailbox entries, {} media objects, {} \
             receipts, {} read marks, {} uploads ({} parts)",
            c.users,
            c.devices,
            c.messages,
            c.mailbox,
            c.media,
            c.receipts,
            c.read_marks,
            c.uploads,
            c.upload_parts
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
