//! The commands against an in-memory store, without a socket.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;

use super::*;
use crate::body::messages::{ManualAuthRequest, ManualAuthResponse, NewSyncRequest};
use crate::net::messages::IdentifyReply;
use crate::net::store::Store;
use crate::net::store::StoredMessage;
use crate::proto::commands::{response, IDENTIFY, NEWSENDMSG, NEWSYNC, NOOP};

pub(in crate::net::server) fn peer() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 4000))
}

/// A service over a fresh in-memory store, its events collected.
pub(in crate::net::server) fn service(
    tweak: impl FnOnce(&mut Config),
) -> (Service, Arc<Mutex<Vec<Event>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let mut config = Config {
        log: Some(Arc::new(move |e: &Event| {
            sink.lock().unwrap().push(e.clone())
        })),
        ..Config::default()
    };
    tweak(&mut config);
    let store = Arc::new(Mutex::new(Store::memory().expect("in-memory store")));
    (Service::new(Committer::spawn(store), config), events)
}

fn identify_body(user: &str, device: &str, position: u64) -> Vec<u8> {
    IdentifyExt {
        uin: 0,
        user: Some(user.into()),
        device: Some(device.into()),
        synckey: synckey(position),
    }
    .encode()
}

pub(in crate::net::server) fn sync_body(position: u64, selector: Option<u32>) -> Vec<u8> {
    NewSyncRequest {
        oplog: None,
        selector,
        key_buf: Some(messages::keybuf(&synckey(position))),
        scene: None,
        device_type: None,
    }
    .encode_to_vec()
}

pub(in crate::net::server) fn send_body(to: &str, text: &str, cid: u64) -> Vec<u8> {
    crate::net::client::text_message(to, text, cid, 0).encode_to_vec()
}

/// An identified link of `user`/`device`, and whether identify asked for
/// a push (data waiting).
async fn identified(s: &Service, user: &str, device: &str) -> (Link, bool) {
    let mut link = s.link(peer());
    let a = s
        .apply(&mut link, IDENTIFY, &identify_body(user, device, 0))
        .await
        .expect("identify");
    let pending = s.follow_up(a.then).await.expect("pending check");
    (link, pending)
}

/// The AddMsg contents of a NewSyncResponse, its ContinueFlag and the
/// position its new key carries.
pub(in crate::net::server) fn page(body: &[u8]) -> (Vec<String>, u32, u64) {
    let r = NewSyncResponse::decode(body).expect("NewSyncResponse");
    assert_eq!(r.ret, Some(0));
    let list = r.cmd_list.expect("CmdList");
    assert_eq!(list.count, Some(list.list.len() as u32));
    let texts = list
        .list
        .iter()
        .map(|item| {
            assert_eq!(item.cmd_id, Some(CMDID_ADDMSG));
            let buf = item.cmd_buf.as_ref().and_then(|b| b.buffer.clone());
            let m = AddMsg::decode(buf.unwrap_or_default().as_slice()).expect("AddMsg");
            m.content.and_then(|c| c.string).unwrap_or_default()
        })
        .collect();
    let key = messages::synckey_of("NewSyncResponse", &r.key_buf).expect("key");
    (
        texts,
        r.continue_flag.expect("ContinueFlag"),
        position(&key.to_map()),
    )
}

#[tokio::test]
async fn heartbeat_is_answered_before_and_after_identify() {
    let (s, _) = service(|_| {});
    let mut link = s.link(peer());
    let a = s.apply(&mut link, NOOP, b"").await.expect("noop");
    assert_eq!((a.cmd, a.body.len()), (response(NOOP), 0));
    assert!(matches!(a.then, Then::Nothing));
    let (mut link, _) = identified(&s, "alice", "phone").await;
    let a = s.apply(&mut link, NOOP, b"").await.expect("noop");
    assert_eq!(a.cmd, response(NOOP));
}

