//! `syncscope replay` of long-link sessions: the samples (recorded between
//! `serve` and `client`) against a fresh in-process server, twice against
//! the same one (dedupe), the real WeChat capture (decrypted with its key
//! log), a server that is not there, and the CLI.

use std::path::{Path, PathBuf};
use std::time::Duration;

use syncscope::capture::Reader;
use syncscope::replay::{self, Recording, Session, Step, Tokens, Verdict};

use crate::net::TestServer;

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples")
        .join(name)
}

fn record(path: &Path, keylog: Option<&Path>) -> (Recording, syncscope::analyze::Options) {
    let (mut opts, _) = replay::schema::options(&[], &[], None).unwrap();
    if let Some(k) = keylog {
        opts.keylog = Some(syncscope::proto::keylog::KeyLog::load(k).unwrap());
    }
    let mut r = Reader::open(path).unwrap();
    let rec = Recording::read(&mut r, &mut opts, syncscope::flow::Config::default());
    (rec, opts)
}

fn config(server: &str) -> replay::Config {
    let mut c = replay::Config::new(server);
    c.stall = Duration::from_secs(2);
    c
}

/// Recorded answers and pushes: what a faithful replay matches.
fn recorded_answers(sessions: &[Session]) -> u64 {
    sessions
        .iter()
        .flat_map(|s| &s.steps)
        .filter(|st| match st {
            Step::Frame { answer, .. } => answer.is_some(),
            Step::Push(_) => true,
            _ => false,
        })
        .count() as u64
}

