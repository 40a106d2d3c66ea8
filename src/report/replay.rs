//! `replay`'s report as text: sessions, commands with latency, then every
//! exchange that did not match, one paragraph each (fitted to the view's
//! width, 80 columns when there is none: values in full only with `--wide`).

use std::fmt::Write as _;
use std::io::{self, Write};

use super::fit::{cut, Fit};
use super::json;
use super::printer::Record;
use super::table::table;
use super::view::{ms, View};
use crate::replay::report::{Counts, Latency};
use crate::replay::{Report, Verdict};

fn counts(c: &Counts) -> Vec<String> {
    [
        c.sent + c.matched + c.different,
        c.matched,
        c.different,
        c.missing,
        c.extra,
        c.not_sent,
        c.error,
    ]
    .iter()
    .map(u64::to_string)
    .collect()
}

/// A recorded or live value of a difference, in `room` columns (all of it
/// without a limit).
fn short(v: &Option<serde_json::Value>, room: Option<usize>) -> String {
    let s = match v {
        None => "(absent)".to_owned(),
        Some(v) => json::to_string(v).unwrap_or_default(),
    };
    match room {
        Some(w) => cut(&s, w, Fit::End).into_owned(),
        None => s,
    }
}

/// The text report.
pub fn replay(r: &Report, view: &View, out: &mut dyn Write) -> io::Result<()> {
    let mut s = String::new();
    let clones = r.clones > 1;
    let _ = writeln!(
        s,
        "{}",
        view.wrap(&format!(
            "Replay against {}: {} sessions{}, {} ms",
            r.server,
            r.sessions.len(),
            if clones {
                format!(" ({} clones)", r.clones)
            } else {
                String::new()
            },
            r.elapsed_ms
        ))
    );
    let mut head = vec!["conn"];
    if clones {
        head.push("clone");
    }
    head.extend([
        "link", "total", "ok", "diff", "miss", "extra", "unsent", "err", "pushes",
    ]);
    let mut t = table(view, head);
    for x in &r.sessions {
        let mut row = vec![x.conn.to_string()];
        if clones {
            row.push(x.clone.to_string());
        }
        row.push(
            serde_json::to_value(x.link)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
        );
        row.extend(counts(&x.counts));
        row.push(format!("{}/{}", x.pushes_recorded, x.pushes_live));
        t.add_row(row);
    }
    let _ = writeln!(s, "{t}");
    let _ = writeln!(
        s,
        "pushes: recorded/live; unsent: recorded, not sent (see below)\n"
    );
    if !r.commands.is_empty() {
        let _ = writeln!(s, "Per command (latency p50, p99):");
        let mut t = table(
            view,
            [
                "command", "ok", "diff", "miss", "extra", "unsent", "err", "p50 ms", "p99 ms",
            ],
        );
        for c in &r.commands {
            let mut row = vec![c.name.clone()];
            row.extend(counts(&c.counts).into_iter().skip(1));
            let (p50, p99) = match &c.latency_us {
                Some(Latency { p50, p99, .. }) => (ms(*p50), ms(*p99)),
                None => (String::new(), String::new()),
            };
            row.extend([p50, p99]);
            t.add_row(row);
        }
        let _ = writeln!(s, "{t}\n");
    }
    let shown: Vec<_> = r
        .exchanges
        .iter()
        .filter(|e| !matches!(e.verdict, Verdict::Matched | Verdict::Sent))
        .collect();
    if !shown.is_empty() {
        let _ = writeln!(s, "Not matched:");
    }
    for e in shown {
        let clone = if e.clone > 0 {
            format!(" clone {}", e.clone)
        } else {
            String::new()
        };
        let push = if e.push { " (push)" } else { "" };
        let _ = writeln!(
            s,
            "{}",
            view.wrap(&format!(
                "  conn {}{clone} {}{push}: {}",
                e.conn,
                e.name,
                e.verdict.as_str()
            ))
        );
        if let Some(n) = &e.note {
            let _ = writeln!(s, "{}", view.wrap(&format!("    {n}")));
        }
        let room = view.width.map(|w| w.saturating_sub(15).max(10));
        for d in &e.diffs {
            let _ = writeln!(s, "{}", view.wrap(&format!("    {}", d.path)));
            let _ = writeln!(s, "      recorded {}", short(&d.recorded, room));
            let _ = writeln!(s, "      live     {}", short(&d.live, room));
        }
    }
    let t = &r.totals;
    let _ = writeln!(
        s,
        "{}",
        view.wrap(&format!(
            "{} matched, {} different, {} missing, {} extra, {} not sent, {} errors",
            t.matched, t.different, t.missing, t.extra, t.not_sent, t.error
        ))
    );
    out.write_all(s.as_bytes())
}

impl Record for Report {
    fn table(records: &[Self], view: &View, out: &mut dyn Write) -> io::Result<()> {
        for r in records {
            replay(r, view, out)?;
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
