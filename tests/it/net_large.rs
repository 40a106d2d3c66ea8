//! Large messages (issue 13, item 4): sync pages are capped by bytes so
//! every answer fits the frame limit the client and server share, at least
//! one message per page; a message no page could carry is refused when it
//! is sent, with a clear error.

use tokio::time::Instant;

use syncscope::net::client::{self, ClientError, ListenOptions, ListenSink, SendOptions};
use syncscope::net::frame::{page_bytes, DEFAULT_MAX_FRAME_LEN};
use syncscope::net::messages::{ret, ChatMessage};
use syncscope::net::store::MESSAGE_OVERHEAD;
use syncscope::net::webclient;

use crate::net::{sync_all, within, TestServer, WAIT};

/// A listener's sink: what came, and how often it had to reconnect.
#[derive(Default)]
struct Collect {
    got: Vec<ChatMessage>,
    reconnects: usize,
}

impl ListenSink for Collect {
    fn message(&mut self, m: &ChatMessage) -> bool {
        self.got.push(m.clone());
        true
    }

    fn reconnecting(&mut self, _error: &ClientError, _delay: std::time::Duration) {
        self.reconnects += 1;
    }
}

/// `client listen` as `user`/`device` until `count` messages came (or
/// [`WAIT`]): the contents in order, and the reconnects it needed.
async fn listen(srv: &TestServer, user: &str, device: &str, count: usize) -> (Vec<String>, usize) {
    let mut sink = Collect::default();
    let opts = ListenOptions {
        count: Some(count),
        deadline: Some(Instant::now() + WAIT),
    };
    let outcome = client::listen(&srv.client(user, device), &opts, &mut sink)
        .await
        .expect("listen");
    assert!(
        !outcome.timed_out,
        "{user}/{device} got {} of {count} messages ({} reconnects)",
        outcome.received, sink.reconnects
    );
    let got = sink.got.into_iter().map(|m| m.content).collect();
    (got, sink.reconnects)
}

/// A text of `len` bytes that starts with `tag`.
fn big(tag: &str, len: usize) -> String {
    let mut s = tag.to_owned();
    s.extend(std::iter::repeat_n('x', len - tag.len()));
    s
}

/// Short names of contents, for assertions that print well.
fn tags(contents: &[String]) -> Vec<String> {
    contents
        .iter()
        .map(|c| format!("{}:{}", c.split('x').next().unwrap_or(""), c.len()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_messages_of_600_kb_reach_a_listener_and_a_new_device() {
    let srv = TestServer::start(|_| {}).await;
    // The web device gets what comes after its login.
    let mut web = within("web login", webclient::open(&srv.client("bob", "web")))
        .await
        .expect("web login");
    let sent = vec![big("one", 600_000), big("two", 600_000), "after".to_owned()];
    for text in &sent {
        srv.send("alice", "bob", text).await;
    }
    // Both large messages together are over the 1 MiB frame: two pages.
    let (got, reconnects) = listen(&srv, "bob", "phone", 3).await;
    assert_eq!(tags(&got), tags(&sent));
    assert_eq!(reconnects, 0);
    // A device that never synced gets them too, one large one per page.
    let mut tablet = srv.session("bob", "tablet").await;
    let mut pages = Vec::new();
    loop {
        let page = within("newsync", tablet.sync()).await.expect("newsync");
        pages.push((page.messages.len(), page.more));
        tablet.adopt(page.synckey);
        if !page.more {
            break;
        }
    }
    assert_eq!(pages, [(1, true), (2, false)]);
    // The web device too (its answers are JSON, paged the same way).
    let mut pages = Vec::new();
    loop {
        let page = within("webwxsync", web.sync()).await.expect("webwxsync");
        pages.push((page.messages.len(), page.more));
        assert!(page.messages.iter().all(|m| m.from == "alice"));
        web.adopt(&page);
        if !page.more {
            break;
        }
    }
    assert_eq!(pages, [(1, true), (2, false)]);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_messages_of_120_kb_do_not_hold_up_the_ones_after() {
    let srv = TestServer::start(|_| {}).await;
    let mut sent: Vec<String> = (0..10).map(|i| big(&format!("m{i}"), 120_000)).collect();
    sent.push("small".to_owned());
    for text in &sent {
        srv.send("alice", "carol", text).await;
    }
    let (got, reconnects) = listen(&srv, "carol", "phone", sent.len()).await;
    assert_eq!(tags(&got), tags(&sent));
    assert_eq!(reconnects, 0);
    let mut laptop = srv.session("carol", "laptop").await;
    assert_eq!(tags(&contents(sync_all(&mut laptop).await)), tags(&sent));
    srv.stop().await;
}

fn contents(ms: Vec<ChatMessage>) -> Vec<String> {
    ms.into_iter().map(|m| m.content).collect()
}

/// Sends `text` from alice to bob once; the refusal it must get.
async fn refused(srv: &TestServer, text: &str) -> (i32, String) {
    let opts = SendOptions::default();
    let e = within(
        "send",
        client::send(&srv.client("alice", "phone"), "bob", text, &opts),
    )
    .await
    .expect_err("refused");
    assert_eq!(e.attempts, 1, "a refusal is not retried: {e}");
    match e.last {
        ClientError::Refused { ret, message, .. } => (ret, message),
        other => panic!("not a refusal: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_no_page_can_carry_is_refused_when_sent() {
    let page = page_bytes(DEFAULT_MAX_FRAME_LEN);
    let srv = TestServer::start(|_| {}).await;
    // Its request fits the 1 MiB frame, its page would not.
    let (code, why) = refused(&srv, &big("huge", 1_048_000)).await;
    assert_eq!(code, ret::TOO_LARGE);
    assert!(
        why.contains("too large") && why.contains(&page.to_string()),
        "{why}"
    );
    // Nothing was stored: bob gets only what follows.
    srv.send("alice", "bob", "small").await;
    let mut bob = srv.session("bob", "phone").await;
    assert_eq!(contents(sync_all(&mut bob).await), ["small"]);
    // The largest message a page carries (a ClientMsgId has at most 20
    // digits) is stored, and its answer fits the client's frame limit.
    let largest = page - MESSAGE_OVERHEAD - "alice".len() - "bob".len() - 20;
    srv.send("alice", "bob", &big("largest", largest)).await;
    let got = contents(sync_all(&mut bob).await);
    assert_eq!(tags(&got), [format!("largest:{largest}")]);
    srv.stop().await;

    // A server that reads larger frames still pages for the shared limit,
    // so it refuses what it could read but never deliver, on every link.
    let srv = TestServer::start(|c| c.max_frame_len = 4 << 20).await;
    let text = big("two-mb", 2 << 20);
    let (code, why) = refused(&srv, &text).await;
    assert_eq!(code, ret::TOO_LARGE, "{why}");
    let mut web = within("web login", webclient::open(&srv.client("alice", "web")))
        .await
        .expect("web login");
    let e = within("webwxsendmsg", web.send("bob", &text, 7))
        .await
        .expect_err("refused");
    match &e {
        ClientError::Refused { ret, message, .. } => {
            assert_eq!(*ret, ret::TOO_LARGE);
            assert!(message.contains("too large"), "{message}");
        }
        other => panic!("{other}"),
    }
    assert!(e.is_permanent());
    let mut bob = srv.session("bob", "phone").await;
    assert!(sync_all(&mut bob).await.is_empty());
    srv.stop().await;
}
