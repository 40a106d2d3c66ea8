//! The timeline's sessions, observations and anomalies.

use super::*;

fn t(s: i64) -> Timestamp {
    Timestamp::new(s, 0, 6)
}

fn obs(s: i64, conn: u64, source: Source, message: &str, keys: &[(u32, u64)]) -> Observation {
    Observation {
        ts: t(s),
        conn,
        dir: if source == Source::ServerIssued {
            Direction::ServerToClient
        } else {
            Direction::ClientToServer
        },
        source,
        message: message.parse().expect("a known message"),
        keys: keys.iter().copied().collect(),
        packet: None,
    }
}

#[test]
fn messages_round_trip_their_names() {
    for m in Message::ALL {
        assert_eq!(m.as_str().parse::<Message>(), Ok(m));
        assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
    }
    assert_eq!(
        serde_json::to_string(&Message::WebwxsyncResponseSyncCheckKey).unwrap(),
        r#""webwxsync_response.SyncCheckKey""#
    );
    assert!("longlink_identify".parse::<Message>().is_err());
}

#[test]
fn each_device_of_a_user_is_its_own_session() {
    let mut tl = Timeline::new();
    let ids = |device, conn| Ids {
        uin: Some(5),
        sid: None,
        user: None,
        device,
        conn,
    };
    // An event without a device first (a short-link newsync), then the
    // phone's identify claims that session; the pad gets its own.
    tl.observe(
        ids(None, 1),
        obs(1, 1, Source::ServerIssued, "newsync_response", &[(2, 3)]),
        false,
    );
    tl.observe(
        ids(Some("phone"), 2),
        obs(2, 2, Source::ClientPresented, "identify", &[(2, 3)]),
        false,
    );
    tl.observe(
        ids(Some("pad"), 3),
        obs(3, 3, Source::ClientPresented, "identify", &[(2, 0)]),
        false,
    );
    // Later frames of the pad's connection name no device.
    let later = Ids {
        uin: None,
        sid: None,
        user: None,
        device: None,
        conn: 3,
    };
    tl.observe(
        later,
        obs(4, 3, Source::ServerIssued, "newsync_response", &[(2, 1)]),
        false,
    );
    let s = tl.finish();
    assert_eq!(s.len(), 2, "{s:?}");
    assert_eq!(s[0].device.as_deref(), Some("phone"));
    assert_eq!(s[0].observations.len(), 2);
    assert_eq!(s[1].device.as_deref(), Some("pad"));
    assert_eq!(s[1].observations.len(), 2);
    // The pad's older key is not stale against the phone's.
    assert!(s.iter().all(|x| x.anomalies.is_empty()), "{s:?}");
}

#[test]
fn binary_and_web_flows_of_one_uin_share_a_timeline() {
    let mut tl = Timeline::new();
    let web = Ids {
        uin: Some(7),
        sid: Some("S"),
        user: None,
        device: None,
        conn: 3,
    };
    tl.start(web);
    tl.observe(
        web,
        obs(1, 3, Source::ServerIssued, "webwxinit", &[(1, 10), (2, 20)]),
        false,
    );
    tl.observe(
        Ids {
            uin: None,
            sid: Some("S"),
            user: None,
            device: None,
            conn: 4,
        },
        obs(
            2,
            4,
            Source::ClientPresented,
            "webwxsync_request",
            &[(1, 10), (2, 20)],
        ),
        false,
    );
    tl.observe(
        Ids {
            uin: Some(7),
            sid: None,
            user: None,
            device: None,
            conn: 9,
        },
        obs(
            3,
            9,
            Source::ServerIssued,
            "newsync_response",
            &[(1, 12), (2, 20)],
        ),
        false,
    );
    let s = tl.finish();
    assert_eq!(s.len(), 1);
    assert_eq!((s[0].uin, s[0].sid.as_deref()), (Some(7), Some("S")));
    assert_eq!(s[0].observations.len(), 3);
    assert_eq!(s[0].transitions.len(), 1);
    let tr = &s[0].transitions[0];
    assert_eq!((tr.from, tr.to), (1, 2));
    assert_eq!(
        tr.changed[&1],
        Change {
            from: Some(10),
            to: Some(12),
            delta: Some(2)
        }
    );
    assert!(s[0].anomalies.is_empty(), "{:?}", s[0].anomalies);
}

