//! IPv4 and IPv6 fragment reassembly on top of etherparse's `IpDefragBuf`,
//! with the bounds etherparse's own pool leaves to the caller: a cap on
//! datagrams in progress and an expiry by capture time.

use std::collections::HashMap;
use std::net::IpAddr;

use etherparse::defrag::{IpDefragBuf, IpFragRange};
use etherparse::{IpNumber, Ipv6ExtensionSlice, LaxIpSlice};

use crate::capture::Timestamp;

/// Datagrams reassembled at the same time, at most.
pub const MAX_IN_PROGRESS: usize = 4096;
/// A datagram whose fragments stop arriving is dropped after this long (capture time).
pub const FRAGMENT_TIMEOUT_SECS: i64 = 60;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FragKey {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    proto: u8,
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

    pub(super) fn add(&mut self, ip: &LaxIpSlice<'_>, ts: Timestamp) -> Added {
        let (key, offset, more, payload) = match ip {
            LaxIpSlice::Ipv4(v4) => {
                let h = v4.header();
                (
                    FragKey {
                        src: ip.source_addr(),
                        dst: ip.destination_addr(),
                        id: h.identification() as u32,
                        proto: h.protocol().0,
                    },
                    h.fragments_offset(),
                    h.more_fragments(),
                    v4.payload().payload,
                )
            }
            LaxIpSlice::Ipv6(v6) => {
                let frag = v6.extensions().clone().into_iter().find_map(|e| match e {
                    Ipv6ExtensionSlice::Fragment(f) => Some(f.to_header()),
                    _ => None,
                });
                let Some(frag) = frag else {
                    return Added::Dropped;
                };
                (
                    FragKey {
                        src: ip.source_addr(),
                        dst: ip.destination_addr(),
                        id: frag.identification,
                        proto: v6.payload().ip_number.0,
                    },
                    frag.fragment_offset,
                    frag.more_fragments,
                    v6.payload().payload,
                )
            }
        };
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
