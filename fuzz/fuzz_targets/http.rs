//! `proto::http::Conn` over two directions fed chunk by chunk, with gaps,
//! overlapping re-feeds and small or default caps. Checked:
//!
//! * per direction, every event (request, response, skipped run) starts at
//!   or after the end of the one before, ends after it starts, and lies in
//!   what was fed so far (never beyond the next offset of its direction);
//! * bodies (wire or decoded) are never longer than `max_body`;
//! * a response's request, when given, is a request; skipped runs are not
//!   empty;
//! * the same operations with every feed split into 1-byte feeds give the
//!   same events (the chunking does not matter);
//! * the shared one-message parser (`proto::http::message`, used by the
//!   server and the clients) on the input: a complete message lies inside
//!   its input, and parses the same from exactly its own bytes; `split`
//!   stays inside its input.
//!
//! Input layout: a config byte (bits 0-1: `max_head` 64 KiB / 16 / 64 /
//! 300; bits 2-3: `max_body` 16 MiB / 0 / 8 / 100; bits 4-5: `max_pending`
//! 64 / 1 / 2 / 8), then operations, each an op byte: bit 0 the direction
//! (server to client when set); bits 1-2 the kind: 0 feed `n` literal bytes
//! (`n` the next byte; x16 with bit 3), 1 feed a canned HTTP snippet (bits
//! 3-7 pick it), 2 a gap of `n + 1` bytes, 3 feed `n` literal bytes at an
//! offset up to 15 bytes (bits 3-6) before the direction's end (overlap).
#![no_main]

use libfuzzer_sys::fuzz_target;
use syncscope::capture::Timestamp;
use syncscope::flow::Direction;
use syncscope::proto::http::message::{self, Kind, Limits, Parse};
use syncscope::proto::http::{Config, Conn, HttpEvent, OwnedHttpEvent as Ev};

const SNIPPETS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\n",
    b"HTTP/1.1 200 OK\r\n",
    b"Content-Length: 5\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"\r\n",
    b"0\r\n\r\n",
    b"Upgrade: x\r\n",
    b"HTTP/1.1 101 Switching\r\n",
    b"Content-Encoding: gzip\r\n",
    b"HEAD /h HTTP/1.1\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"CONNECT a:1 HTTP/1.1\r\n",
    b"5;x=y\r\nhello\r\n",
    b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03",
    b"Content-Encoding: deflate\r\n",
    b"POST /p?q=1 HTTP/1.0\r\n",
    b"HTTP/1.0 204 No Content\r\n\r\n",
    b"X-T: v\r\n\r\n",
    b"Content-Length: 0\r\n\r\n",
    b"x\x00GET garbage\n",
];

#[derive(Debug, Clone)]
enum Op<'a> {
    Feed(Direction, u64, &'a [u8]),
    Gap(Direction, u64),
}

fn index(d: Direction) -> usize {
    match d {
        Direction::ClientToServer => 0,
        Direction::ServerToClient => 1,
    }
}

struct Check {
    cfg: Config,
    /// End of the last event, per direction.
    end: [u64; 2],
    /// Next stream offset (bytes fed + gaps), per direction.
    next: [u64; 2],
}

impl Check {
    fn event(&mut self, e: &Ev) {
        let (dir, a, b) = match e {
            Ev::Skipped(d, o, l, _) => {
                assert!(*l > 0, "empty skip");
                (*d, *o, o + l)
            }
            Ev::Request(m) | Ev::Response(m, _) => {
                assert!(m.body.len() <= self.cfg.max_body, "body over the cap");
                assert!(m.stream_offset < m.end_offset, "empty message");
                assert!(
                    m.wire_body_len < m.end_offset - m.stream_offset,
                    "body longer than the message"
                );
                assert_eq!(matches!(e, Ev::Request(_)), m.is_request(), "kind");
                if let Ev::Response(_, Some(r)) = e {
                    assert!(r.is_request(), "paired with a response");
                }
                (m.dir, m.stream_offset, m.end_offset)
            }
        };
        let i = index(dir);
        assert!(
            a >= self.end[i],
            "event goes back: {e:?}, previous end {}",
            self.end[i]
        );
        assert!(
            b <= self.next[i],
            "event beyond the fed bytes: {e:?}, next {}",
            self.next[i]
        );
        self.end[i] = b;
    }
}

