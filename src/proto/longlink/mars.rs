//! The Tencent Mars long-link framing: a 20-byte big-endian header
//! (`head_length` = 20, `client_version`, `cmdid`, `seq`, `body_length`)
//! and a body. The length on the wire is the body's; the frame is
//! `head_length + body_length` bytes (Tencent/mars
//! `mars/stn/proto/longlink_packer.cc`, docs/protocol.md section 2).
//!
//! [`MarsHeader`] is the codec (read / parse / validate / emit, [`encode`],
//! [`check`]); [`Variant`] lets the one [`super::Framer`] split either
//! framing: it reads a Mars header into the long-link [`Header`] the
//! framer and the analyzer work with (`len` the whole frame's length,
//! `header_len` 20, `version` 0), so commands, kinds, pairing, resync, the
//! size cap and the bogus-length rule are the same code for both.

use super::{
    plausible, plausible_cmd, walk_chain, Chain, FrameError, Header, HeaderError, HEADER_LEN,
};

/// Size of a Mars frame header.
pub const MARS_HEADER_LEN: usize = 20;

/// A parsed Mars header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct MarsHeader {
    /// Header length (20).
    pub head_len: u32,
    pub client_version: u32,
    pub cmd: u32,
    pub seq: u32,
    /// Body length (the header not included).
    pub body_len: u32,
}

impl MarsHeader {
    /// A header for a body of `body_len` bytes.
    pub fn new(client_version: u32, cmd: u32, seq: u32, body_len: usize) -> MarsHeader {
        MarsHeader {
            head_len: MARS_HEADER_LEN as u32,
            client_version,
            cmd,
            seq,
            body_len: body_len as u32,
        }
    }

    /// Reads the fields without judging them.
    pub fn read(b: &[u8]) -> Result<MarsHeader, HeaderError> {
        let b = b
            .get(..MARS_HEADER_LEN)
            .ok_or(HeaderError::Short(b.len()))?;
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Ok(MarsHeader {
            head_len: u32_at(0),
            client_version: u32_at(4),
            cmd: u32_at(8),
            seq: u32_at(12),
            body_len: u32_at(16),
        })
    }

    /// Reads and checks the header length (20).
    pub fn parse(b: &[u8]) -> Result<MarsHeader, HeaderError> {
        let h = MarsHeader::read(b)?;
        h.validate()?;
        Ok(h)
    }

    /// The header length is 20 (the only fixed field).
    pub fn validate(&self) -> Result<(), HeaderError> {
        if self.head_len != MARS_HEADER_LEN as u32 {
            return Err(HeaderError::HeaderLen(
                self.head_len.min(u16::MAX as u32) as u16
            ));
        }
        Ok(())
    }

    /// Writes the 20 header bytes.
    pub fn emit(&self) -> [u8; MARS_HEADER_LEN] {
        let mut b = [0u8; MARS_HEADER_LEN];
        for (i, v) in [
            self.head_len,
            self.client_version,
            self.cmd,
            self.seq,
            self.body_len,
        ]
        .into_iter()
        .enumerate()
        {
            b[i * 4..i * 4 + 4].copy_from_slice(&v.to_be_bytes());
        }
        b
    }

    /// The whole frame's length (header and body), as Mars computes it.
    pub fn frame_len(&self) -> u64 {
        u64::from(self.head_len) + u64::from(self.body_len)
    }

    /// The long-link [`Header`] the framer and the analyzer work with:
    /// `len` the whole frame's length (saturated), `header_len` 20,
    /// `version` 0 (Mars has none).
    pub fn to_header(&self) -> Header {
        Header {
            len: self.frame_len().min(u64::from(u32::MAX)) as u32,
            header_len: MARS_HEADER_LEN as u16,
            version: 0,
            cmd: self.cmd,
            seq: self.seq,
        }
    }
}

/// Header and body of a Mars frame, ready to write.
pub fn encode(client_version: u32, cmd: u32, seq: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MARS_HEADER_LEN + body.len());
    out.extend_from_slice(&MarsHeader::new(client_version, cmd, seq, body.len()).emit());
    out.extend_from_slice(body);
    out
}

