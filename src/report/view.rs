//! How the tables show what they show, the same for every command: the
//! width they fit ([`View::width`]), absolute or relative time ([`Times`]),
//! and durations with their unit ([`ms`], [`secs`]). JSON never depends on
//! it: it keeps RFC 3339 times and integer microseconds (`*_us` keys).

use std::sync::{Arc, OnceLock};

use unicode_width::UnicodeWidthStr;

use crate::capture::{Error, Linktype, Mapped, Packet, PacketSource, ReadStats, Timestamp};

/// Display options of the tables and text reports.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// Display columns the output fits in; `None` never cuts (`--wide`, or
    /// standard output that is not a terminal, without `COLUMNS`).
    pub width: Option<usize>,
    pub time: Times,
}

impl View {
    /// `text` with each line wrapped at spaces to the width (continuation
    /// lines indented two spaces; a word wider than the line is broken), or
    /// as it is without a width.
    pub fn wrap(&self, text: &str) -> String {
        wrap(text, self.width)
    }
}

/// [`View::wrap`] for a width.
pub fn wrap(text: &str, width: Option<usize>) -> String {
    {
        let Some(width) = width else {
            return text.to_owned();
        };
        let width = width.max(20);
        let mut out = String::with_capacity(text.len() + 8);
        for (n, line) in text.split('\n').enumerate() {
            if n > 0 {
                out.push('\n');
            }
            if line.width() <= width {
                out.push_str(line);
                continue;
            }
            let indent = line.len() - line.trim_start().len();
            let cont = " ".repeat(indent + 2);
            let mut cur = line[..indent].to_owned();
            let mut fresh = true;
            for word in line[indent..].split(' ') {
                let mut word = word;
                loop {
                    let sep = usize::from(!fresh);
                    if cur.width() + sep + word.width() <= width {
                        if !fresh {
                            cur.push(' ');
                        }
                        cur.push_str(word);
                        fresh = false;
                        break;
                    }
                    if fresh {
                        // Wider than a whole line: broken where the line ends.
                        let room = width.saturating_sub(cur.width()).max(1);
                        let mut head = super::fit::prefix(word, room);
                        if head.is_empty() {
                            head = &word[..word.chars().next().map_or(0, char::len_utf8)];
                        }
                        cur.push_str(head);
                        word = &word[head.len()..];
                    }
                    out.push_str(&cur);
                    out.push('\n');
                    cur = cont.clone();
                    fresh = true;
                    if word.is_empty() {
                        break;
                    }
                }
            }
            out.push_str(&cur);
        }
        out
    }
}

/// How timestamps are shown in tables: RFC 3339 (absolute, the default), or
/// seconds since the capture's first packet (relative, tshark's default).
#[derive(Debug, Clone, Default)]
pub struct Times {
    pub relative: bool,
    /// The capture's first packet, set by [`Times::watch`].
    first: Arc<OnceLock<Timestamp>>,
}

impl Times {
    pub fn relative() -> Times {
        Times {
            relative: true,
            ..Times::default()
        }
    }

    /// Relative times count from `ts` (the first call wins).
    pub fn start_at(&self, ts: Timestamp) {
        let _ = self.first.set(ts);
    }

    /// A packet source that notes its first packet's time for these times
    /// (wrap the source a run reads).
    pub fn watch<'a, P: PacketSource + ?Sized>(&'a self, source: &'a mut P) -> Watched<'a, P> {
        Watched {
            inner: source,
            times: self,
        }
    }

    /// `ts` as the tables show it: RFC 3339, or seconds since the first
    /// packet at the capture's precision (`12.345678`).
    pub fn show(&self, ts: &Timestamp) -> String {
        if !self.relative {
            return ts.to_rfc3339();
        }
        let first = self.first.get().copied().unwrap_or(*ts);
        let ns = ts.as_nanos() - first.as_nanos();
        let sign = if ns < 0 { "-" } else { "" };
        let ns = ns.unsigned_abs();
        let secs = ns / 1_000_000_000;
        let digits = ts.digits.min(9) as usize;
        if digits == 0 {
            return format!("{sign}{secs}");
        }
        let frac = format!("{:09}", ns % 1_000_000_000);
        format!("{sign}{secs}.{}", &frac[..digits])
    }
}

/// A packet source whose first packet sets the start of relative times.
pub struct Watched<'a, P: ?Sized> {
    inner: &'a mut P,
    times: &'a Times,
}

impl<P: PacketSource + ?Sized> PacketSource for Watched<'_, P> {
    fn next_packet(&mut self) -> Result<Option<Packet<'_>>, Error> {
        let p = self.inner.next_packet()?;
        if let Some(p) = &p {
            self.times.start_at(p.ts);
        }
        Ok(p)
    }

    fn linktypes(&self) -> &[Linktype] {
        self.inner.linktypes()
    }

    fn stats(&self) -> ReadStats {
        self.inner.stats()
    }

    fn read_error(&self) -> Option<String> {
        self.inner.read_error()
    }

    fn mapped(&self) -> Option<Mapped> {
        self.inner.mapped()
    }
}

/// A latency or interval in milliseconds (the unit goes in the header):
/// one decimal, three below 1 ms (microsecond precision): `794.7`, `0.505`.
pub fn ms(us: u64) -> String {
    if us < 1000 {
        format!("{}.{:03}", us / 1000, us % 1000)
    } else {
        format!("{:.1}", us as f64 / 1000.0)
    }
}

/// A duration in seconds (the unit goes in the header), millisecond
/// precision: `1.537`.
pub fn secs(ns: i64) -> String {
    let ns = ns.max(0) as u64;
    let ms = (ns + 500_000) / 1_000_000;
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(ms(794_668), "794.7");
        assert_eq!(ms(505), "0.505");
        assert_eq!(ms(0), "0.000");
        assert_eq!(ms(1_000), "1.0");
        assert_eq!(secs(1_536_908_000), "1.537");
        assert_eq!(secs(45_000), "0.000");
        assert_eq!(secs(-5), "0.000");
    }

    #[test]
    fn relative_times_count_from_the_first_packet() {
        let t = Times::relative();
        t.start_at(Timestamp::new(100, 500_000_000, 6));
        t.start_at(Timestamp::new(1, 0, 6)); // the first call wins
        assert_eq!(t.show(&Timestamp::new(112, 845_678_000, 6)), "12.345678");
        assert_eq!(t.show(&Timestamp::new(100, 400_000_000, 9)), "-0.100000000");
        assert_eq!(t.show(&Timestamp::new(103, 0, 0)), "2");
        let abs = Times::default();
        assert_eq!(abs.show(&Timestamp::new(0, 0, 0)), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn text_wraps_at_the_width() {
        let v = View {
            width: Some(24),
            ..View::default()
        };
        let s = v.wrap("MMTLS records: 204 (0x15: 47, 0x16: 61); plaintext 54\nshort");
        assert!(s.lines().all(|l| l.width() <= 24), "{s}");
        assert_eq!(
            s.split_whitespace().collect::<Vec<_>>().join(" "),
            "MMTLS records: 204 (0x15: 47, 0x16: 61); plaintext 54 short"
        );
        let long = v.wrap(&"x".repeat(60));
        assert!(long.lines().all(|l| l.width() <= 24), "{long}");
        assert_eq!(long.replace(['\n', ' '], ""), "x".repeat(60));
        assert_eq!(View::default().wrap("a b"), "a b");
    }
}
