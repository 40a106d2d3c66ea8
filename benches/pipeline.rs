//! Throughput of the hot path on the public API: `cargo bench --bench pipeline`.
//!
//! Input: a ~64 MiB classic pcap of WeChat long-link traffic (64 connections,
//! ~100 k packets) generated once in memory by `examples/gencap.rs` (built on
//! `syncscope::synth`). Groups, all reported in bytes per second:
//!
//! - `capture/read`: `Reader::from_read` over a `Cursor`, draining packets;
//! - `pipeline/run_noop_sink`: the whole `pipeline::run` (decode, flow table,
//!   reassembly) with a sink that does nothing;
//! - `pipeline/run_flows_sink_hash`: the same with `FlowsSink` hashing every
//!   byte (what `syncscope flows --hash` adds);
//! - `reassembly/in_order_1448`: one `HalfStream` fed 16 MiB of in-order
//!   1448-byte segments.
//!
//! Sample counts are small so the whole run takes well under two minutes.

use std::hint::black_box;
use std::io::Cursor;
use std::sync::OnceLock;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use syncscope::capture::Reader;
use syncscope::flow::{self, FlowMeta, FlowSummary, Side, Sink};
use syncscope::pipeline;
use syncscope::reassembly::{self, Budget, Event, HalfStream, Segment};
use syncscope::report::FlowsSink;

#[path = "../examples/gencap.rs"]
mod gencap;

/// The 64 MiB capture, built once and kept for the whole process.
fn capture() -> &'static [u8] {
    static CAP: OnceLock<Vec<u8>> = OnceLock::new();
    CAP.get_or_init(|| {
        let params = gencap::Params {
            bytes: 64 << 20,
            ..gencap::Params::default()
        };
        let mut out = Vec::with_capacity(params.bytes as usize);
        let t = gencap::generate(&mut out, &params).expect("writing to a Vec");
        eprintln!(
            "bench input: {} bytes, {} packets, {} connections",
            out.len(),
            t.packets,
            t.connections
        );
        out
    })
}

fn reader(data: &'static [u8]) -> Reader {
    Reader::from_read(Box::new(Cursor::new(data)), "bench").expect("a valid pcap")
}

struct NoopSink;

impl Sink for NoopSink {
    fn event(&mut self, _: &FlowMeta, _: Side, ev: Event<'_>) {
        black_box(ev);
    }
    fn flow_end(&mut self, s: &FlowSummary) {
        black_box(s);
    }
}

fn configure<'c>(
    c: &'c mut Criterion,
    name: &str,
    bytes: u64,
) -> criterion::BenchmarkGroup<'c, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Bytes(bytes));
    g
}

fn capture_read(c: &mut Criterion) {
    let data = capture();
    let mut g = configure(c, "capture", data.len() as u64);
    g.bench_function("read", |b| {
        b.iter(|| {
            let mut rd = reader(data);
            let mut n = 0usize;
            while let Some(p) = rd.next_packet().expect("no read error") {
                n += p.data.len();
            }
            black_box(n)
        })
    });
    g.finish();
}

fn pipeline_run(c: &mut Criterion) {
    let data = capture();
    let mut g = configure(c, "pipeline", data.len() as u64);
    g.bench_function("run_noop_sink", |b| {
        b.iter(|| {
            let mut rd = reader(data);
            let s = pipeline::run(&mut rd, flow::Config::default(), &mut NoopSink, |_| {});
            assert!(s.read_error.is_none());
            black_box(s.bytes)
        })
    });
    g.bench_function("run_flows_sink_hash", |b| {
        b.iter(|| {
            let mut rd = reader(data);
            let mut sink = FlowsSink::new(true, None, None).expect("no dump dir");
            let s = pipeline::run(&mut rd, flow::Config::default(), &mut sink, |_| {});
            black_box((s.bytes, sink.rows().len()))
        })
    });
    g.finish();
}

fn reassembly_in_order(c: &mut Criterion) {
    const MSS: usize = 1448;
    const SEGMENTS: usize = (16 << 20) / MSS;
    let payload: Vec<u8> = (0..MSS).map(|i| (i * 31 + 7) as u8).collect();
    let mut g = configure(c, "reassembly", (SEGMENTS * MSS) as u64);
    g.bench_function("in_order_1448", |b| {
        b.iter(|| {
            let mut hs = HalfStream::new(reassembly::Config::default());
            let mut budget = Budget::new(256 << 20);
            let mut delivered = 0u64;
            let mut out = |ev: Event<'_>| {
                if let Event::Data { bytes, .. } = ev {
                    delivered += bytes.len() as u64;
                }
            };
            // Near the top of the sequence space, so it wraps on the way.
            let isn: u32 = 0xFFFF_0000;
            let syn = Segment {
                seq: isn,
                syn: true,
                ..Segment::default()
            };
            hs.segment(syn, &mut budget, &mut out);
            let mut seq = isn.wrapping_add(1);
            for _ in 0..SEGMENTS {
                let seg = Segment {
                    seq,
                    payload: &payload,
                    wire_len: MSS as u32,
                    ..Segment::default()
                };
                hs.segment(seg, &mut budget, &mut out);
                seq = seq.wrapping_add(MSS as u32);
            }
            assert_eq!(delivered, (SEGMENTS * MSS) as u64);
            black_box(delivered)
        })
    });
    g.finish();
}

criterion_group!(benches, capture_read, pipeline_run, reassembly_in_order);
criterion_main!(benches);
