//! Load generator for the reference server (`bench/load.sh`): N long-link
//! connections as N/2 user pairs; each pair's sender sends its share of M
//! text messages to its receiver at a paced total rate; each receiver
//! newsyncs on every newnotify. Reports connections held, messages
//! acknowledged and delivered, delivered messages per second and the
//! send-to-deliver latency (p50/p99/max), and checks exactly-once delivery.
//!
//! ```text
//! cargo run --release --example loadgen -- --server 127.0.0.1:8080 \
//!     [--conns 10000] [--messages 200000] [--rate 20000] [--threads 1] [--json]
//! ```
//!
//! The latency runs from just before a newsendmsg is written to the moment
//! its receiver decoded the newsync page holding it: store commit of the
//! send, the answer, the push, the receiver's newsync (another commit) and
//! its answer. The send instant travels in the content (microseconds since
//! the generator started), so no table is shared between tasks.
//!
//! Exit status: 0 when every acknowledged message was delivered exactly
//! once and nothing failed; 1 otherwise (lost, duplicated, errors); 2 on
//! bad arguments.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use tokio::sync::{watch, Semaphore};
use tokio::time::{sleep_until, timeout, Instant};

use syncscope::body::synckey::SyncKey;
use syncscope::net::client::{Config, Session};

#[derive(Parser, Debug)]
#[command(about = "Long-link load generator for `syncscope serve`")]
struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    server: String,
    /// Connections in all (half senders, half receivers).
    #[arg(long, default_value_t = 10_000)]
    conns: usize,
    /// Messages in all, spread over the senders.
    #[arg(long, default_value_t = 200_000)]
    messages: u64,
    /// Target messages per second in all (0: as fast as acknowledgements
    /// come, one message in flight per sender).
    #[arg(long, default_value_t = 20_000.0)]
    rate: f64,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Seconds to wait for the last deliveries after the last send.
    #[arg(long, default_value_t = 15)]
    drain_secs: u64,
    /// Tokio worker threads of the generator.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// User name prefix (default: from the process id, so runs do not mix).
    #[arg(long)]
    prefix: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Shared tallies.
struct Tally {
    start: Instant,
    acked: Vec<AtomicBool>,
    /// Times each message was delivered (saturates at 255).
    delivered: Vec<AtomicU8>,
    errors: AtomicU64,
    first_errors: Mutex<Vec<String>>,
    first_send_us: AtomicU64,
    last_deliver_us: AtomicU64,
    /// Messages delivered that the generator never sent (bad content).
    foreign: AtomicU64,
}

impl Tally {
    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn error(&self, what: &str, e: impl std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_errors.lock().unwrap_or_else(|p| p.into_inner());
        if first.len() < 5 {
            first.push(format!("{what}: {e}"));
        }
    }
}

