//! Several capture files read as one: [`Inputs`] expands files and
//! directories, [`MergedSource`] reads them as one stream of packets in time
//! order, as `mergecap` would merge them.
//!
//! Each file is probed for its first packet's time; files are opened in that
//! order, and only while their time range overlaps the packets being read
//! (rotated captures, `tcpdump -G` or `-C`, are read one after the other:
//! one file open at a time). The merge takes the earliest pending packet of
//! the open files (ties: the file that starts first), so one flow table
//! sees every piece of a connection that spans files, in time order: a
//! connection cut by a rotation is joined, not split in two. Memory stays
//! bounded: one pending packet per open file.
//!
//! A damaged file (truncated, corrupt) ends that file only: the others
//! are read on, and [`PacketSource::read_error`] names the first such file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::{Error, Linktype, Mapped, Packet, PacketSource, ReadStats, Reader, Timestamp};

/// The capture files of a run, in the order they are merged.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Files, by the time of their first packet (files without packets last).
    pub files: Vec<PathBuf>,
    /// Files found in a directory that are not captures, with why (named
    /// files that are not captures are an error instead).
    pub skipped: Vec<(PathBuf, String)>,
    first: Vec<Option<Timestamp>>,
}

impl Inputs {
    /// Expands `paths`: a file is taken as is, a directory gives every file
    /// under it (recursively, names starting with `.` left out) that starts
    /// like a capture. `-` (standard input) must be the only path. Each file's
    /// first packet is read to order the files in time.
    pub fn expand(paths: &[PathBuf]) -> Result<Inputs, Error> {
        if paths.len() > 1 && paths.iter().any(|p| p.as_os_str() == "-") {
            return Err(Error::Inputs(
                "`-` (standard input) cannot be mixed with other inputs: give files and \
                 directories, or `-` alone"
                    .into(),
            ));
        }
        let mut found: Vec<(PathBuf, bool)> = Vec::new();
        for p in paths {
            if p.is_dir() {
                let before = found.len();
                walk(p, &mut found)?;
                if found.len() == before {
                    return Err(Error::Inputs(format!(
                        "{}: the directory holds no file (give capture files or a directory \
                         of them)",
                        p.display()
                    )));
                }
            } else {
                found.push((p.clone(), true));
            }
        }
        let mut probed = Vec::with_capacity(found.len());
        let mut skipped = Vec::new();
        for (path, named) in found {
            if path.as_os_str() == "-" {
                probed.push((path, None));
                continue;
            }
            match Reader::open(&path) {
                Ok(mut r) => {
                    let first = r.next_packet().ok().flatten().map(|p| p.ts);
                    probed.push((path, first));
                }
                Err(e @ (Error::NotCapture { .. } | Error::TooShort { .. })) if !named => {
                    skipped.push((path, e.to_string()));
                }
                Err(e) => return Err(e),
            }
        }
        if probed.is_empty() {
            return Err(Error::Inputs(format!(
                "no capture file among the inputs ({} files skipped: not pcap or pcapng)",
                skipped.len()
            )));
        }
        // Stable: files with the same first time stay in name order.
        probed.sort_by_key(|(_, ts)| (ts.is_none(), ts.map(|t| t.as_nanos())));
        let (files, first) = probed.into_iter().unzip();
        Ok(Inputs {
            files,
            skipped,
            first,
        })
    }

    /// The files' names as records show them (`file`): the path as given.
    pub fn names(&self) -> Vec<String> {
        self.files.iter().map(|p| p.display().to_string()).collect()
    }

    /// Total size of the files (for a progress bar), when all are plain files.
    pub fn total_len(&self) -> Option<u64> {
        self.files
            .iter()
            .map(|p| {
                std::fs::metadata(p)
                    .ok()
                    .filter(|m| m.is_file())
                    .map(|m| m.len())
            })
            .sum()
    }

    /// The merged packet source over the files.
    pub fn open(&self) -> Result<MergedSource, Error> {
        MergedSource::new(self)
    }
}