#[test]
fn regression_stale_never_issued_and_synccheck_mismatch() {
    let mut tl = Timeline::new();
    let ids = Ids {
        uin: Some(1),
        sid: Some("S"),
        user: None,
        device: None,
        conn: 0,
    };
    tl.start(ids);
    tl.observe(
        ids,
        obs(1, 0, Source::ServerIssued, "webwxinit", &[(1, 10), (2, 20)]),
        false,
    );
    tl.observe(
        ids,
        obs(
            2,
            0,
            Source::ServerIssued,
            "webwxsync_response",
            &[(1, 11), (2, 21)],
        ),
        false,
    );
    tl.observe(
        ids,
        obs(
            3,
            0,
            Source::ClientPresented,
            "webwxsync_request",
            &[(1, 10), (2, 20)],
        ),
        false,
    );
    tl.observe(
        ids,
        obs(
            4,
            0,
            Source::ClientPresented,
            "webwxsync_request",
            &[(1, 99), (2, 21)],
        ),
        false,
    );
    tl.observe(
        ids,
        obs(
            5,
            0,
            Source::ServerIssued,
            "webwxsync_response",
            &[(1, 12), (2, 19)],
        ),
        false,
    );
    tl.observe(
        ids,
        obs(
            6,
            0,
            Source::SynccheckParam,
            "synccheck",
            &[(1, 11), (2, 21)],
        ),
        false,
    );
    let s = tl.finish();
    let kinds: Vec<(&str, i64)> = s[0].anomalies.iter().map(|a| (a.kind, a.ts.secs)).collect();
    assert_eq!(
        kinds,
        [
            ("stale_key", 3),
            ("never_issued", 4),
            ("key_regression", 5),
            ("synccheck_mismatch", 6)
        ]
    );
    assert!(
        s[0].anomalies[2].detail.contains("2: 21 -> 19"),
        "{}",
        s[0].anomalies[2].detail
    );
}

#[test]
fn selectors_messages_resends_and_timings() {
    let mut tl = Timeline::new();
    let ids = Ids {
        uin: Some(1),
        sid: None,
        user: None,
        device: None,
        conn: 0,
    };
    tl.notified(ids, t(10), Some(2));
    tl.sync_request(ids, t(11));
    tl.sync_result(ids, t(12), 0, 0, &[]);
    tl.sync_result(ids, t(13), 0, 2, &["a".into(), "b".into()]);
    tl.sync_result(ids, t(14), 0, 1, &["b".into()]);
    let hi = Some(message_digest("bob", 1, "hi"));
    tl.sent(ids, t(15), 0, "c1", hi, Some("m1"));
    tl.sent(ids, t(16), 0, "c1", hi, Some("m1"));
    tl.sent(ids, t(17), 0, "c2", None, Some("m2"));
    tl.sent(ids, t(18), 0, "c2", None, Some("m3"));
    tl.longpoll(ids, t(20), t(45));
    let s = tl.finish();
    let kinds: Vec<&str> = s[0].anomalies.iter().map(|a| a.kind).collect();
    assert_eq!(
        kinds,
        [
            "empty_sync_after_selector",
            "duplicate_msgid",
            "client_msg_resend",
            "client_msg_resend"
        ]
    );
    assert!(s[0].anomalies[2].detail.contains("same MsgID m1"));
    assert!(s[0].anomalies[3]
        .detail
        .contains("different MsgID (m2 then m3)"));
    assert_eq!(s[0].timings.notify_to_sync_ms, [1000.0]);
    assert_eq!(s[0].timings.longpoll_ms, [25000.0]);
}