#[tokio::test]
async fn identify_without_data() {
    let (s, events) = service(|_| {});
    let mut link = s.link(peer());
    let a = s
        .apply(&mut link, IDENTIFY, &identify_body("alice", "phone", 0))
        .await
        .expect("identify");
    assert_eq!(a.cmd, response(IDENTIFY));
    let reply = IdentifyReply::decode(&a.body).expect("IdentifyReply");
    let uin = s
        .store
        .lock()
        .user("alice", false)
        .expect("store")
        .expect("alice");
    assert_eq!(
        (reply.ret, i64::from(reply.uin), reply.primary),
        (0, uin, true)
    );
    assert!(!s.follow_up(a.then).await.expect("pending check"));
    let session = link.session.as_ref().expect("a session");
    assert_eq!((session.user, session.device.as_str()), (uin, "phone"));
    assert_eq!(s.online().get(&uin).map(Vec::len), Some(1));
    assert_eq!(
        events.lock().unwrap().as_slice(),
        [Event::Identified {
            peer: peer(),
            user: "alice".into(),
            device: "phone".into(),
            primary: true,
        }]
    );
    // Once per connection.
    let again = s
        .apply(&mut link, IDENTIFY, &identify_body("alice", "phone", 0))
        .await
        .expect_err("a second identify");
    assert_eq!(again.ret, ret::BAD_BODY);
    // The user's second device is secondary.
    let mut tablet = s.link(peer());
    let a = s
        .apply(&mut tablet, IDENTIFY, &identify_body("alice", "tablet", 0))
        .await
        .expect("identify");
    assert!(!IdentifyReply::decode(&a.body).expect("reply").primary);
    s.offline(uin, tablet.id);
    assert_eq!(s.online().get(&uin).map(Vec::len), Some(1));
}

#[tokio::test]
async fn identify_with_data_asks_for_a_push() {
    let (s, _) = service(|_| {});
    let (mut bob, _) = identified(&s, "bob", "phone").await;
    let a = s
        .apply(&mut bob, NEWSENDMSG, &send_body("alice", "hi", 1))
        .await
        .expect("newsendmsg");
    s.follow_up(a.then).await.expect("push");
    let (alice, pending) = identified(&s, "alice", "phone").await;
    assert!(pending, "alice has a message waiting");
    // A message stored while alice is online wakes her connection.
    let a = s
        .apply(&mut bob, NEWSENDMSG, &send_body("alice", "again", 2))
        .await
        .expect("newsendmsg");
    s.follow_up(a.then).await.expect("push");
    let notify = Arc::clone(&alice.session.as_ref().expect("session").notify);
    tokio::time::timeout(Duration::from_secs(5), notify.notified())
        .await
        .expect("alice is woken");
}

#[tokio::test]
async fn identify_of_an_unknown_user_without_auto_registration() {
    let (s, _) = service(|c| c.auto_register = false);
    let mut link = s.link(peer());
    let f = s
        .apply(&mut link, IDENTIFY, &identify_body("mallory", "phone", 0))
        .await
        .expect_err("unknown user");
    assert_eq!(f.ret, ret::UNKNOWN_USER);
    assert!(f.error.contains("mallory"), "{}", f.error);
    assert!(link.session.is_none());
}

#[tokio::test]
async fn newsync_pages_and_key() {
    let (s, _) = service(|c| c.page_size = 2);
    let (mut bob, _) = identified(&s, "bob", "phone").await;
    for (i, text) in ["one", "two", "three"].into_iter().enumerate() {
        let a = s
            .apply(
                &mut bob,
                NEWSENDMSG,
                &send_body("alice", text, i as u64 + 1),
            )
            .await
            .expect("newsendmsg");
        s.follow_up(a.then).await.expect("push");
    }
    let (mut alice, _) = identified(&s, "alice", "phone").await;
    let a = s
        .apply(&mut alice, NEWSYNC, &sync_body(0, None))
        .await
        .expect("newsync");
    assert_eq!(a.cmd, response(NEWSYNC));
    assert_eq!(page(&a.body), (vec!["one".into(), "two".into()], 1, 2));
    let a = s
        .apply(&mut alice, NEWSYNC, &sync_body(2, Some(0x2)))
        .await
        .expect("newsync");
    assert_eq!(page(&a.body), (vec!["three".into()], 0, 3));
    // The key confirms: nothing left.
    let a = s
        .apply(&mut alice, NEWSYNC, &sync_body(3, None))
        .await
        .expect("newsync");
    assert_eq!(page(&a.body), (vec![], 0, 3));
    // Without the messages selector: no messages, the confirmed key.
    let a = s
        .apply(&mut alice, NEWSYNC, &sync_body(0, Some(0x1)))
        .await
        .expect("newsync");
    assert_eq!(page(&a.body), (vec![], 0, 3));
    // The sender's own device does not get its sends back.
    let a = s
        .apply(&mut bob, NEWSYNC, &sync_body(0, None))
        .await
        .expect("newsync");
    assert_eq!(page(&a.body), (vec![], 1, 2));
}

