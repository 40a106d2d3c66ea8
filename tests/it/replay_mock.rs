//! `serve --replay`: the mock answers the reference clients (long link
//! and web) from a shipped sample, and they get the messages the capture
//! holds (read from the recording, not written here); unmatched requests
//! by policy; the CLI's errors. Every wait is bounded.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use syncscope::body::messages::{self, NewSyncResponse};
use syncscope::capture::Reader;
use syncscope::net::client::{self, ClientError, ListenOptions, ListenSink, Session};
use syncscope::net::messages::{ret, ChatMessage};
use syncscope::net::webclient;
use syncscope::proto::commands::{NEWSENDMSG, NEWSYNC};
use syncscope::replay::mock::{self, Applied, Event, Mock, Summary, Unmatched};
use syncscope::replay::{schema, Recording, Step};

use crate::net::{run_bounded, ServeProcess, WAIT};

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("samples/serve-client-{name}.pcapng"))
}

fn recording(name: &str) -> Recording {
    let mut r = Reader::open(&sample(name)).expect("sample opens");
    let (mut opts, _) = schema::options(&[], &[], None).expect("built-in schema");
    Recording::read(&mut r, &mut opts, syncscope::flow::Config::default())
}

/// The texts the recording's long-link newsync answers delivered to
/// `user`, each message once, in order.
fn recorded_longlink_texts(rec: &Recording, user: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut texts = Vec::new();
    for s in &rec.sessions {
        for st in &s.steps {
            let Step::Frame {
                request,
                answer: Some(a),
            } = st
            else {
                continue;
            };
            if request.cmd != NEWSYNC {
                continue;
            }
            let resp: NewSyncResponse =
                messages::decode("NewSyncResponse", &a.body).expect("recorded answer decodes");
            for m in messages::add_msgs(&resp).expect("AddMsgs") {
                let m = m.to_chat();
                if m.to == user && !seen.contains(&m.msg_id) {
                    seen.push(m.msg_id);
                    texts.push(m.content);
                }
            }
        }
    }
    texts
}

/// The texts the recording's webwxsync answers delivered to `user`.
fn recorded_web_texts(rec: &Recording, user: &str) -> Vec<String> {
    let mut texts = Vec::new();
    for s in &rec.sessions {
        for st in &s.steps {
            let Step::Http { name, response, .. } = st else {
                continue;
            };
            if name != "webwxsync" {
                continue;
            }
            for m in response.value["AddMsgList"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if let Some(c) = webclient::chat_message(m).filter(|c| c.to == user) {
                    if !texts.contains(&c.content) {
                        texts.push(c.content);
                    }
                }
            }
        }
    }
    texts
}

struct Running {
    addr: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Summary>,
    events: Arc<Mutex<Vec<Event>>>,
}

impl Running {
    async fn start(name: &str, unmatched: Unmatched) -> Running {
        Running::start_path(&sample(name), unmatched).await
    }

    async fn start_path(capture: &Path, unmatched: Unmatched) -> Running {
        let mut r = Reader::open(capture).expect("the capture opens");
        let (mut opts, _) = schema::options(&[], &[], None).unwrap();
        let rec = Recording::read(&mut r, &mut opts, syncscope::flow::Config::default());
        let (opts, _) = schema::options(&[], &[], None).unwrap();
        let mock = Arc::new(Mock::new(&rec, opts));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let events = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&events);
        let config = mock::Config {
            unmatched,
            web_poll: Duration::from_secs(2),
            log: Some(Arc::new(move |e: &Event| {
                log.lock().unwrap().push(e.clone())
            })),
            ..mock::Config::default()
        };
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(mock::serve(listener, mock, config, async move {
            let _ = rx.await;
        }));
        Running {
            addr,
            stop: Some(tx),
            task,
            events,
        }
    }

    async fn stop(mut self) -> (Summary, Vec<Event>) {
        let _ = self.stop.take().map(|s| s.send(()));
        let summary = tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the mock stops")
            .unwrap();
        let events = self.events.lock().unwrap().clone();
        (summary, events)
    }
}

