//! `syncscope client --short`: the reference client over the short link
//! (HTTP POST per request) against `syncscope serve`, alongside the long
//! link.

use std::process::{Command, Output};

use serde_json::Value;

use crate::net::{assert_message_keys, run_bounded, syncscope, ServeProcess};

fn client(serve: &ServeProcess, args: &[&str]) -> Command {
    let mut c = syncscope();
    c.args(["client", "--server", &serve.addr]).args(args);
    c
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn lines(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[test]
fn short_link_send_and_listen_meet_the_long_link() {
    let serve = ServeProcess::start(&["--memory", "--users", "alice,bob"]);
    // alice sends over the short link, twice.
    let mut acks = Vec::new();
    for text in ["over the short link", "and again"] {
        let out = run_bounded(client(
            &serve,
            &["--user", "alice", "--short", "send", "bob", text],
        ));
        assert!(out.status.success(), "{}", err(&out));
        let ack: Value = serde_json::from_slice(&out.stdout).expect("ack JSON");
        assert!(ack["msg_id"].as_u64().unwrap() > 0, "{ack}");
        acks.push(ack);
    }
    // bob's phone gets them over the long link...
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
            "--format",
            "ndjson",
        ],
    ));
    assert!(out.status.success(), "{}", err(&out));
    let got = lines(&out);
    assert_eq!(got.len(), 2);
    for (m, ack) in got.iter().zip(&acks) {
        assert_message_keys(m);
        assert_eq!(m["msg_id"], ack["msg_id"]);
        assert_eq!(m["from"], "alice");
    }
    // ...and bob's device "tablet" over the short link (a device of its own,
    // with its own position), then answers alice over the short link.
    let short_listen = |user: &str, device: &str, count: &str| {
        run_bounded(client(
            &serve,
            &[
                "--user",
                user,
                "--device",
                device,
                "--short",
                "listen",
                "--count",
                count,
                "--timeout",
                "10",
                "--poll",
                "0.2",
                "--format",
                "ndjson",
            ],
        ))
    };
    let out = short_listen("bob", "tablet", "2");
    assert!(out.status.success(), "{}", err(&out));
    assert!(err(&out).contains("listening as bob (tablet, short link)"));
    let got = lines(&out);
    assert_eq!(
        got.iter().map(|m| m["content"].clone()).collect::<Vec<_>>(),
        ["over the short link", "and again"]
    );
    // Confirmed on exit: nothing left for the tablet (times out, exit 1).
    let out = run_bounded(client(
        &serve,
        &[
            "--user",
            "bob",
            "--device",
            "tablet",
            "--short",
            "listen",
            "--count",
            "1",
            "--timeout",
            "1",
            "--poll",
            "0.2",
        ],
    ));
    assert_eq!(out.status.code(), Some(1), "{}", err(&out));
    assert!(out.stdout.is_empty());
    // A message sent while a short-link listener polls reaches it.
    let mut waiting = client(
        &serve,
        &[
            "--user",
            "alice",
            "--short",
            "listen",
            "--count",
            "1",
            "--timeout",
            "10",
            "--poll",
            "0.2",
            "--format",
            "ndjson",
        ],
    );
    waiting
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let listener = waiting.spawn().expect("spawn listen");
    let out = run_bounded(client(
        &serve,
        &["--user", "bob", "send", "alice", "hi alice"],
    ));
    assert!(out.status.success(), "{}", err(&out));
    let out = listener.wait_with_output().expect("listen ends");
    assert!(out.status.success(), "{}", err(&out));
    assert_eq!(lines(&out)[0]["content"], "hi alice");
    // An unknown user is refused for good (exit 2, as on the long link).
    let out = run_bounded(client(
        &serve,
        &["--user", "mallory", "--short", "listen", "--timeout", "5"],
    ));
    assert_eq!(out.status.code(), Some(2), "{}", err(&out));
    assert!(err(&out).contains("manualauth"), "{}", err(&out));
    // confirm has no short-link form.
    let out = run_bounded(client(
        &serve,
        &["--user", "bob", "--short", "confirm", "x"],
    ));
    assert_eq!(out.status.code(), Some(2));
    assert!(err(&out).contains("long link"), "{}", err(&out));
}

#[test]
fn short_link_client_sends_its_password_when_identity_is_enforced() {
    let serve = ServeProcess::start(&["--memory", "--users", "alice:pw1,bob:pw2"]);
    let send = |password: &str| {
        run_bounded(client(
            &serve,
            &[
                "--user",
                "alice",
                "--password",
                password,
                "--short",
                "send",
                "bob",
                "hi",
                "--retries",
                "0",
            ],
        ))
    };
    let out = send("pw1");
    assert!(out.status.success(), "{}", err(&out));
    let out = send("wrong");
    assert_eq!(out.status.code(), Some(1), "{}", err(&out));
    assert!(err(&out).contains("manualauth"), "{}", err(&out));
}
