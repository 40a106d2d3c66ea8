/// The last `cap` bytes delivered in a direction, kept so that a
/// retransmission can be compared with what was accepted (overlap policy:
/// accepted bytes win; a retransmission with different bytes is an anomaly).
#[derive(Debug, Default)]
pub(crate) struct Ring {
    buf: Vec<u8>,
    cap: usize,
    /// Index in `buf` of the oldest byte.
    head: usize,
    len: usize,
}

impl Ring {
    pub(crate) fn new(cap: usize) -> Self {
        Ring {
            buf: Vec::new(),
            cap,
            head: 0,
            len: 0,
        }
    }

    pub(crate) fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }

    /// Appends bytes, forgetting the oldest beyond the capacity.
    pub(crate) fn push(&mut self, mut bytes: &[u8]) {
        if self.cap == 0 {
            return;
        }
        if bytes.len() >= self.cap {
            bytes = &bytes[bytes.len() - self.cap..];
            self.buf.clear();
            self.buf.extend_from_slice(bytes);
            self.head = 0;
            self.len = self.cap;
            return;
        }
        // Grow lazily up to the capacity: most streams are short. A stream
        // past a few KiB is likely long: its ring goes to the capacity at
        // once (doubling all the way copied and touched twice the memory).
        if self.buf.len() < self.cap && self.head == 0 && self.len == self.buf.len() {
            if self.buf.len() >= 4096 && self.buf.capacity() < self.cap {
                self.buf.reserve_exact(self.cap - self.buf.len());
            }
            let room = self.cap - self.buf.len();
            let n = room.min(bytes.len());
            self.buf.extend_from_slice(&bytes[..n]);
            self.len += n;
            bytes = &bytes[n..];
            if bytes.is_empty() {
                return;
            }
        }
        if self.buf.len() < self.cap {
            // Buffer not at full size but wrapped state: compact into a full-size buffer.
            let mut v = Vec::with_capacity(self.cap);
            let (a, b) = self.slices();
            v.extend_from_slice(a);
            v.extend_from_slice(b);
            v.resize(self.cap, 0);
            self.buf = v;
            self.head = 0;
        }
        let mut tail = (self.head + self.len) % self.cap;
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = (self.cap - tail).min(rest.len());
            self.buf[tail..tail + n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
            tail = (tail + n) % self.cap;
        }
        let total = self.len + bytes.len();
        if total > self.cap {
            self.head = (self.head + total - self.cap) % self.cap;
            self.len = self.cap;
        } else {
            self.len = total;
        }
    }

    fn slices(&self) -> (&[u8], &[u8]) {
        if self.head + self.len <= self.buf.len() {
            (&self.buf[self.head..self.head + self.len], &[])
        } else {
            let first = &self.buf[self.head..];
            (first, &self.buf[..self.len - first.len()])
        }
    }

    /// Byte `back` positions before the end (`back` in `1..=len`).
    fn byte_from_end(&self, back: usize) -> u8 {
        let idx = (self.head + self.len - back) % self.buf.len();
        self.buf[idx]
    }

    /// Compares `data`, which starts `back` bytes before the end of the ring,
    /// with the retained bytes. Returns (compared byte count, index in `data`
    /// of the first difference).
    pub(crate) fn compare(&self, back: u64, data: &[u8]) -> (usize, Option<usize>) {
        let mut compared = 0;
        let mut first_diff = None;
        for (i, &b) in data.iter().enumerate() {
            let Some(pos) = back.checked_sub(i as u64) else {
                break;
            };
            if pos == 0 {
                break;
            }
            if pos > self.len as u64 {
                continue; // older than what we keep: cannot verify
            }
            compared += 1;
            if first_diff.is_none() && self.byte_from_end(pos as usize) != b {
                first_diff = Some(i);
            }
        }
        (compared, first_diff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(r: &Ring) -> Vec<u8> {
        let (a, b) = r.slices();
        [a, b].concat()
    }

    #[test]
    fn a_short_stream_keeps_a_small_buffer_a_long_one_the_capacity() {
        let mut r = Ring::new(64 << 10);
        r.push(&[1; 1000]);
        assert!(r.buf.capacity() < 8 << 10, "{}", r.buf.capacity());
        for _ in 0..4 {
            r.push(&[2; 1448]);
        }
        // Past 4 KiB: the whole capacity at once, the bytes kept in order.
        assert!(r.buf.capacity() >= 64 << 10, "{}", r.buf.capacity());
        let want: Vec<u8> = [vec![1; 1000], vec![2; 4 * 1448]].concat();
        assert_eq!(contents(&r), want);
        let before = r.buf.as_ptr();
        for _ in 0..100 {
            r.push(&[3; 1448]);
        }
        assert_eq!(
            r.buf.as_ptr(),
            before,
            "no reallocation on the way to the cap"
        );
        assert_eq!(contents(&r), vec![3; 64 << 10]);
    }

    #[test]
    fn keeps_the_last_cap_bytes() {
        let mut r = Ring::new(5);
        r.push(b"ab");
        assert_eq!(contents(&r), b"ab");
        r.push(b"cde");
        assert_eq!(contents(&r), b"abcde");
        r.push(b"fg");
        assert_eq!(contents(&r), b"cdefg");
        r.push(b"0123456789");
        assert_eq!(contents(&r), b"56789");
        r.push(b"x");
        assert_eq!(contents(&r), b"6789x");
    }

    #[test]
    fn compare_finds_first_difference() {
        let mut r = Ring::new(4);
        r.push(b"abcdef"); // keeps "cdef"
        assert_eq!(r.compare(4, b"cdef"), (4, None));
        assert_eq!(r.compare(4, b"cdXf"), (4, Some(2)));
        // starts 6 back: the first two bytes are no longer kept
        assert_eq!(r.compare(6, b"ZZcd"), (2, None));
        // runs past the end: only the retained part is compared
        assert_eq!(r.compare(2, b"efgh"), (2, None));
    }
}
