//! The table and JSON document of commands with one record per connection
//! or per frame (`flows`, `frames`, `sniff --format json`), kept out of
//! memory until the run ends.
//!
//! A run can hold millions of such records (a SYN scan, a day of frames)
//! and the document lists them only at the end, in order. Each record is
//! encoded once, as it comes (its cleaned table cells, or its JSON text),
//! into a buffer that moves to an unnamed temporary file past
//! [`MEMORY_BUDGET`] bytes; what stays in memory is the columns' widths and
//! kinds ([`Measure`]: the table is fitted to the view's width at the end) and,
//! for records listed in another order than they came, 16 bytes per record
//! (its sort key and where it is). NDJSON never gets here: it is written as
//! records come.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use serde::Serialize;

use super::fit::{Col, Frame, Layout, Measure};
use super::grid::clean;
use super::json;
use super::printer::Printer;
use super::view::View;

/// Encoded records held in memory before they move to a temporary file.
pub const MEMORY_BUDGET: usize = 32 << 20;

/// A record listed as one row of a table (and one element of a JSON array).
pub trait Spill: Serialize {
    /// The table's columns.
    const COLUMNS: &'static [Col];
    /// The record's cells, in [`Spill::COLUMNS`] order, as `view` shows them.
    fn cells(&self, view: &View) -> Vec<String>;
    /// Where the record goes in the table and the JSON document: `None`
    /// (the default) lists records as they came, `Some(key)` by key (ties
    /// as they came).
    fn order(&self) -> Option<u64> {
        None
    }
}

/// Which document is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Doc {
    Table,
    Json,
}

/// Append-only bytes: in memory up to a budget, then in a temporary file.
struct Store {
    mem: Vec<u8>,
    file: Option<BufWriter<File>>,
    len: u64,
    budget: usize,
}

impl Store {
    fn new(budget: usize) -> Self {
        Store {
            mem: Vec::new(),
            file: None,
            len: 0,
            budget,
        }
    }

    fn append(&mut self, b: &[u8]) -> io::Result<()> {
        if self.file.is_none() && self.mem.len() + b.len() > self.budget {
            let f = tempfile::tempfile().map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot create a temporary file for the output's records ({e}); \
                         set TMPDIR to a writable directory, or use --format ndjson"
                    ),
                )
            })?;
            let mut w = BufWriter::with_capacity(1 << 20, f);
            w.write_all(&self.mem)?;
            self.mem = Vec::new();
            self.file = Some(w);
        }
        match &mut self.file {
            Some(w) => w.write_all(b)?,
            None => self.mem.extend_from_slice(b),
        }
        self.len += b.len() as u64;
        Ok(())
    }

    /// A reader over everything appended.
    fn reader(&mut self) -> io::Result<Back<'_>> {
        Ok(match self.file.take() {
            Some(w) => {
                let mut f = w.into_inner().map_err(|e| e.into_error())?;
                f.seek(SeekFrom::Start(0))?;
                Back::File {
                    r: BufReader::with_capacity(1 << 20, f),
                    at: 0,
                }
            }
            None => Back::Mem(&self.mem),
        })
    }
}

/// Reading the store back.
enum Back<'a> {
    Mem(&'a [u8]),
    File { r: BufReader<File>, at: u64 },
}

impl Back<'_> {
    /// The record (length-prefixed) at `offset`.
    fn record_at(&mut self, offset: u64, buf: &mut Vec<u8>) -> io::Result<()> {
        match self {
            Back::Mem(m) => {
                let o = offset as usize;
                let n = u32::from_le_bytes(m[o..o + 4].try_into().expect("4 bytes")) as usize;
                buf.clear();
                buf.extend_from_slice(&m[o + 4..o + 4 + n]);
            }
            Back::File { r, at } => {
                if *at != offset {
                    r.seek(SeekFrom::Start(offset))?;
                }
                let mut len = [0u8; 4];
                r.read_exact(&mut len)?;
                let n = u32::from_le_bytes(len) as usize;
                buf.resize(n, 0);
                r.read_exact(buf)?;
                *at = offset + 4 + n as u64;
            }
        }
        Ok(())
    }
}

/// The printer of a whole document of [`Spill`] records.
pub struct Spilled<W> {
    out: W,
    doc: Doc,
    view: View,
    columns: &'static [Col],
    measure: Measure,
    store: Store,
    /// (key, offset) of each record, when the records are sorted.
    index: Vec<(u64, u64)>,
    /// Records so far. Records without a sort key keep no index entry:
    /// the store is read back front to back.
    count: u64,
    sorted: bool,
    scratch: Vec<u8>,
}

