//! The server's web endpoints (`syncscope serve`, protocol.md section 6):
//! a real web client nobody here wrote (itchat-uos from PyPI, pinned) logs
//! in, receives a message a long-link user sent and answers it; and the
//! endpoints by hand, bad input included. Every wait is bounded.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use syncscope::proto::http::message::{self, Kind, Limits, Parse};

use crate::net::{run_bounded, ServeProcess};

/// The web client under test, as published on PyPI.
const ITCHAT: &str = "itchat-uos==1.4.1";

fn syncscope() -> Command {
    Command::new(env!("CARGO_BIN_EXE_syncscope"))
}

// ---------------------------------------------------------------------------
// A small blocking HTTP/1.1 client (one keep-alive connection).

struct Http {
    stream: TcpStream,
    buf: Vec<u8>,
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

impl Http {
    fn connect(addr: &str) -> Http {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        Http {
            stream,
            buf: Vec::new(),
        }
    }

    fn get(&mut self, target: &str) -> Resp {
        self.send("GET", target, "")
    }

    fn post(&mut self, target: &str, body: &Value) -> Resp {
        self.send("POST", target, &body.to_string())
    }

    fn send(&mut self, method: &str, target: &str, body: &str) -> Resp {
        let len = body.len().to_string();
        let req = message::encode_request(
            method,
            target,
            &[("Host", "test"), ("Content-Length", &len)],
            body.as_bytes(),
        );
        self.stream.write_all(&req).expect("write");
        self.read()
            .unwrap_or_else(|| panic!("no answer to {method} {target}"))
    }

    /// The next response, or None when the server closed first.
    fn read(&mut self) -> Option<Resp> {
        loop {
            match message::parse(&self.buf, Kind::Response, &Limits::default(), false) {
                Parse::Complete(m, n) => {
                    assert!(m.header("content-length").is_some(), "Content-Length");
                    let resp = Resp {
                        status: m.status.expect("status"),
                        headers: m
                            .headers
                            .iter()
                            .map(|(k, v)| {
                                ((*k).to_owned(), String::from_utf8_lossy(v).into_owned())
                            })
                            .collect(),
                        body: String::from_utf8_lossy(m.body).into_owned(),
                    };
                    self.buf.drain(..n);
                    return Some(resp);
                }
                Parse::Incomplete => {}
                Parse::Invalid(e) => panic!("HTTP response: {e}"),
            }
            self.fill()?;
        }
    }

    fn fill(&mut self) -> Option<()> {
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Some(())
            }
        }
    }

    /// Whether the server closed the connection (EOF within a while).
    fn closed(&mut self) -> bool {
        let mut b = [0u8; 64];
        matches!(self.stream.read(&mut b), Ok(0) | Err(_))
    }
}