#[derive(Default)]
struct Collect(Vec<ChatMessage>);

impl ListenSink for Collect {
    fn message(&mut self, m: &ChatMessage) -> bool {
        self.0.push(m.clone());
        true
    }
}

fn texts(c: &Collect) -> Vec<String> {
    c.0.iter().map(|m| m.content.clone()).collect()
}

fn listen_opts(count: usize) -> ListenOptions {
    ListenOptions {
        count: Some(count),
        deadline: Some(Instant::now() + WAIT),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_long_link_client_gets_the_recorded_messages() {
    let rec = recording("longlink");
    let mock = Running::start("longlink", Unmatched::Error).await;
    for user in ["bob", "alice"] {
        let want = recorded_longlink_texts(&rec, user);
        assert!(!want.is_empty(), "the sample has messages for {user}");
        let mut got = Collect::default();
        let out = client::listen(
            &client::Config::new(&mock.addr, user),
            &listen_opts(want.len()),
            &mut got,
        )
        .await
        .expect("listen");
        assert!(!out.timed_out, "{user}: only {:?} of {want:?}", texts(&got));
        assert_eq!(texts(&got), want, "{user}");
    }
    let (summary, events) = mock.stop().await;
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(summary.unmatched(), 0);
    // bob got his second message because the recorded newnotify followed
    // the answer that delivered the first.
    assert!(summary.pushes >= 2, "{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_client_gets_the_recorded_messages() {
    let rec = recording("web");
    let want = recorded_web_texts(&rec, "bob");
    assert_eq!(want.len(), 1, "the sample's web message: {want:?}");
    let mock = Running::start("web", Unmatched::Error).await;
    let mut got = Collect::default();
    let out = webclient::listen(
        &client::Config::new(&mock.addr, "bob"),
        &listen_opts(want.len()),
        &mut got,
    )
    .await
    .expect("web listen");
    assert!(!out.timed_out);
    assert_eq!(texts(&got), want);
    assert_eq!(got.0[0].from, "alice");
    let (summary, events) = mock.stop().await;
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(summary.unmatched(), 0);
}

/// The recorded MsgId of alice's first newsendmsg.
fn first_send_msg_id(rec: &Recording) -> u64 {
    rec.sessions
        .iter()
        .flat_map(|s| &s.steps)
        .find_map(|st| match st {
            Step::Frame {
                request,
                answer: Some(a),
            } if request.cmd == NEWSENDMSG
                && request.value["List"][0]["ToUserName"]["String"] == "bob" =>
            {
                a.value["List"][0]["MsgId"].as_u64()
            }
            _ => None,
        })
        .expect("alice's send is in the sample")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmatched_send_gets_an_error_frame_under_error() {
    let mock = Running::start("longlink", Unmatched::Error).await;
    let config = client::Config::new(&mock.addr, "alice");
    let mut s = Session::connect(&config, Default::default())
        .await
        .expect("manualauth and identify are recorded");
    let err = s
        .send("bob", "a text nobody recorded", 42)
        .await
        .expect_err("not in the recording");
    match err {
        ClientError::Refused {
            ret: r, message, ..
        } => {
            assert_eq!(r, ret::NOT_RECORDED);
            assert!(message.contains("newsendmsg"), "{message}");
        }
        e => panic!("expected an error frame, got {e}"),
    }
    drop(s);
    let (summary, events) = mock.stop().await;
    assert_eq!(summary.unmatched_error, 1, "{summary:?}");
    assert_eq!(summary.unmatched_nearest, 0);
    assert!(
        matches!(&events[..], [Event::Unmatched { what, applied: Applied::Error, .. }]
                 if what.contains("cmd 237")),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmatched_send_gets_the_nearest_answer_under_nearest() {
    let rec = recording("longlink");
    let mock = Running::start("longlink", Unmatched::Nearest).await;
    let config = client::Config::new(&mock.addr, "alice");
    let mut s = Session::connect(&config, Default::default())
        .await
        .expect("connect");
    let ack = s
        .send("bob", "a text nobody recorded", 42)
        .await
        .expect("answered as the nearest recorded send");
    // Both of alice's recorded sends differ in the text only: the first.
    assert_eq!(ack.msg_id, first_send_msg_id(&rec));
    drop(s);
    let (summary, events) = mock.stop().await;
    assert_eq!(summary.unmatched_nearest, 1, "{summary:?}");
    assert_eq!(summary.unmatched_error, 0);
    match &events[..] {
        [Event::Unmatched {
            applied: Applied::Nearest { differing },
            ..
        }] => assert_eq!(differing, &["List[0].Content".to_string()]),
        e => panic!("{e:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmatched_web_request_gets_a_404_naming_it() {
    let mock = Running::start("web", Unmatched::Error).await;
    let config = client::Config::new(&mock.addr, "bob");
    let mut s = webclient::open(&config)
        .await
        .expect("the login is recorded");
    let err = s
        .send("alice", "a text nobody recorded", 7)
        .await
        .expect_err("not in the recording");
    match err {
        ClientError::Http { status, body, .. } => {
            assert_eq!(status, 404);
            // (an excerpt of the JSON body)
            assert!(body.starts_with("{\"error\":\"serve --replay: the recording has no answer to POST /cgi-bin/mmwebwx-bin/webwxsendmsg with these fields\",\"request\":\"POST webwxsendmsg\""), "{body}");
        }
        e => panic!("expected HTTP 404, got {e}"),
    }
    let (summary, _) = mock.stop().await;
    assert_eq!(summary.unmatched_error, 1, "{summary:?}");
}

// ---------------------------------------------------------------------------
// The command line

fn syncscope() -> Command {
    Command::new(env!("CARGO_BIN_EXE_syncscope"))
}

#[test]
fn a_file_that_is_not_a_capture_is_refused_naming_it() {
    let not = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let mut c = syncscope();
    c.args(["serve", "--listen", "127.0.0.1:0", "--replay"])
        .arg(&not);
    let out = run_bounded(c);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Cargo.toml"), "{err}");
    assert!(err.contains("--replay"), "{err}");
    // --unmatched means nothing without --replay.
    let mut c = syncscope();
    c.args(["serve", "--unmatched", "nearest"]);
    assert_eq!(run_bounded(c).status.code(), Some(2));
}

#[test]
fn cli_mock_answers_reports_unmatched_and_sums_up_at_shutdown() {
    let rec = recording("longlink");
    let path = sample("longlink").display().to_string();
    let mut serve = ServeProcess::start(&["--replay", &path]);
    let (addr, banner) = (serve.addr.clone(), serve.banner.clone());
    assert!(banner.contains("no store"), "{banner}");
    let client = |args: &[&str]| {
        let mut c = syncscope();
        c.args(["client", "--server", &addr]).args(args);
        run_bounded(c)
    };
    let want = recorded_longlink_texts(&rec, "bob");
    let n = want.len().to_string();
    let out = client(&[
        "--user",
        "bob",
        "listen",
        "--count",
        &n,
        "--timeout",
        "10",
        "--format",
        "ndjson",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["content"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(got, want);
    let out = client(&[
        "--user",
        "alice",
        "send",
        "bob",
        "not recorded",
        "--retries",
        "0",
    ]);
    assert!(!out.status.success());
    let _ = Command::new("kill")
        .args(["-INT", &serve.pid().to_string()])
        .status();
    let (status, rest) = serve.wait_and_rest();
    assert!(status.success());
    let unmatched: Vec<&String> = rest
        .iter()
        .filter(|l| l.contains("unmatched: conn"))
        .collect();
    assert_eq!(unmatched.len(), 1, "{rest:?}");
    assert!(unmatched[0].contains("newsendmsg (cmd 237)") && unmatched[0].contains("policy error"));
    let summary = rest
        .iter()
        .find(|l| l.contains("replay summary"))
        .expect("a summary");
    assert!(
        summary.contains("1 unmatched (1 answered with an error"),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_carry_the_live_seq() {
    let rec = recording("longlink");
    let mock = Running::start("longlink", Unmatched::Error).await;
    let mut config = client::Config::new(&mock.addr, "alice");
    config.request_timeout = Duration::from_secs(3);
    let mut s = Session::connect(&config, Default::default())
        .await
        .expect("connect");
    // A newsync first: the send goes with seq 3, recorded with seq 2; the
    // client takes only an answer with its own seq.
    s.sync().await.expect("alice's newsync is recorded");
    let ack = s.send("bob", "hello bob", 42).await.expect("answered");
    assert_eq!(ack.msg_id, first_send_msg_id(&rec));
    drop(s);
    let (summary, events) = mock.stop().await;
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(summary.answered, 4, "{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synccheck_past_the_recorded_ones_is_held_then_told_nothing_new() {
    let mock = Running::start("web", Unmatched::Error).await;
    let mut s = webclient::open(&client::Config::new(&mock.addr, "bob"))
        .await
        .expect("login");
    // The recorded selector (a message came), then nothing recorded left.
    assert_eq!(s.synccheck().await.expect("synccheck"), 2);
    assert_eq!(s.synccheck().await.expect("held synccheck"), 0);
    drop(s);
    let (summary, _) = mock.stop().await;
    assert_eq!(summary.held, 1, "{summary:?}");
    assert_eq!(summary.unmatched(), 0);
}

/// A recording of one long-link session: two newsyncs, a push after each
/// answer.
fn two_syncs_each_followed_by_a_push() -> Recording {
    use syncscope::analyze::{decode_frame_body, ConnKind};
    use syncscope::capture::Timestamp;
    use syncscope::proto::commands::{response, NEWNOTIFY, SEQ_PUSH};
    use syncscope::proto::longlink::Header;
    use syncscope::replay::recording::{Link, Session, Wire};
    let (opts, _) = schema::options(&[], &[], None).unwrap();
    let wire = |cmd: u32, seq: u32, body: &[u8]| Wire {
        ts: Timestamp::new(1_700_000_000, 0, 6),
        cmd,
        seq,
        body: body.to_vec(),
        value: decode_frame_body(&opts, &Header::new(cmd, seq, body.len()), body, true).value,
        mars: false,
    };
    let mut steps = Vec::new();
    for (seq, answer) in [(1, b"\x18\x01".as_slice()), (2, b"\x18\x02".as_slice())] {
        steps.push(Step::Frame {
            request: wire(NEWSYNC, seq, b""),
            answer: Some(wire(response(NEWSYNC), seq, answer)),
        });
        steps.push(Step::Push(wire(NEWNOTIFY, SEQ_PUSH, b"")));
    }
    Recording {
        sessions: vec![Session {
            conn: 0,
            client: "127.0.0.1:1".into(),
            server: "127.0.0.1:2".into(),
            kind: ConnKind::Longlink,
            link: Link::Longlink,
            steps,
        }],
        ..Recording::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_given_again_goes_without_its_pushes() {
    use syncscope::net::frame::Connection;
    use syncscope::proto::commands::{response, NEWNOTIFY, NOOP, SEQ_HEARTBEAT};
    let (opts, _) = schema::options(&[], &[], None).unwrap();
    let mock = Arc::new(Mock::new(&two_syncs_each_followed_by_a_push(), opts));
    assert_eq!(mock.indexed.pushes, 2);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(mock::serve(
        listener,
        mock,
        mock::Config::default(),
        async {
            let _ = rx.await;
        },
    ));
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut conn = Connection::new(stream, 1 << 20);
    // Three syncs (the third gets the second answer again), then a
    // heartbeat: the frames come back in the order they were written.
    for seq in [7, 8, 9] {
        conn.write_frame(NEWSYNC, seq, b"").await.unwrap();
    }
    conn.write_frame(NOOP, SEQ_HEARTBEAT, b"").await.unwrap();
    let mut got = Vec::new();
    loop {
        let f = tokio::time::timeout(WAIT, conn.read_frame())
            .await
            .expect("a frame")
            .unwrap()
            .expect("open");
        got.push((f.header.cmd, f.header.seq, f.body));
        if f.header.cmd == response(NOOP) {
            break;
        }
    }
    let sync = response(NEWSYNC);
    assert_eq!(
        got,
        vec![
            (sync, 7, b"\x18\x01".to_vec()),
            (NEWNOTIFY, 0, vec![]),
            (sync, 8, b"\x18\x02".to_vec()),
            (NEWNOTIFY, 0, vec![]),
            (sync, 9, b"\x18\x02".to_vec()),
            (response(NOOP), SEQ_HEARTBEAT, vec![]),
        ]
    );
    let _ = tx.send(());
    let summary = task.await.unwrap();
    assert_eq!(summary.pushes, 2);
}

// ---------------------------------------------------------------------------
// itchat-uos against the mock of its own session
//
// The web sample was made by syncscope's own web client, which does not
// ask for the contact list (webwxgetcontact) as itchat does at login. So
// the test first records a session of itchat with `serve` through a tap
// (a proxy that keeps what each connection carried), writes it as a
// capture (synthetic TCP around the real bytes), and then runs itchat
// again against `serve --replay` of that capture.

mod tap {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use syncscope::capture::writer::PcapWriter;
    use syncscope::capture::{Linktype, Timestamp};
    use syncscope::synth::{later, Conversation, Side};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::time::Instant;

    struct Conn {
        client: SocketAddr,
        server: SocketAddr,
        opened: Duration,
        /// (when, who sent, bytes), in the order they were forwarded.
        chunks: Vec<(Duration, Side, Vec<u8>)>,
        closed: Option<Duration>,
    }

    /// A proxy to `upstream` that keeps what each connection carried.
    #[derive(Clone)]
    pub struct Tap {
        conns: Arc<Mutex<Vec<Conn>>>,
        start: Instant,
    }

    async fn pump(
        tap: Tap,
        i: usize,
        side: Side,
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
    ) {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            {
                let mut c = tap.conns.lock().unwrap();
                c[i].chunks
                    .push((tap.start.elapsed(), side, buf[..n].to_vec()));
            }
            if to.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
        tap.conns.lock().unwrap()[i].closed = Some(tap.start.elapsed());
    }

    impl Tap {
        /// Listens on loopback; the address to give clients.
        pub async fn start(upstream: String) -> (Tap, SocketAddr) {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let tap = Tap {
                conns: Arc::new(Mutex::new(Vec::new())),
                start: Instant::now(),
            };
            let t = tap.clone();
            tokio::spawn(async move {
                while let Ok((client, peer)) = listener.accept().await {
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        continue;
                    };
                    let i = {
                        let mut c = t.conns.lock().unwrap();
                        c.push(Conn {
                            client: peer,
                            server: addr,
                            opened: t.start.elapsed(),
                            chunks: Vec::new(),
                            closed: None,
                        });
                        c.len() - 1
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::spawn(pump(t.clone(), i, Side::Client, cr, sw));
                    tokio::spawn(pump(t.clone(), i, Side::Server, sr, cw));
                }
            });
            (tap, addr)
        }

        /// What the connections carried, as a pcap of TCP conversations
        /// at the times the tap saw it.
        pub fn pcap(&self) -> Vec<u8> {
            let base = Timestamp::new(1_800_000_000, 0, 6);
            let at = |d: Duration| later(base, d.as_micros() as u64);
            let mut frames: Vec<(Timestamp, usize, Vec<u8>)> = Vec::new();
            let conns = self.conns.lock().unwrap();
            let end = self.start.elapsed();
            for (i, c) in conns.iter().enumerate() {
                let mut conv =
                    Conversation::new(c.client, c.server, 1000 + i as u32 * 7919, 5_000_000);
                let mut push = |ts: Timestamp, fs: Vec<Vec<u8>>| {
                    for f in fs {
                        let n = frames.len();
                        frames.push((ts, n, f));
                    }
                };
                push(at(c.opened), conv.handshake());
                for (t, side, bytes) in &c.chunks {
                    push(at(*t), conv.send(*side, bytes));
                }
                push(at(c.closed.unwrap_or(end)), conv.close());
            }
            frames.sort_by(|a, b| a.0.nanos_since(&b.0).cmp(&0).then(a.1.cmp(&b.1)));
            let mut w = PcapWriter::new(Vec::new(), Linktype::ETHERNET, false).unwrap();
            for (ts, _, f) in &frames {
                w.write(*ts, f, None).unwrap();
            }
            w.into_inner()
        }
    }
}

/// Runs tests/web/itchat_session.py against `base` (as in web_server.rs):
/// its events, in order; `on_login` runs when it has logged in.
fn itchat(
    base: &str,
    peer: &str,
    expected: &str,
    reply: &str,
    on_login: impl FnOnce(),
) -> Vec<Value> {
    let python = crate::web_server::itchat_python();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web/itchat_session.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .args([base, peer, expected, reply, "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // itchat writes a block character to stdout when imported.
            if let Some(at) = line.find('{') {
                if let Ok(v) = serde_json::from_str::<Value>(&line[at..]) {
                    let _ = tx.send(v);
                }
            }
        }
    });
    let mut events = Vec::new();
    let mut on_login = Some(on_login);
    while let Ok(e) = rx.recv_timeout(Duration::from_secs(45)) {
        if e["event"] == "login" {
            if let Some(f) = on_login.take() {
                f();
            }
        }
        let last = e["event"] == "error" || e["event"] == "sent";
        events.push(e);
        if last {
            break;
        }
    }
    let status = child.wait().expect("python exits");
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.success(), "itchat failed: {events:?}\n{err}");
    events
}

fn event<'a>(events: &'a [Value], name: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["event"] == name)
        .unwrap_or_else(|| panic!("no {name} event in {events:?}"))
}

#[test]
fn itchat_gets_the_recorded_messages_from_the_mock() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // 1. itchat logs in to `serve` (test mode: the login is confirmed at
    // once, as alice), bob sends it a message from the long link, it
    // answers; all of itchat's traffic goes through the tap.
    let serve =
        crate::net::ServeProcess::start(&["--memory", "--users", "alice,bob", "--web-poll", "1"]);
    let (tap, tap_addr) = rt.block_on(tap::Tap::start(serve.addr.clone()));
    let ping = "ping from bob's phone";
    let pong = "pong from itchat";
    let server = serve.addr.clone();
    let handle = rt.handle().clone();
    let events = itchat(
        &format!("http://{tap_addr}"),
        "bob",
        ping,
        pong,
        move || {
            let config = client::Config::new(&server, "bob");
            handle
                .block_on(client::send(
                    &config,
                    "alice",
                    ping,
                    &client::SendOptions::default(),
                ))
                .expect("bob's send");
        },
    );
    assert_eq!(event(&events, "received")["text"], ping);
    drop(serve);
    let capture = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("replay-mock-itchat.pcap");
    std::fs::write(&capture, tap.pcap()).unwrap();

    // 2. The mock of that capture: itchat gets the recorded message, and
    // its answer matches the recorded one.
    let mut r = Reader::open(&capture).unwrap();
    let (mut opts, _) = schema::options(&[], &[], None).unwrap();
    let rec = Recording::read(&mut r, &mut opts, syncscope::flow::Config::default());
    let want = recorded_web_texts(&rec, "alice");
    assert_eq!(want, [ping], "the recording holds bob's message");
    let mock = rt.block_on(Running::start_path(&capture, Unmatched::Error));
    let events = itchat(
        &format!("http://{}", mock.addr),
        "bob",
        &want[0],
        pong,
        || {},
    );
    let received = event(&events, "received");
    assert_eq!(received["text"], want[0]);
    assert_eq!(received["from_user"], "@bob");
    assert_eq!(event(&events, "sent")["ret"], 0);
    let (summary, unmatched) = rt.block_on(mock.stop());
    assert!(unmatched.is_empty(), "{unmatched:?}");
    assert!(summary.answered > 5, "{summary:?}");
}

/// Sends `request` (bytes of one HTTP request) on a new connection and
/// reads the response: (status, body).
async fn http_exchange(addr: &str, request: &[u8]) -> (u16, Vec<u8>) {
    use syncscope::proto::http::message::{parse, Kind, Limits, Parse};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    loop {
        if let Parse::Complete(m, _) = parse(&buf, Kind::Response, &Limits::default(), false) {
            return (m.status.unwrap_or(0), m.body.to_vec());
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, s.read(&mut chunk))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n > 0, "closed before a whole response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_short_links_recorded_requests_get_their_recorded_answers() {
    let rec = recording("shortlink");
    let mock = Running::start("shortlink", Unmatched::Error).await;
    let mut n = 0;
    for st in rec.sessions.iter().flat_map(|s| &s.steps) {
        let Step::Http {
            request, response, ..
        } = st
        else {
            continue;
        };
        let m = &request.message;
        let headers: Vec<(String, String)> = m
            .headers
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("connection"))
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect();
        let mut h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        h.push(("Connection", "close"));
        let bytes = syncscope::proto::http::message::encode_request(
            m.method().unwrap(),
            m.path().unwrap(),
            &h,
            &m.body,
        );
        let (status, body) = http_exchange(&mock.addr, &bytes).await;
        assert_eq!(
            status,
            response.message.status().unwrap(),
            "{}",
            m.start_line()
        );
        assert_eq!(body, response.message.body, "{}", m.start_line());
        n += 1;
    }
    assert_eq!(n, 6, "the sample's POSTs");
    let (summary, events) = mock.stop().await;
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(summary.answered, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmatched_web_send_gets_the_nearest_answer_under_nearest() {
    let rec = recording("web");
    let recorded: Vec<u64> = rec
        .sessions
        .iter()
        .flat_map(|s| &s.steps)
        .filter_map(|st| match st {
            Step::Http { name, response, .. } if name == "webwxsendmsg" => {
                response.value["MsgID"].as_str()?.parse().ok()
            }
            _ => None,
        })
        .collect();
    assert_eq!(recorded.len(), 1, "the sample's web send");
    let mock = Running::start("web", Unmatched::Nearest).await;
    let mut s = webclient::open(&client::Config::new(&mock.addr, "bob"))
        .await
        .expect("login");
    let ack = s
        .send("alice", "a text nobody recorded", 7)
        .await
        .expect("answered as the recorded send");
    assert_eq!(ack.msg_id, recorded[0]);
    drop(s);
    let (summary, events) = mock.stop().await;
    assert_eq!(summary.unmatched_nearest, 1, "{summary:?}");
    match &events[..] {
        [Event::Unmatched {
            what,
            applied: Applied::Nearest { differing },
            ..
        }] => {
            assert_eq!(what, "POST webwxsendmsg");
            assert_eq!(differing, &["Msg.Content".to_string()]);
        }
        e => panic!("{e:?}"),
    }
}
