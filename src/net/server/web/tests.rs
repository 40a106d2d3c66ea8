//! The web endpoints through [`route`], on an in-memory store, no socket.

use std::sync::Arc;

use tokio::sync::Notify;

use super::session::Login;
use super::*;
use crate::net::server::Event;
use crate::net::KEY_MESSAGES;

#[test]
fn synckey_json_round_trips_through_the_parser() {
    let v = synckey_value(42);
    let keys = synckey_json(&v).expect("a SyncKey");
    assert_eq!(keys.get(&KEY_MESSAGES), Some(&42));
    assert_eq!(v["Count"], 3);
}

#[test]
fn web_paths() {
    assert!(is_web_path("/jslogin"));
    assert!(is_web_path("/cgi-bin/mmwebwx-bin/synccheck"));
    assert!(!is_web_path("/cgi-bin/micromsg-bin/newsync"));
}

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::broadcast;

use crate::net::server::service::tests::{peer, service};

/// Serves `req` from [`peer`] with a shutdown signal that does not fire.
pub(super) async fn serve(s: &Service, req: &Request) -> Result<Reply, Close> {
    let (_tx, mut rx) = broadcast::channel(1);
    let mut origin = Origin {
        peer: peer(),
        local: None,
        shutdown: &mut rx,
    };
    route(s, req, &mut origin).await
}

pub(super) async fn get(s: &Service, target: &str) -> Reply {
    serve(s, &Request::test("GET", target, b""))
        .await
        .expect("answered")
}

fn text(r: &Reply) -> String {
    String::from_utf8(r.body.clone()).expect("UTF-8")
}

pub(super) fn json_of(r: &Reply) -> Value {
    assert!(r.content_type.starts_with("application/json"), "{r:?}");
    serde_json::from_slice(&r.body).expect("JSON")
}

/// The text between `start` and the next `end`.
fn between<'t>(t: &'t str, start: &str, end: &str) -> &'t str {
    let from = t
        .find(start)
        .unwrap_or_else(|| panic!("{start:?} in {t:?}"))
        + start.len();
    let len = t[from..]
        .find(end)
        .unwrap_or_else(|| panic!("{end:?} in {t:?}"));
    &t[from..from + len]
}

/// A jslogin for `user`, polled until confirmed, and its ticket page:
/// (sid, uin, skey) and the page's cookies.
pub(super) async fn login(s: &Service, user: &str) -> (String, String, String, Vec<String>) {
    let r = get(s, &format!("/jslogin?appid=wx&fun=new&user={user}")).await;
    assert_eq!(r.content_type, "text/javascript");
    let js = text(&r);
    assert!(js.starts_with("window.QRLogin.code = 200;"), "{js}");
    let uuid = between(&js, "uuid = \"", "\"").to_owned();
    let poll = format!("{WEB_PREFIX}login?uuid={uuid}&tip=1");
    let scanned = text(&get(s, &poll).await);
    assert!(scanned.starts_with("window.code=201;"), "{scanned}");
    let confirmed = text(&get(s, &poll).await);
    assert!(confirmed.starts_with("window.code=200;"), "{confirmed}");
    let redirect = between(&confirmed, "redirect_uri=\"", "\"");
    let page = redirect
        .strip_prefix("http://h")
        .unwrap_or_else(|| panic!("the request's Host in {redirect:?}"));
    assert!(page.contains(&format!("uuid={uuid}")), "{page}");
    let r = get(s, page).await;
    let xml = text(&r);
    assert!(xml.starts_with("<error><ret>0</ret>"), "{xml}");
    let sid = between(&xml, "<wxsid>", "</wxsid>").to_owned();
    let uin = between(&xml, "<wxuin>", "</wxuin>").to_owned();
    let skey = between(&xml, "<skey>", "</skey>").to_owned();
    // A ticket serves once.
    let used = text(&get(s, page).await);
    assert!(
        used.contains(&format!("<ret>{RET_BAD_TICKET}</ret>")),
        "{used}"
    );
    (sid, uin, skey, r.cookies)
}