/// The same ClientMsgId for another message (another recipient or
/// content) is a collision, not a resend; a resend of either is a resend.
/// On the long and short link the answer names only the ClientMsgId: what
/// the message was comes from its request ([`Timeline::sending`]).
#[test]
fn a_client_msg_id_reused_for_another_message_is_a_collision() {
    let mut tl = Timeline::new();
    let ids = Ids {
        uin: Some(1),
        sid: None,
        user: None,
        device: None,
        conn: 3,
    };
    let (to_bob, to_carol) = (
        message_digest("@bob", 1, "hi"),
        message_digest("@carol", 1, "hi"),
    );
    tl.sent(ids, t(1), 3, "1700000000123", Some(to_bob), Some("11"));
    // A server that took it for a resend: the first one's MsgID.
    tl.sent(ids, t(2), 3, "1700000000123", Some(to_carol), Some("11"));
    tl.sent(ids, t(3), 3, "1700000000123", Some(to_carol), Some("11"));
    // The long link: the request, then its answer.
    tl.sending(3, "42", message_digest("bob", 1, "one"));
    tl.sent(ids, t(4), 3, "42", None, Some("21"));
    tl.sending(3, "42", message_digest("bob", 1, "two"));
    tl.sent(ids, t(5), 3, "42", None, Some("22"));
    tl.sending(3, "42", message_digest("bob", 1, "two"));
    tl.sent(ids, t(6), 3, "42", None, Some("22"));
    let s = tl.finish();
    let got: Vec<(&str, &str)> = s[0]
        .anomalies
        .iter()
        .map(|a| (a.kind, a.detail.as_str()))
        .collect();
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[0].0, "client_msg_id_collision");
    assert!(
        got[0].1.contains("taken for a resend, so never delivered"),
        "{got:?}"
    );
    assert_eq!(got[1].0, "client_msg_resend");
    assert!(got[1].1.contains("same MsgID 11"), "{got:?}");
    assert_eq!(got[2].0, "client_msg_id_collision");
    assert!(got[2].1.contains("its own MsgID (21 then 22)"), "{got:?}");
    assert_eq!(got[3].0, "client_msg_resend");
    assert!(got[3].1.contains("same MsgID 22"), "{got:?}");
}

#[test]
fn a_user_name_ties_requests_to_one_session() {
    let mut tl = Timeline::new();
    let named = |user, conn| Ids {
        uin: None,
        sid: None,
        user: Some(user),
        device: None,
        conn,
    };
    let k = |v| obs(1, 0, Source::ServerIssued, "newsync_response", &[(2, v)]);
    tl.observe(named("bob", 1), k(1), false);
    tl.observe(named("bob", 2), k(2), false);
    tl.observe(named("alice", 3), k(1), false);
    let s = tl.finish();
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].user.as_deref(), Some("bob"));
    assert_eq!(s[0].observations.len(), 2, "two connections, one user");
    assert_eq!(s[1].user.as_deref(), Some("alice"));
}

#[test]
fn recent_ids_forget_the_oldest_beyond_the_window() {
    let mut r: Recent<u32> = Recent::default();
    assert!(r.insert(0, "a", 1));
    assert!(!r.insert(0, "a", 2), "already there");
    assert!(r.insert(1, "a", 5), "another session's id is another id");
    assert_eq!(r.get(0, "a"), Some(&1));
    for i in 0..RECENT_IDS - 2 {
        assert!(r.insert(2, &i.to_string(), 0));
    }
    assert_eq!(r.get(0, "a"), Some(&1), "still inside the window");
    assert!(r.insert(2, "one more", 0));
    assert_eq!(r.get(0, "a"), None, "the oldest is forgotten");
    assert_eq!(r.get(1, "a"), Some(&5));
    assert_eq!((r.map.len(), r.order.len()), (RECENT_IDS, RECENT_IDS));
    assert!(r.insert(0, "a", 3), "a forgotten id counts as new");
}
