//! Long-link framing for the server and client: the thin tokio adapter
//! ([`Connection`]) over the shared codec in [`crate::proto::longlink`],
//! which does the check-then-parse ([`longlink::check`]: frame length cap,
//! header checks, errors) and the encoding ([`encode`]). This file keeps
//! the read buffer, the slow-peer limit and whole-frame writes.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::proto::longlink::{self, Header, HEADER_LEN};
pub use crate::proto::longlink::{encode, FrameError};

/// The frame limit the server and the client share (header included):
/// the client reads answers up to it, the server reads requests up to its
/// `--max-frame` (this by default), and every sync page the server sends
/// fits it whatever `--max-frame` says ([`page_bytes`]).
pub const DEFAULT_MAX_FRAME_LEN: u32 = 1 << 20;

/// Room a newsync answer needs besides its messages: the frame header and
/// the NewSyncResponse's other fields (Ret, CmdList count, ContinueFlag,
/// the SyncKey buffer, Status; under 100 bytes), rounded up.
pub const PAGE_OVERHEAD: u32 = 512;

/// Bytes of messages ([`crate::net::store::wire_len`]) one sync page may
/// carry so that its answer fits a frame of `max_frame_len` and of the
/// shared limit, [`DEFAULT_MAX_FRAME_LEN`], whichever is smaller. A
/// message over this can never be delivered: the server refuses it when it
/// is sent.
pub fn page_bytes(max_frame_len: u32) -> usize {
    max_frame_len
        .min(DEFAULT_MAX_FRAME_LEN)
        .saturating_sub(PAGE_OVERHEAD) as usize
}

/// Room made in the read buffer when it runs short.
const READ_CHUNK: usize = 8 << 10;

/// A new connection's read buffer: a long-link request is small, and ten
/// thousand idle connections should not hold 8 KiB each.
const INITIAL_BUF: usize = 1 << 10;

/// Less free room than this in the buffer: make [`READ_CHUNK`] more.
const MIN_READ: usize = 512;

/// [`longlink::check`] as a `Result`: `Ok(Some(header))` when a whole
/// frame (`header.len` bytes) is at the start of `buf`, `Ok(None)` when
/// more bytes are needed, the error as soon as the bytes rule a frame out.
pub fn check(buf: &[u8], cap: u32) -> Result<Option<Header>, FrameError> {
    match longlink::check(buf, cap) {
        longlink::Check::Complete(header, _) => Ok(Some(header)),
        longlink::Check::Incomplete(_) => Ok(None),
        longlink::Check::Invalid(e) => Err(e),
    }
}

/// One whole frame: header and body (copied out of the read buffer so the
/// buffer can take the next bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub header: Header,
    pub body: Vec<u8>,
}

impl Frame {
    pub fn new(cmd: u32, seq: u32, body: Vec<u8>) -> Frame {
        Frame {
            header: Header::new(cmd, seq, body.len()),
            body,
        }
    }

    /// Header and body as sent on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self.header.cmd, self.header.seq, &self.body)
    }
}

/// Why reading a frame failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("reading from the connection: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("the peer closed the connection {have} bytes into a frame")]
    Truncated { have: usize },
    /// A frame begun and not complete within the limit (a slowloris peer).
    #[error("frame not complete {} s after its first byte ({have} bytes received)", limit.as_secs_f64())]
    Slow { have: usize, limit: Duration },
}

/// A framed long-link connection over any byte stream.
#[derive(Debug)]
pub struct Connection<S> {
    stream: S,
    buf: Vec<u8>,
    cap: u32,
    /// When the first buffered byte arrived (None: nothing buffered).
    begun: Option<Instant>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    pub fn new(stream: S, cap: u32) -> Self {
        Connection {
            stream,
            buf: Vec::with_capacity(INITIAL_BUF),
            cap,
            begun: None,
        }
    }

    /// Bytes received and not yet framed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next frame; `None` when the peer closed the connection at a
    /// frame boundary. Cancel safe: bytes read stay in the buffer.
    pub async fn read_frame(&mut self) -> Result<Option<Frame>, ReadError> {
        self.read_frame_within(None).await
    }

