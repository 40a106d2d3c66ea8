//! Per-direction TCP stream reassembly.
//!
//! Policy (the same as tshark's `follow,tcp`, except where tshark loses data):
//! bytes are delivered in sequence order; bytes already delivered win over
//! any retransmission or overlap (a difference is an [`Anomaly`]); a
//! held-back out-of-order segment is trimmed against what was delivered when
//! it is released. A hole is given up, as an explicit [`Event::Gap`], when
//! the peer acknowledges past it, when the buffer cap is hit, or when the
//! connection ends; the data after it is always delivered (tshark drops data
//! held behind a hole that no ACK covers). Nothing is zero-filled.

mod ring;
pub mod seq;
pub mod stream;

pub use seq::SeqNumber;
pub use stream::{
    Anomaly, Budget, Config, Event, GapReason, HalfStream, Segment, Stats, SEGMENT_OVERHEAD,
};
