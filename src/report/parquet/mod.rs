//! Parquet output (`analyze --format parquet --output DIR`): the records of a
//! run as four tables, for DuckDB, Spark and the rest of a data lake. The
//! schema is documented, column by column, in `docs/parquet.md`; it only
//! grows (new columns at the end), so that old and new files read as one
//! dataset.
//!
//! Layout: `DIR/<table>/part-<stem>-<hash>.parquet`, one file per table and
//! run, where `<stem>` is the first input's file name and `<hash>` eight hex
//! digits of the sha256 of every input's name. Runs over other captures
//! into the same `DIR` add files beside it (a directory of many captures is
//! one dataset: `DIR/frames/*.parquet`); running again over the same inputs
//! replaces its own files. Every row has a `file` column: the capture it
//! came from.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use sha2::{Digest, Sha256};

use crate::analyze::{FrameRecord, Report};
use crate::capture::Timestamp;

mod fields;
mod tcp;

pub use tcp::TcpPrinter;

/// The tables a run writes, as directory names under `DIR`.
pub const TABLES: [&str; 4] = ["flows", "frames", "synckeys", "anomalies"];

/// Rows buffered before a batch is written (bounded memory per table).
const BATCH_ROWS: usize = 8192;

#[derive(Clone, Copy)]
enum Ty {
    Str,
    I64,
    I32,
    Bool,
    Ts,
}

/// One cell of a row.
pub(crate) enum Val<'a> {
    S(Option<&'a str>),
    I(Option<i64>),
    I32(Option<i32>),
    B(bool),
    T(Timestamp),
}

enum Col {
    Str(StringBuilder),
    I64(Int64Builder),
    I32(Int32Builder),
    Bool(BooleanBuilder),
    Ts(TimestampMicrosecondBuilder),
}

impl Col {
    fn new(t: Ty) -> Col {
        match t {
            Ty::Str => Col::Str(StringBuilder::new()),
            Ty::I64 => Col::I64(Int64Builder::new()),
            Ty::I32 => Col::I32(Int32Builder::new()),
            Ty::Bool => Col::Bool(BooleanBuilder::new()),
            Ty::Ts => Col::Ts(TimestampMicrosecondBuilder::new().with_timezone("UTC")),
        }
    }

    fn push(&mut self, v: Val<'_>) {
        match (self, v) {
            (Col::Str(b), Val::S(s)) => b.append_option(s),
            (Col::I64(b), Val::I(i)) => b.append_option(i),
            (Col::I32(b), Val::I32(i)) => b.append_option(i),
            (Col::Bool(b), Val::B(x)) => b.append_value(x),
            (Col::Ts(b), Val::T(ts)) => b.append_value(micros(&ts)),
            _ => unreachable!("a row's cells follow its table's columns"),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Col::Str(b) => Arc::new(b.finish()),
            Col::I64(b) => Arc::new(b.finish()),
            Col::I32(b) => Arc::new(b.finish()),
            Col::Bool(b) => Arc::new(b.finish()),
            Col::Ts(b) => Arc::new(b.finish()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Col::Str(b) => b.len(),
            Col::I64(b) => b.len(),
            Col::I32(b) => b.len(),
            Col::Bool(b) => b.len(),
            Col::Ts(b) => b.len(),
        }
    }
}

/// Microseconds since the epoch (the capture's nanoseconds are cut:
/// Spark reads no finer unit).
fn micros(ts: &Timestamp) -> i64 {
    (ts.as_nanos().div_euclid(1000)).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

fn int(n: u64) -> Option<i64> {
    i64::try_from(n).ok()
}

/// One Parquet file being written, a batch at a time.
pub(crate) struct Table {
    schema: Arc<Schema>,
    cols: Vec<Col>,
    writer: ArrowWriter<File>,
    rows: u64,
    path: PathBuf,
}

impl Table {
    fn create(path: PathBuf, columns: &[(&str, Ty, bool)]) -> io::Result<Table> {
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|&(name, ty, nullable)| {
                    let dt = match ty {
                        Ty::Str => DataType::Utf8,
                        Ty::I64 => DataType::Int64,
                        Ty::I32 => DataType::Int32,
                        Ty::Bool => DataType::Boolean,
                        Ty::Ts => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    };
                    Field::new(name, dt, nullable)
                })
                .collect::<Vec<_>>(),
        ));
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let file = File::create(&path)?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(io_err)?;
        Ok(Table {
            cols: columns.iter().map(|c| Col::new(c.1)).collect(),
            schema,
            writer,
            rows: 0,
            path,
        })
    }

    pub(crate) fn push(&mut self, row: Vec<Val<'_>>) -> io::Result<()> {
        debug_assert_eq!(row.len(), self.cols.len());
        for (c, v) in self.cols.iter_mut().zip(row) {
            c.push(v);
        }
        self.rows += 1;
        if self.cols[0].len() >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.cols[0].len() == 0 {
            return Ok(());
        }
        let arrays = self.cols.iter_mut().map(Col::finish).collect();
        let batch = RecordBatch::try_new(self.schema.clone(), arrays).map_err(io_err)?;
        self.writer.write(&batch).map_err(io_err)
    }

    /// Writes what is buffered and the file's footer; the rows written.
    fn close(mut self) -> io::Result<Written> {
        self.flush()?;
        self.writer.close().map_err(io_err)?;
        Ok(Written {
            bytes: std::fs::metadata(&self.path)?.len(),
            path: self.path,
            rows: self.rows,
        })
    }
}

