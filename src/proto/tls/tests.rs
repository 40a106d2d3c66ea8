use super::*;

fn rec(t: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![t, 3, 3];
    v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn split(chunks: &[&[u8]], gap_after: Option<usize>) -> Vec<String> {
    let mut s = Splitter::new();
    let mut out = Vec::new();
    let mut at = 0u64;
    for (i, c) in chunks.iter().enumerate() {
        s.feed(at, c, &mut |o| out.push(show(o)));
        at += c.len() as u64;
        if gap_after == Some(i) {
            s.gap(7, &mut |o| out.push(show(o)));
            at += 7;
        }
    }
    s.finish(&mut |o| out.push(show(o)));
    out
}

fn show(o: Output<'_>) -> String {
    match o {
        Output::Record(r) => format!("{}@{}:{}", r.index, r.stream_offset, r.raw.len()),
        Output::Skipped { stream_offset, len } => format!("skip {len}@{stream_offset}"),
    }
}

#[test]
fn headers_are_judged_by_type_version_and_length() {
    assert!(looks_like_record(&rec(22, b"abc")));
    assert!(looks_like_record(&[23, 3, 1, 0x48, 0x00]));
    assert!(!looks_like_record(&[23, 3, 1, 0x48, 0x01])); // 2^14 + 2049
    assert!(!looks_like_record(&[25, 3, 3, 0, 1]));
    assert!(!looks_like_record(&[22, 0xf1, 4, 0, 1])); // MMTLS
    assert!(!looks_like_record(&[23, 3, 3, 0, 0]));
    assert!(!looks_like_record(&[23, 3, 3, 0]));
    assert_eq!(content_type_name(21), "alert");
    assert_eq!(content_type_name(99), "unknown");
}

/// Records come out whole whatever the chunking; after a gap the splitter
/// skips to two records in a row and says how much it skipped.
#[test]
fn splits_across_chunks_and_resyncs_after_a_gap() {
    let a = rec(22, &[1; 10]);
    let b = rec(23, &[2; 20]);
    let all = [a.clone(), b.clone(), a.clone()].concat();
    let whole = split(&[&all], None);
    assert_eq!(whole, ["0@0:15", "1@15:25", "2@40:15"]);
    for cut in 1..all.len() {
        let (x, y) = all.split_at(cut);
        assert_eq!(split(&[x, y], None), whole, "cut at {cut}");
    }
    // A gap in the middle of the second record: its tail is skipped.
    let tail = [&b[10..], &a[..], &b[..]].concat();
    let out = split(&[&all[..20], &tail], Some(0));
    assert_eq!(
        out,
        ["0@0:15", "skip 5@15", "skip 15@27", "1@42:15", "2@57:25"]
    );
    // Garbage in place of a header: skipped up to the next records.
    let bad = [&a[..], b"garbage!", &b[..], &a[..]].concat();
    assert_eq!(
        split(&[&bad], None),
        ["0@0:15", "skip 8@15", "1@23:25", "2@48:15"]
    );
    // Bytes at the end that are no whole record.
    assert_eq!(split(&[&a, &b[..7]], None), ["0@0:15", "skip 7@15"]);
}

#[test]
fn handshake_messages_join_across_records_and_stay_bounded() {
    let mut h = HandshakeBuf::default();
    let msg = [&[1u8, 0, 0, 5][..], b"hello"].concat();
    assert!(h.push(&msg[..3]).is_empty());
    let got = h.push(&msg[3..]);
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].typ, got[0].body()), (1, &b"hello"[..]));
    assert_eq!(h.held(), 0);
    assert!(h.push(&[11, 0x10, 0, 0]).is_empty()); // 1 MiB certificate
    assert!(h.overflow);
    assert_eq!(h.held(), 0);
}

#[test]
fn alerts_by_name() {
    assert_eq!(alert_text(&[2, 40]), "fatal: handshake_failure");
    assert_eq!(alert_text(&[1, 0]), "warning: close_notify");
    assert_eq!(alert_text(&[1]), "1 bytes (not an alert)");
}

use proptest::prelude::*;

fn cut(stream: &[u8], chunks: &[usize]) -> (Vec<String>, u64) {
    let mut s = Splitter::new();
    let mut out = Vec::new();
    let mut skipped = 0;
    let mut at = 0usize;
    let mut i = 0;
    while at < stream.len() {
        let n = chunks[i % chunks.len()].min(stream.len() - at);
        s.feed(at as u64, &stream[at..at + n], &mut |o| match o {
            Output::Record(r) => out.push(show(Output::Record(r))),
            Output::Skipped { len, .. } => skipped += len,
        });
        at += n;
        i += 1;
    }
    s.finish(&mut |o| match o {
        Output::Record(r) => out.push(show(Output::Record(r))),
        Output::Skipped { len, .. } => skipped += len,
    });
    (out, skipped)
}

proptest! {
    /// Records and garbage in any order, fed in any chunking: the records
    /// and the bytes skipped are those of one feed of the whole, and
    /// records plus skipped bytes are exactly the bytes fed.
    #[test]
    fn any_chunking_gives_the_records_of_one_feed(
        parts in proptest::collection::vec((0u8..3, 1usize..300), 1..12),
        chunks in proptest::collection::vec(1usize..64, 1..8),
    ) {
        let mut stream = Vec::new();
        for (k, n) in parts {
            match k {
                0 => stream.extend(rec(23, &vec![0xab; n])),
                1 => stream.extend(rec(22, &vec![1; n])),
                _ => stream.extend(std::iter::repeat_n(0x99, n.min(40))),
            }
        }
        let whole = cut(&stream, &[stream.len()]);
        let chunked = cut(&stream, &chunks);
        prop_assert_eq!(&chunked, &whole);
        let rec_bytes: u64 = whole.0.iter().map(|r| r.rsplit(':').next().unwrap().parse::<u64>().unwrap()).sum();
        prop_assert_eq!(rec_bytes + whole.1, stream.len() as u64);
    }
}
