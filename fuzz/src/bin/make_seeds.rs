//! Writes the seed corpora under `fuzz/corpus/` (each file well under 4 KB):
//! small synthetic captures for `capture_reader` (classic pcap LE/BE,
//! usec/nsec, pcapng, gzip, IPv4/IPv6, reordered and lost segments),
//! encoded segment sequences for `reassembler`, long-link streams (frames
//! built with `longlink::encode`, garbage, an over-cap frame) with
//! chunk patterns for `longlink_framer`, and MMTLS record streams (hello,
//! data records holding a business packet, a short-link payload and an
//! identify body; a short-link HTTP request) for `mmtls_business`.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --bin make_seeds`

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;

use syncscope::body::identify::encode_words;
use syncscope::body::protobuf::{encode_bytes_field, encode_varint, encode_varint_field};
use syncscope::body::synckey::SyncKey;
use syncscope::capture::writer::PcapWriter;
use syncscope::capture::{Linktype, Timestamp};
use syncscope::proto::commands::{
    response, CGI_NEWSYNC, IDENTIFY, NEWNOTIFY, NEWSYNC, NOOP, SEQ_HEARTBEAT, SEQ_IDENTIFY,
    SEQ_PUSH,
};
use syncscope::proto::longlink;
use syncscope::proto::mmtls::{RecordHeader, RecordType, VERSION_F104};
use syncscope::synth::{later, Conversation, Frame, Side};

fn conv(v6: bool, isn: [u32; 2]) -> Conversation {
    let (c, s): (SocketAddr, SocketAddr) = if v6 {
        (
            "[2001:db8::1]:50000".parse().unwrap(),
            "[2001:db8::2]:8080".parse().unwrap(),
        )
    } else {
        (
            "192.0.2.1:50000".parse().unwrap(),
            "198.51.100.2:8080".parse().unwrap(),
        )
    };
    let mut c = Conversation::new(c, s, isn[0], isn[1]);
    c.mss = 200;
    c
}

/// Handshake, one long-link request and response, close.
fn basic(v6: bool) -> Vec<Frame> {
    let mut c = conv(v6, [1000, u32::MAX - 100]);
    let mut f = c.handshake();
    f.extend(c.send(Side::Client, &longlink::encode(NEWSYNC, 1, &[b'q'; 300])));
    f.extend(c.send(
        Side::Server,
        &longlink::encode(response(NEWSYNC), 1, &[b'r'; 250]),
    ));
    f.extend(c.close());
    f
}

