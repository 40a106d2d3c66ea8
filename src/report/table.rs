//! Terminal tables (the only user of comfy-table).

use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};

use super::flows::FlowRow;

fn duration(row: &FlowRow) -> String {
    let ns = row.last_ts.nanos_since(&row.first_ts).max(0);
    format!("{}.{:06}", ns / 1_000_000_000, (ns % 1_000_000_000) / 1000)
}

/// The `flows` table: id, client, server, start, duration, bytes each way, gaps, end.
pub fn flows(rows: &[FlowRow]) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(vec![
            "id",
            "client",
            "server",
            "start",
            "duration",
            "bytes c->s",
            "bytes s->c",
            "gaps",
            "end",
        ]);
    for r in rows {
        let rec = &r.record;
        let gaps = rec.c2s.gaps + rec.s2c.gaps;
        t.add_row(vec![
            rec.id.to_string(),
            rec.client.clone(),
            rec.server.clone(),
            rec.first_ts.clone(),
            duration(r),
            rec.c2s.bytes.to_string(),
            rec.s2c.bytes.to_string(),
            gaps.to_string(),
            rec.end.clone(),
        ]);
    }
    t.to_string()
}
