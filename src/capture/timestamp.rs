use std::fmt;

/// A capture timestamp: seconds and nanoseconds since the Unix epoch (UTC)
/// plus the number of fractional digits the capture really carries (6 for
/// microsecond pcap, 9 for nanosecond pcap, `if_tsresol` for pcapng).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
    /// Fractional digits to print (0..=9).
    pub digits: u8,
}

impl Timestamp {
    pub fn new(secs: i64, nanos: u32, digits: u8) -> Self {
        Timestamp {
            secs,
            nanos: nanos.min(999_999_999),
            digits: digits.min(9),
        }
    }

    /// Nanoseconds since the epoch, saturating.
    pub fn as_nanos(&self) -> i128 {
        self.secs as i128 * 1_000_000_000 + self.nanos as i128
    }

    /// Signed difference `self - earlier` in nanoseconds (saturating to i64).
    pub fn nanos_since(&self, earlier: &Timestamp) -> i64 {
        let d = self.as_nanos() - earlier.as_nanos();
        d.clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }

    /// RFC 3339 in UTC with exactly `digits` fractional digits, e.g.
    /// `2023-12-05T08:01:02.123456Z`. Timestamps outside the range a calendar
    /// date can show (year > 9999) fall back to `@<secs>.<frac>` so nothing
    /// is lost.
    pub fn to_rfc3339(&self) -> String {
        use std::cell::RefCell;
        use std::fmt::Write;
        thread_local! {
            // Records come many per second: format each second's date once.
            static LAST: RefCell<(i64, Option<String>)> = const { RefCell::new((i64::MIN, None)) };
        }
        let date = LAST.with(|last| {
            let mut last = last.borrow_mut();
            if last.0 != self.secs {
                let d = chrono::DateTime::from_timestamp(self.secs, 0)
                    .filter(|dt| (0..=9999).contains(&chrono::Datelike::year(dt)))
                    .map(|dt| dt.format("%Y-%m-%dT%H:%M:%S").to_string());
                *last = (self.secs, d);
            }
            last.1.clone()
        });
        let mut out = match date {
            Some(d) => d,
            None => format!("@{}", self.secs),
        };
        if self.digits > 0 {
            let mut f = String::with_capacity(10);
            let _ = write!(f, "{:09}", self.nanos);
            out.push('.');
            out.push_str(&f[..self.digits as usize]);
        }
        if !out.starts_with('@') {
            out.push('Z');
        }
        out
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_keeps_capture_precision() {
        assert_eq!(
            Timestamp::new(0, 123_456_000, 6).to_rfc3339(),
            "1970-01-01T00:00:00.123456Z"
        );
        assert_eq!(
            Timestamp::new(1_701_763_262, 5, 9).to_rfc3339(),
            "2023-12-05T08:01:02.000000005Z"
        );
        assert_eq!(
            Timestamp::new(86_400, 0, 0).to_rfc3339(),
            "1970-01-02T00:00:00Z"
        );
    }

    #[test]
    fn far_future_falls_back_to_epoch_seconds() {
        assert_eq!(
            Timestamp::new(18_446_744_073_709, 551_615_000, 6).to_rfc3339(),
            "@18446744073709.551615"
        );
    }
}
