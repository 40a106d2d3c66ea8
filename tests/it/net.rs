//! The reference server and client (`syncscope::net`): servers on
//! 127.0.0.1 port 0 inside the test through the library, and a few runs of
//! the `serve` and `client` commands. Every wait is bounded.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use syncscope::body::messages::{
    AutoAuthRequest, AutoAuthResponse, BaseResponse, ManualAuthRequest, ManualAuthResponse,
    NewSendMsgRequest, NewSendMsgResponse, SkBuiltinString,
};
use syncscope::body::synckey::SyncKey;
use syncscope::net::client::{self, ClientError, SendOptions, Session};
use syncscope::net::frame::{Connection, Frame};
use syncscope::net::messages::{ret, ChatMessage, IdentifyExt, IdentifyReply};
use syncscope::net::server::{self, Config, Event, SharedStore};
use syncscope::net::store::Store;
use syncscope::proto::commands::{
    response, AUTOAUTH, ERROR, IDENTIFY, MANUALAUTH, NEWNOTIFY, NEWSENDMSG, NEWSYNC, NOOP,
    SEQ_HEARTBEAT, SEQ_IDENTIFY,
};

pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// Awaits `f`, failing the test after [`WAIT`].
pub(crate) async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    pub(crate) store: SharedStore,
    pub(crate) events: Arc<Mutex<Vec<Event>>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl TestServer {
    pub(crate) async fn start(tweak: impl FnOnce(&mut Config)) -> TestServer {
        Self::with_store(Store::memory().expect("memory store"), tweak).await
    }

    async fn with_store(store: Store, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let events = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&events);
        let mut config = Config {
            log: Some(Arc::new(move |e: &Event| {
                log.lock().unwrap().push(e.clone())
            })),
            ..Config::default()
        };
        tweak(&mut config);
        let store: SharedStore = Arc::new(Mutex::new(store));
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server::run_with(
            listener,
            Arc::clone(&store),
            config,
            async {
                let _ = rx.await;
            },
        ));
        TestServer {
            addr,
            store,
            events,
            stop: Some(stop),
            task,
        }
    }

    pub(crate) fn client(&self, user: &str, device: &str) -> client::Config {
        let mut c = client::Config::new(self.addr.to_string(), user);
        c.device = device.into();
        c.request_timeout = Duration::from_secs(5);
        c
    }

    pub(crate) async fn session(&self, user: &str, device: &str) -> Session {
        self.session_with(user, device, SyncKey::default()).await
    }

    async fn session_with(&self, user: &str, device: &str, key: SyncKey) -> Session {
        within("connect", Session::connect(&self.client(user, device), key))
            .await
            .unwrap_or_else(|e| panic!("{user}/{device} connects: {e}"))
    }

    pub(crate) async fn send(&self, from: &str, to: &str, text: &str) -> client::SendAck {
        within(
            "send",
            client::send(
                &self.client(from, "phone"),
                to,
                text,
                &SendOptions::default(),
            ),
        )
        .await
        .expect("send confirmed")
    }

    pub(crate) fn bad_inputs(&self) -> Vec<(i32, String)> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::BadInput { ret, error, .. } => Some((*ret, error.clone())),
                _ => None,
            })
            .collect()
    }

    pub(crate) async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        within("graceful shutdown", &mut self.task)
            .await
            .expect("server task");
    }
}

/// Syncs until ContinueFlag is 0, presenting each key after its page.
pub(crate) async fn sync_all(s: &mut Session) -> Vec<ChatMessage> {
    let mut all = Vec::new();
    loop {
        let page = within("newsync", s.sync()).await.expect("newsync");
        all.extend(page.messages);
        s.adopt(page.synckey);
        if !page.more {
            return all;
        }
    }
}

/// Waits for a newnotify, then syncs.
pub(crate) async fn receive(s: &mut Session) -> Vec<ChatMessage> {
    within("newnotify", s.wait_push()).await.expect("push");
    sync_all(s).await
}

/// No push arrives within a short time.
pub(crate) async fn no_push(s: &mut Session) {
    let r = tokio::time::timeout(Duration::from_millis(300), s.wait_push()).await;
    assert!(r.is_err(), "unexpected push: {r:?}");
}

// ---------------------------------------------------------------------------
// Raw frames