/// `window.x = "v";` and `{k:"v"}` style answers: the value after `key`
/// (quotes removed).
fn js_value(text: &str, key: &str) -> Option<String> {
    let at = text.find(key)? + key.len();
    let rest = text[at..].trim_start();
    let rest = rest
        .strip_prefix('=')
        .or_else(|| rest.strip_prefix(':'))?
        .trim_start();
    let end = rest.find([';', '\n', ',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim().trim_matches('"').to_owned())
}

fn xml(text: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find("</")? + start;
    Some(text[start..end].to_owned())
}

/// A web session logged in by hand.
struct Web {
    http: Http,
    addr: String,
    sid: String,
    uin: String,
    skey: String,
    user: String,
    base: Value,
    synckey: Value,
}

impl Web {
    fn login(addr: &str, user: &str) -> Web {
        let mut http = Http::connect(addr);
        let r = http.get(&format!(
            "/jslogin?appid=wx782c26e4c19acffb&fun=new&user={user}"
        ));
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            js_value(&r.body, "window.QRLogin.code").as_deref(),
            Some("200")
        );
        let uuid = js_value(&r.body, "window.QRLogin.uuid").expect("uuid");
        let poll = format!("/cgi-bin/mmwebwx-bin/login?loginicon=true&uuid={uuid}&tip=1&r=1&_=2");
        let r = http.get(&poll);
        assert_eq!(
            js_value(&r.body, "window.code").as_deref(),
            Some("201"),
            "{r:?}"
        );
        let r = http.get(&poll);
        assert_eq!(
            js_value(&r.body, "window.code").as_deref(),
            Some("200"),
            "{r:?}"
        );
        let uri = js_value(&r.body, "window.redirect_uri").expect("redirect_uri");
        let target = uri
            .strip_prefix("http://test")
            .unwrap_or_else(|| panic!("redirect to the Host asked: {uri}"))
            .to_owned();
        let r = http.get(&format!("{target}&fun=new&version=v2"));
        // As the real service in UOS mode: 301, the XML and the cookies,
        // no Location.
        assert_eq!(r.status, 301, "{r:?}");
        assert!(r.header_values("location").is_empty(), "{r:?}");
        assert_eq!(xml(&r.body, "ret").as_deref(), Some("0"), "{r:?}");
        let sid = xml(&r.body, "wxsid").expect("wxsid");
        let uin = xml(&r.body, "wxuin").expect("wxuin");
        let skey = xml(&r.body, "skey").expect("skey");
        let cookies = r.header_values("set-cookie");
        assert!(
            cookies
                .iter()
                .any(|c| c.starts_with(&format!("wxsid={sid};"))),
            "{cookies:?}"
        );
        assert!(
            cookies
                .iter()
                .any(|c| c.starts_with(&format!("wxuin={uin};"))),
            "{cookies:?}"
        );
        // The ticket is good once.
        let again = http.get(&target);
        assert_eq!(
            xml(&again.body, "ret").as_deref(),
            Some("1203"),
            "{again:?}"
        );
        let base = json!({"Uin": uin.parse::<u64>().expect("uin"), "Sid": sid, "Skey": skey,
            "DeviceID": "e123456789012345"});
        let r = http.post(
            "/cgi-bin/mmwebwx-bin/webwxinit?r=1&pass_ticket=x",
            &json!({ "BaseRequest": base }),
        );
        let init = r.json();
        assert_eq!(init["BaseResponse"]["Ret"], 0, "{init}");
        assert_eq!(init["User"]["UserName"], format!("@{user}"));
        Web {
            http,
            addr: addr.to_owned(),
            sid,
            uin,
            skey,
            user: format!("@{user}"),
            base,
            synckey: init["SyncKey"].clone(),
        }
    }

    fn synckey_param(&self) -> String {
        self.synckey["List"]
            .as_array()
            .expect("List")
            .iter()
            .map(|kv| format!("{}_{}", kv["Key"], kv["Val"]))
            .collect::<Vec<_>>()
            .join("%7C")
    }

    fn synccheck_path(&self) -> String {
        format!(
            "/cgi-bin/mmwebwx-bin/synccheck?r=1&skey={}&sid={}&uin={}&deviceid=e1&synckey={}&_=2",
            self.skey.replace('@', "%40"),
            self.sid,
            self.uin,
            self.synckey_param()
        )
    }

    fn sync(&mut self) -> Value {
        let r = self.http.post(
            &format!("/cgi-bin/mmwebwx-bin/webwxsync?sid={}&skey=x", self.sid),
            &json!({"BaseRequest": self.base, "SyncKey": self.synckey, "rr": -1}),
        );
        let v = r.json();
        assert_eq!(v["BaseResponse"]["Ret"], 0, "{v}");
        self.synckey = v["SyncKey"].clone();
        v
    }

    fn send(&mut self, to: &str, text: &str, cid: &str) -> Value {
        let r = self.http.post(
            "/cgi-bin/mmwebwx-bin/webwxsendmsg?pass_ticket=x",
            &json!({"BaseRequest": self.base, "Scene": 0, "Msg": {"Type": 1, "Content": text,
                "FromUserName": self.user, "ToUserName": to, "LocalID": cid, "ClientMsgId": cid}}),
        );
        r.json()
    }
}

/// `client` as `user`'s phone, with the user's password when the server
/// has them.
pub(crate) fn phone(addr: &str, user: &str, password: Option<&str>) -> Command {
    let mut c = syncscope();
    c.args([
        "client", "--server", addr, "--user", user, "--device", "phone",
    ]);
    if let Some(p) = password {
        c.args(["--password", p]);
    }
    c
}

fn long_link_send(addr: &str, from: &str, to: &str, text: &str) {
    long_link_send_as(addr, from, None, to, text)
}

pub(crate) fn long_link_send_as(
    addr: &str,
    from: &str,
    password: Option<&str>,
    to: &str,
    text: &str,
) {
    let mut c = phone(addr, from, password);
    c.args(["send", to, text]);
    let out = run_bounded(c);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn long_link_listen(addr: &str, user: &str, count: usize) -> Vec<Value> {
    long_link_listen_as(addr, user, None, count)
}

pub(crate) fn long_link_listen_as(
    addr: &str,
    user: &str,
    password: Option<&str>,
    count: usize,
) -> Vec<Value> {
    let mut c = phone(addr, user, password);
    c.args(["listen", "--count", &count.to_string(), "--timeout", "10"]);
    c.args(["--format", "ndjson"]);
    crate::net::ndjson_bounded(c)
}

#[test]
fn web_login_sync_and_send_by_hand() {
    let serve = ServeProcess::start(&["--memory", "--users", "alice,bob", "--web-poll", "20"]);
    let mut bob = Web::login(&serve.addr, "bob");
    assert_eq!(bob.sid.len(), 32, "128-bit session id");
    assert!(bob.sid.bytes().all(|b| b.is_ascii_hexdigit()));
    let other = Web::login(&serve.addr, "alice");
    assert_ne!(bob.sid, other.sid);

    // A held synccheck is answered as soon as a message arrives.
    let path = bob.synccheck_path();
    let addr = serve.addr.clone();
    let held = std::thread::spawn(move || {
        let t = Instant::now();
        let r = Http::connect(&addr).get(&path);
        (r, t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(500));
    long_link_send(&serve.addr, "alice", "bob", "hello web bob");
    let (r, waited) = held.join().expect("synccheck thread");
    assert_eq!(js_value(&r.body, "retcode").as_deref(), Some("0"), "{r:?}");
    assert_eq!(js_value(&r.body, "selector").as_deref(), Some("2"), "{r:?}");
    assert!(waited < Duration::from_secs(15), "held {waited:?} of 20 s");

    let page = bob.sync();
    assert_eq!(page["AddMsgCount"], 1, "{page}");
    let m = &page["AddMsgList"][0];
    assert_eq!(m["FromUserName"], "@alice");
    assert_eq!(m["ToUserName"], "@bob");
    assert_eq!(m["Content"], "hello web bob");
    assert_eq!(m["MsgType"], 1);
    assert_eq!(page["SyncCheckKey"], page["SyncKey"]);
    // The next page (the key now covers it) is empty.
    assert_eq!(bob.sync()["AddMsgCount"], 0);
    // A stale key at synccheck does not bring back what was consumed: held
    // (here until the 20 s hold is cut by the send below), not "2" at once.
    let stale = format!(
        "/cgi-bin/mmwebwx-bin/synccheck?sid={}&uin={}&synckey=1_1%7C2_0%7C3_1",
        bob.sid, bob.uin
    );
    let addr = serve.addr.clone();
    let held = std::thread::spawn(move || {
        let t = Instant::now();
        let r = Http::connect(&addr).get(&stale);
        (r, t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!held.is_finished(), "a stale key was answered at once");
    long_link_send(&serve.addr, "alice", "bob", "wakes the stale poll");
    let (r, _) = held.join().expect("synccheck thread");
    assert_eq!(js_value(&r.body, "selector").as_deref(), Some("2"), "{r:?}");
    let page = bob.sync();
    assert_eq!(page["AddMsgCount"], 1, "{page}");
    assert_eq!(page["AddMsgList"][0]["Content"], "wakes the stale poll");

    // Sends: exactly once per ClientMsgId.
    let first = bob.send("@alice", "hi from web", "17000000000001");
    assert_eq!(first["BaseResponse"]["Ret"], 0, "{first}");
    assert_eq!(first["LocalID"], "17000000000001");
    let again = bob.send("@alice", "hi from web", "17000000000001");
    assert_eq!(
        again["MsgID"], first["MsgID"],
        "a resend is the same message"
    );
    let second = bob.send("@alice", "second", "17000000000002");
    assert_ne!(second["MsgID"], first["MsgID"]);
    let got = long_link_listen(&serve.addr, "alice", 2);
    let texts: Vec<&str> = got.iter().filter_map(|m| m["content"].as_str()).collect();
    assert_eq!(texts, ["hi from web", "second"], "{got:?}");
    assert!(got.iter().all(|m| m["from"] == "bob" && m["to"] == "alice"));
    // An unknown recipient is refused, not stored.
    let nobody = bob.send("@mallory", "?", "17000000000003");
    assert_ne!(nobody["BaseResponse"]["Ret"], 0, "{nobody}");

    // Logged out: the session is gone (1101), as on the real service.
    let r = bob.http.get(&format!(
        "/cgi-bin/mmwebwx-bin/webwxlogout?redirect=1&type=1&skey={}&sid={}&uin={}",
        bob.skey.replace('@', "%40"),
        bob.sid,
        bob.uin
    ));
    assert_eq!(r.status, 200);
    let r = Http::connect(&bob.addr).get(&bob.synccheck_path());
    assert_eq!(
        js_value(&r.body, "retcode").as_deref(),
        Some("1101"),
        "{r:?}"
    );
    assert_eq!(bob.send("@alice", "x", "1")["BaseResponse"]["Ret"], 1101);
}

#[test]
fn synccheck_with_nothing_new_is_held_then_answered_zero() {
    let serve = ServeProcess::start(&["--memory", "--users", "carol", "--web-poll", "1"]);
    let web = Web::login(&serve.addr, "carol");
    let t = Instant::now();
    let r = Http::connect(&serve.addr).get(&web.synccheck_path());
    let held = t.elapsed();
    assert_eq!(js_value(&r.body, "selector").as_deref(), Some("0"), "{r:?}");
    assert!(held >= Duration::from_millis(900), "held only {held:?}");
}

#[test]
fn bad_web_input_gets_an_http_error_and_the_server_stays_up() {
    let serve = ServeProcess::start(&["--memory", "--users", "dave,erin"]);
    let web = Web::login(&serve.addr, "dave");
    let cases: [(&str, &str, &str, u16); 6] = [
        ("POST", "/cgi-bin/mmwebwx-bin/webwxsync", "{not json", 400),
        ("POST", "/cgi-bin/mmwebwx-bin/webwxsendmsg", "[1,2]", 400),
        ("GET", "/cgi-bin/mmwebwx-bin/webwxsync", "", 405),
        ("GET", "/cgi-bin/mmwebwx-bin/webwxnosuch", "", 404),
        ("GET", "/jslogin?appid=x&fun=new&user=mallory", "", 403),
        (
            "GET",
            "/cgi-bin/mmwebwx-bin/synccheck?sid=x&synckey=1_a",
            "",
            200,
        ),
    ];
    for (method, target, body, status) in cases {
        let mut http = Http::connect(&serve.addr);
        let r = http.send(method, target, body);
        assert_eq!(r.status, status, "{method} {target}: {r:?}");
        if status != 200 {
            assert!(!r.body.is_empty(), "an error says why");
            assert!(
                http.closed(),
                "{method} {target}: connection closed after an error"
            );
        }
    }
    // A webwxsync with a valid session but no SyncKey is a bad request.
    let mut http = Http::connect(&serve.addr);
    let r = http.post(
        "/cgi-bin/mmwebwx-bin/webwxsync",
        &json!({"BaseRequest": web.base}),
    );
    assert_eq!(r.status, 400, "{r:?}");
    // An unknown session: the JSON answer of the real service.
    let r = Http::connect(&serve.addr).post(
        "/cgi-bin/mmwebwx-bin/webwxsync",
        &json!({"BaseRequest": {"Uin": 1, "Sid": "0123456789abcdef0123456789abcdef"},
            "SyncKey": {"Count": 0, "List": []}}),
    );
    assert_eq!(r.json()["BaseResponse"]["Ret"], 1101);
    // Still serving.
    let again = Web::login(&serve.addr, "erin");
    assert_eq!(again.user, "@erin");
}

// ---------------------------------------------------------------------------
// itchat

/// A Python with the pinned itchat-uos, in a venv under the target dir
/// (made once; needs python3 with venv and PyPI, as CI has).
pub(crate) fn itchat_python() -> PathBuf {
    crate::common::python_venv("itchat-venv", &[ITCHAT], "the web client test")
}

/// An itchat script (tests/web/) running against a server, its JSON
/// events on a channel (every wait bounded).
pub(crate) struct Itchat {
    child: std::process::Child,
    rx: std::sync::mpsc::Receiver<Value>,
}

impl Itchat {
    /// Starts `script` with `BASE_URL` then `args`, confirms its login
    /// from `user`'s phone (`client confirm`, as a phone scanning the QR
    /// code) and returns it with its login event.
    pub(crate) fn login(
        script: &str,
        addr: &str,
        args: &[&str],
        user: &str,
        password: Option<&str>,
    ) -> (Itchat, Value) {
        let python = itchat_python();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/web")
            .join(script);
        let mut child = Command::new(&python)
            .arg(&script)
            .arg(format!("http://{addr}"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn python");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel::<Value>();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                // itchat writes a block character to stdout when imported.
                if let Some(at) = line.find('{') {
                    if let Ok(v) = serde_json::from_str::<Value>(&line[at..]) {
                        let _ = tx.send(v);
                    }
                }
            }
        });
        let it = Itchat { child, rx };
        let qr = it.next("qr");
        assert_eq!(qr["event"], "qr", "{qr}");
        let uuid = qr["uuid"].as_str().expect("a uuid");
        let mut confirm = phone(addr, user, password);
        confirm.args(["confirm", uuid]);
        let out = run_bounded(confirm);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let login = it.next("login");
        assert_eq!(login["event"], "login", "{login}");
        (it, login)
    }

    /// The script's next event.
    pub(crate) fn next(&self, what: &str) -> Value {
        self.rx
            .recv_timeout(Duration::from_secs(40))
            .unwrap_or_else(|_| panic!("itchat: no {what} event"))
    }

    /// Waits for the script to end; panics with its stderr if it failed.
    pub(crate) fn finish(mut self) {
        let status = self.child.wait().expect("python exits");
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        assert!(status.success(), "itchat script failed: {err}");
    }
}

/// itchat against a server that enforces identity: its login is confirmed
/// by alice's phone over the long link (`client confirm`, as a phone
/// scanning the QR code), not automatically.
#[test]
fn itchat_logs_in_receives_and_answers() {
    let serve = ServeProcess::start(&["--memory", "--users", "alice:secret,bob:pw"]);
    let (itchat, login) = Itchat::login(
        "itchat_session.py",
        &serve.addr,
        &["bob", "ping from bob's phone", "pong from itchat", "30"],
        "alice",
        Some("secret"),
    );
    let next = |what: &str| itchat.next(what);
    // The user whose device confirmed it; a 128-bit session id.
    assert_eq!(login["user"], "@alice", "{login}");
    assert_eq!(login["sid_len"], 32);
    assert_eq!(login["qr_statuses"], json!(["0", "201", "200"]));
    assert!(
        login["friends"]
            .as_array()
            .is_some_and(|f| f.contains(&json!("@bob"))),
        "bob is in itchat's contact list: {login}"
    );

    long_link_send_as(
        &serve.addr,
        "bob",
        Some("pw"),
        "alice",
        "ping from bob's phone",
    );
    let received = next("received");
    assert_eq!(received["event"], "received", "{received}");
    assert_eq!(received["from_user"], "@bob");
    assert_eq!(received["to_user"], "@alice");
    assert_eq!(received["text"], "ping from bob's phone");
    assert_eq!(received["synckey"], "1_1|2_1|3_1", "{received}");
    let sent = next("sent");
    assert_eq!(sent["event"], "sent", "{sent}");
    assert_eq!(sent["ret"], 0, "{sent}");

    let got = long_link_listen_as(&serve.addr, "bob", Some("pw"), 1);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["from"], "alice");
    assert_eq!(got[0]["content"], "pong from itchat");
    assert_eq!(
        got[0]["msg_id"].to_string(),
        sent["msg_id"].as_str().unwrap_or("")
    );

    itchat.finish();
}