/// A reply whose segments are reordered, duplicated and partly lost, with
/// the client's ACK past the lost one; no FIN.
fn messy(v6: bool) -> Vec<Frame> {
    let mut c = conv(v6, [u32::MAX - 50, 7]);
    let mut f = c.handshake();
    f.extend(c.send(Side::Client, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    let mut reply = c.send(Side::Server, &[b'z'; 900]);
    let ack = reply.pop().unwrap();
    reply.swap(0, 2);
    let dup = reply[1].clone();
    reply.push(dup);
    reply.remove(3);
    f.extend(reply);
    f.push(ack);
    f
}

fn pcap(frames: &[Frame], nanos: bool) -> Vec<u8> {
    let mut w = PcapWriter::new(Vec::new(), Linktype::ETHERNET, nanos).unwrap();
    let mut ts = Timestamp::new(1_700_000_000, 0, if nanos { 9 } else { 6 });
    for fr in frames {
        w.write(ts, fr, None).unwrap();
        ts = later(ts, 1500);
    }
    w.into_inner()
}

/// The same file in big-endian byte order.
fn pcap_be(le: &[u8], rec_hdr: usize) -> Vec<u8> {
    let mut b = le.to_vec();
    let swap = |b: &mut [u8], at: usize, n: usize| b[at..at + n].reverse();
    for (at, n) in [(0, 4), (4, 2), (6, 2), (8, 4), (12, 4), (16, 4), (20, 4)] {
        swap(&mut b, at, n);
    }
    let mut pos = 24;
    while pos < b.len() {
        let caplen = u32::from_le_bytes(b[pos + 8..pos + 12].try_into().unwrap()) as usize;
        for i in 0..rec_hdr / 4 {
            swap(&mut b, pos + 4 * i, 4);
        }
        pos += rec_hdr + caplen;
    }
    b
}

fn block(out: &mut Vec<u8>, ty: u32, body: &[u8]) {
    let pad = (4 - body.len() % 4) % 4;
    let total = (12 + body.len() + pad) as u32;
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(body);
    out.extend(std::iter::repeat_n(0u8, pad));
    out.extend_from_slice(&total.to_le_bytes());
}

/// Little-endian pcapng: SHB, IDB (nanosecond if_tsresol), EPBs, one SPB.
fn pcapng(frames: &[Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut shb = Vec::new();
    shb.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    block(&mut out, 0x0A0D_0D0A, &shb);
    let mut idb = Vec::new();
    idb.extend_from_slice(&1u16.to_le_bytes());
    idb.extend_from_slice(&0u16.to_le_bytes());
    idb.extend_from_slice(&0u32.to_le_bytes());
    idb.extend_from_slice(&[9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0]); // if_tsresol 9, opt_endofopt
    block(&mut out, 1, &idb);
    let mut ts: u64 = 1_700_000_000_000_000_000;
    for (i, fr) in frames.iter().enumerate() {
        if i == 1 {
            let mut spb = (fr.len() as u32).to_le_bytes().to_vec();
            spb.extend_from_slice(fr);
            block(&mut out, 3, &spb);
            continue;
        }
        let mut epb = Vec::new();
        epb.extend_from_slice(&0u32.to_le_bytes());
        epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(ts as u32).to_le_bytes());
        epb.extend_from_slice(&(fr.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(fr.len() as u32).to_le_bytes());
        epb.extend_from_slice(fr);
        epb.extend(std::iter::repeat_n(0u8, (4 - fr.len() % 4) % 4));
        block(&mut out, 6, &epb);
        ts += 1_500_000;
    }
    out
}

/// Gzip with stored (uncompressed) deflate blocks, to avoid a dependency.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut crc_table = [0u32; 256];
    for (n, e) in crc_table.iter_mut().enumerate() {
        let mut c = n as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *e = c;
    }
    let crc = !data.iter().fold(!0u32, |c, &b| {
        crc_table[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8)
    });
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    let chunks: Vec<&[u8]> = data.chunks(65_535).collect();
    for (i, ch) in chunks.iter().enumerate() {
        out.push(u8::from(i + 1 == chunks.len()));
        let len = ch.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(ch);
    }
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// One reassembler operation in the target's input encoding. `payload`:
/// `Err(len)` in pattern mode, where the target makes the bytes itself;
/// `extra`: bytes on the wire beyond the captured payload.
fn op(
    out: &mut Vec<u8>,
    flags: u8,
    rel: i16,
    payload: Result<&[u8], u8>,
    ack: Option<i16>,
    extra: u8,
) {
    let flags = flags | if ack.is_some() { 0x10 } else { 0 } | if extra > 0 { 0x20 } else { 0 };
    out.push(flags);
    out.extend_from_slice(&rel.to_be_bytes());
    out.push(match payload {
        Ok(p) => p.len() as u8,
        Err(len) => len,
    });
    if let Some(a) = ack {
        out.extend_from_slice(&a.to_be_bytes());
    }
    if extra > 0 {
        out.push(extra);
    }
    if let Ok(p) = payload {
        out.extend_from_slice(p);
    }
}

fn reassembler_seeds() -> Vec<(&'static str, Vec<u8>)> {
    const SYN: u8 = 2;
    const FIN: u8 = 4;
    const RST: u8 = 8;
    const PEER: u8 = 1;
    let header = |mode: u8, isn0: u32, isn1: u32| {
        let mut v = vec![mode];
        v.extend_from_slice(&isn0.to_be_bytes());
        v.extend_from_slice(&isn1.to_be_bytes());
        v
    };
    // In order, with a handshake and FIN in both directions; ISN+1 wraps.
    let mut in_order = header(0, u32::MAX - 3, 500);
    let o = &mut in_order;
    op(o, SYN, 0, Ok(b""), None, 0);
    op(o, SYN | PEER, 0, Ok(b""), Some(0), 0);
    op(o, 0, 0, Ok(b"hello "), Some(0), 0);
    op(o, 0, 6, Ok(b"world"), None, 0);
    op(o, PEER, 0, Ok(b"ok"), Some(11), 0);
    op(o, FIN, 11, Ok(b""), Some(2), 0);
    op(o, FIN | PEER, 2, Ok(b""), Some(12), 0);
    // Pattern payloads: reordered, overlapping and lost, with an ACK past the hole.
    let mut messy = header(1, 12_345, 0x8000_0000);
    let o = &mut messy;
    op(o, SYN, 0, Err(0), None, 0);
    op(o, 0, 20, Err(10), None, 0);
    op(o, 0, 0, Err(5), None, 0);
    op(o, 0, 15, Err(10), None, 0);
    op(o, 0, 40, Err(8), None, 0);
    op(o, PEER, 0, Err(0), Some(48), 0);
    op(o, 0, 3, Err(30), None, 0);
    op(o, FIN, 48, Err(4), None, 0);
    // Mid-stream, a 64-byte cap and a 100-byte shared budget, a 16-byte
    // retain window, a snaplen-cut segment and a RST.
    let mut capped = header(0b0010_1010, 77, 88);
    let o = &mut capped;
    op(o, 0, 100, Ok(&[7; 40]), None, 0);
    op(o, 0, 200, Ok(&[8; 80]), None, 0);
    op(o, 0, 300, Ok(&[9; 20]), None, 60);
    op(o, 0, 140, Ok(&[1; 60]), None, 0);
    op(o, 0, 130, Ok(&[2; 30]), None, 0);
    op(o, PEER | RST, 0, Ok(b""), Some(400), 0);
    vec![
        ("in_order", in_order),
        ("messy_pattern", messy),
        ("midstream_capped", capped),
    ]
}

/// An identify body (cmd 205): w1/w2, SyncKey, client version, locale,
/// tail words, network id and its length-prefixed context.
fn identify_body() -> Vec<u8> {
    let sk = SyncKey {
        keys: vec![(1, 700_000_001), (2, 700_000_002), (3, 700_000_003)],
    }
    .encode();
    let (w1, w2) = encode_words(1_505_495_844, sk.len() as u32);
    let mut b = w1.to_be_bytes().to_vec();
    b.extend_from_slice(&w2.to_be_bytes());
    b.extend_from_slice(&sk);
    b.extend_from_slice(&0x6308_2a32u32.to_be_bytes());
    b.extend_from_slice(b"en_US\0\0\0");
    for w in [2u32, 1, 1] {
        b.extend_from_slice(&w.to_be_bytes());
    }
    b.extend_from_slice(b"0123456789abcdef0123456789abcdef");
    b.extend_from_slice(&3u32.to_be_bytes());
    b.extend_from_slice(b"x%3");
    b
}

/// A small protobuf message (what a decrypted body looks like).
fn protobuf_msg() -> Vec<u8> {
    let mut inner = Vec::new();
    encode_varint_field(1, 42, &mut inner);
    encode_bytes_field(2, b"wxid_abc", &mut inner);
    let mut m = Vec::new();
    encode_varint_field(1, 7, &mut m);
    encode_bytes_field(2, &inner, &mut m);
    encode_bytes_field(3, b"hello", &mut m);
    m
}

/// A business packet: 0xBF header (algo 5, zlib flag, a 4-byte cookie,
/// cgi 138, the lengths, 3 undocumented bytes), then `body`.
fn business(body: &[u8]) -> Vec<u8> {
    let cookie = [0xc0, 0x01, 0xc0, 0xde];
    let mut h = vec![0xBF, 0, (5 << 4) | cookie.len() as u8];
    h.extend_from_slice(&0x6308_2a32u32.to_be_bytes());
    h.extend_from_slice(&1_505_495_844u32.to_be_bytes());
    h.extend_from_slice(&cookie);
    for v in [CGI_NEWSYNC, body.len() as u32, body.len() as u32] {
        encode_varint(u64::from(v), &mut h);
    }
    h.extend_from_slice(&[0x01, 0x02, 0xfe]);
    h[1] = ((h.len() as u8) << 2) | 1;
    h.extend_from_slice(body);
    h
}

/// The short-link early-data layout around a business packet.
fn shortlink_payload(uri: &str, host: &str, body: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&(uri.len() as u16).to_be_bytes());
    p.extend_from_slice(uri.as_bytes());
    p.extend_from_slice(&(host.len() as u16).to_be_bytes());
    p.extend_from_slice(host.as_bytes());
    p.extend_from_slice(&(body.len() as u32).to_be_bytes());
    p.extend_from_slice(body);
    let mut out = (p.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&p);
    out
}

/// An MMTLS record (version f1 04): `RecordHeader::emit` and the payload.
fn record(typ: u8, payload: &[u8]) -> Vec<u8> {
    let mut r = RecordHeader {
        typ: RecordType(typ),
        version: VERSION_F104,
        len: payload.len() as u16,
    }
    .emit()
    .to_vec();
    r.extend_from_slice(payload);
    r
}

/// A cleartext ClientHello payload: u32 length, type 1, version 04 f1,
/// two cipher suites, random, timestamp, a few extension bytes.
fn client_hello() -> Vec<u8> {
    let mut p = vec![1, 0x04, 0xf1, 2, 0x00, 0xa8, 0x00, 0x9e];
    p.extend((0..32u8).map(|i| i.wrapping_mul(37)));
    p.extend_from_slice(&1_700_000_000u32.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 4, 0, 1, 0, 0]);
    let mut out = (p.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&p);
    out
}

fn longlink_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let id = identify_body();
    let mut frames = longlink::encode(IDENTIFY, SEQ_IDENTIFY, &id);
    frames.extend(longlink::encode(
        response(IDENTIFY),
        SEQ_IDENTIFY,
        &[0, 0, 0, 0, 0, 0, 0, 1],
    ));
    frames.extend(longlink::encode(NOOP, SEQ_HEARTBEAT, b""));
    frames.extend(longlink::encode(NEWSYNC, 1, &protobuf_msg()));
    frames.extend(longlink::encode(
        response(NEWSYNC),
        1,
        &business(&protobuf_msg()),
    ));
    frames.extend(longlink::encode(NEWNOTIFY, SEQ_PUSH, &[0x5a; 40]));
    let seed = |cfg: u8, pattern: &[u8], stream: &[u8]| {
        assert_eq!(usize::from(cfg & 7) + 1, pattern.len());
        let mut v = vec![cfg];
        v.extend_from_slice(pattern);
        v.extend_from_slice(stream);
        v
    };
    // Garbage before the frames, then a frame over the 64-byte cap.
    let mut junk = b"GET / HTTP/1.1\r\n\r\n".to_vec();
    junk.extend_from_slice(&frames);
    let mut capped = longlink::encode(NEWSYNC, 2, &[0x11; 100]);
    capped.extend(longlink::encode(NOOP, SEQ_HEARTBEAT, b""));
    capped.extend(longlink::encode(IDENTIFY, SEQ_IDENTIFY, &id[..40]));
    capped.extend(longlink::encode(NEWSYNC, 3, &[0x22; 30]));
    vec![
        // Chunks of 6, 16 and 48 bytes, no gaps.
        ("frames_chunked", seed(2, &[0x05, 0x0f, 0x42], &frames)),
        // Single bytes.
        ("frames_bytewise", seed(0, &[0x00], &frames)),
        // Gaps of 4 and 20 bytes cut frames; garbage first.
        (
            "garbage_and_gaps",
            seed(0x10 | 3, &[0x1f, 0x83, 0x0b, 0x93], &junk),
        ),
        // A 64-byte cap: the 116-byte frame is over it; gaps given as
        // later feed offsets.
        (
            "oversize_cap64",
            seed(0x08 | 0x10 | 0x40 | 1, &[0x09, 0x81], &capped),
        ),
        // Overlapping re-feeds of up to 8 bytes.
        ("overlap_refeed", seed(0x80 | 1, &[0x0c, 0x87], &frames)),
        // Gaps of megabytes.
        ("big_gaps", seed(0x10 | 0x20 | 1, &[0x3f, 0x80], &frames)),
    ]
}