pub(crate) async fn raw(addr: SocketAddr) -> Connection<TcpStream> {
    let s = within("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    Connection::new(s, 1 << 20)
}

pub(crate) async fn raw_identify(
    addr: SocketAddr,
    user: &str,
    device: &str,
) -> Connection<TcpStream> {
    let mut c = raw(addr).await;
    let body = IdentifyExt {
        uin: 0,
        user: Some(user.into()),
        device: Some(device.into()),
        synckey: SyncKey::default(),
    }
    .encode();
    c.write_frame(IDENTIFY, SEQ_IDENTIFY, &body)
        .await
        .expect("write identify");
    let f = next_frame(&mut c).await.expect("identify answer");
    assert_eq!(
        (f.header.cmd, f.header.seq),
        (response(IDENTIFY), SEQ_IDENTIFY)
    );
    let reply = IdentifyReply::decode(&f.body).expect("identify reply");
    assert_eq!(reply.ret, 0);
    c
}

pub(crate) async fn next_frame(c: &mut Connection<TcpStream>) -> Option<Frame> {
    within("a frame", c.read_frame()).await.expect("read")
}

pub(crate) fn send_body(to: &str, text: &str, cid: u64) -> Vec<u8> {
    client::text_message(to, text, cid, 0).encode_to_vec()
}

/// Reads until the error frame, checks its Ret, then expects the close.
pub(crate) async fn expect_error_and_close(c: &mut Connection<TcpStream>, want: i32) -> String {
    loop {
        let f = next_frame(c)
            .await
            .expect("an error frame before the close");
        if f.header.cmd == NEWNOTIFY {
            continue;
        }
        assert_eq!(f.header.cmd, ERROR, "frame {:?}", f.header);
        let b = BaseResponse::decode(f.body.as_slice()).expect("BaseResponse");
        assert_eq!(b.ret, Some(want), "error frame: {}", b.message());
        // Closed after it (EOF, or a reset if our bytes were still unread).
        let after = within("close", c.read_frame()).await;
        assert!(
            matches!(after, Ok(None) | Err(_)),
            "connection still open: {after:?}"
        );
        return b.message().to_owned();
    }
}

// ---------------------------------------------------------------------------
// Behaviour

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_and_receive_between_two_users() {
    let srv = TestServer::start(|_| {}).await;
    let mut bob = srv.session("bob", "phone").await;
    assert!(sync_all(&mut bob).await.is_empty());
    let ack = srv.send("alice", "bob", "hello bob").await;
    let got = receive(&mut bob).await;
    assert_eq!(
        got,
        [ChatMessage {
            from: "alice".into(),
            to: "bob".into(),
            content: "hello bob".into(),
            msg_id: ack.msg_id,
            client_msg_id: Some(ack.client_msg_id.clone()),
            seq: Some(1),
            msg_type: 1,
        }]
    );
    // And back, on the same session.
    let mut alice = srv.session("alice", "phone").await;
    sync_all(&mut alice).await;
    let reply = within("send", bob.send("alice", "hi alice", 99))
        .await
        .expect("send");
    assert!(reply.msg_id > ack.msg_id);
    let got = receive(&mut alice).await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].from.as_str(), got[0].content.as_str()),
        ("bob", "hi alice")
    );
    // A heartbeat is answered.
    within("heartbeat", alice.heartbeat())
        .await
        .expect("heartbeat");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_device_of_a_user_receives() {
    let srv = TestServer::start(|_| {}).await;
    let mut bob_phone = srv.session("bob", "phone").await;
    let mut bob_web = srv.session("bob", "web").await;
    let mut bob_desktop = srv.session("bob", "desktop").await;
    let mut alice_phone = srv.session("alice", "phone").await;
    let mut alice_web = srv.session("alice", "web").await;
    assert!(bob_phone.primary && alice_phone.primary);
    assert!(!bob_web.primary && !bob_desktop.primary && !alice_web.primary);
    assert_eq!(bob_phone.uin, bob_web.uin);
    for s in [
        &mut bob_phone,
        &mut bob_web,
        &mut bob_desktop,
        &mut alice_phone,
        &mut alice_web,
    ] {
        assert!(sync_all(s).await.is_empty());
    }
    let ack = within("send", alice_phone.send("bob", "to all of you", 1))
        .await
        .expect("send");
    for s in [
        &mut bob_phone,
        &mut bob_web,
        &mut bob_desktop,
        &mut alice_web,
    ] {
        let got = receive(s).await;
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!((got[0].msg_id, got[0].to.as_str()), (ack.msg_id, "bob"));
    }
    // The sending device gets no push and does not get its own message.
    no_push(&mut alice_phone).await;
    assert!(sync_all(&mut alice_phone).await.is_empty());
    // A secondary device can send too; the primary sees it.
    within("send", bob_web.send("alice", "from the web", 2))
        .await
        .expect("send");
    assert_eq!(receive(&mut bob_phone).await[0].content, "from the web");
    assert_eq!(receive(&mut alice_phone).await[0].content, "from the web");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_delivery_and_redelivery_until_confirmed() {
    let srv = TestServer::start(|_| {}).await;
    // Bob has a device but is offline.
    drop(srv.session("bob", "phone").await);
    let a1 = srv.send("alice", "bob", "one").await;
    let a2 = srv.send("alice", "bob", "two").await;
    // On reconnect the server pushes at once: data is waiting.
    let mut bob = srv.session("bob", "phone").await;
    let page = within("newsync", bob.sync()).await.expect("sync");
    let ids: Vec<u64> = page.messages.iter().map(|m| m.msg_id).collect();
    assert_eq!(ids, [a1.msg_id, a2.msg_id]);
    let k1 = page.synckey.clone();
    // Dropped before presenting the new key: offered again.
    drop(bob);
    let mut bob = srv.session("bob", "phone").await;
    within("push", bob.wait_push()).await.expect("push");
    let again = sync_all(&mut bob).await;
    assert_eq!(again.iter().map(|m| m.msg_id).collect::<Vec<_>>(), ids);
    // The presented key (here in identify) confirms it: nothing more.
    drop(bob);
    let mut bob = srv.session_with("bob", "phone", k1).await;
    no_push(&mut bob).await;
    assert!(sync_all(&mut bob).await.is_empty());
    // Even an old (empty) key cannot bring consumed data back.
    drop(bob);
    let mut bob = srv.session("bob", "phone").await;
    assert!(sync_all(&mut bob).await.is_empty());
    // A device that never confirmed still gets everything.
    let mut web = srv.session("bob", "web").await;
    assert_eq!(receive(&mut web).await.len(), 2);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resend_after_a_dropped_ack_is_stored_once() {
    let srv = TestServer::start(|_| {}).await;
    let mut bob = srv.session("bob", "phone").await;
    sync_all(&mut bob).await;
    // Alice sends and hangs up without reading the ack.
    let mut c = raw_identify(srv.addr, "alice", "phone").await;
    c.write_frame(NEWSENDMSG, 1, &send_body("bob", "once", 777))
        .await
        .expect("write");
    drop(c);
    within("stored", async {
        while srv.store.lock().unwrap().messages().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    // The resend (same ClientMsgId) gets the original MsgId.
    let opts = SendOptions {
        client_msg_id: Some(777),
        ..SendOptions::default()
    };
    let ack = within(
        "resend",
        client::send(&srv.client("alice", "phone"), "bob", "once", &opts),
    )
    .await
    .expect("resend confirmed");
    let stored = srv.store.lock().unwrap().messages().unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].msg_id, ack.msg_id);
    assert_eq!(stored[0].client_msg_id.as_deref(), Some("777"));
    // And a third time, on a raw connection, with the full answer checked.
    let mut c = raw_identify(srv.addr, "alice", "phone").await;
    c.write_frame(NEWSENDMSG, 5, &send_body("bob", "once", 777))
        .await
        .expect("write");
    let f = next_frame(&mut c).await.expect("ack");
    assert_eq!((f.header.cmd, f.header.seq), (response(NEWSENDMSG), 5));
    let resp = NewSendMsgResponse::decode(f.body.as_slice()).expect("response");
    assert_eq!(resp.list[0].new_msg_id, Some(ack.msg_id));
    assert_eq!(resp.list[0].client_msg_id, Some(777));
    // Bob gets it once.
    let got = receive(&mut bob).await;
    assert_eq!(got.len(), 1);
    no_push(&mut bob).await;
    assert!(sync_all(&mut bob).await.is_empty());
    assert_eq!(srv.store.lock().unwrap().messages().unwrap().len(), 1);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_is_retried_with_the_same_client_msg_id_then_fails() {
    // A server that identifies and then never acknowledges.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let fake = tokio::spawn(async move {
        let mut open = Vec::new();
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            let mut c = Connection::new(s, 1 << 20);
            while let Ok(Some(f)) = c.read_frame().await {
                match f.header.cmd {
                    IDENTIFY => {
                        let reply = IdentifyReply {
                            ret: 0,
                            uin: 1,
                            primary: true,
                        };
                        let _ = c
                            .write_frame(response(IDENTIFY), f.header.seq, &reply.encode())
                            .await;
                    }
                    MANUALAUTH | AUTOAUTH => {
                        let body = ManualAuthResponse {
                            base_response: Some(BaseResponse::error(0, "")),
                            uin: Some(1),
                            auto_auth_key: Some(vec![7; 16]),
                        };
                        let _ = c
                            .write_frame(
                                response(f.header.cmd),
                                f.header.seq,
                                &body.encode_to_vec(),
                            )
                            .await;
                    }
                    NEWSENDMSG => {
                        let req = NewSendMsgRequest::decode(f.body.as_slice()).expect("request");
                        log.lock().unwrap().push(req.list[0].client_msg_id);
                        break;
                    }
                    _ => {}
                }
            }
            // Kept open and silent: the ack is "lost".
            open.push(c);
        }
    });
    let mut cfg = client::Config::new(addr.to_string(), "alice");
    cfg.request_timeout = Duration::from_millis(300);
    let opts = SendOptions {
        attempts: 3,
        backoff: Duration::from_millis(10),
        client_msg_id: None,
    };
    let err = within("send gives up", client::send(&cfg, "bob", "lost", &opts))
        .await
        .expect_err("no ack, no success");
    assert_eq!(err.attempts, 3);
    assert!(matches!(err.last, ClientError::Timeout { .. }), "{err}");
    let ids = seen.lock().unwrap().clone();
    assert_eq!(ids.len(), 3);
    assert!(
        ids.iter().all(|&id| id == Some(err.client_msg_id)),
        "{ids:?}"
    );
    fake.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synckey_values_never_go_down() {
    let srv = TestServer::start(|c| c.page_size = 2).await;
    let mut bob = srv.session("bob", "phone").await;
    let mut alice = srv.session("alice", "phone").await;
    let mut last: BTreeMap<u32, u64> = BTreeMap::new();
    let mut check = |presented: &SyncKey, issued: &SyncKey| {
        let (p, i) = (presented.to_map(), issued.to_map());
        for (k, v) in &p {
            assert!(i.get(k).is_some_and(|n| n >= v), "key {k}: {p:?} -> {i:?}");
        }
        for (k, v) in &last {
            assert!(
                i.get(k).is_some_and(|n| n >= v),
                "key {k}: {last:?} -> {i:?}"
            );
        }
        last = i;
    };
    let mut cid = 0;
    for round in 0..6 {
        for _ in 0..round {
            cid += 1;
            within("send", alice.send("bob", &format!("m{cid}"), cid))
                .await
                .expect("send");
        }
        loop {
            let presented = bob.synckey.clone();
            let page = within("sync", bob.sync()).await.expect("sync");
            check(&presented, &page.synckey);
            bob.adopt(page.synckey);
            if !page.more {
                break;
            }
        }
        if round == 3 {
            // Reconnect with the current key: still no step back.
            let key = bob.synckey.clone();
            drop(bob);
            bob = srv.session_with("bob", "phone", key).await;
        }
    }
    assert_eq!(last.get(&2), Some(&15), "{last:?}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_with_continue_flag() {
    let srv = TestServer::start(|c| c.page_size = 3).await;
    let mut alice = srv.session("alice", "phone").await;
    for i in 0..10 {
        within("send", alice.send("bob", &format!("m{i}"), i + 1))
            .await
            .expect("send");
    }
    let mut bob = srv.session("bob", "phone").await;
    let mut sizes = Vec::new();
    let mut contents = Vec::new();
    loop {
        let page = within("sync", bob.sync()).await.expect("sync");
        sizes.push((page.messages.len(), page.more));
        contents.extend(page.messages.into_iter().map(|m| m.content));
        bob.adopt(page.synckey);
        if !page.more {
            break;
        }
    }
    assert_eq!(sizes, [(3, true), (3, true), (3, true), (1, false)]);
    let want: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    assert_eq!(contents, want);
    srv.stop().await;
}

#[test]
fn acknowledged_messages_survive_an_abrupt_stop() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The server in a runtime of its own, dropped without a graceful
    // shutdown (no drain, no store close).
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let store = Store::open(dir.path()).expect("open store");
    let listener = server_rt
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shared: SharedStore = Arc::new(Mutex::new(store));
    server_rt.spawn(server::run(
        listener,
        Arc::clone(&shared),
        std::future::pending::<()>(),
    ));
    drop(shared);
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cfg = client::Config::new(addr.to_string(), "alice");
    let ack = client_rt
        .block_on(async {
            within(
                "send",
                client::send(&cfg, "bob", "keep me", &SendOptions::default()),
            )
            .await
        })
        .expect("acknowledged");
    // Read back through another connection while the server still holds
    // its own: the commit is on disk, not in the server's memory.
    let other = Store::open(dir.path()).expect("reopen");
    let stored = other.messages().expect("messages");
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (stored[0].msg_id, stored[0].content.as_str()),
        (ack.msg_id, "keep me")
    );
    drop(other);
    server_rt.shutdown_background();
    // A new server on the same directory delivers it.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let srv = TestServer::with_store(Store::open(dir.path()).expect("reopen"), |_| {}).await;
        let mut bob = srv.session("bob", "phone").await;
        let got = receive(&mut bob).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].msg_id, ack.msg_id);
        srv.stop().await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_an_error_frame_and_a_close() {
    let srv = TestServer::start(|c| c.max_frame_len = 4096).await;
    // Someone stays connected through all of it.
    let mut bob = srv.session("bob", "phone").await;
    sync_all(&mut bob).await;

    let mut c = raw(srv.addr).await;
    c.write_raw(b"hello server, this is not a frame\r\n\r\n")
        .await
        .expect("write");
    let msg = expect_error_and_close(&mut c, ret::BAD_FRAME).await;
    assert!(msg.contains("header length"), "{msg}");

    let mut c = raw(srv.addr).await;
    let mut big = syncscope::proto::longlink::Header::new(NEWSYNC, 1, 10_000)
        .emit()
        .to_vec();
    big.extend_from_slice(&[0u8; 64]);
    c.write_raw(&big).await.expect("write");
    let msg = expect_error_and_close(&mut c, ret::OVERSIZE).await;
    assert!(msg.contains("10016"), "{msg}");

    let mut c = raw_identify(srv.addr, "alice", "phone").await;
    c.write_frame(999, 3, b"").await.expect("write");
    expect_error_and_close(&mut c, ret::UNKNOWN_CMD).await;

    let mut c = raw_identify(srv.addr, "alice", "phone").await;
    c.write_frame(NEWSENDMSG, 4, &[0x0a, 0xff, 0xff, 0x01])
        .await
        .expect("write");
    let msg = expect_error_and_close(&mut c, ret::BAD_BODY).await;
    assert!(msg.contains("NewSendMsgRequest"), "{msg}");

    let mut c = raw(srv.addr).await;
    c.write_frame(NEWSYNC, 1, b"").await.expect("write");
    expect_error_and_close(&mut c, ret::NOT_IDENTIFIED).await;

    let mut c = raw(srv.addr).await;
    c.write_frame(IDENTIFY, SEQ_IDENTIFY, b"\x01\x02\x03")
        .await
        .expect("write");
    expect_error_and_close(&mut c, ret::BAD_BODY).await;

    // One log line per bad connection.
    let bad = srv.bad_inputs();
    let rets: Vec<i32> = bad.iter().map(|(r, _)| *r).collect();
    assert_eq!(
        rets,
        [
            ret::BAD_FRAME,
            ret::OVERSIZE,
            ret::UNKNOWN_CMD,
            ret::BAD_BODY,
            ret::NOT_IDENTIFIED,
            ret::BAD_BODY
        ],
        "{bad:?}"
    );
    // The server kept serving: Bob's connection and new ones work.
    let mut c = raw(srv.addr).await;
    c.write_frame(NOOP, SEQ_HEARTBEAT, b"")
        .await
        .expect("write");
    let f = next_frame(&mut c).await.expect("heartbeat answer");
    assert_eq!(
        (f.header.cmd, f.header.seq, f.body.len()),
        (response(NOOP), SEQ_HEARTBEAT, 0)
    );
    srv.send("alice", "bob", "still here").await;
    assert_eq!(receive(&mut bob).await[0].content, "still here");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_users_idle_peers_and_the_connection_cap() {
    let store = Store::memory().expect("store");
    let srv = TestServer::with_store(store, |c| {
        c.auto_register = false;
        c.max_connections = 2;
        c.auth_timeout = Duration::from_millis(300);
    })
    .await;
    for u in ["alice", "bob"] {
        srv.store.lock().unwrap().user(u, true).expect("user");
    }
    // Not in the user list.
    let err = within(
        "identify",
        Session::connect(&srv.client("mallory", "phone"), SyncKey::default()),
    )
    .await
    .expect_err("refused");
    assert!(err.is_permanent(), "{err}");
    assert!(err.to_string().contains("mallory"), "{err}");
    // Unknown recipient: a refused item, the connection stays.
    let mut alice = srv.session("alice", "phone").await;
    let err = within("send", alice.send("carol", "hi", 1))
        .await
        .expect_err("refused");
    assert!(err.is_permanent(), "{err}");
    within("heartbeat", alice.heartbeat())
        .await
        .expect("still open");
    // A peer that never identifies is closed.
    let mut idle = raw(srv.addr).await;
    expect_error_and_close(&mut idle, ret::TIMEOUT).await;
    // Cap of 2: alice plus one more; the third is told "busy". (The idle
    // connection's slot frees once the server has seen it close.)
    drop(idle);
    let mut second = within("a free slot", async {
        loop {
            let mut c = raw(srv.addr).await;
            c.write_frame(NOOP, SEQ_HEARTBEAT, b"")
                .await
                .expect("write");
            match c.read_frame().await {
                Ok(Some(f)) if f.header.cmd == response(NOOP) => break c,
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await;
    let mut third = raw(srv.addr).await;
    expect_error_and_close(&mut third, ret::BUSY).await;
    assert!(srv
        .events
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, Event::Busy { .. })));
    second
        .write_frame(NOOP, SEQ_HEARTBEAT, b"")
        .await
        .expect("write");
    assert!(next_frame(&mut second).await.is_some());
    srv.stop().await;
}

/// One request on a raw connection; the answer's body.
pub(crate) async fn raw_request(
    c: &mut Connection<TcpStream>,
    cmd: u32,
    seq: u32,
    body: &[u8],
) -> Vec<u8> {
    c.write_frame(cmd, seq, body).await.expect("write");
    loop {
        let f = next_frame(c).await.expect("an answer");
        if f.header.cmd == NEWNOTIFY {
            continue;
        }
        assert_eq!((f.header.cmd, f.header.seq), (response(cmd), seq));
        return f.body;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manualauth_then_autoauth_and_the_client_identifies_with_its_uin() {
    let srv = TestServer::start(|c| c.auto_register = false).await;
    for u in ["alice", "bob"] {
        srv.store.lock().unwrap().user(u, true).expect("user");
    }
    let manual = |user: &str, device: &str| {
        ManualAuthRequest {
            user_name: Some(SkBuiltinString::new(user)),
            device_id: Some(device.into()),
            client_version: None,
            password: None,
        }
        .encode_to_vec()
    };
    let mut c = raw(srv.addr).await;
    let body = raw_request(&mut c, MANUALAUTH, 1, &manual("bob", "phone")).await;
    let m = ManualAuthResponse::decode(body.as_slice()).expect("ManualAuthResponse");
    assert_eq!(m.base_response.as_ref().and_then(|b| b.ret), Some(0));
    let uin = m.uin.expect("uin");
    let key = m.auto_auth_key.expect("key");
    assert_eq!(key.len(), 16);
    assert_eq!(
        i64::from(uin),
        srv.store
            .lock()
            .unwrap()
            .user("bob", false)
            .unwrap()
            .unwrap()
    );
    let auto = |uin: u32, key: &[u8], device: &str| {
        AutoAuthRequest {
            uin: Some(uin),
            auto_auth_key: Some(key.to_vec()),
            device_id: Some(device.into()),
        }
        .encode_to_vec()
    };
    let ok = raw_request(&mut c, AUTOAUTH, 2, &auto(uin, &key, "phone")).await;
    let ok = AutoAuthResponse::decode(ok.as_slice()).expect("AutoAuthResponse");
    assert_eq!(
        (ok.base_response.and_then(|b| b.ret), ok.uin),
        (Some(0), Some(uin))
    );
    // Another device, another uin, another key: refused, connection stays.
    for (u, k, d) in [
        (uin, key.clone(), "pad"),
        (uin + 1, key.clone(), "phone"),
        (uin, vec![0; 16], "phone"),
    ] {
        let no = raw_request(&mut c, AUTOAUTH, 3, &auto(u, &k, d)).await;
        let no = AutoAuthResponse::decode(no.as_slice()).expect("AutoAuthResponse");
        assert_eq!(
            no.base_response.and_then(|b| b.ret),
            Some(ret::UNKNOWN_USER)
        );
    }
    let no = raw_request(&mut c, MANUALAUTH, 4, &manual("mallory", "phone")).await;
    let no = ManualAuthResponse::decode(no.as_slice()).expect("ManualAuthResponse");
    assert_eq!(
        no.base_response.and_then(|b| b.ret),
        Some(ret::UNKNOWN_USER)
    );
    raw_request(&mut c, NOOP, SEQ_HEARTBEAT, b"").await;

    // The client: manualauth, identify with the uin; a reconnect with the
    // same config (its clones share the key) is accepted by autoauth.
    let config = srv.client("alice", "phone");
    let s = within("connect", Session::connect(&config, SyncKey::default()))
        .await
        .expect("connect");
    let alice = i64::from(s.uin);
    assert_eq!(Some(s.uin), config.auth.uin());
    assert_eq!(
        alice,
        srv.store
            .lock()
            .unwrap()
            .user("alice", false)
            .unwrap()
            .unwrap()
    );
    let again = within(
        "reconnect",
        Session::connect(&config.clone(), SyncKey::default()),
    )
    .await
    .expect("reconnect");
    assert_eq!(again.uin, s.uin);
    // The first connection did a manualauth, the reconnect an autoauth.
    let auths: Vec<(u32, String, bool)> = srv
        .events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Authenticated {
                uin, device, auto, ..
            } if *uin == s.uin => Some((*uin, device.clone(), *auto)),
            _ => None,
        })
        .collect();
    assert_eq!(
        auths,
        [
            (s.uin, "phone".to_owned(), false),
            (s.uin, "phone".to_owned(), true)
        ]
    );
    // Unknown users are refused for good at manualauth.
    let err = within(
        "connect",
        Session::connect(&srv.client("mallory", "phone"), SyncKey::default()),
    )
    .await
    .expect_err("refused");
    assert!(
        err.is_permanent() && err.to_string().contains("manualauth"),
        "{err}"
    );
    // The short link answers manualauth too.
    let mut h = raw(srv.addr).await;
    h.write_raw(&post(
        "/cgi-bin/micromsg-bin/manualauth",
        &manual("bob", "pc"),
        true,
    ))
    .await
    .expect("write");
    let (status, body) = http_response(&mut h).await;
    assert_eq!(status, 200);
    let m = ManualAuthResponse::decode(body.as_slice()).expect("ManualAuthResponse");
    assert_eq!(m.uin, Some(uin));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_trickled_slower_than_the_frame_timeout_is_closed() {
    let srv = TestServer::start(|c| c.frame_timeout = Duration::from_millis(600)).await;
    let mut c = raw_identify(srv.addr, "alice", "phone").await;
    // A heartbeat sent one byte every 100 ms: the connection is never idle
    // for long, but the frame takes 1.6 s.
    let frame = syncscope::net::frame::encode(NOOP, SEQ_HEARTBEAT, b"");
    let started = std::time::Instant::now();
    for b in &frame {
        if c.write_raw(std::slice::from_ref(b)).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if started.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    let error = expect_error_and_close(&mut c, ret::TIMEOUT).await;
    assert!(error.contains("frame not complete"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(3), "closed in time");
    // The same frame sent at once is fine on a new connection.
    let mut ok = raw_identify(srv.addr, "alice", "phone").await;
    ok.write_raw(&frame).await.expect("write");
    let f = next_frame(&mut ok).await.expect("answer");
    assert_eq!(f.header.cmd, response(NOOP));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_closes_connections_and_returns() {
    let srv = TestServer::start(|_| {}).await;
    let mut bob = srv.session("bob", "phone").await;
    sync_all(&mut bob).await;
    let addr = srv.addr;
    srv.stop().await;
    // Bob's connection is closed, and nobody listens any more.
    let r = within("close", bob.wait_push()).await;
    assert!(
        matches!(r, Err(ClientError::Closed | ClientError::Read(_))),
        "{r:?}"
    );
    assert!(TcpStream::connect(addr).await.is_err());
}

// ---------------------------------------------------------------------------
// The short link

/// Reads one HTTP response: status and body.
pub(crate) async fn http_response(c: &mut Connection<TcpStream>) -> (u16, Vec<u8>) {
    within("an HTTP response", async {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut r = httparse::Response::new(&mut headers);
            if let Ok(httparse::Status::Complete(n)) = r.parse(c.buffer()) {
                let status = r.code.expect("status");
                let len: usize = r
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                    .unwrap_or(0);
                while c.buffered() < n + len {
                    assert!(c.fill().await.expect("read") > 0, "closed mid-body");
                }
                let body = c.buffer()[n..n + len].to_vec();
                c.consume(n + len);
                return (status, body);
            }
            assert!(
                c.fill().await.expect("read") > 0,
                "closed before a response"
            );
        }
    })
    .await
}

pub(crate) fn post(path: &str, body: &[u8], close: bool) -> Vec<u8> {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\n{}\r\n",
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_link_on_the_same_port() {
    let srv = TestServer::start(|_| {}).await;
    let mut bob = srv.session("bob", "phone").await;
    sync_all(&mut bob).await;
    // newsendmsg over HTTP, then newsync on the same keep-alive connection
    // (both requests written at once: pipelined).
    let mut c = raw(srv.addr).await;
    let mut both = post(
        "/cgi-bin/micromsg-bin/newsendmsg?user=alice&device=pc",
        &send_body("bob", "via http", 5),
        false,
    );
    let sync = syncscope::body::messages::NewSyncRequest {
        oplog: None,
        selector: Some(7),
        key_buf: None,
        scene: None,
        device_type: None,
    };
    both.extend(post(
        "/cgi-bin/micromsg-bin/newsync?user=bob&device=pad",
        &sync.encode_to_vec(),
        false,
    ));
    c.write_raw(&both).await.expect("write");
    let (status, body) = http_response(&mut c).await;
    assert_eq!(status, 200);
    let sent = NewSendMsgResponse::decode(body.as_slice()).expect("NewSendMsgResponse");
    let msg_id = sent.list[0].new_msg_id.expect("MsgId");
    let (status, body) = http_response(&mut c).await;
    assert_eq!(status, 200);
    let resp = syncscope::body::messages::NewSyncResponse::decode(body.as_slice()).expect("sync");
    let got = syncscope::body::messages::add_msgs(&resp).expect("AddMsg items");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].to_chat().msg_id, msg_id);
    // The long-link device got its push.
    let got = receive(&mut bob).await;
    assert_eq!(
        (got[0].msg_id, got[0].content.as_str()),
        (msg_id, "via http")
    );
    // The same ClientMsgId over HTTP: the same MsgId.
    c.write_raw(&post(
        "/cgi-bin/micromsg-bin/newsendmsg?user=alice&device=pc",
        &send_body("bob", "via http", 5),
        true,
    ))
    .await
    .expect("write");
    let (_, body) = http_response(&mut c).await;
    let again = NewSendMsgResponse::decode(body.as_slice()).expect("response");
    assert_eq!(again.list[0].new_msg_id, Some(msg_id));
    assert_eq!(within("close", c.read_frame()).await.ok().flatten(), None);
    // Bad requests: an HTTP error, then the close.
    for (req, want) in [
        (post("/cgi-bin/micromsg-bin/newsync", b"", false), 400),
        (b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 404),
        (
            post("/cgi-bin/micromsg-bin/newinit?user=bob", b"", false),
            404,
        ),
        (
            post("/cgi-bin/micromsg-bin/newsync?user=bob", b"\xff\xff", false),
            400,
        ),
        (b"PUT\x00garbage\r\n\r\n".to_vec(), 400),
    ] {
        let mut c = raw(srv.addr).await;
        c.write_raw(&req).await.expect("write");
        let (status, body) = http_response(&mut c).await;
        assert_eq!(status, want, "{}", String::from_utf8_lossy(&body));
        let after = within("close", c.fill()).await;
        assert!(matches!(after, Ok(0) | Err(_)), "still open: {after:?}");
    }
    assert_eq!(srv.bad_inputs().len(), 5, "{:?}", srv.bad_inputs());
    srv.stop().await;
}

// ---------------------------------------------------------------------------
// The command line

pub(crate) fn syncscope() -> Command {
    Command::new(env!("CARGO_BIN_EXE_syncscope"))
}

/// `syncscope serve` on a free port, killed when dropped.
pub(crate) struct ServeProcess {
    child: Child,
    pub(crate) addr: String,
    /// The "listening on" line.
    pub(crate) banner: String,
    /// What serve wrote to stderr after it, so far (the generated
    /// passwords come right after it).
    lines: std::sync::mpsc::Receiver<String>,
}

impl ServeProcess {
    pub(crate) fn start(extra: &[&str]) -> ServeProcess {
        let mut c = syncscope();
        c.args(["serve", "--listen", "127.0.0.1:0"]).args(extra);
        Self::spawn(c)
    }

    /// Runs `command` (a `syncscope serve`, or a shell that execs one).
    pub(crate) fn spawn(mut command: Command) -> ServeProcess {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx.recv_timeout(WAIT).expect("serve prints its address");
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned();
        ServeProcess {
            child,
            addr,
            banner: line,
            lines: rx,
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for serve to exit (after a signal): its status and what it
    /// wrote to stderr since the last line read.
    pub(crate) fn wait_and_rest(&mut self) -> (std::process::ExitStatus, Vec<String>) {
        let status = self.child.wait().expect("serve exits");
        let mut rest = Vec::new();
        while let Ok(l) = self.lines.recv_timeout(WAIT) {
            rest.push(l);
        }
        (status, rest)
    }

    /// The generated password of `user` (printed after the banner).
    pub(crate) fn password(&self, user: &str) -> String {
        let want = format!("password of {user}: ");
        loop {
            let line = self
                .lines
                .recv_timeout(WAIT)
                .unwrap_or_else(|_| panic!("serve printed no password for {user}"));
            if let Some(p) = line.split(&want).nth(1) {
                return p.trim().to_owned();
            }
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` as [`run_bounded`] does, checks it succeeded, and reads its
/// stdout as NDJSON.
pub(crate) fn ndjson_bounded(cmd: Command) -> Vec<serde_json::Value> {
    let out = run_bounded(cmd);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("ndjson"))
        .collect()
}

pub(crate) fn run_bounded(mut cmd: Command) -> std::process::Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(WAIT * 2) {
        Ok(out) => out.expect("output"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(id.to_string()).status();
            panic!("command did not finish: {cmd:?}");
        }
    }
}

/// A message printed by `listen --format ndjson` has exactly these keys.
pub(crate) fn assert_message_keys(m: &serde_json::Value) {
    let mut keys: Vec<&str> = m
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(keys, ["client_msg_id", "content", "from", "msg_id", "to"]);
}

#[test]
fn cli_send_and_listen() {
    let serve = ServeProcess::start(&["--memory", "--users", "alice,bob"]);
    let client = |args: &[&str]| {
        let mut c = syncscope();
        c.args(["client", "--server", &serve.addr]).args(args);
        c
    };
    let mut acks = Vec::new();
    for text in ["first", "second"] {
        let out = run_bounded(client(&["--user", "alice", "send", "bob", text]));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ack: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ack JSON");
        acks.push(ack);
    }
    let out = run_bounded(client(&[
        "--user",
        "bob",
        "listen",
        "--count",
        "2",
        "--timeout",
        "10",
        "--format",
        "ndjson",
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2);
    for (m, (ack, text)) in lines.iter().zip(acks.iter().zip(["first", "second"])) {
        assert_message_keys(m);
        assert_eq!(
            (&m["from"], &m["to"], &m["content"]),
            (&"alice".into(), &"bob".into(), &text.into())
        );
        assert_eq!(m["msg_id"], ack["msg_id"]);
        assert_eq!(m["client_msg_id"], ack["client_msg_id"]);
    }
    // Confirmed on exit: a second listen has nothing and times out (exit 1).
    let out = run_bounded(client(&[
        "--user",
        "bob",
        "listen",
        "--count",
        "1",
        "--timeout",
        "1",
    ]));
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    // Not a listed user: refused for good (exit 2).
    let out = run_bounded(client(&["--user", "mallory", "listen", "--timeout", "5"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown user"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `listen --count N` with more than N waiting confirms what it printed,
/// and only that: the next run goes on from there (long and short link).
#[test]
fn cli_listen_with_a_count_confirms_what_it_printed_and_no_more() {
    let serve = ServeProcess::start(&["--memory", "--users", "alice,bob,carol"]);
    let client = |args: &[&str]| {
        let mut c = syncscope();
        c.args(["client", "--server", &serve.addr]).args(args);
        c
    };
    for (user, link) in [("bob", None), ("carol", Some("--short"))] {
        for text in ["one", "two", "three", "four"] {
            let out = run_bounded(client(&["--user", "alice", "send", user, text]));
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let listen = |count: &str, timeout: &str| {
            let mut args = vec!["--user", user];
            args.extend(link);
            args.extend(["listen", "--count", count, "--timeout", timeout]);
            args.extend(["--format", "ndjson"]);
            let out = run_bounded(client(&args));
            let texts: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| {
                    let m: serde_json::Value = serde_json::from_str(l).expect("ndjson");
                    m["content"].as_str().unwrap_or_default().to_owned()
                })
                .collect();
            (out.status.code(), texts)
        };
        assert_eq!(listen("1", "10"), (Some(0), vec!["one".into()]), "{link:?}");
        assert_eq!(
            listen("2", "10"),
            (Some(0), vec!["two".into(), "three".into()]),
            "{link:?}"
        );
        // The rest, once; then nothing (timed out, exit 1).
        assert_eq!(listen("5", "2"), (Some(1), vec!["four".into()]), "{link:?}");
        assert_eq!(listen("1", "1"), (Some(1), vec![]), "{link:?}");
    }
}

#[test]
fn cli_send_without_a_server_fails_with_exit_1() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let out = run_bounded({
        let mut c = syncscope();
        c.args([
            "client",
            "--server",
            &format!("127.0.0.1:{port}"),
            "--user",
            "alice",
            "send",
            "bob",
            "hi",
            "--retries",
            "1",
            "--timeout",
            "0.5",
        ]);
        c
    });
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("after 2 attempt(s)"), "{err}");
}

#[test]
fn cli_serve_stops_on_sigint() {
    let mut serve = ServeProcess::start(&["--memory"]);
    let status = Command::new("kill")
        .args(["-INT", &serve.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = serve.child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(start.elapsed() < WAIT, "serve did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}
