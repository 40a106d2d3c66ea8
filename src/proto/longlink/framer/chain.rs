//! Chains of consistent headers, the framer's evidence about lengths: the
//! walk ([`walk_chain`], [`chain`]), the search for the first chain
//! ([`find_chain`]), the verdict on a held frame's length ([`verdict`]) and
//! the hunt for a chain after an over-cap length ([`hunt`]). Every answer
//! depends on the bytes only, never on how they were cut into chunks.

use super::{Variant, SUSPECT_CHAIN, SUSPECT_WINDOW};

/// How far a chain of consistent long-link headers runs from the start of
/// `b`: the number of plausible headers read one after the other (each at
/// the end of the previous frame), and whether the walk stopped at the end
/// of the data (the last frame ending exactly there, or running past it)
/// rather than at an implausible header.
pub fn chain(b: &[u8], cap: u32, max: usize) -> (usize, Chain) {
    Variant::Wechat.chain(b, cap, max)
}

/// A chain walk over any framing: `len_of` gives the length of the unit
/// (frame, record) whose `header_len`-byte header starts its argument, or
/// `None` when that is no plausible header.
pub fn walk_chain(
    b: &[u8],
    max: usize,
    header_len: usize,
    len_of: impl Fn(&[u8]) -> Option<usize>,
) -> (usize, Chain) {
    let mut pos = 0usize;
    let mut n = 0;
    while n < max {
        let Some(rest) = b.get(pos..) else {
            return (n, Chain::Past);
        };
        if rest.is_empty() {
            return (n, Chain::Exact);
        }
        if rest.len() < header_len {
            return (n, Chain::Past);
        }
        let Some(len) = len_of(rest) else {
            return (n, Chain::Broken);
        };
        n += 1;
        pos += len;
    }
    (n, Chain::Long)
}

/// Where a [`chain`] walk stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chain {
    /// The last frame ends exactly at the end of the data.
    Exact,
    /// The data ends inside the last frame (or inside the next header).
    Past,
    /// At a byte run that is no plausible header.
    Broken,
    /// The walk reached the number of headers asked for.
    Long,
}

/// The first offset in `b[from..]` where [`SUSPECT_CHAIN`] consistent
/// headers follow each other, or (`at_end`: no more bytes will come) where
/// a chain runs exactly to the end of `b`.
pub fn find_chain(b: &[u8], from: usize, cap: u32, need: usize, at_end: bool) -> Option<usize> {
    Variant::Wechat.find_chain(b, from, cap, need, at_end)
}

/// Whether the length of the frame whose first bytes are `b` (its length
/// `len`) is bogus, judged on its bytes only (so that the verdict does not
/// depend on how the stream was cut into chunks): `Bogus(q)`, a chain of
/// [`SUSPECT_CHAIN`] headers inside the frame starts at `q`; `Wait`, a
/// chain that could still make it bogus needs more of the frame.
///
/// Positions before `from` are known not to start a chain (a `Wait`
/// answer says where to resume), so a frame arriving in many chunks is
/// searched once.
pub(super) fn verdict(v: Variant, b: &[u8], len: usize, cap: u32, from: usize) -> Verdict {
    let complete = b.len() >= len;
    let b = &b[..b.len().min(len)];
    let window = len.min(SUSPECT_WINDOW);
    let mut q = from.max(v.header_len());
    // A header at q has its fixed bytes (`00 10 00 01` at q + 4 for the
    // 16-byte header): jump from one such run to the next (memmem), the
    // bytes between cannot start a header.
    let (m, _) = v.magic();
    let magic = v.magic_finder();
    while q < window && q + m + 4 <= b.len() {
        let end = (window + m + 4).min(b.len());
        match magic.find(&b[q + m..end]) {
            Some(d) => q += d,
            None => {
                q = end.saturating_sub(m + 3).max(q);
                break;
            }
        }
        if q >= window {
            break;
        }
        match v.chain(&b[q..], cap, SUSPECT_CHAIN) {
            (n, _) if n >= SUSPECT_CHAIN => return Verdict::Bogus(q),
            (_, Chain::Broken) => {}
            _ if complete => {}
            _ => return Verdict::Wait(q),
        }
        q += 1;
    }
    if q < window && !complete {
        Verdict::Wait(q)
    } else {
        Verdict::Fine
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Fine,
    Bogus(usize),
    /// Undecided from this position on.
    Wait(usize),
}

/// What [`hunt`] finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hunt {
    /// A chain starts here; none starts before it.
    Found(usize),
    /// None starts before this position; the candidate here (or a header
    /// begun in the last bytes) needs more bytes.
    Wait(usize),
}