fn io_err(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::other(e)
}

/// A file written: where, how many rows, how many bytes.
#[derive(Debug, Clone)]
pub struct Written {
    pub path: PathBuf,
    pub rows: u64,
    pub bytes: u64,
}

impl Written {
    /// Says what was written on stderr (`wrote PATH (N rows, B bytes)`),
    /// unless quiet.
    pub fn say(&self, quiet: bool) {
        if !quiet {
            eprintln!(
                "wrote {} ({} rows, {} bytes)",
                self.path.display(),
                self.rows,
                self.bytes
            );
        }
    }
}

/// The part name of a run over `inputs` (see the module doc).
pub fn part_name(inputs: &[String]) -> String {
    let stem: String = inputs
        .first()
        .map(|f| {
            Path::new(f)
                .file_name()
                .map_or_else(|| f.clone(), |n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    let mut h = Sha256::new();
    for f in inputs {
        h.update(f.as_bytes());
        h.update([0]);
    }
    let hash = hex::encode(&h.finalize()[..4]);
    format!("part-{stem}-{hash}.parquet")
}

const FRAME_COLUMNS: &[(&str, Ty, bool)] = &[
    ("file", Ty::Str, false),
    ("ts", Ty::Ts, false),
    ("conn", Ty::I64, false),
    ("dir", Ty::Str, false),
    ("layer", Ty::Str, false),
    ("cmd", Ty::I64, true),
    ("cmd_name", Ty::Str, true),
    ("seq", Ty::I64, true),
    ("len", Ty::I64, false),
    ("kind", Ty::Str, false),
    ("stream_offset", Ty::I64, false),
    ("first_packet", Ty::I64, true),
    ("last_packet", Ty::I64, true),
    ("latency_us", Ty::I64, true),
    ("after_gap", Ty::Bool, false),
    ("mmtls_record", Ty::I64, true),
    ("crypto", Ty::Str, true),
    ("uri", Ty::Str, true),
    ("host", Ty::Str, true),
    ("method", Ty::Str, true),
    ("path", Ty::Str, true),
    ("status", Ty::I32, true),
    ("endpoint", Ty::Str, true),
    ("uin", Ty::I64, true),
    ("body", Ty::Str, false),
    ("business", Ty::Str, true),
    // Body fields of their own (fields.rs), added after the first schema.
    ("sid", Ty::Str, true),
    ("ret", Ty::I64, true),
    ("client_msg_id", Ty::Str, true),
    ("msg_id", Ty::Str, true),
    ("msg_count", Ty::I64, true),
    ("synckey", Ty::Str, true),
    ("server_name", Ty::Str, true),
];

const FLOW_COLUMNS: &[(&str, Ty, bool)] = &[
    ("file", Ty::Str, false),
    ("conn", Ty::I64, false),
    ("client", Ty::Str, false),
    ("server", Ty::Str, false),
    ("kind", Ty::Str, false),
    ("protocol_c2s", Ty::Str, true),
    ("protocol_s2c", Ty::Str, true),
    ("bytes_c2s", Ty::I64, false),
    ("bytes_s2c", Ty::I64, false),
    ("messages", Ty::I64, false),
    ("frames", Ty::I64, false),
    ("short_link_messages", Ty::I64, false),
    ("http_exchanges", Ty::I64, false),
    ("mmtls_records", Ty::I64, false),
    ("end", Ty::Str, false),
];

const SYNCKEY_COLUMNS: &[(&str, Ty, bool)] = &[
    ("file", Ty::Str, false),
    ("session", Ty::Str, false),
    ("uin", Ty::I64, true),
    ("sid", Ty::Str, true),
    ("user", Ty::Str, true),
    ("device", Ty::Str, true),
    ("ts", Ty::Ts, false),
    ("conn", Ty::I64, false),
    ("dir", Ty::Str, false),
    ("source", Ty::Str, false),
    ("message", Ty::Str, false),
    ("packet", Ty::I64, true),
    ("keys", Ty::Str, false),
];

const ANOMALY_COLUMNS: &[(&str, Ty, bool)] = &[
    ("file", Ty::Str, false),
    ("conn", Ty::I64, false),
    ("dir", Ty::Str, false),
    ("offset", Ty::I64, false),
    ("packet", Ty::I64, true),
    ("kind", Ty::Str, false),
    ("detail", Ty::Str, false),
];

/// A string from a value that serializes as one (the enums of the records).
fn name(v: impl serde::Serialize) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// The dataset a run writes under `DIR`: frames as they come, the rest
/// from the report at the end.
pub struct Dataset {
    dir: PathBuf,
    part: String,
    files: Vec<String>,
    frames: Table,
    /// The input of each connection's first frame record.
    conn_file: HashMap<u64, usize>,
}

impl Dataset {
    /// Creates `dir/frames/<part>` (and the directories); `files` are the
    /// run's inputs, by the index a record's file has.
    pub fn create(dir: &Path, files: Vec<String>) -> io::Result<Dataset> {
        let part = part_name(&files);
        let frames = Table::create(dir.join("frames").join(&part), FRAME_COLUMNS)?;
        Ok(Dataset {
            dir: dir.to_owned(),
            part,
            files,
            frames,
            conn_file: HashMap::new(),
        })
    }

    /// The name of input `i` (the first when out of range).
    fn file(&self, i: usize) -> &str {
        self.files.get(i).or(self.files.first()).map_or("", |s| s)
    }

    /// One frame record, read from input file `file` (by index; a record
    /// that names its file, as `frames` makes them, keeps its name).
    pub fn frame(&mut self, r: &FrameRecord, file: usize) -> io::Result<()> {
        self.conn_file.entry(r.conn).or_insert(file);
        // JSON text as every output writes it (big integers as strings).
        let body = crate::report::json::to_string(&r.body)?;
        let business = r
            .business
            .as_ref()
            .map(crate::report::json::to_string)
            .transpose()?;
        let dir = name(r.dir);
        let layer = r.layer.as_str();
        let known = fields::Known::of(&r.body);
        let files = &self.files;
        let file = match &r.file {
            Some(f) => f.as_str(),
            None => files.get(file).or(files.first()).map_or("", |s| s),
        };
        let row = vec![
            Val::S(Some(file)),
            Val::T(r.ts),
            Val::I(int(r.conn)),
            Val::S(Some(&dir)),
            Val::S(Some(layer)),
            Val::I(r.cmd.map(i64::from)),
            Val::S(r.cmd_name.as_deref()),
            Val::I(r.seq.map(i64::from)),
            Val::I(int(r.len)),
            Val::S(Some(&r.kind)),
            Val::I(int(r.stream_offset)),
            Val::I(r.first_packet.and_then(int)),
            Val::I(r.last_packet.and_then(int)),
            Val::I(r.latency_us.and_then(int)),
            Val::B(r.after_gap),
            Val::I(r.mmtls_record.and_then(int)),
            Val::S(r.crypto),
            Val::S(r.uri.as_deref()),
            Val::S(r.host.as_deref()),
            Val::S(r.method.as_deref()),
            Val::S(r.path.as_deref()),
            Val::I32(r.status.map(i32::from)),
            Val::S(r.endpoint),
            Val::I(known.uin),
            Val::S(Some(&body)),
            Val::S(business.as_deref()),
            Val::S(known.sid.as_deref()),
            Val::I(known.ret),
            Val::S(known.client_msg_id.as_deref()),
            Val::S(known.msg_id.as_deref()),
            Val::I(known.msg_count),
            Val::S(known.synckey.as_deref()),
            Val::S(known.server_name.as_deref()),
        ];
        self.frames.push(row)
    }

    /// The `file` of a row of connection `conn` in the report's tables: the
    /// capture of the connection's first frame record; for a connection
    /// without any, the run's input (every input joined by `,` when there
    /// are several).
    fn conn_file(&self, conn: u64) -> String {
        match self.conn_file.get(&conn) {
            Some(&i) => self.file(i).to_owned(),
            None if self.files.len() == 1 => self.file(0).to_owned(),
            None => self.files.join(","),
        }
    }

    /// Closes the frames table alone (`syncscope frames`: no report).
    pub fn finish_frames(self) -> io::Result<Written> {
        self.frames.close()
    }

    /// Writes the flows, SyncKey observations and anomalies of `report`
    /// and closes every file. A row's file is its connection's
    /// ([`Dataset::conn_file`]).
    pub fn finish(self, report: &Report) -> io::Result<Vec<Written>> {
        let table = |t: &str, cols| Table::create(self.dir.join(t).join(&self.part), cols);
        let mut flows = table("flows", FLOW_COLUMNS)?;
        for c in &report.connections {
            let (kind, p0, p1) = (
                name(c.kind),
                c.protocol_c2s.map(name),
                c.protocol_s2c.map(name),
            );
            let file = self.conn_file(c.id);
            flows.push(vec![
                Val::S(Some(&file)),
                Val::I(int(c.id)),
                Val::S(Some(&c.client)),
                Val::S(Some(&c.server)),
                Val::S(Some(&kind)),
                Val::S(p0.as_deref()),
                Val::S(p1.as_deref()),
                Val::I(int(c.bytes_c2s)),
                Val::I(int(c.bytes_s2c)),
                Val::I(int(c.messages)),
                Val::I(int(c.layers.frames)),
                Val::I(int(c.layers.short_link_messages)),
                Val::I(int(c.layers.http_exchanges)),
                Val::I(int(c.layers.mmtls_records)),
                Val::S(Some(c.end)),
            ])?;
        }
        let mut keys = table("synckeys", SYNCKEY_COLUMNS)?;
        for s in &report.sessions {
            let session = session_key(s);
            for o in &s.observations {
                let (dir, source, message) = (name(o.dir), name(o.source), name(o.message));
                let k = serde_json::to_string(&o.keys).unwrap_or_default();
                let file = self.conn_file(o.conn);
                keys.push(vec![
                    Val::S(Some(&file)),
                    Val::S(Some(&session)),
                    Val::I(s.uin.and_then(int)),
                    Val::S(s.sid.as_deref()),
                    Val::S(s.user.as_deref()),
                    Val::S(s.device.as_deref()),
                    Val::T(o.ts),
                    Val::I(int(o.conn)),
                    Val::S(Some(&dir)),
                    Val::S(Some(&source)),
                    Val::S(Some(&message)),
                    Val::I(o.packet.and_then(int)),
                    Val::S(Some(&k)),
                ])?;
            }
        }
        let mut anomalies = table("anomalies", ANOMALY_COLUMNS)?;
        for a in report.anomalies.iter() {
            let dir = name(a.dir);
            let file = self.conn_file(a.conn);
            anomalies.push(vec![
                Val::S(Some(&file)),
                Val::I(int(a.conn)),
                Val::S(Some(&dir)),
                Val::I(int(a.offset)),
                Val::I(a.packet.and_then(int)),
                Val::S(Some(a.kind.as_str())),
                Val::S(Some(&a.detail)),
            ])?;
        }
        Ok(vec![
            flows.close()?,
            self.frames.close()?,
            keys.close()?,
            anomalies.close()?,
        ])
    }
}

/// `syncscope frames --format parquet`: the `frames` table alone, written
/// as records come; says what it wrote on stderr at the end unless quiet.
pub struct FramesPrinter {
    data: Option<Dataset>,
    quiet: bool,
}

impl FramesPrinter {
    /// Creates `dir/frames/<part>` for a run over `files`.
    pub fn create(dir: &Path, files: Vec<String>, quiet: bool) -> io::Result<FramesPrinter> {
        Ok(FramesPrinter {
            data: Some(Dataset::create(dir, files)?),
            quiet,
        })
    }
}

impl crate::report::printer::Printer<FrameRecord> for FramesPrinter {
    fn record(&mut self, r: &FrameRecord) -> io::Result<()> {
        match self.data.as_mut() {
            Some(d) => d.frame(r, 0),
            None => Err(io::Error::other("the frames table is closed")),
        }
    }

    fn end(&mut self) -> io::Result<()> {
        if let Some(d) = self.data.take() {
            d.finish_frames()?.say(self.quiet);
        }
        Ok(())
    }
}

/// A session's key in the `synckeys` table: `uin=N`, `sid=S` or
/// `user=U` (the first the session has), joined by `,` when it has several.
pub fn session_key(s: &crate::track::synckey::Session) -> String {
    let mut parts = Vec::new();
    if let Some(u) = s.uin {
        parts.push(format!("uin={u}"));
    }
    if let Some(sid) = &s.sid {
        parts.push(format!("sid={sid}"));
    }
    if let Some(u) = &s.user {
        parts.push(format!("user={u}"));
    }
    if let Some(d) = &s.device {
        parts.push(format!("device={d}"));
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names_are_stable_and_differ_by_inputs() {
        let a = part_name(&["/x/cap one.pcap".into()]);
        assert_eq!(a, part_name(&["/x/cap one.pcap".into()]));
        assert!(a.starts_with("part-cap-one.pcap-"), "{a}");
        assert!(a.ends_with(".parquet"));
        assert_ne!(a, part_name(&["/y/cap one.pcap".into()]));
    }

    #[test]
    fn micros_floor_before_the_epoch() {
        assert_eq!(micros(&Timestamp::new(1, 999, 9)), 1_000_000);
        assert_eq!(micros(&Timestamp::new(-1, 500, 9)), -1_000_000);
    }
}