#[tokio::test]
async fn jslogin_login_poll_ticket_and_webwxinit() {
    let (s, events) = service(|c| c.test_users = vec!["alice".into(), "bob".into()]);
    s.identify(Some("bob".into()), 0, "phone")
        .await
        .expect("bob exists");
    let (sid, uin, skey, cookies) = login(&s, "alice").await;
    assert_eq!(sid.len(), 32);
    assert!(skey.starts_with("@crypt_"), "{skey}");
    assert_eq!(cookies.len(), 3, "{cookies:?}");
    assert_eq!(cookies[0], format!("wxsid={sid}; Path=/"));
    assert_eq!(cookies[1], format!("wxuin={uin}; Path=/"));
    assert!(cookies[2].starts_with("webwx_data_ticket="), "{cookies:?}");
    let alice: UserId = uin.parse().expect("a uin");
    assert_eq!(s.online().get(&alice).map(Vec::len), Some(1), "online");
    assert_eq!(
        events.lock().unwrap().last(),
        Some(&Event::Identified {
            peer: peer(),
            user: "alice".into(),
            device: WEB_DEVICE.into(),
            primary: false,
        })
    );

    let body =
        json!({ "BaseRequest": { "Uin": alice, "Sid": sid, "Skey": skey, "DeviceID": "e1" } });
    let init = Request::test(
        "POST",
        &format!("{WEB_PREFIX}webwxinit?r=1"),
        body.to_string().as_bytes(),
    );
    let v = json_of(&serve(&s, &init).await.expect("webwxinit"));
    assert_eq!(v["BaseResponse"]["Ret"], 0);
    assert_eq!(v["User"]["UserName"], "@alice");
    assert_eq!(v["User"]["Uin"], alice);
    assert_eq!(v["Count"], 3, "oneself, filehelper, bob");
    assert_eq!(v["ContactList"][2]["UserName"], "@bob");
    assert_eq!(v["SKey"], skey.as_str());
    let keys = synckey_json(&v["SyncKey"]).expect("a SyncKey");
    assert_eq!(keys.get(&KEY_MESSAGES), Some(&0));

    // A wrong Skey names no session: answered "logged out".
    let wrong = json!({ "BaseRequest": { "Uin": alice, "Sid": sid, "Skey": "@crypt_x" } });
    let init = Request::test(
        "POST",
        &format!("{WEB_PREFIX}webwxinit"),
        wrong.to_string().as_bytes(),
    );
    let v = json_of(&serve(&s, &init).await.expect("webwxinit"));
    assert_eq!(v["BaseResponse"]["Ret"], RET_LOGGED_OUT);

    // Logout ends the session and takes it off the online list.
    get(&s, &format!("{WEB_PREFIX}webwxlogout?sid={sid}&uin={uin}")).await;
    assert!(s.online().get(&alice).is_none(), "offline after logout");
    let check = text(
        &get(
            &s,
            &format!("{WEB_PREFIX}synccheck?sid={sid}&uin={uin}&synckey=1_1|2_0|3_1"),
        )
        .await,
    );
    assert!(
        check.contains(&format!("retcode:\"{RET_LOGGED_OUT}\"")),
        "{check}"
    );
}

