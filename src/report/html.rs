//! `analyze --html FILE`: one self-contained HTML file (no script, no
//! network) with the plots people would rather look at than read, drawn
//! by plotters into inline SVG (a well-kept Rust crate: the file needs no
//! JavaScript library and renders the same in every browser), and the
//! text report beneath.
//!
//! Each plot is a `<figure data-plot=KIND data-series=N data-points=M>`
//! (what was drawn, for tests and scripts); large captures stay readable:
//! at most [`MAX_SESSIONS`] sessions and [`MAX_KEYS`] keys each, the
//! [`MAX_CMDS`] commands with most pairs, the first connections with
//! messages (binned), the first exchanges. Sessions whose keys never
//! changed get no plot (the tables list them).

use std::fmt::Write;

use plotters::prelude::*;

use crate::analyze::plots::Plots;
use crate::analyze::Report;
use crate::track::synckey::Session;

pub const MAX_SESSIONS: usize = 8;
pub const MAX_KEYS: usize = 8;
pub const MAX_CMDS: usize = 8;
/// Exchanges drawn on the time line.
pub const MAX_LANES: usize = 24;

const W: u32 = 760;
const H: u32 = 300;

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A figure: its caption, what it holds, and the SVG.
struct Figure {
    kind: &'static str,
    caption: String,
    series: usize,
    points: usize,
    svg: String,
}

impl Figure {
    fn write(&self, out: &mut String) {
        let _ = write!(
            out,
            "<figure data-plot=\"{}\" data-series=\"{}\" data-points=\"{}\">\n<figcaption>{}</figcaption>\n{}\n</figure>\n",
            self.kind,
            self.series,
            self.points,
            escape(&self.caption),
            self.svg
        );
    }
}

type Drawn = Result<(usize, usize), Box<dyn std::error::Error>>;

fn figure(
    kind: &'static str,
    caption: String,
    draw: impl FnOnce(&DrawingArea<SVGBackend, plotters::coord::Shift>) -> Drawn,
) -> Option<Figure> {
    let mut svg = String::new();
    let drawn = {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        let r = root
            .fill(&WHITE)
            .map_err(Into::into)
            .and_then(|_| draw(&root));
        let _ = root.present();
        r
    };
    match drawn {
        Ok((series, points)) => Some(Figure {
            kind,
            caption,
            series,
            points,
            svg,
        }),
        Err(_) => None,
    }
}

fn secs(ns: i64) -> f64 {
    ns as f64 / 1e9
}

