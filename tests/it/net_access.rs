//! Identity on every link (`Access`, issue 13 item 3): with passwords the
//! long link identifies only after an auth on the same connection, the
//! short link takes the session its auth gave (not `?uin=`), a web login
//! is confirmed by an authenticated device of the user, and a web sync
//! with key 0 gets only what came after its webwxinit. Test mode keeps
//! the convenience. Every wait is bounded.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use prost::Message;
use tokio::net::TcpStream;
use tokio::time::Instant;

use syncscope::body::messages::{
    add_msgs, ManualAuthRequest, ManualAuthResponse, NewSyncRequest, NewSyncResponse,
    SkBuiltinString, WebLoginConfirmRequest,
};
use syncscope::body::synckey::SyncKey;
use syncscope::net::client::{self, ClientError, Session};
use syncscope::net::frame::Connection;
use syncscope::net::messages::{ret, IdentifyExt};
use syncscope::net::server::Access;
use syncscope::net::webclient::{self, http::Conn, http::Request, WebSession};
use syncscope::proto::commands::{IDENTIFY, MANUALAUTH, SEQ_IDENTIFY, WEBLOGIN_CONFIRM};
use syncscope::proto::web::KeyMap;

use crate::net::{
    expect_error_and_close, raw, raw_request, receive, run_bounded, sync_all, syncscope, within,
    ServeProcess, TestServer, WAIT,
};

fn enforced() -> Access {
    Access::enforced([("alice", "secret"), ("bob", "pw")])
}

async fn start_enforced(auto_confirm: bool) -> TestServer {
    let srv = TestServer::start(|c| {
        c.auto_register = false;
        c.test_users = vec!["alice".into(), "bob".into()];
        c.access = enforced().with_web_auto_confirm(auto_confirm);
    })
    .await;
    for u in ["alice", "bob"] {
        srv.store.lock().unwrap().user(u, true).expect("user");
    }
    srv
}

/// A client config with the user's password.
fn with_password(srv: &TestServer, user: &str, device: &str, password: &str) -> client::Config {
    let mut c = srv.client(user, device);
    c.password = Some(password.into());
    c
}

fn manual(user: &str, device: &str, password: Option<&str>) -> Vec<u8> {
    ManualAuthRequest {
        user_name: Some(SkBuiltinString::new(user)),
        device_id: Some(device.into()),
        client_version: None,
        password: password.map(str::to_owned),
    }
    .encode_to_vec()
}

fn identify(user: &str, device: &str) -> Vec<u8> {
    IdentifyExt {
        uin: 0,
        user: Some(user.into()),
        device: Some(device.into()),
        synckey: SyncKey::default(),
    }
    .encode()
}

