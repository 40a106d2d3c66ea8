//! The tables of each command: their columns and cells, and the `analyze`
//! and `sync` reports as text. Every table is fitted to the view's width by
//! [`super::fit`] and drawn by [`super::grid`].

use std::io;

use super::fit::{Col, Fit, Frame, Layout, Measure};
use super::grid::{clean, Grid};
use super::view::{ms, secs, View};

use super::flows::FlowRow;

/// The columns of the `flows` table; the tunnel's is left out unless a
/// connection came through one, and is the first to go when the table does
/// not fit.
pub const FLOW_COLUMNS: [Col; 12] = [
    Col::new("id"),
    Col::new("client").fit(Fit::Middle),
    Col::new("server").fit(Fit::Middle),
    Col::new("start"),
    Col::new("duration s"),
    Col::new("pkts c->s"),
    Col::new("pkts s->c"),
    Col::new("bytes c->s"),
    Col::new("bytes s->c"),
    Col::new("gaps"),
    Col::new("end"),
    Col::new("tunnel").fit(Fit::End).hide(1).sparse(),
];

/// The cells of a `flows` row, in [`FLOW_COLUMNS`] order.
pub fn flow_cells(r: &FlowRow, view: &View) -> [String; 12] {
    let rec = &r.record;
    [
        rec.id.to_string(),
        rec.client.clone(),
        rec.server.clone(),
        view.time.show(&r.first_ts),
        secs(r.last_ts.nanos_since(&r.first_ts)),
        rec.c2s.packets.to_string(),
        rec.s2c.packets.to_string(),
        rec.c2s.bytes.to_string(),
        rec.s2c.bytes.to_string(),
        (rec.c2s.gaps + rec.s2c.gaps).to_string(),
        rec.end.clone(),
        rec.tunnel.as_ref().map(|t| t.cell()).unwrap_or_default(),
    ]
}

/// A table of a few rows, fitted to `view` when drawn (`{t}`).
pub(super) fn table<C: Into<Col>>(view: &View, cols: impl IntoIterator<Item = C>) -> Grid {
    Grid::new(view, cols)
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// The columns of a `frames` row; the live table (`sniff`) shows those with
/// a live width. Hidden first when the terminal is narrow: offset, mmtls,
/// seq, packets.
pub const FRAME_COLUMNS: [Col; 13] = [
    Col::new("ts").fit(Fit::Time).live(30),
    Col::new("conn").fit(Fit::Keep).live(4),
    Col::new("dir").fit(Fit::Keep).live(3),
    Col::new("layer").live(9),
    Col::new("cmd").fit(Fit::Keep).live(10),
    Col::new("name").fit(Fit::End).live(22),
    Col::new("seq").fit(Fit::Keep).hide(3).live(10),
    Col::new("len").fit(Fit::Keep).live(6),
    Col::new("kind").fit(Fit::End).live(9),
    Col::new("latency ms").fit(Fit::Keep).live(7),
    Col::new("packets").fit(Fit::Keep).hide(4),
    Col::new("offset").fit(Fit::Keep).hide(1),
    Col::new("mmtls").fit(Fit::End).hide(2),
];

/// The cells of a `frames` row, in [`FRAME_COLUMNS`] order.
pub fn frame_cells(r: &crate::analyze::FrameRecord, view: &View) -> [String; 13] {
    [
        view.time.show(&r.ts),
        r.conn.to_string(),
        r.dir.as_str().to_owned(),
        r.layer.as_str().to_owned(),
        opt(r.cmd),
        r.cmd_name
            .clone()
            .or_else(|| r.uri.clone())
            .unwrap_or_default(),
        r.seq.map(|s| format!("{s:#x}")).unwrap_or_default(),
        r.len.to_string(),
        if r.after_gap {
            format!("{} (after gap)", r.kind)
        } else {
            r.kind.clone()
        },
        r.latency_us.map(ms).unwrap_or_default(),
        packets(r.first_packet, r.last_packet),
        r.stream_offset.to_string(),
        match (r.mmtls_record.or(r.tls_record), r.crypto) {
            (Some(i), Some(c)) => format!("#{i} {c}"),
            (Some(i), None) => format!("#{i}"),
            _ => String::new(),
        },
    ]
}

/// A record's packets as Wireshark numbers them: `12`, or `12-15` when it
/// spans several (`?` for one not known).
fn packets(first: Option<u64>, last: Option<u64>) -> String {
    match (first, last) {
        (None, None) => String::new(),
        (a, b) if a == b => opt(a),
        (a, b) => format!(
            "{}-{}",
            a.map_or("?".into(), |v| v.to_string()),
            b.map_or("?".into(), |v| v.to_string())
        ),
    }
}

/// The legend under the connections table when it has a `roles` column.
pub const ROLES_LEGEND: &str =
    "roles (no handshake seen): proto = from the protocol, port = from a server port,\n\
     first = the first packet's sender";

/// A connection's `roles` cell: how its client and server were inferred.
fn roles_label(by: crate::analyze::RolesBy) -> &'static str {
    use crate::analyze::RolesBy;
    match by {
        RolesBy::Protocol => "proto",
        RolesBy::Port => "port",
        RolesBy::FirstPacket => "first",
        // Not inferred (rows with a handshake have no roles).
        RolesBy::Syn | RolesBy::Synack => "",
    }
}

