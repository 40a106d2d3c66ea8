//! The command-line surface of issue 16: `--cmd` and `--layer` as the
//! tables print them, `--host`, `--since`/`--until`, exit codes
//! (`--fail-on-anomaly`), and the error messages of rough inputs.

use std::process::Output;

use serde_json::Value;

use crate::cli_analyze::{ndjson, stderr, syncscope};
use crate::common::corpus_real;

fn sample(name: &str) -> String {
    format!("{}/samples/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn longlink() -> String {
    sample("serve-client-longlink.pcapng")
}

fn frames(file: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["frames", file, "--format", "ndjson", "-q"];
    args.extend_from_slice(extra);
    ndjson(&syncscope(&args))
}

fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

/// An error message: exit 2, no Rust Debug formatting, the given words.
fn assert_error(o: &Output, words: &[&str]) -> String {
    let err = stderr(o);
    assert_eq!(code(o), Some(2), "{err}");
    assert!(err.starts_with("syncscope: error: "), "{err}");
    for bad in ["Some(", "None", "Os {", "kind:"] {
        assert!(!err.contains(bad), "Debug formatting: {err}");
    }
    for w in words {
        assert!(err.contains(w), "{w:?} not in: {err}");
    }
    err
}

#[test]
fn cmd_takes_names_in_any_case_and_numbers_in_hex() {
    let f = longlink();
    let by_name = frames(&f, &["--cmd", "newsync"]);
    assert!(by_name.len() >= 10, "{}", by_name.len());
    assert_eq!(frames(&f, &["--cmd", "NEWSYNC"]), by_name);
    assert_eq!(frames(&f, &["--cmd", "0x79"]), by_name);
    let identify = frames(&f, &["--cmd", "0xcd"]);
    assert!(!identify.is_empty());
    assert_eq!(identify, frames(&f, &["--cmd", "205"]));
    assert!(identify
        .iter()
        .all(|r| r["cmd"] == 205 || r["cmd"] == 1_000_000_205));
    // cmd 6 is the noop, in the table and for the filter alike.
    let noop = frames(&f, &["--cmd", "Noop"]);
    assert!(!noop.is_empty());
    assert!(noop
        .iter()
        .all(|r| r["cmd_name"] == "noop" || r["cmd_name"] == "noop_resp"));
    assert_eq!(noop, frames(&f, &["--cmd", "6"]));
}

#[test]
fn an_unknown_cmd_name_is_an_error_listing_the_known_ones_in_80_columns() {
    let out = syncscope(&["frames", &longlink(), "--cmd", "bogus"]);
    let err = assert_error(
        &out,
        &["--cmd bogus", "newsync", "noop", "error", "webwxsync"],
    );
    assert!(out.stdout.is_empty(), "nothing printed before the error");
    for line in err.lines() {
        assert!(line.chars().count() <= 80, "{} columns: {line}", line.len());
    }
    assert_error(
        &syncscope(&["frames", &longlink(), "--cmd", "0xzz"]),
        &["--cmd 0xzz", "hex"],
    );
    // A profile's name is known.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.toml");
    std::fs::write(&p, "[[command]]\ncmd = 121\nname = \"MySync\"\n").unwrap();
    let renamed = frames(
        &longlink(),
        &["--profile", p.to_str().unwrap(), "--cmd", "mysync"],
    );
    assert_eq!(renamed.len(), frames(&longlink(), &["--cmd", "121"]).len());
    assert!(renamed[0]["cmd_name"]
        .as_str()
        .unwrap()
        .starts_with("MySync"));
}

#[test]
fn short_link_records_answer_to_their_cgi_name() {
    let f = sample("serve-client-shortlink.pcapng");
    let all = frames(&f, &[]);
    let sends = frames(&f, &["--cmd", "newsendmsg"]);
    let want: Vec<&Value> = all
        .iter()
        .filter(|r| r["cmd_name"] == "newsendmsg")
        .collect();
    assert_eq!(sends.len(), 3);
    assert_eq!(sends.iter().collect::<Vec<_>>(), want);
    assert_eq!(frames(&f, &["--cmd", "NewSync"]).len(), 2);
}

#[test]
fn layer_takes_exactly_what_records_print() {
    let mut seen = 0;
    for name in [
        "serve-client-longlink.pcapng",
        "serve-client-shortlink.pcapng",
        "serve-client-web.pcapng",
    ] {
        let f = sample(name);
        let all = frames(&f, &[]);
        let mut layers: Vec<&str> = all.iter().map(|r| r["layer"].as_str().unwrap()).collect();
        layers.sort();
        layers.dedup();
        for l in layers {
            let got = frames(&f, &["--layer", l]);
            let want: Vec<&Value> = all.iter().filter(|r| r["layer"] == l).collect();
            assert_eq!(got.iter().collect::<Vec<_>>(), want, "{name} --layer {l}");
            seen += 1;
        }
    }
    assert!(seen >= 3);
    let out = syncscope(&["frames", &longlink(), "--layer", "tcp"]);
    assert_eq!(code(&out), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("longlink, mars, shortlink, mmtls, http, web"),
        "{err}"
    );
}

/// Connection ids and client ports of the sample, from `flows`.
fn conns(file: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["flows", file, "--format", "ndjson", "-q"];
    args.extend_from_slice(extra);
    ndjson(&syncscope(&args))
}

#[test]
fn host_keeps_connections_with_that_endpoint_and_their_ids() {
    let f = longlink();
    let all = conns(&f, &[]);
    assert!(all.len() >= 3);
    let third = &all[2];
    let client = third["client"].as_str().unwrap();
    let only = conns(&f, &["--host", client]);
    assert_eq!(
        only,
        vec![third.clone()],
        "same id and record as unfiltered"
    );
    let recs = frames(&f, &["--host", client]);
    assert!(!recs.is_empty());
    assert!(recs.iter().all(|r| r["conn"] == third["id"]), "{recs:?}");
    assert_eq!(recs, frames(&f, &["--conn", &third["id"].to_string()]));
    // An IP alone matches both ends; an address that is not there, nothing.
    assert_eq!(conns(&f, &["--host", "127.0.0.1"]), all);
    assert_eq!(conns(&f, &["--host", "127.0.0.1:8080"]), all);
    assert!(conns(&f, &["--host", "10.9.9.9"]).is_empty());
    let out = syncscope(&["analyze", &f, "--host", "10.9.9.9", "--format", "json"]);
    assert_eq!(code(&out), Some(0));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["connections"].as_array().map(Vec::len), Some(0));
    let out = syncscope(&["frames", &f, "--host", "example.com"]);
    assert_eq!(code(&out), Some(2));
    assert!(
        stderr(&out).contains("not an IP address"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn since_and_until_cut_the_capture_in_time() {
    let f = longlink();
    let all = frames(&f, &[]);
    let first = &conns(&f, &[])[0]["first_ts"];
    let start = chrono::DateTime::parse_from_rfc3339(first.as_str().unwrap()).unwrap();
    let at = |secs: f64| {
        (start + chrono::Duration::nanoseconds((secs * 1e9) as i64))
            .to_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
    };
    // The sample spans about 2 s: records from 1.5 s on, the same frames
    // (those of connections open at 1.5 s say the bytes before were not seen).
    let key = |r: &Value| {
        let mut r = r.clone();
        r.as_object_mut().unwrap().remove("after_gap");
        r
    };
    let since = frames(&f, &["--since", "1.5s"]);
    let want: Vec<Value> = all
        .iter()
        .filter(|r| r["ts"].as_str().unwrap() >= at(1.5).as_str())
        .map(key)
        .collect();
    assert!(!since.is_empty() && since.len() < all.len());
    assert_eq!(since.iter().map(key).collect::<Vec<_>>(), want);
    // The same bound as an RFC 3339 time.
    assert_eq!(frames(&f, &["--since", &at(1.5)]), since);
    let until = frames(&f, &["--until", "1.5"]);
    assert_eq!(until.len() + since.len(), all.len());
    assert_eq!(until[..], all[..until.len()]);
    assert!(until
        .iter()
        .all(|r| r["ts"].as_str().unwrap() <= at(1.5).as_str()));
    // flows lists the connections active in the window, ids unchanged.
    let early = conns(&f, &["--until", "1s"]);
    assert_eq!(
        early
            .iter()
            .map(|c| c["id"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [0, 1]
    );
    let out = syncscope(&["sync", &f, "--since", "5s", "--until", "1s"]);
    assert_error(&out, &["--since", "after --until"]);
    let out = syncscope(&["flows", &f, "--since", "yesterday"]);
    assert_eq!(code(&out), Some(2));
    assert!(stderr(&out).contains("RFC 3339"), "{}", stderr(&out));
}

#[test]
fn fail_on_anomaly_exits_1_when_anomalies_were_found() {
    let gap = corpus_real()
        .join("sv-http-gap-simple_input.pcap")
        .to_string_lossy()
        .into_owned();
    let clean = longlink();
    for cmd in ["analyze", "flows", "frames"] {
        let run = |file: &str, flag: bool| {
            let mut a = vec![cmd, file, "-q"];
            if flag {
                a.push("--fail-on-anomaly");
            }
            code(&syncscope(&a))
        };
        assert_eq!(run(&gap, true), Some(1), "{cmd} with anomalies");
        assert_eq!(run(&gap, false), Some(0), "{cmd} without the flag");
        assert_eq!(run(&clean, true), Some(0), "{cmd} on a clean capture");
    }
    // sync counts the SyncKey anomalies it shows.
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.pcap");
    std::fs::write(&web, crate::web_session::web_session_capture()).unwrap();
    let web = web.to_str().unwrap();
    assert_eq!(
        code(&syncscope(&["sync", web, "-q", "--fail-on-anomaly"])),
        Some(1)
    );
    assert_eq!(code(&syncscope(&["sync", web, "-q"])), Some(0));
    assert_eq!(
        code(&syncscope(&["sync", &gap, "-q", "--fail-on-anomaly"])),
        Some(0)
    );
    // Errors stay 2 whatever the flag.
    assert_eq!(
        code(&syncscope(&[
            "analyze",
            "/nonexistent.pcap",
            "--fail-on-anomaly"
        ])),
        Some(2)
    );
    let help = String::from_utf8(syncscope(&["analyze", "--help"]).stdout).unwrap();
    assert!(help.contains("Exit status: 0") && help.contains("--fail-on-anomaly"));
}

#[test]
fn rough_inputs_get_errors_that_name_the_file_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let readme = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let out = syncscope(&["flows", &longlink(), "--dump", readme]);
    assert_error(&out, &["--dump", "README.md", "not a directory"]);

    // Cut short in the file header: pcap and pcapng.
    for name in ["longlink-8080.pcap", "serve-client-longlink.pcapng"] {
        let bytes = std::fs::read(sample(name)).unwrap();
        let short = dir.path().join(format!("short-{name}"));
        std::fs::write(&short, &bytes[..10]).unwrap();
        let short = short.to_str().unwrap();
        for cmd in ["flows", "frames", "analyze", "sync"] {
            let out = syncscope(&[cmd, short]);
            assert_error(&out, &[short, "cut short at byte offset 0", "no packet"]);
            assert!(out.stdout.is_empty(), "{cmd}: nothing printed");
        }
    }
    // A pcapng whose first block is corrupt is refused, with the offset.
    let mut bytes = std::fs::read(longlink()).unwrap();
    bytes[8..12].copy_from_slice(&[0, 0, 0, 0]);
    let bad = dir.path().join("bad-magic.pcapng");
    std::fs::write(&bad, &bytes).unwrap();
    let bad = bad.to_str().unwrap();
    let out = syncscope(&["frames", bad]);
    assert_error(&out, &[bad, "corrupt at byte offset 0", "byte-order magic"]);
    // A readable header and nothing after it that is a packet: an error.
    let mut bytes = std::fs::read(longlink()).unwrap();
    let shb = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    bytes.truncate(shb + 8);
    bytes.extend_from_slice(&[0xff; 8]);
    let cut = dir.path().join("after-header.pcapng");
    std::fs::write(&cut, &bytes).unwrap();
    let cut = cut.to_str().unwrap();
    for cmd in ["flows", "frames", "analyze", "sync"] {
        let out = syncscope(&[cmd, cut, "-q"]);
        assert_error(&out, &[cut, "byte offset 48", "no packet could be read"]);
        assert!(out.stdout.is_empty(), "{cmd}: nothing printed");
    }
}

#[test]
fn serve_errors_say_what_is_wanted_once() {
    let out = syncscope(&["serve", "--data", "/proc/nope"]);
    let err = assert_error(&out, &["/proc/nope", "--memory"]);
    assert_eq!(
        err.matches("No such file or directory").count(),
        1,
        "the OS error once: {err}"
    );
    let out = syncscope(&["serve", "--listen", "9095", "--memory"]);
    assert_error(&out, &["--listen 9095", ":PORT"]);
    // `:PORT` is every interface, so identity is enforced (not a DNS error).
    let out = syncscope(&["serve", "--listen", ":0", "--memory"]);
    let err = assert_error(&out, &["--users"]);
    assert!(!err.contains("lookup"), "{err}");
}

#[test]
fn a_profile_without_proto_uses_the_built_in_schema() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.toml");
    std::fs::write(
        &p,
        "[[command]]\ncmd = 237\nrequest = \"micromsg.NewSendMsgRequest\"\n",
    )
    .unwrap();
    let recs = frames(
        &longlink(),
        &["--profile", p.to_str().unwrap(), "--cmd", "237"],
    );
    let req = recs.iter().find(|r| r["kind"] == "request").unwrap();
    assert!(req["body"]["List"].is_array(), "decoded by name: {req}");
    // A name the built-in schema does not have says where it looked.
    std::fs::write(&p, "[[command]]\ncmd = 237\nrequest = \"Nope\"\n").unwrap();
    let out = syncscope(&["frames", &longlink(), "--profile", p.to_str().unwrap()]);
    assert_error(&out, &["p.toml", "built-in proto/wechat.proto", "--proto"]);
}

/// `frames --cmd error` selects the error frame (cmd 10^9), which has a name.
#[test]
fn the_error_frame_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("err.pcap");
    // A request, then the server's error frame for it.
    use syncscope::synth::{longlink_frame, Conversation, Side};
    let mut conv = Conversation::new(
        "10.0.0.1:40000".parse().unwrap(),
        "10.0.0.2:8080".parse().unwrap(),
        1000,
        5000,
    );
    let mut packets = conv.handshake();
    packets.extend(conv.send(Side::Client, &longlink_frame(121, 7, b"")));
    packets.extend(conv.send(Side::Server, &longlink_frame(1_000_000_000, 7, b"\x08\x01")));
    packets.extend(conv.close());
    let bytes = crate::common::pcap_of(&packets);
    std::fs::write(&file, bytes).unwrap();
    let f = file.to_str().unwrap();
    let errs = frames(f, &["--cmd", "error"]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0]["cmd"], 1_000_000_000);
    assert_eq!(errs[0]["cmd_name"], "error");
}
