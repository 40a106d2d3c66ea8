//! The replay's HTTP driver (`syncscope::replay::http`): the samples'
//! short-link and web sessions replayed against a fresh reference server
//! on 127.0.0.1 port 0, with a context built here (the helpers of
//! `net.rs`). Every wait is bounded.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use syncscope::analyze::Options;
use syncscope::capture::Reader;
use syncscope::flow;
use syncscope::replay::report::SessionRow;
use syncscope::replay::{
    self, Config, Ctx, Exchange, Gate, Plan, Recording, Session, Step, Tokens, Verdict,
};

use crate::net::{within, TestServer};

fn sample(name: &str) -> (Recording, Arc<Options>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples")
        .join(name);
    let mut reader = Reader::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (mut opts, _) = replay::schema::options(&[], &[], None).expect("built-in schema");
    let rec = Recording::read(&mut reader, &mut opts, flow::Config::default());
    (rec, Arc::new(opts))
}

fn sessions(rec: &Recording, conns: &[u64]) -> Vec<Session> {
    conns
        .iter()
        .map(|c| {
            rec.sessions
                .iter()
                .find(|s| s.conn == *c)
                .unwrap_or_else(|| panic!("conn {c} in the sample"))
                .clone()
        })
        .collect()
}

struct Run {
    rows: Vec<SessionRow>,
    exchanges: Vec<Exchange>,
    tokens: Tokens,
}

/// Replays `sessions` at once against `server`, as one clone.
async fn replay_with(
    server: String,
    sessions: Vec<Session>,
    opts: &Arc<Options>,
    tweak: impl FnOnce(&mut Config, &mut Tokens),
) -> Run {
    replay_beside(server, sessions, opts, tweak, |_| tokio::spawn(async {})).await
}

/// As [`replay_with`], with `beside` running along (what another
/// connection of the capture did).
async fn replay_beside(
    server: String,
    sessions: Vec<Session>,
    opts: &Arc<Options>,
    tweak: impl FnOnce(&mut Config, &mut Tokens),
    beside: impl FnOnce(Arc<Ctx>) -> tokio::task::JoinHandle<()>,
) -> Run {
    let mut config = Config::new(server);
    config.stall = Duration::from_secs(3);
    let mut tokens = Tokens::default();
    tweak(&mut config, &mut tokens);
    let plan = Plan::new(&sessions.iter().collect::<Vec<_>>());
    let ctx = Arc::new(Ctx {
        config: Arc::new(config),
        opts: Arc::clone(opts),
        gate: Gate::new(plan.len()),
        plan,
        tokens: Mutex::new(tokens),
        clone: 0,
        started: Instant::now(),
        out: Mutex::new(Vec::new()),
    });
    let watchdog = tokio::spawn({
        let ctx = Arc::clone(&ctx);
        async move { ctx.gate.watchdog(ctx.config.stall).await }
    });
    let other = beside(Arc::clone(&ctx));
    let tasks: Vec<_> = sessions
        .into_iter()
        .enumerate()
        .map(|(si, s)| {
            let ctx = Arc::clone(&ctx);
            tokio::spawn(async move { replay::http::run_session(&ctx, si, &s).await })
        })
        .collect();
    let mut rows = Vec::new();
    for t in tasks {
        rows.push(within("a replayed session", t).await.expect("session task"));
    }
    within("what ran beside", other).await.expect("beside task");
    watchdog.abort();
    let exchanges = std::mem::take(&mut *ctx.out.lock().unwrap());
    let tokens = ctx.tokens().clone();
    Run {
        rows,
        exchanges,
        tokens,
    }
}

async fn replay(server: String, sessions: Vec<Session>, opts: &Arc<Options>) -> Run {
    replay_with(server, sessions, opts, |_, _| {}).await
}

