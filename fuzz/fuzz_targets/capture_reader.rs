//! Arbitrary bytes as a capture file: the reader must return packets, then
//! at most one error, then `Ok(None)` forever; the whole pipeline must run to
//! the end with every direction's events contiguous. (Data and Gap events
//! may follow Fin: a damaged capture can carry bytes beyond the FIN.)
#![no_main]

use std::collections::HashMap;
use std::io::Cursor;
use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use syncscope::capture::Reader;
use syncscope::flow::{self, FlowMeta, FlowSummary, Side, Sink};
use syncscope::pipeline;
use syncscope::reassembly::Event;

fn open(data: &[u8]) -> Option<Reader> {
    Reader::from_read(Box::new(Cursor::new(data.to_vec())), "fuzz").ok()
}

/// Checks that each direction's Data/Gap events follow each other without
/// holes or overlaps, that Fin comes once, at the end of the bytes so far.
/// Directions are told apart by their sender, not by the `Direction` label:
/// the label of one half-stream can change when a later SYN or SYN+ACK
/// changes who is taken for the client.
#[derive(Default)]
struct Check {
    /// (flow id, sender) -> (stream end so far, Fin seen)
    dirs: HashMap<(u64, SocketAddr), (u64, bool)>,
    ended: HashMap<u64, ()>,
    bytes: u64,
}

impl Sink for Check {
    fn event(&mut self, meta: &FlowMeta, side: Side, ev: Event<'_>) {
        assert!(!self.ended.contains_key(&meta.id), "event after flow_end");
        let sender = match side {
            Side::First => meta.first_src,
            Side::Second => meta.first_dst,
        };
        let (end, fin) = self.dirs.entry((meta.id, sender)).or_default();
        match ev {
            Event::Data { offset, bytes, .. } => {
                assert_eq!(offset, *end, "data not contiguous");
                assert!(!bytes.is_empty(), "empty Data");
                *end += bytes.len() as u64;
                self.bytes += bytes.len() as u64;
            }
            Event::Gap { offset, len, .. } => {
                assert_eq!(offset, *end, "gap not contiguous");
                assert!(len > 0, "empty Gap");
                *end += len;
            }
            Event::Fin { offset } => {
                assert!(!*fin, "second Fin");
                assert_eq!(offset, *end, "Fin not at the stream end");
                *fin = true;
            }
            Event::Rst { .. } | Event::Anomaly(_) => {}
        }
    }

    fn flow_end(&mut self, summary: &FlowSummary) {
        assert!(
            self.ended.insert(summary.id, ()).is_none(),
            "flow ended twice"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    // Reader alone: drain every packet.
    if let Some(mut rd) = open(data) {
        let mut packets = 0u64;
        // Packets, then at most one error.
        while let Ok(Some(p)) = rd.next_packet() {
            packets += 1;
            assert!((p.offset as usize) < data.len() || rd.stats().gzip);
        }
        for _ in 0..2 {
            assert!(
                matches!(rd.next_packet(), Ok(None)),
                "not finished after the end"
            );
        }
        assert_eq!(rd.stats().packets, packets);
    }
    // The whole pipeline.
    if let Some(mut rd) = open(data) {
        let mut check = Check::default();
        let summary = pipeline::run(&mut rd, flow::Config::default(), &mut check, |_| {});
        assert_eq!(summary.bytes, check.bytes);
        assert_eq!(check.ended.len() as u64, summary.flows.flows);
    }
});
