//! MMTLS unit tests: record header, detection, hellos, the splitter.

use super::*;

/// The real ServerHello record of conn 7 (s2c), 51 bytes.
const SERVER_HELLO: &str = "16f104002e0000002a0204f100a820cbbe3fc158efacc09c63246b7efcb99d21\
                            e402cb8b3eecf62936f304e0dd6d0000000100";
/// The 7-byte plaintext alert of conn 5.
const ALERT: &[u8] = &[0x15, 0xf1, 0x04, 0x00, 0x07, 0, 0, 0, 3, 0, 0x73, 0x02];

fn client_hello() -> Vec<u8> {
    // Start of conn 7's ClientHello (0x19), cut after the timestamp and
    // re-lengthed so the record is self-consistent.
    let mut p = hex::decode(
        "0104f10100a84f6776fbb4668f2a36bb557494c40ccdc8bbf44441b024d88ec48629cc35e21b656e783c",
    )
    .unwrap();
    p.extend_from_slice(&[0xaa, 0xbb]);
    let mut payload = (p.len() as u32).to_be_bytes().to_vec();
    payload.extend_from_slice(&p);
    let mut r = vec![0x19, 0xf1, 0x04];
    r.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    r.extend_from_slice(&payload);
    r
}

#[test]
fn header_parse_and_emit() {
    let h = RecordHeader::parse(&[0x17, 0xf1, 0x04, 0x01, 0x50])
        .unwrap()
        .unwrap();
    assert_eq!(h.typ, RecordType::DATA);
    assert_eq!(h.version, VERSION_F104);
    assert_eq!(h.len, 0x150);
    assert_eq!(h.record_len(), 0x155);
    assert_eq!(h.emit(), [0x17, 0xf1, 0x04, 0x01, 0x50]);
    assert_eq!(RecordHeader::parse(&[0x17, 0xf1]).unwrap(), None);
    assert_eq!(
        RecordHeader::parse(b"POST /"),
        Err(MmtlsError::BadVersion {
            offset: 1,
            version: 0x4f53
        })
    );
    // Unknown type is representable.
    let h = RecordHeader::parse(&[0x42, 0xf1, 0x04, 0, 0])
        .unwrap()
        .unwrap();
    assert_eq!(h.typ.name(), None);
    assert_eq!(h.typ.to_string(), "0x42 (unknown)");
    assert_eq!(RecordType(0x19).name(), Some("handshake_resumption"));
}

#[test]
fn detection() {
    assert!(looks_like_record(&[0x16, 0xf1, 0x04, 0x00, 0xa1]));
    assert!(looks_like_record(&[0x19, 0xf1, 0x03]));
    assert!(!looks_like_record(&[0x18, 0xf1, 0x04, 0, 0]));
    assert!(!looks_like_record(&[0x16, 0xf1, 0x05, 0, 0]));
    assert!(!looks_like_record(&[0x16, 0xf1]));
    assert!(!looks_like_record(b"GET / HTTP/1.1"));
}

#[test]
fn hellos() {
    let sh = hex::decode(SERVER_HELLO).unwrap();
    let h = RecordHeader::parse(&sh).unwrap().unwrap();
    assert_eq!(h.record_len(), sh.len());
    assert!(is_cleartext(h.typ, &sh[5..]));
    match parse_hello(&sh[5..]).unwrap() {
        Hello::ServerHello(s) => {
            assert_eq!(s.cipher_suite, 0x00a8);
            assert_eq!(s.version, 0x04f1);
            assert_eq!(
                hex::encode(s.random),
                "20cbbe3fc158efacc09c63246b7efcb99d21e402cb8b3eecf62936f304e0dd6d"
            );
        }
        other => panic!("{other:?}"),
    }
    let ch = client_hello();
    assert!(is_cleartext(RecordType::RESUMPTION_HANDSHAKE, &ch[5..]));
    match parse_hello(&ch[5..]).unwrap() {
        Hello::ClientHello(c) => {
            assert_eq!(c.cipher_suites, vec![0x00a8]);
            assert_eq!(c.timestamp, 1701738556);
            assert_eq!(&c.random[..4], &[0x4f, 0x67, 0x76, 0xfb]);
            assert_eq!(c.extensions_offset, ch.len() - 5 - 2);
        }
        other => panic!("{other:?}"),
    }
    assert!(is_cleartext(RecordType::ALERT, &ALERT[5..]));
    // An encrypted-looking payload is not cleartext.
    assert!(!is_cleartext(RecordType::DATA, &[0x55; 40]));
    assert_eq!(
        handshake_type(&[0, 0, 0, 2, 20, 0]),
        Some(HandshakeType(20))
    );
    assert_eq!(HandshakeType(20).name(), Some("finished"));
    assert_eq!(handshake_type(&[0, 0, 0, 9, 20, 0]), None);
}

