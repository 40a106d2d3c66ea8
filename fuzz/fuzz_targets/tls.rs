//! The TLS layer: record splitter, handshake messages, hellos, alerts, the
//! key-log parsers and record protection, on both directions of one
//! connection and a key log.
//!
//! Input layout: a config byte (bits 0-2: chunk pattern length - 1; bit 3:
//! a 3-byte gap in the server's direction after the pattern's last chunk,
//! told to the protection before the first record after it), the chunk
//! pattern (one byte per chunk: length `(p & 0x3f) + 1`; for the k-th record
//! of a direction, bit 6 of `pattern[k % len]` calls `key_update` and bit 7
//! `to_application` on that direction before the record is opened), two
//! bytes (big-endian) giving the key log's length, the key log (text),
//! two bytes (big-endian) giving how many of the rest are the client's,
//! then the client's bytes and the server's.
//!
//! Checked: per direction, records are numbered 0, 1, 2..., lie inside the
//! fed bytes, are exactly their header's length and never overlap; without
//! a gap, records plus skipped bytes are exactly the bytes fed. The key log
//! goes through `KeyLog::parse` (both formats, as `--keylog` reads it) and
//! `NssKeyLog::parse`. The plaintext records go through the handshake
//! joiner, the hello parsers and the alert names; a `Protection` from the
//! hellos and the key log then opens each direction's records as the
//! analyzer does (a ChangeCipherSpec switches a TLS 1.2 direction;
//! application data, and TLS 1.2 records after the switch, are opened), and
//! what it opens goes through the handshake joiner, the ALPN reader and the
//! alert names: an opened record is never longer than the record, and says
//! the key-log line of the connection; nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syncscope::proto::keylog::KeyLog;
use syncscope::proto::tls::{self, hello, HandshakeBuf, HelloFacts, Output, Protection, Splitter};

struct Rec {
    content_type: u8,
    raw: Vec<u8>,
    /// The record came after the gap.
    after_gap: bool,
}

/// Splits one direction's bytes, fed by the chunk pattern (and a 3-byte gap
/// after the pattern's last chunk when `gap`), checking the records.
fn split(bytes: &[u8], pattern: &[u8], gap: bool) -> Vec<Rec> {
    let mut s = Splitter::new();
    let mut records: Vec<(u64, Rec)> = Vec::new();
    // Where the gap is (after the pattern's last chunk), when there is one.
    let gap_at = if gap {
        let first: usize = pattern.iter().map(|&p| usize::from(p & 0x3f) + 1).sum();
        first.min(bytes.len()) as u64
    } else {
        u64::MAX
    };
    let mut skipped = 0u64;
    let mut next_index = 0;
    let mut out = |o: Output<'_>| match o {
        Output::Record(r) => {
            assert_eq!(r.index, next_index);
            next_index += 1;
            assert_eq!(
                r.raw.len(),
                tls::record_len(r.raw).expect("a plausible header")
            );
            assert_eq!(r.raw[0], r.content_type);
            records.push((
                r.stream_offset,
                Rec {
                    content_type: r.content_type,
                    raw: r.raw.to_vec(),
                    after_gap: r.stream_offset >= gap_at,
                },
            ));
        }
        Output::Skipped { len, .. } => skipped += len,
    };
    let (mut at, mut offset, mut i) = (0usize, 0u64, 0usize);
    while at < bytes.len() {
        let len = (usize::from(pattern[i % pattern.len()] & 0x3f) + 1).min(bytes.len() - at);
        s.feed(offset, &bytes[at..at + len], &mut out);
        at += len;
        offset += len as u64;
        if gap && i + 1 == pattern.len() {
            s.gap(3, &mut out);
            offset += 3;
        }
        i += 1;
    }
    s.finish(&mut out);
    let mut end = 0;
    for (o, r) in &records {
        assert!(*o >= end, "records overlap");
        end = o + r.raw.len() as u64;
        assert!(end <= offset, "a record past the bytes fed");
    }
    if !gap {
        let total = records.iter().map(|(_, r)| r.raw.len() as u64).sum::<u64>() + skipped;
        assert_eq!(total, bytes.len() as u64);
    }
    records.into_iter().map(|(_, r)| r).collect()
}

/// Handshake messages: hellos into `facts` (when `facts` is given), the
/// rest through the ALPN reader.
fn handshake(hs: &mut HandshakeBuf, bytes: &[u8], facts: Option<&mut HelloFacts>) {
    let mut facts = facts;
    for m in hs.push(bytes) {
        match (m.typ, facts.as_deref_mut()) {
            (hello::CLIENT_HELLO, Some(f)) => {
                f.client_hello(m.body());
            }
            (hello::SERVER_HELLO, Some(f)) => {
                f.server_hello(m.body());
            }
            _ => {
                let _ = hello::encrypted_extensions_alpn(m.body());
            }
        }
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
    let gap = cfg & 8 != 0;
    let log_len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
    let (log, rest) = rest[2..].split_at(log_len);
    let text = String::from_utf8_lossy(log);
    let keylog = KeyLog::parse(&text).ok();
    let _ = tls::NssKeyLog::parse(&text);
    if rest.len() < 2 {
        return;
    }
    let split_at = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
    let (c, s) = rest[2..].split_at(split_at);
    let dirs = [split(c, pattern, false), split(s, pattern, gap)];

    // The plaintext handshake: the hellos.
    let mut facts = HelloFacts::default();
    for recs in &dirs {
        let mut hs = HandshakeBuf::default();
        for r in recs {
            let payload = &r.raw[tls::HEADER_LEN..];
            match r.content_type {
                tls::HANDSHAKE => handshake(&mut hs, payload, Some(&mut facts)),
                tls::ALERT => {
                    let _ = tls::alert_text(payload);
                }
                tls::CHANGE_CIPHER_SPEC => break,
                _ => {}
            }
        }
    }

    // The protected records, opened per direction as the analyzer does.
    let Ok(mut p) = Protection::new(&facts, keylog.as_ref().and_then(KeyLog::nss)) else {
        return;
    };
    let line = p.line();
    for (d, recs) in dirs.iter().enumerate() {
        let from_client = d == 0;
        let mut ccs = false;
        let mut hs = HandshakeBuf::default();
        let mut gap_said = false;
        for (k, r) in recs.iter().enumerate() {
            if r.after_gap && !gap_said {
                // As the analyzer does: records were lost.
                gap_said = true;
                p.gap(from_client);
            }
            let bits = pattern[k % n];
            if bits & 0x40 != 0 {
                p.key_update(from_client);
            }
            if bits & 0x80 != 0 {
                p.to_application(from_client);
            }
            if r.content_type == tls::CHANGE_CIPHER_SPEC {
                ccs = true;
                if !p.is_tls13() {
                    p.change_cipher_spec(from_client);
                }
                continue;
            }
            let protected = r.content_type == tls::APPLICATION_DATA || (ccs && !p.is_tls13());
            if !protected {
                continue;
            }
            let (header, payload) = r.raw.split_at(tls::HEADER_LEN);
            let Ok(o) = p.open(from_client, header, payload) else {
                continue;
            };
            assert!(
                o.plaintext.len() <= payload.len(),
                "opened longer than sealed"
            );
            assert_eq!(o.line, line);
            match o.content_type {
                tls::HANDSHAKE => handshake(&mut hs, &o.plaintext, None),
                tls::ALERT => {
                    let _ = tls::alert_text(&o.plaintext);
                }
                _ => {}
            }
        }
    }
});
