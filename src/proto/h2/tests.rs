//! HTTP/2 connections built frame by frame (header blocks encoded with
//! loona-hpack's encoder, so the dynamic table is exercised), fed whole, a
//! byte at a time and cut at every length.

use loona_hpack::Encoder;

use super::*;
use crate::capture::Timestamp;
use crate::flow::Direction::{self, ClientToServer as C2S, ServerToClient as S2C};
use crate::proto::http::{OwnedHttpEvent, Start};

fn frame(typ: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let h = FrameHeader {
        len: payload.len() as u32,
        typ,
        flags,
        stream,
    };
    let mut v = h.encode().to_vec();
    v.extend_from_slice(payload);
    v
}

fn block(enc: &mut Encoder, h: &[(&str, &str)]) -> Vec<u8> {
    enc.encode(h.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
}

/// A client's and a server's bytes: GET / (answered 200 "hello"), then a
/// POST with a body in two DATA frames (one padded) answered 201 with the
/// headers split over a CONTINUATION and trailers.
fn conversation() -> (Vec<u8>, Vec<u8>) {
    let (mut ce, mut se) = (Encoder::new(), Encoder::new());
    let mut c = PREFACE.to_vec();
    c.extend(frame(SETTINGS, 0, 0, &[0, 4, 0, 0, 0xff, 0xff]));
    let get = [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "example.test"),
        (":path", "/"),
    ];
    c.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &block(&mut ce, &get),
    ));
    let post = [
        (":method", "POST"),
        (":scheme", "https"),
        (":authority", "example.test"),
        (":path", "/cgi-bin/mmwebwx-bin/webwxsync?sid=x"),
        ("content-type", "application/json"),
    ];
    c.extend(frame(HEADERS, END_HEADERS, 3, &block(&mut ce, &post)));
    c.extend(frame(DATA, 0, 3, b"{\"a\":"));
    let mut padded = vec![3u8];
    padded.extend_from_slice(b"1}");
    padded.extend_from_slice(&[0, 0, 0]);
    c.extend(frame(DATA, END_STREAM | PADDED, 3, &padded));
    c.extend(frame(WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0]));

    let mut s = frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]);
    s.extend(frame(SETTINGS, ACK, 0, &[]));
    let ok = [(":status", "200"), ("content-type", "text/plain")];
    s.extend(frame(HEADERS, END_HEADERS, 1, &block(&mut se, &ok)));
    s.extend(frame(DATA, END_STREAM, 1, b"hello"));
    let created = block(&mut se, &[(":status", "201"), ("x-long", "abcdefgh")]);
    let (a, b) = created.split_at(3);
    s.extend(frame(HEADERS, 0, 3, a));
    s.extend(frame(CONTINUATION, END_HEADERS, 3, b));
    s.extend(frame(DATA, 0, 3, b"done"));
    let trailers = block(&mut se, &[("grpc-status", "0")]);
    s.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &trailers));
    s.extend(frame(PING, 0, 0, &[1, 2, 3, 4, 5, 6, 7, 8]));
    s.extend(frame(GOAWAY, 0, 0, &[0, 0, 0, 3, 0, 0, 0, 0]));
    (c, s)
}

#[derive(Debug, Default, PartialEq)]
struct Seen {
    frames: Vec<(Direction, String, u32, u64)>,
    http: Vec<OwnedHttpEvent>,
    anomalies: Vec<String>,
}