/// [`wire_len`] bounds what a message takes in a newsync answer, at the
/// longest varints and names.
#[test]
fn wire_len_bounds_the_encoded_item() {
    for len in [0usize, 1, 127, 128, 16_383, 16_384, 2_097_152] {
        for (id, n) in [(1u64, 1u32), (u64::MAX, u32::MAX)] {
            let m = StoredMessage {
                msg_id: id,
                from: "f".repeat(64),
                from_device: "d".repeat(64),
                to: "t".repeat(len % 65),
                client_msg_id: Some(u64::MAX.to_string()),
                msg_type: n,
                content: "\u{e9}".repeat(len / 2),
                create_time: u64::from(n),
            };
            let item = CmdItem {
                cmd_id: Some(CMDID_ADDMSG),
                cmd_buf: Some(SkBuiltinBuffer::new(add_msg(&m, u64::MAX).encode_to_vec())),
            };
            let in_list = CmdList {
                count: None,
                list: vec![item],
            }
            .encoded_len();
            assert!(in_list <= m.wire_len(), "{len} {id}: {in_list}");
        }
    }
}

/// Pages are capped in bytes so each answer fits the frame limit, and a
/// message no page could carry is refused with why.
#[tokio::test]
async fn newsync_pages_fit_the_frame_limit() {
    const FRAME: u32 = 4096;
    let (s, _) = service(|c| c.max_frame_len = FRAME);
    let page_bytes = crate::net::frame::page_bytes(FRAME);
    // Content that makes a message (bob to alice, a 2-digit id) one page.
    let largest = page_bytes - crate::net::store::MESSAGE_OVERHEAD - 3 - 5 - 2;
    let (mut bob, _) = identified(&s, "bob", "phone").await;
    let lens = [3000, 100, 1600, 1600, largest, 0, 50, largest, 10];
    for (i, len) in lens.into_iter().enumerate() {
        let a = s
            .apply(
                &mut bob,
                NEWSENDMSG,
                &send_body("alice", &"x".repeat(len), 10 + i as u64),
            )
            .await
            .expect("newsendmsg");
        let r = NewSendMsgResponse::decode(a.body.as_slice()).expect("NewSendMsgResponse");
        assert_eq!(r.list[0].ret, Some(0), "{len}");
    }
    let a = s
        .apply(
            &mut bob,
            NEWSENDMSG,
            &send_body("alice", &"x".repeat(largest + 1), 99),
        )
        .await
        .expect("newsendmsg");
    let r = NewSendMsgResponse::decode(a.body.as_slice()).expect("NewSendMsgResponse");
    assert_eq!(r.list[0].ret, Some(ret::TOO_LARGE));
    let why = r.base_response.expect("BaseResponse");
    assert!(why.message().contains("too large"), "{}", why.message());
    let (mut alice, _) = identified(&s, "alice", "phone").await;
    let (mut at, mut got, mut pages) = (0, Vec::new(), Vec::new());
    loop {
        let a = s
            .apply(&mut alice, NEWSYNC, &sync_body(at, None))
            .await
            .expect("newsync");
        assert!(a.body.len() + 16 <= FRAME as usize, "{}", a.body.len());
        let (texts, more, next) = page(&a.body);
        assert!(!texts.is_empty());
        pages.push(texts.iter().map(String::len).collect::<Vec<_>>());
        got.extend(texts.into_iter().map(|t| t.len()));
        at = next;
        if more == 0 {
            break;
        }
    }
    assert_eq!(got, lens);
    assert_eq!(
        pages,
        [
            vec![3000, 100],
            vec![1600, 1600],
            vec![largest],
            vec![0, 50],
            vec![largest],
            vec![10]
        ]
    );
}

#[tokio::test]
async fn newsendmsg_dedupes_by_client_msg_id() {
    let (s, _) = service(|_| {});
    let (mut bob, _) = identified(&s, "bob", "phone").await;
    let mut ids = Vec::new();
    for round in 0..2 {
        let a = s
            .apply(&mut bob, NEWSENDMSG, &send_body("alice", "once", 777))
            .await
            .expect("newsendmsg");
        assert_eq!(a.cmd, response(NEWSENDMSG));
        let r = NewSendMsgResponse::decode(a.body.as_slice()).expect("NewSendMsgResponse");
        assert_eq!(r.count, Some(1));
        let item = &r.list[0];
        assert_eq!((item.ret, item.client_msg_id), (Some(0), Some(777)));
        ids.push(item.new_msg_id.expect("MsgId"));
        let Then::Push(wake) = a.then else {
            panic!("a newsendmsg pushes");
        };
        // Only a new message wakes anyone.
        assert_eq!(wake.to.len(), usize::from(round == 0), "round {round}");
    }
    assert_eq!(ids[0], ids[1]);
    assert_eq!(s.store.lock().messages().expect("messages").len(), 1);
}

