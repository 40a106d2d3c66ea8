//! Reader tests: every format variant, truncation and corruption at each
//! place, gzip, buffer growth.

use super::*;
use crate::capture::pcap::tests::build;
use crate::capture::pcap::{MAGIC_MODIFIED, MAGIC_NSEC, MAGIC_USEC};
use crate::capture::pcapng::tests::W;
use std::io::Cursor;
use std::io::Write;

/// One packet, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct P {
    ts: Timestamp,
    linktype: Linktype,
    data: Vec<u8>,
    orig_len: u32,
    interface: u32,
    offset: u64,
}

/// Reads everything: packets, then the error that ended it (if any).
fn drain(mut rd: Reader) -> (Vec<P>, Option<Error>, Reader) {
    let mut out = Vec::new();
    let err = loop {
        match rd.next_packet() {
            Ok(Some(p)) => out.push(P {
                ts: p.ts,
                linktype: p.linktype,
                data: p.data.to_vec(),
                orig_len: p.orig_len,
                interface: p.interface,
                offset: p.offset,
            }),
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    // Once finished, always Ok(None).
    for _ in 0..3 {
        assert!(matches!(rd.next_packet(), Ok(None)));
    }
    (out, err, rd)
}

fn open_bytes(b: &[u8]) -> Result<Reader, Error> {
    Reader::from_read(Box::new(Cursor::new(b.to_vec())), "test")
}

fn read_bytes(b: &[u8]) -> (Vec<P>, Option<Error>, Reader) {
    drain(open_bytes(b).expect("opens"))
}

/// A source that hands out at most `chunk` bytes per read call.
struct Trickle {
    data: Vec<u8>,
    pos: usize,
    chunk: usize,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.chunk).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(b).unwrap();
    enc.finish().unwrap()
}

#[test]
fn pcap_le_be_usec_nsec() {
    for big in [false, true] {
        for (magic, nanos) in [(MAGIC_USEC, false), (MAGIC_NSEC, true)] {
            let f = build(
                big,
                magic,
                113,
                &[(10, 20, b"abc", 3), (11, 999, b"defgh", 1500)],
            );
            let (pk, err, rd) = read_bytes(&f);
            assert!(err.is_none(), "{err:?}");
            assert_eq!(
                rd.format(),
                &Format::Pcap {
                    big_endian: big,
                    nanos,
                    modified: false,
                    linktype: Linktype::LINUX_SLL,
                    snaplen: 65535
                }
            );
            assert_eq!(rd.linktypes(), &[Linktype::LINUX_SLL]);
            assert_eq!(pk.len(), 2);
            let frac = |x: u32| if nanos { x } else { x * 1000 };
            let digits = if nanos { 9 } else { 6 };
            assert_eq!(pk[0].ts, Timestamp::new(10, frac(20), digits));
            assert_eq!(pk[1].ts, Timestamp::new(11, frac(999), digits));
            assert_eq!(pk[0].data, b"abc");
            assert_eq!(pk[1].data, b"defgh");
            assert_eq!(pk[1].orig_len, 1500);
            assert_eq!((pk[0].offset, pk[1].offset), (24, 24 + 16 + 3));
            assert_eq!(pk[0].linktype, Linktype::LINUX_SLL);
            assert_eq!(rd.stats().packets, 2);
            assert_eq!(rd.stats().bytes, f.len() as u64);
            assert!(!rd.stats().gzip);
        }
    }
}

#[test]
fn modified_pcap() {
    let f = build(false, MAGIC_MODIFIED, 1, &[(5, 6, b"0123456789", 10)]);
    let (pk, err, rd) = read_bytes(&f);
    assert!(err.is_none());
    assert!(matches!(
        rd.format(),
        Format::Pcap {
            modified: true,
            nanos: false,
            ..
        }
    ));
    assert_eq!(pk.len(), 1);
    assert_eq!(pk[0].data, b"0123456789");
    assert_eq!(pk[0].ts, Timestamp::new(5, 6000, 6));
}

/// Two sections, little- then big-endian, with IDBs at 10^-9 and 2^-20,
/// an SPB, an obsolete Packet Block and skipped blocks.
fn two_sections() -> Vec<u8> {
    let mut a = W::new(false);
    a.shb()
        .idb(1, 0, Some(9))
        .block(pcapng::BT_NRB, &[0, 0, 0, 0])
        .epb(0, 1_700_000_000_123_456_789, b"first", 60)
        .idb(101, 0, Some(0x80 | 20))
        .epb(1, (3 << 20) | (1 << 18), b"second", 6)
        .block(0x7777, b"unknown block")
        .block(pcapng::BT_CUSTOM, b"\0\0\x7e\xd9custom");
    let mut b = W::new(true);
    b.shb()
        .idb(228, 4, None)
        .spb(100, b"simple-packet")
        .pb(0, 2_000_001, b"old", 3)
        .block(pcapng::BT_ISB, &[0; 12]);
    a.v.extend_from_slice(&b.v);
    a.v
}

#[test]
fn pcapng_two_sections_mixed_endianness() {
    let f = two_sections();
    let (pk, err, rd) = read_bytes(&f);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(rd.format(), &Format::Pcapng);
    assert_eq!(pk.len(), 4);
    assert_eq!(pk[0].ts, Timestamp::new(1_700_000_000, 123_456_789, 9));
    assert_eq!(pk[0].data, b"first");
    assert_eq!(
        (pk[0].linktype, pk[0].interface, pk[0].orig_len),
        (Linktype::ETHERNET, 0, 60)
    );
    assert_eq!(pk[1].ts, Timestamp::new(3, 250_000_000, 9));
    assert_eq!((pk[1].linktype, pk[1].interface), (Linktype::RAW, 1));
    // SPB: clipped to interface 0's snaplen (4); no timestamp.
    assert_eq!(pk[2].data, b"simp");
    assert_eq!((pk[2].orig_len, pk[2].linktype), (100, Linktype::IPV4));
    assert_eq!(pk[2].ts, Timestamp::default());
    // Obsolete Packet Block, default resolution 10^-6.
    assert_eq!(pk[3].data, b"old");
    assert_eq!(pk[3].ts, Timestamp::new(2, 1000, 6));
    let s = rd.stats();
    assert_eq!(
        (s.packets, s.sections, s.interfaces, s.skipped_blocks),
        (4, 2, 3, 4)
    );
    assert_eq!(s.bytes, f.len() as u64);
    assert_eq!(
        rd.linktypes(),
        &[Linktype::ETHERNET, Linktype::RAW, Linktype::IPV4]
    );
    // Offsets point at the blocks.
    for p in &pk {
        let t = &f[p.offset as usize..p.offset as usize + 4];
        assert!(
            t == [6, 0, 0, 0] || t == [0, 0, 0, 3] || t == [0, 0, 0, 2],
            "{t:?}"
        );
    }
}

#[test]
fn new_section_resets_interfaces() {
    let mut a = W::new(false);
    a.shb()
        .idb(1, 0, None)
        .idb(1, 0, None)
        .shb()
        .idb(1, 0, None)
        .epb(1, 0, b"x", 1);
    let (pk, err, _) = read_bytes(&a.v);
    assert!(pk.is_empty());
    let Some(Error::Corrupt { offset, reason }) = err else {
        panic!("{err:?}")
    };
    assert_eq!(offset, 28 + 20 + 20 + 28 + 20);
    assert!(reason.contains("interface 1"), "{reason}");
}

/// Bytes of a file's pcap header or first pcapng block.
fn header_len(f: &[u8]) -> usize {
    if f[..4] != [0x0a, 0x0d, 0x0d, 0x0a] {
        return 24;
    }
    let len = [f[4], f[5], f[6], f[7]];
    if f[8..12] == [0x1a, 0x2b, 0x3c, 0x4d] {
        u32::from_be_bytes(len) as usize
    } else {
        u32::from_le_bytes(len) as usize
    }
}

#[test]
fn every_prefix_is_handled() {
    let pcap = build(
        true,
        MAGIC_NSEC,
        1,
        &[(1, 2, b"abcdef", 6), (3, 4, b"g", 1)],
    );
    let files = [
        pcap,
        two_sections(),
        build(false, MAGIC_MODIFIED, 1, &[(1, 2, b"ab", 2)]),
    ];
    for f in &files {
        let (full, err, _) = read_bytes(f);
        assert!(err.is_none());
        for n in 0..f.len() {
            let prefix = &f[..n];
            let rd = match open_bytes(prefix) {
                Ok(rd) => rd,
                Err(Error::TooShort { len, .. }) => {
                    assert!(n < 4 && len == n);
                    continue;
                }
                Err(Error::Header { problem, .. }) => {
                    // Cut in the pcap file header (24 bytes) or the first
                    // Section Header Block (28 bytes and more).
                    assert!(matches!(*problem, Error::Truncated { offset: 0, .. }));
                    assert!(n < header_len(f), "prefix {n}");
                    continue;
                }
                Err(e) => panic!("prefix {n}: {e}"),
            };
            let (pk, err, rd) = drain(rd);
            assert_eq!(pk[..], full[..pk.len()], "prefix {n}");
            match err {
                // A clean end only exactly at a record/block boundary.
                None => assert_eq!(rd.stats().bytes, n as u64, "prefix {n}"),
                Some(Error::Truncated {
                    offset,
                    available,
                    needed,
                    ..
                }) => {
                    assert_eq!(offset + available, n as u64, "prefix {n}");
                    assert!(needed > available);
                }
                Some(Error::Corrupt { .. }) => {}
                Some(e) => panic!("prefix {n}: {e}"),
            }
        }
    }
}

#[test]
fn truncated_reports_record_offset() {
    let f = build(
        false,
        MAGIC_USEC,
        1,
        &[(1, 2, b"abcdef", 6), (3, 4, b"0123456789", 10)],
    );
    let cut = &f[..f.len() - 3];
    let (pk, err, rd) = read_bytes(cut);
    assert_eq!(pk.len(), 1);
    let Some(Error::Truncated {
        offset,
        what,
        needed,
        available,
    }) = err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        (offset, what, needed, available),
        (46, "pcap packet record", 26, 23)
    );
    assert_eq!(rd.stats().bytes, 46);
    // Cut inside the record header.
    let (pk, err, _) = read_bytes(&f[..50]);
    assert_eq!(pk.len(), 1);
    assert!(matches!(
        err,
        Some(Error::Truncated {
            offset: 46,
            what: "pcap record header",
            needed: 16,
            available: 4
        })
    ));
}