/// What [`check`] finds at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarsCheck {
    /// A whole frame: its header and its length (header included).
    Complete(MarsHeader, usize),
    /// At least this many more bytes are needed.
    Incomplete(usize),
    /// The bytes present rule a frame out.
    Invalid(FrameError),
}

/// Checks the Mars frame at the start of `buf` (check-then-parse, as
/// `longlink::check`): invalid as soon as the header length is not 20 or
/// the frame is over `cap`.
pub fn check(buf: &[u8], cap: u32) -> MarsCheck {
    if buf.len() < MARS_HEADER_LEN {
        if let Some(b) = buf.get(..4) {
            let hl = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            if hl != MARS_HEADER_LEN as u32 {
                return MarsCheck::Invalid(
                    HeaderError::HeaderLen(hl.min(u16::MAX as u32) as u16).into(),
                );
            }
        }
        return MarsCheck::Incomplete(MARS_HEADER_LEN - buf.len());
    }
    let h = match MarsHeader::parse(buf) {
        Ok(h) => h,
        Err(e) => return MarsCheck::Invalid(e.into()),
    };
    if h.frame_len() > u64::from(cap) {
        let len = h.to_header().len;
        return MarsCheck::Invalid(FrameError::Oversize { len, cap });
    }
    let n = h.frame_len() as usize;
    if buf.len() >= n {
        MarsCheck::Complete(h, n)
    } else {
        MarsCheck::Incomplete(n - buf.len())
    }
}

/// Which framing a long-link direction uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Variant {
    /// WeChat's 16-byte header (packet length, 16, 1, cmd, seq).
    #[default]
    Wechat,
    /// Tencent Mars's 20-byte header; `client_version`, when known (a
    /// profile's `[mars] client_version`), must match as Mars's unpacker
    /// requires.
    Mars { client_version: Option<u32> },
}

impl Variant {
    /// Size of the variant's header.
    pub fn header_len(self) -> usize {
        match self {
            Variant::Wechat => HEADER_LEN,
            Variant::Mars { .. } => MARS_HEADER_LEN,
        }
    }

    /// The header at the start of `b` (at least [`Self::header_len`]
    /// bytes), as a long-link [`Header`], when it is plausible with
    /// frames up to `cap` bytes: fixed fields right, cmd in the request or
    /// response range (as [`plausible`]), length within the cap.
    pub fn header(self, b: &[u8], cap: u32) -> Option<Header> {
        match self {
            Variant::Wechat => Header::read(b).ok().filter(|h| plausible(h, cap)),
            Variant::Mars { client_version } => {
                let m = MarsHeader::parse(b).ok()?;
                (plausible_cmd(m.cmd)
                    && m.frame_len() <= u64::from(cap)
                    && client_version.is_none_or(|v| v == m.client_version))
                .then(|| m.to_header())
            }
        }
    }

    /// The fixed bytes of a header and their offset in it, searched for
    /// (memmem) to jump between header-like runs.
    pub(super) fn magic(self) -> (usize, [u8; 4]) {
        match self {
            Variant::Wechat => (4, [0, 0x10, 0, 1]),
            Variant::Mars { .. } => (0, [0, 0, 0, MARS_HEADER_LEN as u8]),
        }
    }

