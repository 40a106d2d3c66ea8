//! Content coding: gzip, x-gzip and deflate (zlib or raw) bodies decoded
//! under the body cap.

use flate2::{Crc, Decompress, FlushDecompress, Status};

use super::{size, Message};

/// Output buffer of the inflater.
pub(super) const INFLATE_BUF: usize = 32 << 10;

/// Decodes `msg.body` from its Content-Encoding (gzip, x-gzip, deflate as
/// zlib or raw; several codings are undone in reverse order), never past
/// `max_body` bytes. On invalid data the wire body stays.
pub(crate) fn decode_body(msg: &mut Message, max_body: usize) {
    let Some(enc) = msg.encoding.as_deref() else {
        return;
    };
    if msg.body.is_empty() {
        return;
    }
    let codings: Vec<String> = enc
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != "identity")
        .collect();
    if codings.is_empty() {
        return;
    }
    if let Some(c) = codings
        .iter()
        .find(|c| !matches!(c.as_str(), "gzip" | "x-gzip" | "deflate"))
    {
        msg.problems
            .push(format!("content-encoding {c}: not decoded"));
        return;
    }
    let mut cur: Option<Vec<u8>> = None;
    let mut notes = Vec::new();
    for c in codings.iter().rev() {
        let input = cur.as_deref().unwrap_or(&msg.body);
        match inflate(c, input, max_body, &mut notes) {
            Ok(v) => cur = Some(v),
            Err(e) => {
                msg.problems.append(&mut notes);
                msg.problems.push(e);
                return;
            }
        }
    }
    if let Some(v) = cur {
        msg.body = v;
        msg.decoded = true;
    }
    msg.problems.append(&mut notes);
}

pub(super) enum Inflated {
    /// The stream ended after this many input bytes.
    Done(usize),
    /// The input ended first.
    Truncated,
    /// The output reached the cap.
    OverCap,
}

pub(super) fn over_cap_note(name: &str, cap: usize) -> String {
    format!(
        "{name}: decoded body over {} cap: kept the first {}",
        size(cap),
        size(cap)
    )
}

/// Undoes one coding. Err: invalid data (with the byte it was found at).
pub(super) fn inflate(
    name: &str,
    input: &[u8],
    cap: usize,
    notes: &mut Vec<String>,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    if name != "deflate" {
        gunzip(name, input, &mut out, cap, notes)?;
        return Ok(out);
    }
    // "deflate" is zlib by the RFC; raw deflate is common too.
    let zlib = looks_zlib(input);
    let mut r = inflate_stream(Decompress::new(zlib), input, &mut out, cap, None);
    if zlib && r.is_err() {
        out.clear();
        r = match inflate_stream(Decompress::new(false), input, &mut out, cap, None) {
            Ok(x) => Ok(x),
            Err(_) => r,
        };
    }
    match r {
        Ok(Inflated::Done(n)) if n < input.len() => notes.push(format!(
            "{name}: {} bytes after the end of the compressed data",
            input.len() - n
        )),
        Ok(Inflated::Done(_)) => {}
        Ok(Inflated::Truncated) => notes.push(format!(
            "{name}: compressed data ends early at byte {}",
            input.len()
        )),
        Ok(Inflated::OverCap) => notes.push(over_cap_note(name, cap)),
        Err(at) => return Err(format!("{name}: invalid data at byte {at}")),
    }
    Ok(out)
}

pub(super) fn looks_zlib(b: &[u8]) -> bool {
    b.len() >= 2
        && b[0] & 0x0f == 8
        && b[0] >> 4 <= 7
        && (u16::from(b[0]) << 8 | u16::from(b[1])) % 31 == 0
}

