//! `syncscope flows`: one record per TCP connection.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::printer::Printer;
use super::{AnomalyRecord, Bounded};
use crate::capture::{CurrentFile, Timestamp};
use crate::flow::{Direction, FlowMeta, FlowSummary, FlowTunnel, Side, Sink};
use crate::reassembly::{self, Event};
use crate::wire::TunnelKind;

/// One direction of a connection in the `flows` output.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DirRecord {
    /// Packets sent in this direction (every TCP segment, bare ACKs
    /// included, as tshark's conversation table counts frames).
    #[serde(default)]
    pub packets: u64,
    /// Bytes delivered (gaps excluded).
    pub bytes: u64,
    pub gaps: u64,
    pub gap_bytes: u64,
    /// sha256 of the delivered bytes, with `--hash`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<String>,
}

/// One connection in the `flows` output (the JSON / NDJSON schema).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FlowRecord {
    pub id: u64,
    pub client: String,
    pub server: String,
    pub first_ts: String,
    pub last_ts: String,
    pub c2s: DirRecord,
    pub s2c: DirRecord,
    pub end: String,
    /// The tunnel the connection was carried in; absent when none.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tunnel: Option<TunnelRecord>,
    /// The capture file the connection was first seen in (its first payload,
    /// gap or end; for a connection without any, the file it ended in), when
    /// a run reads several files; absent for one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub file: Option<String>,
}

/// The tunnel of a connection in the `flows` output: the innermost one when
/// tunnels are nested (`depth` counts every encapsulation, MPLS and PPPoE
/// included).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TunnelRecord {
    /// `gtp-u`, `vxlan`, `gre`, `erspan`, `ip-in-ip` or `capwap`.
    pub kind: TunnelKind,
    /// Outer address on the client's side (the source of its packets).
    pub client: String,
    /// Outer address on the server's side.
    pub server: String,
    /// The id the client's packets carry (TEID, VNI, GRE key, ERSPAN session).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub c2s_id: Option<u32>,
    /// The id the server's packets carry.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub s2c_id: Option<u32>,
    pub depth: u8,
}

impl TunnelRecord {
    fn new(t: &FlowTunnel, client_side: Side) -> Self {
        let (c, s) = if client_side == Side::First {
            (0, 1)
        } else {
            (1, 0)
        };
        TunnelRecord {
            kind: t.kind,
            client: t.outer[c].to_string(),
            server: t.outer[s].to_string(),
            c2s_id: t.ids[c],
            s2c_id: t.ids[s],
            depth: t.depth,
        }
    }

    /// The table cell: `gtp-u 10.0.0.1-10.0.0.2 teid 0x1a/0x2b`.
    pub fn cell(&self) -> String {
        let mut c = format!("{} {}-{}", self.kind, self.client, self.server);
        let Some(name) = self.kind.id_name() else {
            return c;
        };
        let show = |id: Option<u32>| match id {
            None => "-".to_owned(),
            Some(v) if self.kind == TunnelKind::GtpU => format!("{v:#x}"),
            Some(v) => v.to_string(),
        };
        if self.c2s_id.is_some() || self.s2c_id.is_some() {
            c.push_str(&format!(" {name} {}", show(self.c2s_id)));
            if self.s2c_id != self.c2s_id {
                c.push_str(&format!("/{}", show(self.s2c_id)));
            }
        }
        c
    }
}

/// Things the table renderer needs that the JSON schema does not carry.
#[derive(Debug, Clone)]
pub struct FlowRow {
    pub record: FlowRecord,
    pub first_ts: Timestamp,
    pub last_ts: Timestamp,
}

/// Per live connection, by side (stable), not by direction (the roles may
/// still change): hashes and the dump file each side writes to.
#[derive(Default)]
struct Live {
    hash: [Option<Sha256>; 2],
    dump: [Option<PathBuf>; 2],
    /// The input file current when the connection was first seen.
    file: Option<usize>,
}

/// Maximum dump files kept open at once; beyond it they are reopened to append.
const MAX_OPEN_DUMPS: usize = 256;