/// A manualauth on `c`: its Ret and uin.
async fn manualauth(c: &mut Connection<TcpStream>, body: &[u8]) -> (i32, u32) {
    let answer = raw_request(c, MANUALAUTH, 1, body).await;
    let m = ManualAuthResponse::decode(answer.as_slice()).expect("ManualAuthResponse");
    (
        m.base_response.and_then(|b| b.ret).unwrap_or(0),
        m.uin.unwrap_or(0),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforced_long_link_identifies_only_after_an_auth_for_that_user_and_device() {
    let srv = start_enforced(false).await;
    // Identify with no auth before it: refused, closed.
    let mut c = raw(srv.addr).await;
    c.write_frame(IDENTIFY, SEQ_IDENTIFY, &identify("alice", "phone"))
        .await
        .expect("write");
    let why = expect_error_and_close(&mut c, ret::NOT_AUTHENTICATED).await;
    assert!(why.contains("manualauth"), "{why}");
    // A wrong or missing password is an answer, not a close; identify
    // after it is still refused.
    let mut c = raw(srv.addr).await;
    for body in [
        manual("alice", "phone", Some("guess")),
        manual("alice", "phone", None),
        manual("mallory", "phone", Some("secret")),
    ] {
        assert_eq!(manualauth(&mut c, &body).await.0, ret::NOT_AUTHENTICATED);
    }
    c.write_frame(IDENTIFY, SEQ_IDENTIFY, &identify("alice", "phone"))
        .await
        .expect("write");
    expect_error_and_close(&mut c, ret::NOT_AUTHENTICATED).await;
    // Authenticated as alice/phone: not as bob, nor as another device.
    let mut c = raw(srv.addr).await;
    let (r, _) = manualauth(&mut c, &manual("alice", "phone", Some("secret"))).await;
    assert_eq!(r, 0);
    c.write_frame(IDENTIFY, SEQ_IDENTIFY, &identify("bob", "phone"))
        .await
        .expect("write");
    let why = expect_error_and_close(&mut c, ret::UNKNOWN_USER).await;
    assert!(why.contains("bob"), "{why}");
    let mut c = raw(srv.addr).await;
    assert_eq!(
        manualauth(&mut c, &manual("alice", "phone", Some("secret")))
            .await
            .0,
        0
    );
    c.write_frame(IDENTIFY, SEQ_IDENTIFY, &identify("alice", "pad"))
        .await
        .expect("write");
    expect_error_and_close(&mut c, ret::NOT_AUTHENTICATED).await;

    // The client without the password is refused for good; with it, it
    // works (and a reconnect's autoauth too).
    let err = within(
        "connect",
        Session::connect(&srv.client("alice", "phone"), SyncKey::default()),
    )
    .await
    .expect_err("refused");
    assert!(err.is_permanent(), "{err}");
    assert!(err.to_string().contains("password"), "{err}");
    let bob_config = with_password(&srv, "bob", "phone", "pw");
    let mut bob = within("connect", Session::connect(&bob_config, SyncKey::default()))
        .await
        .expect("bob connects");
    sync_all(&mut bob).await;
    let alice = with_password(&srv, "alice", "phone", "secret");
    within(
        "send",
        client::send(&alice, "bob", "hi bob", &Default::default()),
    )
    .await
    .expect("sent");
    let got = receive(&mut bob).await;
    assert_eq!(got[0].content, "hi bob");
    let again = within(
        "reconnect",
        Session::connect(&bob_config, SyncKey::default()),
    )
    .await
    .expect("autoauth");
    assert_eq!(again.uin, bob.uin);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_mode_long_link_keeps_identify_without_auth() {
    let srv = TestServer::start(|_| {}).await;
    let mut c = raw(srv.addr).await;
    c.write_frame(IDENTIFY, SEQ_IDENTIFY, &identify("alice", "phone"))
        .await
        .expect("write");
    let f = within("answer", c.read_frame())
        .await
        .expect("read")
        .expect("identify answer");
    assert_eq!(f.header.cmd, syncscope::proto::commands::response(IDENTIFY));
    srv.stop().await;
}

// ---------------------------------------------------------------------------
// The short link

/// One HTTP request on a fresh connection: status, Set-Cookie values,
/// body.
async fn http(addr: SocketAddr, target: &str, cookie: Option<&str>, body: &[u8]) -> Resp {
    let mut conn = Conn::new(&addr.to_string());
    let req = Request {
        method: "POST",
        target,
        cookie,
        body: Some(body),
    };
    let r = within("HTTP", conn.request("short link", &req, WAIT))
        .await
        .expect("an answer");
    Resp {
        status: r.status,
        cookies: r
            .set_cookies()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        body: r.body,
    }
}

struct Resp {
    status: u16,
    cookies: Vec<(String, String)>,
    body: Vec<u8>,
}

fn sync_request() -> Vec<u8> {
    NewSyncRequest {
        oplog: None,
        selector: Some(7),
        key_buf: None,
        scene: None,
        device_type: None,
    }
    .encode_to_vec()
}

/// The texts of a NewSyncResponse.
fn texts(body: &[u8]) -> Vec<String> {
    let r = NewSyncResponse::decode(body).expect("NewSyncResponse");
    add_msgs(&r)
        .expect("AddMsg items")
        .iter()
        .map(|m| m.to_chat().content)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforced_short_link_takes_the_session_of_an_auth_not_a_uin() {
    let srv = start_enforced(false).await;
    let alice = with_password(&srv, "alice", "phone", "secret");
    within(
        "send",
        client::send(&alice, "bob", "for bob only", &Default::default()),
    )
    .await
    .expect("sent");
    let bob_uin = srv
        .store
        .lock()
        .unwrap()
        .user("bob", false)
        .unwrap()
        .expect("bob");
    let newsync = "/cgi-bin/micromsg-bin/newsync";
    // Naming the user is not enough any more.
    for q in [format!("?uin={bob_uin}"), "?user=bob".to_owned()] {
        let r = http(srv.addr, &format!("{newsync}{q}"), None, &sync_request()).await;
        assert_eq!(r.status, 401, "{q}: {}", String::from_utf8_lossy(&r.body));
        assert!(String::from_utf8_lossy(&r.body).contains("manualauth"));
    }
    // A made-up session neither.
    let r = http(
        srv.addr,
        newsync,
        Some("mmsid=00112233445566778899aabbccddeeff"),
        &sync_request(),
    )
    .await;
    assert_eq!(r.status, 401);
    // A wrong password gives no session.
    let r = http(
        srv.addr,
        "/cgi-bin/micromsg-bin/manualauth",
        None,
        &manual("bob", "pc", Some("nope")),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.cookies.is_empty(), "{:?}", r.cookies);
    // The auth's cookie is the session: bob's mailbox, as device pc.
    let r = http(
        srv.addr,
        "/cgi-bin/micromsg-bin/manualauth",
        None,
        &manual("bob", "pc", Some("pw")),
    )
    .await;
    assert_eq!(r.status, 200);
    let sid = r
        .cookies
        .iter()
        .find(|(k, _)| k == "mmsid")
        .map(|(_, v)| v.clone())
        .expect("an mmsid cookie");
    assert_eq!(sid.len(), 32, "{sid}");
    let cookie = format!("mmsid={sid}");
    // It names the user: a query naming another one does not change it.
    let r = http(
        srv.addr,
        &format!("{newsync}?user=alice"),
        Some(&cookie),
        &sync_request(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(texts(&r.body), ["for bob only"]);
    let r = http(
        srv.addr,
        &format!("{newsync}?mmsid={sid}"),
        None,
        &sync_request(),
    )
    .await;
    assert_eq!(r.status, 200, "the session as a query parameter");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_mode_short_link_takes_a_session_or_a_user() {
    let srv = TestServer::start(|_| {}).await;
    srv.send("alice", "bob", "hello").await;
    let r = http(
        srv.addr,
        "/cgi-bin/micromsg-bin/newsync?user=bob",
        None,
        &sync_request(),
    )
    .await;
    assert_eq!((r.status, texts(&r.body)), (200, vec!["hello".to_owned()]));
    let r = http(
        srv.addr,
        "/cgi-bin/micromsg-bin/manualauth",
        None,
        &manual("bob", "pad", None),
    )
    .await;
    let (_, sid) = r.cookies.first().expect("a session cookie").clone();
    let r = http(
        srv.addr,
        "/cgi-bin/micromsg-bin/newsync",
        Some(&format!("mmsid={sid}")),
        &sync_request(),
    )
    .await;
    assert_eq!((r.status, texts(&r.body)), (200, vec!["hello".to_owned()]));
    srv.stop().await;
}

// ---------------------------------------------------------------------------
// The web

/// A jslogin for `user`: the uuid.
async fn jslogin(api: &mut Conn, user: &str) -> String {
    let target = format!("/jslogin?appid=wx782c26e4c19acffb&fun=new&user={user}");
    let r = within("jslogin", get(api, &target)).await;
    webclient::parse_jslogin(&String::from_utf8_lossy(&r.body)).expect("a uuid")
}

async fn get(c: &mut Conn, target: &str) -> webclient::http::Response {
    let req = Request {
        method: "GET",
        target,
        cookie: None,
        body: None,
    };
    c.request("GET", &req, Duration::from_secs(40))
        .await
        .expect("an answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforced_web_login_is_confirmed_by_a_device_of_the_user() {
    let srv = start_enforced(false).await;
    let addr = srv.addr.to_string();
    let mut api = Conn::new(&addr);
    let uuid = jslogin(&mut api, "alice").await;
    // Not confirmed: the poll is held (web_poll is 25 s) ...
    let poll = format!("/cgi-bin/mmwebwx-bin/login?uuid={uuid}&tip=1");
    let started = Instant::now();
    let held = tokio::spawn(async move {
        let r = get(&mut api, &poll).await;
        (api, String::from_utf8_lossy(&r.body).into_owned())
    });
    // ... a connection that did not authenticate cannot confirm (closed) ...
    let mut c = raw(srv.addr).await;
    let confirm = WebLoginConfirmRequest {
        uuid: Some(uuid.clone()),
    }
    .encode_to_vec();
    c.write_frame(WEBLOGIN_CONFIRM, 1, &confirm)
        .await
        .expect("write");
    expect_error_and_close(&mut c, ret::NOT_AUTHENTICATED).await;
    // ... nor another user (the login named alice), nor an unknown uuid ...
    let bob = with_password(&srv, "bob", "phone", "pw");
    for (who, id) in [(&bob, uuid.as_str()), (&bob, "0011223344556677")] {
        match within("confirm", client::confirm_web_login(who, id)).await {
            Err(ClientError::Refused { ret: r, .. }) => assert_eq!(r, ret::NO_SUCH_LOGIN),
            other => panic!("not refused: {other:?}"),
        }
    }
    assert!(!held.is_finished(), "answered before any confirmation");
    // ... alice's device can, and the held poll is answered at once.
    let alice = with_password(&srv, "alice", "phone", "secret");
    within("confirm", client::confirm_web_login(&alice, &uuid))
        .await
        .expect("confirmed");
    let (mut api, first) = within("the held poll", held).await.expect("poll task");
    assert!(first.starts_with("window.code=201;"), "{first}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "woken, not timed out"
    );
    let poll = format!("/cgi-bin/mmwebwx-bin/login?uuid={uuid}&tip=0");
    let second = String::from_utf8_lossy(&get(&mut api, &poll).await.body).into_owned();
    assert!(second.starts_with("window.code=200;"), "{second}");

    // The web client with the password confirms its own login (as the
    // user's device "phone"); without it nobody confirms (it waits).
    let mut web = within("web login", webclient::open(&alice))
        .await
        .expect("logs in");
    assert_eq!(web.user_name, "@alice");
    within(
        "send",
        client::send(&bob, "alice", "to alice's web", &Default::default()),
    )
    .await
    .expect("sent");
    let page = within("webwxsync", web.sync()).await.expect("webwxsync");
    assert_eq!(page.messages.len(), 1, "{:?}", page.messages);
    srv.stop().await;

    // --web-auto-confirm: confirmed at once, as in test mode.
    let srv = start_enforced(true).await;
    let web = within("web login", webclient::open(&srv.client("bob", "web")))
        .await
        .expect("auto-confirmed");
    assert_eq!(web.user_name, "@bob");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_sync_with_key_zero_gets_only_what_came_after_webwxinit() {
    let srv = TestServer::start(|_| {}).await;
    srv.send("alice", "bob", "before one").await;
    srv.send("alice", "bob", "before two").await;
    let mut web: WebSession = within("web login", webclient::open(&srv.client("bob", "web")))
        .await
        .expect("logs in");
    // Presenting key 0 (as a client that threw webwxinit's key away).
    let zero: KeyMap = [(1, 1), (2, 0), (3, 1)].into_iter().collect();
    web.synckey = zero.clone();
    let page = within("webwxsync", web.sync()).await.expect("webwxsync");
    assert!(
        page.messages.is_empty(),
        "messages stored before webwxinit: {:?}",
        page.messages
    );
    srv.send("alice", "bob", "after").await;
    web.synckey = zero;
    let page = within("webwxsync", web.sync()).await.expect("webwxsync");
    let got: Vec<&str> = page.messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(got, ["after"]);
    srv.stop().await;
}

// ---------------------------------------------------------------------------
// The command line

#[test]
fn cli_passwords_generated_passwords_and_web_confirm() {
    // Test mode says so.
    let open = ServeProcess::start(&["--memory"]);
    assert!(open.banner.contains("test mode"), "{}", open.banner);
    drop(open);

    let serve = ServeProcess::start(&["--memory", "--users", "alice:secret,bob"]);
    assert!(
        serve.banner.contains("identity enforced"),
        "{}",
        serve.banner
    );
    let bob_password = serve.password("bob");
    assert_eq!(bob_password.len(), 32, "{bob_password}");
    let client = |args: &[&str]| {
        let mut c = syncscope();
        c.args(["client", "--server", &serve.addr]).args(args);
        c.env_remove("SYNCSCOPE_PASSWORD");
        c
    };
    // No password, a wrong one: refused for good (exit 2).
    for extra in [&[][..], &["--password", "nope"][..]] {
        let mut args = vec!["--user", "alice"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["send", "bob", "x"]);
        let out = run_bounded(client(&args));
        assert_ne!(out.status.code(), Some(0), "{extra:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("wrong user name or password"), "{err}");
    }
    let out = run_bounded(client(&[
        "--user",
        "alice",
        "--password",
        "secret",
        "send",
        "bob",
        "hello bob",
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The generated password, from the environment.
    let mut listen = client(&["--user", "bob", "listen", "--count", "1", "--timeout", "10"]);
    listen.env("SYNCSCOPE_PASSWORD", &bob_password);
    let out = run_bounded(listen);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("hello bob"));

    // A web listener without a password waits for a device: it prints the
    // uuid, and `client confirm` from alice's phone lets it in.
    let mut web = client(&[
        "--user",
        "alice",
        "--web",
        "listen",
        "--count",
        "1",
        "--timeout",
        "30",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn the web listener");
    let stderr = web.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx.recv_timeout(WAIT);
    let uuid = match &line {
        Ok(l) if l.contains("confirm ") => l.rsplit(' ').next().unwrap_or_default().to_owned(),
        other => {
            let _ = web.kill();
            panic!("no confirmation hint from the web listener: {other:?}");
        }
    };
    // bob cannot confirm alice's login (exit 1), alice can.
    let mut as_bob = client(&["--user", "bob", "confirm", &uuid]);
    as_bob.env("SYNCSCOPE_PASSWORD", &bob_password);
    let out = run_bounded(as_bob);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_bounded(client(&[
        "--user",
        "alice",
        "--password",
        "secret",
        "confirm",
        &uuid,
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    match rx.recv_timeout(WAIT) {
        Ok(l) if l.contains("listening as alice (web)") => {}
        other => {
            let _ = web.kill();
            panic!("the web listener did not log in: {other:?}");
        }
    }
    let mut send = client(&["--user", "bob", "send", "alice", "to alice's web"]);
    send.env("SYNCSCOPE_PASSWORD", &bob_password);
    assert!(run_bounded(send).status.success());
    let deadline = std::time::Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = web.try_wait().expect("wait") {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = web.kill();
            panic!("the web listener did not exit");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    web.stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("stdout");
    assert!(status.success(), "{status}");
    assert!(stdout.contains("to alice's web"), "{stdout}");
    // With its password the web client confirms its own login.
    let mut web_send = client(&["--user", "bob", "--web", "send", "alice", "from bob's web"]);
    web_send.env("SYNCSCOPE_PASSWORD", &bob_password);
    let out = run_bounded(web_send);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn cli_serve_off_loopback_needs_users() {
    let out = run_bounded({
        let mut c = syncscope();
        c.args(["serve", "--memory", "--listen", "0.0.0.0:0"]);
        c
    });
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--users"), "{err}");
    let out = run_bounded({
        let mut c = syncscope();
        c.args(["serve", "--memory", "--require-auth"]);
        c
    });
    assert_eq!(out.status.code(), Some(2));
}