/// Files under `dir`, recursively, in name order; dot files left out.
fn walk(dir: &Path, out: &mut Vec<(PathBuf, bool)>) -> Result<(), Error> {
    let io = |source| Error::Io {
        source_name: dir.display().to_string(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort();
    for p in entries {
        if p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.is_file() {
            out.push((p, false));
        }
    }
    Ok(())
}

/// Which input file the packet last read came from (an index into
/// [`Inputs::files`]); shared with whoever tags records by file.
#[derive(Debug, Clone, Default)]
pub struct CurrentFile(Arc<AtomicUsize>);

impl CurrentFile {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
    pub(crate) fn set(&self, i: usize) {
        self.0.store(i, Ordering::Relaxed);
    }
}

/// A packet copied out of its reader, waiting for its turn in the merge.
struct Pending {
    ts: Timestamp,
    linktype: Linktype,
    data: Vec<u8>,
    orig_len: u32,
    interface: u32,
}

impl Default for Pending {
    fn default() -> Self {
        Pending {
            ts: Timestamp::default(),
            linktype: Linktype(0),
            data: Vec::new(),
            orig_len: 0,
            interface: 0,
        }
    }
}

struct Open {
    file: usize,
    reader: Reader,
    pending: Pending,
    linktypes_seen: usize,
}

/// One or several capture files as one [`PacketSource`], merged by packet
/// time (see the module doc). One file is read straight through.
pub struct MergedSource {
    /// Paths with their first packet time, in that order.
    files: Vec<(PathBuf, Option<Timestamp>)>,
    /// The next file not opened yet.
    next: usize,
    open: Vec<Open>,
    /// The open file whose pending packet was handed out last: read its
    /// next packet on the next call.
    refill: Option<usize>,
    current: CurrentFile,
    linktypes: Vec<Linktype>,
    /// Stats of the files read to their end.
    done: ReadStats,
    /// Bytes consumed in the files read to their end.
    packets: u64,
    error: Option<String>,
    single: bool,
}

impl MergedSource {
    fn new(inputs: &Inputs) -> Result<MergedSource, Error> {
        let mut s = MergedSource {
            files: inputs
                .files
                .iter()
                .cloned()
                .zip(inputs.first.iter().copied())
                .collect(),
            next: 0,
            open: Vec::new(),
            refill: None,
            current: CurrentFile::default(),
            linktypes: Vec::new(),
            done: ReadStats::default(),
            packets: 0,
            error: None,
            single: inputs.files.len() == 1,
        };
        if s.single {
            // Opened now: a file that cannot be opened is an error at once.
            let reader = Reader::open(&s.files[0].0)?;
            s.next = 1;
            s.open.push(Open {
                file: 0,
                reader,
                pending: Pending::default(),
                linktypes_seen: 0,
            });
        }
        Ok(s)
    }

    /// The file of the packet last returned.
    pub fn current_file(&self) -> CurrentFile {
        self.current.clone()
    }

    /// Notes the file of each packet in `current` from now on (instead of
    /// the handle [`MergedSource::current_file`] gave).
    pub fn track_file(&mut self, current: CurrentFile) {
        self.current = current;
    }

    fn note_linktypes(linktypes: &mut Vec<Linktype>, o: &mut Open) {
        let lt = o.reader.linktypes();
        if lt.len() != o.linktypes_seen {
            for l in &lt[o.linktypes_seen..] {
                if !linktypes.contains(l) {
                    linktypes.push(*l);
                }
            }
            o.linktypes_seen = lt.len();
        }
    }

    /// Reads the next packet of open file `i` into its pending slot; a file
    /// at its end (or broken) is closed and `false` returned.
    fn fill(&mut self, i: usize) -> bool {
        let o = &mut self.open[i];
        let got = match o.reader.next_packet() {
            Ok(Some(p)) => {
                o.pending.ts = p.ts;
                o.pending.linktype = p.linktype;
                o.pending.data.clear();
                o.pending.data.extend_from_slice(p.data);
                o.pending.orig_len = p.orig_len;
                o.pending.interface = p.interface;
                true
            }
            Ok(None) => false,
            Err(e) => {
                let name = self.files[o.file].0.display();
                self.error.get_or_insert_with(|| format!("{name}: {e}"));
                false
            }
        };
        Self::note_linktypes(&mut self.linktypes, o);
        if !got {
            let o = self.open.swap_remove(i);
            add_stats(&mut self.done, o.reader.stats());
        }
        got
    }

    fn open_next(&mut self) -> Result<(), Error> {
        let file = self.next;
        self.next += 1;
        let reader = match Reader::open(&self.files[file].0) {
            Ok(r) => r,
            Err(e) => {
                // Opened once already to probe it: it changed since.
                self.error.get_or_insert_with(|| e.to_string());
                return Ok(());
            }
        };
        self.open.push(Open {
            file,
            reader,
            pending: Pending::default(),
            linktypes_seen: 0,
        });
        let i = self.open.len() - 1;
        self.fill(i);
        Ok(())
    }

    fn next_merged(&mut self) -> Result<Option<Packet<'_>>, Error> {
        if let Some(i) = self.refill.take() {
            self.fill(i);
        }
        loop {
            let earliest = self.open.iter().map(|o| o.pending.ts.as_nanos()).min();
            let Some(&(_, first)) = self.files.get(self.next) else {
                break;
            };
            match (earliest, first) {
                (None, _) => self.open_next()?,
                (Some(e), Some(f)) if f.as_nanos() <= e => self.open_next()?,
                _ => break,
            }
        }
        let Some(i) = (0..self.open.len())
            .min_by_key(|&i| (self.open[i].pending.ts.as_nanos(), self.open[i].file))
        else {
            return Ok(None);
        };
        self.refill = Some(i);
        self.packets += 1;
        let o = &self.open[i];
        self.current.set(o.file);
        let offset = self.done.bytes
            + self
                .open
                .iter()
                .map(|o| o.reader.stats().bytes)
                .sum::<u64>();
        Ok(Some(Packet {
            ts: o.pending.ts,
            linktype: o.pending.linktype,
            data: &o.pending.data,
            orig_len: o.pending.orig_len,
            interface: o.pending.interface,
            offset,
        }))
    }
}

fn add_stats(total: &mut ReadStats, s: &ReadStats) {
    total.packets += s.packets;
    total.bytes += s.bytes;
    total.sections += s.sections;
    total.interfaces += s.interfaces;
    total.skipped_blocks += s.skipped_blocks;
    total.gzip |= s.gzip;
}

impl PacketSource for MergedSource {
    fn next_packet(&mut self) -> Result<Option<Packet<'_>>, Error> {
        if self.single {
            let Some(o) = self.open.first_mut() else {
                return Ok(None);
            };
            return o.reader.next_packet();
        }
        self.next_merged()
    }

    fn linktypes(&self) -> &[Linktype] {
        if self.single {
            return self.open.first().map_or(&[], |o| o.reader.linktypes());
        }
        &self.linktypes
    }

    fn stats(&self) -> ReadStats {
        let mut s = self.done.clone();
        for o in &self.open {
            add_stats(&mut s, o.reader.stats());
        }
        if !self.single {
            s.packets = self.packets;
        }
        s
    }

    fn read_error(&self) -> Option<String> {
        self.error.clone()
    }

    /// One input, mapped: [`Reader::mapped`]. Several files are merged
    /// through copies.
    fn mapped(&self) -> Option<Mapped> {
        if !self.single {
            return None;
        }
        self.open.first()?.reader.mapped()
    }
}
