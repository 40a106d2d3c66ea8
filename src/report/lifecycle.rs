//! The message lifecycles as text: a line of counts, the per-step latency
//! percentiles, and a row per message (sent, acknowledged, delivered per
//! device, read), for `sync` and `analyze`.

use std::fmt::Write;

use super::table::table;
use super::view::View;
use crate::track::lifecycle::Lifecycle;

/// Messages listed in the table (all are in the JSON document).
const MAX_ROWS: usize = 200;

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |m| format!("{m:.1}"))
}

/// The lifecycle section, with its final blank line; empty when the capture
/// shows no send.
pub fn section(l: &Lifecycle, view: &View) -> String {
    let mut s = String::new();
    if l.messages.is_empty() && l.untracked == 0 {
        return s;
    }
    let r = &l.reach;
    let _ = writeln!(
        s,
        "{}",
        view.wrap(&format!(
            "Message lifecycles: {} messages; {} read, {} delivered and never read, \
             {} acknowledged and never delivered, {} never acknowledged{}{}",
            r.messages,
            r.read,
            r.never_read,
            r.never_delivered,
            r.never_acknowledged,
            if r.request_missing > 0 {
                format!(
                    "; {} without their send request in the capture",
                    r.request_missing
                )
            } else {
                String::new()
            },
            if l.untracked > 0 {
                format!("; {} more not followed (cap)", l.untracked)
            } else {
                String::new()
            }
        ))
    );
    if !l.latency.is_empty() {
        let mut t = table(
            view,
            ["step", "count", "p50 ms", "p90 ms", "p99 ms", "max ms"],
        );
        for st in &l.latency {
            t.add_row(vec![
                st.step.to_owned(),
                st.count.to_string(),
                format!("{:.3}", st.p50_ms),
                format!("{:.3}", st.p90_ms),
                format!("{:.3}", st.p99_ms),
                format!("{:.3}", st.max_ms),
            ]);
        }
        let _ = writeln!(s, "{t}");
    }
    // The client id is in the JSON; eight columns fit 80.
    let mut t = table(
        view,
        [
            "msg_id",
            "what",
            "sender -> to",
            "sent",
            "ack ms",
            "delivered (device +ms)",
            "read (device +ms)",
            "reached",
        ],
    );
    for m in l.messages.iter().take(MAX_ROWS) {
        let delivered: Vec<String> = m
            .delivered
            .iter()
            .map(|d| format!("{} +{}", d.device, ms(d.after_ms)))
            .collect();
        t.add_row(vec![
            m.msg_id.clone().unwrap_or_else(|| "-".into()),
            format!("{} {}", m.kind.as_str(), m.via.as_str()),
            format!("{} -> {}", m.sender, m.to.as_deref().unwrap_or("?")),
            m.sent
                .map_or_else(|| "(not seen)".to_owned(), |st| view.time.show(&st.ts)),
            ms(m.ack_ms),
            if delivered.is_empty() {
                "never".into()
            } else {
                delivered.join(", ")
            },
            m.read.as_ref().map_or_else(
                || "never".to_owned(),
                |r| format!("{} +{}", r.device, ms(r.after_ms)),
            ),
            m.reached.as_str().to_owned(),
        ]);
    }
    let _ = writeln!(s, "{t}");
    if l.messages.len() > MAX_ROWS {
        let _ = writeln!(
            s,
            "({} more; --format json lists all)",
            l.messages.len() - MAX_ROWS
        );
    }
    s.push('\n');
    s
}
