//! The reader's bytes: a buffer refilled by `read` (standard input, gzip,
//! pipes), or a regular file mapped into memory.
//!
//! Mapping saves the kernel's copy of every byte into the buffer, which is
//! about a tenth of a one-thread `analyze` and more of the reader thread's
//! share with `-j 2` (`bench/parallel.sh`, README "One core against two").
//! This is the crate's one use of `unsafe`: mapping a file is unsafe because
//! another process could change or truncate it while it is mapped; a file
//! truncated under the reader ends the process (SIGBUS), as it does for
//! ripgrep and every tool that maps its input. A capture still being written
//! grows at its end, which is safe: the reader sees the length it had when
//! opened. Read such a file from standard input (`-`) to be safe from
//! truncation too.
//!
//! Pages already parsed are handed back ([`Bytes::release`]) so that the
//! resident set stays bounded whatever the file's size, and the bytes ahead
//! are touched before the parser gets there ([`Bytes::warm`]); the reader
//! does both at each record ([`Bytes::follow`]). The mapping is shared
//! ([`Mapped`]) with what keeps places in it instead of copies: the `-j`
//! hand-over and the reassembly's retention windows.
#![allow(unsafe_code)]

use std::fs::File;
use std::sync::Arc;

/// Bytes mapped at most this far behind the read position stay mapped.
const KEEP: usize = 8 << 20;
/// Bytes this far ahead of the read position are touched before the
/// parser gets there, [`WARM_STEP`] at a time (see [`Bytes::warm`]).
const WARM_AHEAD: usize = 256 << 10;
const WARM_STEP: usize = 64 << 10;

/// A mapped capture file, shared by its reader and whoever keeps places in
/// it instead of copies of packet bytes: the analysis threads of `-j`
/// (`parallel`) and the retention windows of the reassembly
/// (`reassembly::ring`). It stays mapped while anyone holds it; pages handed
/// back ([`Bytes::release`]) read the same bytes again if touched.
#[derive(Clone)]
pub struct Mapped(Arc<memmap2::Mmap>);

impl Mapped {
    /// The same mapping (not just the same bytes).
    pub fn same(&self, other: &Mapped) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// `bytes` written to a temporary file, mapped (for tests of what holds
    /// a mapping). The file is removed at once: its mapping stays.
    #[cfg(test)]
    pub(crate) fn of(bytes: &[u8]) -> Mapped {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mapped");
        std::fs::write(&path, bytes).unwrap();
        let file = File::open(&path).unwrap();
        // SAFETY: a file of this test's own, not changed while mapped.
        Mapped(Arc::new(unsafe { memmap2::Mmap::map(&file) }.unwrap()))
    }

    /// Touches `from..to` (clamped to the file), one load per cache line:
    /// the lines come into the cache and the pages into the page table for
    /// whoever reads them next (see [`Bytes::warm`]).
    pub fn touch(&self, from: usize, to: usize) {
        let to = to.min(self.0.len());
        let mut x = 0u8;
        for i in (from.min(to)..to).step_by(64) {
            x ^= self.0[i];
        }
        std::hint::black_box(x);
    }

    /// Where `bytes` start in the file, when they are a slice of it.
    pub fn offset_of(&self, bytes: &[u8]) -> Option<usize> {
        let at = (bytes.as_ptr() as usize).checked_sub(self.0.as_ptr() as usize)?;
        (at.checked_add(bytes.len())? <= self.0.len()).then_some(at)
    }
}

impl std::ops::Deref for Mapped {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Mapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mapped({} bytes)", self.0.len())
    }
}

/// The reader's bytes.
pub(super) enum Bytes {
    Heap(Vec<u8>),
    Mapped {
        map: Mapped,
        /// Bytes before this offset were handed back already.
        released: usize,
        /// Bytes before this offset were touched already ([`Bytes::warm`]).
        warmed: usize,
    },
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Heap(v) => v,
            Bytes::Mapped { map, .. } => map,
        }
    }
}

impl Bytes {
    /// `file` mapped, when it is a regular file that starts with something
    /// other than gzip's magic (gzip is read through its decoder). `None`
    /// leaves the caller to `read` it.
    pub(super) fn map(file: &File) -> Option<Bytes> {
        let meta = file.metadata().ok()?;
        if !meta.is_file() || meta.len() < 4 {
            return None;
        }
        // SAFETY: the mapping is read-only. Should another process write to
        // or truncate the file while it is mapped, the bytes would change
        // under a shared borrow (or vanish: SIGBUS), which Rust's rules do
        // not allow; like ripgrep, we accept that for the files we are asked
        // to read (documented above; `-` reads through a copy instead). The
        // parsers treat every byte as untrusted input either way.
        let map = unsafe { memmap2::MmapOptions::new().map(file) }.ok()?;
        if map[..2] == [0x1f, 0x8b] {
            return None;
        }
        let _ = map.advise(memmap2::Advice::Sequential);
        Some(Bytes::Mapped {
            map: Mapped(Arc::new(map)),
            released: 0,
            warmed: 0,
        })
    }

    /// The read position is at `upto`: the pages far behind it are handed
    /// back ([`Bytes::release`]) and the bytes ahead touched
    /// ([`Bytes::warm`]).
    pub(super) fn follow(&mut self, upto: usize) {
        self.release(upto);
        self.warm(upto);
    }

    /// Touches the bytes up to [`WARM_AHEAD`] past `upto` (the read
    /// position), one load per cache line, [`WARM_STEP`] bytes at a time.
    ///
    /// The parser reads only the record headers; when the payload is not
    /// copied on the way (the `-j` hand-over and the retention windows keep
    /// places in the file), each header is a cache miss (and a page fault every 16 pages) that stalls
    /// the reading thread: 86% of `pcap::parse_record`'s time went to its
    /// first load, and that function to an eighth of the run. Loads of
    /// lines well ahead are independent of each other, so the CPU has many
    /// in flight at once and the faults are taken in one go; by the time
    /// the parser gets there the lines are in cache.
    fn warm(&mut self, upto: usize) {
        let Bytes::Mapped { map, warmed, .. } = self else {
            return;
        };
        if upto + WARM_AHEAD <= *warmed || *warmed >= map.len() {
            return;
        }
        let to = (upto + WARM_AHEAD + WARM_STEP).min(map.len());
        map.touch((*warmed).max(upto), to);
        *warmed = to;
    }

    /// Hands back the mapped pages wholly before `upto` (a read position:
    /// no packet before it is borrowed any more; places in it may still be
    /// held through [`Mapped`], and read the same bytes again), once more
    /// than [`KEEP`] bytes are behind it.
    fn release(&mut self, upto: usize) {
        let Bytes::Mapped { map, released, .. } = self else {
            return;
        };
        if upto < *released + 2 * KEEP {
            return;
        }
        let page = 4096;
        let end = (upto - KEEP) / page * page;
        if end <= *released {
            return;
        }
        // SAFETY: the range is page-aligned, inside the mapping, and behind
        // every packet the reader can still lend out (`upto` is its read
        // position, taken with `&mut self`). On a read-only file mapping
        // MADV_DONTNEED only drops this process's page table entries: a later
        // access (a place kept through `Mapped`, read on another thread or
        // by a retransmission compare) maps the file's page again, with the
        // same bytes.
        let _ = unsafe {
            map.0.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                *released,
                end - *released,
            )
        };
        *released = end;
    }
}