#[tokio::test]
async fn an_unconfirmed_login_poll_is_held_then_408_or_ended_by_shutdown() {
    let (s, _) = service(|c| c.web_poll = Duration::from_millis(100));
    let js = text(&get(&s, "/jslogin?appid=wx&fun=new").await);
    let uuid = between(&js, "uuid = \"", "\"").to_owned();
    let poll = Request::test("GET", &format!("{WEB_PREFIX}login?uuid={uuid}"), b"");
    let started = tokio::time::Instant::now();
    let r = serve(&s, &poll).await.expect("login poll");
    assert_eq!(text(&r), "window.code=408;");
    assert!(started.elapsed() >= Duration::from_millis(100), "held");
    // Shutdown answers a held poll at once.
    let (tx, mut rx) = broadcast::channel(1);
    drop(tx);
    let mut origin = Origin {
        peer: peer(),
        local: None,
        shutdown: &mut rx,
    };
    let started = tokio::time::Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(5), route(&s, &poll, &mut origin))
        .await
        .expect("not held past shutdown")
        .expect("login poll");
    assert_eq!(text(&r), "window.code=408;");
    assert!(started.elapsed() < Duration::from_millis(100));
    // An unknown uuid.
    let r = get(&s, &format!("{WEB_PREFIX}login?uuid=nope")).await;
    assert_eq!(text(&r), "window.code=400;");
}

#[tokio::test]
async fn web_refusals() {
    let (s, _) = service(|c| c.test_users = vec!["alice".into()]);
    let status = |r: Result<Reply, Close>| match r {
        Err(Close::Http { status, ret, .. }) => (status, ret),
        other => panic!("not an HTTP error: {other:?}"),
    };
    let post = |target: &str, body: &[u8]| Request::test("POST", target, body);
    assert_eq!(
        status(serve(&s, &post(&format!("{WEB_PREFIX}synccheck"), b"")).await),
        (405, ret::UNKNOWN_CMD)
    );
    assert_eq!(
        status(serve(&s, &post(&format!("{WEB_PREFIX}webwxsync"), b"not json")).await),
        (400, ret::BAD_BODY)
    );
    assert_eq!(
        status(serve(&s, &Request::test("GET", "/jslogin?user=mallory", b"")).await),
        (403, ret::UNKNOWN_USER)
    );
    assert_eq!(
        status(serve(&s, &Request::test("GET", &format!("{WEB_PREFIX}nope"), b"")).await),
        (404, ret::UNKNOWN_CMD)
    );
    let v = json_of(
        &serve(&s, &post(&format!("{WEB_PREFIX}webwxsync"), b"{}"))
            .await
            .expect("answered"),
    );
    assert_eq!(v["BaseResponse"]["Ret"], RET_LOGGED_OUT);
}

/// Serves `req` as if from `from`.
async fn serve_from(s: &Service, req: &Request, from: SocketAddr) -> Result<Reply, Close> {
    let (_tx, mut rx) = broadcast::channel(1);
    let mut origin = Origin {
        peer: from,
        local: None,
        shutdown: &mut rx,
    };
    route(s, req, &mut origin).await
}

fn addr(last: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, last], 5000))
}

/// A jslogin for `user` from `from`: the uuid.
async fn jslogin_from(s: &Service, user: &str, from: SocketAddr) -> String {
    let req = Request::test(
        "GET",
        &format!("/jslogin?appid=wx&fun=new&user={user}"),
        b"",
    );
    let js = text(&serve_from(s, &req, from).await.expect("jslogin"));
    between(&js, "uuid = \"", "\"").to_owned()
}

/// The login poll's answer for `uuid`.
async fn poll(s: &Service, uuid: &str) -> String {
    text(&get(s, &format!("{WEB_PREFIX}login?uuid={uuid}")).await)
}

#[tokio::test]
async fn a_jslogin_flood_from_one_address_evicts_its_own_oldest_logins_only() {
    let (s, _) = service(|c| c.test_users = vec!["alice".into()]);
    let other = jslogin_from(&s, "alice", addr(2)).await;
    let mut flood = Vec::new();
    for _ in 0..session::MAX_LOGINS_PER_PEER + 4 {
        flood.push(jslogin_from(&s, "alice", addr(1)).await);
    }
    assert_eq!(
        s.web.lock().logins.len(),
        session::MAX_LOGINS_PER_PEER + 1,
        "the flood holds its address's cap, no more"
    );
    // Its four oldest were forgotten; the newest and the other address's
    // logins are served.
    for uuid in &flood[..4] {
        assert_eq!(poll(&s, uuid).await, "window.code=400;");
    }
    assert!(poll(&s, &flood[4]).await.starts_with("window.code=201;"));
    assert!(poll(&s, flood.last().unwrap())
        .await
        .starts_with("window.code=201;"));
    assert!(poll(&s, &other).await.starts_with("window.code=201;"));
}

