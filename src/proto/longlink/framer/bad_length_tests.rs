//! Length fields that what follows shows bogus (see the framer's doc).

use super::*;
use crate::proto::commands::{response, NEWNOTIFY, NEWSYNC, NOOP, SEQ_HEARTBEAT, SEQ_PUSH};
use crate::proto::longlink::encode;

#[derive(Debug, PartialEq, Eq)]
enum Ev {
    /// offset, cmd, seq, body length
    Frame(u64, u32, u32, usize),
    Skipped(u64, u64, SkipReason),
    /// An over-cap header at this offset (its bytes come as a skip).
    Oversize(u64),
}

/// An event as compared here (bodies by their length; a streamed body's
/// parts, `parts`, count as its body).
fn ev(e: FramerEvent<'_>, parts: &mut Option<(u64, usize)>) -> Option<Ev> {
    Some(match e {
        FramerEvent::Frame {
            offset,
            header,
            body,
            ..
        } => {
            let streamed = parts.take().filter(|p| p.0 == offset).map_or(0, |p| p.1);
            Ev::Frame(offset, header.cmd, header.seq, body.len() + streamed)
        }
        FramerEvent::BodyPart { offset, bytes, .. } => {
            match parts {
                Some((o, n)) if *o == offset => *n += bytes.len(),
                _ => *parts = Some((offset, bytes.len())),
            }
            return None;
        }
        FramerEvent::Skipped {
            offset,
            len,
            reason,
        } => Ev::Skipped(offset, len, reason),
        FramerEvent::Oversize { offset, .. } => Ev::Oversize(offset),
    })
}

/// `s` fed in chunks of `steps` bytes in turn, then finished.
fn run_steps(mut fr: Framer, s: &[u8], steps: &[usize]) -> Vec<Ev> {
    let mut evs = Vec::new();
    let mut parts = None;
    let mut out = |e: FramerEvent<'_>| evs.extend(ev(e, &mut parts));
    let (mut pos, mut k) = (0, 0);
    while pos < s.len() {
        let n = steps[k % steps.len()].min(s.len() - pos);
        fr.feed(pos as u64, &s[pos..pos + n], &mut out);
        pos += n;
        k += 1;
    }
    fr.finish(&mut out);
    evs
}

fn run(fr: &mut Framer, s: &[u8], step: usize) -> Vec<Ev> {
    run_steps(std::mem::take(fr), s, &[step])
}

/// Same events for one chunk, every split in two, and steps 1, 7 and 300;
/// also with unwanted bodies (then with empty bodies).
fn assert_any_chunking(s: &[u8], want: &[Ev]) {
    for step in [s.len().max(1), 1, 7, 300] {
        assert_eq!(run(&mut Framer::default(), s, step), want, "step {step}");
    }
    for cut in 0..=s.len() {
        let steps = [cut.max(1), s.len().max(1)];
        let steps = if cut == 0 { &steps[1..] } else { &steps[..] };
        assert_eq!(run_steps(Framer::default(), s, steps), want, "cut {cut}");
    }
    let empty: Vec<Ev> = want
        .iter()
        .map(|e| match e {
            Ev::Frame(o, c, q, _) => Ev::Frame(*o, *c, *q, 0),
            Ev::Skipped(o, l, r) => Ev::Skipped(*o, *l, *r),
            Ev::Oversize(o) => Ev::Oversize(*o),
        })
        .collect();
    for step in [s.len().max(1), 1, 7] {
        let fr = Framer::default().keep_bodies(|_| false);
        assert_eq!(run_steps(fr, s, &[step]), empty, "no bodies, step {step}");
        // Streamed bodies: the same frames, the parts making the bodies.
        let fr = Framer::default().stream_bodies(|_| true);
        assert_eq!(run_steps(fr, s, &[step]), want, "streamed, step {step}");
    }
}

fn bogus(cmd: u32, seq: u32, len: u32) -> [u8; HEADER_LEN] {
    Header {
        len,
        ..Header::new(cmd, seq, 0)
    }
    .emit()
}