/// Collects flow records; optionally hashes and dumps each direction, and
/// hands each record to a printer as its connection ends.
pub struct FlowsSink {
    hash: bool,
    dump: Option<PathBuf>,
    live: HashMap<u64, Live, foldhash::fast::FixedState>,
    open: HashMap<(u64, Side), BufWriter<File>>,
    printer: Option<Box<dyn Printer<FlowRow>>>,
    rows: Vec<FlowRow>,
    keep_rows: bool,
    /// The first anomalies of each kind (all are counted here and in the run summary).
    pub anomalies: Bounded<AnomalyRecord>,
    error: Option<io::Error>,
    /// Several inputs: their names, and which one is being read.
    files: Option<(Vec<String>, CurrentFile)>,
}

impl FlowsSink {
    /// `printer`: gets each record as soon as its connection ends (with
    /// NDJSON, constant memory); without one, records are kept for
    /// [`FlowsSink::rows`]. Call [`FlowsSink::finish`] at the end.
    pub fn new(
        hash: bool,
        dump: Option<PathBuf>,
        printer: Option<Box<dyn Printer<FlowRow>>>,
    ) -> io::Result<Self> {
        if let Some(d) = &dump {
            fs::create_dir_all(d)?;
        }
        let keep_rows = printer.is_none();
        Ok(FlowsSink {
            hash,
            dump,
            live: HashMap::default(),
            open: HashMap::new(),
            printer,
            rows: Vec::new(),
            keep_rows,
            anomalies: Bounded::default(),
            error: None,
            files: None,
        })
    }

    /// Tags each record with its input file (`file`): `names` by index, the
    /// index of the file being read in `current`.
    pub fn with_files(mut self, names: Vec<String>, current: CurrentFile) -> Self {
        self.files = Some((names, current));
        self
    }

    /// Keeps at most `n` anomalies of each kind (1000 by default); call
    /// before the run.
    pub fn max_examples(mut self, n: usize) -> Self {
        self.anomalies.set_max_per_kind(n);
        self
    }

    /// Records of ended connections, sorted by id.
    pub fn rows(&mut self) -> &[FlowRow] {
        self.rows.sort_by_key(|r| r.record.id);
        &self.rows
    }

    /// The first I/O error met while dumping or streaming, if any.
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.error.take()
    }

    /// Flushes dump files and ends the printer (which writes what its
    /// format holds back to the end); the first I/O error met on the way, if any.
    pub fn finish(&mut self) -> io::Result<()> {
        for (_, mut w) in self.open.drain() {
            w.flush()?;
        }
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        match &mut self.printer {
            Some(p) => p.end(),
            None => Ok(()),
        }
    }

    fn dump_path(dir: &Path, id: u64, client: &str, server: &str, d: Direction) -> PathBuf {
        dir.join(format!(
            "{id}-{}-{}.{}",
            safe_name(client),
            safe_name(server),
            d.as_str()
        ))
    }

    fn write_dump(&mut self, meta: &FlowMeta, side: Side, bytes: &[u8]) -> io::Result<()> {
        let Some(dir) = &self.dump else {
            return Ok(());
        };
        let k = (meta.id, side);
        if !self.open.contains_key(&k) {
            if self.open.len() >= MAX_OPEN_DUMPS {
                for (_, mut w) in self.open.drain() {
                    w.flush()?;
                }
            }
            let live = self.live.entry(meta.id).or_default();
            let (path, first) = match &live.dump[side.index()] {
                Some(p) => (p.clone(), false),
                None => {
                    let p = Self::dump_path(
                        dir,
                        meta.id,
                        &meta.client().to_string(),
                        &meta.server().to_string(),
                        meta.direction(side),
                    );
                    live.dump[side.index()] = Some(p.clone());
                    (p, true)
                }
            };
            let f = OpenOptions::new()
                .create(true)
                .write(true)
                .append(!first)
                .truncate(first)
                .open(&path)?;
            self.open.insert(k, BufWriter::with_capacity(64 << 10, f));
        }
        self.open.get_mut(&k).expect("opened").write_all(bytes)
    }

    /// Closes a connection's dump files and, if the roles settled
    /// differently from what was known when they were created, renames them.
    fn close_dumps(&mut self, s: &FlowSummary, paths: [Option<PathBuf>; 2]) -> io::Result<()> {
        for side in [Side::First, Side::Second] {
            if let Some(mut w) = self.open.remove(&(s.id, side)) {
                w.flush()?;
            }
            let (Some(dir), Some(path)) = (&self.dump, &paths[side.index()]) else {
                continue;
            };
            let want = Self::dump_path(
                dir,
                s.id,
                &s.client.to_string(),
                &s.server.to_string(),
                s.direction(side),
            );
            if &want != path {
                fs::rename(path, &want)?;
            }
        }
        Ok(())
    }
}

