//! Two long-link `Framer`s over the same stream, fed chunk by chunk with
//! gaps: one assembling every body, one only the bodies of cmd 205
//! (`keep_bodies`). Checked after every event and call:
//!
//! * every event (frame, skipped run, over-cap header) starts at or after
//!   the end of the one before; frames and skipped runs lie inside bytes
//!   that were fed (never across a gap, never beyond the last byte fed);
//! * an over-cap header's length is over the cap, and the next event is
//!   the skipped run that starts at it (its bytes up to the next chain of
//!   headers, or to a gap or the end): it never swallows what follows;
//! * a frame's header is the one in the stream at its offset, and a kept
//!   body is exactly `header.body_len()` bytes, equal to the stream's; an
//!   unwanted body is empty;
//! * frame bytes + skipped bytes never exceed the bytes fed + gap bytes,
//!   and `frames()` / `skipped()` agree with the events;
//! * after `finish`, every byte fed is in exactly one frame or skipped run;
//! * both framers find the same frames and skips (keeping a body or not
//!   does not change the framing).
//!
//! Every input runs twice: through framers of the 16-byte WeChat framing
//! and of the 20-byte Mars framing (`Variant::Mars`).
//!
//! Input layout: a config byte (bits 0-2: chunk pattern length - 1; bit 3:
//! a 64-byte frame cap instead of the default; bit 4: gaps; bit 5: gaps
//! x 2^20; bit 6: gaps given as a later feed offset instead of `gap()`;
//! bit 7: overlapping re-feeds), the chunk pattern (one byte per chunk:
//! length `(p & 0x3f) + 1`, x16 with bit 6; bit 7 marks a chunk preceded by
//! a gap of `(p & 0x3f) + 1` bytes, or fed overlapping the bytes before it),
//! then the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syncscope::proto::longlink::{Framer, FramerEvent, Header, MarsHeader, SkipReason, Variant};

/// Where the fed bytes are: (stream offset, start in the input, length),
/// ordered, adjacent runs merged.
#[derive(Default)]
struct Fed {
    segs: Vec<(u64, usize, usize)>,
    /// Stream offset of the next byte (bytes fed + gap bytes).
    next: u64,
    fed: u64,
    gap_bytes: u64,
}

impl Fed {
    fn add(&mut self, off: u64, start: usize, len: usize) {
        if len == 0 {
            return;
        }
        assert_eq!(off, self.next);
        match self.segs.last_mut() {
            Some((o, s, l)) if *o + *l as u64 == off && *s + *l == start => *l += len,
            _ => self.segs.push((off, start, len)),
        }
        self.next += len as u64;
        self.fed += len as u64;
    }

    fn gap(&mut self, len: u64) {
        self.next += len;
        self.gap_bytes += len;
    }

    /// The fed bytes at `off..off + len`, or `None` when some were not fed.
    fn bytes<'d>(&self, data: &'d [u8], off: u64, len: u64) -> Option<&'d [u8]> {
        if len == 0 {
            return Some(&[]);
        }
        let i = self.segs.partition_point(|s| s.0 + s.2 as u64 <= off);
        let &(o, s, l) = self.segs.get(i)?;
        if off < o || off + len > o + l as u64 {
            return None;
        }
        let at = s + (off - o) as usize;
        Some(&data[at..at + len as usize])
    }
}

/// An owned event, to compare the two framers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Frame(u64, Header, bool),
    Skipped(u64, u64, SkipReason),
    Oversize(u64, Header),
}

/// The header at the start of `raw`, read as `variant` frames it.
fn read(variant: Variant, raw: &[u8]) -> Option<Header> {
    match variant {
        Variant::Wechat => Header::read(raw).ok(),
        Variant::Mars { .. } => MarsHeader::read(raw).ok().map(|m| m.to_header()),
    }
}

/// What one framer reported so far.
#[derive(Default)]
struct Track {
    variant: Variant,
    cap: u32,
    evs: Vec<Ev>,
    /// End of the last event's range.
    end: u64,
    frame_bytes: u64,
    skipped_bytes: u64,
    /// An over-cap header whose bytes are not reported yet.
    oversize_at: Option<u64>,
    /// Fed bytes inside frames and skipped runs.
    covered: u64,
}

