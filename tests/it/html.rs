//! `analyze --html`: the report of the real capture and of a sample,
//! loaded in headless Chromium with no network (a dead proxy): every plot
//! is in the page with the series and points the file says, none fails to
//! load, nothing is fetched; a PNG screenshot is kept under
//! `target/tmp/html-report-*.png` as a test artefact.
//!
//! Chromium must be installed (`.ci/run` installs it): without it these
//! tests say so and pass, except under CI (`CI` set), where they fail.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_syncscope")
}

fn chromium() -> Option<&'static str> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is missing; .ci/run installs it"
        );
        eprintln!("html: NOT RUN: chromium is not installed");
    }
    found
}

/// (kind, series, points) of each `<figure data-plot>` in `html`.
fn figures(html: &str) -> Vec<(String, usize, usize, String)> {
    let mut v = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("<figure data-plot=\"") {
        let tail = &rest[i + 19..];
        let attr = |name: &str| -> String {
            let key = format!("{name}=\"");
            let j = tail.find(&key).unwrap() + key.len();
            tail[j..j + tail[j..].find('"').unwrap()].to_owned()
        };
        let end = tail.find("</figure>").unwrap();
        v.push((
            tail[..tail.find('"').unwrap()].to_owned(),
            attr("data-series").parse().unwrap(),
            attr("data-points").parse().unwrap(),
            tail[..end].to_owned(),
        ));
        rest = &tail[end..];
    }
    v
}

fn report(capture: &Path, extra: &[&str], html: &Path) -> Value {
    let mut args = vec![std::ffi::OsString::from("analyze"), capture.into()];
    args.extend(extra.iter().map(Into::into));
    args.extend(["--format", "json", "-q", "--html"].map(Into::into));
    args.push(html.into());
    crate::common::syncscope_json(args)
}

fn check(name: &str, capture: PathBuf, extra: &[&str]) {
    let Some(browser) = chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    let json = report(&capture, extra, &html);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.len() < 4 << 20, "{} bytes", page.len());
    // Self-contained: no script, no stylesheet link, nothing fetched.
    for bad in [
        "<script",
        "<link",
        "src=\"http",
        "href=\"http",
        "url(http",
        "@import",
    ] {
        assert!(!page.contains(bad), "{name}: {bad} in the page");
    }

    // What the file must hold, from the JSON report.
    let figs = figures(&page);
    let count = |k: &str| figs.iter().filter(|f| f.0 == k).count();
    let sessions_with_changes = json["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| !s["transitions"].as_array().unwrap().is_empty())
        .count()
        .min(8);
    assert_eq!(count("synckey"), sessions_with_changes, "{name}");
    let conns_with_messages = json["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["messages"].as_u64().unwrap() > 0)
        .count()
        .min(16);
    assert_eq!(count("activity"), conns_with_messages, "{name}");
    let pairs = !json["latency"].as_array().unwrap().is_empty()
        || json["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["latency"]["count"].as_u64().unwrap() > 0);
    assert_eq!(count("latency"), usize::from(pairs), "{name}");
    let exchanges: u64 = json["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["responses"]
                .as_u64()
                .unwrap()
                .min(m["requests"].as_u64().unwrap())
        })
        .sum();
    assert_eq!(count("exchanges"), usize::from(exchanges > 0), "{name}");
    for (kind, series, points, body) in &figs {
        // Each series is a polyline; points at least one per series.
        let lines = body.matches("<polyline").count();
        assert!(
            lines >= *series.min(&1),
            "{name} {kind}: {lines} polylines for {series} series"
        );
        assert!(
            *series > 0 && *points >= *series,
            "{name} {kind}: {series} series, {points} points"
        );
        assert!(body.contains("<svg"), "{name} {kind}");
    }

    // The browser, with no network: the DOM has every figure and its SVG.
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--proxy-server=127.0.0.1:9",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=2000",
            "--dump-dom",
        ])
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name}: chromium failed:\n{stderr}");
    let console: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught") || l.contains("net::ERR"))
        .collect();
    assert!(console.is_empty(), "{name}: console errors: {console:?}");
    let dom_figs = figures(&dom);
    assert_eq!(dom_figs.len(), figs.len(), "{name}: figures in the DOM");
    assert_eq!(
        dom.matches("<svg").count(),
        figs.len(),
        "{name}: svg elements"
    );
    for (a, b) in dom_figs.iter().zip(&figs) {
        assert_eq!((&a.0, a.1, a.2), (&b.0, b.1, b.2), "{name}");
        assert_eq!(
            a.3.matches("<polyline").count(),
            b.3.matches("<polyline").count(),
            "{name}"
        );
    }
    // The screenshot, kept as an artefact.
    let png = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("html-report-{name}.png"));
    let _ = std::fs::remove_file(&png);
    let shot = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--proxy-server=127.0.0.1:9",
            "--hide-scrollbars",
            "--window-size=1200,2400",
        ])
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("run chromium");
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000,
        "{} bytes",
        bytes.len()
    );
}

