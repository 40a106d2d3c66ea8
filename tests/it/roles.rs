//! Connections seen without their handshake, the server's packet first:
//! the analyzer infers client and server from the protocol (long-link
//! requests vs responses and pushes, HTTP start lines, MMTLS hellos), then
//! from well-known ports, and says so (`roles`) in its records and rows.
//! `flows` keeps the flow table's first-packet guess.

use syncscope::analyze::SyncKeySource;
use syncscope::analyze::{FrameRecord, Options, Report, RolesBy};
use syncscope::body::synckey::SyncKey;
use syncscope::capture::Reader;
use syncscope::flow::Direction;
use syncscope::net::messages::IdentifyExt;
use syncscope::proto::commands::{
    response, IDENTIFY, NEWNOTIFY, NEWSYNC, NOOP, SEQ_IDENTIFY, SEQ_PUSH,
};
use syncscope::proto::longlink::encode;
use syncscope::synth::{Conversation, Side};

const C2S: Direction = Direction::ClientToServer;
const S2C: Direction = Direction::ServerToClient;

/// Neither is a server port: only the protocol can tell.
const CLIENT: &str = "198.51.100.82:45475";
const SERVER: &str = "203.0.113.81:45000";

/// One connection without its handshake: `turns` in order, then closed.
fn capture(client: &str, server: &str, turns: &[(Side, Vec<u8>)]) -> Vec<u8> {
    let mut c = Conversation::new(client.parse().unwrap(), server.parse().unwrap(), 1000, 9000);
    let mut frames = Vec::new();
    for (side, bytes) in turns {
        frames.extend(c.send(*side, bytes));
    }
    frames.extend(c.close());
    crate::common::pcap_of(&frames)
}

fn run(client: &str, server: &str, turns: &[(Side, Vec<u8>)]) -> (Vec<FrameRecord>, Report) {
    let opts = Options::default();
    let pcap = capture(client, server, turns);
    let mut reader = Reader::from_read(Box::new(std::io::Cursor::new(pcap)), "roles").unwrap();
    crate::common::analyze_capture(&mut reader, &opts)
}

/// The one connection's client, server and how they were decided.
fn roles(report: &Report) -> (String, String, Option<RolesBy>) {
    assert_eq!(report.connections.len(), 1);
    let c = &report.connections[0];
    (c.client.clone(), c.server.clone(), c.roles)
}

fn inferred(by: RolesBy) -> (String, String, Option<RolesBy>) {
    (CLIENT.into(), SERVER.into(), Some(by))
}

#[test]
fn a_long_link_whose_first_packet_is_a_push() {
    let (records, report) = run(
        CLIENT,
        SERVER,
        &[
            (Side::Server, encode(NEWNOTIFY, SEQ_PUSH, &[1, 2, 3])),
            (Side::Client, encode(NEWSYNC, 5, b"req")),
            (Side::Server, encode(response(NEWSYNC), 5, b"resp")),
        ],
    );
    assert_eq!(roles(&report), inferred(RolesBy::Protocol));
    let got: Vec<_> = records
        .iter()
        .map(|r| (r.dir, r.cmd.unwrap(), r.kind.as_str(), r.roles))
        .collect();
    let p = Some(RolesBy::Protocol);
    assert_eq!(
        got,
        [
            (S2C, NEWNOTIFY, "push", p),
            (C2S, NEWSYNC, "request", p),
            (S2C, response(NEWSYNC), "response", p),
        ]
    );
    assert!(records[2].latency_us.is_some());
    let pc = &report.pairing_by_conn[0].counts;
    assert_eq!(
        (pc.requests, pc.responses, pc.pairs, pc.pushes),
        (1, 1, 1, 1)
    );
    assert_eq!(pc.responses_without_request + pc.unanswered_requests, 0);
    assert_eq!(pc.duplicate_requests, 0);
    // Bytes follow the roles too.
    let c = &report.connections[0];
    assert_eq!((c.bytes_c2s, c.bytes_s2c), (19, 19 + 20));
    // The row's JSON says how the roles were found.
    let row = serde_json::to_value(c).unwrap();
    assert_eq!(row["roles"], "protocol");
    assert_eq!(row["client"], CLIENT);
}