/// gzip members, one after the other.
pub(super) fn gunzip(
    name: &str,
    input: &[u8],
    out: &mut Vec<u8>,
    cap: usize,
    notes: &mut Vec<String>,
) -> Result<(), String> {
    let ends_early = |notes: &mut Vec<String>| {
        notes.push(format!(
            "{name}: compressed data ends early at byte {}",
            input.len()
        ))
    };
    let mut pos = 0;
    loop {
        let h = match gzip_header(&input[pos..]) {
            Ok(h) => h,
            Err(None) => {
                ends_early(notes);
                return Ok(());
            }
            Err(Some(at)) => return Err(format!("{name}: invalid data at byte {}", pos + at)),
        };
        let body = pos + h;
        let mut crc = Crc::new();
        match inflate_stream(
            Decompress::new(false),
            &input[body..],
            out,
            cap,
            Some(&mut crc),
        ) {
            Err(at) => return Err(format!("{name}: invalid data at byte {}", body + at)),
            Ok(Inflated::Truncated) => {
                ends_early(notes);
                return Ok(());
            }
            Ok(Inflated::OverCap) => {
                notes.push(over_cap_note(name, cap));
                return Ok(());
            }
            Ok(Inflated::Done(n)) => {
                let t = body + n;
                let Some(tr) = input.get(t..t + 8) else {
                    ends_early(notes);
                    return Ok(());
                };
                let want_crc = u32::from_le_bytes([tr[0], tr[1], tr[2], tr[3]]);
                let want_len = u32::from_le_bytes([tr[4], tr[5], tr[6], tr[7]]);
                if crc.sum() != want_crc || crc.amount() != want_len {
                    notes.push(format!(
                        "{name}: CRC or length in the trailer at byte {t} does not match"
                    ));
                }
                pos = t + 8;
                if pos >= input.len() {
                    return Ok(());
                }
                if !input[pos..].starts_with(&[0x1f, 0x8b]) {
                    notes.push(format!(
                        "{name}: {} bytes after the end of the compressed data",
                        input.len() - pos
                    ));
                    return Ok(());
                }
            }
        }
    }
}

/// Length of a gzip member header. Err(None): truncated; Err(Some(at)):
/// invalid at byte `at`.
pub(super) fn gzip_header(b: &[u8]) -> Result<usize, Option<usize>> {
    for (k, ok) in [
        (0, b.first().is_none_or(|&x| x == 0x1f)),
        (1, b.get(1).is_none_or(|&x| x == 0x8b)),
        (2, b.get(2).is_none_or(|&x| x == 8)),
        (3, b.get(3).is_none_or(|&x| x & 0xe0 == 0)),
    ] {
        if !ok {
            return Err(Some(k));
        }
    }
    if b.len() < 10 {
        return Err(None);
    }
    let flg = b[3];
    let mut p = 10;
    if flg & 4 != 0 {
        let x = b.get(p..p + 2).ok_or(None)?;
        p += 2 + usize::from(u16::from_le_bytes([x[0], x[1]]));
    }
    for bit in [8, 16] {
        if flg & bit != 0 {
            let z = b
                .get(p..)
                .and_then(|r| r.iter().position(|&c| c == 0))
                .ok_or(None)?;
            p += z + 1;
        }
    }
    if flg & 2 != 0 {
        p += 2;
    }
    if p > b.len() {
        Err(None)
    } else {
        Ok(p)
    }
}

/// Inflates one deflate (or zlib) stream from `input` into `out`, never
/// past `cap` bytes of `out` in all. Err: the input byte where the data
/// turned out invalid.
pub(super) fn inflate_stream(
    mut d: Decompress,
    input: &[u8],
    out: &mut Vec<u8>,
    cap: usize,
    mut crc: Option<&mut Crc>,
) -> Result<Inflated, usize> {
    let mut buf = vec![0u8; INFLATE_BUF];
    let total_in = |d: &Decompress| usize::try_from(d.total_in()).unwrap_or(usize::MAX);
    loop {
        let in0 = total_in(&d);
        let out0 = d.total_out();
        let status = d
            .decompress(
                input.get(in0..).unwrap_or(&[]),
                &mut buf,
                FlushDecompress::None,
            )
            .map_err(|_| total_in(&d))?;
        let produced = usize::try_from(d.total_out() - out0)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let room = cap.saturating_sub(out.len());
        let keep = produced.min(room);
        if let Some(c) = crc.as_deref_mut() {
            c.update(&buf[..keep]);
        }
        out.extend_from_slice(&buf[..keep]);
        if produced > room {
            return Ok(Inflated::OverCap);
        }
        if matches!(status, Status::StreamEnd) {
            return Ok(Inflated::Done(total_in(&d)));
        }
        if produced == 0 && total_in(&d) == in0 {
            return Ok(Inflated::Truncated);
        }
    }
}
