//! The summary of a run, as the commands print it on stderr.

use std::fmt::Write;

use crate::pipeline::RunSummary;

/// Columns the summary's first part is folded to (an 80-column terminal).
const WIDTH: usize = 80;

/// `line` folded after its `, ` and `; ` to lines of at most `width`
/// columns where the pieces allow (a longer piece keeps its own line), the
/// lines after the first indented by two spaces; each ends with a newline.
fn wrap(line: &str, width: usize) -> String {
    let mut out = String::new();
    let mut cur = String::new();
    let mut rest = line;
    while !rest.is_empty() {
        let cut = rest
            .match_indices([',', ';'])
            .map(|(i, _)| i + 1)
            .find(|&i| rest[i..].starts_with(' '))
            .unwrap_or(rest.len());
        let (piece, after) = rest.split_at(cut);
        rest = after.strip_prefix(' ').unwrap_or(after);
        if !cur.trim().is_empty() && cur.len() + 1 + piece.len() > width {
            out.push_str(&cur);
            out.push('\n');
            cur = "  ".into();
        } else if !cur.trim().is_empty() {
            cur.push(' ');
        }
        cur.push_str(piece);
    }
    out.push_str(&cur);
    out.push('\n');
    out
}

/// What a run saw (packets by kind, flows, bytes, gaps, anomalies, link
/// types), folded to 80 columns, plus lines for encapsulations taken off, bogus
/// TCP headers, evictions and skipped pcapng blocks when there were any;
/// each line ends with a newline.
pub fn summary(s: &RunSummary) -> String {
    let w = &s.wire;
    let anomalies: u64 = s.anomalies.values().sum();
    let kinds: Vec<String> = s
        .anomalies
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let lt = &s.linktypes;
    let mut out = String::new();
    let first = format!(
        "packets {} (tcp {}, udp {}, other ip {}, not ip {}, unknown link type {}, malformed {}, ip fragments {} -> {} datagrams); \
         flows {}; bytes {}; gaps {} ({} bytes); anomalies {}{}; link types: {}",
        s.packets,
        w.tcp,
        w.udp,
        w.other_ip,
        w.not_ip,
        w.unknown_linktype,
        w.malformed,
        w.fragments,
        w.datagrams_reassembled,
        s.flows.flows,
        s.bytes,
        s.gaps,
        s.gap_bytes,
        anomalies,
        if kinds.is_empty() { String::new() } else { format!(" ({})", kinds.join(", ")) },
        if lt.is_empty() { "none".into() } else { lt.join(", ") },
    );
    out.push_str(&wrap(&first, WIDTH));
    if !w.encapsulations.is_empty() {
        let kinds: Vec<String> = w
            .encapsulations
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(out, "frames decapsulated: {}", kinds.join(", "));
    }
    if w.tcp_bad_header > 0 {
        let _ = writeln!(
            out,
            "tcp headers with an impossible length: {} (kept for their connection, without payload)",
            w.tcp_bad_header
        );
    }
    if s.flows.evicted > 0 {
        let _ = writeln!(
            out,
            "connections evicted: {} (more than --max-flows live at once; the least recently \
             active were closed out early, at most {} were tracked)",
            s.flows.evicted, s.flows.max_active
        );
    }
    if s.read.skipped_blocks > 0 {
        let _ = writeln!(
            out,
            "pcapng blocks skipped (not packets): {}",
            s.read.skipped_blocks
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_fits_an_80_column_terminal_and_keeps_every_figure() {
        let mut s = RunSummary {
            packets: 1_234_567,
            bytes: 987_654_321,
            ..RunSummary::default()
        };
        s.wire.tcp = 1_234_000;
        s.flows.flows = 4242;
        s.anomalies.insert("overlap_mismatch".into(), 3);
        s.anomalies.insert("late_data".into(), 12);
        s.linktypes = vec!["EN10MB (1)".into(), "LINUX_SLL2 (276)".into()];
        let text = summary(&s);
        for line in text.lines() {
            assert!(line.len() <= WIDTH, "{} columns: {line}", line.len());
        }
        assert!(text.lines().count() >= 2, "{text}");
        let joined = text.lines().map(str::trim).collect::<Vec<_>>().join(" ");
        for want in [
            "packets 1234567 (tcp 1234000,",
            "flows 4242;",
            "bytes 987654321;",
            "anomalies 15 (late_data 12, overlap_mismatch 3);",
            "link types: EN10MB (1), LINUX_SLL2 (276)",
        ] {
            assert!(joined.contains(want), "{want} in {joined}");
        }
    }

    #[test]
    fn a_piece_longer_than_the_width_keeps_its_own_line() {
        let long = "x".repeat(100);
        assert_eq!(
            wrap(&format!("a, {long}; b"), 20),
            format!("a,\n  {long};\n  b\n")
        );
        assert_eq!(wrap("a, b", 80), "a, b\n");
    }
}