/// Runs the operations (each feed split into 1-byte feeds when `bytes`),
/// checking every event as it comes.
fn run(cfg: Config, ops: &[Op<'_>], bytes: bool) -> Vec<Ev> {
    let mut conn = Conn::new(cfg);
    let mut check = Check {
        cfg,
        end: [0; 2],
        next: [0; 2],
    };
    let mut evs = Vec::new();
    for (k, op) in ops.iter().enumerate() {
        let ts = Timestamp::new(k as i64, 0, 6);
        match *op {
            Op::Feed(dir, off, b) => {
                let i = index(dir);
                check.next[i] = check.next[i].max(off + b.len() as u64);
                let mut out = |e: HttpEvent<'_>| {
                    let e = e.to_owned_event();
                    check.event(&e);
                    evs.push(e);
                };
                if bytes {
                    for (j, x) in b.iter().enumerate() {
                        conn.feed(dir, off + j as u64, std::slice::from_ref(x), ts, &mut out);
                    }
                } else {
                    conn.feed(dir, off, b, ts, &mut out);
                }
            }
            Op::Gap(dir, n) => {
                check.next[index(dir)] += n;
                conn.gap(dir, n, &mut |e| {
                    let e = e.to_owned_event();
                    check.event(&e);
                    evs.push(e);
                });
            }
        }
    }
    conn.finish(&mut |e| {
        let e = e.to_owned_event();
        check.event(&e);
        evs.push(e);
    });
    evs
}

/// The input after the config byte.
fn rest_all(data: &[u8]) -> &[u8] {
    data.get(1..).unwrap_or_default()
}

/// The one-message parser on `b`.
fn one_message(b: &[u8], max_head: usize, max_body: usize) {
    let limits = Limits {
        max_head,
        max_body,
        ..Limits::default()
    };
    for kind in [Kind::Request, Kind::Response, Kind::Either] {
        for eof in [false, true] {
            if let Parse::Complete(m, n) = message::parse(b, kind, &limits, eof) {
                assert!(
                    n <= b.len() && m.end_offset() == n,
                    "message beyond its input"
                );
                assert!(m.body.len() <= max_body, "body over the cap");
                assert!(m.body_offset <= max_head, "head over the cap");
                if m.complete {
                    let again = message::parse(&b[..n], kind, &limits, eof);
                    assert_eq!(
                        again,
                        Parse::Complete(m, n),
                        "not the same from its own bytes"
                    );
                }
            }
        }
    }
    if let Ok(msgs) = message::split(b, &limits) {
        for m in msgs {
            assert!(m.end_offset() <= b.len(), "split beyond its input");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&c, mut rest)) = data.split_first() else {
        return;
    };
    let cfg = Config {
        max_head: [64 << 10, 16, 64, 300][usize::from(c & 3)],
        max_body: [16 << 20, 0, 8, 100][usize::from(c >> 2 & 3)],
        max_pending: [64, 1, 2, 8][usize::from(c >> 4 & 3)],
    };
    let mut next = [0u64; 2];
    let mut ops = Vec::new();
    while let Some((&op, r)) = rest.split_first() {
        rest = r;
        let dir = if op & 1 == 0 {
            Direction::ClientToServer
        } else {
            Direction::ServerToClient
        };
        let i = index(dir);
        let take_n = |rest: &mut &[u8]| {
            let (n, r) = rest.split_first().map_or((0, &[][..]), |(&n, r)| (n, r));
            *rest = r;
            usize::from(n)
        };
        match op >> 1 & 3 {
            0 | 3 => {
                let mut n = take_n(&mut rest);
                if op >> 1 & 3 == 0 && op & 8 != 0 {
                    n *= 16;
                }
                let n = n.min(rest.len());
                let (b, r) = rest.split_at(n);
                rest = r;
                let off = if op >> 1 & 3 == 3 {
                    next[i].saturating_sub(u64::from(op >> 3 & 15))
                } else {
                    next[i]
                };
                next[i] = next[i].max(off + n as u64);
                ops.push(Op::Feed(dir, off, b));
            }
            1 => {
                let b = SNIPPETS[usize::from(op >> 3) % SNIPPETS.len()];
                ops.push(Op::Feed(dir, next[i], b));
                next[i] += b.len() as u64;
            }
            _ => {
                let n = take_n(&mut rest) as u64 + 1;
                ops.push(Op::Gap(dir, n));
                next[i] += n;
            }
        }
    }
    one_message(rest_all(data), cfg.max_head, cfg.max_body);
    let whole = run(cfg, &ops, false);
    let bytes = run(cfg, &ops, true);
    assert_eq!(whole, bytes, "1-byte feeds differ");
});
