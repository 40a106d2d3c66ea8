//! Every truncated prefix of a few small real captures goes through the
//! whole pipeline: no panic; a prefix that ends on a record/block boundary
//! reads cleanly and yields exactly the packets it holds; any other prefix
//! reports a read error. Plus random byte corruption of the same files, and
//! a pipeline-level reproducer found by fuzzing.

use std::io::Cursor;
use std::sync::mpsc;
use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use syncscope::capture::writer::PcapWriter;
use syncscope::capture::{Error, Linktype, Reader, Timestamp};
use syncscope::flow;
use syncscope::pipeline::{self, RunSummary};
use syncscope::synth::{Conversation, Side};

use crate::common::{corpus_real, Collect};

const FILES: &[&str] = &[
    "tcp-overlap.pcap",
    "pptp.pcap",
    "nanosecs_big_endian.pcap",
    "sv-tcp-fastopen-05_tfo.pcap",
    "cooper-grill-dvwa.pcapng",
    "gopacket-be-test202.pcapng",
    "frag_http_req.pcap",
];

fn load(name: &str) -> Vec<u8> {
    let path = corpus_real().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Where the file's header, records and blocks end, and which of those
/// ends close a packet record; parsed here independently of the library.
struct Layout {
    /// Length of the part `Reader::from_read` needs to succeed.
    header: usize,
    /// Every offset where a record or block ends (the header end included),
    /// with whether that record is a packet.
    ends: Vec<(usize, bool)>,
}

fn u32_at(b: &[u8], at: usize, big: bool) -> u32 {
    let w = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if big {
        u32::from_be_bytes(w)
    } else {
        u32::from_le_bytes(w)
    }
}

fn layout(b: &[u8]) -> Layout {
    let magic_le = u32_at(b, 0, false);
    let mut ends = Vec::new();
    if b[..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
        let mut big = false;
        let mut pos = 0;
        while pos < b.len() {
            let ty = u32_at(b, pos, big);
            if ty == 0x0A0D_0D0A {
                big = u32_at(b, pos + 8, false) != 0x1A2B_3C4D;
            }
            let len = u32_at(b, pos + 4, big) as usize;
            assert!(len >= 12 && len % 4 == 0, "bad block length at {pos}");
            pos += len;
            ends.push((pos, matches!(ty, 2 | 3 | 6)));
        }
        assert_eq!(pos, b.len());
        // The reader reads the first Section Header Block when it opens.
        Layout {
            header: ends[0].0,
            ends,
        }
    } else {
        let (big, modified) = match magic_le {
            0xa1b2_c3d4 | 0xa1b2_3c4d => (false, false),
            0xd4c3_b2a1 | 0x4d3c_b2a1 => (true, false),
            0xa1b2_cd34 => (false, true),
            0x34cd_b2a1 => (true, true),
            m => panic!("not a capture: magic {m:08x}"),
        };
        let rec_hdr = if modified { 24 } else { 16 };
        let mut pos = 24;
        ends.push((pos, false));
        while pos < b.len() {
            pos += rec_hdr + u32_at(b, pos + 8, big) as usize;
            ends.push((pos, true));
        }
        assert_eq!(pos, b.len());
        Layout { header: 24, ends }
    }
}

fn run_bytes(bytes: Vec<u8>) -> Result<(Collect, RunSummary), Error> {
    let mut reader = Reader::from_read(Box::new(Cursor::new(bytes)), "prefix")?;
    let mut sink = Collect::default();
    let summary = pipeline::run(&mut reader, flow::Config::default(), &mut sink, |_| {});
    Ok((sink, summary))
}

#[test]
fn every_prefix_of_small_real_captures() {
    for name in FILES {
        let file = load(name);
        let lay = layout(&file);
        let mut packets_before = 0u64;
        let mut next_end = 0;
        for len in 0..=file.len() {
            while next_end < lay.ends.len() && lay.ends[next_end].0 <= len {
                packets_before += u64::from(lay.ends[next_end].1);
                next_end += 1;
            }
            let on_boundary = len == 0 || lay.ends.iter().any(|&(e, _)| e == len);
            let what = format!("{name}, prefix of {len} of {} bytes", file.len());
            match run_bytes(file[..len].to_vec()) {
                Err(e) => {
                    assert!(len < lay.header, "{what}: {e}");
                    assert!(
                        matches!(
                            e,
                            Error::NotCapture { .. }
                                | Error::TooShort { .. }
                                | Error::Header { .. }
                        ),
                        "{what}: {e:?}"
                    );
                }
                Ok((sink, summary)) => {
                    assert!(len >= lay.header, "{what}: opened");
                    assert_eq!(
                        summary.read_error.is_none(),
                        on_boundary,
                        "{what}: {:?}",
                        summary.read_error
                    );
                    assert_eq!(summary.packets, packets_before, "{what}: packets");
                    assert_eq!(summary.read.packets, packets_before, "{what}: read.packets");
                    let delivered: u64 = sink
                        .flows
                        .iter()
                        .map(|(_, b)| (b[0].len() + b[1].len()) as u64)
                        .sum();
                    assert_eq!(delivered, summary.bytes, "{what}: delivered bytes");
                }
            }
        }
    }
}

/// Runs the pipeline in a thread and fails if it does not finish in time.
fn run_with_timeout(bytes: Vec<u8>, what: String) {
    let (tx, rx) = mpsc::channel();
    let input = bytes.clone();
    std::thread::spawn(move || {
        let _ = run_bytes(input);
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(()) => {}
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!(
                "{what}: no result after 30 s; input {}",
                hex::encode(&bytes)
            )
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            panic!(
                "{what}: the pipeline panicked; input {}",
                hex::encode(&bytes)
            )
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// 5..50 random bytes of a real file set to random values: the pipeline
    /// neither panics nor hangs.
    #[test]
    fn corrupted_real_captures_do_not_panic_or_hang(
        which in any::<Index>(),
        edits in vec((any::<Index>(), any::<u8>()), 5..50),
    ) {
        let name = FILES[which.index(FILES.len())];
        let mut bytes = load(name);
        let len = bytes.len();
        for (at, v) in &edits {
            bytes[at.index(len)] = *v;
        }
        run_with_timeout(bytes, format!("{name} with {} edits", edits.len()));
    }
}

/// Each half-stream keeps one `Direction` label for the whole flow: a SYN
/// seen after the other side's data must not move that data into the same
/// direction as the SYN sender's (sinks that hash or dump "c2s" would mix
/// the two senders' bytes). Found by the capture_reader fuzz target.
#[test]
fn a_late_syn_does_not_mix_both_senders_into_one_direction() {
    let client = "192.0.2.1:40000".parse().unwrap();
    let server = "198.51.100.2:8080".parse().unwrap();
    let c = Conversation::new(client, server, 1000, 5000);
    let frames = [
        c.segment(Side::Server, 5001, "PA", b"hello"), // first packet: the server's data
        c.segment(Side::Client, 1000, "S", b""),       // then the client's SYN
        c.segment(Side::Client, 1001, "PA", b"world"),
    ];
    let mut w = PcapWriter::new(Vec::new(), Linktype::ETHERNET, false).unwrap();
    for f in &frames {
        w.write(Timestamp::new(1_700_000_000, 0, 6), f, None)
            .unwrap();
    }
    let (sink, summary) = run_bytes(w.into_inner()).unwrap();
    assert!(summary.read_error.is_none());
    assert_eq!(sink.flows.len(), 1);
    let (flow, [c2s, s2c]) = &sink.flows[0];
    assert_eq!(flow.client, client);
    assert_eq!((flow.c2s.bytes, flow.s2c.bytes), (5, 5));
    assert_eq!(
        (String::from_utf8_lossy(c2s), String::from_utf8_lossy(s2c)),
        ("world".into(), "hello".into()),
        "bytes delivered per Direction label"
    );
}