#[test]
fn hello_prefixes_never_panic() {
    let sh = hex::decode(SERVER_HELLO).unwrap();
    let ch = client_hello();
    for rec in [&sh, &ch] {
        for n in 0..rec.len() {
            let _ = RecordHeader::parse(&rec[..n]);
            let _ = parse_hello(&rec[5.min(n)..n]);
            let _ = is_cleartext(RecordType::HANDSHAKE, &rec[5.min(n)..n]);
            let _ = handshake_type(&rec[..n]);
            let _ = looks_like_record(&rec[..n]);
        }
    }
}

fn stream() -> Vec<u8> {
    let mut s = client_hello();
    s.extend_from_slice(&hex::decode(SERVER_HELLO).unwrap());
    s.extend_from_slice(ALERT);
    let mut big = vec![0x17, 0xf1, 0x04, 0x03, 0x00];
    big.extend((0..0x300u32).map(|i| i as u8));
    s.extend_from_slice(&big);
    s
}

/// (index, stream offset, raw) of each record.
type Recs = Vec<(u64, u64, Vec<u8>)>;

fn collect(sp: &mut Splitter, chunks: &[(u64, &[u8])]) -> (Recs, Vec<Skipped>) {
    let mut recs = Vec::new();
    let mut skips = Vec::new();
    let mut out = |o: Output<'_>| match o {
        Output::Record(r) => recs.push((r.index, r.stream_offset, r.raw.to_vec())),
        Output::Skipped(s) => skips.push(s),
    };
    for (off, c) in chunks {
        sp.feed_with(*off, c, &mut out);
    }
    sp.finish(&mut out);
    (recs, skips)
}

#[test]
fn splitter_borrows_whole_records_and_assembles_split_ones() {
    let s = stream();
    let (whole, skips) = collect(&mut Splitter::new(), &[(100, &s)]);
    assert!(skips.is_empty());
    assert_eq!(whole.len(), 4);
    assert_eq!(whole[0].1, 100);
    assert_eq!(whole.iter().map(|r| r.2.len()).sum::<usize>(), s.len());
    // Every chunking gives the same records.
    for size in [1, 2, 3, 4, 5, 6, 7, 13, 50, 51, 52, 777] {
        let chunks: Vec<(u64, &[u8])> = s
            .chunks(size)
            .enumerate()
            .map(|(i, c)| (100 + (i * size) as u64, c))
            .collect();
        let mut sp = Splitter::new();
        let (recs, skips) = collect(&mut sp, &chunks);
        assert_eq!(recs, whole, "chunk size {size}");
        assert!(skips.is_empty());
        assert_eq!(sp.stats().records, 4);
    }
    // Whole-buffer helper agrees.
    let (recs, skips) = split_all(100, &s);
    assert!(skips.is_empty());
    let recs: Vec<_> = recs
        .iter()
        .map(|r| (r.index, r.stream_offset, r.raw.to_vec()))
        .collect();
    assert_eq!(recs, whole);
}

