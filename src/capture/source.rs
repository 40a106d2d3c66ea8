//! [`PacketSource`]: what `pipeline::run` reads packets from, a capture file
//! ([`Reader`]) or, with the `live` feature, a network interface
//! (`live::LiveSource`).

use super::{Error, Linktype, Mapped, Packet, ReadStats, Reader};

/// Where `pipeline::run` takes its packets from.
pub trait PacketSource {
    /// Next packet; `Ok(None)` at the end (of the file, or of a live
    /// capture that was told to stop). An `Err` ends the run too.
    fn next_packet(&mut self) -> Result<Option<Packet<'_>>, Error>;
    /// Link types seen so far, in order of first appearance.
    fn linktypes(&self) -> &[Linktype];
    /// Counters of what has been read so far.
    fn stats(&self) -> ReadStats;
    /// A read error the source got past (several files: a damaged one ends
    /// that file only), for the run's summary; `None` by default.
    fn read_error(&self) -> Option<String> {
        None
    }
    /// The mapped file every packet's bytes are a slice of, when there is
    /// one (what reads them may keep places in it instead of copies);
    /// `None` by default.
    fn mapped(&self) -> Option<Mapped> {
        None
    }
}

impl PacketSource for Reader {
    fn next_packet(&mut self) -> Result<Option<Packet<'_>>, Error> {
        Reader::next_packet(self)
    }
    fn linktypes(&self) -> &[Linktype] {
        Reader::linktypes(self)
    }
    fn stats(&self) -> ReadStats {
        Reader::stats(self).clone()
    }
    fn mapped(&self) -> Option<Mapped> {
        Reader::mapped(self)
    }
}