    /// [`read_frame`](Self::read_frame), and once a frame has begun (a
    /// byte of it is buffered) the rest must arrive within `limit` of
    /// that byte: a peer that trickles a frame fails with
    /// [`ReadError::Slow`] however steadily it sends. Cancel safe.
    pub async fn read_frame_within(
        &mut self,
        limit: Option<Duration>,
    ) -> Result<Option<Frame>, ReadError> {
        loop {
            match longlink::check(&self.buf, self.cap) {
                longlink::Check::Complete(header, n) => {
                    let body = self.buf[HEADER_LEN..n].to_vec();
                    self.consume(n);
                    return Ok(Some(Frame { header, body }));
                }
                longlink::Check::Invalid(e) => return Err(e.into()),
                longlink::Check::Incomplete(_) => {}
            }
            // `check` bounds a frame by `cap`, so the buffer stays under
            // cap + READ_CHUNK.
            let n = match (limit, self.begun) {
                (Some(limit), Some(begun)) => {
                    match tokio::time::timeout_at(begun + limit, self.fill()).await {
                        Ok(r) => r?,
                        Err(_) => {
                            return Err(ReadError::Slow {
                                have: self.buf.len(),
                                limit,
                            })
                        }
                    }
                }
                _ => self.fill().await?,
            };
            if n == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ReadError::Truncated {
                        have: self.buf.len(),
                    })
                };
            }
        }
    }

    /// Reads once, straight into the buffer's free room (no bounce buffer
    /// held in every connection's future). Cancel safe.
    async fn read_more(&mut self) -> io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < MIN_READ {
            self.buf.reserve(READ_CHUNK);
        }
        self.stream.read_buf(&mut self.buf).await
    }

    /// Reads once more into the buffer; returns the bytes read (0 at the
    /// end of the stream). Cancel safe. For protocols other than frames
    /// on the same port (the short link's HTTP).
    pub async fn fill(&mut self) -> io::Result<usize> {
        let was_empty = self.buf.is_empty();
        let n = self.read_more().await?;
        if was_empty && n > 0 {
            self.begun = Some(Instant::now());
        }
        Ok(n)
    }

    /// The bytes received and not yet consumed.
    pub fn buffer(&self) -> &[u8] {
        &self.buf
    }

    /// Drops the first `n` buffered bytes. What stays (a pipelined next
    /// frame) counts as begun now.
    pub fn consume(&mut self, n: usize) {
        self.buf.drain(..n.min(self.buf.len()));
        self.begun = (!self.buf.is_empty()).then(Instant::now);
    }

    /// Writes one frame and flushes.
    pub async fn write_frame(&mut self, cmd: u32, seq: u32, body: &[u8]) -> io::Result<()> {
        self.stream.write_all(&encode(cmd, seq, body)).await?;
        self.stream.flush().await
    }

    /// Writes raw bytes (tests and fault injection).
    pub async fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Closes the write side.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.stream.shutdown().await
    }

    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::longlink::HeaderError;

    #[test]
    fn complete_incomplete_invalid() {
        let f = encode(121, 7, b"abc");
        for cut in 0..f.len() {
            assert_eq!(check(&f[..cut], 1024), Ok(None), "prefix of {cut}");
        }
        let h = check(&f, 1024).unwrap().unwrap();
        assert_eq!((h.cmd, h.seq, h.len), (121, 7, 19));
        // Two frames in one buffer: the first is reported.
        let mut two = f.clone();
        two.extend_from_slice(&encode(6, 0xFFFF_FFFF, b""));
        assert_eq!(check(&two, 1024).unwrap().unwrap().len, 19);
    }

    #[test]
    fn bad_prefixes_fail_early() {
        assert_eq!(
            check(&[0, 0x10, 0, 0], 1024),
            Err(FrameError::Oversize {
                len: 0x0010_0000,
                cap: 1024
            })
        );
        assert_eq!(
            check(&[0, 0, 0, 3], 1024),
            Err(FrameError::Header(HeaderError::TooShort(3)))
        );
        assert_eq!(
            check(b"\0\0\0\x20GE", 1024),
            Err(FrameError::Header(HeaderError::HeaderLen(0x4745)))
        );
        assert_eq!(
            check(&[0, 0, 0, 0x20, 0, 0x10, 0, 2], 1024),
            Err(FrameError::Header(HeaderError::Version(2)))
        );
        // Text is garbage, not an oversize frame.
        assert!(matches!(
            check(b"GET / HTTP/1.1\r\n", 1 << 20),
            Err(FrameError::Header(HeaderError::HeaderLen(_)))
        ));
        // With only the length there, "GET " is over any cap.
        assert!(matches!(
            check(b"GET ", 1 << 20),
            Err(FrameError::Oversize { .. })
        ));
    }
}