#[test]
fn the_login_table_evicts_the_oldest_at_its_cap() {
    let mut inner = Inner::default();
    let login = |peer: u8| Login {
        wanted: None,
        user: None,
        scanned: false,
        ticket: None,
        created: Instant::now(),
        peer: addr(peer).ip(),
        confirmed: Arc::new(Notify::new()),
    };
    for (uuid, peer) in [("a", 1), ("b", 2), ("c", 3), ("d", 4)] {
        inner.add_login(uuid.into(), login(peer), 3);
    }
    let mut left: Vec<&String> = inner.logins.keys().collect();
    left.sort();
    assert_eq!(left, ["b", "c", "d"]);
    // A login gone (its ticket fetched) frees its place.
    assert!(inner.remove_login("c").is_some());
    inner.add_login("e".into(), login(5), 3);
    let mut left: Vec<&String> = inner.logins.keys().collect();
    left.sort();
    assert_eq!(left, ["b", "d", "e"]);
}

#[tokio::test(start_paused = true)]
async fn an_unconfirmed_login_is_forgotten_after_a_minute() {
    let (s, _) = service(|c| c.web_poll = Duration::from_millis(10));
    // No user named, no test users: nobody confirms it.
    let js = text(&get(&s, "/jslogin?appid=wx&fun=new").await);
    let uuid = between(&js, "uuid = \"", "\"").to_owned();
    assert_eq!(poll(&s, &uuid).await, "window.code=408;");
    tokio::time::advance(session::LOGIN_TTL + Duration::from_secs(1)).await;
    // A later jslogin sweeps it; a device can no longer confirm it.
    get(&s, "/jslogin?appid=wx&fun=new").await;
    assert_eq!(poll(&s, &uuid).await, "window.code=400;");
    assert!(s.web.confirm(&uuid, "alice").is_err());
}

/// Logs `user` in from `from`: the session id.
async fn login_from(s: &Service, user: &str, from: SocketAddr) -> String {
    let uuid = jslogin_from(s, user, from).await;
    assert!(poll(s, &uuid).await.starts_with("window.code=201;"));
    let confirmed = poll(s, &uuid).await;
    let redirect = between(&confirmed, "redirect_uri=\"", "\"");
    let page = redirect
        .strip_prefix("http://h")
        .expect("the Host")
        .to_owned();
    let r = serve_from(s, &Request::test("GET", &page, b""), from)
        .await
        .expect("ticket page");
    let xml = text(&r);
    assert!(xml.starts_with("<error><ret>0</ret>"), "{xml}");
    between(&xml, "<wxsid>", "</wxsid>").to_owned()
}

/// webwxsync's Ret for session `sid` (1101: ended).
async fn sync_ret(s: &Service, sid: &str) -> Value {
    let body = json!({ "BaseRequest": { "Sid": sid }, "SyncKey": { "Count": 0, "List": [] } });
    let req = Request::test(
        "POST",
        &format!("{WEB_PREFIX}webwxsync"),
        body.to_string().as_bytes(),
    );
    json_of(&serve(s, &req).await.expect("webwxsync"))["BaseResponse"]["Ret"].clone()
}

