//! Receipts through `syncscope serve`: delivered when a device of the
//! recipient confirms a message, read when it reports the chat read
//! (statusnotify Code 1); queued for the sender's devices, an offline one
//! included, and delivered in order when it comes back; `send --wait`.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::net::{run_bounded, syncscope, ServeProcess};

fn client(serve: &ServeProcess, args: &[&str]) -> Command {
    let mut c = syncscope();
    c.args(["client", "--server", &serve.addr]).args(args);
    c
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_lines(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn send(serve: &ServeProcess, text: &str) -> u64 {
    let out = run_bounded(client(serve, &["--user", "alice", "send", "bob", text]));
    assert!(out.status.success(), "{}", err(&out));
    serde_json::from_slice::<Value>(&out.stdout).expect("ack")["msg_id"]
        .as_u64()
        .expect("msg_id")
}

#[test]
fn receipts_reach_an_offline_sender_in_order() {
    let serve = ServeProcess::start(&["--memory", "--users", "alice,bob", "--receipts"]);
    // alice sends two messages and goes away.
    let (m1, m2) = (send(&serve, "one"), send(&serve, "two"));
    // bob reads both (each reported read once printed).
    let out = run_bounded(client(
        &serve,
        &[
            "--user",
            "bob",
            "listen",
            "--count",
            "2",
            "--timeout",
            "10",
            "--read",
        ],
    ));
    assert!(out.status.success(), "{}", err(&out));
    // alice's phone comes back: the receipts, in order.
    let out = run_bounded(client(
        &serve,
        &[
            "--user",
            "alice",
            "listen",
            "--receipts",
            "--format",
            "ndjson",
            "--timeout",
            "2",
        ],
    ));
    assert_eq!(out.status.code(), Some(1), "timed out: {}", err(&out));
    let got: Vec<(String, u64, String, String)> = json_lines(&out)
        .iter()
        .map(|l| {
            let r = &l["receipt"];
            (
                r["kind"].as_str().expect("kind").to_owned(),
                r["msg_id"].as_u64().expect("msg_id"),
                r["user"].as_str().expect("user").to_owned(),
                r["device"].as_str().expect("device").to_owned(),
            )
        })
        .collect();
    let r = |kind: &str, id| (kind.to_owned(), id, "bob".to_owned(), "phone".to_owned());
    assert_eq!(
        got,
        [
            r("delivered", m1),
            r("read", m1),
            r("delivered", m2),
            r("read", m2)
        ]
    );
    // Confirmed: not offered again.
    let out = run_bounded(client(
        &serve,
        &["--user", "alice", "listen", "--receipts", "--timeout", "1"],
    ));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A message only delivered (bob listens without --read): one receipt.
    let m3 = send(&serve, "three");
    let out = run_bounded(client(
        &serve,
        &["--user", "bob", "listen", "--count", "1", "--timeout", "10"],
    ));
    assert!(out.status.success(), "{}", err(&out));
    let out = run_bounded(client(
        &serve,
        &["--user", "alice", "listen", "--receipts", "--timeout", "1"],
    ));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(
        lines[0].starts_with(&format!(
            "receipt: msg_id {m3} delivered to bob (phone) at "
        )),
        "{text}"
    );
}

/// Without `serve --receipts`, nothing is made: the conversation stays the
/// one the shipped samples recorded.
#[test]
fn receipts_are_off_by_default() {
    let serve = ServeProcess::start(&["--memory", "--users", "alice,bob"]);
    send(&serve, "one");
    let out = run_bounded(client(
        &serve,
        &[
            "--user",
            "bob",
            "listen",
            "--count",
            "1",
            "--timeout",
            "10",
            "--read",
        ],
    ));
    assert!(out.status.success(), "{}", err(&out));
    let out = run_bounded(client(
        &serve,
        &["--user", "alice", "listen", "--receipts", "--timeout", "1"],
    ));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn send_wait_read_returns_once_the_recipient_reads() {
    let serve = ServeProcess::start(&["--memory", "--users", "alice,bob", "--receipts"]);
    let mut waiting = client(
        &serve,
        &[
            "--user",
            "alice",
            "send",
            "bob",
            "are you there?",
            "--wait",
            "read",
            "--wait-timeout",
            "20",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn send --wait");
    let out = run_bounded(client(
        &serve,
        &[
            "--user",
            "bob",
            "listen",
            "--count",
            "1",
            "--timeout",
            "10",
            "--read",
        ],
    ));
    assert!(out.status.success(), "{}", err(&out));
    let limit = Instant::now() + Duration::from_secs(20);
    while waiting.try_wait().expect("try_wait").is_none() {
        assert!(Instant::now() < limit, "send --wait read did not return");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = waiting.wait_with_output().expect("output");
    assert!(out.status.success(), "{}", err(&out));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[1]["receipt"]["kind"], "read");
    assert_eq!(lines[1]["receipt"]["msg_id"], lines[0]["msg_id"]);
    // Nobody reads: exit 1 at the wait's end.
    let out = run_bounded(client(
        &serve,
        &[
            "--user",
            "alice",
            "send",
            "bob",
            "hello?",
            "--wait",
            "read",
            "--wait-timeout",
            "1",
        ],
    ));
    assert_eq!(out.status.code(), Some(1), "{}", err(&out));
    assert!(err(&out).contains("no read receipt"), "{}", err(&out));
}