impl<W: Write> Spilled<W> {
    pub fn new<T: Spill>(out: W, view: View, doc: Doc) -> Self {
        Self::with_budget::<T>(out, view, doc, MEMORY_BUDGET)
    }

    /// With another in-memory budget (tests use a small one to go through
    /// the temporary file).
    pub fn with_budget<T: Spill>(out: W, view: View, doc: Doc, budget: usize) -> Self {
        Spilled {
            out,
            doc,
            view,
            columns: T::COLUMNS,
            measure: Measure::new(T::COLUMNS.len()),
            store: Store::new(budget),
            index: Vec::new(),
            count: 0,
            sorted: false,
            scratch: Vec::new(),
        }
    }

    fn encode<T: Spill>(&mut self, r: &T) -> io::Result<()> {
        self.scratch.clear();
        match self.doc {
            Doc::Table => {
                let cells: Vec<String> = r
                    .cells(&self.view)
                    .iter()
                    .map(|c| clean(c).into_owned())
                    .collect();
                self.measure.add(&cells);
                self.scratch
                    .extend_from_slice(cells.join("\x1f").as_bytes());
            }
            Doc::Json => {
                // The element as `to_writer_pretty` of the whole array
                // writes it: pretty, each line indented two spaces (JSON
                // strings hold no raw newline).
                let text = json::to_string_pretty(r)?;
                for (i, line) in text.lines().enumerate() {
                    if i > 0 {
                        self.scratch.push(b'\n');
                    }
                    self.scratch.extend_from_slice(b"  ");
                    self.scratch.extend_from_slice(line.as_bytes());
                }
            }
        }
        let n = u32::try_from(self.scratch.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a record over 4 GiB"))?;
        let offset = self.store.len;
        if let Some(key) = r.order() {
            self.sorted = true;
            self.index.push((key, offset));
        }
        self.count += 1;
        self.store.append(&n.to_le_bytes())?;
        let scratch = std::mem::take(&mut self.scratch);
        let res = self.store.append(&scratch);
        self.scratch = scratch;
        res
    }

    fn write_all(&mut self) -> io::Result<()> {
        let mut index = std::mem::take(&mut self.index);
        index.sort_by_key(|&(k, _)| k);
        let sorted = self.sorted;
        let count = self.count;
        let mut back = self.store.reader()?;
        let mut buf = Vec::new();
        let mut next = 0u64;
        let out: &mut dyn Write = &mut self.out;
        let layout = Layout::new(self.columns, &self.measure, self.view.width, Frame::Boxed);
        match self.doc {
            Doc::Table => layout.head(out)?,
            Doc::Json if count == 0 => out.write_all(b"[]")?,
            Doc::Json => out.write_all(b"[\n")?,
        }
        let mut keyed = index.iter().map(|&(_, at)| at);
        for i in 0..count {
            let at = if sorted {
                keyed.next().expect("one index entry per record")
            } else {
                next
            };
            back.record_at(at, &mut buf)?;
            next = at + 4 + buf.len() as u64;
            match self.doc {
                Doc::Table => {
                    let text = std::str::from_utf8(&buf)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    let cells: Vec<&str> = text.split('\x1f').collect();
                    layout.row(out, &cells)?;
                }
                Doc::Json => {
                    if i > 0 {
                        out.write_all(b",\n")?;
                    }
                    out.write_all(&buf)?;
                }
            }
        }
        match self.doc {
            Doc::Table => {
                layout.foot(out)?;
                out.write_all(b"\n")?;
            }
            Doc::Json if count == 0 => out.write_all(b"\n")?,
            Doc::Json => out.write_all(b"\n]\n")?,
        }
        out.flush()
    }
}

impl<W: Write, T: Spill> Printer<T> for Spilled<W> {
    fn record(&mut self, r: &T) -> io::Result<()> {
        if r.order().is_some() != self.sorted && self.count > 0 {
            return Err(io::Error::other(
                "records with and without a sort key in one document",
            ));
        }
        self.encode(r)
    }

    fn end(&mut self) -> io::Result<()> {
        self.write_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Clone)]
    struct R {
        id: u64,
        name: String,
    }

