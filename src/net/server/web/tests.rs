//! The web endpoints through [`route`], on an in-memory store, no socket.

use super::*;
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

use std::time::Duration;

use tokio::sync::broadcast;

use crate::net::server::service::tests::{peer, service};

/// Serves `req` from [`peer`] with a shutdown signal that does not fire.
async fn serve(s: &Service, req: &Request) -> Result<Reply, Close> {
    let (_tx, mut rx) = broadcast::channel(1);
    let mut origin = Origin {
        peer: peer(),
        local: None,
        shutdown: &mut rx,
    };
    route(s, req, &mut origin).await
}

async fn get(s: &Service, target: &str) -> Reply {
    serve(s, &Request::test("GET", target, b""))
        .await
        .expect("answered")
}

fn text(r: &Reply) -> String {
    String::from_utf8(r.body.clone()).expect("UTF-8")
}

fn json_of(r: &Reply) -> Value {
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
async fn login(s: &Service, user: &str) -> (String, String, String, Vec<String>) {
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
    assert_eq!(v["Count"], 1);
    assert_eq!(v["ContactList"][0]["UserName"], "@bob");
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
