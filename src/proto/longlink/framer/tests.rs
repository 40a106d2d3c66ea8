//! The framer's tests: frames in any chunking, garbage, gaps, over-cap
//! lengths, truncated prefixes, unwanted bodies (bogus lengths are in
//! `bad_length_tests.rs`).

use super::*;
use crate::proto::commands::{
    response, IDENTIFY, NEWNOTIFY, NEWSYNC, NOOP, SEQ_HEARTBEAT, SEQ_IDENTIFY,
};
use crate::proto::longlink::encode;

fn frame(cmd: u32, seq: u32, body: &[u8]) -> Vec<u8> {
    encode(cmd, seq, body)
}

#[derive(Debug, PartialEq, Eq)]
enum Ev {
    Frame(u64, u32, u32, Vec<u8>, bool),
    Skipped(u64, u64),
    Oversize(u64, u32),
}

/// The framer's events on `chunks` (with gaps before the chunks `gaps`
/// name), a streamed body's parts gathered into its frame's body.
fn collect(fr: &mut Framer, chunks: &[(u64, &[u8])], gaps: &[(usize, u64)]) -> Vec<Ev> {
    let mut evs = Vec::new();
    let mut parts: Option<(u64, Vec<u8>)> = None;
    let mut out = |e: FramerEvent<'_>| {
        evs.push(match e {
            FramerEvent::Frame {
                offset,
                header,
                body,
                after_gap,
            } => {
                let mut b = parts
                    .take()
                    .filter(|p| p.0 == offset)
                    .map_or(vec![], |p| p.1);
                b.extend_from_slice(body);
                Ev::Frame(offset, header.cmd, header.seq, b, after_gap)
            }
            FramerEvent::BodyPart { offset, bytes, .. } => {
                match &mut parts {
                    Some((o, b)) if *o == offset => b.extend_from_slice(bytes),
                    _ => parts = Some((offset, bytes.to_vec())),
                }
                return;
            }
            FramerEvent::Skipped { offset, len, .. } => Ev::Skipped(offset, len),
            FramerEvent::Oversize { offset, header } => Ev::Oversize(offset, header.len),
        })
    };
    for (i, (off, c)) in chunks.iter().enumerate() {
        for (gi, glen) in gaps {
            if *gi == i {
                fr.gap(*glen, &mut out);
            }
        }
        fr.feed(*off, c, &mut out);
    }
    fr.finish(&mut out);
    evs
}

/// Every split of `s` into two chunks gives `want`.
fn assert_every_cut(s: &[u8], want: &[Ev]) {
    for cut in 0..=s.len() {
        let (a, b) = s.split_at(cut);
        assert_eq!(
            collect(&mut Framer::default(), &[(0, a), (cut as u64, b)], &[]),
            want,
            "cut {cut}"
        );
    }
}

#[test]
fn many_frames_in_one_chunk_and_one_frame_over_many() {
    let mut s = frame(NEWSYNC, 1, b"abc");
    s.extend(frame(response(NEWSYNC), 1, b""));
    s.extend(frame(NEWNOTIFY, 0, &[7; 40]));
    let want = vec![
        Ev::Frame(0, 121, 1, b"abc".to_vec(), false),
        Ev::Frame(19, response(NEWSYNC), 1, vec![], false),
        Ev::Frame(35, 24, 0, vec![7; 40], false),
    ];
    assert_eq!(collect(&mut Framer::default(), &[(0, &s)], &[]), want);
    // Every split into two and into single bytes gives the same frames.
    assert_every_cut(&s, &want);
    let bytes: Vec<(u64, &[u8])> = (0..s.len()).map(|i| (i as u64, &s[i..i + 1])).collect();
    assert_eq!(collect(&mut Framer::default(), &bytes, &[]), want);
}

#[test]
fn resyncs_after_garbage() {
    let mut s = b"GET / HTTP/1.1\r\n\r\n".to_vec(); // 18 bytes of garbage
    s.extend(frame(IDENTIFY, SEQ_IDENTIFY, b"xy"));
    let want = vec![
        Ev::Skipped(0, 18),
        Ev::Frame(18, 205, SEQ_IDENTIFY, b"xy".to_vec(), false),
    ];
    assert_every_cut(&s, &want);
}

#[test]
fn resyncs_after_a_gap_that_cut_a_frame() {
    let f1 = frame(NEWSYNC, 1, &[1; 30]);
    let f2 = frame(NEWSYNC, 2, &[2; 10]);
    // Deliver the first 20 bytes of f1, lose 26 bytes (rest of f1), then f2 after 0..5 garbage bytes.
    for junk in 0..5usize {
        let mut tail = vec![0xAA; junk];
        tail.extend(&f2);
        let evs = collect(
            &mut Framer::default(),
            &[(0, &f1[..20]), (46, &tail)],
            &[(1, 26)],
        );
        let mut want = vec![Ev::Skipped(0, 20)];
        if junk > 0 {
            want.push(Ev::Skipped(46, junk as u64));
        }
        want.push(Ev::Frame(46 + junk as u64, 121, 2, vec![2; 10], true));
        assert_eq!(evs, want, "junk {junk}");
    }
}

