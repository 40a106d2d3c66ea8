//! IPv4 and IPv6 fragment reassembly on top of etherparse's `IpDefragBuf`,
//! with the bounds etherparse's own pool leaves to the caller: a cap on
//! datagrams in progress and an expiry by capture time.

use std::collections::HashMap;
use std::net::IpAddr;

use etherparse::defrag::{IpDefragBuf, IpFragRange};
use etherparse::{IpFragOffset, IpNumber};

use super::tunnel::TunnelKey;

use crate::capture::Timestamp;

/// Datagrams reassembled at the same time, at most.
pub const MAX_IN_PROGRESS: usize = 4096;
/// A datagram whose fragments stop arriving is dropped after this long (capture time).
pub const FRAGMENT_TIMEOUT_SECS: i64 = 60;

/// A datagram in reassembly: its addresses, id and protocol, and the tunnel
/// it came through (the same inner datagram id in two tunnels is two
/// datagrams).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct FragKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub id: u32,
    pub proto: u8,
    pub tunnel: Option<TunnelKey>,
}

pub(super) enum Added {
    Held,
    Dropped,
    Complete,
}

#[derive(Debug, Default)]
pub struct Defragmenter {
    active: HashMap<FragKey, (IpDefragBuf, i64)>,
    done: Vec<u8>,
    done_proto: Option<IpNumber>,
    spare: Vec<Vec<u8>>,
    last_sweep: i64,
}

impl Defragmenter {
    /// Drops datagrams whose last fragment is older than the timeout.
    pub(super) fn expire(&mut self, now: Timestamp) {
        if self.active.is_empty() || now.secs < self.last_sweep + 1 {
            return;
        }
        self.last_sweep = now.secs;
        let spare = &mut self.spare;
        self.active.retain(|_, (buf, seen)| {
            let keep = now.secs - *seen <= FRAGMENT_TIMEOUT_SECS;
            if !keep {
                spare.push(
                    std::mem::replace(buf, IpDefragBuf::new(IpNumber(0), Vec::new(), Vec::new()))
                        .take_bufs()
                        .0,
                );
            }
            keep
        });
    }

    /// Number of datagrams waiting for more fragments.
    pub fn in_progress(&self) -> usize {
        self.active.len()
    }

    /// Adds the fragment at `offset` (in 8-byte units) of the datagram `key`.
    pub(super) fn add(
        &mut self,
        key: FragKey,
        offset: IpFragOffset,
        more: bool,
        payload: &[u8],
        ts: Timestamp,
    ) -> Added {
        if !self.active.contains_key(&key) && self.active.len() >= MAX_IN_PROGRESS {
            return Added::Dropped;
        }
        let spare = self.spare.pop().unwrap_or_default();
        let entry = self.active.entry(key.clone()).or_insert_with(|| {
            (
                IpDefragBuf::new(IpNumber(key.proto), spare, Vec::<IpFragRange>::new()),
                ts.secs,
            )
        });
        entry.1 = ts.secs;
        if entry.0.add(offset, more, payload).is_err() {
            // Inconsistent fragments (overlapping ends, too big): give up on the datagram.
            if let Some((buf, _)) = self.active.remove(&key) {
                self.spare.push(buf.take_bufs().0);
            }
            return Added::Dropped;
        }
        if !entry.0.is_complete() {
            return Added::Held;
        }
        let (buf, _) = self.active.remove(&key).expect("entry present");
        let proto = buf.ip_number();
        let (data, _) = buf.take_bufs();
        let old = std::mem::replace(&mut self.done, data);
        self.spare.push(old);
        self.spare.truncate(16);
        self.done_proto = Some(proto);
        Added::Complete
    }

    /// The datagram completed by the last `add`.
    pub(super) fn completed(&self) -> (IpNumber, &[u8]) {
        (self.done_proto.unwrap_or(IpNumber(0)), &self.done)
    }
}