    impl Spill for R {
        const COLUMNS: &'static [Col] = &[Col::new("id"), Col::new("name")];
        fn cells(&self, _: &View) -> Vec<String> {
            vec![self.id.to_string(), self.name.clone()]
        }
        fn order(&self) -> Option<u64> {
            Some(self.id)
        }
    }

    fn records(n: u64) -> Vec<R> {
        // Arrival order is not id order: 3, 0, 5, 2, ...
        (0..n)
            .map(|i| (i * 7 + 3) % n)
            .map(|id| R {
                id,
                name: format!("n{}", "x".repeat((id % 13) as usize)),
            })
            .collect()
    }

    fn run(doc: Doc, rs: &[R], budget: usize) -> String {
        let mut out = Vec::new();
        let mut p = Spilled::with_budget::<R>(&mut out, View::default(), doc, budget);
        for r in rs {
            Printer::record(&mut p, r).unwrap();
        }
        Printer::<R>::end(&mut p).unwrap();
        drop(p);
        String::from_utf8(out).unwrap()
    }

    /// The JSON document is what `to_writer_pretty` writes for the records
    /// sorted, in memory and through the temporary file.
    #[test]
    fn json_is_the_sorted_pretty_array() {
        for n in [0, 1, 2, 50] {
            let rs = records(n);
            let mut sorted = rs.clone();
            sorted.sort_by_key(|r| r.id);
            let want = serde_json::to_string_pretty(&sorted).unwrap() + "\n";
            assert_eq!(run(Doc::Json, &rs, MEMORY_BUDGET), want, "n={n}");
            assert_eq!(run(Doc::Json, &rs, 64), want, "n={n} spilled");
        }
    }

    /// The table lists rows by key with the widths of the widest cells,
    /// the same in memory and through the temporary file.
    #[test]
    fn table_is_sorted_and_the_same_spilled() {
        let rs = records(50);
        let t = run(Doc::Table, &rs, MEMORY_BUDGET);
        assert_eq!(t, run(Doc::Table, &rs, 100));
        let ids: Vec<u64> = t
            .lines()
            .skip(3)
            .filter_map(|l| l.trim_start_matches("│ ").split(' ').next()?.parse().ok())
            .collect();
        assert_eq!(ids, (0..50).collect::<Vec<_>>());
        let widest = "n".to_owned() + &"x".repeat(12);
        assert!(t.contains(&format!("┆ {widest} │")), "{t}");
    }

    /// Fitted to a width, the table is cut the same in memory and through
    /// the temporary file, every line within it.
    #[test]
    fn table_fits_the_view_width() {
        let rs: Vec<R> = (0..40)
            .map(|id| R {
                id,
                name: format!("{}-{}", "x".repeat(40), id),
            })
            .collect();
        let run = |budget: usize| {
            let mut out = Vec::new();
            let view = View {
                width: Some(30),
                ..View::default()
            };
            let mut p = Spilled::with_budget::<R>(&mut out, view, Doc::Table, budget);
            for r in &rs {
                Printer::record(&mut p, r).unwrap();
            }
            Printer::<R>::end(&mut p).unwrap();
            drop(p);
            String::from_utf8(out).unwrap()
        };
        let t = run(MEMORY_BUDGET);
        assert_eq!(t, run(100));
        assert!(t.lines().all(|l| l.chars().count() <= 30), "{t}");
        // Ids are in the middle of their cells: both ends stay.
        assert!(
            t.lines()
                .any(|l| l.starts_with("│39┆xxx") && l.contains('…') && l.ends_with("-39│")),
            "{t}"
        );
    }

    /// Records without a key keep their arrival order, and no index is kept.
    #[test]
    fn unsorted_records_keep_their_order() {
        #[derive(Serialize)]
        struct U(u64);
        impl Spill for U {
            const COLUMNS: &'static [Col] = &[Col::new("n")];
            fn cells(&self, _: &View) -> Vec<String> {
                vec![self.0.to_string()]
            }
        }
        let mut out = Vec::new();
        let mut p = Spilled::with_budget::<U>(&mut out, View::default(), Doc::Json, 10);
        for n in [5, 1, 9] {
            Printer::record(&mut p, &U(n)).unwrap();
        }
        assert!(p.index.is_empty());
        Printer::<U>::end(&mut p).unwrap();
        drop(p);
        assert_eq!(String::from_utf8(out).unwrap(), "[\n  5,\n  1,\n  9\n]\n");
    }
}