/// A file-name-safe rendering of an endpoint: `10.0.0.1:80` -> `10.0.0.1_80`,
/// `[fe80::1]:80` -> `fe80__1_80`.
pub fn safe_name(s: &str) -> String {
    s.trim_start_matches('[')
        .chars()
        .filter(|&c| c != ']')
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn dir_record(stats: &reassembly::Stats, hash: Option<Sha256>) -> DirRecord {
    DirRecord {
        packets: stats.segments,
        bytes: stats.bytes,
        gaps: stats.gaps,
        gap_bytes: stats.gap_bytes,
        sha256: hash.map(|h| hex::encode(h.finalize())),
    }
}

impl Sink for FlowsSink {
    fn event(&mut self, meta: &FlowMeta, side: Side, ev: Event<'_>) {
        if let Some((_, current)) = &self.files {
            let live = self.live.entry(meta.id).or_default();
            live.file.get_or_insert_with(|| current.get());
        }
        match ev {
            Event::Data { bytes, .. } => {
                if self.hash {
                    let live = self.live.entry(meta.id).or_default();
                    live.hash[side.index()]
                        .get_or_insert_with(Sha256::new)
                        .update(bytes);
                }
                if self.dump.is_some() && self.error.is_none() {
                    if let Err(e) = self.write_dump(meta, side, bytes) {
                        self.error = Some(e);
                    }
                }
            }
            Event::Anomaly(a) => {
                self.anomalies.push(AnomalyRecord {
                    conn: meta.id,
                    dir: meta.direction(side),
                    anomaly: a,
                });
            }
            _ => {}
        }
    }

    fn flow_end(&mut self, s: &FlowSummary) {
        let Live { hash, dump, file } = self.live.remove(&s.id).unwrap_or_default();
        let file = self
            .files
            .as_ref()
            .and_then(|(names, current)| names.get(file.unwrap_or_else(|| current.get())).cloned());
        let [h_first, h_second] = hash;
        let (hc, hs) = if s.client_side == Side::First {
            (h_first, h_second)
        } else {
            (h_second, h_first)
        };
        let empty = || self.hash.then(Sha256::new);
        let record = FlowRecord {
            id: s.id,
            client: s.client.to_string(),
            server: s.server.to_string(),
            first_ts: s.first_ts.to_rfc3339(),
            last_ts: s.last_ts.to_rfc3339(),
            c2s: dir_record(&s.c2s, hc.or_else(empty)),
            s2c: dir_record(&s.s2c, hs.or_else(empty)),
            end: s.end.as_str().to_owned(),
            tunnel: s
                .tunnel
                .as_deref()
                .map(|t| TunnelRecord::new(t, s.client_side)),
            file,
        };
        if let Err(e) = self.close_dumps(s, dump) {
            self.error.get_or_insert(e);
        }
        let row = FlowRow {
            record,
            first_ts: s.first_ts,
            last_ts: s.last_ts,
        };
        if let Some(p) = &mut self.printer {
            if let Err(e) = p.record(&row) {
                self.error.get_or_insert(e);
            }
        }
        if self.keep_rows {
            self.rows.push(row);
        }
    }
}
