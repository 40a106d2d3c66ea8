//! Semantic trackers over dissected frames: request/response pairing and
//! latency, pushes, heartbeats.

pub mod lifecycle;
pub mod pairing;
pub mod synckey;
