//! [`WireStream`]: the top level of a protobuf message read as its bytes
//! arrive, for bodies too large to hold (a NewSync response of a few MiB
//! on each of many connections).
//!
//! It accepts exactly the messages [`WireReader`](super::WireReader)
//! reads to the end without error (groups included), and reports each
//! top-level field as it goes: varints whole, length-delimited payloads in
//! parts. Only the current tag or varint (at most 20 bytes) and the open
//! groups are held. A property test checks it against `WireReader` on
//! arbitrary bytes cut at arbitrary places.

use super::wire::{MAX_DEPTH, MAX_FIELD_NUMBER};

/// What a [`WireStream`] reports about a top-level field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part<'a> {
    /// A varint field.
    Varint { number: u32, value: u64 },
    /// A length-delimited field of `len` bytes starts.
    LenStart { number: u32, len: u64 },
    /// The next bytes of that field's payload.
    LenData(&'a [u8]),
    /// Its payload is complete.
    LenEnd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a tag.
    Tag,
    /// Reading a varint value of field `number`.
    Varint { number: u32 },
    /// Skipping `left` bytes of a fixed-size value.
    Fixed { left: u8 },
    /// Reading the length of field `number`.
    Len { number: u32 },
    /// Inside a length-delimited payload.
    Payload { left: u64 },
    /// Malformed: nothing more is read.
    Failed,
}

/// The incremental reader of a message's top level (see the module doc).
#[derive(Debug, Clone)]
pub struct WireStream {
    state: State,
    /// Bytes of an unfinished tag or varint.
    held: Vec<u8>,
    /// Numbers of the open groups, innermost last.
    open: Vec<u32>,
}

impl Default for WireStream {
    fn default() -> Self {
        Self::new()
    }
}

/// A varint in `b`: Some((value, length)), or None when more bytes are
/// needed; Err when it is longer than 10 bytes or overflows.
fn varint(b: &[u8]) -> Result<Option<(u64, usize)>, ()> {
    let mut v = 0u64;
    for (i, &x) in b.iter().enumerate().take(10) {
        if i == 9 && x > 1 {
            return Err(());
        }
        v |= u64::from(x & 0x7f) << (7 * i);
        if x & 0x80 == 0 {
            return Ok(Some((v, i + 1)));
        }
    }
    if b.len() >= 10 {
        Err(())
    } else {
        Ok(None)
    }
}

impl WireStream {
    pub fn new() -> Self {
        WireStream {
            state: State::Tag,
            held: Vec::new(),
            open: Vec::new(),
        }
    }

    /// Whether the bytes so far are already not a message.
    pub fn failed(&self) -> bool {
        self.state == State::Failed
    }

    /// The message ended: whether it was well-formed (no field, value or
    /// group left unfinished, nothing malformed).
    pub fn finish(&self) -> bool {
        self.state == State::Tag && self.held.is_empty() && self.open.is_empty()
    }