#[test]
fn splitter_resyncs_after_gap_and_garbage() {
    let s = stream();
    let sh_start = client_hello().len();
    // Lose 10 bytes inside the ClientHello: its header is known, so the
    // splitter skips to the ServerHello exactly.
    let mut sp = Splitter::new();
    let (recs, skips) = {
        let mut recs = Vec::new();
        let mut skips = Vec::new();
        let mut out = |o: Output<'_>| match o {
            Output::Record(r) => recs.push(r.stream_offset),
            Output::Skipped(s) => skips.push(s),
        };
        sp.feed_with(0, &s[..20], &mut out);
        sp.gap(10);
        sp.feed_with(30, &s[30..], &mut out);
        sp.finish(&mut out);
        (recs, skips)
    };
    assert_eq!(
        recs,
        vec![sh_start as u64, sh_start as u64 + 51, sh_start as u64 + 63]
    );
    assert_eq!(skips.len(), 1);
    assert_eq!(skips[0].reason, SkipReason::CutByGap);
    assert_eq!(skips[0].len, 20);
    // Garbage in front: scanned over and reported, in every chunking.
    let mut g = b"xx\x17\xf1zzgarbage\x16".to_vec();
    let glen = g.len() as u64;
    g.extend_from_slice(&s);
    for size in [1, 2, 3, 5, 1000] {
        let chunks: Vec<(u64, &[u8])> = g
            .chunks(size)
            .enumerate()
            .map(|(i, c)| ((i * size) as u64, c))
            .collect();
        let (recs, skips) = collect(&mut Splitter::new(), &chunks);
        assert_eq!(recs.len(), 4, "size {size}");
        assert_eq!(recs[0].1, glen);
        assert_eq!(skips.len(), 1, "size {size}: {skips:?}");
        assert_eq!((skips[0].stream_offset, skips[0].len), (0, glen));
        assert_eq!(skips[0].reason, SkipReason::Resync);
    }
}

#[test]
fn splitter_caps_record_size() {
    let s = stream();
    for size in [1, 7, 100, 10_000] {
        let chunks: Vec<(u64, &[u8])> = s
            .chunks(size)
            .enumerate()
            .map(|(i, c)| ((i * size) as u64, c))
            .collect();
        let mut sp = Splitter::with_max_record(200);
        let (recs, skips) = collect(&mut sp, &chunks);
        assert_eq!(recs.len(), 3, "size {size}");
        assert_eq!(skips.len(), 1);
        assert_eq!(skips[0].reason, SkipReason::Oversize);
        assert_eq!(skips[0].len, 0x305);
        assert!(sp.buffered() == 0);
    }
}

#[test]
fn splitter_every_prefix_and_split_point() {
    let s = stream();
    for n in 0..=s.len() {
        let (recs, skips) = collect(&mut Splitter::new(), &[(0, &s[..n])]);
        let seen: usize = recs.iter().map(|r| r.2.len()).sum::<usize>()
            + skips.iter().map(|k| k.len as usize).sum::<usize>();
        assert_eq!(seen, n, "prefix {n}");
        let (recs2, _) = split_all(0, &s[..n]);
        assert_eq!(recs2.len(), recs.len());
    }
    for cut in 0..=s.len() {
        let (a, b) = s.split_at(cut);
        let (recs, skips) = collect(&mut Splitter::new(), &[(0, a), (cut as u64, b)]);
        assert_eq!(recs.len(), 4, "cut {cut}");
        assert!(skips.is_empty());
    }
    // Gaps at every position never panic and never lose sync for good.
    for at in 0..s.len() {
        for len in [1u64, 5, 60] {
            let mut sp = Splitter::new();
            let mut n = 0;
            let mut out = |o: Output<'_>| {
                if let Output::Record(_) = o {
                    n += 1
                }
            };
            sp.feed_with(0, &s[..at], &mut out);
            sp.gap(len);
            let resume = (at as u64 + len).min(s.len() as u64) as usize;
            sp.feed_with(resume as u64, &s[resume..], &mut out);
            sp.finish(&mut out);
            assert!(n <= 4);
        }
    }
}

#[test]
fn splitter_random_bytes_never_panic() {
    // Deterministic pseudo-random input (xorshift), fed in odd chunks.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut data = Vec::new();
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = (x >> 24) as u8;
        // Bias towards header-like bytes.
        data.push(match b % 7 {
            0 => 0xf1,
            1 => 0x17,
            2 => 0x04,
            _ => b,
        });
    }
    let mut sp = Splitter::with_max_record(1000);
    let mut total = 0u64;
    let mut off = 0u64;
    for (i, c) in data.chunks(97).enumerate() {
        if i % 11 == 5 {
            sp.gap(3);
            off += 3;
            continue;
        }
        sp.feed_with(off, c, &mut |o| {
            if let Output::Record(r) = o {
                total += r.raw.len() as u64;
                assert_eq!(r.raw.len(), r.header.record_len());
            }
        });
        off += c.len() as u64;
    }
    assert!(sp.buffered() <= 1000);
    assert!(total <= data.len() as u64);
}

mod props {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::super::*;