/// The `analyze` report as text sections.
///
/// The connections table (one row per connection: a million on a SYN
/// scan) is measured, then drawn a row at a time ([`Layout`]); the other
/// sections are [`Grid`]s. Lines of text wrap at the view's width.
pub fn analyze(r: &crate::analyze::Report, view: &View, out: &mut dyn io::Write) -> io::Result<()> {
    use std::fmt::Write;
    let mut s = String::new();
    let proto = |p: Option<crate::detect::Protocol>| p.map_or("-", |p| p.as_str()).to_owned();

    let by: Vec<String> = r
        .by_protocol
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let _ = writeln!(
        s,
        "{}",
        view.wrap(&format!(
            "Connections: {} ({})",
            r.connections.len(),
            by.join(", ")
        ))
    );
    // How client and server were told, only when some were inferred (no
    // handshake seen): a narrow column and a legend, so that captures with
    // handshakes keep their table.
    let inferred = r.connections.iter().any(|c| c.roles.is_some());
    // The TLS server name (SNI), only when some connection has one.
    let named = r.connections.iter().any(|c| c.server_name.is_some());
    let mut header = vec![
        Col::new("id"),
        Col::new("client").fit(Fit::Middle),
        Col::new("server").fit(Fit::Middle),
        Col::new("kind"),
        Col::new("c->s"),
        Col::new("s->c"),
        Col::new("bytes c->s"),
        Col::new("bytes s->c"),
        Col::new("messages"),
        Col::new("end"),
    ];
    if named {
        header.insert(3, Col::new("server name").fit(Fit::Middle));
    }
    if inferred {
        header.push(Col::new("roles"));
    }
    let row = |c: &crate::analyze::ConnRow| {
        let mut row = vec![
            c.id.to_string(),
            c.client.clone(),
            c.server.clone(),
            c.kind.as_str().to_owned(),
            proto(c.protocol_c2s),
            proto(c.protocol_s2c),
            c.bytes_c2s.to_string(),
            c.bytes_s2c.to_string(),
            c.messages.to_string(),
            c.end.to_owned(),
        ];
        if named {
            row.insert(3, c.server_name.clone().unwrap_or_default());
        }
        if inferred {
            row.push(c.roles.map_or("", roles_label).to_owned());
        }
        row.iter()
            .map(|c| clean(c).into_owned())
            .collect::<Vec<_>>()
    };
    out.write_all(s.as_bytes())?;
    s.clear();
    let mut measure = Measure::new(header.len());
    for c in &r.connections {
        measure.add(&row(c));
    }
    let layout = Layout::new(&header, &measure, view.width, Frame::Boxed);
    let mut w = io::BufWriter::new(&mut *out);
    layout.head(&mut w)?;
    for c in &r.connections {
        layout.row(&mut w, &row(c))?;
    }
    layout.foot(&mut w)?;
    io::Write::flush(&mut w)?;
    drop(w);
    if inferred {
        let _ = writeln!(s);
        let _ = writeln!(s, "{}\n", view.wrap(ROLES_LEGEND));
    } else {
        let _ = writeln!(s, "\n");
    }

    if !r.commands.is_empty() {
        let _ = writeln!(s, "Frames per command:");
        let mut t = table(
            view,
            [
                "cmd",
                "name",
                "frames",
                "bytes",
                "requests",
                "responses",
                "pushes",
                "heartbeats",
            ],
        );
        for c in &r.commands {
            t.add_row(vec![
                c.cmd.to_string(),
                c.name.clone().unwrap_or_default(),
                c.count.to_string(),
                c.bytes.to_string(),
                c.requests.to_string(),
                c.responses.to_string(),
                c.pushes.to_string(),
                c.heartbeats.to_string(),
            ]);
        }
        let _ = writeln!(s, "{t}\n");
    }
    if !r.latency.is_empty() {
        let _ = writeln!(s, "Latency (request to response):");
        let mut t = table(
            view,
            [
                "cmd", "name", "pairs", "p50 ms", "p90 ms", "p99 ms", "max ms",
            ],
        );
        for l in &r.latency {
            t.add_row(vec![
                l.cmd.to_string(),
                l.name.clone().unwrap_or_default(),
                l.latency.count.to_string(),
                ms(l.latency.p50_us),
                ms(l.latency.p90_us),
                ms(l.latency.p99_us),
                ms(l.latency.max_us),
            ]);
        }
        let _ = writeln!(s, "{t}\n");
    }
    super::messages::tables(&r.messages, view, &mut s);
    if !r.pairing_by_conn.is_empty() {
        let _ = writeln!(s, "Pairing per connection:");
        let mut t = table(
            view,
            [
                "conn",
                "req",
                "resp",
                "pairs",
                "unanswered",
                "unmatched resp",
                "resends",
                "pushes",
                "heartbeats",
                "heartbeat interval p50 s",
            ],
        );
        for p in &r.pairing_by_conn {
            let c = &p.counts;
            t.add_row(vec![
                p.conn.to_string(),
                c.requests.to_string(),
                c.responses.to_string(),
                c.pairs.to_string(),
                c.unanswered_requests.to_string(),
                c.responses_without_request.to_string(),
                c.duplicate_requests.to_string(),
                c.pushes.to_string(),
                c.heartbeats.to_string(),
                if p.heartbeat_interval.count > 0 {
                    format!("{:.1}", p.heartbeat_interval.p50_us as f64 / 1e6)
                } else {
                    String::new()
                },
            ]);
        }
        let _ = writeln!(s, "{t}\n");
    }
    let m = &r.mmtls;
    if m.records > 0 {
        let types: Vec<String> = m.by_type.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let _ = writeln!(
            s,
            "{}\n",
            view.wrap(&format!(
                "MMTLS records: {} ({}); plaintext {}, decrypted {}, no key {}, failed {}",
                m.records,
                types.join(", "),
                m.plaintext,
                m.decrypted,
                m.no_key,
                m.failed
            ))
        );
    }
    let t = &r.tls;
    if t.records > 0 {
        let _ = writeln!(
            s,
            "{}\n",
            view.wrap(&format!(
                "TLS records: {}; plaintext {}, decrypted {} ({} application bytes), no key {}, unsupported suite {}, failed {}",
                t.records,
                t.plaintext,
                t.decrypted,
                t.decrypted_bytes,
                t.no_key,
                t.unsupported_suite,
                t.failed
            ))
        );
    }
    if r.synckeys.total() > 0 {
        let _ = writeln!(s, "SyncKeys seen:");
        let mut t = table(view, ["ts", "conn", "dir", "source", "keys", "values"]);
        for k in r.synckeys.iter() {
            let preview: Vec<String> = k
                .keys
                .iter()
                .take(6)
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            t.add_row(vec![
                view.time.show(&k.ts),
                k.conn.to_string(),
                k.dir.as_str().to_owned(),
                k.source.as_str().to_owned(),
                k.keys.len().to_string(),
                format!(
                    "{}{}",
                    preview.join(" "),
                    if k.keys.len() > 6 { " ..." } else { "" }
                ),
            ]);
        }
        match &r.synckeys_omitted {
            Some(o) => {
                let _ = writeln!(
                    s,
                    "{t}\n{}\n",
                    view.wrap(&format!(
                        "({} more; the first {} of each source are listed: {})",
                        o.omitted,
                        o.max_per_kind,
                        counts(&o.counts)
                    ))
                );
            }
            None => {
                let _ = writeln!(s, "{t}\n");
            }
        }
    }
    if !r.sessions.is_empty() {
        let _ = writeln!(
            s,
            "SyncKey sessions (see `syncscope sync` for the timelines):"
        );
        let mut t = table(
            view,
            [
                Col::new("uin"),
                Col::new("user"),
                Col::new("device"),
                Col::new("sid").fit(Fit::Middle),
                Col::new("observations"),
                Col::new("transitions"),
                Col::new("anomalies"),
                Col::new("latest keys"),
            ],
        );
        for ses in &r.sessions {
            let kinds: Vec<&str> = ses.anomalies.iter().map(|a| a.kind).collect();
            t.add_row(vec![
                opt(ses.uin),
                ses.user.clone().unwrap_or_default(),
                ses.device.clone().unwrap_or_default(),
                ses.sid.clone().unwrap_or_default(),
                ses.observations.len().to_string(),
                ses.transitions.len().to_string(),
                if kinds.is_empty() {
                    "0".into()
                } else {
                    format!("{} ({})", kinds.len(), kinds.join(", "))
                },
                latest_keys(ses).to_string(),
            ]);
        }
        let _ = writeln!(s, "{t}\n");
    }
    s.push_str(&super::lifecycle::section(&r.lifecycle, view));
    if r.anomalies.total() == 0 {
        let _ = writeln!(s, "Anomalies: none");
    } else {
        let _ = writeln!(s, "Anomalies: {}", r.anomalies.total());
        let mut t = table(view, ["conn", "dir", "packet", "offset", "kind", "detail"]);
        for a in r.anomalies.iter().take(200) {
            t.add_row(vec![
                a.conn.to_string(),
                a.dir.as_str().to_owned(),
                opt(a.packet),
                a.offset.to_string(),
                a.kind.as_str().to_owned(),
                a.detail.clone(),
            ]);
        }
        let _ = writeln!(s, "{t}");
        let more = r.anomalies.total() - r.anomalies.len().min(200) as u64;
        if let Some(o) = &r.anomalies_omitted {
            let _ = writeln!(
                s,
                "{}",
                view.wrap(&format!(
                    "({more} more; --format json lists the first {} of each kind: {})",
                    o.max_per_kind,
                    counts(&o.counts)
                ))
            );
        } else if more > 0 {
            let _ = writeln!(s, "({more} more; --format json lists all)");
        }
    }
    out.write_all(s.as_bytes())
}

