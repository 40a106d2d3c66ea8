//! What each kind of result looks like in each format: the [`Record`] (and
//! [`Row`]) impls the printer renders through.

use std::io::{self, Write};

use serde::Serialize;

use super::flows::FlowRow;
use super::printer::{Record, Row};
use super::spill::Spill;
use super::table;
use crate::analyze::{FrameRecord, Report};
use crate::track::synckey::Session;

/// `flows`: the table and the JSON array list connections by id.
impl Spill for FlowRow {
    const COLUMNS: &'static [&'static str] = &table::FLOW_COLUMNS;

    fn cells(&self) -> Vec<String> {
        table::flow_cells(self).to_vec()
    }

    fn order(&self) -> Option<u64> {
        Some(self.record.id)
    }
}

/// A flow row serializes as its [`FlowRecord`](super::FlowRecord) (the
/// table's extra timestamps are not part of the JSON schema).
impl Serialize for FlowRow {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.record.serialize(s)
    }
}

/// `frames` and `sniff`: listed as they came.
impl Spill for FrameRecord {
    const COLUMNS: &'static [&'static str] = &table::FRAME_COLUMNS;

    fn cells(&self) -> Vec<String> {
        table::frame_cells(self).to_vec()
    }
}

impl Row for FrameRecord {
    fn header() -> String {
        table::frame_row(&table::FRAME_COLUMNS[..table::FRAME_ROW_COLUMNS])
    }

    fn row(&self) -> String {
        table::frame_row(&table::frame_cells(self))
    }
}

/// `sync`: the timelines; the JSON document is `{"sessions": [...]}`.
impl Record for Session {
    fn table(records: &[Self], out: &mut dyn Write) -> io::Result<()> {
        out.write_all(table::sessions(records).as_bytes())
    }

    /// Through `serde_json::Value`, whose maps sort their keys: the
    /// document's objects list their fields alphabetically (as they always
    /// have), unlike the NDJSON lines.
    fn json(records: &[Self], out: &mut dyn Write) -> io::Result<()> {
        #[derive(Serialize)]
        struct Document<'a> {
            sessions: &'a [Session],
        }
        let doc = serde_json::to_value(Document { sessions: records })?;
        serde_json::to_writer_pretty(&mut *out, &doc)?;
        out.write_all(b"\n")
    }
}

/// `analyze`: one report per run, as text sections or one JSON document.
impl Record for Report {
    fn table(records: &[Self], out: &mut dyn Write) -> io::Result<()> {
        for r in records {
            table::analyze(r, out)?;
        }
        Ok(())
    }

    fn json(records: &[Self], out: &mut dyn Write) -> io::Result<()> {
        for r in records {
            serde_json::to_writer_pretty(&mut *out, r)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }
}
