//! The `analyze` tables of what the short link, web WeChat and other HTTP
//! carried: one row per cgi, endpoint or path.

use std::fmt::Write;

use crate::analyze::{Layer, MessageRow};

use super::table::table;
use super::view::{self, View};

/// Microseconds as milliseconds (empty without pairs).
fn ms(us: u64, pairs: u64) -> String {
    if pairs == 0 {
        String::new()
    } else {
        view::ms(us)
    }
}

/// Each layer's table: title, name column, the fourth column and its figure.
type Group = (
    Layer,
    &'static str,
    &'static str,
    &'static str,
    fn(&MessageRow) -> u64,
);

const GROUPS: [Group; 3] = [
    (
        Layer::Shortlink,
        "Short-link messages per cgi (decr: business packets a key opened):",
        "cgi",
        "decr",
        |r| r.decrypted,
    ),
    (
        Layer::Web,
        "Web exchanges per endpoint (open: requests never answered):",
        "endpoint",
        "open",
        |r| r.unanswered,
    ),
    (
        Layer::Http,
        "Other HTTP exchanges per path (open: requests never answered):",
        "path",
        "open",
        |r| r.unanswered,
    ),
];

/// The tables (each only when it has rows), each followed by an empty line.
pub(super) fn tables(rows: &[MessageRow], view: &View, s: &mut String) {
    for (layer, title, name, fourth, figure) in GROUPS {
        let mut of = rows.iter().filter(|r| r.layer == layer).peekable();
        if of.peek().is_none() {
            continue;
        }
        let _ = writeln!(s, "{}", view.wrap(title));
        let mut t = table(
            view,
            [name, "req", "resp", fourth, "bytes", "p50 ms", "p99 ms"],
        );
        for r in of {
            t.add_row(vec![
                r.name.clone(),
                r.requests.to_string(),
                r.responses.to_string(),
                figure(r).to_string(),
                r.bytes.to_string(),
                ms(r.latency.p50_us, r.latency.count),
                ms(r.latency.p99_us, r.latency.count),
            ]);
        }
        let _ = writeln!(s, "{t}\n");
    }
}