#[test]
fn a_huge_length_followed_by_a_chain_is_skipped() {
    let mut s = encode(NEWSYNC, 1, b"abc"); // 0..19
    s.extend(bogus(NEWSYNC, 2, 1 << 20)); // 19..35, claims 1 MiB
    s.extend(encode(NOOP, SEQ_HEARTBEAT, b"")); // 35..51
    s.extend(encode(NEWNOTIFY, SEQ_PUSH, &[9; 12])); // 51..79
    s.extend(encode(response(NEWSYNC), 1, &[1; 30])); // 79..125
    s.extend(encode(NEWSYNC, 3, b"z")); // 125..142
    assert_any_chunking(
        &s,
        &[
            Ev::Frame(0, NEWSYNC, 1, 3),
            Ev::Skipped(19, 16, SkipReason::BadLength),
            Ev::Frame(35, NOOP, SEQ_HEARTBEAT, 0),
            Ev::Frame(51, NEWNOTIFY, SEQ_PUSH, 12),
            Ev::Frame(79, response(NEWSYNC), 1, 30),
            Ev::Frame(125, NEWSYNC, 3, 1),
        ],
    );
}

#[test]
fn a_bogus_length_with_bytes_after_it_skips_them_too() {
    // The bogus header has 5 bytes of its "body" before the chain.
    let mut s = bogus(NEWSYNC, 2, 5000).to_vec(); // 0..16
    s.extend([0xEE; 5]); // 16..21
    for seq in 10..13 {
        s.extend(encode(NEWSYNC, seq, &[0; 4])); // 21, 41, 61 (20 bytes each)
    }
    assert_any_chunking(
        &s,
        &[
            Ev::Skipped(0, 21, SkipReason::BadLength),
            Ev::Frame(21, NEWSYNC, 10, 4),
            Ev::Frame(41, NEWSYNC, 11, 4),
            Ev::Frame(61, NEWSYNC, 12, 4),
        ],
    );
}

#[test]
fn at_the_end_one_whole_frame_after_a_bogus_length_is_recovered() {
    let mut s = encode(NEWSYNC, 1, b"abc"); // 0..19
    s.extend(bogus(NEWSYNC, 2, 1 << 20)); // 19..35
    s.extend(encode(NOOP, SEQ_HEARTBEAT, b"")); // 35..51
    assert_any_chunking(
        &s,
        &[
            Ev::Frame(0, NEWSYNC, 1, 3),
            Ev::Skipped(19, 16, SkipReason::BadLength),
            Ev::Frame(35, NOOP, SEQ_HEARTBEAT, 0),
        ],
    );
}

#[test]
fn a_large_frame_with_header_like_bytes_in_its_body_stays_whole() {
    // A 64 KiB body holding two chained header-like runs (not three), and a
    // single one further on: the frame is sound.
    let mut body = vec![0x5A; 65_536];
    let mut fake = encode(NEWSYNC, 7, &[1; 4]);
    fake.extend(encode(NEWSYNC, 8, &[2; 4]));
    body[100..100 + fake.len()].copy_from_slice(&fake);
    body[200..220].copy_from_slice(&encode(NOOP, SEQ_HEARTBEAT, &[3; 4]));
    body[3000..3016].copy_from_slice(&bogus(NEWSYNC, 9, 16));
    let mut s = encode(response(NEWSYNC), 1, &body);
    s.extend(encode(NOOP, SEQ_HEARTBEAT, b""));
    let n = s.len() as u64;
    let want = [
        Ev::Frame(0, response(NEWSYNC), 1, 65_536),
        Ev::Frame(n - 16, NOOP, SEQ_HEARTBEAT, 0),
    ];
    for step in [s.len(), 1, 1460, 4096, 5000] {
        assert_eq!(run(&mut Framer::default(), &s, step), want, "step {step}");
    }
    // Cut short: the frame is unfinished, and its header-like bytes do not
    // run exactly to the end, so nothing is recovered from it.
    let evs = run(&mut Framer::default(), &s[..20_000], 1460);
    assert_eq!(evs, [Ev::Skipped(0, 20_000, SkipReason::Unusable)]);
}