/// The number of keys in the latest non-empty SyncKey of a session (an
/// identify or a request without one does not make it 0).
pub fn latest_keys(ses: &crate::track::synckey::Session) -> usize {
    ses.observations
        .iter()
        .rev()
        .map(|o| o.keys.len())
        .find(|&n| n > 0)
        .unwrap_or(0)
}

/// `kind count, kind count` of a per-kind tally.
fn counts<K: std::fmt::Display>(c: &std::collections::BTreeMap<K, u64>) -> String {
    let v: Vec<String> = c.iter().map(|(k, n)| format!("{k} {n}")).collect();
    v.join(", ")
}

/// The `sync` timeline: per session, every SyncKey observation with what
/// changed since the previous one, then the anomalies.
pub fn sessions(sessions: &[crate::track::synckey::Session], view: &View) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    if sessions.is_empty() {
        let _ = writeln!(
            s,
            "No SyncKey seen (with MMTLS, pass --keylog to see inside)."
        );
    }
    for (n, ses) in sessions.iter().enumerate() {
        let _ = writeln!(
            s,
            "{}",
            view.wrap(&format!(
                "Session {n}: uin {}, sid {}{}{} — {} observations, {} transitions, {} anomalies",
                ses.uin.map_or_else(|| "-".to_owned(), |u| u.to_string()),
                ses.sid.as_deref().unwrap_or("-"),
                ses.user
                    .as_deref()
                    .map_or_else(String::new, |u| format!(", user {u}")),
                ses.device
                    .as_deref()
                    .map_or_else(String::new, |d| format!(", device {d}")),
                ses.observations.len(),
                ses.transitions.len(),
                ses.anomalies.len()
            ))
        );
        let mut t = table(
            view,
            [
                "#",
                "ts",
                "conn",
                "dir",
                "source",
                "message",
                "keys",
                "changed since previous",
            ],
        );
        for (i, o) in ses.observations.iter().enumerate() {
            let changed = ses
                .transitions
                .iter()
                .find(|tr| tr.to == i)
                .map(|tr| {
                    tr.changed
                        .iter()
                        .map(|(k, c)| match c.delta {
                            Some(d) => format!("{k}{d:+}"),
                            None => match (c.from, c.to) {
                                (None, Some(t)) => format!("{k}=new {t}"),
                                (Some(f), None) => format!("{k} gone (was {f})"),
                                _ => String::new(),
                            },
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_else(|| {
                    if i == 0 {
                        String::new()
                    } else {
                        "(same)".into()
                    }
                });
            let source = serde_json::to_value(o.source)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            t.add_row(vec![
                i.to_string(),
                view.time.show(&o.ts),
                o.conn.to_string(),
                o.dir.as_str().to_owned(),
                source,
                o.message.as_str().to_owned(),
                o.keys.len().to_string(),
                changed,
            ]);
        }
        let _ = writeln!(s, "{t}");
        if !ses.anomalies.is_empty() {
            let mut t = table(view, ["ts", "conn", "kind", "detail"]);
            for a in &ses.anomalies {
                t.add_row(vec![
                    view.time.show(&a.ts),
                    a.conn.to_string(),
                    a.kind.to_owned(),
                    a.detail.clone(),
                ]);
            }
            let _ = writeln!(s, "Anomalies:\n{t}");
        }
        let tm = &ses.timings;
        if !tm.notify_to_sync_ms.is_empty() || !tm.longpoll_ms.is_empty() {
            let avg = |v: &[f64]| {
                if v.is_empty() {
                    0.0
                } else {
                    v.iter().sum::<f64>() / v.len() as f64
                }
            };
            let _ = writeln!(
                s,
                "Timing: notify -> sync {} times, mean {:.1} ms; long polls {}, mean {:.1} ms",
                tm.notify_to_sync_ms.len(),
                avg(&tm.notify_to_sync_ms),
                tm.longpoll_ms.len(),
                avg(&tm.longpoll_ms)
            );
        }
        let _ = writeln!(s);
    }
    s
}
