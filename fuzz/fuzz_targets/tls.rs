//! The TLS layer: record splitter, handshake messages, hellos, alerts, the
//! NSS key log parser and record protection.
//!
//! Input layout: a config byte (bits 0-2: chunk pattern length - 1; bit 3:
//! a gap after the first chunk), the chunk pattern (one byte per chunk:
//! length `(p & 0x3f) + 1`), then the stream. Checked: records are
//! numbered 0, 1, 2..., lie inside the fed bytes, are exactly their
//! header's length and never overlap; without a gap, records plus skipped
//! bytes are exactly the bytes fed. Every record's payload goes through the
//! handshake joiner, the hello parsers and the alert names; the input as
//! text through the key-log parsers; a protection built from the hellos (and
//! a key log made from the input) opens the records: none may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syncscope::proto::keylog::KeyLog;
use syncscope::proto::tls::{self, hello, HandshakeBuf, HelloFacts, Output, Protection, Splitter};

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(cfg & 7) + 1;
    if rest.len() < n {
        return;
    }
    let (pattern, stream) = rest.split_at(n);
    let gap = cfg & 8 != 0;
    let text = String::from_utf8_lossy(data);
    let _ = KeyLog::parse(&text);
    let nss = tls::NssKeyLog::parse(&text).ok();

    let mut s = Splitter::new();
    let mut records: Vec<(u64, u64, Vec<u8>)> = Vec::new();
    let mut skipped = 0u64;
    let mut next_index = 0;
    let mut at = 0usize;
    let mut offset = 0u64;
    let mut i = 0;
    let mut out = |o: Output<'_>| match o {
        Output::Record(r) => {
            assert_eq!(r.index, next_index);
            next_index += 1;
            assert_eq!(
                r.raw.len(),
                tls::record_len(r.raw).expect("a plausible header")
            );
            records.push((r.stream_offset, r.raw.len() as u64, r.raw.to_vec()));
        }
        Output::Skipped { len, .. } => skipped += len,
    };
    while at < stream.len() {
        let len = (usize::from(pattern[i % n] & 0x3f) + 1).min(stream.len() - at);
        s.feed(offset, &stream[at..at + len], &mut out);
        at += len;
        offset += len as u64;
        if gap && i == 0 {
            s.gap(3, &mut out);
            offset += 3;
        }
        i += 1;
    }
    s.finish(&mut out);
    let mut end = 0;
    for (o, l, _) in &records {
        assert!(*o >= end, "records overlap");
        end = o + l;
        assert!(end <= offset);
    }
    if !gap {
        let total: u64 = records.iter().map(|r| r.1).sum::<u64>() + skipped;
        assert_eq!(total, stream.len() as u64);
    }

    let mut facts = HelloFacts::default();
    let mut hs = [HandshakeBuf::default(), HandshakeBuf::default()];
    for (k, (_, _, raw)) in records.iter().enumerate() {
        let payload = &raw[tls::HEADER_LEN..];
        let _ = tls::alert_text(payload);
        for m in hs[k % 2].push(payload) {
            match m.typ {
                hello::CLIENT_HELLO => {
                    facts.client_hello(m.body());
                }
                hello::SERVER_HELLO => {
                    facts.server_hello(m.body());
                }
                _ => {
                    let _ = hello::encrypted_extensions_alpn(m.body());
                }
            }
        }
    }
    if let Ok(mut p) = Protection::new(&facts, nss.as_ref()) {
        for (k, (_, _, raw)) in records.iter().enumerate() {
            let from_client = k % 2 == 0;
            if k % 5 == 4 {
                p.change_cipher_spec(from_client);
                p.key_update(!from_client);
                p.to_application(from_client);
            }
            let _ = p.open(
                from_client,
                &raw[..tls::HEADER_LEN],
                &raw[tls::HEADER_LEN..],
            );
        }
    }
});