#[test]
fn the_synckey_of_an_identify_after_a_push_is_the_clients() {
    let body = IdentifyExt {
        uin: 42,
        user: None,
        device: None,
        synckey: SyncKey {
            keys: vec![(1, 5), (2, 7)],
        },
    }
    .encode();
    let (records, report) = run(
        CLIENT,
        SERVER,
        &[
            (Side::Server, encode(NEWNOTIFY, SEQ_PUSH, b"")),
            (Side::Client, encode(IDENTIFY, SEQ_IDENTIFY, &body)),
            (Side::Server, encode(response(IDENTIFY), SEQ_IDENTIFY, b"")),
        ],
    );
    assert_eq!(roles(&report), inferred(RolesBy::Protocol));
    let dirs: Vec<_> = records.iter().map(|r| r.dir).collect();
    assert_eq!(dirs, [S2C, C2S, S2C]);
    let seen: Vec<_> = report.synckeys.iter().map(|k| (k.dir, k.source)).collect();
    assert_eq!(seen, [(C2S, SyncKeySource::LonglinkIdentify)]);
    let pc = &report.pairing_by_conn[0].counts;
    assert_eq!((pc.pairs, pc.pushes), (1, 1));
}

#[test]
fn a_mars_server_echoing_a_noop_first() {
    // The capture starts on the server's echo of a noop (same cmd and
    // seq), then a response: the server, not a client sending noops.
    let mut s2c = encode(NOOP, 3, b"");
    s2c.extend(encode(response(NEWSYNC), 4, b"r"));
    let (records, report) = run(
        CLIENT,
        SERVER,
        &[
            (Side::Server, s2c),
            (Side::Client, encode(NEWSYNC, 9, b"q")),
            (Side::Server, encode(response(NEWSYNC), 9, b"r")),
        ],
    );
    assert_eq!(roles(&report), inferred(RolesBy::Protocol));
    let dirs: Vec<_> = records.iter().map(|r| r.dir).collect();
    assert_eq!(dirs, [S2C, S2C, C2S, S2C]);
    // The request is answered; the echo and the response before it have
    // nothing to pair with (their requests are not in the capture).
    let pc = &report.pairing_by_conn[0].counts;
    assert_eq!((pc.pairs, pc.duplicate_requests), (1, 0));
    assert_eq!(pc.responses_without_request, 1);
}