#[test]
fn the_html_report_of_the_real_capture_loads_with_every_plot() {
    let w = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/wechat");
    let keylog = w.join("frida-logged-in-all-keys.log");
    check(
        "wechat",
        w.join("capture-logged-in-all-keys.pcapng"),
        &["--keylog", keylog.to_str().unwrap()],
    );
}

#[test]
fn the_html_report_of_the_web_sample_loads_with_every_plot() {
    let s = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/serve-client-web.pcapng");
    check("web-sample", s, &[]);
}

/// A capture with many connections and many frames: the page stays small
/// (binned activity, the first connections, top commands) and says what it
/// left out.
#[test]
fn the_html_report_of_a_large_capture_stays_small() {
    use syncscope::synth::mix::{self, Params};
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("mix.pcap");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&pcap).unwrap());
    mix::generate(
        &mut w,
        &Params {
            bytes: 24 << 20,
            conns: 40,
            seed: 3,
            scan_syns: 500,
            http_conns: 4,
            ..Params::default()
        },
    )
    .expect("generate");
    drop(w);
    let html = dir.path().join("report.html");
    let json = report(&pcap, &[], &html);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.len() < 3 << 20, "{} bytes", page.len());
    let figs = figures(&page);
    let activity = figs.iter().filter(|f| f.0 == "activity").count();
    assert_eq!(activity, 16);
    assert!(
        page.contains("are not plotted"),
        "the page does not say what it left out"
    );
    let with_messages = json["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["messages"].as_u64().unwrap() > 0)
        .count();
    assert!(with_messages > 16, "{with_messages}");
    for (kind, _, points, _) in &figs {
        // Binned: at most 200 bins a direction.
        if kind == "activity" {
            assert!(*points <= 400, "{points}");
        }
    }
}

/// `sync --html`: the same plots as `analyze --html` (one SyncKey figure per
/// session with transitions), above the timeline tables `sync` prints.
#[test]
fn sync_writes_the_html_report_with_its_timelines() {
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/serve-client-web.pcapng");
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("sync.html");
    let out = Command::new(bin())
        .arg("sync")
        .arg(&capture)
        .args(["--format", "json", "-q", "--html"])
        .arg(&html)
        .output()
        .expect("run sync");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).expect("sync JSON");
    let sessions = json["sessions"].as_array().unwrap();
    let changing = sessions
        .iter()
        .filter(|s| !s["transitions"].as_array().unwrap().is_empty())
        .count();
    assert!(changing > 0);
    let page = std::fs::read_to_string(&html).unwrap();
    let figs = figures(&page);
    assert_eq!(
        figs.iter().filter(|f| f.0 == "synckey").count(),
        changing.min(8)
    );
    // The tables under the plots: one heading per session, as `sync` prints.
    for i in 0..sessions.len() {
        assert!(page.contains(&format!("Session {i}:")), "session {i}");
    }
    assert!(page.contains("<title>syncscope sync "), "title");
    // Same analysis as analyze's page: the same figures.
    let other = dir.path().join("analyze.html");
    report(&capture, &[], &other);
    assert_eq!(figures(&std::fs::read_to_string(&other).unwrap()), figs);
}