/// (min, max) of values, widened when equal so that a range can be drawn.
fn range(mut it: impl Iterator<Item = f64>) -> (f64, f64) {
    let first = it.next().unwrap_or(0.0);
    let (lo, hi) = it.fold((first, first), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if hi > lo {
        (lo, hi)
    } else {
        (lo - 1.0, hi + 1.0)
    }
}

/// One session: each changing key's value (minus its first value) over time,
/// transitions as points, anomalies as red marks.
fn session_plot(n: usize, s: &Session, plots: &Plots) -> Option<Figure> {
    let origin = plots.origin?;
    // Keys by how many times they changed.
    let mut changes: std::collections::BTreeMap<u32, usize> = Default::default();
    for t in &s.transitions {
        for k in t.changed.keys() {
            *changes.entry(*k).or_default() += 1;
        }
    }
    let mut keys: Vec<(u32, usize)> = changes.into_iter().collect();
    keys.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    keys.truncate(MAX_KEYS);
    let lines: Vec<(u32, Vec<(f64, f64)>)> = keys
        .iter()
        .map(|&(k, _)| {
            let mut base = None;
            let pts = s
                .observations
                .iter()
                .filter_map(|o| o.keys.get(&k).map(|v| (o, *v)))
                .map(|(o, v)| {
                    let b = *base.get_or_insert(v);
                    (secs(o.ts.nanos_since(&origin)), v as f64 - b as f64)
                })
                .collect();
            (k, pts)
        })
        .filter(|(_, p): &(u32, Vec<(f64, f64)>)| !p.is_empty())
        .collect();
    if lines.is_empty() {
        // No key ever changed: nothing to draw (the tables list it).
        return None;
    }
    let who = match (s.uin, &s.sid, &s.device) {
        (Some(u), _, Some(d)) => format!("uin {u} ({d})"),
        (Some(u), _, None) => format!("uin {u}"),
        (None, Some(sid), _) => format!("sid {sid}"),
        _ => "session".to_owned(),
    };
    let caption = format!(
        "Session {n}: {who}: SyncKey values over time (each key minus its first value; {} transitions, {} anomalies)",
        s.transitions.len(),
        s.anomalies.len()
    );
    let obs_t = s
        .observations
        .iter()
        .map(|o| secs(o.ts.nanos_since(&origin)));
    let (x0, x1) = range(obs_t);
    let (y0, y1) = range(lines.iter().flat_map(|(_, p)| p.iter().map(|q| q.1)));
    figure("synckey", caption, |root| {
        let mut c = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        c.configure_mesh()
            .x_desc("seconds since the first packet")
            .y_desc("value - first value")
            .draw()?;
        let mut points = 0;
        for (i, (k, pts)) in lines.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            points += pts.len();
            c.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
                .label(format!("key {k}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
            c.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        for a in &s.anomalies {
            let x = secs(a.ts.nanos_since(&origin));
            c.draw_series(std::iter::once(PathElement::new(
                vec![(x, y0), (x, y1)],
                RED.stroke_width(1),
            )))?;
        }
        if !lines.is_empty() {
            c.configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
        }
        Ok((lines.len(), points))
    })
}

/// The latency distribution (CDF) of the commands with most pairs, p50 and
/// p99 marked.
fn latency_plot(plots: &Plots) -> Option<Figure> {
    let mut cmds: Vec<&(String, Vec<u64>)> = plots
        .latency
        .iter()
        .filter(|(_, s)| !s.is_empty())
        .collect();
    if cmds.is_empty() {
        return None;
    }
    cmds.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
    cmds.truncate(MAX_CMDS);
    let curves: Vec<(String, Vec<(f64, f64)>)> = cmds
        .iter()
        .map(|(name, s)| {
            let mut v: Vec<f64> = s.iter().map(|&us| us as f64 / 1000.0).collect();
            v.sort_by(f64::total_cmp);
            let n = v.len() as f64;
            // At most 200 points per curve.
            let step = (v.len() / 200).max(1);
            let mut pts: Vec<(f64, f64)> = v
                .iter()
                .enumerate()
                .step_by(step)
                .map(|(i, &ms)| (ms, (i + 1) as f64 / n))
                .collect();
            if let Some(&last) = v.last() {
                pts.push((last, 1.0));
            }
            (name.clone(), pts)
        })
        .collect();
    let (x0, x1) = range(curves.iter().flat_map(|(_, p)| p.iter().map(|q| q.0)));
    let caption = format!(
        "Latency, request to response: cumulative distribution of the {} commands with most pairs (p50 and p99 marked)",
        curves.len()
    );
    figure("latency", caption, |root| {
        let mut c = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(x0.min(0.0)..x1, 0f64..1.05f64)?;
        c.configure_mesh()
            .x_desc("ms")
            .y_desc("fraction of pairs")
            .draw()?;
        let mut points = 0;
        for (i, (name, pts)) in curves.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            points += pts.len();
            c.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
            for q in [0.5, 0.99] {
                if let Some(&(ms, f)) = pts.iter().find(|p| p.1 >= q) {
                    c.draw_series(std::iter::once(Cross::new(
                        (ms, f),
                        5,
                        color.stroke_width(2),
                    )))?;
                }
            }
        }
        c.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        Ok((curves.len(), points))
    })
}

/// One connection: bytes per bin in each direction, gaps marked.
fn activity_plot(conn: u64, a: &crate::analyze::plots::Activity, kind: &str) -> Option<Figure> {
    let x = |i: usize| secs(a.start_ns + i as i64 * a.width_ns);
    let dirs: Vec<Vec<(f64, f64)>> = (0..2)
        .map(|d| {
            a.bins
                .iter()
                .enumerate()
                .map(|(i, b)| (x(i), b[d].bytes as f64))
                .collect()
        })
        .collect();
    let (x0, x1) = range((0..=a.bins.len()).map(x));
    let y1 = dirs
        .iter()
        .flat_map(|p| p.iter().map(|q| q.1))
        .fold(1.0, f64::max);
    let msgs: u64 = a.bins.iter().map(|b| b[0].messages + b[1].messages).sum();
    let caption = format!(
        "Connection {conn} ({kind}): bytes per {:.3} s in each direction ({msgs} messages, {} gaps marked)",
        a.width_ns as f64 / 1e9,
        a.gaps.len()
    );
    figure("activity", caption, |root| {
        let mut c = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, 0f64..y1 * 1.05)?;
        c.configure_mesh()
            .x_desc("seconds since the first packet")
            .y_desc("bytes")
            .draw()?;
        let mut points = 0;
        for (d, (pts, label)) in dirs.iter().zip(["c->s", "s->c"]).enumerate() {
            let color = PALETTE[d];
            points += pts.len();
            c.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
            // Bins with traffic as points, so that a lone message shows.
            c.draw_series(
                pts.iter()
                    .filter(|p| p.1 > 0.0)
                    .map(|&p| Circle::new(p, 3, color.filled())),
            )?;
        }
        for &(at, _) in &a.gaps {
            let gx = secs(at);
            c.draw_series(std::iter::once(PathElement::new(
                vec![(gx, 0.0), (gx, y1)],
                RED.stroke_width(1),
            )))?;
        }
        c.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        Ok((2, points))
    })
}

/// Short-link and web exchanges: one lane per name, a bar from request to
/// response.
fn exchanges_plot(plots: &Plots) -> Option<Figure> {
    if plots.exchanges.is_empty() {
        return None;
    }
    let mut lanes: Vec<String> = Vec::new();
    for e in &plots.exchanges {
        let name = format!("{} ({})", e.name, e.layer.as_str());
        if !lanes.contains(&name) && lanes.len() < MAX_LANES {
            lanes.push(name);
        }
    }
    let (x0, x1) = range(
        plots
            .exchanges
            .iter()
            .flat_map(|e| [secs(e.start_ns), secs(e.end_ns)]),
    );
    let n = lanes.len();
    let caption = format!(
        "Short-link and web exchanges on a time line, request to response ({} drawn{})",
        plots.exchanges.len(),
        if plots.exchanges_omitted > 0 {
            format!(", {} more not drawn", plots.exchanges_omitted)
        } else {
            String::new()
        }
    );
    figure("exchanges", caption, |root| {
        let mut c = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(180)
            .build_cartesian_2d(x0..x1, -0.5f64..(n as f64 - 0.5))?;
        c.configure_mesh()
            .x_desc("seconds since the first packet")
            .y_labels(n.max(1))
            .y_label_formatter(&|y| {
                let i = y.round();
                if (y - i).abs() < 0.01 && i >= 0.0 {
                    lanes.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .draw()?;
        let mut points = 0;
        for e in &plots.exchanges {
            let name = format!("{} ({})", e.name, e.layer.as_str());
            let Some(lane) = lanes.iter().position(|l| *l == name) else {
                continue;
            };
            let y = lane as f64;
            let color = PALETTE[lane % PALETTE.len()];
            c.draw_series(std::iter::once(Rectangle::new(
                [(secs(e.start_ns), y - 0.3), (secs(e.end_ns), y + 0.3)],
                color.filled(),
            )))?;
            points += 1;
        }
        Ok((n, points))
    })
}

/// The whole page: plots, then `text` (the report as `analyze` prints it).
pub fn page(title: &str, r: &Report, text: &str) -> String {
    let mut figs = Vec::new();
    for (n, s) in r.sessions.iter().take(MAX_SESSIONS).enumerate() {
        figs.extend(session_plot(n, s, &r.plots));
    }
    figs.extend(latency_plot(&r.plots));
    for (conn, a) in &r.plots.activity {
        let kind = r
            .connections
            .iter()
            .find(|c| c.id == *conn)
            .map_or("?", |c| c.kind.as_str());
        figs.extend(activity_plot(*conn, a, kind));
    }
    figs.extend(exchanges_plot(&r.plots));
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{t}</title>\n<style>\nbody{{font-family:sans-serif;margin:1.5em;max-width:1100px}}\nfigure{{margin:1em 0;border:1px solid #ddd;padding:.5em}}\nfigcaption{{font-weight:bold;margin-bottom:.3em}}\npre{{font-size:12px;overflow-x:auto;background:#f8f8f8;padding:.5em}}\n</style>\n</head>\n<body>\n<h1>{t}</h1>\n",
        t = escape(title)
    );
    if r.plots.messages_omitted > 0 {
        let _ = writeln!(
            out,
            "<p>{} messages of connections past the first {} with messages are not plotted (the tables count them).</p>",
            r.plots.messages_omitted,
            crate::analyze::plots::MAX_CONNS
        );
    }
    for f in &figs {
        f.write(&mut out);
    }
    let _ = write!(
        out,
        "<h2>Report</h2>\n<pre>{}</pre>\n</body>\n</html>\n",
        escape(text)
    );
    out
}
