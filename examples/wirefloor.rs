//! The floor under `bench/load.sh`: the long link's message pattern with
//! nothing else. Per message, as with `syncscope serve` and `loadgen`:
//! the sender writes a send frame and reads its answer; the server writes
//! a push (cmd 24) to the receiver's connection; the receiver writes a sync
//! frame and reads the answer holding the message: five frames on two
//! loopback TCP connections, over the same codec ([`syncscope::net::frame`]),
//! between two processes on the same cores.
//!
//! There is no protobuf, no store, no user, no SyncKey: the server keeps
//! each pair's undelivered bodies in memory. Whatever this reaches on a
//! machine bounds what any server speaking the protocol can reach there
//! with its load generator beside it; what it costs per message is mostly
//! the kernel's loopback TCP (see `bench/floor.sh`).
//!
//! ```text
//! wirefloor serve --listen 127.0.0.1:18092
//! wirefloor load --server 127.0.0.1:18092 --conns 10000 --messages 200000 --rate 20000
//! ```

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::time::{sleep_until, Instant};

use syncscope::net::frame::{Connection, DEFAULT_MAX_FRAME_LEN};
use syncscope::proto::commands::{response, IDENTIFY, NEWNOTIFY, NEWSENDMSG, NEWSYNC, SEQ_PUSH};

/// Body sizes close to the real server's: newsendmsg request and answer,
/// newsync request, one AddMsg.
const SEND_LEN: usize = 64;
const ACK_LEN: usize = 48;
const SYNC_LEN: usize = 24;

#[derive(Parser)]
#[command(about = "Floor of the long link's message pattern on this machine")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The minimal server.
    Serve {
        #[arg(long, default_value = "127.0.0.1:18092")]
        listen: String,
    },
    /// The load, shaped like `loadgen`'s.
    Load {
        #[arg(long, default_value = "127.0.0.1:18092")]
        server: String,
        /// Connections in all (half senders, half receivers).
        #[arg(long, default_value_t = 10_000)]
        conns: usize,
        /// Messages in all.
        #[arg(long, default_value_t = 200_000)]
        messages: u64,
        /// Target messages per second (0: back to back, one in flight
        /// per sender).
        #[arg(long, default_value_t = 20_000.0)]
        rate: f64,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(match args.cmd {
            Cmd::Serve { .. } => std::thread::available_parallelism().map_or(2, |n| n.get()),
            Cmd::Load { .. } => 1,
        })
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wirefloor: cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    match args.cmd {
        Cmd::Serve { listen } => rt.block_on(serve(&listen)),
        Cmd::Load {
            server,
            conns,
            messages,
            rate,
        } => rt.block_on(load(&server, conns, messages, rate)),
    }
}

/// A pair's undelivered bodies and its receiver's push signal.
#[derive(Default)]
struct Pair {
    queue: Mutex<Vec<Vec<u8>>>,
    notify: Arc<Notify>,
}

type Pairs = Arc<Mutex<HashMap<u32, Arc<Pair>>>>;

async fn serve(listen: &str) -> ExitCode {
    let listener = match TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("wirefloor: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("wirefloor: listening on {listen}");
    let pairs: Pairs = Arc::default();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let pairs = Arc::clone(&pairs);
        tokio::spawn(async move {
            let _ = connection(Connection::new(stream, DEFAULT_MAX_FRAME_LEN), &pairs).await;
        });
    }
}

/// One connection: hello (role and pair), then sends or syncs.
async fn connection(mut conn: Connection<TcpStream>, pairs: &Pairs) -> Option<()> {
    let hello = conn.read_frame().await.ok()??;
    let (&role, id) = hello.body.split_first()?;
    let id = u32::from_be_bytes(id.try_into().ok()?);
    let pair = Arc::clone(
        pairs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id)
            .or_default(),
    );
    if role == b's' {
        while let Some(f) = conn.read_frame().await.ok()? {
            pair.queue
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(f.body);
            pair.notify.notify_one();
            conn.write_frame(response(f.header.cmd), f.header.seq, &[0; ACK_LEN])
                .await
                .ok()?;
        }
        return Some(());
    }
    loop {
        tokio::select! {
            r = conn.read_frame() => {
                let f = r.ok()??;
                let bodies = std::mem::take(&mut *pair.queue.lock().unwrap_or_else(|p| p.into_inner()));
                conn.write_frame(response(f.header.cmd), f.header.seq, &bodies.concat())
                    .await
                    .ok()?;
            }
            _ = pair.notify.notified() => conn.write_frame(NEWNOTIFY, SEQ_PUSH, &[]).await.ok()?,
        }
    }
}

/// Shared tallies of the load.
struct Tally {
    start: Instant,
    /// The first send and the last delivery, microseconds since `start`.
    first_send: AtomicU64,
    last_delivery: AtomicU64,
    delivered: AtomicU64,
    errors: AtomicU64,
}

impl Tally {
    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }
}

async fn open(server: &str, role: u8, id: u32) -> std::io::Result<Connection<TcpStream>> {
    let stream = TcpStream::connect(server).await?;
    stream.set_nodelay(true)?;
    let mut conn = Connection::new(stream, DEFAULT_MAX_FRAME_LEN);
    let mut hello = vec![role];
    hello.extend_from_slice(&id.to_be_bytes());
    // The hello stands in for identify: role and pair instead of a SyncKey.
    conn.write_frame(IDENTIFY, 1, &hello).await?;
    Ok(conn)
}

