//! `proto::h2::Conn` over two directions fed chunk by chunk, with an
//! optional gap. Checked:
//!
//! * per direction, frames come out in stream order (each at or after the
//!   end of the one before) and inside what was fed;
//! * bodies are never longer than `max_body`; requests are requests and
//!   responses responses;
//! * without a gap, the same bytes fed 1 byte at a time give the same
//!   frames, exchanges and anomalies (the chunking does not matter).
//!
//! Input layout: a config byte (bits 0-2: chunk pattern length - 1; bit 3:
//! a gap in the server's direction after its first chunk; bit 4: a 16-byte
//! body cap and a 2-stream cap), the chunk pattern (one byte per chunk:
//! length `(p & 0x3f) + 1`), two bytes (big-endian) saying how many of the
//! rest are the client's, then the client's bytes and the server's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syncscope::capture::Timestamp;
use syncscope::flow::Direction::{self, ClientToServer as C2S, ServerToClient as S2C};
use syncscope::proto::h2::{Config, Conn, H2Event};
use syncscope::proto::http::{HttpEvent, OwnedHttpEvent};

#[derive(Debug, PartialEq)]
enum Seen {
    Frame(Direction, u64, u32, String),
    Http(OwnedHttpEvent),
    Anomaly(Direction, u64, String),
}

fn run(cfg: Config, c: &[u8], s: &[u8], pattern: &[u8], gap: bool) -> Vec<Seen> {
    let mut conn = Conn::new(cfg);
    let mut seen = Vec::new();
    let ts = Timestamp::default();
    let mut ends = [0u64; 2];
    let mut fed = [0u64; 2];
    for (dir, bytes) in [(C2S, c), (S2C, s)] {
        let d = dir as usize;
        let (mut at, mut i) = (0usize, 0usize);
        while at < bytes.len() {
            let len = (usize::from(pattern[i % pattern.len()] & 0x3f) + 1).min(bytes.len() - at);
            fed[d] += len as u64;
            let limit = fed[d];
            conn.feed(
                dir,
                limit - len as u64,
                &bytes[at..at + len],
                ts,
                &mut |ev| check(&mut seen, &mut ends, cfg, ev, limit),
            );
            at += len;
            if gap && dir == S2C && i == 0 {
                conn.gap(S2C, 7, &mut |ev| {
                    check(&mut seen, &mut ends, cfg, ev, u64::MAX)
                });
                fed[d] += 7;
            }
            i += 1;
        }
    }
    conn.finish(&mut |ev| check(&mut seen, &mut ends, cfg, ev, u64::MAX));
    seen
}

fn check(seen: &mut Vec<Seen>, ends: &mut [u64; 2], cfg: Config, ev: H2Event<'_>, limit: u64) {
    match ev {
        H2Event::Frame { dir, info, .. } => {
            let d = dir as usize;
            assert!(info.stream_offset >= ends[d], "frames in order");
            ends[d] = info.stream_offset + 9 + u64::from(info.len);
            assert!(ends[d] <= limit, "a frame inside the bytes fed");
            seen.push(Seen::Frame(
                dir,
                info.stream_offset,
                info.len,
                info.typ.to_owned(),
            ));
        }
        H2Event::Http(e) => {
            match e {
                HttpEvent::Request(m) | HttpEvent::Unanswered(m) => {
                    assert!(m.is_request());
                    assert!(m.body.len() <= cfg.max_body);
                }
                HttpEvent::Response { response, request } => {
                    assert!(!response.is_request());
                    assert!(response.body.len() <= cfg.max_body);
                    assert!(request.is_none_or(|r| r.is_request()));
                }
                HttpEvent::Skipped { .. } => panic!("h2 skips are anomalies"),
            }
            seen.push(Seen::Http(e.to_owned_event()));
        }
        H2Event::Anomaly { dir, offset, what } => seen.push(Seen::Anomaly(dir, offset, what)),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(cfg & 7) + 1;
    if rest.len() < n + 2 {
        return;
    }
    let (pattern, rest) = rest.split_at(n);
    let split = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
    let (c, s) = rest[2..].split_at(split);
    let gap = cfg & 8 != 0;
    let conf = if cfg & 16 != 0 {
        Config {
            max_body: 16,
            max_header_block: 64,
            max_streams: 2,
        }
    } else {
        Config::default()
    };
    let seen = run(conf, c, s, pattern, gap);
    if !gap {
        assert_eq!(
            run(conf, c, s, &[0], false),
            seen,
            "chunking changed the events"
        );
    }
});
