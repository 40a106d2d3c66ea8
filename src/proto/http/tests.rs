use std::io::Write;

use super::conn::index;
use super::framing::{content_length, parse_chunk_size, transfer_encoding};
use super::head::find_head_end;
use super::*;

const C: Direction = Direction::ClientToServer;
const S: Direction = Direction::ServerToClient;

use super::OwnedHttpEvent as Ev;

impl Ev {
    fn msg(&self) -> &Message {
        match self {
            Ev::Request(m) | Ev::Response(m, _) | Ev::Unanswered(m) => m,
            Ev::Skipped(..) => panic!("not a message: {self:?}"),
        }
    }
    fn req(&self) -> Option<&Message> {
        match self {
            Ev::Response(_, r) => r.as_ref(),
            _ => panic!("not a response: {self:?}"),
        }
    }
}

#[derive(Debug, Clone)]
enum Piece {
    Data(Direction, Vec<u8>),
    Gap(Direction, u64),
}
use Piece::{Data, Gap};

fn data(dir: Direction, b: &[u8]) -> Piece {
    Data(dir, b.to_vec())
}

/// Feeds the pieces, each cut at the positions `cuts(piece, len)` gives.
fn run_cut(pieces: &[Piece], cfg: Config, cuts: &dyn Fn(usize, usize) -> Vec<usize>) -> Vec<Ev> {
    let mut conn = Conn::new(cfg);
    let mut offs = [0u64; 2];
    let mut evs = Vec::new();
    let mut out = |e: HttpEvent<'_>| evs.push(e.to_owned_event());
    for (pi, p) in pieces.iter().enumerate() {
        match p {
            Data(dir, b) => {
                let ts = Timestamp::new(pi as i64, 0, 6);
                let mut last = 0;
                for c in cuts(pi, b.len()).into_iter().chain([b.len()]) {
                    if c > last {
                        conn.feed(
                            *dir,
                            offs[index(*dir)] + last as u64,
                            &b[last..c],
                            ts,
                            &mut out,
                        );
                        last = c;
                    }
                }
                offs[index(*dir)] += b.len() as u64;
            }
            Gap(dir, n) => {
                conn.gap(*dir, *n, &mut out);
                offs[index(*dir)] += n;
            }
        }
    }
    conn.finish(&mut out);
    evs
}

fn run_cfg(pieces: &[Piece], cfg: Config) -> Vec<Ev> {
    let evs = run_cut(pieces, cfg, &|_, _| Vec::new());
    check_invariants(&evs, cfg);
    evs
}

fn run(pieces: &[Piece]) -> Vec<Ev> {
    run_cfg(pieces, Config::default())
}

