//! [`Ring`]: the last bytes delivered in a direction, kept so that a
//! retransmission can be compared with what was accepted.

use std::collections::VecDeque;

use crate::capture::Mapped;

/// Delivered runs at least this long that lie in the mapped capture file
/// are kept as a place in it; shorter ones are copied (so that the runs
/// kept stay few: at most two per this many bytes of the window).
const MIN_REF: usize = 256;

/// Where a run of retained bytes is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Src {
    /// At this offset of the mapped file ([`Ring::base`]).
    File(usize),
    /// Next in [`Ring::own`].
    Own,
}

#[derive(Debug, Clone, Copy)]
struct Run {
    src: Src,
    len: usize,
}

/// The last `cap` bytes delivered in a direction, kept so that a
/// retransmission can be compared with what was accepted (overlap policy:
/// accepted bytes win; a retransmission with different bytes is an anomaly).
///
/// Bytes that lie in a mapped capture file (the in-order payload of one
/// mapped input: nearly all of it) are kept as where they are, not copied:
/// the copy of every delivered byte was a fifth of the reading thread's
/// time. The rest is copied into `own`.
#[derive(Debug, Default)]
pub(crate) struct Ring {
    cap: usize,
    /// The retained bytes, oldest first: runs whose lengths add up to `len`.
    runs: VecDeque<Run>,
    len: usize,
    /// The bytes of the `Own` runs, in order.
    own: VecDeque<u8>,
    /// The mapped file the `File` runs lie in.
    base: Option<Mapped>,
}

impl Ring {
    pub(crate) fn new(cap: usize) -> Self {
        Ring {
            cap,
            ..Ring::default()
        }
    }

    pub(crate) fn clear(&mut self) {
        self.runs.clear();
        self.own.clear();
        self.len = 0;
    }

    /// Appends bytes, forgetting the oldest beyond the capacity. `base`:
    /// the mapped file the bytes may lie in (then they are kept as a place
    /// in it).
    pub(crate) fn push(&mut self, bytes: &[u8], base: Option<&Mapped>) {
        if self.cap == 0 || bytes.is_empty() {
            return;
        }
        let bytes = &bytes[bytes.len().saturating_sub(self.cap)..];
        // Room first: `own` never holds more than the capacity.
        self.forget((self.len + bytes.len()).saturating_sub(self.cap));
        let at = match base {
            Some(m) if bytes.len() >= MIN_REF => m.offset_of(bytes),
            _ => None,
        };
        match (at, base) {
            (Some(at), Some(m)) => {
                if !self.base.as_ref().is_some_and(|b| b.same(m)) {
                    self.own_everything();
                    self.base = Some(m.clone());
                }
                self.runs.push_back(Run {
                    src: Src::File(at),
                    len: bytes.len(),
                });
            }
            _ => {
                // A stream past a few KiB is likely long: its copy goes to
                // the capacity at once (doubling all the way copied and
                // touched twice the memory).
                if self.own.len() >= 4096 && self.own.capacity() < self.cap {
                    self.own.reserve_exact(self.cap - self.own.len());
                }
                self.own.extend(bytes);
                match self.runs.back_mut() {
                    Some(last) if last.src == Src::Own => last.len += bytes.len(),
                    _ => self.runs.push_back(Run {
                        src: Src::Own,
                        len: bytes.len(),
                    }),
                }
            }
        }
        self.len += bytes.len();
    }

    /// Forgets the oldest `excess` bytes.
    fn forget(&mut self, mut excess: usize) {
        while excess > 0 {
            let Some(first) = self.runs.front_mut() else {
                break;
            };
            let n = excess.min(first.len);
            if first.src == Src::Own {
                self.own.drain(..n);
            }
            if n == first.len {
                self.runs.pop_front();
            } else {
                first.len -= n;
                if let Src::File(at) = &mut first.src {
                    *at += n;
                }
            }
            self.len -= n;
            excess -= n;
        }
    }

    /// Every run copied into `own` (the mapped file changes).
    fn own_everything(&mut self) {
        if self.runs.iter().all(|r| r.src == Src::Own) {
            return;
        }
        let mut own = VecDeque::with_capacity(self.len);
        let mut at_own = 0;
        for r in &self.runs {
            match (r.src, &self.base) {
                (Src::File(at), Some(b)) => own.extend(&b[at..at + r.len]),
                _ => {
                    own.extend(self.own.range(at_own..at_own + r.len));
                    at_own += r.len;
                }
            }
        }
        self.own = own;
        self.runs.clear();
        if self.len > 0 {
            self.runs.push_back(Run {
                src: Src::Own,
                len: self.len,
            });
        }
    }