#[test]
fn not_capture_inputs() {
    for b in [
        &b""[..],
        b"\xa1",
        b"\xa1\xb2\xc3",
        b"<!DOCTYPE html>",
        b"\x1f\x8b",
    ] {
        match open_bytes(b) {
            Err(Error::TooShort { len, .. }) => assert_eq!(len, b.len()),
            Err(Error::NotCapture { .. }) => assert!(b.len() >= 4),
            Err(Error::Corrupt { .. }) if b == b"\x1f\x8b" => {}
            other => panic!("{b:?}: {other:?}"),
        }
    }
    let e = open_bytes(b"<!DOCTYPE html>").unwrap_err().to_string();
    assert!(
        e.starts_with("test: not a pcap or pcapng capture (magic 3c 21 44 4f;"),
        "{e}"
    );
    // A gzip of something that is not a capture.
    let e = open_bytes(&gzip(b"hello world")).unwrap_err();
    assert!(
        matches!(
            e,
            Error::NotCapture {
                magic: [b'h', b'e', b'l', b'l'],
                ..
            }
        ),
        "{e}"
    );
    // Truncated pcap header: refused when opened, naming the source.
    let f = build(false, MAGIC_USEC, 1, &[]);
    let e = open_bytes(&f[..10]).unwrap_err();
    let Error::Header { problem, .. } = &e else {
        panic!("{e:?}")
    };
    assert!(matches!(
        **problem,
        Error::Truncated {
            offset: 0,
            what: "pcap file header",
            needed: 24,
            available: 10
        }
    ));
    assert!(
        e.to_string()
            .starts_with("test: the capture is cut short at byte offset 0"),
        "{e}"
    );
    // The same for a pcapng whose first block is cut short.
    let mut w = W::new(false);
    w.shb().idb(1, 0, None);
    let e = open_bytes(&w.v[..10]).unwrap_err();
    assert!(
        matches!(&e, Error::Header { problem, .. } if matches!(**problem, Error::Truncated { offset: 0, what: "pcapng Section Header Block", .. })),
        "{e:?}"
    );
}