#[derive(Debug, serde::Serialize)]
struct Report {
    server: String,
    cores: usize,
    generator_threads: usize,
    connections_target: usize,
    connections_held: usize,
    connect_secs: f64,
    messages_target: u64,
    rate_target: f64,
    acknowledged: u64,
    delivered: u64,
    duplicated: u64,
    lost: u64,
    errors: u64,
    first_errors: Vec<String>,
    send_to_last_delivery_secs: f64,
    delivered_per_sec: f64,
    latency_ms_p50: f64,
    latency_ms_p99: f64,
    latency_ms_p999: f64,
    latency_ms_max: f64,
    generator_max_rss_mib: f64,
    generator_cpu_secs: f64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.conns < 2 || args.messages == 0 || args.rate < 0.0 || args.threads == 0 {
        eprintln!("loadgen: --conns must be at least 2, --messages and --threads at least 1, --rate not negative");
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let report = rt.block_on(run(&args));
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(j) => println!("{j}"),
            Err(e) => eprintln!("loadgen: {e}"),
        }
    } else {
        print_report(&report);
    }
    if report.lost == 0 && report.duplicated == 0 && report.errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn run(args: &Args) -> Report {
    let pairs = args.conns / 2;
    let total = args.messages;
    let prefix = args
        .prefix
        .clone()
        .unwrap_or_else(|| format!("lg{}", std::process::id()));
    let tally = Arc::new(Tally {
        start: Instant::now(),
        acked: (0..total).map(|_| AtomicBool::new(false)).collect(),
        delivered: (0..total).map(|_| AtomicU8::new(0)).collect(),
        errors: AtomicU64::new(0),
        first_errors: Mutex::new(Vec::new()),
        first_send_us: AtomicU64::new(u64::MAX),
        last_deliver_us: AtomicU64::new(0),
        foreign: AtomicU64::new(0),
    });
    let config = |user: String| {
        let mut c = Config::new(args.server.clone(), user);
        c.request_timeout = Duration::from_secs(30);
        c.connect_timeout = Duration::from_secs(30);
        c
    };

    // Connect: receivers first (online before anything is sent to them).
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let t_connect = Instant::now();
    let mut connecting = Vec::with_capacity(pairs * 2);
    for role in ["b", "a"] {
        for i in 0..pairs {
            let cfg = config(format!("{prefix}{role}{i}"));
            let gate = Arc::clone(&gate);
            connecting.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await;
                Session::connect(&cfg, SyncKey::default()).await
            }));
        }
    }
    let mut sessions = Vec::with_capacity(pairs * 2);
    for h in connecting {
        match h.await {
            Ok(Ok(s)) => sessions.push(Some(s)),
            Ok(Err(e)) => {
                tally.error("connect", e);
                sessions.push(None);
            }
            Err(e) => {
                tally.error("connect task", e);
                sessions.push(None);
            }
        }
    }
    let connect_secs = t_connect.elapsed().as_secs_f64();
    let senders = sessions.split_off(pairs);
    let receivers = sessions;

    // Run: receivers sync on every push until told to stop; senders send
    // their share on a paced schedule, then hold their connection.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut recv_tasks = Vec::with_capacity(pairs);
    for s in receivers {
        let tally = Arc::clone(&tally);
        let stop = stop_rx.clone();
        recv_tasks.push(tokio::spawn(async move {
            match s {
                Some(s) => receive(s, &tally, stop).await,
                None => (Vec::new(), false),
            }
        }));
    }
    let interval = if args.rate > 0.0 {
        Some(Duration::from_secs_f64(pairs as f64 / args.rate))
    } else {
        None
    };
    let t0 = Instant::now() + Duration::from_millis(200);
    // Each sender drops its clone of `done_tx` when it has sent its share
    // (it keeps its connection until stop): recv returns None after all.
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut send_tasks = Vec::with_capacity(pairs);
    for (i, s) in senders.into_iter().enumerate() {
        let tally = Arc::clone(&tally);
        let to = format!("{prefix}b{i}");
        let stop = stop_rx.clone();
        let plan = Plan {
            i: i as u64,
            pairs: pairs as u64,
            t0,
            phase: interval.map(|iv| iv.mul_f64(i as f64 / pairs as f64)),
            interval,
        };
        let done = done_tx.clone();
        send_tasks.push(tokio::spawn(async move {
            match s {
                Some(s) => send(s, &tally, &to, plan, done, stop).await,
                None => false,
            }
        }));
    }
    drop(done_tx);
    // Wait for the sends, then for the deliveries (or the drain limit).
    let _ = done_rx.recv().await;
    let mut held = 0;
    let acked = |t: &Tally| t.acked.iter().filter(|a| a.load(Ordering::Relaxed)).count() as u64;
    let delivered_acked = |t: &Tally| {
        t.acked
            .iter()
            .zip(&t.delivered)
            .filter(|(a, d)| a.load(Ordering::Relaxed) && d.load(Ordering::Relaxed) > 0)
            .count() as u64
    };
    let drain_until = Instant::now() + Duration::from_secs(args.drain_secs);
    while Instant::now() < drain_until && delivered_acked(&tally) < acked(&tally) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(true);
    let mut latencies: Vec<u32> = Vec::with_capacity(total as usize);
    for h in recv_tasks {
        if let Ok((l, ok)) = h.await {
            latencies.extend(l);
            held += usize::from(ok);
        }
    }
    for h in send_tasks {
        held += usize::from(h.await.unwrap_or(false));
    }

    let acknowledged = acked(&tally);
    let (mut delivered, mut duplicated, mut lost) = (0, 0, 0);
    for (a, d) in tally.acked.iter().zip(&tally.delivered) {
        let d = d.load(Ordering::Relaxed);
        delivered += u64::from(d > 0);
        duplicated += u64::from(d > 1);
        lost += u64::from(a.load(Ordering::Relaxed) && d == 0);
    }
    let foreign = tally.foreign.load(Ordering::Relaxed);
    if foreign > 0 {
        tally.error(
            "deliveries",
            format!("{foreign} messages the generator did not send"),
        );
    }
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        f64::from(latencies[i]) / 1000.0
    };
    let first = tally.first_send_us.load(Ordering::Relaxed);
    let last = tally.last_deliver_us.load(Ordering::Relaxed);
    let span = last.saturating_sub(first) as f64 / 1e6;
    let errors = tally.errors.load(Ordering::Relaxed);
    let first_errors = tally
        .first_errors
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Report {
        server: args.server.clone(),
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        generator_threads: args.threads,
        connections_target: pairs * 2,
        connections_held: held,
        connect_secs,
        messages_target: total,
        rate_target: args.rate,
        acknowledged,
        delivered,
        duplicated,
        lost,
        errors,
        first_errors,
        send_to_last_delivery_secs: span,
        delivered_per_sec: if span > 0.0 {
            delivered as f64 / span
        } else {
            0.0
        },
        latency_ms_p50: pct(0.50),
        latency_ms_p99: pct(0.99),
        latency_ms_p999: pct(0.999),
        latency_ms_max: pct(1.0),
        generator_max_rss_mib: max_rss_mib(),
        generator_cpu_secs: cpu_secs(),
    }
}

