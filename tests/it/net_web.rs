//! The web client (`syncscope::net::webclient`, `syncscope client --web`)
//! against the reference server: servers on 127.0.0.1 port 0 in the test
//! (the helpers of `net.rs`), and the command line. Every wait is bounded.

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::{sleep, Instant};

use syncscope::net::client::{ClientError, ListenOptions, ListenSink, SendOptions};
use syncscope::net::messages::ChatMessage;
use syncscope::net::webclient::{self, WebSession};

use crate::net::{
    assert_message_keys, no_push, receive, run_bounded, sync_all, syncscope, within, ServeProcess,
    TestServer, WAIT,
};

/// Logs `user` in on the web (login, webwxinit, statusnotify).
async fn web(srv: &TestServer, user: &str) -> WebSession {
    within("web login", webclient::open(&srv.client(user, "web")))
        .await
        .unwrap_or_else(|e| panic!("{user} logs in on the web: {e}"))
}

/// webwxsync until ContinueFlag is 0, adopting each page's keys.
async fn web_sync_all(s: &mut WebSession) -> Vec<ChatMessage> {
    let mut all = Vec::new();
    loop {
        let page = within("webwxsync", s.sync()).await.expect("webwxsync");
        all.extend(page.messages.iter().cloned());
        s.adopt(&page);
        if !page.more {
            return all;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_user_receives_from_and_sends_to_the_long_link() {
    let srv = TestServer::start(|_| {}).await;
    let mut alice = srv.session("alice", "phone").await;
    assert!(sync_all(&mut alice).await.is_empty());
    let mut bob = web(&srv, "bob").await;
    assert_eq!(bob.user_name, "@bob");
    assert!(bob.uin > 0 && !bob.sid.is_empty() && !bob.pass_ticket.is_empty());
    assert!(bob.skey.starts_with('@'), "skey {:?}", bob.skey);
    assert!(bob.device_id.len() == 16 && bob.device_id.starts_with('e'));
    assert!(!bob.synckey.is_empty());
    assert!(web_sync_all(&mut bob).await.is_empty());

    // Long link -> web.
    let ack = srv.send("alice", "bob", "hello web").await;
    assert_eq!(
        within("synccheck", bob.synccheck())
            .await
            .expect("synccheck"),
        2
    );
    let got = web_sync_all(&mut bob).await;
    assert_eq!(
        got,
        [ChatMessage {
            from: "alice".into(),
            to: "bob".into(),
            content: "hello web".into(),
            msg_id: ack.msg_id,
            client_msg_id: Some(ack.client_msg_id.clone()),
            seq: Some(1),
            msg_type: 1,
        }]
    );
    // Presenting the adopted key consumed it: nothing is offered again.
    assert!(web_sync_all(&mut bob).await.is_empty());

    // Web -> long link, then a resend with the same ClientMsgId.
    let sent = within("webwxsendmsg", bob.send("alice", "hi from the web", 77))
        .await
        .expect("webwxsendmsg");
    assert_eq!(sent.client_msg_id, "77");
    let got = receive(&mut alice).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (
            got[0].from.as_str(),
            got[0].to.as_str(),
            got[0].content.as_str()
        ),
        ("bob", "alice", "hi from the web")
    );
    assert_eq!(got[0].msg_id, sent.msg_id);
    assert_eq!(got[0].client_msg_id.as_deref(), Some("77"));
    let again = within("webwxsendmsg", bob.send("@alice", "hi from the web", 77))
        .await
        .expect("resend");
    assert_eq!(again.msg_id, sent.msg_id);
    no_push(&mut alice).await;
    assert!(sync_all(&mut alice).await.is_empty());
    let stored: Vec<_> = srv
        .store
        .lock()
        .unwrap()
        .messages()
        .expect("messages")
        .into_iter()
        .filter(|m| m.client_msg_id.as_deref() == Some("77"))
        .collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(
        (stored[0].from.as_str(), stored[0].from_device.as_str()),
        ("bob", "web")
    );
    // The web sender does not get its own message back.
    assert!(web_sync_all(&mut bob).await.is_empty());

    // After logout the session is refused as logged out (1101).
    within("logout", bob.logout()).await.expect("logout");
    match within("webwxsync", bob.sync()).await {
        Err(ClientError::Refused { what, ret, .. }) => {
            assert_eq!((what, ret), ("webwxsync", 1101))
        }
        other => panic!("expected a refusal: {other:?}"),
    }
    match within("synccheck", bob.synccheck()).await {
        Err(ClientError::Refused { what, ret, .. }) => {
            assert_eq!((what, ret), ("synccheck", 1101))
        }
        other => panic!("expected a refusal: {other:?}"),
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synccheck_is_answered_when_a_message_arrives() {
    // The server holds a synccheck up to 25 s (its default); the message
    // below must end it long before that, well within `within`'s bound.
    let srv = TestServer::start(|_| {}).await;
    let mut bob = web(&srv, "bob").await;
    assert!(web_sync_all(&mut bob).await.is_empty());
    let started = Instant::now();
    let (selector, ack) = within("synccheck answered early", async {
        tokio::join!(bob.synccheck(), async {
            sleep(Duration::from_millis(300)).await;
            srv.send("alice", "bob", "wake up").await
        })
    })
    .await;
    assert_eq!(selector.expect("synccheck"), 2);
    assert!(started.elapsed() < Duration::from_secs(20));
    let got = web_sync_all(&mut bob).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0].msg_id, got[0].content.as_str()),
        (ack.msg_id, "wake up")
    );
    srv.stop().await;

    // With nothing to tell, the hold ends with selector 0.
    let srv = TestServer::start(|c| c.web_poll = Duration::from_millis(200)).await;
    let mut bob = web(&srv, "bob").await;
    web_sync_all(&mut bob).await;
    assert_eq!(
        within("synccheck", bob.synccheck())
            .await
            .expect("synccheck"),
        0
    );
    srv.stop().await;
}

/// Collects messages; tells the test once it is listening.
struct Collect {
    got: Vec<ChatMessage>,
    ready: Option<oneshot::Sender<()>>,
    connections: usize,
}

impl ListenSink for Collect {
    fn message(&mut self, m: &ChatMessage) -> bool {
        self.got.push(m.clone());
        true
    }

    fn connected(&mut self) {
        self.connections += 1;
        if let Some(tx) = self.ready.take() {
            let _ = tx.send(());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_and_send_over_the_web() {
    let srv = TestServer::start(|_| {}).await;
    let config = srv.client("bob", "web");
    let (tx, rx) = oneshot::channel();
    let mut sink = Collect {
        got: Vec::new(),
        ready: Some(tx),
        connections: 0,
    };
    let opts = ListenOptions {
        count: Some(2),
        deadline: Some(Instant::now() + WAIT),
    };
    let (outcome, acks) = tokio::join!(webclient::listen(&config, &opts, &mut sink), async {
        within("web listener ready", rx).await.expect("ready");
        let a = srv.send("alice", "bob", "one").await;
        let b = srv.send("carol", "bob", "two").await;
        [a, b]
    });
    let outcome = outcome.expect("listen");
    assert!(!outcome.timed_out && outcome.received == 2, "{outcome:?}");
    assert_eq!(sink.connections, 1);
    let got: Vec<(&str, &str, u64)> = sink
        .got
        .iter()
        .map(|m| (m.from.as_str(), m.content.as_str(), m.msg_id))
        .collect();
    assert_eq!(
        got,
        [
            ("alice", "one", acks[0].msg_id),
            ("carol", "two", acks[1].msg_id)
        ]
    );

    // webclient::send, twice with one ClientMsgId: one message.
    let mut alice = srv.session("alice", "phone").await;
    sync_all(&mut alice).await;
    let opts = SendOptions {
        client_msg_id: Some(4242),
        ..SendOptions::default()
    };
    let first = within(
        "web send",
        webclient::send(&config, "alice", "sent by the web", &opts),
    )
    .await
    .expect("web send");
    let second = within(
        "web send",
        webclient::send(&config, "alice", "sent by the web", &opts),
    )
    .await
    .expect("web resend");
    assert_eq!(first.msg_id, second.msg_id);
    assert_eq!(first.client_msg_id, "4242");
    let got = receive(&mut alice).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].msg_id, got[0].from.as_str()), (first.msg_id, "bob"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_refusals_are_clear() {
    let srv = TestServer::start(|c| {
        c.test_users = vec!["alice".into(), "bob".into()];
        c.auto_register = false;
    })
    .await;
    for u in ["alice", "bob"] {
        srv.store.lock().unwrap().user(u, true).expect("add user");
    }
    // Not a test user: the server refuses the jslogin for good.
    let e = within("web login", webclient::open(&srv.client("mallory", "web")))
        .await
        .expect_err("refused");
    assert!(
        matches!(
            e,
            ClientError::Http {
                what: "jslogin",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.is_permanent(), "{e}");
    assert!(e.to_string().contains("mallory"), "{e}");
    // A name the protocol cannot carry is refused before any request.
    let e = within("web login", webclient::open(&srv.client("a b", "web")))
        .await
        .expect_err("refused");
    assert!(
        matches!(e, ClientError::InvalidName { .. }) && e.is_permanent(),
        "{e}"
    );
    // Sending to nobody: refused with the server's Ret and ErrMsg, no retry.
    let mut bob = web(&srv, "bob").await;
    let e = within("webwxsendmsg", bob.send("nobody", "hello?", 5))
        .await
        .expect_err("refused");
    match &e {
        ClientError::Refused { what, message, .. } => {
            assert_eq!(*what, "webwxsendmsg");
            assert!(message.contains("nobody"), "{message}");
        }
        other => panic!("{other}"),
    }
    assert!(e.is_permanent(), "{e}");
    let failed = within(
        "web send",
        webclient::send(
            &srv.client("bob", "web"),
            "nobody",
            "hello?",
            &SendOptions::default(),
        ),
    )
    .await
    .expect_err("not confirmed");
    assert_eq!(failed.attempts, 1);
    let addr = srv.addr.to_string();
    srv.stop().await;
    // No server at all: a connect error naming the address, and retries.
    let failed = within(
        "web send",
        webclient::send(
            &syncscope::net::client::Config::new(addr.clone(), "bob"),
            "alice",
            "x",
            &SendOptions {
                attempts: 2,
                backoff: Duration::from_millis(10),
                client_msg_id: None,
            },
        ),
    )
    .await
    .expect_err("no server");
    assert_eq!(failed.attempts, 2);
    assert!(
        failed.to_string().contains(&addr),
        "{failed}: names the server"
    );
}

#[test]
fn cli_web_listen_and_send() {
    let serve = ServeProcess::start(&["--memory", "--users", "alice,bob"]);
    let client = |args: &[&str]| {
        let mut c = syncscope();
        c.args(["client", "--server", &serve.addr]).args(args);
        c
    };
    let mut listener = client(&[
        "--user",
        "bob",
        "--web",
        "listen",
        "--count",
        "1",
        "--timeout",
        "20",
        "--format",
        "ndjson",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn listen");
    let stderr = listener.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let ready = rx.recv_timeout(WAIT);
    if !matches!(&ready, Ok(l) if l.contains("listening as bob (web)")) {
        let _ = listener.kill();
        panic!("no readiness line from the web listener: {ready:?}");
    }
    let out = run_bounded(client(&["--user", "alice", "send", "bob", "to the web"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ack: Value = serde_json::from_slice(&out.stdout).expect("ack JSON");
    // The listener exits by itself after one message.
    let deadline = std::time::Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = listener.try_wait().expect("wait") {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = listener.kill();
            panic!("the web listener did not exit");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    listener
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(status.success(), "{status}: {rest:?}");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let m = &lines[0];
    assert_message_keys(m);
    assert_eq!(
        (&m["from"], &m["to"], &m["content"]),
        (&"alice".into(), &"bob".into(), &"to the web".into())
    );
    assert_eq!(m["msg_id"], ack["msg_id"]);
    assert_eq!(m["client_msg_id"], ack["client_msg_id"]);

    // The web user answers; alice's phone gets it.
    let out = run_bounded(client(&["--user", "bob", "--web", "send", "alice", "back"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: Value = serde_json::from_slice(&out.stdout).expect("ack JSON");
    assert!(reply["msg_id"].as_u64().is_some_and(|id| id > 0), "{reply}");
    let out = run_bounded(client(&[
        "--user",
        "alice",
        "listen",
        "--count",
        "1",
        "--timeout",
        "10",
        "--format",
        "ndjson",
    ]));
    assert!(out.status.success());
    let m: Value = serde_json::from_slice(&out.stdout).expect("one message");
    assert_eq!(
        (&m["from"], &m["content"], &m["msg_id"]),
        (&"bob".into(), &"back".into(), &reply["msg_id"])
    );
    // --web and --device do not go together (usage: exit 2).
    let out = run_bounded(client(&[
        "--user", "bob", "--web", "--device", "pad", "send", "alice", "x",
    ]));
    assert_eq!(out.status.code(), Some(2));
    // Not a test user: refused for good, the step named (exit 1, no retry loop).
    let out = run_bounded(client(&["--user", "mallory", "--web", "send", "bob", "x"]));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("jslogin") && err.contains("403"), "{err}");
}
