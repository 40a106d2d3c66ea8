//! A second real web client, nobody here wrote it: wechat4u (npm, pinned)
//! logs in to `syncscope serve`, is confirmed by the user's phone, sends
//! its keep-alive to filehelper (which reaches the user's phone), receives
//! a message a long-link user sent and answers it with two messages sent
//! at once, then logs out. Run unmodified: its addresses are the real
//! service's, so it is pointed at the server through a proxy
//! (tests/web/wechat4u_session.js says how). Every wait is bounded.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};

use crate::net::{run_bounded, ServeProcess};
use crate::web_server::{long_link_listen_as, long_link_send_as, phone};

/// The web client under test and the HTTP library it gets, as published
/// on npm (axios pinned too: wechat4u asks for any 1.x).
const WECHAT4U: &str = "0.7.14";
const AXIOS: &str = "1.21.1";

/// `node_modules` with the pinned wechat4u, under the target dir (made
/// once; needs node and npm with the npm registry, as CI has).
fn wechat4u_modules() -> PathBuf {
    static ONCE: Mutex<()> = Mutex::new(());
    let _guard = ONCE.lock().unwrap_or_else(|p| p.into_inner());
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wechat4u");
    let ready = dir.join(format!("wechat4u-{WECHAT4U}-axios-{AXIOS}.ready"));
    if ready.exists() {
        return dir.join("node_modules");
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("make the npm dir");
    let manifest = json!({
        "name": "syncscope-wechat4u-test",
        "private": true,
        "dependencies": { "wechat4u": WECHAT4U, "axios": AXIOS }
    });
    std::fs::write(dir.join("package.json"), manifest.to_string()).expect("package.json");
    let out = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| panic!("npm (the wechat4u test needs node and npm): {e}"));
    assert!(
        out.status.success(),
        "npm install wechat4u failed (the test needs node, npm and the npm registry):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&ready, b"").expect("mark node_modules ready");
    dir.join("node_modules")
}

/// A throwaway key and certificate for wx.qq.com and *.wx.qq.com, the
/// names wechat4u asks for (openssl, in `dir`).
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=wx.qq.com"])
        .args(["-addext", "subjectAltName=DNS:wx.qq.com,DNS:*.wx.qq.com"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap_or_else(|e| panic!("openssl (the wechat4u test makes a certificate): {e}"));
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (key, cert)
}

#[test]
fn wechat4u_logs_in_keeps_alive_receives_and_answers() {
    let modules = wechat4u_modules();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (key, cert) = certificate(tmp.path());
    let serve = ServeProcess::start(&[
        "--memory",
        "--users",
        "alice:secret,bob:pw",
        "--web-poll",
        "5",
    ]);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/web/wechat4u_session.js");
    let mut child = Command::new("node")
        .arg(&script)
        .arg(&serve.addr)
        .arg(&key)
        .arg(&cert)
        .args(["bob", "ping from bob's phone", "pong from wechat4u", "60"])
        .env("NODE_PATH", &modules)
        .env("NODE_EXTRA_CA_CERTS", &cert)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    let mut seen = Vec::new();
    let mut next = |what: &str| loop {
        let v = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("wechat4u: no {what} event; before it: {seen:?}"));
        seen.push(v.clone());
        // wechat4u's errors are the server's deviations: none is expected.
        assert_ne!(v["event"], "error", "wechat4u: {v}; before it: {seen:?}");
        if v["event"] == what {
            return v;
        }
    };
    let qr = next("qr");
    let uuid = qr["uuid"].as_str().expect("a uuid").to_owned();
    let mut confirm = phone(&serve.addr, "alice", Some("secret"));
    confirm.args(["confirm", &uuid]);
    let out = run_bounded(confirm);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let login = next("login");
    assert_eq!(login["user"], "@alice", "{login}");
    assert_eq!(login["sid_len"], 32, "the ticket page's XML was read");
    assert!(
        login["skey"]
            .as_str()
            .is_some_and(|k| k.starts_with("@crypt_")),
        "{login}"
    );
    assert_eq!(
        login["contacts"],
        json!(["@alice", "@bob", "filehelper"]),
        "{login}"
    );

    long_link_send_as(
        &serve.addr,
        "bob",
        Some("pw"),
        "alice",
        "ping from bob's phone",
    );
    let received = next("received");
    assert_eq!(received["to_user"], "@alice", "{received}");
    assert_eq!(received["text"], "ping from bob's phone");
    let sent = next("sent");
    assert_eq!(sent["rets"], json!([0, 0]), "{sent}");
    let ids = sent["msg_ids"].as_array().expect("MsgIDs");
    assert_ne!(ids[0], ids[1], "two messages, two MsgIDs: {sent}");
    let exit = next("exit");
    assert_eq!(exit["code"], 0, "{exit}");

    // Both answers reached bob's phone, each once, whether or not their
    // ClientMsgIds (a millisecond clock) were the same.
    let got = long_link_listen_as(&serve.addr, "bob", Some("pw"), 2);
    let texts: Vec<&str> = got.iter().filter_map(|m| m["content"].as_str()).collect();
    assert_eq!(
        texts,
        ["pong from wechat4u", "pong from wechat4u (2)"],
        "{got:?}"
    );
    // wechat4u's keep-alive went to filehelper: alice's own phone has it,
    // with bob's message and her two answers (her sends reach her other
    // devices).
    let own = long_link_listen_as(&serve.addr, "alice", Some("secret"), 4);
    let keep_alive: Vec<&Value> = own.iter().filter(|m| m["to"] == "filehelper").collect();
    assert_eq!(keep_alive.len(), 1, "{own:?}");
    assert_eq!(keep_alive[0]["from"], "alice");
    assert!(
        keep_alive[0]["content"]
            .as_str()
            .is_some_and(|c| c.starts_with("心跳")),
        "{own:?}"
    );
    assert_eq!(
        own.iter().filter(|m| m["to"] == "bob").count(),
        2,
        "{own:?}"
    );

    let status = child.wait().expect("node exits");
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.success(), "wechat4u script failed: {err}");
}
