use std::fmt;

/// A TCP sequence number with wrap-aware arithmetic (RFC 793 / 1982 serial
/// number comparison): `a - b` is the signed distance, valid while the two
/// are less than 2^31 apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// `self + n` modulo 2^32.
    pub fn plus(self, n: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(n))
    }

    /// Signed distance `self - other`.
    pub fn diff(self, other: SeqNumber) -> i64 {
        self.0.wrapping_sub(other.0) as i32 as i64
    }

    /// `self` comes after `other` in sequence space.
    pub fn after(self, other: SeqNumber) -> bool {
        self.diff(other) > 0
    }
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_across_the_wrap() {
        let a = SeqNumber(u32::MAX - 1);
        let b = a.plus(5);
        assert_eq!(b, SeqNumber(3));
        assert_eq!(b.diff(a), 5);
        assert_eq!(a.diff(b), -5);
        assert!(b.after(a));
        assert!(!a.after(b));
        assert!(!a.after(a));
    }

    #[test]
    fn half_the_space_is_the_limit() {
        let a = SeqNumber(0);
        assert_eq!(a.plus(0x7FFF_FFFF).diff(a), 0x7FFF_FFFF);
        assert_eq!(a.plus(0x8000_0000).diff(a), -0x8000_0000);
    }
}
