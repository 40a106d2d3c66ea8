//! syncscope: makes sync-style messaging protocols visible on the wire.
//!
//! Data flow (library first; the `syncscope` binary is a thin CLI over it):
//!
//! ```text
//! PacketSource (file: pcap | pcapng | .gz | stdin)
//!   -> capture::Packet { ts, linktype, bytes }      capture/
//!   -> L2/L3/L4 slices (etherparse), IP defrag       wire/
//!   -> FlowKey + Direction, flow table               flow/
//!   -> per-direction ordered bytes + events          reassembly/   Data | Gap | Fin | Rst
//!   -> Sink (push model)                             report/       table | json | ndjson
//! ```
//!
//! Every parser is sans-IO: it takes bytes and says complete, incomplete or
//! invalid. Files and stdin are thin adapters around them (`capture::Reader`).
#![deny(unsafe_code)]

pub mod analyze;
pub mod body;
pub mod capture;
pub mod detect;
pub mod flow;
pub mod net;
pub mod objects;
pub mod parallel;
pub mod pipeline;
pub mod proto;
pub mod reassembly;
pub mod replay;
pub mod report;
/// Test support (cargo feature `synth`, on for tests, benches and examples).
#[cfg(feature = "synth")]
pub mod synth;
pub mod track;
pub mod wire;