    fn build(spec: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let mut s = Vec::new();
        for (t, p) in spec {
            s.extend_from_slice(
                &RecordHeader {
                    typ: RecordType(*t),
                    version: VERSION_F104,
                    len: p.len() as u16,
                }
                .emit(),
            );
            s.extend_from_slice(p);
        }
        s
    }

    fn chunked(s: &[u8], cuts: &[usize]) -> Vec<(u64, Vec<u8>)> {
        let mut sp = Splitter::new();
        let mut out = Vec::new();
        let mut at = 0;
        let mut k = 0;
        while at < s.len() {
            let n = cuts[k % cuts.len()].min(s.len() - at);
            sp.feed(at as u64, &s[at..at + n], &mut |r| {
                out.push((r.stream_offset, r.raw.to_vec()))
            });
            at += n;
            k += 1;
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn any_chunking_gives_the_records_emitted(
            spec in vec((prop::sample::select(vec![0x15u8, 0x16, 0x17, 0x19, 0x42]),
                         vec(any::<u8>(), 0..300)), 0..8),
            cuts in vec(1usize..400, 1..20),
        ) {
            let s = build(&spec);
            let (whole, skips) = split_all(0, &s);
            prop_assert!(skips.is_empty());
            prop_assert_eq!(whole.len(), spec.len());
            for (r, (t, p)) in whole.iter().zip(&spec) {
                prop_assert_eq!(r.header.typ.0, *t);
                prop_assert_eq!(r.payload(), &p[..]);
            }
            let whole: Vec<_> = whole.iter().map(|r| (r.stream_offset, r.raw.to_vec())).collect();
            prop_assert_eq!(chunked(&s, &cuts), whole);
        }

        #[test]
        fn arbitrary_input_never_panics_and_stays_bounded(
            data in vec(any::<u8>(), 0..3000),
            cuts in vec(1usize..300, 1..10),
            gaps in vec(0u64..70, 0..6),
            cap in 5usize..400,
        ) {
            let mut sp = Splitter::with_max_record(cap);
            let (mut at, mut k) = (0usize, 0usize);
            let mut seen = 0u64;
            let mut delivered = 0u64;
            while at < data.len() {
                let n = cuts[k % cuts.len()].min(data.len() - at);
                delivered += n as u64;
                sp.feed_with(at as u64, &data[at..at + n], &mut |o| match o {
                    Output::Record(r) => {
                        assert!(r.raw.len() <= cap);
                        assert_eq!(r.raw.len(), r.header.record_len());
                        seen += r.raw.len() as u64;
                    }
                    Output::Skipped(s) if s.reason == SkipReason::Oversize => {
                        assert!(s.len as usize > cap)
                    }
                    Output::Skipped(s) => seen += s.len,
                });
                prop_assert!(sp.buffered() <= cap);
                at += n;
                if let Some(g) = gaps.get(k) {
                    sp.gap(*g);
                    at += *g as usize;
                }
                k += 1;
            }
            sp.finish(&mut |o| if let Output::Skipped(s) = o { seen += s.len });
            // Records + skips never exceed what was delivered, and the
            // counters account for every delivered byte exactly once.
            prop_assert!(seen <= delivered);
            let st = sp.stats().clone();
            prop_assert_eq!(st.record_bytes + st.skipped_bytes, delivered, "{:?}", st);
            prop_assert_eq!(sp.buffered(), 0);
            let _ = parse_hello(&data);
            let _ = RecordHeader::parse(&data);
        }
    }
}

/// The fuzzer's finding: `00 16 f1 04` gives the same skips whether it
/// arrives in one chunk or as `00` then `16 f1 04`.
#[test]
fn skips_at_the_end_do_not_depend_on_chunking() {
    let data = [0x00, 0x16, 0xf1, 0x04];
    let run = |cuts: &[usize]| {
        let mut sp = Splitter::new();
        let mut out = Vec::new();
        let mut at = 0;
        for &c in cuts.iter().chain([data.len()].iter()) {
            sp.feed_with(at as u64, &data[at..c], &mut |o| out.push(format!("{o:?}")));
            at = c;
        }
        sp.finish(&mut |o| out.push(format!("{o:?}")));
        out
    };
    let whole = run(&[]);
    for cut in 1..data.len() {
        assert_eq!(run(&[cut]), whole, "cut at {cut}");
    }
    assert_eq!(run(&[1, 2, 3]), whole);
}