/// Every exchange matched; shows the others when not.
fn assert_all_matched(run: &Run) {
    let bad: Vec<&Exchange> = run
        .exchanges
        .iter()
        .filter(|e| e.verdict != Verdict::Matched)
        .collect();
    assert!(
        bad.is_empty(),
        "{}",
        serde_json::to_string_pretty(&bad).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_short_link_sample_matches_on_a_fresh_server() {
    let (rec, opts) = sample("serve-client-shortlink.pcapng");
    let srv = TestServer::start(|_| {}).await;
    let run = replay(srv.addr.to_string(), sessions(&rec, &[0, 1]), &opts).await;
    assert_all_matched(&run);
    let mut names: Vec<String> = run.exchanges.iter().map(|e| e.name.clone()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "manualauth",
            "newsendmsg",
            "newsendmsg",
            "newsendmsg",
            "newsync",
            "newsync"
        ]
    );
    let matched: u64 = run.rows.iter().map(|r| r.counts.matched).sum();
    assert_eq!(matched as usize, run.exchanges.len());
    assert!(run.exchanges.iter().all(|e| e.latency_us.is_some()));
}

/// conn 3 of the web sample: bob logs in on the web (jslogin, login poll,
/// ticket page, webwxinit, statusnotify), sends to alice and logs out.
const WEB_SEND: u64 = 3;
/// The session id that session had in the recording.
const WEB_SEND_SID: &str = "75bb4b2825d97a68b5261dfb5e5a75b5";

/// A fresh server as the sample's (test users alice and bob, the web
/// contacts), where alice exists, as she did when conn 3 was recorded
/// (her long-link session, conn 2, is not replayed here).
async fn server_with_alice() -> TestServer {
    server_with(&["alice", "bob"]).await
}

/// A fresh server with these test users, alice created.
async fn server_with(users: &[&str]) -> TestServer {
    let users = users.iter().map(|u| u.to_string()).collect();
    let srv = TestServer::start(|c| c.test_users = users).await;
    let alice = srv.store.lock().unwrap().user("alice", true);
    assert!(alice.is_ok_and(|u| u.is_some()));
    srv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_session_matches_on_a_fresh_server_with_live_ids() {
    let (rec, opts) = sample("serve-client-web.pcapng");
    let srv = server_with_alice().await;
    let run = replay(srv.addr.to_string(), sessions(&rec, &[WEB_SEND]), &opts).await;
    assert_all_matched(&run);
    let names: Vec<&str> = run.exchanges.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "jslogin",
            "login",
            "login",
            "webwxnewloginpage",
            "webwxinit",
            "webwxstatusnotify",
            "webwxsendmsg",
            "webwxlogout"
        ]
    );
    // The live login's uuid, ticket and session ids were presented: each
    // request after jslogin carried substitutions beyond the Host header.
    for e in &run.exchanges[1..7] {
        assert!(
            e.substituted >= 2,
            "{} substituted {}",
            e.name,
            e.substituted
        );
    }
    let rec_sid = WEB_SEND_SID;
    assert!(run.tokens.get_str(rec_sid).is_some_and(|l| l != rec_sid));
    assert_eq!(run.rows[0].counts.matched, 8);
    assert_eq!(run.rows[0].error, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replay_on_the_same_server_logs_in_with_the_live_ids() {
    let (rec, opts) = sample("serve-client-web.pcapng");
    let srv = server_with_alice().await;
    let first = replay(srv.addr.to_string(), sessions(&rec, &[WEB_SEND]), &opts).await;
    assert_all_matched(&first);
    let second = replay(srv.addr.to_string(), sessions(&rec, &[WEB_SEND]), &opts).await;
    assert_all_matched(&second);
    // Each run learned its own live session id for the recorded one.
    let rec_sid = WEB_SEND_SID;
    assert_ne!(
        first.tokens.get_str(rec_sid),
        second.tokens.get_str(rec_sid)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapped_user_logs_in_and_bodies_are_sent_with_their_new_length() {
    let (rec, opts) = sample("serve-client-web.pcapng");
    let srv = server_with(&["alice", "carol"]).await;
    let run = replay_with(
        srv.addr.to_string(),
        sessions(&rec, &[WEB_SEND]),
        &opts,
        |_, t| t.map_user("bob", "carol"),
    )
    .await;
    // "@bob" -> "@carol" makes the JSON bodies longer: a stale
    // Content-Length would cut them.
    assert_all_matched(&run);
    let carol = srv.store.lock().unwrap().user("carol", false);
    assert!(
        carol.is_ok_and(|u| u.is_some()),
        "carol logged in on the web"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_named_by_its_cookies_presents_the_live_ones() {
    let (rec, opts) = sample("serve-client-web.pcapng");
    let mut s = sessions(&rec, &[WEB_SEND]).remove(0);
    // A contact list fetched by the cookies alone (no sid in the query):
    // the server finds the session by the wxsid cookie.
    let at = s
        .steps
        .iter()
        .position(|st| matches!(st, Step::Http { name, .. } if name == "webwxlogout"))
        .expect("logout step");
    let Step::Http {
        request, response, ..
    } = s.steps[at].clone()
    else {
        unreachable!()
    };
    assert!(request
        .message
        .header_str("cookie")
        .is_some_and(|c| c.contains("wxsid=")));
    let skey = request
        .message
        .query()
        .and_then(|q| q.split('&').find(|p| p.starts_with("skey=")))
        .expect("skey in the recorded logout")
        .to_owned();
    let mut rq = request.clone();
    rq.message.start = syncscope::proto::http::Start::Request {
        method: "GET".into(),
        path: format!("/cgi-bin/mmwebwx-bin/webwxgetcontact?r=1&seq=0&{skey}"),
    };
    let mut rs = response.clone();
    rs.message.body = br#"{"BaseResponse":{"Ret":0,"ErrMsg":""}}"#.to_vec();
    s.steps.insert(
        at,
        Step::Http {
            name: "webwxgetcontact".into(),
            request: rq,
            response: rs,
        },
    );
    let srv = server_with_alice().await;
    let run = replay(srv.addr.to_string(), vec![s], &opts).await;
    let contact = run
        .exchanges
        .iter()
        .find(|e| e.name == "webwxgetcontact")
        .expect("sent");
    assert!(
        contact.diffs.iter().all(|d| d.path != "BaseResponse.Ret"),
        "the session was found by its live cookie: {:?}",
        contact.diffs
    );
    assert!(
        contact.diffs.iter().any(|d| d.path == "MemberCount"),
        "{:?}",
        contact.diffs
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_gives_errors_not_a_hang() {
    let (rec, opts) = sample("serve-client-web.pcapng");
    let (short, sopts) = sample("serve-client-shortlink.pcapng");
    // A port nobody listens on.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    for (rec, opts, conns) in [
        (&rec, &opts, &[0u64, 1, 3][..]),
        (&short, &sopts, &[0, 1][..]),
    ] {
        let run = replay(addr.clone(), sessions(rec, conns), opts).await;
        for row in &run.rows {
            assert_eq!(row.counts.error, 1, "{row:?}");
            assert_eq!(row.counts.matched + row.counts.different, 0);
            let err = row.error.as_deref().unwrap_or("");
            assert!(
                err.contains("cannot connect") && err.contains(&addr),
                "{err}"
            );
        }
        let steps: usize = conns
            .iter()
            .map(|c| {
                rec.sessions
                    .iter()
                    .find(|s| s.conn == *c)
                    .unwrap()
                    .steps
                    .len()
            })
            .sum();
        assert_eq!(run.exchanges.len(), steps, "every step is reported");
        assert!(run
            .exchanges
            .iter()
            .all(|e| matches!(e.verdict, Verdict::Error | Verdict::NotSent)));
    }
}

/// conns 0 and 1 of the web sample: bob's web login and webwxsync on one
/// connection, the synccheck long poll on another, answered when alice's
/// long-link send (conn 2, played here by the client) arrives.
async fn web_two_connections(srv: &TestServer, rec: &Recording, opts: &Arc<Options>) -> Run {
    let alice = srv.client("alice", "phone");
    replay_beside(
        srv.addr.to_string(),
        sessions(rec, &[0, 1]),
        opts,
        |_, _| {},
        move |ctx| {
            tokio::spawn(async move {
                // Once the synccheck is sent (session 1, step 0).
                let sent = ctx.plan.send(1, 0).expect("the synccheck's send");
                within("the synccheck is sent", async {
                    while ctx.gate.state(sent).is_none() {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
                .await;
                let opts = syncscope::net::client::SendOptions::default();
                let send =
                    syncscope::net::client::send(&alice, "bob", "hello bob on the web", &opts);
                within("alice sends", send).await.expect("alice sends");
            })
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_session_on_two_connections_syncs_with_the_live_keys() {
    let (rec, opts) = sample("serve-client-web.pcapng");
    let srv = server_with_alice().await;
    let first = web_two_connections(&srv, &rec, &opts).await;
    assert_all_matched(&first);
    let names: Vec<&str> = first.exchanges.iter().map(|e| e.name.as_str()).collect();
    assert!(names.contains(&"synccheck"), "{names:?}");
    assert_eq!(names.iter().filter(|n| **n == "webwxsync").count(), 3);
    // Again on the same server: bob's store has moved on, the live keys
    // are not the recorded ones, and the syncs present the live ones.
    let second = web_two_connections(&srv, &rec, &opts).await;
    assert_all_matched(&second);
    let sync = second
        .exchanges
        .iter()
        .filter(|e| e.name == "webwxsync")
        .collect::<Vec<_>>();
    assert!(sync.iter().all(|e| e.substituted >= 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_web_sample_replays_without_a_difference_through_the_engine() {
    // Web login and sync (conn 0), the synccheck (conn 1) that alice's
    // long-link send (conn 2) answers, bob's second web session (conn 3).
    let (rec, _) = sample("serve-client-web.pcapng");
    let (opts, _) = replay::schema::options(&[], &[], None).unwrap();
    let srv = server_with(&["alice", "bob"]).await;
    let mut config = Config::new(srv.addr.to_string());
    config.stall = Duration::from_secs(3);
    let report = within(
        "the web sample's replay",
        replay::run(rec.sessions.clone(), config, opts, Tokens::default(), true),
    )
    .await;
    assert!(
        !report.differs(),
        "{}",
        serde_json::to_string_pretty(&report.exchanges).unwrap()
    );
    assert_eq!(report.totals.matched, 22);
    let http: Vec<_> = report.sessions.iter().filter(|s| s.conn != 2).collect();
    assert_eq!(http.len(), 3);
    assert!(http
        .iter()
        .all(|s| s.counts.matched > 0 && s.error.is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_mid_replay_ends_the_session_with_a_clear_error() {
    let (rec, opts) = sample("serve-client-web.pcapng");
    // A server that answers the first request, then closes the connection
    // in the middle of its answer to the next one.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let cutter = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let _ = s.read(&mut buf).await;
        let body = b"window.QRLogin.code = 200; window.QRLogin.uuid = \"x\";";
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/javascript\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(body).await.unwrap();
        let _ = s.read(&mut buf).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
            .await;
        drop(s);
        drop(listener);
    });
    let run = replay(addr.clone(), sessions(&rec, &[WEB_SEND]), &opts).await;
    cutter.await.unwrap();
    let v: Vec<Verdict> = run.exchanges.iter().map(|e| e.verdict).collect();
    // jslogin answered (another uuid: learned, not a difference).
    assert_eq!(v[0], Verdict::Matched);
    assert_eq!(v[1], Verdict::Error);
    assert!(v[2..].iter().all(|v| *v == Verdict::NotSent), "{v:?}");
    assert_eq!(v.len(), 8);
    let note = run.exchanges[1].note.as_deref().unwrap_or("");
    assert!(
        note.contains("closed the connection in the middle of its answer") && note.contains(&addr),
        "{note}"
    );
    assert!(run.rows[0].error.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_synccheck_answered_after_it_was_given_up_is_missing_and_late() {
    // Without alice's send (conn 2) the server holds bob's synccheck for
    // its whole poll (4 s here); the replay gives it up after 1 s without
    // progress, bob's next webwxsync goes on, and the answer that comes
    // at last is counted missing, with its latency.
    let (rec, opts) = sample("serve-client-web.pcapng");
    let srv = TestServer::start(|c| {
        c.test_users = vec!["alice".into(), "bob".into()];
        c.web_poll = Duration::from_secs(4);
    })
    .await;
    let run = replay_with(
        srv.addr.to_string(),
        sessions(&rec, &[0, 1]),
        &opts,
        |c, _| c.stall = Duration::from_secs(1),
    )
    .await;
    let sc = run
        .exchanges
        .iter()
        .find(|e| e.name == "synccheck")
        .expect("the synccheck");
    assert_eq!(sc.verdict, Verdict::Missing, "{sc:?}");
    assert!(
        sc.note.as_deref().unwrap_or("").contains("came late"),
        "{sc:?}"
    );
    assert!(sc.latency_us.unwrap_or(0) >= 1_000_000, "{sc:?}");
    // The rest of bob's session went on meanwhile.
    let conn0: Vec<Verdict> = run
        .exchanges
        .iter()
        .filter(|e| e.conn == 0)
        .map(|e| e.verdict)
        .collect();
    assert_eq!(conn0.len(), 10);
    assert!(conn0
        .iter()
        .all(|v| matches!(v, Verdict::Matched | Verdict::Different)));
}

#[test]
fn the_users_of_http_sessions_are_found_for_clones() {
    let (web, _) = sample("serve-client-web.pcapng");
    let (short, _) = sample("serve-client-shortlink.pcapng");
    let users = |rec: &Recording, c: u64| {
        let s = rec.sessions.iter().find(|s| s.conn == c).unwrap();
        replay::http::recorded_users(s)
            .into_iter()
            .collect::<Vec<_>>()
    };
    assert_eq!(users(&web, 0), ["bob"]);
    assert_eq!(users(&web, 3), ["bob"]);
    assert_eq!(users(&short, 0), ["alice"]);
    assert_eq!(users(&short, 1), ["bob"]);
    // A manualauth alone names its user in its body.
    let mut auth = short.sessions.iter().find(|s| s.conn == 0).unwrap().clone();
    auth.steps.truncate(1);
    assert_eq!(
        replay::http::recorded_users(&auth)
            .into_iter()
            .collect::<Vec<_>>(),
        ["alice"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_link_request_presents_the_session_cookie_its_manualauth_got() {
    let (rec, opts) = sample("serve-client-shortlink.pcapng");
    let mut s = sessions(&rec, &[0]).remove(0);
    // After alice's manualauth, a newsync named by the session cookie
    // alone (as an enforcing server wants): the recorded cookie value is
    // not the live one.
    s.steps.truncate(1);
    let Step::Http {
        request, response, ..
    } = rec.sessions.iter().find(|s| s.conn == 1).unwrap().steps[0].clone()
    else {
        panic!("bob's newsync")
    };
    let mut rq = request.clone();
    rq.message.start = syncscope::proto::http::Start::Request {
        method: "POST".into(),
        path: "/cgi-bin/micromsg-bin/newsync".into(),
    };
    rq.message.headers.push((
        "Cookie".into(),
        b"mmsid=00112233445566778899aabbccddeeff".to_vec(),
    ));
    s.steps.push(Step::Http {
        name: "newsync".into(),
        request: rq,
        response,
    });
    let srv = TestServer::start(|_| {}).await;
    let run = replay(srv.addr.to_string(), vec![s], &opts).await;
    let sync = &run.exchanges[1];
    assert_eq!(sync.name, "newsync");
    assert!(
        sync.diffs.iter().all(|d| d.path != "status"),
        "the server knew the session: {:?}",
        sync.diffs
    );
}