#[test]
fn an_http_keep_alive_picked_up_at_a_response() {
    let resp = |body: &str| {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    let req =
        b"POST /cgi-bin/micromsg-bin/newsync HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
    let (records, report) = run(
        CLIENT,
        SERVER,
        &[
            (Side::Server, resp("first")),
            (Side::Client, req.to_vec()),
            (Side::Server, resp("second")),
        ],
    );
    assert_eq!(roles(&report), inferred(RolesBy::Protocol));
    // One record per exchange: the response picked up alone, then the
    // request paired with the response after it (a latency, its path).
    let got: Vec<_> = records
        .iter()
        .map(|r| {
            (
                r.dir,
                r.kind.as_str(),
                r.path.as_deref(),
                r.status,
                r.latency_us.is_some(),
                r.roles,
            )
        })
        .collect();
    let p = Some(RolesBy::Protocol);
    assert_eq!(
        got,
        [
            (S2C, "response", None, Some(200), false, p),
            (
                S2C,
                "response",
                Some("/cgi-bin/micromsg-bin/newsync"),
                Some(200),
                true,
                p
            ),
        ],
        "{records:?}"
    );
    let c = &report.connections[0];
    assert_eq!(c.bytes_c2s, req.len() as u64);
    assert!(report
        .anomalies
        .iter()
        .all(|a| a.kind.as_str() != "http_skipped"));
}

#[test]
fn an_http_exchange_picked_up_inside_bodies_server_first() {
    let body = "k".repeat(50);
    let req = format!(
        "POST /cgi-bin/micromsg-bin/newsync HTTP/1.1\r\nHost: a\r\nContent-Length: 50\r\n\r\n{body}"
    );
    let resp = format!("HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{body}");
    // The server's side starts 200 bytes before the end of an earlier
    // body and comes first; the client's 20 bytes before the end of one.
    let (records, report) = run(
        CLIENT,
        SERVER,
        &[
            (
                Side::Server,
                format!("{}{resp}", "y".repeat(200)).into_bytes(),
            ),
            (
                Side::Client,
                format!("{}{req}", "z".repeat(20)).into_bytes(),
            ),
        ],
    );
    assert_eq!(roles(&report), inferred(RolesBy::Protocol));
    let got: Vec<_> = records
        .iter()
        .map(|r| (r.dir, r.path.as_deref(), r.status, r.latency_us.is_some()))
        .collect();
    assert_eq!(
        got,
        [(S2C, Some("/cgi-bin/micromsg-bin/newsync"), Some(200), true)],
        "{records:?}"
    );
}

#[test]
fn an_mmtls_connection_picked_up_at_the_server_hello() {
    // The real ServerHello of the sample capture's conn 7, then the
    // client's first data record.
    let server_hello = hex::decode(
        "16f104002e0000002a0204f100a820cbbe3fc158efacc09c63246b7efcb99d21\
         e402cb8b3eecf62936f304e0dd6d0000000100",
    )
    .unwrap();
    let mut data = vec![0x17, 0xf1, 0x04, 0x00, 0x20];
    data.extend([0x5a; 0x20]);
    let (records, report) = run(
        CLIENT,
        SERVER,
        &[(Side::Server, server_hello), (Side::Client, data)],
    );
    assert_eq!(roles(&report), inferred(RolesBy::Protocol));
    let got: Vec<_> = records.iter().map(|r| (r.dir, r.kind.as_str())).collect();
    assert_eq!(got, [(S2C, "handshake"), (C2S, "data")], "{records:?}");
}

#[test]
fn only_the_ports_tell() {
    // Bytes of no known protocol, the server (on 8080) first.
    let (_, report) = run(
        "198.51.100.82:45475",
        "203.0.113.81:8080",
        &[
            (Side::Server, b"\x00\x01 not a protocol".to_vec()),
            (Side::Client, b"\x00\x02 nor this".to_vec()),
        ],
    );
    assert_eq!(
        roles(&report),
        (
            "198.51.100.82:45475".into(),
            "203.0.113.81:8080".into(),
            Some(RolesBy::Port)
        )
    );
    // Neither the protocol nor the ports: the first packet's sender.
    let (_, report) = run(
        CLIENT,
        SERVER,
        &[(Side::Server, b"\x00\x01 not a protocol".to_vec())],
    );
    assert_eq!(
        roles(&report),
        (SERVER.into(), CLIENT.into(), Some(RolesBy::FirstPacket))
    );
}

#[test]
fn a_handshake_adds_no_roles_field() {
    let mut c = Conversation::new(CLIENT.parse().unwrap(), SERVER.parse().unwrap(), 1000, 9000);
    let mut frames = c.handshake();
    frames.extend(c.send(Side::Server, &encode(NEWNOTIFY, SEQ_PUSH, b"")));
    frames.extend(c.close());
    let pcap = crate::common::pcap_of(&frames);
    let mut reader = Reader::from_read(Box::new(std::io::Cursor::new(pcap)), "syn").unwrap();
    let (records, report) = crate::common::analyze_capture(&mut reader, &Options::default());
    assert_eq!(roles(&report), (CLIENT.into(), SERVER.into(), None));
    let row = serde_json::to_value(&report.connections[0]).unwrap();
    assert!(row.get("roles").is_none(), "{row}");
    let rec = serde_json::to_value(&records[0]).unwrap();
    assert!(rec.get("roles").is_none(), "{rec}");
}

/// A TLS handshake record holding a ClientHello (1) or ServerHello (2)
/// (just its first bytes: enough to tell).
fn tls_hello(typ: u8) -> Vec<u8> {
    let mut r = vec![
        0x16, 0x03, 0x03, 0x00, 0x2a, typ, 0x00, 0x00, 0x26, 0x03, 0x03,
    ];
    r.extend([0x42; 36]);
    r
}

#[test]
fn a_tls_connection_picked_up_at_the_server_hello() {
    // Neither port is a server port, the ServerHello comes first: the
    // hello tells (TLS is not dissected, the roles are still right).
    let data = [0x17, 0x03, 0x03, 0x00, 0x04, 1, 2, 3, 4].to_vec();
    let (_, report) = run(
        CLIENT,
        SERVER,
        &[(Side::Server, tls_hello(2)), (Side::Client, data)],
    );
    assert_eq!(roles(&report), inferred(RolesBy::Protocol));
    let c = &report.connections[0];
    assert_eq!((c.bytes_c2s, c.bytes_s2c), (9, 47));
    assert_eq!(c.role_conflicts, 0);
    // The ClientHello first tells the same.
    let (_, report) = run(
        CLIENT,
        SERVER,
        &[(Side::Client, tls_hello(1)), (Side::Server, tls_hello(2))],
    );
    assert_eq!(roles(&report), inferred(RolesBy::Protocol));
    assert!(report.anomalies.is_empty(), "{:?}", report.anomalies);
}

/// (direction, offset, detail) of the role conflicts, and the count on the row.
fn conflicts(report: &Report) -> (Vec<(Direction, u64, String)>, u64) {
    let v = report
        .anomalies
        .iter()
        .filter(|a| a.kind.as_str() == "role_conflict")
        .map(|a| (a.dir, a.offset, a.detail.clone()))
        .collect();
    (v, report.connections[0].role_conflicts)
}

#[test]
fn evidence_against_inferred_roles_is_reported_and_the_roles_kept() {
    // Long link: the push makes the first sender the server; the other
    // side then answers a request of its own: a response from the client.
    let (records, report) = run(
        CLIENT,
        SERVER,
        &[
            (Side::Server, encode(NEWNOTIFY, SEQ_PUSH, b"")), // s2c 0..16
            (Side::Client, encode(NEWSYNC, 5, b"q")),         // c2s 0..17
            (Side::Server, encode(response(NEWSYNC), 5, b"")), // s2c 16..32
            (Side::Client, encode(response(NEWSYNC), 9, b"")), // c2s 17..33
            (Side::Client, encode(response(NEWSYNC), 10, b"")), // c2s 33..49
        ],
    );
    assert_eq!(roles(&report), inferred(RolesBy::Protocol));
    let dirs: Vec<_> = records.iter().map(|r| r.dir).collect();
    assert_eq!(dirs, [S2C, C2S, S2C, C2S, C2S]);
    let detail = |seq| {
        format!(
            "a long-link response (cmd 1000000121 seq {seq}) from the client \
             (roles inferred by protocol; kept)"
        )
    };
    assert_eq!(
        conflicts(&report),
        (vec![(C2S, 17, detail(9)), (C2S, 33, detail(10))], 2)
    );
    let row = serde_json::to_value(&report.connections[0]).unwrap();
    assert_eq!(row["role_conflicts"], 2);

    // HTTP: a status line first makes its sender the server; a status line
    // from the other side is a conflict.
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec();
    let (_, report) = run(
        CLIENT,
        SERVER,
        &[(Side::Server, resp.clone()), (Side::Client, resp)],
    );
    assert_eq!(roles(&report), inferred(RolesBy::Protocol));
    assert_eq!(
        conflicts(&report),
        (
            vec![(
                C2S,
                0,
                "an HTTP status line (200) from the client (roles inferred by protocol; kept)"
                    .into()
            )],
            1
        )
    );

    // TLS: two ServerHellos.
    let (_, report) = run(
        CLIENT,
        SERVER,
        &[(Side::Server, tls_hello(2)), (Side::Client, tls_hello(2))],
    );
    assert_eq!(roles(&report), inferred(RolesBy::Protocol));
    assert_eq!(
        conflicts(&report),
        (
            vec![(
                C2S,
                0,
                "a TLS ServerHello from the client (roles inferred by protocol; kept)".into()
            )],
            1
        )
    );

    // With a handshake nothing is questioned.
    let mut c = Conversation::new(CLIENT.parse().unwrap(), SERVER.parse().unwrap(), 1000, 9000);
    let mut frames = c.handshake();
    frames.extend(c.send(Side::Client, &encode(response(NEWSYNC), 9, b"")));
    frames.extend(c.close());
    let pcap = crate::common::pcap_of(&frames);
    let mut reader = Reader::from_read(Box::new(std::io::Cursor::new(pcap)), "syn").unwrap();
    let (_, report) = crate::common::analyze_capture(&mut reader, &Options::default());
    assert_eq!(conflicts(&report), (vec![], 0));
}

#[test]
fn the_table_has_a_roles_column_only_when_roles_were_inferred() {
    // Three connections, the server's packet first: told by protocol, by
    // port, by nothing (the first packet).
    let mut frames = Vec::new();
    for (client, server, bytes) in [
        (CLIENT, SERVER, encode(NEWNOTIFY, SEQ_PUSH, b"")),
        (
            "198.51.100.82:45476",
            "203.0.113.81:8080",
            b"\x00\x01 not a protocol".to_vec(),
        ),
        (
            "198.51.100.82:45477",
            "203.0.113.81:45001",
            b"\x00\x01 not a protocol".to_vec(),
        ),
    ] {
        let mut c = Conversation::new(client.parse().unwrap(), server.parse().unwrap(), 1000, 9000);
        frames.extend(c.send(Side::Server, &bytes));
        frames.extend(c.close());
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("mid.pcap");
    std::fs::write(&pcap, crate::common::pcap_of(&frames)).unwrap();
    let out = crate::cli_analyze::syncscope(&["analyze", pcap.to_str().unwrap(), "-q"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .take_while(|l| !l.is_empty())
        .filter(|l| l.contains('┆'))
        .map(|l| {
            l.trim_matches(['│', ' '])
                .split('┆')
                .map(str::trim)
                .collect()
        })
        .collect();
    let cells = |i: usize| (rows[i][0], rows[i][1], rows[i][10]);
    assert_eq!(rows[0].len(), 11, "{text}");
    assert_eq!(cells(0), ("id", "client", "roles"), "{text}");
    assert_eq!(cells(1), ("0", CLIENT, "proto"), "{text}");
    assert_eq!(cells(2), ("1", "198.51.100.82:45476", "port"), "{text}");
    assert_eq!(cells(3), ("2", "203.0.113.81:45001", "first"), "{text}");
    // The legend under the table, in 80 columns.
    let legend = syncscope::report::table::ROLES_LEGEND;
    assert!(text.contains(&format!("┘\n{legend}\n\n")), "{text}");
    assert!(legend.lines().all(|l| l.chars().count() <= 80));
    // With handshakes (the sample), the table is as it was.
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/longlink-8080.pcap");
    let out = crate::cli_analyze::syncscope(&["analyze", sample, "-q"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let header = text.lines().find(|l| l.contains("┆ client")).unwrap();
    assert!(header.trim_end().ends_with("┆ end │"), "{text}");
    assert!(!text.contains("roles"), "{text}");
}