#[tokio::test]
async fn sessions_past_the_cap_end_the_least_recently_used_instead_of_refusing() {
    let (s, _) = service(|c| {
        c.test_users = vec!["alice".into(), "bob".into()];
        c.max_connections = 3;
    });
    let mut sids = Vec::new();
    for i in 0..3 {
        sids.push(login_from(&s, "alice", addr(i)).await);
    }
    // The first is used again: the second is now the least recent.
    assert_eq!(sync_ret(&s, &sids[0]).await, 0);
    let newest = login_from(&s, "bob", addr(9)).await;
    assert_eq!(sync_ret(&s, &newest).await, 0, "logged in, not 503");
    assert_eq!(sync_ret(&s, &sids[1]).await, RET_LOGGED_OUT);
    assert_eq!(sync_ret(&s, &sids[0]).await, 0);
    assert_eq!(sync_ret(&s, &sids[2]).await, 0);
    assert_eq!(s.web.lock().sessions.len(), 3);
}

#[tokio::test]
async fn one_address_holds_a_bounded_number_of_sessions() {
    let (s, _) = service(|c| c.test_users = vec!["alice".into()]);
    let elsewhere = login_from(&s, "alice", addr(200)).await;
    let mut sids = Vec::new();
    for _ in 0..session::MAX_SESSIONS_PER_PEER + 1 {
        sids.push(login_from(&s, "alice", addr(1)).await);
    }
    assert_eq!(
        sync_ret(&s, &sids[0]).await,
        RET_LOGGED_OUT,
        "its oldest ended"
    );
    assert_eq!(sync_ret(&s, &sids[1]).await, 0);
    assert_eq!(sync_ret(&s, sids.last().unwrap()).await, 0);
    assert_eq!(
        sync_ret(&s, &elsewhere).await,
        0,
        "other addresses keep theirs"
    );
}

#[tokio::test]
async fn a_host_that_would_leave_the_redirect_string_is_refused() {
    let (s, _) = service(|c| c.test_users = vec!["alice".into()]);
    let uuid = jslogin_from(&s, "alice", peer()).await;
    let mut req = Request::test("GET", &format!("{WEB_PREFIX}login?uuid={uuid}"), b"");
    req.host = "evil.example\";alert(document.cookie)//".into();
    match serve(&s, &req).await {
        Err(Close::Http { status, .. }) => assert_eq!(status, 400),
        other => panic!("not refused: {other:?}"),
    }
    for host in ["127.0.0.1:8080", "[::1]:8080", "wx.example-host.com"] {
        let uuid = jslogin_from(&s, "alice", peer()).await;
        let mut req = Request::test("GET", &format!("{WEB_PREFIX}login?uuid={uuid}"), b"");
        req.host = host.into();
        assert!(text(&serve(&s, &req).await.expect("201")).contains("201"));
        let js = text(&serve(&s, &req).await.expect("200"));
        assert!(
            js.contains(&format!("redirect_uri=\"http://{host}/")),
            "{js}"
        );
    }
}

/// A request with a Cookie header.
fn with_cookie(mut req: Request, cookie: &str) -> Request {
    req.cookie = cookie.to_owned();
    req
}

