//! A web WeChat session built in the test with real TCP framing (the
//! project's pcap writer and synthetic TCP), run through `analyze`/`sync`:
//! keep-alive, pipelining, chunked and gzip responses, a gap inside a
//! body, and a session whose SyncKeys go stale and regress. The timeline
//! and the anomalies must be exactly the expected ones.

use std::io::Write;
use std::net::SocketAddr;

use syncscope::analyze::{AnomalyKind, FrameRecord, Options, Report};
use syncscope::capture::Reader;
use syncscope::synth::{Conversation, Frame, Side};
use syncscope::track::synckey::Source;

const SID: &str = "SIDabc";

/// An observation as (source, message, keys).
type Seen<'a> = (Source, &'a str, Vec<(u32, u64)>);
const UIN: u64 = 4242;

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn chunked(b: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in b.chunks(size) {
        out.extend(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend(c);
        out.extend(b"\r\n");
    }
    out.extend(b"0\r\n\r\n");
    out
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: wx.qq.com\r\n\r\n").into_bytes()
}

fn post(path: &str, body: &str) -> Vec<u8> {
    format!("POST {path} HTTP/1.1\r\nHost: wx.qq.com\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len())
        .into_bytes()
}

fn ok(body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    r.extend(body);
    r
}

fn ok_gzip_chunked(body: &str) -> Vec<u8> {
    let mut r = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    r.extend(chunked(&gzip(body.as_bytes()), 40));
    r
}

fn base() -> String {
    format!(r#""BaseRequest":{{"Uin":{UIN},"Sid":"{SID}","Skey":"@crypt_k","DeviceID":"e123"}}"#)
}

fn keys(pairs: &[(u32, u64)]) -> String {
    let list: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!(r#"{{"Key":{k},"Val":{v}}}"#))
        .collect();
    format!(r#"{{"Count":{},"List":[{}]}}"#, pairs.len(), list.join(","))
}

fn param(pairs: &[(u32, u64)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}_{v}"))
        .collect::<Vec<_>>()
        .join("%7C")
}

fn sync_resp(add: &[&str], key: &[(u32, u64)], check: &[(u32, u64)]) -> String {
    let msgs: Vec<String> = add
        .iter()
        .map(|id| format!(r#"{{"MsgId":"{id}","FromUserName":"@friend","ToUserName":"@me","MsgType":1,"Content":"hi"}}"#))
        .collect();
    format!(
        r#"{{"BaseResponse":{{"Ret":0,"ErrMsg":""}},"AddMsgCount":{},"AddMsgList":[{}],"ModContactCount":0,"ModContactList":[],"DelContactCount":0,"ContinueFlag":0,"SyncKey":{},"SyncCheckKey":{},"SKey":""}}"#,
        add.len(),
        msgs.join(","),
        keys(key),
        keys(check)
    )
}

/// Writes the session; returns the capture bytes.
pub fn web_session_capture() -> Vec<u8> {
    let client: SocketAddr = "192.0.2.10:50000".parse().unwrap();
    let server: SocketAddr = "198.51.100.7:80".parse().unwrap();
    let poll_client: SocketAddr = "192.0.2.10:50001".parse().unwrap();
    let mut main = Conversation::new(client, server, 1000, 9000);
    let mut poll = Conversation::new(poll_client, server, 5000, 7000);
    let mut frames: Vec<Frame> = Vec::new();
    let mut put = |f: Vec<Frame>| frames.extend(f);

    put(main.handshake());
    put(poll.handshake());
    // Login: jslogin, login poll, ticket page (keep-alive on one connection).
    put(main.send(
        Side::Client,
        &get("/jslogin?appid=wx782c26e4c19acffb&fun=new&lang=en_US"),
    ));
    put(main.send(
        Side::Server,
        &ok(b"window.QRLogin.code = 200; window.QRLogin.uuid = \"Q1uuid==\";"),
    ));
    put(main.send(
        Side::Client,
        &get("/cgi-bin/mmwebwx-bin/login?loginicon=true&uuid=Q1uuid==&tip=0"),
    ));
    put(main.send(
        Side::Server,
        &ok(b"window.code=200;\nwindow.redirect_uri=\"https://wx.qq.com/cgi-bin/mmwebwx-bin/webwxnewloginpage?ticket=T1&uuid=Q1uuid==\";"),
    ));
    put(main.send(
        Side::Client,
        &get("/cgi-bin/mmwebwx-bin/webwxnewloginpage?ticket=T1&uuid=Q1uuid==&fun=new"),
    ));
    let ticket = format!("<error><ret>0</ret><message></message><skey>@crypt_k</skey><wxsid>{SID}</wxsid><wxuin>{UIN}</wxuin><pass_ticket>PT1</pass_ticket><isgrayscale>1</isgrayscale></error>");
    put(main.send(Side::Server, &ok(ticket.as_bytes())));
    // webwxinit issues the first SyncKey (gzip + chunked).
    put(main.send(
        Side::Client,
        &post(
            "/cgi-bin/mmwebwx-bin/webwxinit?r=1&pass_ticket=PT1",
            &format!("{{{}}}", base()),
        ),
    ));
    let init = format!(
        r#"{{"BaseResponse":{{"Ret":0,"ErrMsg":""}},"User":{{"UserName":"@me"}},"ContactList":[],"SyncKey":{},"SKey":"@crypt_k"}}"#,
        keys(&[(1, 100), (2, 200)])
    );
    put(main.send(Side::Server, &ok_gzip_chunked(&init)));
    // statusnotify and a first webwxsync, pipelined: both requests in one send, both answers in one.
    let mut two = post(
        "/cgi-bin/mmwebwx-bin/webwxstatusnotify?pass_ticket=PT1",
        &format!(
            r#"{{{},"Code":3,"FromUserName":"@me","ToUserName":"@me","ClientMsgId":1}}"#,
            base()
        ),
    );
    two.extend(post(
        &format!("/cgi-bin/mmwebwx-bin/webwxsync?sid={SID}&skey=@crypt_k&pass_ticket=PT1"),
        &format!(
            r#"{{{},"SyncKey":{},"rr":-1}}"#,
            base(),
            keys(&[(1, 100), (2, 200)])
        ),
    ));
    put(main.send(Side::Client, &two));
    let mut answers = ok(br#"{"BaseResponse":{"Ret":0,"ErrMsg":""},"MsgID":"100"}"#);
    answers.extend(ok(sync_resp(
        &["9001"],
        &[(1, 101), (2, 201)],
        &[(1, 101), (2, 202)],
    )
    .as_bytes()));
    put(main.send(Side::Server, &answers));
    // Long poll: synccheck with the SyncCheckKey, answered with selector 2.
    put(poll.send(Side::Client, &get(&format!("/cgi-bin/mmwebwx-bin/synccheck?r=2&skey=%40crypt_k&sid={SID}&uin={UIN}&deviceid=e123&synckey={}&_=3", param(&[(1, 101), (2, 202)])))));
    put(poll.send(
        Side::Server,
        &ok(b"window.synccheck={retcode:\"0\",selector:\"2\"}"),
    ));
    // The client presents a stale SyncKey; the server answers with nothing and a regressed key.
    put(main.send(
        Side::Client,
        &post(
            &format!("/cgi-bin/mmwebwx-bin/webwxsync?sid={SID}&skey=@crypt_k"),
            &format!(
                r#"{{{},"SyncKey":{},"rr":-2}}"#,
                base(),
                keys(&[(1, 100), (2, 200)])
            ),
        ),
    ));
    put(main.send(
        Side::Server,
        &ok(sync_resp(&[], &[(1, 101), (2, 199)], &[(1, 101), (2, 199)]).as_bytes()),
    ));
    // A message sent twice with the same ClientMsgId, answered with the same MsgID.
    for _ in 0..2 {
        put(main.send(
            Side::Client,
            &post("/cgi-bin/mmwebwx-bin/webwxsendmsg?pass_ticket=PT1", &format!(r#"{{{},"Msg":{{"Type":1,"Content":"hello","FromUserName":"@me","ToUserName":"@friend","LocalID":"17000001","ClientMsgId":"17000001"}},"Scene":0}}"#, base())),
        ));
        put(main.send(
            Side::Server,
            &ok(br#"{"BaseResponse":{"Ret":0,"ErrMsg":""},"MsgID":"5555","LocalID":"17000001"}"#),
        ));
    }
    // A response whose body loses a segment (acknowledged: a gap), then one more exchange.
    let big = format!(
        r#"{{"BaseResponse":{{"Ret":0}},"pad":"{}"}}"#,
        "x".repeat(4000)
    );
    put(main.send(
        Side::Client,
        &post(
            "/cgi-bin/mmwebwx-bin/webwxstatusnotify",
            &format!("{{{}}}", base()),
        ),
    ));
    let mut lossy = main.send(Side::Server, &ok(big.as_bytes()));
    lossy.remove(1); // the second of three data segments; the ACK after them covers it
    put(lossy);
    put(main.send(
        Side::Client,
        &get("/cgi-bin/mmwebwx-bin/webwxgetcontact?r=9"),
    ));
    put(main.send(
        Side::Server,
        &ok(br#"{"BaseResponse":{"Ret":0},"MemberCount":0,"MemberList":[]}"#),
    ));
    put(main.close());
    put(poll.close());
    crate::common::pcap_of(&frames)
}

pub fn run(bytes: Vec<u8>) -> (Vec<FrameRecord>, Report) {
    let opts = Options::default();
    let mut reader =
        Reader::from_read(Box::new(std::io::Cursor::new(bytes)), "web-session").unwrap();
    crate::common::analyze_capture(&mut reader, &opts)
}

#[test]
fn web_session_timeline_and_anomalies_are_exactly_the_expected_ones() {
    let (records, report) = run(web_session_capture());
    assert_eq!(report.sessions.len(), 1, "{:#?}", report.sessions);
    let s = &report.sessions[0];
    assert_eq!((s.uin, s.sid.as_deref()), (Some(UIN), Some(SID)));
    let got: Vec<Seen<'_>> = s
        .observations
        .iter()
        .map(|o| {
            (
                o.source,
                o.message.as_str(),
                o.keys.iter().map(|(k, v)| (*k, *v)).collect(),
            )
        })
        .collect();
    use Source::*;
    let want: Vec<Seen<'_>> = vec![
        (ServerIssued, "webwxinit", vec![(1, 100), (2, 200)]),
        (
            ClientPresented,
            "webwxsync_request",
            vec![(1, 100), (2, 200)],
        ),
        (ServerIssued, "webwxsync_response", vec![(1, 101), (2, 201)]),
        (
            ServerIssued,
            "webwxsync_response.SyncCheckKey",
            vec![(1, 101), (2, 202)],
        ),
        (SynccheckParam, "synccheck", vec![(1, 101), (2, 202)]),
        (
            ClientPresented,
            "webwxsync_request",
            vec![(1, 100), (2, 200)],
        ),
        (ServerIssued, "webwxsync_response", vec![(1, 101), (2, 199)]),
        (
            ServerIssued,
            "webwxsync_response.SyncCheckKey",
            vec![(1, 101), (2, 199)],
        ),
    ];
    assert_eq!(got, want);
    let kinds: Vec<&str> = s.anomalies.iter().map(|a| a.kind).collect();
    assert_eq!(
        kinds,
        [
            "stale_key",
            "key_regression",
            "key_regression",
            "empty_sync_after_selector",
            "client_msg_resend"
        ]
    );
    assert!(
        s.anomalies[0].detail.contains("1: 101 -> 100")
            && s.anomalies[0].detail.contains("2: 201 -> 200"),
        "{}",
        s.anomalies[0].detail
    );
    assert!(
        s.anomalies[1].detail.contains("2: 201 -> 199"),
        "{}",
        s.anomalies[1].detail
    );
    assert!(
        s.anomalies[4].detail.contains("same MsgID 5555"),
        "{}",
        s.anomalies[4].detail
    );
    assert_eq!(s.timings.longpoll_ms.len(), 1);
    assert_eq!(s.timings.notify_to_sync_ms.len(), 1);

    // Every exchange is listed: 3 login steps, init, 2 pipelined, 1 synccheck, 1 sync, 2 sendmsg, the lossy one, getcontact.
    let web: Vec<&FrameRecord> = records.iter().filter(|r| r.kind == "response").collect();
    let endpoints: Vec<&str> = web
        .iter()
        .map(|r| r.cmd_name.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(
        endpoints,
        [
            "jslogin",
            "login",
            "webwxnewloginpage",
            "webwxinit",
            "webwxstatusnotify",
            "webwxsync",
            "synccheck",
            "webwxsync",
            "webwxsendmsg",
            "webwxsendmsg",
            "webwxstatusnotify",
            "webwxgetcontact"
        ]
    );
    // The gzip + chunked webwxinit body was decoded to JSON.
    let init = web
        .iter()
        .find(|r| r.cmd_name.as_deref() == Some("webwxinit"))
        .unwrap();
    assert_eq!(
        init.body["response"]["SyncKey"]["Count"], 2,
        "{}",
        init.body
    );
    // The response that lost a segment is marked incomplete; the next exchange is still parsed.
    let lossy = web.iter().rev().nth(1).unwrap();
    assert!(lossy.after_gap, "{lossy:?}");
    let contacts = web.last().unwrap();
    assert_eq!(contacts.layer.as_str(), "web");
    assert_eq!(
        contacts.body["response"]["MemberCount"], 0,
        "{}",
        contacts.body
    );

    // One anomaly list: the session's anomalies are the report's too,
    // counted by kind, each with the packet that showed it.
    let mut listed: Vec<&str> = report
        .anomalies
        .iter()
        .filter(|a| matches!(a.kind, AnomalyKind::Session(_)))
        .map(|a| a.kind.as_str())
        .collect();
    let mut want = kinds.clone();
    listed.sort_unstable();
    want.sort_unstable();
    assert_eq!(listed, want);
    let counts = report.anomaly_counts();
    assert_eq!(counts.get("key_regression"), Some(&2), "{counts:?}");
    assert_eq!(counts.get("client_msg_resend"), Some(&1), "{counts:?}");
    let resend = report
        .anomalies
        .iter()
        .find(|a| a.kind == "client_msg_resend")
        .unwrap();
    let second_send = web
        .iter()
        .filter(|r| r.cmd_name.as_deref() == Some("webwxsendmsg"))
        .nth(1)
        .unwrap();
    assert!(resend.packet.is_some(), "{resend:?}");
    assert_eq!(resend.packet, second_send.last_packet, "{resend:?}");
    assert_eq!(resend.conn, second_send.conn);
    // Observations carry their packet too.
    assert!(s.observations.iter().all(|o| o.packet.is_some()));
}

#[test]
fn every_truncated_prefix_of_the_web_session_parses() {
    let bytes = web_session_capture();
    let step = (bytes.len() / 400).max(1);
    for n in (0..bytes.len()).step_by(step) {
        let prefix = bytes[..n].to_vec();
        if Reader::from_read(Box::new(std::io::Cursor::new(prefix.clone())), "p").is_err() {
            continue;
        }
        let _ = run(prefix);
    }
}