    /// Compares `data`, which starts `back` bytes before the end of the ring,
    /// with the retained bytes. Returns (compared byte count, index in `data`
    /// of the first difference).
    pub(crate) fn compare(&self, back: u64, data: &[u8]) -> (usize, Option<usize>) {
        // data[i] is retained byte `len - back + i`, for the i where that
        // is inside the window.
        let len = self.len as u64;
        let first = back.saturating_sub(len).min(data.len() as u64) as usize;
        let end = back.min(data.len() as u64) as usize;
        if first >= end {
            return (0, None);
        }
        let mut want = (len + first as u64 - back) as usize;
        let mut i = first;
        let mut at_own = 0;
        for r in &self.runs {
            if i >= end {
                break;
            }
            if want >= r.len {
                want -= r.len;
                if r.src == Src::Own {
                    at_own += r.len;
                }
                continue;
            }
            let n = (r.len - want).min(end - i);
            let diff = match (r.src, &self.base) {
                (Src::File(at), Some(b)) => {
                    first_diff(&b[at + want..at + want + n], &data[i..i + n])
                }
                _ => {
                    let kept = self.own.range(at_own + want..at_own + want + n);
                    kept.zip(&data[i..i + n]).position(|(a, b)| a != b)
                }
            };
            if let Some(d) = diff {
                return (end - first, Some(i + d));
            }
            if r.src == Src::Own {
                at_own += r.len;
            }
            i += n;
            want = 0;
        }
        (end - first, None)
    }
}

