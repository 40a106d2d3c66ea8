//! The tables as a user at an 80-column terminal sees them (`COLUMNS=80`):
//! every line fits, `--wide` prints every value whole, durations carry
//! units, `--time relative` counts from the first packet, the SyncKey
//! sessions name their device; and JSON writes ids beyond 2^53 as strings.

use std::process::{Command, Output};

use serde_json::Value;

use crate::cli_analyze::wechat;

fn sample(name: &str) -> String {
    format!("{}/samples/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// `syncscope ARGS -q` at `columns` (none: `COLUMNS` unset), standard
/// output a pipe as under a test.
fn run(columns: Option<usize>, args: &[&str]) -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_syncscope"));
    c.args(args).arg("-q");
    match columns {
        Some(n) => c.env("COLUMNS", n.to_string()),
        None => c.env_remove("COLUMNS"),
    };
    let out: Output = c.output().expect("run syncscope");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

fn widest(text: &str) -> usize {
    text.lines().map(|l| l.chars().count()).max().unwrap_or(0)
}

/// Every capture the tests look at, with the options it needs.
fn captures() -> Vec<Vec<String>> {
    let mut v: Vec<Vec<String>> = [
        "longlink-8080.pcap",
        "serve-client-longlink.pcapng",
        "serve-client-shortlink.pcapng",
        "serve-client-web.pcapng",
        "serve-client-receipts.pcapng",
    ]
    .iter()
    .map(|s| vec![sample(s)])
    .collect();
    v.push(vec![
        wechat("capture-logged-in-all-keys.pcapng"),
        "--keylog".into(),
        wechat("frida-logged-in-all-keys.log"),
    ]);
    v
}

#[test]
fn every_table_fits_80_columns_and_wide_keeps_every_value() {
    for capture in captures() {
        for cmd in ["flows", "analyze", "sync", "frames"] {
            let mut args = vec![cmd];
            // `flows` takes no key log.
            let n = if cmd == "flows" { 1 } else { capture.len() };
            args.extend(capture[..n].iter().map(String::as_str));
            for time in [None, Some("absolute"), Some("relative")] {
                let mut a = args.clone();
                a.extend(time.map(|t| ["--time", t]).into_iter().flatten());
                let text = run(Some(80), &a);
                assert!(widest(&text) <= 80, "{a:?} at 80 columns:\n{text}");
                assert!(!text.is_empty(), "{a:?}");
            }
            // With --wide nothing is cut: the same as without a width.
            let mut a = args.clone();
            a.push("--wide");
            let wide = run(Some(80), &a);
            assert_eq!(wide, run(None, &args), "{a:?}");
            assert!(!wide.contains('…'), "{a:?}:\n{wide}");
        }
    }
    // What 80 columns cut, --wide shows.
    let capture = wechat("capture-logged-in-all-keys.pcapng");
    let narrow = run(Some(80), &["flows", &capture]);
    let wide = run(Some(80), &["flows", &capture, "--wide"]);
    let v6 = "[fec0::9933:f109:183a:5516]:60052";
    assert!(!narrow.contains(v6) && narrow.contains('…'), "{narrow}");
    assert!(
        wide.contains(v6) && wide.contains("2023-12-05T01:09:"),
        "{wide}"
    );
    assert!(widest(&wide) > 80);
    // Columns hidden to fit are named under the table.
    let frames = run(
        Some(80),
        &["frames", &sample("serve-client-longlink.pcapng")],
    );
    assert!(
        frames.contains(
            "(hidden to fit 80 columns: seq, packets, offset, mmtls; --wide shows every\n  column)"
        ),
        "{frames}"
    );
}

#[test]
fn durations_and_latencies_have_units() {
    let s = sample("serve-client-longlink.pcapng");
    // The manualauth answer on connection 0 took 9576 µs.
    let json: Vec<Value> = serde_json::from_str(&run(None, &["frames", &s, "--format", "json"]))
        .expect("a JSON array");
    let resp = json
        .iter()
        .find(|f| f["conn"] == 0 && f["cmd_name"] == "manualauth_resp")
        .expect("manualauth_resp");
    assert_eq!(resp["latency_us"], 9576, "JSON keeps microseconds");
    let table = run(None, &["frames", &s, "--conn", "0"]);
    let header = table.lines().nth(1).unwrap();
    assert!(header.contains("┆ latency ms ┆"), "{table}");
    let row = table
        .lines()
        .find(|l| l.contains("manualauth_resp"))
        .unwrap();
    assert!(row.contains("┆ 9.6 "), "{row}");
    let analyze = run(None, &["analyze", &s]);
    assert!(
        analyze.contains("┆ p50 ms ┆ p90 ms ┆ p99 ms ┆ max ms │"),
        "{analyze}"
    );
    assert!(!analyze.contains("µs"), "{analyze}");
    let flows = run(None, &["flows", &s]);
    assert!(flows.contains("┆ duration s ┆"), "{flows}");
    // Connection 0 lasted 1.536908 s.
    assert!(
        flows
            .lines()
            .any(|l| l.starts_with("│ 0 ") && l.contains("┆ 1.537 ")),
        "{flows}"
    );
}

#[test]
fn relative_times_count_from_the_first_packet_and_json_stays_absolute() {
    let s = sample("serve-client-longlink.pcapng");
    let flows = run(None, &["flows", &s, "--time", "relative"]);
    // The first connection starts with the capture's first packet.
    let first = flows.lines().find(|l| l.starts_with("│ 0 ")).unwrap();
    assert!(first.contains("┆ 0.000000000 ┆"), "{flows}");
    let absolute = run(None, &["flows", &s]);
    assert!(
        absolute.contains("┆ 2026-11-22T04:07:29.778441286Z ┆"),
        "{absolute}"
    );
    let frames = run(None, &["frames", &s, "--time", "relative"]);
    let ts: Vec<f64> = frames
        .lines()
        .skip(3)
        .filter_map(|l| l.trim_start_matches("│ ").split(' ').next()?.parse().ok())
        .collect();
    assert!(ts.len() > 50, "{frames}");
    assert!(ts.iter().all(|&t| (0.0..2.0).contains(&t)), "{ts:?}");
    let sync = run(None, &["sync", &s, "--time", "relative"]);
    assert!(!sync.contains("2026-11-22T"), "{sync}");
    let json = run(
        None,
        &["frames", &s, "--time", "relative", "--format", "ndjson"],
    );
    let line: Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert!(line["ts"]
        .as_str()
        .unwrap()
        .starts_with("2026-11-22T04:07:29."));
}

/// The rows of the "SyncKey sessions" table, cells trimmed.
fn sessions_table(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .skip_while(|l| !l.starts_with("SyncKey sessions"))
        .take_while(|l| !l.is_empty())
        .filter(|l| l.contains('┆'))
        .map(|l| {
            l.trim_matches(['│', ' '])
                .split('┆')
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect()
}

#[test]
fn synckey_sessions_name_their_device_and_their_latest_keys() {
    let text = run(None, &["analyze", &sample("serve-client-longlink.pcapng")]);
    let rows = sessions_table(&text);
    assert_eq!(
        rows[0],
        [
            "uin",
            "user",
            "device",
            "sid",
            "observations",
            "transitions",
            "anomalies",
            "latest keys"
        ],
        "{text}"
    );
    let cells = |r: &Vec<String>| (r[0].clone(), r[2].clone(), r[7].clone());
    let got: Vec<_> = rows[1..].iter().map(cells).collect();
    // bob's phone ended on an identify without a SyncKey: its latest keys
    // are still the three it synced with.
    assert_eq!(
        got,
        [
            ("2".into(), "phone".into(), "3".into()),
            ("2".into(), "web".into(), "3".into()),
            ("1".into(), "phone".into(), "3".into()),
        ],
        "{text}"
    );
}

#[test]
fn ids_beyond_2_pow_53_are_strings_in_every_json_output() {
    let s = sample("serve-client-longlink.pcapng");
    // The ClientMsgId alice's client sent, in the request and in the answer.
    let id: u64 = 1_764_039_458_026_142_061;
    for format in ["json", "ndjson"] {
        let text = run(None, &["frames", &s, "--format", format]);
        assert!(text.contains(&format!("\"{id}\"")), "{format}");
        assert!(!text.contains(&format!(": {id}")) && !text.contains(&format!(":{id}")));
        let records: Vec<Value> = if format == "json" {
            serde_json::from_str(&text).unwrap()
        } else {
            text.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        };
        let send = records
            .iter()
            .find(|f| f["cmd_name"] == "newsendmsg" && f["conn"] == 2)
            .expect("the first newsendmsg");
        let field = &send["body"]["protobuf"]["2"]["5"];
        assert_eq!(
            field.as_str().and_then(|v| v.parse::<u64>().ok()),
            Some(id),
            "{send}"
        );
        // Smaller numbers stay numbers.
        assert_eq!(send["body"]["protobuf"]["2"]["4"], 1_795_320_451u64);
    }
}
