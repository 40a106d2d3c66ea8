//! What each kind of result looks like in each format: the [`Record`] and
//! [`Spill`] impls the printer renders through.

use std::io::{self, Write};

use serde::Serialize;

use super::fit::Col;
use super::flows::FlowRow;
use super::json;
use super::printer::Record;
use super::spill::Spill;
use super::table;
use super::view::View;
use crate::analyze::{FrameRecord, Report};
use crate::track::lifecycle::Lifecycle;
use crate::track::synckey::Session;

/// `flows`: the table and the JSON array list connections by id.
impl Spill for FlowRow {
    const COLUMNS: &'static [Col] = &table::FLOW_COLUMNS;

    fn cells(&self, view: &View) -> Vec<String> {
        table::flow_cells(self, view).to_vec()
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
    const COLUMNS: &'static [Col] = &table::FRAME_COLUMNS;

    fn cells(&self, view: &View) -> Vec<String> {
        table::frame_cells(self, view).to_vec()
    }
}

/// `sync`: the timelines; the JSON document is `{"sessions": [...]}`.
impl Record for Session {
    fn table(records: &[Self], view: &View, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(table::sessions(records, view).as_bytes())
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
        json::to_writer_pretty(&mut *out, &doc)?;
        out.write_all(b"\n")
    }
}

/// `sync --format table|json`: the timelines and the message lifecycles,
/// one record per run; the JSON document is
/// `{"lifecycle": {...}, "sessions": [...]}`.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub sessions: Vec<Session>,
    pub lifecycle: Lifecycle,
}

impl Record for SyncReport {
    fn table(records: &[Self], view: &View, out: &mut dyn Write) -> io::Result<()> {
        for r in records {
            out.write_all(table::sessions(&r.sessions, view).as_bytes())?;
            out.write_all(super::lifecycle::section(&r.lifecycle, view).as_bytes())?;
        }
        Ok(())
    }

    /// Through `serde_json::Value`, as [`Session`]'s document.
    fn json(records: &[Self], out: &mut dyn Write) -> io::Result<()> {
        for r in records {
            let doc = serde_json::to_value(r)?;
            json::to_writer_pretty(&mut *out, &doc)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }
}

/// `analyze`: one report per run, as text sections or one JSON document.
impl Record for Report {
    fn table(records: &[Self], view: &View, out: &mut dyn Write) -> io::Result<()> {
        for r in records {
            table::analyze(r, view, out)?;
        }
        Ok(())
    }

    fn json(records: &[Self], out: &mut dyn Write) -> io::Result<()> {
        for r in records {
            json::to_writer_pretty(&mut *out, r)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::Layer;
    use crate::capture::Timestamp;
    use crate::flow::Direction;
    use crate::report::printer::{streaming, Format};
    use crate::report::view::Times;

    fn frame() -> FrameRecord {
        FrameRecord {
            file: None,
            ts: Timestamp::new(1_795_320_449, 788_685_637, 9),
            conn: 12,
            dir: Direction::ServerToClient,
            roles: None,
            layer: Layer::Longlink,
            cmd: Some(1_000_000_205),
            cmd_name: Some("longlink_identify_resp".into()),
            seq: Some(0xffff_fffe),
            len: 32,
            kind: "response".into(),
            stream_offset: 44,
            first_packet: Some(7),
            last_packet: Some(7),
            latency_us: Some(312),
            after_gap: false,
            body: serde_json::Value::Null,
            mmtls_record: None,
            tls_record: None,
            crypto: None,
            uri: None,
            host: None,
            business: None,
            method: None,
            path: None,
            status: None,
            endpoint: None,
            raw: None,
        }
    }

    fn live(view: View) -> String {
        let mut out = Vec::new();
        {
            let mut p = streaming::<FrameRecord>(Format::Table, view, &mut out);
            p.begin().unwrap();
            p.record(&frame()).unwrap();
            p.end().unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    /// `sniff`'s live rows: the first ten columns at their declared widths,
    /// or fitted to the terminal before any row is seen.
    #[test]
    fn live_rows_fit_the_width() {
        let full = live(View::default());
        let lines: Vec<&str> = full.lines().collect();
        assert!(lines[0].starts_with("ts "), "{full}");
        assert!(lines[0].ends_with("latency ms"), "{full}");
        assert!(
            lines[1].starts_with("2026-11-22T04:07:29.788685637Z "),
            "{full}"
        );
        assert!(lines[1].contains(" longlink_identify_resp ") && lines[1].ends_with(" 0.312"));
        let narrow = live(View {
            width: Some(80),
            ..View::default()
        });
        assert!(narrow.lines().all(|l| l.chars().count() <= 80), "{narrow}");
        let row = narrow.lines().find(|l| l.contains(" s2c ")).unwrap();
        assert!(row.starts_with("…04:07:29.788 "), "{narrow}");
        assert!(row.contains(" longlink_") && row.contains("… "), "{narrow}");
        let times = Times::relative();
        times.start_at(Timestamp::new(1_795_320_449, 0, 9));
        let relative = live(View {
            width: Some(80),
            time: times,
        });
        assert!(
            relative.lines().all(|l| l.chars().count() <= 80),
            "{relative}"
        );
        assert!(
            relative
                .lines()
                .any(|l| l.trim_start().starts_with("0.788685637 ")),
            "{relative}"
        );
    }
}