fn record(seen: &mut Seen) -> impl FnMut(H2Event<'_>) + '_ {
    |ev| match ev {
        H2Event::Frame { dir, info, .. } => {
            seen.frames
                .push((dir, info.typ.to_owned(), info.stream, info.stream_offset))
        }
        H2Event::Http(e) => seen.http.push(e.to_owned_event()),
        H2Event::Anomaly { what, .. } => seen.anomalies.push(what),
    }
}

/// Feeds the client's bytes then the server's, each in chunks of `chunk`.
fn run(c: &[u8], s: &[u8], chunk: usize) -> Seen {
    let mut seen = Seen::default();
    let mut conn = Conn::new(Config::default());
    let ts = Timestamp::default();
    {
        let mut out = record(&mut seen);
        for (dir, bytes) in [(C2S, c), (S2C, s)] {
            for (i, part) in bytes.chunks(chunk).enumerate() {
                conn.feed(dir, (i * chunk) as u64, part, ts, &mut out);
            }
        }
        conn.finish(&mut out);
    }
    seen
}

/// Method, path, status, request body, response body.
type Exchange = (String, String, u16, Vec<u8>, Vec<u8>);

fn exchanges(seen: &Seen) -> Vec<Exchange> {
    seen.http
        .iter()
        .filter_map(|e| match e {
            OwnedHttpEvent::Response(rs, Some(rq)) => {
                let Start::Request { method, path } = &rq.start else {
                    return None;
                };
                Some((
                    method.clone(),
                    path.clone(),
                    rs.status()?,
                    rq.body.clone(),
                    rs.body.clone(),
                ))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn streams_become_exchanges() {
    let (c, s) = conversation();
    let seen = run(&c, &s, c.len().max(s.len()));
    assert_eq!(seen.anomalies, Vec::<String>::new());
    assert_eq!(
        exchanges(&seen),
        vec![
            ("GET".into(), "/".into(), 200, vec![], b"hello".to_vec()),
            (
                "POST".into(),
                "/cgi-bin/mmwebwx-bin/webwxsync?sid=x".into(),
                201,
                b"{\"a\":1}".to_vec(),
                b"done".to_vec()
            ),
        ]
    );
    // Trailers joined the response's headers; the frames all came out.
    let OwnedHttpEvent::Response(rs, Some(rq)) = &seen.http[3] else {
        panic!("{:?}", seen.http);
    };
    assert_eq!(rs.header_str("grpc-status"), Some("0"));
    assert_eq!(rs.header_str("x-long"), Some("abcdefgh"));
    assert_eq!(rs.version, 2);
    assert_eq!(rq.header_str(":authority"), Some("example.test"));
    assert_eq!(
        rq.start_line(),
        "POST /cgi-bin/mmwebwx-bin/webwxsync?sid=x HTTP/2"
    );
    let at = seen
        .frames
        .iter()
        .find(|f| f.0 == C2S && f.1 == "HEADERS" && f.2 == 3);
    assert_eq!(Some(rq.stream_offset), at.map(|f| f.3));
    assert_eq!(seen.frames.len(), 16);
    assert_eq!(seen.frames[0], (C2S, "SETTINGS".into(), 0, 24));
}

#[test]
fn any_chunking_same_events() {
    let (c, s) = conversation();
    let whole = run(&c, &s, c.len().max(s.len()));
    for chunk in [1, 2, 3, 7, 9, 10, 64] {
        assert_eq!(run(&c, &s, chunk), whole, "chunk {chunk}");
    }
}

#[test]
fn every_prefix_is_safe_and_cut_streams_come_out() {
    let (c, s) = conversation();
    for n in 0..=s.len() {
        let seen = run(&c, &s[..n], 5);
        // Both requests always come out: answered, cut or unanswered.
        let outcomes = seen
            .http
            .iter()
            .filter(|e| !matches!(e, OwnedHttpEvent::Request(_)))
            .count();
        assert_eq!(outcomes, 2, "prefix {n}: {:?}", seen.http);
    }
    for n in 0..=c.len() {
        run(&c[..n], &s, 4);
    }
}

#[test]
fn a_gap_loses_the_table_and_frames_are_found_again() {
    let (c, s) = conversation();
    let mut seen = Seen::default();
    let mut conn = Conn::new(Config::default());
    let ts = Timestamp::default();
    {
        let mut out = record(&mut seen);
        conn.feed(C2S, 0, &c, ts, &mut out);
        // The server's first 20 bytes are lost: the rest starts inside the
        // SETTINGS ACK.
        conn.gap(S2C, 20, &mut out);
        conn.feed(S2C, 20, &s[20..], ts, &mut out);
        conn.finish(&mut out);
    }
    assert!(
        seen.anomalies
            .iter()
            .any(|a| a.contains("not HTTP/2 frames")),
        "{:?}",
        seen.anomalies
    );
    assert!(seen
        .anomalies
        .iter()
        .any(|a| a.contains("HPACK table is unknown (bytes are missing")));
    // The server's frames after the gap are found: the first HEADERS.
    assert!(seen
        .frames
        .iter()
        .any(|f| f.0 == S2C && f.1 == "HEADERS" && f.2 == 1));
    // The requests were decoded; no response could be: both unanswered.
    let unanswered = seen
        .http
        .iter()
        .filter(|e| matches!(e, OwnedHttpEvent::Unanswered(_)))
        .count();
    assert_eq!(unanswered, 2, "{:?}", seen.http);
}

#[test]
fn a_mid_stream_start_says_headers_are_undecodable() {
    let (c, _) = conversation();
    let mut seen = Seen::default();
    let mut conn = Conn::new(Config::default());
    {
        let mut out = record(&mut seen);
        // From the GET's HEADERS frame on, at its real offset.
        let at = PREFACE.len() + 15;
        conn.feed(C2S, at as u64, &c[at..], Timestamp::default(), &mut out);
        conn.finish(&mut out);
    }
    assert!(seen.http.is_empty(), "{:?}", seen.http);
    assert_eq!(seen.frames.first().map(|f| f.1.as_str()), Some("HEADERS"));
    assert!(seen.anomalies[0].contains("the capture starts after the connection did"));
}

#[test]
fn malformed_frames_and_hpack_errors_are_anomalies() {
    let mut c = PREFACE.to_vec();
    c.extend(frame(SETTINGS, 0, 0, &[0, 4, 0])); // not a multiple of 6
    c.extend(frame(PING, 0, 1, &[0; 8])); // on a stream
    c.extend(frame(DATA, PADDED, 1, &[9, 1])); // padding too long
    c.extend(frame(WINDOW_UPDATE, 0, 0, &[0, 0, 0, 0])); // zero
    c.extend(frame(HEADERS, END_HEADERS, 1, &[0xff, 0xff, 0xff, 0x7f])); // index too large
    c.extend(frame(HEADERS, END_HEADERS, 3, &[0x82])); // table now unknown
    c.extend(frame(CONTINUATION, END_HEADERS, 5, &[0x82])); // no block open
    let seen = run(&c, &[], c.len());
    let a = &seen.anomalies;
    assert!(a[0].contains("not a multiple of 6"), "{a:?}");
    assert!(a[1].contains("PING on stream 1"), "{a:?}");
    assert!(a[2].contains("padding of 9 bytes"), "{a:?}");
    assert!(a[3].contains("zero increment"), "{a:?}");
    assert!(a[4].starts_with("HPACK error"), "{a:?}");
    assert!(a[5].contains("table is unknown (an HPACK error)"), "{a:?}");
    assert!(a[6].contains("no header block open"), "{a:?}");
    assert_eq!(a.len(), 7);
    assert_eq!(seen.frames.len(), 7);
}

#[test]
fn oversize_frame_is_a_resync_and_reset_streams_end() {
    let mut e = Encoder::new();
    let mut c = PREFACE.to_vec();
    let get = block(&mut e, &[(":method", "GET"), (":path", "/a")]);
    c.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &get));
    c.extend(frame(RST_STREAM, 0, 1, &[0, 0, 0, 8]));
    // A header claiming 1 MiB (over the default 16 KiB), then junk, then a
    // PING and a SETTINGS that are found again.
    c.extend_from_slice(&[0x10, 0, 0, 0, 0xee, 0xee, 0xee, 0xee, 0xee, 0xaa, 0xbb]);
    c.extend(frame(PING, 0, 0, &[0; 8]));
    c.extend(frame(SETTINGS, 0, 0, &[]));
    let seen = run(&c, &[], 3);
    assert!(seen.anomalies[0].contains("over the 16384 the peer allowed"));
    assert!(
        seen.anomalies[1].contains("11 bytes are not HTTP/2 frames"),
        "{:?}",
        seen.anomalies
    );
    let OwnedHttpEvent::Unanswered(rq) = &seen.http[1] else {
        panic!("{:?}", seen.http);
    };
    assert!(rq.problems.is_empty(), "the request itself was whole");
    let types: Vec<&str> = seen.frames.iter().map(|f| f.1.as_str()).collect();
    assert_eq!(types, ["HEADERS", "RST_STREAM", "PING", "SETTINGS"]);
}

#[test]
fn detection_helpers() {
    assert_eq!(starts_with_preface(b"PRI * HT"), None);
    assert_eq!(starts_with_preface(PREFACE), Some(true));
    assert_eq!(starts_with_preface(b"POST / HTTP/1.1"), Some(false));
    assert!(looks_like_server_start(&frame(
        SETTINGS,
        0,
        0,
        &[0, 3, 0, 0, 0, 100]
    )));
    assert!(!looks_like_server_start(&frame(SETTINGS, ACK, 0, &[])));
    assert!(!looks_like_server_start(&frame(PING, 0, 0, &[0; 8])));
    let h = FrameHeader::parse(&[0, 1, 2, 4, 1, 0x80, 0, 0, 7]).unwrap();
    assert_eq!((h.len, h.typ, h.flags, h.stream), (258, 4, 1, 7));
}