#[test]
fn huge_record_is_corrupt_and_big_ones_grow_the_buffer() {
    let mut f = build(false, MAGIC_USEC, 1, &[(1, 0, b"ok", 2)]);
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&3_925_868_813u32.to_le_bytes());
    f.extend_from_slice(&3_925_868_813u32.to_le_bytes());
    f.extend_from_slice(&[0; 100]);
    let (pk, err, _) = read_bytes(&f);
    assert_eq!(pk.len(), 1);
    assert!(
        matches!(err, Some(Error::Corrupt { offset: 42, .. })),
        "{err:?}"
    );

    // A 3 MiB packet (larger than the initial buffer), fed in small chunks.
    let big = vec![0x5au8; 3 << 20];
    let f = build(
        true,
        MAGIC_USEC,
        1,
        &[(1, 0, b"a", 1), (2, 0, &big, 3 << 20), (3, 0, b"b", 1)],
    );
    let rd = Reader::from_read(
        Box::new(Trickle {
            data: f.clone(),
            pos: 0,
            chunk: 70_000,
        }),
        "t",
    )
    .unwrap();
    let (pk, err, rd) = drain(rd);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(pk.len(), 3);
    assert_eq!(pk[1].data, big);
    assert_eq!(pk[2].data, b"b");
    assert!(rd.buf.len() <= 8 << 20);

    // A pcapng block claiming 200 MB with only a few bytes behind it
    // must not allocate 200 MB.
    let mut a = W::new(false);
    a.shb().idb(1, 0, None);
    a.u32(pcapng::BT_EPB).u32(200_000_000).u32(0);
    let (pk, err, rd) = read_bytes(&a.v);
    assert!(pk.is_empty());
    assert!(
        matches!(
            err,
            Some(Error::Truncated {
                offset: 48,
                needed: 200_000_000,
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(rd.buf.len(), INITIAL_BUF);
}

#[test]
fn trickled_reads_match() {
    let f = two_sections();
    let (want, _, _) = read_bytes(&f);
    for chunk in [1, 3, 7, 64] {
        let rd = Reader::from_read(
            Box::new(Trickle {
                data: f.clone(),
                pos: 0,
                chunk,
            }),
            "t",
        )
        .unwrap();
        let (got, err, _) = drain(rd);
        assert!(err.is_none());
        assert_eq!(got, want);
    }
}

#[test]
fn gzip_is_detected_and_decoded() {
    let f = two_sections();
    let (want, _, _) = read_bytes(&f);
    let (got, err, rd) = read_bytes(&gzip(&f));
    assert!(err.is_none());
    assert_eq!(got, want);
    assert!(rd.stats().gzip);
    // Two concatenated gzip members form one stream.
    let pcap = build(
        false,
        MAGIC_USEC,
        1,
        &[(1, 2, b"abcdef", 6), (3, 4, b"g", 1)],
    );
    let mut two = gzip(&pcap[..30]);
    two.extend_from_slice(&gzip(&pcap[30..]));
    let (got, err, _) = read_bytes(&two);
    assert!(err.is_none());
    assert_eq!(got.len(), 2);
    // A damaged or cut gzip stream never panics and ends with an error.
    let gz = gzip(&pcap);
    for n in 2..gz.len() {
        if let Ok(rd) = open_bytes(&gz[..n]) {
            let (_, err, _) = drain(rd);
            assert!(err.is_some() || n == gz.len(), "cut at {n}");
        }
    }
    let mut bad = gz.clone();
    for b in bad[12..].iter_mut() {
        *b ^= 0x55;
    }
    match open_bytes(&bad) {
        Ok(rd) => assert!(drain(rd).1.is_some()),
        Err(e) => assert!(matches!(
            e,
            Error::Corrupt { .. }
                | Error::NotCapture { .. }
                | Error::TooShort { .. }
                | Error::Io { .. }
        )),
    }
}

#[test]
fn mutated_inputs_never_panic() {
    // Deterministic xorshift; flips bytes of small valid files.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let seeds = [
        two_sections(),
        build(
            false,
            MAGIC_USEC,
            1,
            &[(1, 2, b"abcdef", 6), (3, 4, b"g", 1)],
        ),
        build(true, MAGIC_MODIFIED, 1, &[(1, 2, b"abcdef", 6)]),
    ];
    for _ in 0..3000 {
        let mut f = seeds[(rnd() % 3) as usize].clone();
        for _ in 0..1 + rnd() % 4 {
            let i = (rnd() as usize) % f.len();
            f[i] = rnd() as u8;
        }
        let cut = f.len() - (rnd() as usize % 8).min(f.len());
        if let Ok(rd) = open_bytes(&f[..cut]) {
            let (pk, _, rd) = drain(rd);
            assert!(pk.len() <= 8);
            assert!(rd.buf.len() <= INITIAL_BUF * 2);
        }
    }
}

#[test]
fn open_path_and_missing_file() {
    let e = Reader::open(Path::new("/nonexistent/x.pcap")).unwrap_err();
    assert!(matches!(e, Error::Io { .. }));
    assert!(e.to_string().starts_with("/nonexistent/x.pcap: "), "{e}");
}

/// A file on disk is mapped (not gzip, not stdin) and reads exactly as the
/// same bytes read through the buffer: packets, offsets, the error that ends
/// a damaged file and its offset, whatever the cut.
#[test]
fn a_mapped_file_reads_as_the_buffered_reader_does() {
    let f = build(
        false,
        MAGIC_USEC,
        1,
        &[
            (1, 2, b"abcdef", 6),
            (3, 4, b"0123456789", 10),
            (5, 6, b"x", 1),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.pcap");
    for n in [f.len(), f.len() - 3, 50, 30, 24, 5] {
        std::fs::write(&path, &f[..n]).unwrap();
        let mapped = Reader::open(&path);
        let buffered = open_bytes(&f[..n]);
        match (mapped, buffered) {
            (Ok(m), Ok(b)) => {
                assert!(matches!(m.buf, Bytes::Mapped { .. }), "cut {n}");
                let (mp, me, mrd) = drain(m);
                let (bp, be, brd) = drain(b);
                assert_eq!(mp, bp, "cut {n}");
                assert_eq!(format!("{me:?}"), format!("{be:?}"), "cut {n}");
                assert_eq!(mrd.stats().bytes, brd.stats().bytes, "cut {n}");
            }
            (Err(m), Err(b)) => assert_eq!(
                m.to_string().replace(&path.display().to_string(), "test"),
                b.to_string(),
                "cut {n}"
            ),
            (m, b) => panic!("cut {n}: mapped {m:?}, buffered {b:?}"),
        }
    }
    // gzip goes through its decoder, never the mapping.
    std::fs::write(&path, gzip(&f)).unwrap();
    let rd = Reader::open(&path).unwrap();
    assert!(matches!(rd.buf, Bytes::Heap(_)));
    assert!(rd.mapped().is_none());
    assert_eq!(drain(rd).0, read_bytes(&f).0);
}

/// Pages behind the read position are handed back as the reader goes on (so
/// the resident set stays bounded), and every packet still reads right,
/// through the reader and through the mapping it shares.
#[test]
fn a_large_mapped_file_releases_what_it_has_read() {
    let packets: Vec<(u32, u32, Vec<u8>, u32)> = (0..24u32)
        .map(|i| {
            let data: Vec<u8> = (0..1 << 20).map(|b: u32| (b ^ i) as u8).collect();
            (i, 0, data, 1 << 20)
        })
        .collect();
    let refs: Vec<(u32, u32, &[u8], u32)> = packets
        .iter()
        .map(|(s, u, d, l)| (*s, *u, &d[..], *l))
        .collect();
    let mut f = build(false, MAGIC_USEC, 1, &refs);
    // build() writes snaplen 65535: give the header a snaplen that admits 1 MiB.
    f[16..20].copy_from_slice(&(4u32 << 20).to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.pcap");
    std::fs::write(&path, &f).unwrap();
    let mut rd = Reader::open(&path).unwrap();
    let map = rd.mapped().expect("a mapped reader");
    let mut released = Vec::new();
    let mut lent = Vec::new();
    let mut n = 0;
    let mut before = 24;
    while let Some(p) = rd.next_packet().unwrap() {
        let i = p.ts.secs as u32;
        lent.push(map.offset_of(p.data).expect("a packet of the mapped file"));
        assert_eq!(p.data.len(), 1 << 20);
        assert!(
            p.data
                .iter()
                .enumerate()
                .all(|(b, &v)| v == (b as u32 ^ i) as u8),
            "packet {i}"
        );
        n += 1;
        if let Bytes::Mapped {
            released: r,
            warmed,
            ..
        } = &rd.buf
        {
            released.push(*r);
            // What the parser read was touched ahead of it (from where
            // this packet started).
            assert!(
                *warmed >= (before + (256 << 10)).min(f.len()),
                "{warmed} at {before}"
            );
        }
        before = rd.stats().bytes as usize;
    }
    assert_eq!(n, 24);
    // What the reader lent is found in the mapping it shares
    // (`Reader::mapped`), and still reads the same once handed back.
    for (i, at) in lent.iter().enumerate() {
        let data = &map[*at..*at + (1 << 20)];
        assert!(
            data.iter()
                .enumerate()
                .all(|(b, &v)| v == (b as u32 ^ i as u32) as u8),
            "packet {i} at {at}"
        );
    }
    assert_eq!(
        map.offset_of(&packets[0].2),
        None,
        "a copy is not in the file"
    );
    let last = *released.last().unwrap();
    assert!(last >= 8 << 20, "released {last} of {} bytes", f.len());
    assert!(last % 4096 == 0 && last as u64 + (8 << 20) <= rd.stats().bytes);
    assert_eq!(rd.stats().bytes, f.len() as u64);
}

// ---- Real captures from the shared corpus ----

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus/real/");

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(format!("{CORPUS}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn expected_frames(name: &str) -> u64 {
    let j = std::fs::read_to_string(format!("{CORPUS}expected/{name}.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&j).unwrap();
    v["frames"].as_u64().unwrap()
}

fn read_corpus(name: &str) -> (Vec<P>, Option<Error>, Reader) {
    drain(
        Reader::open(Path::new(&format!("{CORPUS}{name}")))
            .unwrap_or_else(|e| panic!("{name}: {e}")),
    )
}

#[test]
fn corpus_clean_files_match_tshark() {
    for name in [
        "nanosecs_big_endian.pcap",
        "get-to-ssh-server.pcap",
        "pptp.pcap",
        "pcapng-example.pcapng",
        "cooper-grill-dvwa.pcapng",
        "modified-format.pcap",
    ] {
        let (pk, err, rd) = read_corpus(name);
        assert!(err.is_none(), "{name}: {err:?}");
        assert_eq!(pk.len() as u64, expected_frames(name), "{name}");
        assert_eq!(rd.stats().bytes, corpus(name).len() as u64, "{name}");
    }
    let (pk, _, rd) = read_corpus("modified-format.pcap");
    assert_eq!(pk.len(), 1);
    assert!(matches!(rd.format(), Format::Pcap { modified: true, .. }));
    let (_, _, rd) = read_corpus("nanosecs_big_endian.pcap");
    assert!(matches!(
        rd.format(),
        Format::Pcap {
            big_endian: true,
            nanos: true,
            ..
        }
    ));
    let (_, _, rd) = read_corpus("pcapng-example.pcapng");
    assert_eq!(rd.linktypes(), &[Linktype::ETHERNET, Linktype::LINUX_SLL]);
}

#[test]
fn corpus_gopacket_test202() {
    // test202 holds 3 sections, 5 IDBs, 5 NRBs, 4 ISBs, 6 EPBs, 2 SPBs and
    // 3 Custom Blocks (one 0xBAD, two 0x40000BAD). tshark counts the custom
    // blocks as frames (frames = 11); they carry no packet, so we read the
    // 8 real packets and skip 5 + 4 + 3 = 12 blocks.
    for name in ["gopacket-be-test202.pcapng", "gopacket-le-test202.pcapng"] {
        let (pk, err, rd) = read_corpus(name);
        assert!(err.is_none(), "{name}: {err:?}");
        assert_eq!(expected_frames(name), 11);
        assert_eq!(pk.len(), 8, "{name}");
        let s = rd.stats();
        assert_eq!(
            (s.sections, s.interfaces, s.skipped_blocks),
            (3, 5, 12),
            "{name}"
        );
        assert_eq!(rd.linktypes(), &[Linktype::ETHERNET, Linktype::NULL]);
    }
    let (be, _, _) = read_corpus("gopacket-be-test202.pcapng");
    let (le, _, _) = read_corpus("gopacket-le-test202.pcapng");
    let strip = |v: Vec<P>| {
        v.into_iter()
            .map(|p| (p.ts, p.data, p.orig_len, p.interface))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(be), strip(le));
}

#[test]
fn corpus_damaged_files() {
    let name = "derived-truncated-pcapng-example.pcapng";
    let (pk, err, _) = read_corpus(name);
    assert_eq!(pk.len() as u64, expected_frames(name));
    assert!(
        matches!(
            err,
            Some(Error::Truncated {
                offset: 15704,
                needed: 184,
                available: 92,
                ..
            })
        ),
        "{err:?}"
    );

    let name = "10.7.29.101_49898-178.63.41.150_25.pcap";
    let (pk, err, _) = read_corpus(name);
    assert_eq!(pk.len(), 18);
    assert_eq!(pk.len() as u64, expected_frames(name));
    let Some(Error::Corrupt { reason, .. }) = err else {
        panic!("{err:?}")
    };
    assert!(reason.contains("3925868813"), "{reason}");

    let name = "shb-option-too-long.pcapng";
    // Like tshark: the SHB's first option (length 12336) runs past the
    // block. The file's start is damaged, so it is refused when opened.
    let err = Reader::open(Path::new(&format!("{CORPUS}{name}"))).unwrap_err();
    let Error::Header {
        source_name,
        problem,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(source_name.ends_with(name), "{source_name}");
    let Error::Corrupt { offset: 0, reason } = problem.as_ref() else {
        panic!("{problem:?}")
    };
    assert!(
        reason.contains("option") && reason.contains("12336"),
        "{reason}"
    );
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "{CORPUS}{name}: the capture is corrupt at byte offset 0"
        )) && msg.contains("no packet can be read"),
        "{msg}"
    );

    let name = "sv-http-mime-truncated_input.pcap";
    let (pk, err, _) = read_corpus(name);
    assert_eq!(pk.len(), 2696);
    assert_eq!(pk.len() as u64, expected_frames(name));
    assert!(matches!(err, Some(Error::Truncated { .. })), "{err:?}");
}

#[test]
fn corpus_gzip_copy_reads_the_same() {
    for name in ["pcapng-example.pcapng", "sv-http-mime-truncated_input.pcap"] {
        let raw = corpus(name);
        let (want, want_err, _) = read_bytes(&raw);
        let (got, got_err, rd) = read_bytes(&gzip(&raw));
        assert!(rd.stats().gzip);
        assert_eq!(got, want, "{name}");
        assert_eq!(format!("{got_err:?}"), format!("{want_err:?}"), "{name}");
    }
}