/// Per direction, events never go back; bodies respect the cap.
fn check_invariants(evs: &[Ev], cfg: Config) {
    let mut end = [0u64; 2];
    for (i, e) in evs.iter().enumerate() {
        let (dir, a, b) = match e {
            // At the end, a request seen before, never answered.
            Ev::Unanswered(m) => {
                assert!(
                    evs[..i].contains(&Ev::Request(m.clone())),
                    "unanswered but never seen: {m:?}"
                );
                assert!(evs[i..].iter().all(|e| matches!(e, Ev::Unanswered(_))));
                continue;
            }
            Ev::Skipped(d, o, l, _) => (*d, *o, o + l),
            Ev::Request(m) | Ev::Response(m, _) => {
                assert!(m.body.len() <= cfg.max_body, "{m:?}");
                assert!(m.stream_offset < m.end_offset, "{m:?}");
                (m.dir, m.stream_offset, m.end_offset)
            }
        };
        assert!(
            a >= end[index(dir)],
            "event goes back: {e:?} after {}",
            end[index(dir)]
        );
        end[index(dir)] = b;
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: example.com\r\n\r\n").into_bytes()
}

fn ok(body: &[u8]) -> Vec<u8> {
    let mut v = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    v.extend_from_slice(body);
    v
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn zlib(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn raw_deflate(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn encoded(enc: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: {enc}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

// ------------------------------------------------------------ streams

fn keep_alive() -> Vec<Piece> {
    vec![
        data(C, &get("/a")),
        data(S, &ok(b"hello")),
        data(
            C,
            b"POST /b?x=1&y=2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        ),
        data(S, b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nhi"),
        data(C, &get("/c")),
        data(S, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
    ]
}

fn pipelined() -> Vec<Piece> {
    vec![
        Data(C, cat(&[&get("/1"), &get("/2"), &get("/3")])),
        Data(S, cat(&[&ok(b"one"), &ok(b"two"), &ok(b"three")])),
    ]
}

const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n\
5;name=val\r\nhello\r\n6 ; ext=\"q\"\r\n world\r\n0\r\nX-Sum: 42\r\nX-Other:  x \r\n\r\n";

fn chunked() -> Vec<Piece> {
    vec![
        Data(C, cat(&[&get("/c"), &get("/d")])),
        Data(S, cat(&[CHUNKED, &ok(b"next")])),
    ]
}

fn json() -> Vec<u8> {
    br#"{"a":[1,2,3],"b":"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"}"#.to_vec()
}

fn codings() -> Vec<Piece> {
    let j = json();
    vec![
        Data(C, cat(&[&get("/g"), &get("/z"), &get("/r"), &get("/x")])),
        Data(
            S,
            cat(&[
                &encoded("gzip", &gzip(&j)),
                &encoded("deflate", &zlib(&j)),
                &encoded("deflate", &raw_deflate(&j)),
                &encoded(
                    "x-gzip",
                    b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03not deflate at all",
                ),
            ]),
        ),
    ]
}

fn head() -> Vec<Piece> {
    vec![
        Data(
            C,
            cat(&[b"HEAD /big HTTP/1.1\r\nHost: h\r\n\r\n", &get("/small")]),
        ),
        Data(
            S,
            cat(&[
                b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
                &ok(b"ok"),
            ]),
        ),
    ]
}

fn continue_100() -> Vec<Piece> {
    vec![
        data(
            C,
            b"POST /upload HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        ),
        data(S, b"HTTP/1.1 100 Continue\r\n\r\n"),
        data(C, b"hello"),
        data(S, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ]
}

fn close_delimited() -> Vec<Piece> {
    vec![
        data(C, b"GET / HTTP/1.0\r\n\r\n"),
        data(S, b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nto the "),
        data(S, b"end"),
    ]
}

fn gap_in_body() -> Vec<Piece> {
    vec![
        Data(C, cat(&[&get("/1"), &get("/2")])),
        data(S, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123"),
        Gap(S, 3),
        data(S, b"789"),
        data(S, &ok(b"fine")),
    ]
}

fn gap_in_chunked() -> Vec<Piece> {
    vec![
        Data(C, cat(&[&get("/1"), &get("/2")])),
        data(
            S,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n01234",
        ),
        Gap(S, 4),
        data(S, b"9abcdef\r\n0\r\n\r\n"),
        data(S, &ok(b"fine")),
    ]
}

fn garbage() -> Vec<Piece> {
    vec![
        Data(
            C,
            cat(&[b"\x00\x01GET garbage\r\nxGET \r\n", &get("/real")]),
        ),
        data(S, &ok(b"x")),
    ]
}

fn upgrade() -> Vec<Piece> {
    vec![
        data(
            C,
            b"GET /chat HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello",
        ),
        data(
            S,
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x02hi",
        ),
        data(C, b"GET /not-http HTTP/1.1\r\n\r\n"),
    ]
}

fn upgrade_refused() -> Vec<Piece> {
    vec![
        Data(
            C,
            cat(&[
                b"GET /chat HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
                &get("/after"),
            ]),
        ),
        Data(S, cat(&[&ok(b"no"), &ok(b"after")])),
    ]
}

fn smuggling() -> Vec<Piece> {
    vec![
        data(
            C,
            b"POST /s HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: ,\tchunked,\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        ),
        data(S, &ok(b"")),
    ]
}

fn all_streams() -> Vec<(&'static str, Vec<Piece>, Config)> {
    let small = Config {
        max_head: 64,
        max_body: 8,
        max_pending: 2,
    };
    let d = Config::default();
    vec![
        ("keep_alive", keep_alive(), d),
        ("pipelined", pipelined(), d),
        ("chunked", chunked(), d),
        ("codings", codings(), d),
        ("head", head(), d),
        ("continue_100", continue_100(), d),
        ("close_delimited", close_delimited(), d),
        ("gap_in_body", gap_in_body(), d),
        ("gap_in_chunked", gap_in_chunked(), d),
        ("garbage", garbage(), d),
        ("upgrade", upgrade(), d),
        ("upgrade_refused", upgrade_refused(), d),
        ("smuggling", smuggling(), d),
        ("over_cap", over_cap(), small),
        (
            "bomb",
            bomb(),
            Config {
                max_body: 4 << 10,
                ..d
            },
        ),
    ]
}

fn over_cap() -> Vec<Piece> {
    vec![
        Data(C, cat(&[&get("/1"), &get("/2"), &get("/3")])),
        Data(
            S,
            cat(&[
                &ok(b"0123456789abcdefghij"),
                b"HTTP/1.1 200 OK\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
                &ok(b"ok"),
            ]),
        ),
    ]
}

fn bomb() -> Vec<Piece> {
    vec![
        data(C, &get("/bomb")),
        Data(S, encoded("gzip", &gzip(&vec![0u8; 1 << 20]))),
    ]
}

// -------------------------------------------------------------- tests

#[test]
fn keep_alive_three_exchanges() {
    let evs = run(&keep_alive());
    assert_eq!(evs.len(), 6, "{evs:#?}");
    let paths = ["/a", "/b?x=1&y=2", "/c"];
    let status = [200, 201, 404];
    let bodies: [&[u8]; 3] = [b"hello", b"hi", b""];
    for k in 0..3 {
        let req = evs[2 * k].msg();
        assert!(matches!(evs[2 * k], Ev::Request(_)));
        assert_eq!(req.path(), Some(paths[k]));
        assert_eq!(req.dir, C);
        let resp = &evs[2 * k + 1];
        assert_eq!(resp.msg().status(), Some(status[k]));
        assert_eq!(resp.msg().body, bodies[k]);
        assert_eq!(resp.req(), Some(req));
        assert!(resp.msg().complete && resp.msg().problems.is_empty());
        assert_eq!(resp.msg().ts_first, Timestamp::new(2 * k as i64 + 1, 0, 6));
    }
    let post = evs[2].msg();
    assert_eq!(post.method(), Some("POST"));
    assert_eq!(post.query(), Some("x=1&y=2"));
    assert_eq!(post.body, b"abc");
    assert_eq!(post.wire_body_len, 3);
    assert_eq!(post.stream_offset, get("/a").len() as u64);
    assert_eq!(post.end_offset, post.stream_offset + 50);
    assert_eq!(post.version, 1);
    assert_eq!(evs[0].msg().header_str("HOST"), Some("example.com"));
    assert_eq!(evs[0].msg().start_line(), "GET /a HTTP/1.1");
}

#[test]
fn pipelining() {
    let evs = run(&pipelined());
    assert_eq!(evs.len(), 6, "{evs:#?}");
    assert!(evs[..3].iter().all(|e| matches!(e, Ev::Request(_))));
    for (k, body) in [&b"one"[..], b"two", b"three"].iter().enumerate() {
        let r = &evs[3 + k];
        assert_eq!(r.msg().body, *body);
        assert_eq!(r.req(), Some(evs[k].msg()));
        assert_eq!(r.req().unwrap().path(), Some(["/1", "/2", "/3"][k]));
    }
}

#[test]
fn chunked_with_trailers_and_extensions() {
    let evs = run(&chunked());
    assert_eq!(evs.len(), 4, "{evs:#?}");
    let m = evs[2].msg();
    assert!(m.chunked && m.complete, "{m:?}");
    assert_eq!(m.body, b"hello world");
    assert_eq!(m.wire_body_len, 11);
    assert_eq!(m.header_str("x-sum"), Some("42"));
    assert_eq!(m.header_str("x-other"), Some("x"));
    assert_eq!(m.end_offset, CHUNKED.len() as u64);
    assert!(m.problems.is_empty(), "{m:?}");
    assert_eq!(evs[3].msg().body, b"next");
    assert_eq!(evs[3].req().unwrap().path(), Some("/d"));
}

#[test]
fn gzip_and_deflate_bodies() {
    let evs = run(&codings());
    assert_eq!(evs.len(), 8, "{evs:#?}");
    for m in evs[4..7].iter().map(Ev::msg) {
        assert!(m.decoded, "{m:?}");
        assert_eq!(m.body, json(), "{m:?}");
        assert!(m.problems.is_empty(), "{m:?}");
        serde_json::from_slice::<serde_json::Value>(&m.body).unwrap();
    }
    assert_eq!(evs[4].msg().encoding.as_deref(), Some("gzip"));
    let bad = evs[7].msg();
    assert!(!bad.decoded);
    assert_eq!(
        bad.body,
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03not deflate at all"
    );
    assert_eq!(bad.problems.len(), 1, "{bad:?}");
    assert!(
        bad.problems[0].starts_with("x-gzip: invalid data at byte "),
        "{bad:?}"
    );
}

#[test]
fn zip_bomb_stops_at_the_cap() {
    let evs = run_cfg(
        &bomb(),
        Config {
            max_body: 4 << 10,
            ..Config::default()
        },
    );
    let m = evs[1].msg();
    assert!(m.decoded && m.complete);
    assert_eq!(m.body.len(), 4 << 10);
    assert!(m.body.iter().all(|&b| b == 0));
    assert_eq!(
        m.problems,
        ["gzip: decoded body over 4 KiB cap: kept the first 4 KiB"]
    );
}

#[test]
fn head_response_has_no_body() {
    let evs = run(&head());
    assert_eq!(evs.len(), 4, "{evs:#?}");
    let m = evs[2].msg();
    assert_eq!(m.header_str("content-length"), Some("1000"));
    assert!(m.body.is_empty() && m.complete);
    assert_eq!(m.wire_body_len, 0);
    assert_eq!(evs[2].req().unwrap().method(), Some("HEAD"));
    assert_eq!(evs[3].msg().body, b"ok");
    assert_eq!(evs[3].req().unwrap().path(), Some("/small"));
}

#[test]
fn continue_100_does_not_consume_the_request() {
    let evs = run(&continue_100());
    assert_eq!(evs.len(), 3, "{evs:#?}");
    // The 100 comes while the body is still on its way.
    assert_eq!(evs[0].msg().status(), Some(100));
    let early = evs[0].req().expect("paired");
    assert_eq!(early.path(), Some("/upload"));
    assert!(early.body.is_empty());
    assert_eq!(evs[1].msg().body, b"hello");
    assert_eq!(evs[2].msg().status(), Some(200));
    assert_eq!(evs[2].req(), Some(evs[1].msg()));
    // Client side first (whole stream): the 100 pairs with the complete request.
    let p = continue_100();
    let evs = run(&[p[0].clone(), p[2].clone(), p[1].clone(), p[3].clone()]);
    assert_eq!(evs.len(), 3, "{evs:#?}");
    assert_eq!(evs[1].req(), Some(evs[0].msg()));
    assert_eq!(evs[2].req(), Some(evs[0].msg()));
}

#[test]
fn close_delimited_response_ends_at_finish() {
    let evs = run(&close_delimited());
    assert_eq!(evs.len(), 2, "{evs:#?}");
    let m = evs[1].msg();
    assert!(m.complete && m.problems.is_empty(), "{m:?}");
    assert_eq!(m.body, b"to the end");
    assert_eq!(m.version, 0);
    assert_eq!(m.ts_first, Timestamp::new(1, 0, 6));
    assert_eq!(m.ts_last, Timestamp::new(2, 0, 6));
}

#[test]
fn gap_inside_a_body() {
    let evs = run(&gap_in_body());
    assert_eq!(evs.len(), 5, "{evs:#?}");
    let cut = evs[2].msg();
    assert!(!cut.complete);
    assert_eq!(cut.body, b"0123");
    assert_eq!(cut.problems, ["gap of 3 bytes inside the body"]);
    let head_len = 39;
    assert_eq!(cut.end_offset, head_len + 4);
    assert_eq!(evs[3], Ev::Skipped(S, head_len + 7, 3, SKIP_AFTER_GAP));
    let fine = evs[4].msg();
    assert!(fine.complete);
    assert_eq!(fine.body, b"fine");
    assert_eq!(evs[4].req().unwrap().path(), Some("/2"));

    // Chunked: the end of the body is unknown, resume at the status line.
    let evs = run(&gap_in_chunked());
    assert_eq!(evs.len(), 5, "{evs:#?}");
    assert!(!evs[2].msg().complete);
    assert_eq!(evs[2].msg().body, b"01234");
    assert_eq!(evs[3], Ev::Skipped(S, 56 + 4, 14, SKIP_AFTER_GAP));
    assert_eq!(evs[4].msg().body, b"fine");
    assert_eq!(evs[4].req().unwrap().path(), Some("/2"));
}

#[test]
fn garbage_before_a_request_line() {
    let evs = run(&garbage());
    assert_eq!(evs.len(), 3, "{evs:#?}");
    assert_eq!(evs[0], Ev::Skipped(C, 0, 22, SKIP_NOT_HTTP));
    assert_eq!(evs[1].msg().path(), Some("/real"));
    assert_eq!(evs[1].msg().stream_offset, 22);
    assert_eq!(evs[2].req(), Some(evs[1].msg()));
}

#[test]
fn over_cap_body_and_head() {
    let cfg = Config {
        max_head: 64,
        max_body: 8,
        max_pending: 2,
    };
    let evs = run_cfg(&over_cap(), cfg);
    let resp: Vec<&Ev> = evs
        .iter()
        .filter(|e| matches!(e, Ev::Response(..)))
        .collect();
    assert_eq!(resp.len(), 3, "{evs:#?}");
    let big = resp[0].msg();
    assert_eq!(big.body, b"01234567");
    assert_eq!(big.wire_body_len, 20);
    assert!(big.complete);
    // The third request pushed the first out of the queue (cap 2).
    assert_eq!(resp[0].req(), None);
    assert_eq!(
        big.problems,
        [
            "body over 8 bytes cap: kept the first 8 bytes",
            "answers a request dropped from the full pending queue"
        ]
    );
    let long = resp[1].msg();
    assert!(!long.complete);
    assert_eq!(long.problems, ["head over 64 bytes cap"]);
    assert_eq!(long.end_offset - long.stream_offset, 64);
    assert_eq!(resp[1].req().unwrap().path(), Some("/2"));
    assert!(
        evs.contains(&Ev::Skipped(S, 59 + 64, 15, SKIP_HEAD_OVER_CAP)),
        "{evs:#?}"
    );
    assert_eq!(resp[2].msg().body, b"ok");
    assert_eq!(resp[2].req().unwrap().path(), Some("/3"));
}

#[test]
fn pending_queue_overflow() {
    let cfg = Config {
        max_pending: 2,
        ..Config::default()
    };
    let evs = run_cfg(
        &over_cap()[..1]
            .iter()
            .cloned()
            .chain([Data(S, cat(&[&ok(b"1"), &ok(b"2"), &ok(b"3")]))])
            .collect::<Vec<_>>(),
        cfg,
    );
    assert_eq!(evs.len(), 6, "{evs:#?}");
    assert_eq!(
        evs[2].msg().problems,
        ["pending queue full (2): dropped the oldest unanswered request (GET /1 HTTP/1.1 at offset 0)"]
    );
    assert_eq!(evs[3].req(), None);
    assert_eq!(
        evs[3].msg().problems,
        ["answers a request dropped from the full pending queue"]
    );
    assert_eq!(evs[4].req().unwrap().path(), Some("/2"));
    assert_eq!(evs[5].req().unwrap().path(), Some("/3"));
}

#[test]
fn upgrade_stops_parsing() {
    let evs = run(&upgrade());
    assert_eq!(evs.len(), 4, "{evs:#?}");
    assert_eq!(evs[1].msg().status(), Some(101));
    assert_eq!(evs[1].req(), Some(evs[0].msg()));
    let c_head = 63;
    let s_head = 77;
    assert_eq!(evs[2], Ev::Skipped(C, c_head, 7 + 26, SKIP_UPGRADED));
    assert_eq!(evs[3], Ev::Skipped(S, s_head, 4, SKIP_UPGRADED));
    // Refused: what the client sent after the request is HTTP after all.
    let evs = run(&upgrade_refused());
    assert_eq!(evs.len(), 4, "{evs:#?}");
    assert_eq!(evs[1].req().unwrap().path(), Some("/chat"));
    // The held request is parsed as soon as the refusal is known.
    assert_eq!(evs[2].msg().path(), Some("/after"));
    assert_eq!(evs[3].req(), Some(evs[2].msg()));
    assert_eq!(evs[3].msg().body, b"after");
}

#[test]
fn content_length_with_chunked_uses_chunked() {
    let evs = run(&smuggling());
    assert_eq!(evs.len(), 2, "{evs:#?}");
    let m = evs[0].msg();
    assert!(m.chunked && m.complete);
    assert_eq!(m.body, b"abc");
    assert_eq!(
        m.problems,
        ["both Content-Length and Transfer-Encoding sent: Content-Length ignored"]
    );
    assert_eq!(evs[1].req(), Some(m));
}

#[test]
fn mid_stream_response_has_no_request() {
    let evs = run(&[data(S, b"o bytes\r\nHTTP/1.1 204 No Content\r\n\r\n")]);
    assert_eq!(evs.len(), 2, "{evs:#?}");
    assert_eq!(evs[0], Ev::Skipped(S, 0, 9, SKIP_NOT_HTTP));
    assert_eq!(evs[1].req(), None);
    assert_eq!(evs[1].msg().status(), Some(204));
}

#[test]
fn cut_by_the_end_of_the_stream() {
    let evs = run(&[
        data(C, b"GET / HTTP/1.1\r\nHost: a\r\nAcc"),
        data(S, b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"),
    ]);
    // The response's head came before the request was whole: it answers
    // nothing known, and the request ends unanswered.
    assert_eq!(evs.len(), 3, "{evs:#?}");
    assert_eq!(evs[2], Ev::Unanswered(evs[0].msg().clone()));
    let (req, resp) = (evs[0].msg(), evs[1].msg());
    assert!(!req.complete && !resp.complete);
    assert_eq!(req.header_str("host"), Some("a"));
    assert_eq!(req.problems, ["stream ended inside the head"]);
    assert_eq!(
        resp.problems,
        ["stream ended inside the body (3 of 9 bytes)"]
    );
    assert_eq!(resp.body, b"abc");
    // The response head was complete before the request was cut.
    assert_eq!(evs[1].req(), None);
}

/// Every chunking of every stream gives the same events: each piece cut
/// at every position into two chunks, and fed one byte at a time.
#[test]
fn every_chunking_gives_identical_events() {
    for (name, pieces, cfg) in all_streams() {
        let whole = run_cfg(&pieces, cfg);
        assert!(!whole.is_empty(), "{name}");
        let bytes = run_cut(&pieces, cfg, &|_, len| (1..len).collect());
        assert_eq!(bytes, whole, "{name}: one byte at a time");
        for (pi, p) in pieces.iter().enumerate() {
            let Data(_, b) = p else { continue };
            for k in 1..b.len() {
                let two = run_cut(&pieces, cfg, &|q, _| {
                    if q == pi {
                        vec![k]
                    } else {
                        Vec::new()
                    }
                });
                assert_eq!(two, whole, "{name}: piece {pi} cut at {k}");
            }
        }
    }
}

/// Every truncated prefix of every stream: no panic, invariants hold.
#[test]
fn every_truncated_prefix() {
    for (_, pieces, cfg) in all_streams() {
        let total: usize = pieces
            .iter()
            .map(|p| match p {
                Data(_, b) => b.len(),
                Gap(..) => 0,
            })
            .sum();
        for n in 0..total {
            let mut left = n;
            let mut pre = Vec::new();
            for p in &pieces {
                match p {
                    Data(d, b) if b.len() <= left => {
                        left -= b.len();
                        pre.push(Data(*d, b.clone()));
                    }
                    Data(d, b) => {
                        pre.push(Data(*d, b[..left].to_vec()));
                        break;
                    }
                    g => pre.push(g.clone()),
                }
            }
            run_cfg(&pre, cfg);
        }
    }
}

#[test]
fn feed_offsets_overlap_and_jump() {
    let mut conn = Conn::new(Config::default());
    let mut evs = Vec::new();
    let mut out = |e: HttpEvent<'_>| evs.push(e.to_owned_event());
    let req = get("/x");
    let ts = Timestamp::default();
    conn.feed(C, 0, &req[..10], ts, &mut out);
    // Overlapping retransmission, then the rest.
    conn.feed(C, 5, &req[5..], ts, &mut out);
    // A jump forward is a gap.
    conn.feed(C, req.len() as u64 + 5, &get("/y"), ts, &mut out);
    conn.finish(&mut out);
    // Both requests, then both unanswered at the end, oldest first.
    assert_eq!(evs.len(), 4, "{evs:#?}");
    assert_eq!(evs[2], Ev::Unanswered(evs[0].msg().clone()));
    assert_eq!(evs[3], Ev::Unanswered(evs[1].msg().clone()));
    assert_eq!(evs[0].msg().path(), Some("/x"));
    assert_eq!(evs[1].msg().path(), Some("/y"));
    assert_eq!(evs[1].msg().stream_offset, req.len() as u64 + 5);
}

#[test]
fn helpers() {
    assert_eq!(size(16 << 20), "16 MiB");
    assert_eq!(size(64 << 10), "64 KiB");
    assert_eq!(size(100), "100 bytes");
    assert_eq!(parse_chunk_size(b"1aF;x=y\r"), Some(0x1af));
    assert_eq!(parse_chunk_size(b" 0 "), Some(0));
    assert_eq!(parse_chunk_size(b"g"), None);
    assert_eq!(parse_chunk_size(b"11112222333344445"), None);
    assert_eq!(
        content_length(&[("Content-Length", b"5, 5".to_vec())]),
        Ok(Some(5))
    );
    assert!(content_length(&[("content-length", b"5, 6".to_vec())]).is_err());
    assert_eq!(
        transfer_encoding(&[("Transfer-Encoding", b"gzip, chunked".to_vec())]),
        (true, true)
    );
    assert_eq!(
        transfer_encoding(&[("Transfer-Encoding", b"chunked, gzip".to_vec())]),
        (true, false)
    );
    assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nbody", 0), Ok(18));
    assert_eq!(find_head_end(b"HTTP/1.1 200 OK\n\n", 0), Ok(17));
    assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r", 0), Err(21));
}
