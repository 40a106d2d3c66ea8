//! The byte stream under a [`Reader`](super::Reader): the capture format
//! sniffed from the first bytes (pcap or pcapng magic), and gzip detected by
//! its magic (1f 8b, never by the file name) and decompressed on the fly.

use std::io::{Cursor, Read};

use super::{pcap, pcapng, Error};

/// A stream whose first four bytes are a capture magic.
pub(super) struct Opened {
    /// The (decompressed) stream, positioned after `magic`.
    pub src: Box<dyn Read + Send>,
    /// The first four bytes of the (decompressed) stream.
    pub magic: [u8; 4],
    /// The source was gzip-compressed.
    pub gzip: bool,
    /// pcapng (otherwise one of the pcap magics).
    pub pcapng: bool,
}

/// Reads the magic, unwrapping gzip first when the source starts with its
/// magic; fails unless what follows is pcap or pcapng.
pub(super) fn open(r: Box<dyn Read + Send>, source_name: &str) -> Result<Opened, Error> {
    let mut src = r;
    let mut magic = [0u8; 4];
    let io_err = |source| Error::Io {
        source_name: source_name.to_string(),
        source,
    };
    let mut n = read_up_to(&mut *src, &mut magic).map_err(io_err)?;
    let gzip = n >= 2 && magic[..2] == [0x1f, 0x8b];
    let mut name_for_magic = source_name.to_string();
    if gzip {
        let prefix = Cursor::new(magic[..n].to_vec());
        src = Box::new(flate2::read::MultiGzDecoder::new(prefix.chain(src)));
        magic = [0; 4];
        n = read_up_to(&mut *src, &mut magic).map_err(|e| gzip_error(e, 0))?;
        name_for_magic.push_str(" (after gzip decompression)");
    }
    if n < 4 {
        return Err(Error::TooShort {
            source_name: name_for_magic,
            len: n,
        });
    }
    let is_pcapng = magic == pcapng::FILE_MAGIC;
    if !is_pcapng && pcap::magic_info(magic).is_none() {
        return Err(Error::NotCapture {
            source_name: name_for_magic,
            magic,
        });
    }
    Ok(Opened {
        src,
        magic,
        gzip,
        pcapng: is_pcapng,
    })
}

/// A failure of the gzip layer: the stream is damaged or cut short.
pub(super) fn gzip_error(e: std::io::Error, offset: u64) -> Error {
    Error::Corrupt {
        offset,
        reason: format!(
            "the gzip stream is damaged or cut short after {offset} decompressed bytes ({e})"
        ),
    }
}

/// Reads until `buf` is full or the source ends; returns the bytes read.
fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k.min(buf.len() - n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
