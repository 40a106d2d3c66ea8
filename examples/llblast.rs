//! Long-link load generator on loopback, for `bench/sniff-throughput.sh`:
//! a sink server on 127.0.0.1:PORT answers every request with cmd + 10^9 and
//! the same seq; N client connections send requests at a target total rate
//! (one `write`, so one TCP segment, per frame).
//!
//! ```text
//! cargo run --release --example llblast -- --port 18080 --conns 4 --rate 50000 --secs 5 [--body 32]
//! ```
//!
//! Prints one line: `requests R responses S elapsed_s E` (frames on the wire = R + S).
//! Only loopback is used; the run is bounded by --secs plus a 5 s drain.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use syncscope::proto::commands::{response, NEWSYNC};
use syncscope::proto::longlink::{self, Check, Header, HEADER_LEN};

struct Opts {
    port: u16,
    conns: usize,
    rate: f64,
    secs: f64,
    body: usize,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        port: 18080,
        conns: 4,
        rate: 10_000.0,
        secs: 5.0,
        body: 32,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || args.next().ok_or(format!("{a} needs a value"));
        let bad = |e: &dyn std::fmt::Display| format!("{a}: {e}");
        match a.as_str() {
            "--port" => o.port = v()?.parse().map_err(|e| bad(&e))?,
            "--conns" => o.conns = v()?.parse().map_err(|e| bad(&e))?,
            "--rate" => o.rate = v()?.parse().map_err(|e| bad(&e))?,
            "--secs" => o.secs = v()?.parse().map_err(|e| bad(&e))?,
            "--body" => o.body = v()?.parse().map_err(|e| bad(&e))?,
            _ => {
                return Err(format!(
                    "unknown argument {a}; usage: llblast --port P --conns N --rate REQUESTS_PER_S \
                     --secs S [--body BYTES]"
                ))
            }
        }
    }
    if o.conns == 0 || o.rate <= 0.0 || !(o.secs > 0.0 && o.secs <= 600.0) {
        return Err("--conns and --rate must be positive, --secs in (0, 600]".into());
    }
    Ok(o)
}

/// Splits whole frames off `buf`, calling `f` with each header; keeps the rest.
fn frames(buf: &mut Vec<u8>, mut f: impl FnMut(&Header)) {
    let mut at = 0;
    loop {
        match longlink::check(&buf[at..], u32::MAX) {
            Check::Complete(h, len) => {
                f(&h);
                at += len;
            }
            Check::Incomplete(_) => break,
            Check::Invalid(e) => panic!("bad frame header at {at}: {e}"),
        }
    }
    buf.drain(..at);
}

/// One server connection: answers each request (responses of a read go out in one write).
fn serve(mut s: TcpStream, responses: Arc<AtomicU64>) {
    s.set_nodelay(true).ok();
    let mut buf = Vec::with_capacity(1 << 16);
    let mut chunk = vec![0u8; 1 << 16];
    let mut out = Vec::with_capacity(1 << 16);
    loop {
        let n = match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut k = 0;
        frames(&mut buf, |h| {
            out.extend_from_slice(&Header::new(response(h.cmd), h.seq, 8).emit());
            out.extend_from_slice(&h.seq.to_be_bytes());
            out.extend_from_slice(&[0, 0, 0, 0]);
            k += 1;
        });
        if !out.is_empty() {
            if s.write_all(&out).is_err() {
                break;
            }
            out.clear();
            responses.fetch_add(k, Ordering::Relaxed);
        }
    }
    s.shutdown(Shutdown::Write).ok();
}

fn main() {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("llblast: {e}");
            std::process::exit(2);
        }
    };
    let listener = TcpListener::bind(("127.0.0.1", o.port)).unwrap_or_else(|e| {
        eprintln!("llblast: cannot listen on 127.0.0.1:{}: {e}", o.port);
        std::process::exit(2);
    });
    let responses = Arc::new(AtomicU64::new(0));
    let conns = o.conns;
    let server = {
        let responses = responses.clone();
        thread::spawn(move || {
            let mut handles = Vec::new();
            for _ in 0..conns {
                let Ok((s, _)) = listener.accept() else { break };
                let r = responses.clone();
                handles.push(thread::spawn(move || serve(s, r)));
            }
            for h in handles {
                h.join().ok();
            }
        })
    };

    let per_conn = o.rate / o.conns as f64;
    let run = Duration::from_secs_f64(o.secs);
    let body: Vec<u8> = (0..o.body).map(|i| (i % 251) as u8).collect();
    let received = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut clients = Vec::new();
    for c in 0..o.conns {
        let body = body.clone();
        let received = received.clone();
        let port = o.port;
        clients.push(thread::spawn(move || -> u64 {
            let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            s.set_nodelay(true).ok();
            let mut r = s.try_clone().expect("clone");
            let reader = thread::spawn(move || {
                r.set_read_timeout(Some(Duration::from_secs(5))).ok();
                let mut buf = Vec::with_capacity(1 << 16);
                let mut chunk = vec![0u8; 1 << 16];
                while let Ok(n) = r.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let mut k = 0;
                    frames(&mut buf, |_| k += 1);
                    received.fetch_add(k, Ordering::Relaxed);
                }
            });
            let mut w = s;
            let mut frame = Vec::with_capacity(HEADER_LEN + body.len());
            let mut sent = 0u64;
            let cmd = NEWSYNC + c as u32;
            loop {
                let t = start.elapsed();
                if t >= run {
                    break;
                }
                let due = (t.as_secs_f64() * per_conn) as u64;
                // Catch up at most 256 frames at once: no huge bursts after a stall.
                let mut burst = 0;
                while sent < due && burst < 256 {
                    sent += 1;
                    burst += 1;
                    let seq = (sent % 0xFFFF_FFF0) as u32 + 1;
                    frame.clear();
                    frame.extend_from_slice(&Header::new(cmd, seq, body.len()).emit());
                    frame.extend_from_slice(&body);
                    if w.write_all(&frame).is_err() {
                        return sent;
                    }
                }
                if sent >= due {
                    thread::sleep(Duration::from_micros(200));
                }
            }
            w.shutdown(Shutdown::Write).ok();
            reader.join().ok();
            sent
        }));
    }
    let requests: u64 = clients.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    let elapsed = start.elapsed().as_secs_f64().min(o.secs);
    server.join().ok();
    println!(
        "requests {requests} responses {} elapsed_s {elapsed:.3} received {}",
        responses.load(Ordering::Relaxed),
        received.load(Ordering::Relaxed)
    );
}