#[tokio::test]
async fn jslogin_by_post_and_sessions_named_by_cookies_or_ids_of_any_shape() {
    let (s, _) = service(|c| c.test_users = vec!["alice".into()]);
    // POST, parameters in the query string (as web clients send it).
    let r = serve(
        &s,
        &Request::test("POST", "/jslogin?appid=wx&fun=new&lang=zh-CN", b""),
    )
    .await
    .expect("jslogin by POST");
    assert!(text(&r).starts_with("window.QRLogin.code = 200;"), "{r:?}");
    // ... or in a form body.
    let r = serve(
        &s,
        &Request::test("POST", "/jslogin", b"appid=wx&fun=new&user=alice"),
    )
    .await
    .expect("jslogin by POST with a form");
    assert!(text(&r).contains("uuid"), "{r:?}");

    let (sid, uin, _, _) = login(&s, "alice").await;
    let cookie = format!("wxsid={sid}; wxuin={uin}; webwx_data_ticket=t");
    // Uin as a number, a string, null (a client that did not read the
    // ticket XML: parseInt("") is NaN, JSON null) or 0; Sid and Skey
    // empty; no pass_ticket: the cookies name the session.
    for base in [
        json!({ "Uin": uin.parse::<u64>().unwrap(), "Sid": sid, "Skey": "" }),
        json!({ "Uin": uin, "Sid": sid }),
        json!({ "Uin": null, "Sid": "", "Skey": "", "DeviceID": "e1" }),
        json!({ "Uin": 0, "Sid": "", "Skey": "" }),
    ] {
        let body = json!({ "BaseRequest": base }).to_string();
        let req = with_cookie(
            Request::test(
                "POST",
                &format!("{WEB_PREFIX}webwxinit?r=1"),
                body.as_bytes(),
            ),
            &cookie,
        );
        let v = json_of(&serve(&s, &req).await.expect("webwxinit"));
        assert_eq!(v["BaseResponse"]["Ret"], 0, "{base}: {v}");
        assert_eq!(v["User"]["UserName"], "@alice");
    }
    // A contact list by GET with the cookies and skey only.
    let req = with_cookie(
        Request::test(
            "GET",
            &format!("{WEB_PREFIX}webwxgetcontact?seq=0&r=1"),
            b"",
        ),
        &cookie,
    );
    let v = json_of(&serve(&s, &req).await.expect("webwxgetcontact"));
    assert_eq!(v["BaseResponse"]["Ret"], 0, "{v}");
    // Another session's Uin still names nothing.
    let body = json!({ "BaseRequest": { "Uin": 999_999, "Sid": sid } }).to_string();
    let req = Request::test("POST", &format!("{WEB_PREFIX}webwxinit"), body.as_bytes());
    let v = json_of(&serve(&s, &req).await.expect("webwxinit"));
    assert_eq!(v["BaseResponse"]["Ret"], RET_LOGGED_OUT);
}

#[tokio::test]
async fn the_ticket_page_answers_301_with_the_session_and_no_location() {
    let (s, _) = service(|c| c.test_users = vec!["alice".into()]);
    let js = text(&get(&s, "/jslogin?appid=wx&fun=new&user=alice").await);
    let uuid = between(&js, "uuid = \"", "\"").to_owned();
    let poll = format!("{WEB_PREFIX}login?uuid={uuid}");
    get(&s, &poll).await;
    let confirmed = text(&get(&s, &poll).await);
    let page = between(&confirmed, "redirect_uri=\"", "\"")
        .strip_prefix("http://h")
        .expect("the Host")
        .to_owned();
    let r = get(&s, &page).await;
    assert_eq!(r.status, 301, "as the real service in UOS mode");
    let xml = text(&r);
    assert!(
        xml.contains("<wxsid>") && xml.contains("<pass_ticket>"),
        "{xml}"
    );
    assert_eq!(r.cookies.len(), 3, "{r:?}");
    // A bad ticket is a plain answer.
    let again = get(&s, &page).await;
    assert_eq!(again.status, 200);
}

