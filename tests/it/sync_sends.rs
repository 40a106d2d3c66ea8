//! `sync` ties sends to their user on every link and tells a resend (the
//! same ClientMsgId for the same message) from a ClientMsgId reused for
//! another message (`client_msg_id_collision`): on the long link, the
//! reference server's short link (a session named by its `mmsid` cookie)
//! and the web (a session named only by its `wxsid` / `wxuin` cookies).

use std::process::Command;

use prost::Message;
use serde_json::Value;
use syncscope::body::messages::{
    BaseResponse, ManualAuthRequest, ManualAuthResponse, MicroMsgRequestNew, MicroMsgResponseNew,
    NewSendMsgRequest, NewSendMsgResponse, SkBuiltinString,
};
use syncscope::body::synckey::SyncKey;
use syncscope::net::messages::IdentifyExt;
use syncscope::proto::commands::{response, IDENTIFY, NEWSENDMSG, SEQ_IDENTIFY};
use syncscope::proto::http::message::{encode_request, encode_response};
use syncscope::synth::{longlink_frame, Conversation, Side};

use crate::common::pcap_of;

fn send_request(to: &str, text: &str, cid: u64) -> Vec<u8> {
    NewSendMsgRequest {
        count: Some(1),
        list: vec![MicroMsgRequestNew {
            to_user_name: Some(SkBuiltinString::new(to)),
            content: Some(text.into()),
            msg_type: Some(1),
            create_time: Some(1_700_000_000),
            client_msg_id: Some(cid),
        }],
    }
    .encode_to_vec()
}

fn send_answer(to: &str, cid: u64, msg_id: u64) -> Vec<u8> {
    NewSendMsgResponse {
        base_response: Some(BaseResponse::error(0, "")),
        count: Some(1),
        list: vec![MicroMsgResponseNew {
            ret: Some(0),
            to_user_name: Some(SkBuiltinString::new(to)),
            msg_id: Some(msg_id as u32),
            client_msg_id: Some(cid),
            create_time: Some(1_700_000_000),
            server_time: Some(1_700_000_000),
            msg_type: Some(1),
            new_msg_id: Some(msg_id),
        }],
    }
    .encode_to_vec()
}

/// The sends of each test: (recipient, text, ClientMsgId, MsgID answered).
/// The second is a resend; the third reuses the id for another message
/// and gets its own MsgID; the fourth reuses it again and is answered with
/// the first one's MsgID (a server that took it for a resend).
const SENDS: [(&str, &str, u64, u64); 4] = [
    ("bob", "one", 42, 21),
    ("bob", "one", 42, 21),
    ("bob", "two", 42, 22),
    ("carol", "one", 42, 21),
];

/// `sync --format json` of a capture of `conversations`.
fn sync_of(frames: Vec<Vec<u8>>) -> Vec<Value> {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("sends.pcap");
    std::fs::write(&pcap, pcap_of(&frames)).expect("write the capture");
    let v = crate::common::syncscope_json([
        "sync".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
        pcap.as_os_str(),
    ]);
    v["sessions"].as_array().expect("sessions").clone()
}

