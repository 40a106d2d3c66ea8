//! The printer: one [`Format`] chosen once per command, and the renderers
//! that implement [`Printer`] (`begin`, one `record` per result, `end`).
//!
//! A command builds its printer with [`printer`] (whole-document tables),
//! [`spilling`] (one row per record, kept out of memory until the end) or
//! [`streaming`] (a table printed one row at a time, for live output), feeds
//! it records as the library hands them over, and calls `end`. What a record
//! looks like in each format is the [`Record`] (or [`Spill`]) impl of its
//! type, shown as the [`View`] says (width, times): the renderers below only
//! decide when and where it is written. JSON goes through [`super::json`].
//! Parquet and HTML plug in here later as further formats and renderers.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use serde::Serialize;

use super::fit::Layout;
use super::json;
use super::spill::{Doc, Spill, Spilled};
use super::view::View;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Readable tables and text sections.
    #[default]
    Table,
    /// One pretty-printed JSON document.
    Json,
    /// One JSON object per line, written as records come.
    Ndjson,
}

impl Format {
    /// Every format, in the order help texts list them.
    pub const ALL: [Format; 3] = [Format::Table, Format::Json, Format::Ndjson];

    /// The name on the command line (`--format table`).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Json => "json",
            Format::Ndjson => "ndjson",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a [`Format`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown output format {0:?}: expected table, json or ndjson")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Format, UnknownFormat> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| UnknownFormat(s.to_owned()))
    }
}

/// How one kind of result is printed. The NDJSON line of a record is its
/// `Serialize` form; the table and the JSON document cover a whole run, in
/// the order the records came (records listed in another order are
/// [`Spill`] records).
pub trait Record: Serialize + Clone {
    /// Writes the `--format table` text of a whole run, with its final newline.
    fn table(records: &[Self], view: &View, out: &mut dyn Write) -> io::Result<()>;
    /// The `--format json` document of a whole run, with its final newline.
    /// The default is a pretty-printed array.
    fn json(records: &[Self], out: &mut dyn Write) -> io::Result<()> {
        json::to_writer_pretty(&mut *out, records)?;
        out.write_all(b"\n")
    }
}

/// Where a command sends its records: `begin` once, `record` for each
/// result as it comes, `end` once (which writes what the format holds back
/// to the end, and flushes).
pub trait Printer<T> {
    fn begin(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn record(&mut self, r: &T) -> io::Result<()>;
    /// Like `record`, from a caller done with the record: a printer that
    /// keeps records until `end` takes it instead of a copy.
    fn record_owned(&mut self, r: T) -> io::Result<()>
    where
        T: Sized,
    {
        self.record(&r)
    }
    fn end(&mut self) -> io::Result<()>;
}

/// The printer for `format`: tables and JSON documents are written at the
/// end, NDJSON lines as records come.
pub fn printer<'w, T: Record + 'w>(
    format: Format,
    view: View,
    out: impl Write + 'w,
) -> Box<dyn Printer<T> + 'w> {
    match format {
        Format::Table => Box::new(Document::new(out, view, Whole::Table)),
        Format::Json => Box::new(Document::new(out, view, Whole::Json)),
        Format::Ndjson => Box::new(Ndjson { out }),
    }
}

/// The printer for `format` of records with one table row each (a
/// connection, a frame): the table and the JSON document are written at the
/// end from records kept out of memory ([`Spilled`]), NDJSON lines as
/// records come.
pub fn spilling<'w, T: Spill + 'w>(
    format: Format,
    view: View,
    out: impl Write + 'w,
) -> Box<dyn Printer<T> + 'w> {
    match format {
        Format::Table => Box::new(Spilled::new::<T>(out, view, Doc::Table)),
        Format::Json => Box::new(Spilled::new::<T>(out, view, Doc::Json)),
        Format::Ndjson => Box::new(Ndjson { out }),
    }
}

/// Like [`spilling`], but the table is written a row at a time (a header at
/// `begin`, a line per record) in the columns that have a live width
/// ([`super::fit::Col::live`]), fitted to the view's width before any record
/// is seen; JSON is still one document at the end.
pub fn streaming<'w, T: Spill + 'w>(
    format: Format,
    view: View,
    out: impl Write + 'w,
) -> Box<dyn Printer<T> + 'w> {
    match format {
        Format::Table => Box::new(RowTable {
            out,
            layout: Layout::live(T::COLUMNS, view.width, view.time.relative),
            view,
        }),
        _ => spilling(format, view, out),
    }
}

/// The whole-run formats.
enum Whole {
    Table,
    Json,
}

/// Keeps the records of a run and writes them as one table or JSON document.
struct Document<W, T> {
    out: W,
    view: View,
    whole: Whole,
    /// Copies of the records: the caller's are borrowed for the call only.
    records: Vec<T>,
}

impl<W, T> Document<W, T> {
    fn new(out: W, view: View, whole: Whole) -> Self {
        Document {
            out,
            view,
            whole,
            records: Vec::new(),
        }
    }
}

impl<W: Write, T: Record> Printer<T> for Document<W, T> {
    fn record(&mut self, r: &T) -> io::Result<()> {
        self.records.push(r.clone());
        Ok(())
    }

    fn record_owned(&mut self, r: T) -> io::Result<()> {
        self.records.push(r);
        Ok(())
    }

    fn end(&mut self) -> io::Result<()> {
        let records = std::mem::take(&mut self.records);
        match self.whole {
            Whole::Table => T::table(&records, &self.view, &mut self.out)?,
            Whole::Json => T::json(&records, &mut self.out)?,
        }
        self.out.flush()
    }
}

/// One JSON object per line.
struct Ndjson<W> {
    out: W,
}

impl<W: Write, T: Serialize> Printer<T> for Ndjson<W> {
    fn record(&mut self, r: &T) -> io::Result<()> {
        json::to_writer(&mut self.out, r)?;
        self.out.write_all(b"\n")
    }

    fn end(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A fixed-width table written as records come.
struct RowTable<W> {
    out: W,
    view: View,
    layout: Layout,
}

impl<W: Write, T: Spill> Printer<T> for RowTable<W> {
    fn begin(&mut self) -> io::Result<()> {
        self.layout.head(&mut self.out)?;
        if let Some(n) = self.layout.note() {
            writeln!(self.out, "{n}")?;
        }
        Ok(())
    }

    fn record(&mut self, r: &T) -> io::Result<()> {
        let cells: Vec<String> = r
            .cells(&self.view)
            .iter()
            .map(|c| super::grid::clean(c).into_owned())
            .collect();
        self.layout.row(&mut self.out, &cells)
    }

    fn end(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_round_trip() {
        for f in Format::ALL {
            assert_eq!(f.as_str().parse::<Format>(), Ok(f));
            assert_eq!(f.to_string(), f.as_str());
        }
        assert!("csv".parse::<Format>().is_err());
    }
}