    /// A searcher for [`Self::magic`]'s bytes, made once (making one costs
    /// more than a search through a frame).
    pub(super) fn magic_finder(self) -> &'static memchr::memmem::Finder<'static> {
        use std::sync::LazyLock;
        static WECHAT: LazyLock<memchr::memmem::Finder<'static>> =
            LazyLock::new(|| memchr::memmem::Finder::new(&Variant::Wechat.magic().1).into_owned());
        static MARS: LazyLock<memchr::memmem::Finder<'static>> = LazyLock::new(|| {
            memchr::memmem::Finder::new(
                &Variant::Mars {
                    client_version: None,
                }
                .magic()
                .1,
            )
            .into_owned()
        });
        match self {
            Variant::Wechat => &WECHAT,
            Variant::Mars { .. } => &MARS,
        }
    }

    /// The framing's name in records (`layer`).
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Wechat => "longlink",
            Variant::Mars { .. } => "mars",
        }
    }

    /// [`super::chain`] over this variant's headers.
    pub fn chain(self, b: &[u8], cap: u32, max: usize) -> (usize, Chain) {
        walk_chain(b, max, self.header_len(), |rest| {
            self.header(rest, cap).map(|h| h.len as usize)
        })
    }

    /// [`super::find_chain`] over this variant's headers.
    pub fn find_chain(
        self,
        b: &[u8],
        from: usize,
        cap: u32,
        need: usize,
        at_end: bool,
    ) -> Option<usize> {
        let hl = self.header_len();
        (from..b.len().saturating_sub(hl - 1)).find(|&q| match self.chain(&b[q..], cap, need) {
            (n, _) if n >= need => true,
            (n, Chain::Exact) => at_end && n >= 1,
            _ => false,
        })
    }
}

/// The first bytes of a stream look like a Mars frame.
pub fn looks_like_mars(b: &[u8]) -> bool {
    Variant::Mars {
        client_version: None,
    }
    .header(b, super::MAX_FRAME_LEN)
    .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::commands::{NEWSYNC, NOOP, SEQ_HEARTBEAT};

    #[test]
    fn mars_codec_round_trips_byte_literals() {
        let b = [
            0, 0, 0, 20, 0x12, 0x34, 0x56, 0x78, 0, 0, 0, 6, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 2,
        ];
        let h = MarsHeader::parse(&b).unwrap();
        assert_eq!(h, MarsHeader::new(0x1234_5678, NOOP, SEQ_HEARTBEAT, 2));
        assert_eq!(h.emit(), b);
        assert_eq!(h.frame_len(), 22);
        assert_eq!(h.to_header().body_len(), 2);
        assert_eq!(
            h.to_header(),
            Header {
                len: 22,
                header_len: 20,
                version: 0,
                cmd: NOOP,
                seq: SEQ_HEARTBEAT
            }
        );
        let mut bad = b;
        bad[3] = 16;
        assert_eq!(MarsHeader::parse(&bad), Err(HeaderError::HeaderLen(16)));
        for n in 0..20 {
            assert_eq!(MarsHeader::parse(&b[..n]), Err(HeaderError::Short(n)));
        }
    }

    #[test]
    fn mars_check_and_variant() {
        let f = encode(7, NEWSYNC, 3, b"abc");
        for cut in 0..f.len() {
            let need = if cut < 20 { 20 - cut } else { f.len() - cut };
            assert_eq!(check(&f[..cut], 1024), MarsCheck::Incomplete(need), "{cut}");
        }
        assert_eq!(
            check(&f, 1024),
            MarsCheck::Complete(MarsHeader::new(7, NEWSYNC, 3, 3), 23)
        );
        assert!(matches!(
            check(&f, 22),
            MarsCheck::Invalid(FrameError::Oversize { len: 23, cap: 22 })
        ));
        assert!(matches!(check(&[0, 0, 0, 16], 1024), MarsCheck::Invalid(_)));
        let any = Variant::Mars {
            client_version: None,
        };
        assert_eq!(any.header(&f, 1024).map(|h| h.len), Some(23));
        assert_eq!(any.header(&f, 22), None);
        let v7 = Variant::Mars {
            client_version: Some(7),
        };
        let v8 = Variant::Mars {
            client_version: Some(8),
        };
        assert!(v7.header(&f, 1024).is_some());
        assert!(v8.header(&f, 1024).is_none());
        // A 16-byte header is no Mars header, and the other way round.
        let ll = super::super::encode(NEWSYNC, 3, b"abcd");
        assert!(!looks_like_mars(&ll));
        assert!(Variant::Wechat.header(&f, 1024).is_none());
        assert!(looks_like_mars(&f));
    }
}
