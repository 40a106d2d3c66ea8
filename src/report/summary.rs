//! The summary of a run, as the commands print it on stderr.

use std::fmt::Write;

use crate::pipeline::RunSummary;

/// What a run saw in one line (packets by kind, flows, bytes, gaps,
/// anomalies, link types), plus lines for encapsulations taken off, bogus
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
    let _ = writeln!(
        out,
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