/// What sender `i` of `pairs` sends: messages i, i + pairs, i + 2 pairs,
/// ... below the total, message k at t0 + phase + k * interval (without
/// an interval: back to back).
#[derive(Clone, Copy)]
struct Plan {
    i: u64,
    pairs: u64,
    t0: Instant,
    phase: Option<Duration>,
    interval: Option<Duration>,
}

/// A sender: sends its share, drops `done`, holds the connection until
/// stop. `true` when the connection was still good at the end.
async fn send(
    mut s: Session,
    tally: &Tally,
    to: &str,
    plan: Plan,
    done: tokio::sync::mpsc::Sender<()>,
    mut stop: watch::Receiver<bool>,
) -> bool {
    let total = tally.acked.len() as u64;
    let mut ok = true;
    let mut k = 0u64;
    while let Some(id) = Some(plan.i + k * plan.pairs).filter(|&id| id < total) {
        if let (Some(phase), Some(iv)) = (plan.phase, plan.interval) {
            sleep_until(plan.t0 + phase + iv.mul_f64(k as f64)).await;
        }
        let now = tally.now_us();
        tally.first_send_us.fetch_min(now, Ordering::Relaxed);
        match s.send(to, &format!("{id} {now}"), id + 1).await {
            Ok(_) => tally.acked[id as usize].store(true, Ordering::Relaxed),
            Err(e) => {
                tally.error("newsendmsg", e);
                ok = false;
                break;
            }
        }
        k += 1;
    }
    drop(done);
    let _ = stop.wait_for(|&v| v).await;
    drop(s);
    ok
}

/// A receiver: newsync on every push until ContinueFlag is 0; records
/// each message's latency. Returns the latencies (microseconds) and
/// whether the connection stayed good.
async fn receive(
    mut s: Session,
    tally: &Tally,
    mut stop: watch::Receiver<bool>,
) -> (Vec<u32>, bool) {
    let mut lat = Vec::new();
    loop {
        tokio::select! {
            r = s.wait_push() => {
                if let Err(e) = r {
                    tally.error("waiting for a push", e);
                    return (lat, false);
                }
            }
            _ = stop.wait_for(|&v| v) => return (lat, true),
        }
        loop {
            let page = match timeout(Duration::from_secs(60), s.sync()).await {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => {
                    tally.error("newsync", e);
                    return (lat, false);
                }
                Err(_) => {
                    tally.error("newsync", "no answer within 60 s");
                    return (lat, false);
                }
            };
            let now = tally.now_us();
            for m in &page.messages {
                let parsed = m
                    .content
                    .split_once(' ')
                    .and_then(|(id, t)| Some((id.parse::<u64>().ok()?, t.parse::<u64>().ok()?)));
                let Some((id, sent)) = parsed.filter(|(id, _)| *id < tally.acked.len() as u64)
                else {
                    tally.foreign.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let slot = &tally.delivered[id as usize];
                let _ = slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                    Some(c.saturating_add(1))
                });
                lat.push(u32::try_from(now.saturating_sub(sent)).unwrap_or(u32::MAX));
                tally.last_deliver_us.fetch_max(now, Ordering::Relaxed);
            }
            s.adopt(page.synckey);
            if !page.more {
                break;
            }
        }
    }
}

/// Peak resident memory of this process (VmHWM), in MiB; 0 if unknown.
fn max_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU time of this process's threads (schedstat, nanoseconds), in
/// seconds; 0 if unknown.
fn cpu_secs() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let ns: u64 = tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 / 1e9
}

fn print_report(r: &Report) {
    println!(
        "loadgen against {} ({} cores shared by server and generator; generator threads: {})",
        r.server, r.cores, r.generator_threads
    );
    println!(
        "connections  held {} of {} (all opened in {:.1} s)",
        r.connections_held, r.connections_target, r.connect_secs
    );
    println!(
        "messages     target {} at {} msg/s; acknowledged {}, delivered {}, duplicated {}, lost {}",
        r.messages_target,
        if r.rate_target > 0.0 {
            format!("{:.0}", r.rate_target)
        } else {
            "max".to_owned()
        },
        r.acknowledged,
        r.delivered,
        r.duplicated,
        r.lost
    );
    println!(
        "throughput   {:.0} msg/s delivered ({:.2} s from first send to last delivery)",
        r.delivered_per_sec, r.send_to_last_delivery_secs
    );
    println!(
        "latency      send to deliver: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        r.latency_ms_p50, r.latency_ms_p99, r.latency_ms_p999, r.latency_ms_max
    );
    println!(
        "generator    peak RSS {:.0} MiB, CPU {:.1} s; errors {}",
        r.generator_max_rss_mib, r.generator_cpu_secs, r.errors
    );
    for e in &r.first_errors {
        println!("  error: {e}");
    }
}