fn first_diff(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The retained bytes, oldest first.
    fn contents(r: &Ring) -> Vec<u8> {
        let mut v = Vec::new();
        let mut at_own = 0;
        for run in &r.runs {
            match run.src {
                Src::File(at) => v.extend_from_slice(&r.base.as_ref().unwrap()[at..at + run.len]),
                Src::Own => {
                    v.extend(r.own.range(at_own..at_own + run.len));
                    at_own += run.len;
                }
            }
        }
        assert_eq!(v.len(), r.len);
        assert_eq!(at_own, r.own.len());
        v
    }

    #[test]
    fn a_short_stream_keeps_a_small_buffer_a_long_one_the_capacity() {
        let mut r = Ring::new(64 << 10);
        r.push(&[1; 1000], None);
        assert!(r.own.capacity() < 8 << 10, "{}", r.own.capacity());
        for _ in 0..4 {
            r.push(&[2; 1448], None);
        }
        r.push(&[2; 1], None);
        // Past 4 KiB: the whole capacity at once, the bytes kept in order.
        assert!(r.own.capacity() >= 64 << 10, "{}", r.own.capacity());
        let want: Vec<u8> = [vec![1; 1000], vec![2; 4 * 1448 + 1]].concat();
        assert_eq!(contents(&r), want);
        for _ in 0..100 {
            r.push(&[3; 1448], None);
        }
        assert_eq!(contents(&r), vec![3; 64 << 10]);
        assert!(r.own.capacity() < 128 << 10, "{}", r.own.capacity());
    }

    #[test]
    fn keeps_the_last_cap_bytes() {
        let mut r = Ring::new(5);
        r.push(b"ab", None);
        assert_eq!(contents(&r), b"ab");
        r.push(b"cde", None);
        assert_eq!(contents(&r), b"abcde");
        r.push(b"fg", None);
        assert_eq!(contents(&r), b"cdefg");
        r.push(b"0123456789", None);
        assert_eq!(contents(&r), b"56789");
        r.push(b"x", None);
        assert_eq!(contents(&r), b"6789x");
    }

    #[test]
    fn compare_finds_first_difference() {
        let mut r = Ring::new(4);
        r.push(b"abcdef", None); // keeps "cdef"
        assert_eq!(r.compare(4, b"cdef"), (4, None));
        assert_eq!(r.compare(4, b"cdXf"), (4, Some(2)));
        // starts 6 back: the first two bytes are no longer kept
        assert_eq!(r.compare(6, b"ZZcd"), (2, None));
        // runs past the end: only the retained part is compared
        assert_eq!(r.compare(2, b"efgh"), (2, None));
    }

    /// Bytes in a mapped file are kept as a place in it, not copied; short
    /// runs and bytes elsewhere are copied; a new mapping copies what lay
    /// in the old one.
    #[test]
    fn mapped_bytes_are_kept_where_they_lie() {
        let file: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
        let m = Mapped::of(&file);
        let mut r = Ring::new(2000);
        r.push(&m[100..900], Some(&m));
        r.push(&m[900..950], Some(&m)); // short: copied
        r.push(&[9; 300], Some(&m)); // not in the file: copied
        assert_eq!(r.own.len(), 350);
        assert_eq!(r.runs.len(), 2);
        let want = [&file[100..950], &[9; 300][..]].concat();
        assert_eq!(contents(&r), want);
        r.push(&m[1000..2000], Some(&m));
        assert_eq!(r.len, 2000);
        let want = [&file[250..950], &[9; 300][..], &file[1000..2000]].concat();
        assert_eq!(contents(&r), want);
        assert_eq!(r.compare(2000, &want), (2000, None));
        let mut other = want.clone();
        other[1500] ^= 1;
        assert_eq!(r.compare(2000, &other), (2000, Some(1500)));
        // Another file: what lay in the first is copied, then the new bytes
        // are kept in the second.
        let second = Mapped::of(&file[..1024]);
        r.push(&second[0..1000], Some(&second));
        let want = [&want[1000..], &file[..1000]].concat();
        assert_eq!(contents(&r), want);
        assert_eq!(r.own.len(), 1000);
        assert!(r.base.as_ref().unwrap().same(&second));
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Push file bytes `at..at + len` (or a copy of them).
        Push {
            at: usize,
            len: usize,
            copy: bool,
        },
        Clear,
        Compare {
            back: u64,
            len: usize,
            flip: Option<usize>,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0usize..4096, 0usize..1500, any::<bool>())
                .prop_map(|(at, len, copy)| Op::Push { at, len, copy }),
            1 => Just(Op::Clear),
            3 => (0u64..3000, 0usize..1500, any::<Option<usize>>())
                .prop_map(|(back, len, flip)| Op::Compare { back, len, flip }),
        ]
    }

    proptest! {
        /// The ring holds, and compares with, the last `cap` bytes pushed
        /// (a plain byte list as the model), whether they were kept as a
        /// place in the file or copied.
        #[test]
        fn the_ring_matches_a_byte_list(
            cap in 0usize..2500,
            ops in prop::collection::vec(op(), 0..40),
        ) {
            let file: Vec<u8> = (0..6000u32).map(|i| (i * 31 + i / 251) as u8).collect();
            let m = Mapped::of(&file);
            let mut r = Ring::new(cap);
            let mut model: Vec<u8> = Vec::new();
            for op in ops {
                match op {
                    Op::Push { at, len, copy } => {
                        let bytes = &m[at..(at + len).min(file.len())];
                        let copied = bytes.to_vec();
                        r.push(if copy { &copied } else { bytes }, Some(&m));
                        if cap > 0 {
                            model.extend_from_slice(bytes);
                            let keep = model.len().saturating_sub(cap);
                            model.drain(..keep);
                        }
                    }
                    Op::Clear => {
                        r.clear();
                        model.clear();
                    }
                    Op::Compare { back, len, flip } => {
                        // data[i] is model[model.len() - back + i].
                        let mut data: Vec<u8> = (0..len)
                            .map(|i| {
                                let j = model.len() as i64 - back as i64 + i as i64;
                                if j >= 0 && (j as usize) < model.len() {
                                    model[j as usize]
                                } else {
                                    (i * 13) as u8
                                }
                            })
                            .collect();
                        if let Some(f) = flip {
                            if !data.is_empty() {
                                let f = f % data.len();
                                data[f] ^= 0x5a;
                            }
                        }
                        let mut compared = 0;
                        let mut diff = None;
                        for (i, &b) in data.iter().enumerate() {
                            let j = model.len() as i64 - back as i64 + i as i64;
                            if j >= model.len() as i64 {
                                break;
                            }
                            if j < 0 {
                                continue;
                            }
                            compared += 1;
                            if diff.is_none() && model[j as usize] != b {
                                diff = Some(i);
                            }
                        }
                        prop_assert_eq!(r.compare(back, &data), (compared, diff));
                    }
                }
                prop_assert_eq!(contents(&r), model.clone());
            }
        }
    }
}