#[test]
fn a_bogus_length_anywhere_in_any_chunking() {
    use proptest::prelude::*;
    let strategy = (
        proptest::collection::vec((0u32..300, any::<u32>(), 0usize..60), 1..10),
        any::<proptest::sample::Index>(),
        1u32..16_000_000,
        proptest::collection::vec(1usize..40, 1..20),
    );
    proptest!(ProptestConfig::with_cases(200), |((spec, at, extra, cuts) in strategy)| {
        let at = at.index(spec.len() + 1);
        let mut stream = Vec::new();
        let mut want = Vec::new();
        for (i, (cmd, seq, blen)) in spec.iter().enumerate() {
            if i == at {
                // A header whose length runs past the end of the stream.
                let len = (16 << 20) - extra.min(1 << 20);
                want.push(Ev::Skipped(stream.len() as u64, 16, SkipReason::BadLength));
                stream.extend(bogus(NEWSYNC, 1, len));
            }
            // Bodies of 0xEE bytes never look like headers.
            want.push(Ev::Frame(stream.len() as u64, *cmd, *seq, *blen));
            stream.extend(encode(*cmd, *seq, &vec![0xEE; *blen]));
        }
        if at == spec.len() {
            // Nothing after it: an unfinished frame, as before.
            want.push(Ev::Skipped(stream.len() as u64, 16, SkipReason::Unusable));
            stream.extend(bogus(NEWSYNC, 1, 1 << 20));
        }
        let got = run_steps(Framer::default(), &stream, &cuts);
        prop_assert_eq!(got, want);
    });
}

/// Encodes a frame (cmd, seq, body).
type Encode = fn(u32, u32, &[u8]) -> Vec<u8>;
/// A header whose length field says the argument.
type HeadOf = fn(u32) -> Vec<u8>;

/// A framer of the 16-byte or Mars framing, its header length, its frame
/// encoder, and a header whose length field says `len` (the whole frame
/// for the 16-byte header, the body for Mars).
fn framing(mars: bool) -> (Framer, usize, Encode, HeadOf) {
    if mars {
        let fr = Framer::default().variant(Variant::Mars {
            client_version: None,
        });
        let enc: Encode = |c, q, b| crate::proto::longlink::mars::encode(7, c, q, b);
        let head: HeadOf = |len| {
            crate::proto::longlink::MarsHeader {
                body_len: len,
                ..crate::proto::longlink::MarsHeader::new(7, NEWSYNC, 1, 0)
            }
            .emit()
            .to_vec()
        };
        (fr, 20, enc, head)
    } else {
        (Framer::default(), 16, encode, |len| {
            bogus(NEWSYNC, 1, len).to_vec()
        })
    }
}

#[test]
fn an_over_cap_length_never_swallows_the_frames_after_it() {
    for mars in [false, true] {
        let (_, hl, enc, head) = framing(mars);
        let run = |s: &[u8], steps: &[usize]| run_steps(framing(mars).0, s, steps);
        // Three frames after it: found as they come.
        let mut s = enc(NEWSYNC, 1, b"abc");
        let o = s.len() as u64;
        s.extend(head(u32::MAX - 100)); // claims about 4 GiB
        let f = s.len() as u64;
        for seq in 2..5 {
            s.extend(enc(NEWSYNC, seq, &[0x11; 5]));
        }
        let n = (hl + 5) as u64;
        let want = [
            Ev::Frame(0, NEWSYNC, 1, 3),
            Ev::Oversize(o),
            Ev::Skipped(o, hl as u64, SkipReason::BadLength),
            Ev::Frame(f, NEWSYNC, 2, 5),
            Ev::Frame(f + n, NEWSYNC, 3, 5),
            Ev::Frame(f + 2 * n, NEWSYNC, 4, 5),
        ];
        for step in [s.len(), 1, 7, 300] {
            assert_eq!(run(&s, &[step]), want, "mars {mars}, step {step}");
        }
        // After garbage inside the claimed frame, one frame to the end.
        let mut s = head(20 << 20);
        s.extend([0x5A; 3000]);
        s.extend(enc(NOOP, SEQ_HEARTBEAT, b""));
        let want = [
            Ev::Oversize(0),
            Ev::Skipped(0, hl as u64 + 3000, SkipReason::BadLength),
            Ev::Frame(hl as u64 + 3000, NOOP, SEQ_HEARTBEAT, 0),
        ];
        for step in [s.len(), 1, 7, 1460] {
            assert_eq!(run(&s, &[step]), want, "mars {mars}, step {step}");
        }
        // Nothing after it: its bytes are unusable.
        let s = head(20 << 20);
        let want = [
            Ev::Oversize(0),
            Ev::Skipped(0, hl as u64, SkipReason::Unusable),
        ];
        assert_eq!(run(&s, &[5]), want, "mars {mars}");
    }
}