    /// The next bytes of the message; `out` gets the top-level fields.
    pub fn feed(&mut self, mut b: &[u8], out: &mut impl FnMut(Part<'_>)) {
        while !b.is_empty() {
            match self.state {
                State::Failed => return,
                State::Payload { left } => {
                    let n = left.min(b.len() as u64) as usize;
                    if self.open.is_empty() {
                        out(Part::LenData(&b[..n]));
                    }
                    b = &b[n..];
                    self.state = if n as u64 == left {
                        if self.open.is_empty() {
                            out(Part::LenEnd);
                        }
                        State::Tag
                    } else {
                        State::Payload {
                            left: left - n as u64,
                        }
                    };
                }
                State::Fixed { left } => {
                    let n = (left as usize).min(b.len());
                    b = &b[n..];
                    self.state = if n == left as usize {
                        State::Tag
                    } else {
                        State::Fixed {
                            left: left - n as u8,
                        }
                    };
                }
                State::Tag | State::Varint { .. } | State::Len { .. } => {
                    // A varint, from what is held and the new bytes.
                    let (value, used) = match self.read_varint(b) {
                        Ok(Some(v)) => v,
                        Ok(None) => return,
                        Err(()) => {
                            self.state = State::Failed;
                            return;
                        }
                    };
                    b = &b[used..];
                    self.after_varint(value, out);
                }
            }
        }
    }

    /// Reads a varint continuing `held`; returns the value and how many of
    /// `b` it used, or None (all of `b` held) when it goes on.
    fn read_varint(&mut self, b: &[u8]) -> Result<Option<(u64, usize)>, ()> {
        if self.held.is_empty() {
            if let Some((v, n)) = varint(b)? {
                return Ok(Some((v, n)));
            }
            self.held.extend_from_slice(b);
            return Ok(None);
        }
        let before = self.held.len();
        let take = b.len().min(10 - before.min(10));
        self.held.extend_from_slice(&b[..take]);
        match varint(&self.held)? {
            Some((v, n)) => {
                self.held.clear();
                Ok(Some((v, n - before)))
            }
            None => Ok(None),
        }
    }

    fn after_varint(&mut self, value: u64, out: &mut impl FnMut(Part<'_>)) {
        self.state = match self.state {
            State::Tag => {
                let number = value >> 3;
                if number == 0 || number > u64::from(MAX_FIELD_NUMBER) {
                    State::Failed
                } else {
                    let number = number as u32;
                    match value & 7 {
                        0 => State::Varint { number },
                        1 => State::Fixed { left: 8 },
                        2 => State::Len { number },
                        3 if self.open.len() >= MAX_DEPTH => State::Failed,
                        3 => {
                            self.open.push(number);
                            State::Tag
                        }
                        4 if self.open.last() == Some(&number) => {
                            self.open.pop();
                            State::Tag
                        }
                        5 => State::Fixed { left: 4 },
                        _ => State::Failed,
                    }
                }
            }
            State::Varint { number } => {
                if self.open.is_empty() {
                    out(Part::Varint { number, value });
                }
                State::Tag
            }
            State::Len { number } => {
                if self.open.is_empty() {
                    out(Part::LenStart { number, len: value });
                }
                if value == 0 {
                    if self.open.is_empty() {
                        out(Part::LenEnd);
                    }
                    State::Tag
                } else {
                    State::Payload { left: value }
                }
            }
            s => s,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::super::wire::{WireReader, WireValue};
    use super::*;
    use proptest::prelude::*;

    /// Top-level fields: number, then a varint or a payload.
    type Fields = Vec<(u32, Result<u64, Vec<u8>>)>;

    /// What WireReader makes of a whole message, in Part form; None when
    /// it is not well-formed.
    fn whole(b: &[u8]) -> Option<Fields> {
        let mut v = Vec::new();
        for f in WireReader::new(b) {
            let f = f.ok()?;
            match f.value {
                WireValue::Varint(x) => v.push((f.number, Ok(x))),
                WireValue::Len(p) => v.push((f.number, Err(p.to_vec()))),
                _ => {}
            }
        }
        Some(v)
    }

    fn streamed(b: &[u8], cuts: &[usize]) -> Option<Fields> {
        let mut s = WireStream::new();
        let mut v: Fields = Vec::new();
        let mut at = 0;
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (b.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.push(b.len());
        for c in cuts {
            s.feed(&b[at..c.max(at)], &mut |p| match p {
                Part::Varint { number, value } => v.push((number, Ok(value))),
                Part::LenStart { number, .. } => v.push((number, Err(Vec::new()))),
                Part::LenData(d) => {
                    if let Some((_, Err(buf))) = v.last_mut() {
                        buf.extend_from_slice(d)
                    }
                }
                Part::LenEnd => {}
            });
            at = c.max(at);
        }
        s.finish().then_some(v)
    }

    /// Bytes that are often protobuf: fields of every wire type, groups,
    /// nested lengths, then a few bytes flipped or cut.
    fn message() -> impl Strategy<Value = Vec<u8>> {
        let field = prop_oneof![
            (1u64..40, any::<u64>()).prop_map(|(n, v)| {
                let mut b = Vec::new();
                super::super::wire::encode_varint(n << 3, &mut b);
                super::super::wire::encode_varint(v, &mut b);
                b
            }),
            (1u64..40, prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(n, p)| {
                let mut b = Vec::new();
                super::super::wire::encode_varint(n << 3 | 2, &mut b);
                super::super::wire::encode_varint(p.len() as u64, &mut b);
                b.extend(p);
                b
            }),
            (1u64..40).prop_map(|n| vec![(n << 3 | 1) as u8, 1, 2, 3, 4, 5, 6, 7, 8]),
            (1u64..15).prop_map(|n| vec![(n << 3 | 5) as u8, 1, 2, 3, 4]),
            (1u64..15).prop_map(|n| vec![(n << 3 | 3) as u8, 8, 1, (n << 3 | 4) as u8]),
            (1u64..15).prop_map(|n| vec![(n << 3 | 3) as u8]),
            (1u64..15).prop_map(|n| vec![(n << 3 | 4) as u8]),
        ];
        (
            prop::collection::vec(field, 0..8),
            prop::collection::vec((any::<usize>(), any::<u8>()), 0..2),
            any::<Option<usize>>(),
        )
            .prop_map(|(fields, flips, cut)| {
                let mut b: Vec<u8> = fields.concat();
                for (i, x) in flips {
                    if !b.is_empty() {
                        let i = i % b.len();
                        b[i] = x;
                    }
                }
                if let Some(c) = cut {
                    b.truncate(c % (b.len() + 1));
                }
                b
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Well-formed exactly when WireReader reads it to the end, with the
        /// same top-level varint and length-delimited fields, however cut.
        #[test]
        fn same_as_wire_reader(
            b in prop_oneof![message(), prop::collection::vec(any::<u8>(), 0..64)],
            cuts in prop::collection::vec(any::<usize>(), 0..6),
        ) {
            prop_assert_eq!(streamed(&b, &cuts), whole(&b));
        }
    }

    #[test]
    fn deep_groups_fail_as_in_wire_reader() {
        let mut b = vec![0x0b; MAX_DEPTH + 1];
        b.extend(vec![0x0c; MAX_DEPTH + 1]);
        assert_eq!(whole(&b), None);
        assert_eq!(streamed(&b, &[]), None);
        let ok: Vec<u8> = [vec![0x0b; MAX_DEPTH], vec![0x0c; MAX_DEPTH]].concat();
        assert_eq!(streamed(&ok, &[3, 40]), whole(&ok));
        assert!(whole(&ok).is_some());
    }
}
