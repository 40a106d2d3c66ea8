//! Resynchronising: finding the next plausible request or status line
//! after garbage or a gap.

use super::strip_cr;

/// Longest method token taken for a start line while resynchronising.
pub(super) const MAX_METHOD: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cand {
    Yes,
    No,
    /// Cannot tell before more bytes arrive.
    More,
}

/// The next line end, remembered across calls (positions are stream
/// offsets, so they survive the buffer moving).
#[derive(Debug, Default)]
pub(super) struct NlCache {
    /// (searched from, the first `\n` at or after it).
    found: Option<(u64, u64)>,
    /// No `\n` in [from, to).
    searched: Option<(u64, u64)>,
    line: Option<LineInfo>,
}

/// What a request-line candidate needs to know about its line.
#[derive(Debug, Clone, Copy)]
pub(super) struct LineInfo {
    /// Computed from here (candidates at or after it can use it).
    lo: u64,
    nl: u64,
    /// Offset of the SP before a final `HTTP/1.x`.
    suffix: Option<u64>,
    /// The last SP or control byte before `suffix`.
    last_bad: Option<u64>,
}

impl NlCache {
    /// Offset of the first `\n` at or after `p`; `d` starts at `off`.
    fn find(&mut self, d: &[u8], off: u64, p: u64) -> Option<u64> {
        if let Some((from, nl)) = self.found {
            if from <= p && p <= nl {
                return Some(nl);
            }
        }
        let mut from = p;
        let mut lo = p;
        if let Some((s_lo, s_to)) = self.searched {
            if s_lo <= p && p < s_to {
                from = s_to;
                lo = s_lo;
            }
        }
        let i = usize::try_from(from.saturating_sub(off))
            .unwrap_or(usize::MAX)
            .min(d.len());
        match d[i..].iter().position(|&b| b == b'\n') {
            Some(k) => {
                let nl = off + (i + k) as u64;
                self.found = Some((p, nl));
                self.searched = None;
                Some(nl)
            }
            None => {
                self.found = None;
                self.searched = Some((lo, off + d.len() as u64));
                None
            }
        }
    }

    fn line_info(&mut self, d: &[u8], off: u64, p: u64, nl: u64) -> LineInfo {
        if let Some(li) = self.line {
            if li.nl == nl && li.lo <= p {
                return li;
            }
        }
        let a = usize::try_from(p - off).unwrap_or(0);
        let b = usize::try_from(nl - off).unwrap_or(0);
        let line = strip_cr(d.get(a..b).unwrap_or(&[]));
        let suffix =
            (line.ends_with(b" HTTP/1.1") || line.ends_with(b" HTTP/1.0")).then(|| line.len() - 9);
        let last_bad = suffix.and_then(|s| {
            line[..s]
                .iter()
                .rposition(|&c| c <= b' ' || c == 0x7f)
                .map(|k| p + k as u64)
        });
        let li = LineInfo {
            lo: p,
            nl,
            suffix: suffix.map(|s| p + s as u64),
            last_bad,
        };
        self.line = Some(li);
        li
    }
}

pub(super) fn is_method_byte(b: u8) -> bool {
    b.is_ascii_uppercase() || b == b'-' || b == b'_'
}

/// Whether a plausible start line begins at `d[p]` (`d` starts at stream
/// offset `off`). `more`: further bytes may come (else undecided is no).
pub(super) fn candidate(
    d: &[u8],
    p: usize,
    off: u64,
    more: bool,
    nl: &mut NlCache,
    max_head: usize,
) -> Cand {
    let c = match status_candidate(&d[p..]) {
        Cand::No => request_candidate(d, p, off, nl, max_head),
        c => c,
    };
    match c {
        Cand::More if !more => Cand::No,
        c => c,
    }
}

/// `HTTP/1.x NNN` followed by SP, CR or LF.
pub(super) fn status_candidate(s: &[u8]) -> Cand {
    const PREFIX: &[u8] = b"HTTP/1.";
    for (k, &b) in s.iter().take(13).enumerate() {
        let ok = match k {
            0..=6 => b == PREFIX[k],
            7 => b == b'0' || b == b'1',
            8 => b == b' ',
            9..=11 => b.is_ascii_digit(),
            _ => matches!(b, b' ' | b'\r' | b'\n'),
        };
        if !ok {
            return Cand::No;
        }
    }
    if s.len() < 13 {
        Cand::More
    } else {
        Cand::Yes
    }
}

/// `METHOD SP target SP HTTP/1.x` CRLF (or LF), the target being
/// origin-form (`/...`), `*`, absolute-form (`http(s)://`) or, for CONNECT,
/// an authority; no SP or control byte inside it; the line under the head
/// cap.
pub(super) fn request_candidate(
    d: &[u8],
    p: usize,
    off: u64,
    nl: &mut NlCache,
    max_head: usize,
) -> Cand {
    let s = &d[p..];
    if !s.first().is_some_and(u8::is_ascii_uppercase) {
        return Cand::No;
    }
    let m = match s
        .iter()
        .take(MAX_METHOD + 1)
        .position(|&b| !is_method_byte(b))
    {
        Some(m) => m,
        None if s.len() <= MAX_METHOD => return Cand::More,
        None => return Cand::No,
    };
    if s[m] != b' ' {
        return Cand::No;
    }
    let t = m + 1;
    let Some(&c0) = s.get(t) else {
        return Cand::More;
    };
    let form = match c0 {
        b'/' | b'*' => Cand::Yes,
        _ if &s[..m] == b"CONNECT" => {
            if c0.is_ascii_alphanumeric() || c0 == b'[' {
                Cand::Yes
            } else {
                Cand::No
            }
        }
        _ => absolute_form(&s[t..]),
    };
    if form != Cand::Yes {
        return form;
    }
    let abs_p = off + p as u64;
    let Some(abs_nl) = nl.find(d, off, abs_p) else {
        return if s.len() >= max_head {
            Cand::No
        } else {
            Cand::More
        };
    };
    if abs_nl - abs_p >= max_head as u64 {
        return Cand::No;
    }
    let li = nl.line_info(d, off, abs_p, abs_nl);
    let abs_t = abs_p + t as u64;
    match li.suffix {
        Some(sfx) if sfx > abs_t && li.last_bad.is_none_or(|b| b < abs_t) => Cand::Yes,
        _ => Cand::No,
    }
}

pub(super) fn absolute_form(rest: &[u8]) -> Cand {
    for pfx in [&b"http://"[..], b"https://"] {
        let n = rest.len().min(pfx.len());
        if rest[..n].eq_ignore_ascii_case(&pfx[..n]) {
            return if n == pfx.len() {
                Cand::Yes
            } else {
                Cand::More
            };
        }
    }
    Cand::No
}

/// Mid-stream detection: where the first plausible request or status line
/// at or after `from` in `d` starts: `Some((p, true))`; `Some((p, false))`
/// when the candidate at `p` needs more bytes to tell (only if `more`:
/// further bytes may come); `None` when there is none.
pub fn first_start_line(d: &[u8], from: usize, more: bool) -> Option<(usize, bool)> {
    let mut nl = NlCache::default();
    (from..d.len()).find_map(
        |p| match candidate(d, p, 0, more, &mut nl, super::MAX_HEAD) {
            Cand::Yes => Some((p, true)),
            Cand::More => Some((p, false)),
            Cand::No => None,
        },
    )
}