/// The first position in `b[from..]` where a chain of [`SUSPECT_CHAIN`]
/// consistent headers starts: where the framer resynchronises after an
/// over-cap length. A chain counts only when its last header ends within
/// `cap` bytes of its start, so that a candidate is decided with at most
/// `cap` bytes held. `at_end`: no more bytes will come, and a chain that
/// runs exactly to the end of `b` (one whole frame suffices) counts too.
pub(super) fn hunt(v: Variant, b: &[u8], from: usize, cap: u32, at_end: bool) -> Hunt {
    let hl = v.header_len();
    let (m, _) = v.magic();
    let magic = v.magic_finder();
    let reach = (cap as usize).max(hl);
    let mut q = from;
    loop {
        // A header at q has its fixed bytes at q + m: jump from one such
        // run to the next, the bytes between cannot start a header.
        let Some(d) = b.get(q + m..).and_then(|r| magic.find(r)) else {
            // A run may have begun in the last 3 bytes.
            return Hunt::Wait(b.len().saturating_sub(m + 3).max(q));
        };
        q += d;
        if q + hl > b.len() {
            return Hunt::Wait(q);
        }
        let end = b.len().min(q.saturating_add(reach));
        // All the bytes the candidate can be judged on are there.
        let whole = at_end || end < b.len() || q.saturating_add(reach) == b.len();
        match v.chain(&b[q..end], cap, SUSPECT_CHAIN) {
            (n, _) if n >= SUSPECT_CHAIN => return Hunt::Found(q),
            (n, Chain::Exact) if at_end && end == b.len() && n >= 1 => return Hunt::Found(q),
            (_, Chain::Broken) => {}
            _ if whole => {}
            _ => return Hunt::Wait(q),
        }
        q += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::commands::{NEWSYNC, NOOP, SEQ_HEARTBEAT};
    use crate::proto::longlink::encode;

    #[test]
    fn hunt_finds_the_first_chain_and_waits_for_undecided_ones() {
        let v = Variant::Wechat;
        let mut b = vec![0xEE; 7];
        b.extend(encode(NEWSYNC, 1, b"ab")); // 7..25
        b.extend(encode(NOOP, SEQ_HEARTBEAT, b"")); // 25..41
                                                    // Two frames: a chain of three needs the next header.
        assert_eq!(hunt(v, &b, 0, 1 << 20, false), Hunt::Wait(7));
        // At the end, a chain that runs exactly to the end counts.
        assert_eq!(hunt(v, &b, 0, 1 << 20, true), Hunt::Found(7));
        b.extend(encode(NEWSYNC, 2, b"")); // 41..57
        assert_eq!(hunt(v, &b, 0, 1 << 20, false), Hunt::Found(7));
        // The chain must end within `cap` bytes of its start: with a cap
        // of 40, the one at 7 does not, the one at 25 does.
        assert_eq!(hunt(v, &b, 0, 40, false), Hunt::Wait(25));
        assert_eq!(hunt(v, &b, 0, 40, true), Hunt::Found(25));
        // Nothing header-like: only the last bytes stay undecided.
        assert_eq!(hunt(v, &[0xEE; 30], 0, 1 << 20, false), Hunt::Wait(23));
    }
}
