//! The server's limits against hostile peers (issue 13 items 7 and 9):
//! HTTP heads capped exactly, conflicting Content-Lengths refused, query
//! strings percent-decoded, newsendmsg items capped; connections that do
//! not authenticate capped per address and closed at a short deadline;
//! refusals told in the peer's own protocol (HTTP 503 or an error frame);
//! the listen backlog and the open-file limit. Every wait is bounded.

use std::net::SocketAddr;
use std::time::Duration;

use prost::Message;
use tokio::net::TcpStream;

use syncscope::body::messages::{MicroMsgRequestNew, NewSendMsgRequest, SkBuiltinString};
use syncscope::net::frame::Connection;
use syncscope::net::messages::ret;
use syncscope::net::server::{self, Access, Event};
use syncscope::proto::commands::{
    response, IDENTIFY, NEWSENDMSG, NOOP, SEQ_HEARTBEAT, SEQ_IDENTIFY,
};

use crate::net::{
    expect_error_and_close, http_response, post, raw, raw_identify, raw_request, run_bounded,
    syncscope, within, ServeProcess, TestServer,
};

/// The server's cap on a request head.
const MAX_HEAD: usize = 16 << 10;

/// A request whose head (request line to the empty line) is exactly
/// `len` bytes.
fn request_with_head(len: usize) -> Vec<u8> {
    let start = "GET /cgi-bin/mmwebwx-bin/login?uuid=none HTTP/1.1\r\nHost: t\r\nX-Pad: ";
    let end = "\r\n\r\n";
    let pad = len - start.len() - end.len();
    format!("{start}{}{end}", "a".repeat(pad)).into_bytes()
}