#[tokio::test]
async fn newsendmsg_to_an_unknown_recipient() {
    let (s, _) = service(|c| c.auto_register = false);
    s.store.lock().user("bob", true).expect("bob");
    let (mut bob, _) = identified(&s, "bob", "phone").await;
    let a = s
        .apply(&mut bob, NEWSENDMSG, &send_body("nobody", "hi", 1))
        .await
        .expect("newsendmsg");
    let r = NewSendMsgResponse::decode(a.body.as_slice()).expect("NewSendMsgResponse");
    assert_eq!(r.list[0].ret, Some(ret::BAD_RECIPIENT));
    assert!(s.store.lock().messages().expect("messages").is_empty());
}

#[tokio::test]
async fn manualauth_then_autoauth() {
    let (s, events) = service(|_| {});
    let mut link = s.link(peer());
    let manual = |user: &str| {
        ManualAuthRequest {
            user_name: Some(SkBuiltinString::new(user)),
            device_id: Some("phone".into()),
            client_version: None,
            password: None,
        }
        .encode_to_vec()
    };
    let a = s
        .apply(&mut link, MANUALAUTH, &manual("bob"))
        .await
        .expect("manualauth");
    assert_eq!(a.cmd, response(MANUALAUTH));
    let m = ManualAuthResponse::decode(a.body.as_slice()).expect("ManualAuthResponse");
    assert_eq!(m.base_response.and_then(|b| b.ret), Some(0));
    let (uin, key) = (m.uin.expect("uin"), m.auto_auth_key.expect("key"));
    assert_eq!(key.len(), 16);
    let auto = |key: &[u8], device: &str| {
        AutoAuthRequest {
            uin: Some(uin),
            auto_auth_key: Some(key.to_vec()),
            device_id: Some(device.into()),
        }
        .encode_to_vec()
    };
    let a = s
        .apply(&mut link, AUTOAUTH, &auto(&key, "phone"))
        .await
        .expect("autoauth");
    assert_eq!(a.cmd, response(AUTOAUTH));
    let r = AutoAuthResponse::decode(a.body.as_slice()).expect("AutoAuthResponse");
    assert_eq!(
        (r.base_response.and_then(|b| b.ret), r.uin),
        (Some(0), Some(uin))
    );
    // Another device, or another key: refused in the answer.
    for (k, d) in [(key.as_slice(), "tablet"), (&[0u8; 16][..], "phone")] {
        let a = s
            .apply(&mut link, AUTOAUTH, &auto(k, d))
            .await
            .expect("autoauth");
        let r = AutoAuthResponse::decode(a.body.as_slice()).expect("AutoAuthResponse");
        assert_eq!(r.base_response.and_then(|b| b.ret), Some(ret::UNKNOWN_USER));
        assert_eq!(r.uin, Some(0));
    }
    let accepted: Vec<bool> = events
        .lock()
        .unwrap()
        .iter()
        .map(|e| matches!(e, Event::Authenticated { auto: true, .. }))
        .collect();
    assert_eq!(
        accepted,
        [false, true],
        "one manualauth, one autoauth event"
    );
    // A name that is not one: refused in the answer.
    let a = s
        .apply(&mut link, MANUALAUTH, &manual("two words"))
        .await
        .expect("manualauth");
    let m = ManualAuthResponse::decode(a.body.as_slice()).expect("ManualAuthResponse");
    assert_eq!(m.base_response.and_then(|b| b.ret), Some(ret::UNKNOWN_USER));
    assert!(link.session.is_none(), "auth does not identify");
}

#[tokio::test]
async fn refusals() {
    let (s, _) = service(|_| {});
    let mut link = s.link(peer());
    for (cmd, body, want) in [
        (NEWSYNC, sync_body(0, None), ret::NOT_IDENTIFIED),
        (NEWSENDMSG, send_body("bob", "hi", 1), ret::NOT_IDENTIFIED),
        (IDENTIFY, b"\x01\x02\x03".to_vec(), ret::BAD_BODY),
        (MANUALAUTH, vec![0x0a, 0xff, 0xff, 0x01], ret::BAD_BODY),
        (999, Vec::new(), ret::UNKNOWN_CMD),
    ] {
        let f = s.apply(&mut link, cmd, &body).await.expect_err("a refusal");
        assert_eq!(f.ret, want, "cmd {cmd}: {}", f.error);
    }
    let (mut alice, _) = identified(&s, "alice", "phone").await;
    let f = s
        .apply(&mut alice, NEWSENDMSG, &[0x0a, 0xff, 0xff, 0x01])
        .await
        .expect_err("a bad body");
    assert_eq!(f.ret, ret::BAD_BODY);
}