#[test]
fn an_over_cap_length_anywhere_in_any_chunking() {
    use proptest::prelude::*;
    let strategy = (
        any::<bool>(),
        proptest::collection::vec((0u32..300, any::<u32>(), 0usize..60), 0..10),
        any::<proptest::sample::Index>(),
        (MAX_FRAME_LEN)..u32::MAX - 20,
        proptest::collection::vec(1usize..40, 1..20),
    );
    proptest!(ProptestConfig::with_cases(200), |((mars, spec, at, len, cuts) in strategy)| {
        let (fr, hl, enc, head) = framing(mars);
        let at = at.index(spec.len() + 1);
        let mut stream = Vec::new();
        let mut want = Vec::new();
        for i in 0..=spec.len() {
            if i == at {
                let o = stream.len() as u64;
                want.push(Ev::Oversize(o));
                // The frames after it are a chain; none: the end cuts it.
                let reason = if i < spec.len() { SkipReason::BadLength } else { SkipReason::Unusable };
                want.push(Ev::Skipped(o, hl as u64, reason));
                stream.extend(head(len));
            }
            if let Some((cmd, seq, blen)) = spec.get(i) {
                // Bodies of 0xEE bytes never look like headers.
                want.push(Ev::Frame(stream.len() as u64, *cmd, *seq, *blen));
                stream.extend(enc(*cmd, *seq, &vec![0xEE; *blen]));
            }
        }
        prop_assert_eq!(run_steps(fr, &stream, &cuts), want);
    });
}

/// Keeping bodies or not, and how the stream is cut, never change the
/// framing: frames (bodies aside) and skips are the same, with bogus
/// lengths, header-like bodies and a cut end.
#[test]
fn verdicts_depend_on_the_bytes_only() {
    use proptest::prelude::*;
    let piece = prop_oneof![
        (0u32..300, 0usize..80).prop_map(|(cmd, n)| encode(cmd, 1, &vec![0x11; n])),
        (1u32..5000).prop_map(|len| bogus(NEWSYNC, 2, len + 16).to_vec()),
        (MAX_FRAME_LEN..u32::MAX).prop_map(|len| bogus(NEWSYNC, 2, len + 1).to_vec()),
        // A body that holds a header-like run.
        (0usize..30).prop_map(|n| {
            let mut b = vec![0x22; n];
            b.extend(encode(NOOP, SEQ_HEARTBEAT, b""));
            encode(NEWSYNC, 3, &b)
        }),
        proptest::collection::vec(any::<u8>(), 0..20),
    ];
    let strategy = (
        proptest::collection::vec(piece, 1..12),
        any::<proptest::sample::Index>(),
        proptest::collection::vec(1usize..50, 1..10),
    );
    proptest!(ProptestConfig::with_cases(300), |((pieces, cut, steps) in strategy)| {
        let mut s: Vec<u8> = pieces.concat();
        s.truncate(cut.index(s.len() + 1));
        let feed = |fr: Framer, steps: &[usize]| {
            let mut evs = run_steps(fr, &s, steps);
            for e in &mut evs {
                if let Ev::Frame(_, _, _, n) = e {
                    *n = 0;
                }
            }
            evs
        };
        let whole = feed(Framer::default(), &[s.len().max(1)]);
        prop_assert_eq!(&feed(Framer::default(), &steps), &whole);
        prop_assert_eq!(&feed(Framer::default().keep_bodies(|_| false), &steps), &whole);
    });
}