async fn load(server: &str, conns: usize, messages: u64, rate: f64) -> ExitCode {
    let pairs = (conns / 2).max(1);
    let tally = Arc::new(Tally {
        start: Instant::now(),
        first_send: AtomicU64::new(u64::MAX),
        last_delivery: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });
    let gate = Arc::new(Semaphore::new(256));
    let mut opening = Vec::new();
    for role in [b'r', b's'] {
        for i in 0..pairs {
            let (gate, server) = (Arc::clone(&gate), server.to_owned());
            opening.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await;
                open(&server, role, i as u32).await
            }));
        }
    }
    let mut opened = Vec::new();
    for h in opening {
        match h.await {
            Ok(Ok(c)) => opened.push(c),
            Ok(Err(e)) => {
                eprintln!("wirefloor: connect: {e}");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("wirefloor: connect task: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let senders = opened.split_off(pairs);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut receivers = Vec::new();
    for conn in opened {
        let (tally, stop) = (Arc::clone(&tally), stop_rx.clone());
        receivers.push(tokio::spawn(receive(conn, tally, stop)));
    }
    let interval = (rate > 0.0).then(|| Duration::from_secs_f64(pairs as f64 / rate));
    let t0 = Instant::now() + Duration::from_millis(200);
    let mut sending = Vec::new();
    for (i, conn) in senders.into_iter().enumerate() {
        let tally = Arc::clone(&tally);
        let share = messages / pairs as u64 + u64::from((i as u64) < messages % pairs as u64);
        let phase = interval.map(|iv| iv.mul_f64(i as f64 / pairs as f64));
        sending.push(tokio::spawn(async move {
            send(conn, &tally, share, t0, phase, interval).await
        }));
    }
    let mut sent = 0;
    let mut held = Vec::new();
    for h in sending {
        if let Ok(Some(conn)) = h.await {
            sent += 1;
            held.push(conn);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while tally.delivered.load(Ordering::Relaxed) < messages && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(true);
    let mut lat = Vec::new();
    for h in receivers {
        if let Ok(l) = h.await {
            lat.extend(l);
        }
    }
    lat.sort_unstable();
    let delivered = tally.delivered.load(Ordering::Relaxed);
    let span_us = tally
        .last_delivery
        .load(Ordering::Relaxed)
        .saturating_sub(tally.first_send.load(Ordering::Relaxed))
        .max(1);
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |&us| us as f64 / 1000.0)
    };
    let (user, sys) = rusage();
    println!(
        "wirefloor    {conns} connections ({sent} senders done), {delivered} of {messages} delivered at a target of {rate:.0} msg/s"
    );
    println!(
        "throughput   {:.0} msg/s delivered; latency p50 {:.2} ms, p99 {:.2} ms",
        delivered as f64 / (span_us as f64 / 1e6),
        pct(0.5),
        pct(0.99)
    );
    println!(
        "generator    CPU user {user:.2} s, sys {sys:.2} s; errors {}",
        tally.errors.load(Ordering::Relaxed)
    );
    drop(held);
    if delivered == messages && tally.errors.load(Ordering::Relaxed) == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn send(
    mut conn: Connection<TcpStream>,
    tally: &Tally,
    share: u64,
    t0: Instant,
    phase: Option<Duration>,
    interval: Option<Duration>,
) -> Option<Connection<TcpStream>> {
    let mut body = [0u8; SEND_LEN];
    for k in 0..share {
        if let (Some(phase), Some(iv)) = (phase, interval) {
            sleep_until(t0 + phase + iv.mul_f64(k as f64)).await;
        }
        let now = tally.now_us();
        tally.first_send.fetch_min(now, Ordering::Relaxed);
        body[..8].copy_from_slice(&now.to_be_bytes());
        let ok = conn
            .write_frame(NEWSENDMSG, k as u32 + 1, &body)
            .await
            .is_ok()
            && matches!(conn.read_frame().await, Ok(Some(f)) if f.header.cmd == response(NEWSENDMSG));
        if !ok {
            tally.errors.fetch_add(1, Ordering::Relaxed);
            return None;
        }
    }
    Some(conn)
}

async fn receive(
    mut conn: Connection<TcpStream>,
    tally: Arc<Tally>,
    mut stop: watch::Receiver<bool>,
) -> Vec<u64> {
    let mut lat = Vec::new();
    let mut seq = 0u32;
    loop {
        let f = tokio::select! {
            r = conn.read_frame() => match r {
                Ok(Some(f)) => f,
                _ => {
                    tally.errors.fetch_add(1, Ordering::Relaxed);
                    return lat;
                }
            },
            _ = stop.wait_for(|&v| v) => return lat,
        };
        match f.header.cmd {
            NEWNOTIFY => {
                seq += 1;
                if conn
                    .write_frame(NEWSYNC, seq, &[0; SYNC_LEN])
                    .await
                    .is_err()
                {
                    tally.errors.fetch_add(1, Ordering::Relaxed);
                    return lat;
                }
            }
            c if c == response(NEWSYNC) => {
                let now = tally.now_us();
                for m in f.body.chunks_exact(SEND_LEN) {
                    let sent = u64::from_be_bytes(m[..8].try_into().unwrap_or_default());
                    lat.push(now.saturating_sub(sent));
                    tally.delivered.fetch_add(1, Ordering::Relaxed);
                }
                tally.last_delivery.fetch_max(now, Ordering::Relaxed);
            }
            _ => {
                tally.errors.fetch_add(1, Ordering::Relaxed);
                return lat;
            }
        }
    }
}

/// This process's user and system CPU seconds (/proc/self/stat).
fn rusage() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name's closing parenthesis: utime is the
    // 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Clock ticks: USER_HZ, 100 on Linux whatever the kernel's HZ.
    let tick = 100.0;
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / tick;
    (get(11), get(12))
}