async fn replay_longlink_sample(server: &TestServer) -> replay::Report {
    let (rec, opts) = record(&sample("serve-client-longlink.pcapng"), None);
    let sessions = rec.sessions.clone();
    replay::run(
        sessions,
        config(&server.addr.to_string()),
        opts,
        Tokens::default(),
        true,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_longlink_sample_replays_without_a_difference_on_a_fresh_server() {
    let server = TestServer::start(|_| {}).await;
    let (rec, _) = record(&sample("serve-client-longlink.pcapng"), None);
    let want = recorded_answers(&rec.sessions);
    assert!(want >= 20, "{want} recorded answers");
    let r = replay_longlink_sample(&server).await;
    let bad: Vec<_> = r
        .exchanges
        .iter()
        .filter(|e| !matches!(e.verdict, Verdict::Matched | Verdict::Sent))
        .collect();
    assert!(bad.is_empty(), "{bad:#?}");
    assert_eq!(r.totals.matched, want);
    // Pushes came live as recorded (newnotify after each send).
    let pushes: u64 = r.sessions.iter().map(|s| s.pushes_live).sum();
    let recorded: u64 = r.sessions.iter().map(|s| s.pushes_recorded).sum();
    assert_eq!(pushes, recorded);
    assert!(recorded >= 3);
    assert!(!r.differs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replay_gets_the_first_ones_msgids_back_and_the_diff_says_so() {
    let server = TestServer::start(|_| {}).await;
    let first = replay_longlink_sample(&server).await;
    let second = replay_longlink_sample(&server).await;
    let ids = |r: &replay::Report| {
        let mut v: Vec<(u64, Vec<u64>)> = r
            .exchanges
            .iter()
            .filter(|e| e.name == "newsendmsg")
            .map(|e| (e.conn, e.msg_ids.clone()))
            .collect();
        v.sort();
        v
    };
    let (a, b) = (ids(&first), ids(&second));
    assert_eq!(a.len(), 3, "{a:?}");
    assert!(a.iter().all(|(_, ids)| ids.len() == 1));
    // Same ClientMsgIds: the server answers with the stored messages.
    assert_eq!(a, b);
    // Nothing new was stored, so nobody was notified and the syncs came
    // back empty: the report says what differs.
    assert!(!first.differs());
    assert!(second.differs());
    assert!(second.totals.missing > 0, "{:?}", second.totals);
    assert!(second
        .exchanges
        .iter()
        .any(|e| e.verdict == Verdict::Different
            && e.diffs.iter().any(|d| d.path.starts_with("CmdList"))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_ids_make_the_second_replay_deliver_again() {
    let server = TestServer::start(|_| {}).await;
    let _ = replay_longlink_sample(&server).await;
    let (rec, opts) = record(&sample("serve-client-longlink.pcapng"), None);
    let mut c = config(&server.addr.to_string());
    c.fresh_ids = true;
    let r = replay::run(rec.sessions.clone(), c, opts, Tokens::default(), true).await;
    // New ids: new messages, pushed and synced as recorded; the SyncKeys
    // presented are the live ones (without them the server would page
    // from the recorded keys).
    let pushes: u64 = r.sessions.iter().map(|s| s.pushes_live).sum();
    assert!(pushes >= 3, "{:?}", r.sessions);
    let send_subst: usize = r
        .exchanges
        .iter()
        .filter(|e| e.name == "newsendmsg")
        .map(|e| e.substituted)
        .sum();
    assert!(send_subst >= 3);
    // And new MsgIds, not the first replay's.
    let mut ids: Vec<u64> = r
        .exchanges
        .iter()
        .filter(|e| e.name == "newsendmsg")
        .flat_map(|e| e.msg_ids.clone())
        .collect();
    ids.sort();
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|&i| i > 3), "{ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_mapped_to_live_users() {
    let server = TestServer::start(|_| {}).await;
    let (rec, opts) = record(&sample("serve-client-longlink.pcapng"), None);
    let mut t = Tokens::default();
    t.map_user("bob", "carol");
    t.map_user("alice", "dave");
    let r = replay::run(
        rec.sessions.clone(),
        config(&server.addr.to_string()),
        opts,
        t,
        true,
    )
    .await;
    assert!(!r.differs(), "{:#?}", r.exchanges);
    // The live server knows carol and dave, not bob and alice.
    let mut store = server.store.lock().unwrap();
    assert!(store.user("carol", false).unwrap().is_some());
    assert!(store.user("dave", false).unwrap().is_some());
    assert!(store.user("bob", false).unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_not_there_is_an_error_for_every_session_and_no_hang() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    let (rec, opts) = record(&sample("serve-client-longlink.pcapng"), None);
    let r = tokio::time::timeout(
        Duration::from_secs(60),
        replay::run(
            rec.sessions.clone(),
            config(&addr),
            opts,
            Tokens::default(),
            true,
        ),
    )
    .await
    .expect("the replay ends");
    assert_eq!(r.sessions.len(), 6);
    for s in &r.sessions {
        let e = s.error.as_deref().unwrap_or_default();
        assert!(e.contains("cannot connect"), "{e}");
    }
    assert_eq!(r.totals.matched, 0);
    assert!(r.differs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_wechat_capture_replays_its_decrypted_long_link_cleanly() {
    let dir = crate::common::shared().join("corpus/wechat");
    let (rec, opts) = record(
        &dir.join("capture-logged-in-all-keys.pcapng"),
        Some(&dir.join("frida-logged-in-all-keys.log")),
    );
    // The long link (conn 31) comes out of its MMTLS records: identify and newsync.
    let ll = rec.sessions.iter().find(|s| s.conn == 31).expect("conn 31");
    let cmds: Vec<u32> = ll
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Frame { request, .. } => Some(request.cmd),
            _ => None,
        })
        .collect();
    assert_eq!(cmds, [205, 121]);
    let server = TestServer::start(|_| {}).await;
    let r = replay::run(
        rec.sessions.clone(),
        config(&server.addr.to_string()),
        opts,
        Tokens::default(),
        true,
    )
    .await;
    // Short links are encrypted business packets: listed as not sent, with why.
    let not_sent = r
        .exchanges
        .iter()
        .filter(|e| e.verdict == Verdict::NotSent)
        .count();
    assert!(not_sent >= 20, "{not_sent}");
    assert!(r
        .exchanges
        .iter()
        .filter(|e| e.verdict == Verdict::NotSent)
        .all(|e| e.note.as_deref().is_some_and(|n| !n.is_empty())));
    // The long link was sent, and what the server made of it is reported:
    // its identify (the real client's, without the reference server's user
    // name) refused with the server's reason.
    let ll: Vec<_> = r.exchanges.iter().filter(|e| e.conn == 31).collect();
    let identify = ll
        .iter()
        .find(|e| e.name == "longlink_identify")
        .expect("identify reported");
    assert_eq!(identify.verdict, Verdict::Error, "{identify:#?}");
    assert!(identify.note.as_deref().unwrap().contains("user name"));
    assert!(ll
        .iter()
        .all(|e| e.note.is_some() || e.verdict == Verdict::Matched));
}

fn cli(args: &[String]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_syncscope"))
        .arg("replay")
        .args(args)
        .env("COLUMNS", "80")
        .output()
        .expect("runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_exits_0_when_all_matched_1_when_answers_differ_2_on_errors() {
    let server = TestServer::start(|_| {}).await;
    let s = sample("serve-client-longlink.pcapng").display().to_string();
    let addr = server.addr.to_string();
    let args = vec![
        s.clone(),
        "--server".into(),
        addr.clone(),
        "--stall".into(),
        "1".into(),
    ];
    let a = args.clone();
    let first = tokio::task::spawn_blocking(move || cli(&a)).await.unwrap();
    let out = String::from_utf8_lossy(&first.stdout);
    assert_eq!(first.status.code(), Some(0), "{out}");
    assert!(out.contains("32 matched, 0 different"), "{out}");
    // Every line fits an 80-column terminal.
    assert!(out.lines().all(|l| l.chars().count() <= 80), "{out}");
    let a = args.clone();
    let second = tokio::task::spawn_blocking(move || cli(&a)).await.unwrap();
    let out = String::from_utf8_lossy(&second.stdout);
    assert_eq!(second.status.code(), Some(1), "{out}");
    assert!(out.contains("Not matched:"), "{out}");
    assert!(out.lines().all(|l| l.chars().count() <= 80), "{out}");
    let mut a = args.clone();
    a.push("--allow-diff".into());
    let third = tokio::task::spawn_blocking(move || cli(&a)).await.unwrap();
    assert_eq!(third.status.code(), Some(0));

    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = l.local_addr().unwrap().to_string();
    drop(l);
    let a = vec![
        s.clone(),
        "--server".into(),
        gone,
        "--format".into(),
        "json".into(),
    ];
    let down = tokio::task::spawn_blocking(move || cli(&a)).await.unwrap();
    assert_eq!(down.status.code(), Some(2));
    let err = String::from_utf8_lossy(&down.stderr);
    assert!(err.contains("cannot connect"), "{err}");
    // The report of what ran still comes, as JSON.
    let r: serde_json::Value = serde_json::from_slice(&down.stdout).unwrap();
    assert_eq!(r["sessions"].as_array().unwrap().len(), 6);

    let bad = cli(&[
        s.clone(),
        "--server".into(),
        addr.clone(),
        "--timing".into(),
        "fast".into(),
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("asap, original, or xN"));
    let bad = cli(&[s, "--server".into(), addr, "--conn".into(), "99".into()]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("connection 99"));
}
