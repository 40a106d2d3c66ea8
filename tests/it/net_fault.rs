//! Fault test for the reference server, through the real binary: four
//! users exchange a few thousand messages through a proxy that cuts
//! connections at random (and sometimes swallows a reply, so an ack is
//! lost after the server stored the message), while the `syncscope serve`
//! process is killed with SIGKILL and restarted on the same data directory
//! and port. Every send is retried with the same ClientMsgId until it is
//! acknowledged. At the end every device of every user drains its mailbox
//! with newsync, and the test checks that every acknowledged message
//! reached every device of its recipient (and the sender's other devices)
//! exactly once, in order per conversation. Every wait is bounded.

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
use tokio::time::{sleep, timeout, Instant};

use syncscope::body::synckey::SyncKey;
use syncscope::net::client::{self, ClientError, Session};
use syncscope::net::messages::ChatMessage;
use syncscope::net::store::Store;

const USERS: [&str; 4] = ["u0", "u1", "u2", "u3"];
/// Messages in all (each user sends a quarter).
const MESSAGES: usize = 2000;
/// Server kills (SIGKILL), spread over the run.
const KILLS: usize = 3;
/// Chance, per mille, that the proxy swallows a chunk from the server and
/// cuts the connection (a lost ack or a lost newsync answer).
const LOST_REPLY_PER_MILLE: u64 = 8;
/// The whole exchange must be over by then.
const DEADLINE: Duration = Duration::from_secs(45);
/// Seed of every random choice; `SYNCSCOPE_FAULT_SEED` overrides it.
const SEED: u64 = 0x005e_ed0f_fa17;