#[test]
fn an_over_cap_frame_is_reported_and_skipped_to_the_next_chain() {
    let mut big = Header::new(NEWSYNC, 1, 100).emit().to_vec();
    big.extend([0u8; 100]);
    big.extend(frame(NOOP, SEQ_HEARTBEAT, b""));
    for cut in [10, 16, 50, 116, 120] {
        let mut fr = Framer::new(64);
        let evs = collect(&mut fr, &[(0, &big[..cut]), (cut as u64, &big[cut..])], &[]);
        // One frame after it, then the end: a chain that runs to the end.
        assert_eq!(
            evs,
            vec![
                Ev::Oversize(0, 116),
                Ev::Skipped(0, 116),
                Ev::Frame(116, 6, SEQ_HEARTBEAT, vec![], false)
            ],
            "cut {cut}"
        );
        assert_eq!(fr.skipped(), 116);
    }
}

#[test]
fn every_truncated_prefix_is_safe() {
    let mut s = b"junk".to_vec();
    s.extend(frame(NEWSYNC, 1, b"hello"));
    s.extend(frame(response(NEWSYNC), 1, b"world!"));
    for n in 0..=s.len() {
        let evs = collect(&mut Framer::default(), &[(0, &s[..n])], &[]);
        let frames = evs.iter().filter(|e| matches!(e, Ev::Frame(..))).count();
        let expected = usize::from(n >= 4 + 21) + usize::from(n >= 4 + 21 + 22);
        assert_eq!(frames, expected, "prefix {n}: {evs:?}");
    }
}

#[test]
fn frames_survive_any_chunking_and_interleaved_garbage() {
    use proptest::prelude::*;
    let strategy = (
        proptest::collection::vec((0u32..300, any::<u32>(), 0usize..60, 0usize..20), 1..12),
        proptest::collection::vec(1usize..40, 1..30),
    );
    proptest!(ProptestConfig::with_cases(200), |((spec, cuts) in strategy)| {
        let mut stream = Vec::new();
        let mut want = Vec::new();
        for (i, (cmd, seq, blen, junk)) in spec.iter().enumerate() {
            // Garbage made of 0xEE bytes never looks like a header.
            if i > 0 { stream.extend(std::iter::repeat_n(0xEEu8, *junk)); }
            if i > 0 && *junk > 0 { want.push(Ev::Skipped(stream.len() as u64 - *junk as u64, *junk as u64)); }
            let body: Vec<u8> = (0..*blen).map(|b| b as u8).collect();
            want.push(Ev::Frame(stream.len() as u64, *cmd, *seq, body.clone(), false));
            stream.extend(frame(*cmd, *seq, &body));
        }
        let mut chunks = Vec::new();
        let mut pos = 0;
        let mut k = 0;
        while pos < stream.len() {
            let n = cuts[k % cuts.len()].min(stream.len() - pos);
            chunks.push((pos as u64, &stream[pos..pos + n]));
            pos += n;
            k += 1;
        }
        prop_assert_eq!(&collect(&mut Framer::default(), &chunks, &[]), &want);
        // Streamed, the parts make the same bodies.
        let mut streamed = Framer::default().stream_bodies(|_| true);
        prop_assert_eq!(collect(&mut streamed, &chunks, &[]), want);
    });
}

#[cfg(test)]
mod skip_body_tests {
    use super::*;
    use crate::proto::commands::{IDENTIFY, NEWSYNC};

    /// Frames with unwanted bodies are reported at their last byte with an
    /// empty body, whatever the chunking; wanted bodies are assembled.
    #[test]
    fn unwanted_bodies_are_counted_off() {
        let mut s = Vec::new();
        for (cmd, len) in [
            (NEWSYNC, 40usize),
            (IDENTIFY, 30),
            (NEWSYNC, 0),
            (NEWSYNC, 3),
        ] {
            s.extend(Header::new(cmd, 1, len).emit());
            s.extend(std::iter::repeat_n(cmd as u8, len));
        }
        for step in [1, 5, 16, 17, 1000] {
            let mut fr = Framer::default().keep_bodies(|h| h.cmd == IDENTIFY);
            let mut got = Vec::new();
            let mut pos = 0;
            while pos < s.len() {
                let n = step.min(s.len() - pos);
                fr.feed(pos as u64, &s[pos..pos + n], &mut |e| {
                    if let FramerEvent::Frame {
                        offset,
                        header,
                        body,
                        ..
                    } = e
                    {
                        got.push((
                            offset,
                            header.cmd,
                            header.body_len(),
                            body.to_vec(),
                            pos + n,
                        ));
                    }
                });
                pos += n;
            }
            let offsets: Vec<(u64, u32, usize, usize)> =
                got.iter().map(|g| (g.0, g.1, g.2, g.3.len())).collect();
            assert_eq!(
                offsets,
                [
                    (0, 121, 40, 0),
                    (56, 205, 30, 30),
                    (102, 121, 0, 0),
                    (118, 121, 3, 0)
                ],
                "step {step}"
            );
            assert_eq!(got[1].3, vec![205u8; 30]);
            // Reported once the last byte arrived, not earlier.
            for (g, end) in got.iter().zip([56usize, 102, 118, 137]) {
                assert!(g.4 >= end, "step {step}: frame at {} reported early", g.0);
            }
        }
    }
}