#[tokio::test]
async fn filehelper_and_oneself_are_contacts_and_filehelper_reaches_ones_devices() {
    let (s, _) = service(|c| c.test_users = vec!["alice".into(), "bob".into()]);
    s.identify(Some("bob".into()), 0, "phone")
        .await
        .expect("bob");
    let (alice, _, _) = s
        .identify(Some("alice".into()), 0, "phone")
        .await
        .expect("alice's phone");
    let (sid, uin, skey, _) = login(&s, "alice").await;
    let base = json!({ "Uin": uin, "Sid": sid, "Skey": skey });
    let body = json!({ "BaseRequest": base }).to_string();
    let init = Request::test("POST", &format!("{WEB_PREFIX}webwxinit"), body.as_bytes());
    let v = json_of(&serve(&s, &init).await.expect("webwxinit"));
    let names: Vec<&str> = v["ContactList"]
        .as_array()
        .expect("ContactList")
        .iter()
        .filter_map(|c| c["UserName"].as_str())
        .collect();
    assert_eq!(names, ["@alice", "filehelper", "@bob"], "{v}");
    assert_eq!(v["Count"], 3);
    let get_contacts = Request::test(
        "GET",
        &format!("{WEB_PREFIX}webwxgetcontact?sid={sid}&uin={uin}"),
        b"",
    );
    let v = json_of(&serve(&s, &get_contacts).await.expect("webwxgetcontact"));
    assert_eq!(v["MemberCount"], 3, "{v}");
    let batch = json!({ "BaseRequest": base, "Count": 3,
        "List": [{ "UserName": "@bob" }, { "UserName": "filehelper" }, { "UserName": "@nobody" }] })
    .to_string();
    let req = Request::test(
        "POST",
        &format!("{WEB_PREFIX}webwxbatchgetcontact?type=ex"),
        batch.as_bytes(),
    );
    let v = json_of(&serve(&s, &req).await.expect("webwxbatchgetcontact"));
    assert_eq!(v["Count"], 2, "{v}");
    assert_eq!(v["ContactList"][1]["UserName"], "filehelper");

    // A keep-alive to filehelper: sent, and on alice's phone.
    let send = json!({ "BaseRequest": base, "Scene": 0, "Msg": { "Type": 1,
        "Content": "keep-alive", "FromUserName": "@alice", "ToUserName": "filehelper",
        "LocalID": "17000000000001", "ClientMsgId": "17000000000001" } })
    .to_string();
    let req = Request::test(
        "POST",
        &format!("{WEB_PREFIX}webwxsendmsg"),
        send.as_bytes(),
    );
    let v = json_of(&serve(&s, &req).await.expect("webwxsendmsg"));
    assert_eq!(v["BaseResponse"]["Ret"], 0, "{v}");
    let page = with_store(&s.store, move |st| st.sync(alice, "phone", 0, 10))
        .await
        .expect("alice's phone syncs");
    assert_eq!(page.messages.len(), 1, "{page:?}");
    assert_eq!(page.messages[0].content, "keep-alive");
    assert_eq!(add_msg(&page.messages[0], 1)["ToUserName"], "filehelper");
    // Nothing for bob, and no user called filehelper.
    let found = with_store(&s.store, |st| st.user(FILEHELPER, false))
        .await
        .expect("store");
    assert_eq!(found, None);
}

#[tokio::test]
async fn logout_answers_a_held_synccheck_with_1101() {
    let (s, _) = service(|c| {
        c.test_users = vec!["alice".into()];
        c.web_poll = Duration::from_secs(60);
    });
    let (sid, uin, skey, _) = login(&s, "alice").await;
    let check = Request::test(
        "GET",
        &format!("{WEB_PREFIX}synccheck?sid={sid}&uin={uin}&synckey=1_1|2_0|3_1"),
        b"",
    );
    let logout = Request::test(
        "POST",
        &format!("{WEB_PREFIX}webwxlogout?redirect=1&type=0&skey={skey}"),
        b"",
    );
    let cookie = format!("wxsid={sid}; wxuin={uin}");
    let logout = with_cookie(logout, &cookie);
    let held = async {
        let started = tokio::time::Instant::now();
        let r = serve(&s, &check).await.expect("synccheck");
        (text(&r), started.elapsed())
    };
    let later = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        serve(&s, &logout).await.expect("logout");
    };
    let ((answer, waited), ()) =
        tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(held, later) })
            .await
            .expect("the held poll is answered at logout, not after the hold");
    assert!(
        answer.contains(&format!("retcode:\"{RET_LOGGED_OUT}\"")),
        "{answer}"
    );
    assert!(waited < Duration::from_secs(30), "{waited:?}");
}