/// Whether the server closed `c` (EOF or reset) after what it sent.
async fn closed(c: &mut Connection<TcpStream>) -> bool {
    matches!(within("close", c.fill()).await, Ok(0) | Err(_))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_heads_are_capped_exactly_at_16_kib() {
    let srv = TestServer::start(|_| {}).await;
    for (len, want) in [
        (MAX_HEAD, 200),
        (MAX_HEAD + 1, 431),
        (MAX_HEAD + 1536, 431),
        (MAX_HEAD + 1024 + 512, 431),
    ] {
        let mut c = raw(srv.addr).await;
        // In one write: the whole head arrives at once.
        c.write_raw(&request_with_head(len)).await.expect("write");
        let (status, body) = http_response(&mut c).await;
        assert_eq!(status, want, "{len}: {}", String::from_utf8_lossy(&body));
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_different_content_length_is_refused() {
    let srv = TestServer::start(|_| {}).await;
    // The second length would make "GET /smuggled" a request of its own.
    let smuggle = b"POST /cgi-bin/micromsg-bin/newsync?user=bob HTTP/1.1\r\nHost: t\r\n\
                    Content-Length: 0\r\nContent-Length: 28\r\n\r\n\
                    GET /smuggled HTTP/1.1\r\n\r\n";
    let mut c = raw(srv.addr).await;
    c.write_raw(smuggle).await.expect("write");
    let (status, body) = http_response(&mut c).await;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Content-Length"), "{body}");
    assert!(closed(&mut c).await, "nothing served after it");
    // The same length twice is one length.
    let mut c = raw(srv.addr).await;
    c.write_raw(
        b"POST /cgi-bin/micromsg-bin/newsync?user=bob HTTP/1.1\r\nHost: t\r\n\
          Content-Length: 0\r\nContent-Length: 0\r\n\r\n",
    )
    .await
    .expect("write");
    assert_eq!(http_response(&mut c).await.0, 200);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_link_query_strings_are_percent_decoded() {
    let srv = TestServer::start(|_| {}).await;
    srv.send("alice", "bob", "for bob").await;
    let sync = syncscope::body::messages::NewSyncRequest {
        selector: Some(7),
        ..Default::default()
    }
    .encode_to_vec();
    // b%6Fb is bob.
    let mut c = raw(srv.addr).await;
    c.write_raw(&post(
        "/cgi-bin/micromsg-bin/newsync?user=b%6Fb&device=p%61d",
        &sync,
        false,
    ))
    .await
    .expect("write");
    let (status, body) = http_response(&mut c).await;
    assert_eq!(status, 200);
    let r = syncscope::body::messages::NewSyncResponse::decode(body.as_slice()).expect("sync");
    let got = syncscope::body::messages::add_msgs(&r).expect("items");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].to_chat().content, "for bob");
    // a%20b is "a b", which is no user name.
    let mut c = raw(srv.addr).await;
    c.write_raw(&post(
        "/cgi-bin/micromsg-bin/newsync?user=a%20b",
        &sync,
        false,
    ))
    .await
    .expect("write");
    let (status, body) = http_response(&mut c).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("invalid user name"));
    srv.stop().await;
}

fn items(n: usize) -> Vec<u8> {
    NewSendMsgRequest {
        count: Some(n as u32),
        list: (0..n)
            .map(|i| MicroMsgRequestNew {
                to_user_name: Some(SkBuiltinString::new("bob")),
                content: Some(format!("item {i}")),
                msg_type: Some(1),
                create_time: Some(0),
                client_msg_id: Some(i as u64 + 1),
            })
            .collect(),
    }
    .encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newsendmsg_items_per_request_are_capped() {
    let srv = TestServer::start(|_| {}).await;
    let cap = server::DEFAULT_MAX_SEND_ITEMS;
    let mut c = raw_identify(srv.addr, "alice", "phone").await;
    let answer = raw_request(&mut c, NEWSENDMSG, 1, &items(cap)).await;
    let r = syncscope::body::messages::NewSendMsgResponse::decode(answer.as_slice())
        .expect("NewSendMsgResponse");
    assert_eq!(r.list.len(), cap, "the cap itself is served");
    c.write_frame(NEWSENDMSG, 2, &items(cap + 1))
        .await
        .expect("write");
    let why = expect_error_and_close(&mut c, ret::OVERSIZE).await;
    assert!(why.contains(&format!("cap of {cap}")), "{why}");
    // Nothing of the refused request was stored.
    assert_eq!(srv.store.lock().unwrap().messages().unwrap().len(), cap);
    // The short link: 413.
    let mut h = raw(srv.addr).await;
    h.write_raw(&post(
        "/cgi-bin/micromsg-bin/newsendmsg?user=alice",
        &items(cap + 1),
        false,
    ))
    .await
    .expect("write");
    assert_eq!(http_response(&mut h).await.0, 413);
    srv.stop().await;
}

// ---------------------------------------------------------------------------
// Connections

async fn heartbeat(c: &mut Connection<TcpStream>) -> bool {
    if c.write_frame(NOOP, SEQ_HEARTBEAT, b"").await.is_err() {
        return false;
    }
    matches!(
        within("heartbeat", c.read_frame()).await,
        Ok(Some(f)) if f.header.cmd == response(NOOP)
    )
}

/// An HTTP GET on a new connection: the status.
async fn http_get(addr: SocketAddr) -> u16 {
    let mut c = raw(addr).await;
    c.write_raw(b"GET /jslogin?appid=wx&fun=new HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .expect("write");
    http_response(&mut c).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_not_yet_authenticated_are_capped_per_address() {
    let srv = TestServer::start(|c| c.max_unauthenticated_per_ip = 2).await;
    // Two connections that say nothing hold 127.0.0.1's two places.
    let mut first = raw(srv.addr).await;
    assert!(heartbeat(&mut first).await);
    let mut second = raw(srv.addr).await;
    assert!(heartbeat(&mut second).await);
    // A third is refused in its own protocol: a frame, or HTTP 503.
    let mut third = raw(srv.addr).await;
    third
        .write_frame(NOOP, SEQ_HEARTBEAT, b"")
        .await
        .expect("write");
    let why = expect_error_and_close(&mut third, ret::BUSY).await;
    assert!(why.contains("not authenticated"), "{why}");
    assert_eq!(http_get(srv.addr).await, 503);
    assert!(srv
        .events
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, Event::PeerBusy { cap: 2, .. })));
    // Once one of them identifies (test mode: that authenticates), its
    // place is given back.
    drop(first);
    let _alice = raw_identify_retrying(srv.addr).await;
    let mut again = within("a place", async {
        loop {
            let mut c = raw(srv.addr).await;
            if heartbeat(&mut c).await {
                break c;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(heartbeat(&mut again).await);
    assert!(heartbeat(&mut second).await, "still served");
    srv.stop().await;
}

/// Identifies as alice/phone once a place is free (the server sees a
/// dropped connection close a moment later).
async fn raw_identify_retrying(addr: SocketAddr) -> Connection<TcpStream> {
    let body = syncscope::net::messages::IdentifyExt {
        uin: 0,
        user: Some("alice".into()),
        device: Some("phone".into()),
        synckey: Default::default(),
    }
    .encode();
    within("identify", async {
        loop {
            let mut c = raw(addr).await;
            c.write_frame(IDENTIFY, SEQ_IDENTIFY, &body)
                .await
                .expect("write");
            match c.read_frame().await {
                Ok(Some(f)) if f.header.cmd == response(IDENTIFY) => return c,
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_connection_gets_a_short_deadline_heartbeats_or_not() {
    let srv = TestServer::start(|c| {
        c.access = Access::enforced([("alice", "secret")]);
        c.auth_timeout = Duration::from_millis(600);
    })
    .await;
    let mut c = raw(srv.addr).await;
    let started = std::time::Instant::now();
    // Heartbeats answer, but do not buy time.
    while started.elapsed() < Duration::from_millis(300) {
        assert!(heartbeat(&mut c).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let why = within("the deadline", async {
        loop {
            if c.write_frame(NOOP, SEQ_HEARTBEAT, b"").await.is_err() {
                return String::new();
            }
            match c.read_frame().await {
                Ok(Some(f)) if f.header.cmd == response(NOOP) => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Ok(Some(f)) => {
                    return syncscope::body::messages::BaseResponse::decode(f.body.as_slice())
                        .map(|b| b.message().to_owned())
                        .unwrap_or_default()
                }
                _ => return String::new(),
            }
        }
    })
    .await;
    assert!(why.contains("no manualauth or autoauth within"), "{why:?}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_client_refused_at_the_connection_cap_gets_http_503() {
    let srv = TestServer::start(|c| c.max_connections = 1).await;
    let mut held = raw(srv.addr).await;
    assert!(heartbeat(&mut held).await);
    assert_eq!(http_get(srv.addr).await, 503);
    let mut frame = raw(srv.addr).await;
    frame
        .write_frame(NOOP, SEQ_HEARTBEAT, b"")
        .await
        .expect("write");
    expect_error_and_close(&mut frame, ret::BUSY).await;
    srv.stop().await;
}

/// The accept queue of the listener on `port` (its rx_queue in
/// /proc/net/tcp: connections the kernel completed, not yet accepted).
#[cfg(target_os = "linux")]
fn accept_queue(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table
        .lines()
        .skip(1)
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local_port = u16::from_str_radix(f[1].rsplit(':').next()?, 16).ok()?;
            // State 0A: LISTEN.
            (local_port == port && f[3] == "0A").then(|| {
                let rx = f[4].split(':').nth(1)?;
                usize::from_str_radix(rx, 16).ok()
            })?
        })
        .expect("the listener in /proc/net/tcp")
}

/// `n` connects, one after the other, to a listener that does not
/// accept: those that completed (each is given 300 ms; one the kernel's
/// full queue dropped would wait a second for its SYN's retry).
#[cfg(target_os = "linux")]
async fn connect_burst(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr)).await
        {
            held.push(s);
        }
    }
    held
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_sets_the_listen_backlog() {
    // Small: the kernel queues backlog + 1 and drops the rest.
    let small = server::bind("127.0.0.1:0", 4).await.expect("bind");
    let addr = small.local_addr().expect("addr");
    let held = connect_burst(addr, 8).await;
    assert_eq!(held.len(), 5);
    assert_eq!(accept_queue(addr.port()), 5);
    drop((held, small));
    // The default queues a burst far past the 128 of a plain bind.
    let big = server::bind("127.0.0.1:0", server::DEFAULT_BACKLOG)
        .await
        .expect("bind");
    let addr = big.local_addr().expect("addr");
    let held = connect_burst(addr, 200).await;
    assert_eq!(held.len(), 200);
    assert_eq!(accept_queue(addr.port()), 200);
}

/// The soft and hard "Max open files" of a process.
#[cfg(target_os = "linux")]
fn open_files(pid: &str) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    let n: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (n[0], n[1])
}

#[cfg(target_os = "linux")]
#[test]
fn serve_raises_its_open_file_limit_and_derives_its_connection_cap() {
    let (_, hard) = open_files("self");
    let soft = 300.min(hard);
    // A shell lowers the soft limit, then becomes serve.
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c").arg(format!(
        "ulimit -S -n {soft} && exec {} serve --memory --listen 127.0.0.1:0",
        env!("CARGO_BIN_EXE_syncscope")
    ));
    let serve = ServeProcess::spawn(sh);
    let pid = serve.pid().to_string();
    assert_eq!(open_files(&pid), (hard, hard), "soft raised to hard");
    let cap = server::default_max_connections(hard);
    assert!(
        serve.banner.contains(&format!("up to {cap} connections")),
        "{}",
        serve.banner
    );
}

#[test]
fn cli_flags_of_the_caps() {
    let out = run_bounded({
        let mut c = syncscope();
        c.args(["serve", "--help"]);
        c
    });
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--backlog",
        "--max-unauthenticated-per-ip",
        "--auth-timeout",
        "--max-connections",
    ] {
        assert!(help.contains(flag), "{flag} in serve --help");
    }
    let serve = ServeProcess::start(&["--memory", "--max-connections", "7", "--backlog", "64"]);
    assert!(
        serve.banner.contains("up to 7 connections"),
        "{}",
        serve.banner
    );
}