fn kinds(session: &Value) -> Vec<String> {
    session["anomalies"]
        .as_array()
        .expect("anomalies")
        .iter()
        .map(|a| a["kind"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn details(session: &Value) -> Vec<String> {
    session["anomalies"]
        .as_array()
        .expect("anomalies")
        .iter()
        .map(|a| a["detail"].as_str().unwrap_or_default().to_owned())
        .collect()
}

const EXPECTED: [&str; 3] = [
    "client_msg_resend",
    "client_msg_id_collision",
    "client_msg_id_collision",
];

fn check(session: &Value) {
    assert_eq!(kinds(session), EXPECTED, "{session}");
    let d = details(session);
    assert!(d[1].contains("its own MsgID (21 then 22)"), "{d:?}");
    assert!(
        d[2].contains("taken for a resend, so never delivered"),
        "{d:?}"
    );
}

#[test]
fn long_link_sends_resends_and_collisions() {
    let mut conv = Conversation::new(
        "10.0.0.1:40000".parse().unwrap(),
        "10.0.0.2:8080".parse().unwrap(),
        1000,
        5000,
    );
    let mut frames = conv.handshake();
    let identify = IdentifyExt {
        uin: 7,
        user: Some("alice".into()),
        device: Some("phone".into()),
        synckey: SyncKey {
            keys: vec![(1, 1), (2, 0), (3, 1)],
        },
    };
    frames.extend(conv.send(
        Side::Client,
        &longlink_frame(IDENTIFY, SEQ_IDENTIFY, &identify.encode()),
    ));
    for (seq, (to, text, cid, msg_id)) in (1u32..).zip(SENDS) {
        frames.extend(conv.send(
            Side::Client,
            &longlink_frame(NEWSENDMSG, seq, &send_request(to, text, cid)),
        ));
        frames.extend(conv.send(
            Side::Server,
            &longlink_frame(response(NEWSENDMSG), seq, &send_answer(to, cid, msg_id)),
        ));
    }
    let sessions = sync_of(frames);
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0]["uin"], 7);
    assert_eq!(sessions[0]["device"], "phone");
    check(&sessions[0]);
}

fn post(target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let len = body.len().to_string();
    let mut h = vec![("Host", "127.0.0.1:8080"), ("Content-Length", len.as_str())];
    h.extend_from_slice(headers);
    encode_request("POST", target, &h, body)
}

fn ok(content_type: &str, cookies: &[&str], body: &[u8]) -> Vec<u8> {
    let len = body.len().to_string();
    let mut h = vec![
        ("Content-Type", content_type),
        ("Content-Length", len.as_str()),
    ];
    h.extend(cookies.iter().map(|c| ("Set-Cookie", *c)));
    encode_response(200, &h, body)
}

#[test]
fn short_link_and_web_sessions_named_by_cookies() {
    let mut short = Conversation::new(
        "10.0.0.1:40001".parse().unwrap(),
        "10.0.0.2:8080".parse().unwrap(),
        1000,
        5000,
    );
    let mut frames = short.handshake();
    // An accepted manualauth: the uin, and the session cookie later
    // requests carry (no ?user=).
    let auth = ManualAuthRequest {
        user_name: Some(SkBuiltinString::new("alice")),
        device_id: Some("shortlink".into()),
        client_version: None,
        password: None,
    };
    let granted = ManualAuthResponse {
        base_response: Some(BaseResponse::error(0, "")),
        uin: Some(3),
        auto_auth_key: Some(vec![0xab; 16]),
    };
    let cgi = "/cgi-bin/micromsg-bin/";
    let octets = "application/octet-stream";
    frames.extend(short.send(
        Side::Client,
        &post(&format!("{cgi}manualauth"), &[], &auth.encode_to_vec()),
    ));
    frames.extend(short.send(
        Side::Server,
        &ok(octets, &["mmsid=abab; Path=/"], &granted.encode_to_vec()),
    ));
    for (to, text, cid, msg_id) in SENDS {
        frames.extend(short.send(
            Side::Client,
            &post(
                &format!("{cgi}newsendmsg"),
                &[("Cookie", "mmsid=abab")],
                &send_request(to, text, cid),
            ),
        ));
        frames.extend(short.send(
            Side::Server,
            &ok(octets, &[], &send_answer(to, cid, msg_id)),
        ));
    }
    // A web session named only by its cookies (the BaseRequest empty, as
    // a client that did not read the ticket page sends it).
    let mut web = Conversation::new(
        "10.0.0.1:40002".parse().unwrap(),
        "10.0.0.2:8080".parse().unwrap(),
        3000,
        7000,
    );
    frames.extend(web.handshake());
    let json = "application/json; charset=UTF-8";
    for (to, text, cid, msg_id) in SENDS {
        let body = serde_json::json!({
            "BaseRequest": { "Uin": null, "Sid": "", "Skey": "" },
            "Msg": { "Type": 1, "Content": text, "FromUserName": "@alice",
                     "ToUserName": format!("@{to}"), "LocalID": cid.to_string(),
                     "ClientMsgId": cid.to_string() }
        });
        frames.extend(web.send(
            Side::Client,
            &post(
                "/cgi-bin/mmwebwx-bin/webwxsendmsg?pass_ticket=",
                &[("Cookie", "wxsid=S1D; wxuin=9; webwx_data_ticket=t")],
                body.to_string().as_bytes(),
            ),
        ));
        let answer = serde_json::json!({
            "BaseResponse": { "Ret": 0, "ErrMsg": "" },
            "MsgID": msg_id.to_string(), "LocalID": cid.to_string()
        });
        frames.extend(web.send(Side::Server, &ok(json, &[], answer.to_string().as_bytes())));
    }
    let sessions = sync_of(frames);
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    let short = &sessions[0];
    assert_eq!(
        (short["uin"].clone(), short["sid"].clone()),
        (3.into(), "abab".into())
    );
    check(short);
    let web = &sessions[1];
    assert_eq!(
        (web["uin"].clone(), web["sid"].clone()),
        (9.into(), "S1D".into())
    );
    check(web);
}

/// The short-link sample holds one resend (ClientMsgId 7001 twice, the
/// same message): `sync` reports it, on alice's session (`?user=alice`),
/// and bob's newsyncs are his (`?user=bob`).
#[test]
fn the_short_link_sample_shows_its_resend_and_its_users() {
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples/serve-client-shortlink.pcapng");
    let out = Command::new(env!("CARGO_BIN_EXE_syncscope"))
        .args(["sync", "--format", "json"])
        .arg(&sample)
        .output()
        .expect("run syncscope");
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let sessions = v["sessions"].as_array().expect("sessions");
    let users: Vec<&str> = sessions.iter().filter_map(|s| s["user"].as_str()).collect();
    assert_eq!(users, ["alice", "bob"], "{v}");
    assert_eq!(kinds(&sessions[0]), ["client_msg_resend"], "{v}");
    assert!(details(&sessions[0])[0].contains("ClientMsgId 7001"), "{v}");
    assert_eq!(
        sessions[1]["observations"].as_array().map(Vec::len),
        Some(3)
    );
}