/// A tiny xorshift64 (no RNG crate needed).
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        XorShift(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

fn seed() -> u64 {
    std::env::var("SYNCSCOPE_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED)
}

// ---------------------------------------------------------------------------
// The server process

/// `syncscope serve` on a fixed port and data directory; killed on drop.
struct ServerProc {
    port: u16,
    data: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    /// "listening on" lines expected in the log so far.
    starts: usize,
}

impl ServerProc {
    fn spawn(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("server log");
        let child = Command::new(env!("CARGO_BIN_EXE_syncscope"))
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data")
            .arg(&self.data)
            .arg("--users")
            .arg(USERS.join(","))
            .arg("-q")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn syncscope serve");
        self.child = Some(child);
        self.starts += 1;
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Starts the server and waits until it listens (a start that fails,
    /// e.g. a port still busy, is tried again a few times).
    async fn start(&mut self) {
        for _ in 0..5 {
            self.spawn();
            let limit = Instant::now() + Duration::from_secs(10);
            loop {
                if self.log_text().matches("listening on").count() >= self.starts {
                    return;
                }
                let exited = self
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().expect("try_wait"));
                if exited.is_some() {
                    self.child = None;
                    break;
                }
                assert!(
                    Instant::now() < limit,
                    "server did not start within 10 s; log:\n{}",
                    self.log_text()
                );
                sleep(Duration::from_millis(10)).await;
            }
            // It exited before listening: not a start.
            self.starts -= 1;
            sleep(Duration::from_millis(200)).await;
        }
        panic!("the server does not start; log:\n{}", self.log_text());
    }

    /// SIGKILL (what `Child::kill` sends on Unix), then reap.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

// ---------------------------------------------------------------------------
// The cutting proxy

#[derive(Default)]
struct Proxy {
    conns: Mutex<BTreeMap<u64, AbortHandle>>,
    next_id: AtomicU64,
    rng: Mutex<Option<XorShift>>,
    /// Faults on (off for the final drain).
    chaos: AtomicBool,
    cuts: AtomicUsize,
    lost_replies: AtomicUsize,
}

impl Proxy {
    fn lose_reply(&self) -> bool {
        self.chaos.load(Ordering::Relaxed)
            && self
                .rng
                .lock()
                .unwrap()
                .as_mut()
                .is_some_and(|r| r.chance(LOST_REPLY_PER_MILLE))
    }

    /// Cuts one live connection chosen by `rng`.
    fn cut_one(&self, rng: &mut XorShift) {
        let mut conns = self.conns.lock().unwrap();
        conns.retain(|_, h| !h.is_finished());
        if conns.is_empty() {
            return;
        }
        let n = rng.below(conns.len() as u64) as usize;
        let id = *conns.keys().nth(n).expect("a connection");
        if let Some(h) = conns.remove(&id) {
            h.abort();
            self.cuts.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn run_proxy(listener: TcpListener, upstream: SocketAddr, proxy: Arc<Proxy>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let id = proxy.next_id.fetch_add(1, Ordering::Relaxed);
        let p = Arc::clone(&proxy);
        let task = tokio::spawn(async move {
            pipe(client, upstream, &p).await;
        });
        proxy.conns.lock().unwrap().insert(id, task.abort_handle());
    }
}

async fn pipe(client: TcpStream, upstream: SocketAddr, proxy: &Proxy) {
    // The server may be down (killed): then the client sees a close.
    let Ok(Ok(server)) = timeout(Duration::from_secs(2), TcpStream::connect(upstream)).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async {
        let _ = tokio::io::copy(&mut cr, &mut sw).await;
    };
    let down = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if proxy.lose_reply() {
                proxy.lost_replies.fetch_add(1, Ordering::Relaxed);
                return;
            }
            if cw.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

// ---------------------------------------------------------------------------
// Clients

/// One acknowledged send.
#[derive(Debug, Clone)]
struct Acked {
    from: usize,
    to: usize,
    /// Position in the sender's sequence (sends are one at a time).
    index: usize,
    cid: u64,
    msg_id: u64,
}

#[derive(Default)]
struct Stats {
    attempts: AtomicUsize,
    acked: AtomicUsize,
    resent: AtomicUsize,
    reconnects: AtomicUsize,
}

fn config(addr: &str, user: &str, device: &str) -> client::Config {
    let mut c = client::Config::new(addr, user);
    c.device = device.into();
    c.connect_timeout = Duration::from_secs(2);
    c.request_timeout = Duration::from_secs(2);
    c
}

fn check_transient(e: &ClientError, who: &str) {
    assert!(!e.is_permanent(), "{who}: permanent refusal: {e}");
}

/// Sends `n` messages from user `from`, one at a time, each retried with
/// the same ClientMsgId until acknowledged.
async fn sender(
    addr: String,
    from: usize,
    n: usize,
    seed: u64,
    stats: Arc<Stats>,
    deadline: Instant,
) -> Vec<Acked> {
    let user = USERS[from];
    let cfg = config(&addr, user, "phone");
    let mut rng = XorShift::new(seed);
    let mut session: Option<Session> = None;
    let mut acked = Vec::with_capacity(n);
    for index in 0..n {
        let to = (from + 1 + rng.below(USERS.len() as u64 - 1) as usize) % USERS.len();
        let cid = ((from as u64 + 1) << 32) | (index as u64 + 1);
        let text = format!("{user}->{} #{index}", USERS[to]);
        let mut tries = 0;
        let ack = loop {
            assert!(
                Instant::now() < deadline,
                "{user}: message {index} not acknowledged before the deadline"
            );
            let s = match &mut session {
                Some(s) => s,
                None => match Session::connect(&cfg, SyncKey::default()).await {
                    Ok(s) => session.insert(s),
                    Err(e) => {
                        check_transient(&e, user);
                        stats.reconnects.fetch_add(1, Ordering::Relaxed);
                        sleep(Duration::from_millis(10 + rng.below(20))).await;
                        continue;
                    }
                },
            };
            tries += 1;
            stats.attempts.fetch_add(1, Ordering::Relaxed);
            match s.send(USERS[to], &text, cid).await {
                Ok(ack) => break ack,
                Err(e) => {
                    check_transient(&e, user);
                    session = None;
                    sleep(Duration::from_millis(5 + rng.below(10))).await;
                }
            }
        };
        if tries > 1 {
            stats.resent.fetch_add(1, Ordering::Relaxed);
        }
        assert_eq!(
            ack.client_msg_id,
            cid.to_string(),
            "{user}: ack for another id"
        );
        stats.acked.fetch_add(1, Ordering::Relaxed);
        acked.push(Acked {
            from,
            to,
            index,
            cid,
            msg_id: ack.msg_id,
        });
    }
    acked
}

/// A device and everything newsync handed it.
struct Device {
    user: usize,
    device: &'static str,
    key: SyncKey,
    got: Vec<ChatMessage>,
}

impl Device {
    fn new(user: usize, device: &'static str) -> Device {
        Device {
            user,
            device,
            key: SyncKey::default(),
            got: Vec::new(),
        }
    }
}

/// newsync until ContinueFlag is 0; each page is recorded, then its key
/// is kept (and presented by the next newsync or identify).
async fn sync_pages(s: &mut Session, d: &mut Device) -> Result<usize, ClientError> {
    let mut n = 0;
    loop {
        let page = s.sync().await?;
        n += page.messages.len();
        d.got.extend(page.messages);
        s.adopt(page.synckey.clone());
        d.key = page.synckey;
        if !page.more {
            return Ok(n);
        }
    }
}

/// A device that stays online through the faults: syncs on every push
/// (and every 200 ms), reconnects with the key it holds.
async fn live_receiver(
    addr: String,
    mut d: Device,
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
) -> Device {
    let cfg = config(&addr, USERS[d.user], d.device);
    while !stop.load(Ordering::Relaxed) {
        let mut s = match Session::connect(&cfg, d.key.clone()).await {
            Ok(s) => s,
            Err(e) => {
                check_transient(&e, d.device);
                stats.reconnects.fetch_add(1, Ordering::Relaxed);
                sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        while !stop.load(Ordering::Relaxed) {
            if let Err(e) = sync_pages(&mut s, &mut d).await {
                check_transient(&e, d.device);
                break;
            }
            match timeout(Duration::from_millis(200), s.wait_push()).await {
                Ok(Ok(())) | Err(_) => {}
                Ok(Err(e)) => {
                    check_transient(&e, d.device);
                    break;
                }
            }
        }
    }
    d
}

/// The final drain (no faults): newsync until nothing is left, then once
/// more to confirm the last key, which must bring nothing.
async fn drain(addr: &str, d: &mut Device) {
    let cfg = config(addr, USERS[d.user], d.device);
    let what = format!("{}/{}", USERS[d.user], d.device);
    let mut s = timeout(
        Duration::from_secs(10),
        Session::connect(&cfg, d.key.clone()),
    )
    .await
    .unwrap_or_else(|_| panic!("{what}: connect timed out"))
    .unwrap_or_else(|e| panic!("{what}: connect: {e}"));
    timeout(Duration::from_secs(20), sync_pages(&mut s, d))
        .await
        .unwrap_or_else(|_| panic!("{what}: drain timed out"))
        .unwrap_or_else(|e| panic!("{what}: newsync: {e}"));
    let last = s
        .sync()
        .await
        .unwrap_or_else(|e| panic!("{what}: newsync: {e}"));
    assert!(
        last.messages.is_empty() && !last.more,
        "{what}: data left after draining: {} messages",
        last.messages.len()
    );
}

// ---------------------------------------------------------------------------
// Checking

#[derive(Debug, Default)]
struct Tally {
    expected: usize,
    delivered: usize,
    duplicates: usize,
    missing: usize,
    /// Delivered but never acknowledged, or not meant for the device.
    unexpected: usize,
    wrong_msg_id: usize,
    out_of_order: usize,
}

fn check_device(
    d: &Device,
    acked: &HashMap<u64, Acked>,
    t: &mut Tally,
    problems: &mut Vec<String>,
) {
    let who = format!("{}/{}", USERS[d.user], d.device);
    // What the device must get: everything sent to its user, and what its
    // user sent from another device (all sends come from "phone").
    let mut want: BTreeMap<u64, usize> = acked
        .values()
        .filter(|a| a.to == d.user || (a.from == d.user && d.device != "phone"))
        .map(|a| (a.cid, 0))
        .collect();
    t.expected += want.len();
    // Last position and MsgId seen per conversation (sender, recipient).
    let mut last: HashMap<(usize, usize), (usize, u64)> = HashMap::new();
    for m in &d.got {
        t.delivered += 1;
        let a = m
            .client_msg_id
            .as_deref()
            .and_then(|c| c.parse::<u64>().ok())
            .and_then(|cid| acked.get(&cid))
            .filter(|a| USERS[a.from] == m.from);
        let Some(a) = a else {
            t.unexpected += 1;
            problems.push(format!("{who}: unexpected {m:?}"));
            continue;
        };
        let Some(count) = want.get_mut(&a.cid) else {
            t.unexpected += 1;
            problems.push(format!("{who}: not meant for this device: {m:?}"));
            continue;
        };
        *count += 1;
        if *count > 1 {
            t.duplicates += 1;
            problems.push(format!("{who}: duplicate {m:?}"));
            continue;
        }
        if m.msg_id != a.msg_id || m.to != USERS[a.to] {
            t.wrong_msg_id += 1;
            problems.push(format!("{who}: {m:?} acknowledged as {a:?}"));
        }
        let conv = (a.from, a.to);
        if let Some(&(index, msg_id)) = last.get(&conv) {
            if a.index <= index || m.msg_id <= msg_id {
                t.out_of_order += 1;
                problems.push(format!(
                    "{who}: {m:?} (#{}) after #{index} (MsgId {msg_id})",
                    a.index
                ));
            }
        }
        last.insert(conv, (a.index, m.msg_id));
    }
    for (cid, count) in want {
        if count == 0 {
            t.missing += 1;
            problems.push(format!("{who}: missing {:?}", acked[&cid]));
        }
    }
}

// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_cut_lose_and_duplicate_nothing() {
    let started = Instant::now();
    let deadline = started + DEADLINE;
    let seed = seed();
    let mut rng = XorShift::new(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = ServerProc {
        port: free_port(),
        data: dir.path().join("data"),
        log: dir.path().join("serve.log"),
        child: None,
        starts: 0,
    };
    server.start().await;
    let upstream: SocketAddr = format!("127.0.0.1:{}", server.port).parse().unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let proxy_addr = listener.local_addr().unwrap().to_string();
    let proxy = Arc::new(Proxy::default());
    *proxy.rng.lock().unwrap() = Some(XorShift::new(rng.next()));
    proxy.chaos.store(true, Ordering::Relaxed);
    let proxy_task = tokio::spawn(run_proxy(listener, upstream, Arc::clone(&proxy)));

    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let receivers: Vec<_> = (0..USERS.len())
        .map(|u| {
            tokio::spawn(live_receiver(
                proxy_addr.clone(),
                Device::new(u, "pc"),
                Arc::clone(&stop),
                Arc::clone(&stats),
            ))
        })
        .collect();
    let per_user = MESSAGES / USERS.len();
    let senders: Vec<_> = (0..USERS.len())
        .map(|u| {
            tokio::spawn(sender(
                proxy_addr.clone(),
                u,
                per_user,
                rng.next(),
                Arc::clone(&stats),
                deadline,
            ))
        })
        .collect();

    // Faults until every sender is done: a cut every 5 to 40 ms, and
    // KILLS server kills spread over the run.
    let total = per_user * USERS.len();
    let mut restarts = 0;
    while !senders.iter().all(|s| s.is_finished()) {
        assert!(
            Instant::now() < deadline,
            "the exchange did not finish in time"
        );
        sleep(Duration::from_millis(5 + rng.below(35))).await;
        let acked = stats.acked.load(Ordering::Relaxed);
        if restarts < KILLS && acked >= total * (restarts + 1) / (KILLS + 1) {
            server.kill();
            sleep(Duration::from_millis(20 + rng.below(200))).await;
            server.start().await;
            restarts += 1;
        } else {
            proxy.cut_one(&mut rng);
        }
    }
    let mut acked = Vec::new();
    for s in senders {
        acked.extend(s.await.expect("sender task"));
    }
    proxy.chaos.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let mut devices = Vec::new();
    for r in receivers {
        devices.push(
            timeout(Duration::from_secs(10), r)
                .await
                .expect("receiver stops")
                .expect("receiver task"),
        );
    }
    proxy_task.abort();
    let exchange = started.elapsed();

    // Final drain, straight to the server: the live devices go on from
    // their keys; "phone" (the senders) and "web" (never online) start
    // from nothing.
    let direct = upstream.to_string();
    for u in 0..USERS.len() {
        devices.push(Device::new(u, "phone"));
        devices.push(Device::new(u, "web"));
    }
    for d in &mut devices {
        drain(&direct, d).await;
    }

    let by_cid: HashMap<u64, Acked> = acked.iter().map(|a| (a.cid, a.clone())).collect();
    assert_eq!(by_cid.len(), acked.len(), "ClientMsgIds are unique");
    let mut t = Tally::default();
    let mut problems = Vec::new();
    for d in &devices {
        check_device(d, &by_cid, &mut t, &mut problems);
    }
    println!(
        "net_fault: seed {seed}: sent {total}, send attempts {}, resent {}, acknowledged {}, \
         devices {}, expected deliveries {}, delivered {}, duplicates {}, missing {}, \
         unexpected {}, wrong MsgId {}, out of order {}, server restarts {restarts}, \
         cut connections {}, lost replies {}, client reconnects {}, exchange {:.1} s, total {:.1} s",
        stats.attempts.load(Ordering::Relaxed),
        stats.resent.load(Ordering::Relaxed),
        acked.len(),
        devices.len(),
        t.expected,
        t.delivered,
        t.duplicates,
        t.missing,
        t.unexpected,
        t.wrong_msg_id,
        t.out_of_order,
        proxy.cuts.load(Ordering::Relaxed),
        proxy.lost_replies.load(Ordering::Relaxed),
        stats.reconnects.load(Ordering::Relaxed),
        exchange.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    for p in problems.iter().take(20) {
        println!("  {p}");
    }
    assert_eq!(acked.len(), total, "every send acknowledged");
    assert!(restarts >= 2, "the server was killed {restarts} times");
    assert!(
        proxy.cuts.load(Ordering::Relaxed) > 0,
        "no connection was cut"
    );
    assert_eq!(t.duplicates, 0, "duplicates");
    assert_eq!(t.missing, 0, "missing");
    assert_eq!(t.unexpected, 0, "unexpected deliveries");
    assert_eq!(t.wrong_msg_id, 0, "MsgId differs from the ack");
    assert_eq!(t.out_of_order, 0, "out of order within a conversation");
    assert_eq!(t.delivered, t.expected);
    // Stored once each, whatever the resends: the store after a last kill.
    server.kill();
    let stored = Store::open(&server.data)
        .and_then(|s| s.messages())
        .expect("read the store");
    println!(
        "net_fault: messages in the store after the last kill: {}",
        stored.len()
    );
    assert_eq!(stored.len(), total, "messages in the store");
}