fn mmtls_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let pb = protobuf_msg();
    let biz = business(&pb);
    let short = shortlink_payload("/cgi-bin/micromsg-bin/newsync", "sgshort.wechat.com", &biz);
    let mut stream = record(0x16, &client_hello());
    stream.extend(record(0x17, &biz));
    stream.extend(record(0x19, &short));
    stream.extend(record(0x17, &identify_body()));
    stream.extend(record(0x17, &[0x42; 40]));
    stream.extend(record(0x15, &[0, 0, 0, 3, 0, 0x73, 0x02]));
    let seed = |cfg: u8, pattern: &[u8], stream: &[u8]| {
        assert_eq!(usize::from(cfg & 7) + 1, pattern.len());
        let mut v = vec![cfg];
        v.extend_from_slice(pattern);
        v.extend_from_slice(stream);
        v
    };
    let mut junk = b"\x00\x17\xf1\x02garbage".to_vec();
    junk.extend_from_slice(&stream);
    // A short-link request: records in the HTTP body.
    let mut body = record(0x19, &client_hello());
    body.extend(record(0x17, &short));
    let mut http = format!(
        "POST /mmtls/2a9b1264 HTTP/1.1\r\nHost: sgshort.wechat.com\r\nUpgrade: mmtls\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    http.extend_from_slice(&body);
    vec![
        ("records_chunked", seed(2, &[0x03, 0x10, 0x41], &stream)),
        ("records_bytewise", seed(0, &[0x00], &stream)),
        // A 64-byte cap, gaps of 11 and 4 bytes.
        ("gaps_cap64", seed(0x08 | 0x10 | 1, &[0x8a, 0x20], &stream)),
        // Garbage first (resync), gaps as later feed offsets.
        ("resync_gaps", seed(0x10 | 0x20 | 1, &[0x07, 0x83], &junk)),
        ("http_shortlink", seed(0, &[0x7f], &http)),
        // The parsers on their own: a bare short-link payload and business packet.
        ("shortlink_payload", seed(0, &[0x7f], &short)),
        ("business_packet", seed(0, &[0x7f], &biz)),
    ]
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    assert!(bytes.len() < 4096, "{name}: {} bytes", bytes.len());
    let path = dir.join(name);
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(bytes))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    println!("{} ({} bytes)", path.display(), bytes.len());
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let cap = root.join("capture_reader");
    let re = root.join("reassembler");
    std::fs::create_dir_all(&cap).unwrap();
    std::fs::create_dir_all(&re).unwrap();

    let v4 = pcap(&basic(false), false);
    write(&cap, "v4_basic.pcap", &v4);
    write(&cap, "v4_basic_be.pcap", &pcap_be(&v4, 16));
    write(&cap, "v4_basic.pcap.gz", &gzip_stored(&v4));
    write(&cap, "v6_messy_nsec.pcap", &pcap(&messy(true), true));
    write(&cap, "v4_messy.pcapng", &pcapng(&messy(false)));
    for (name, bytes) in reassembler_seeds() {
        write(&re, name, &bytes);
    }
    for (target, seeds) in [
        ("longlink_framer", longlink_seeds()),
        ("mmtls_business", mmtls_seeds()),
    ] {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in seeds {
            write(&dir, name, &bytes);
        }
    }
}