impl Track {
    fn event(&mut self, fed: &Fed, data: &[u8], keep_all: bool, e: FramerEvent<'_>) {
        match e {
            FramerEvent::Frame {
                offset,
                header,
                body,
                after_gap,
            } => {
                let len = u64::from(header.len);
                let hl = self.variant.header_len();
                assert!(len >= hl as u64, "frame shorter than its header");
                assert_eq!(
                    self.oversize_at, None,
                    "a frame before an over-cap header's skip"
                );
                assert!(offset >= self.end, "frame at {offset} before {}", self.end);
                let raw = fed
                    .bytes(data, offset, len)
                    .unwrap_or_else(|| panic!("frame {offset}+{len} outside the fed bytes"));
                assert_eq!(read(self.variant, raw), Some(header), "header at {offset}");
                if keep_all || header.cmd == 205 {
                    assert_eq!(body.len(), header.body_len(), "kept body length");
                    assert_eq!(body, &raw[hl..], "body bytes at {offset}");
                } else {
                    assert!(body.is_empty(), "unwanted body assembled");
                }
                self.end = offset + len;
                self.frame_bytes += len;
                self.covered += len;
                self.evs.push(Ev::Frame(offset, header, after_gap));
            }
            FramerEvent::Skipped {
                offset,
                len,
                reason,
            } => {
                assert!(len > 0, "empty skip");
                if let Some(o) = self.oversize_at.take() {
                    assert_eq!(
                        offset, o,
                        "the skip after an over-cap header starts elsewhere"
                    );
                }
                assert!(offset >= self.end, "skip at {offset} before {}", self.end);
                assert!(
                    fed.bytes(data, offset, len).is_some(),
                    "skip {offset}+{len} outside the fed bytes"
                );
                self.end = offset + len;
                self.skipped_bytes += len;
                self.covered += len;
                self.evs.push(Ev::Skipped(offset, len, reason));
            }
            FramerEvent::BodyPart { offset, bytes, .. } => {
                // These framers assemble (keep_bodies): none streams.
                panic!(
                    "a body part at {offset} ({} bytes) from a framer that assembles",
                    bytes.len()
                );
            }
            FramerEvent::Oversize { offset, header } => {
                assert!(
                    offset >= self.end,
                    "oversize at {offset} before {}",
                    self.end
                );
                assert_eq!(self.oversize_at, None, "two over-cap headers, no skip");
                let raw = fed
                    .bytes(data, offset, self.variant.header_len() as u64)
                    .unwrap_or_else(|| panic!("oversize header at {offset} not fed"));
                assert_eq!(read(self.variant, raw), Some(header), "header at {offset}");
                assert!(header.len > self.cap, "over-cap header under the cap");
                // Its bytes come as the next event, a skipped run.
                self.oversize_at = Some(offset);
                self.evs.push(Ev::Oversize(offset, header));
            }
        }
    }

    fn check(&self, fr: &Framer, fed: &Fed) {
        let frames = self
            .evs
            .iter()
            .filter(|e| matches!(e, Ev::Frame(..)))
            .count();
        assert_eq!(fr.frames(), frames as u64, "frames() vs events");
        assert_eq!(fr.skipped(), self.skipped_bytes, "skipped() vs events");
        let accounted = self.frame_bytes + self.skipped_bytes;
        assert!(
            accounted <= fed.fed + fed.gap_bytes,
            "{accounted} bytes in frames and skips, {} fed, {} in gaps",
            fed.fed,
            fed.gap_bytes
        );
    }

    /// After `finish`: every fed byte is in some event, and every over-cap
    /// header's bytes were reported.
    fn check_finished(&self, fed: &Fed) {
        assert_eq!(
            self.oversize_at, None,
            "an over-cap header's bytes not reported"
        );
        assert_eq!(self.covered, fed.fed, "fed bytes not in any frame or skip");
    }
}

fuzz_target!(|data: &[u8]| {
    for variant in [
        Variant::Wechat,
        Variant::Mars {
            client_version: None,
        },
    ] {
        run(data, variant);
    }
});

fn run(data: &[u8], variant: Variant) {
    let Some((&cfg, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(cfg & 7) + 1;
    if rest.len() < n {
        return;
    }
    let (pattern, _) = rest.split_at(n);
    let base = 1 + n;
    let cap = if cfg & 8 != 0 { 64 } else { 16 << 20 };
    let gaps = cfg & 0x10 != 0;
    let gap_scale: u64 = if cfg & 0x20 != 0 { 1 << 20 } else { 1 };
    let implicit = cfg & 0x40 != 0;
    let overlap = cfg & 0x80 != 0;

    let mut a = Framer::new(cap).variant(variant);
    let mut b = Framer::new(cap)
        .keep_bodies(|h| h.cmd == 205)
        .variant(variant);
    let mut ta = Track {
        variant,
        cap,
        ..Track::default()
    };
    let mut tb = Track {
        variant,
        cap,
        ..Track::default()
    };
    let mut fed = Fed::default();
    let mut pos = base;
    let mut k = 0usize;
    let mut last_len = 0usize;
    while pos < data.len() {
        let p = pattern[k % n];
        k += 1;
        let mut len = (usize::from(p & 0x3f) + 1) * if p & 0x40 != 0 { 16 } else { 1 };
        len = len.min(data.len() - pos);
        let special = p & 0x80 != 0;
        let mut off = fed.next;
        if special && gaps {
            let g = (u64::from(p & 0x3f) + 1) * gap_scale;
            // Implicit: the framer only sees a chunk starting later than expected.
            if !implicit {
                a.gap(g, &mut |e| ta.event(&fed, data, true, e));
                b.gap(g, &mut |e| tb.event(&fed, data, false, e));
            }
            fed.gap(g);
            off = fed.next;
            last_len = 0;
        }
        let mut start = pos;
        if special && overlap && !gaps {
            // Re-feed up to 64 bytes of the previous chunk with this one.
            let back = (usize::from(p & 0x3f) + 1).min(last_len);
            start -= back;
            off -= back as u64;
        }
        let chunk = &data[start..pos + len];
        fed.add(fed.next, pos, len);
        a.feed(off, chunk, &mut |e| ta.event(&fed, data, true, e));
        b.feed(off, chunk, &mut |e| tb.event(&fed, data, false, e));
        ta.check(&a, &fed);
        tb.check(&b, &fed);
        assert_eq!(ta.evs, tb.evs, "keeping bodies changed the framing");
        pos += len;
        last_len = len;
    }
    a.finish(&mut |e| ta.event(&fed, data, true, e));
    b.finish(&mut |e| tb.event(&fed, data, false, e));
    ta.check(&a, &fed);
    tb.check(&b, &fed);
    ta.check_finished(&fed);
    tb.check_finished(&fed);
    assert_eq!(ta.evs, tb.evs, "keeping bodies changed the framing");
}
