//! `syncscope analyze` and `syncscope frames` as a user runs them.

use std::process::{Command, Output};

use serde_json::Value;

use crate::common::shared;

pub(crate) fn syncscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_syncscope"))
        .args(args)
        .env_remove("COLUMNS")
        .output()
        .expect("run syncscope")
}

pub(crate) fn wechat(name: &str) -> String {
    shared()
        .join("corpus/wechat")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn sample() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/samples/longlink-8080.pcap").to_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub(crate) fn ndjson(o: &Output) -> Vec<Value> {
    assert!(o.status.success(), "{}", stderr(o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn frames_on_the_sample_pair_every_request() {
    let frames = ndjson(&syncscope(&["frames", &sample(), "--format", "ndjson"]));
    assert!(frames.len() > 20);
    for f in &frames {
        for k in [
            "ts",
            "conn",
            "dir",
            "layer",
            "cmd",
            "cmd_name",
            "seq",
            "len",
            "kind",
            "stream_offset",
            "after_gap",
            "body",
        ] {
            assert!(f.get(k).is_some(), "field {k} missing in {f}");
        }
        assert_eq!(f["layer"], "longlink");
        if f["kind"] == "response" {
            assert!(f["latency_us"].is_u64(), "response without latency: {f}");
            assert!(f["cmd"].as_u64().unwrap() >= 1_000_000_000);
        }
        if f["kind"] == "push" {
            assert_eq!(f["seq"], 0);
            assert_eq!(f["dir"], "s2c");
        }
    }
    // Requests and responses balance on a capture that ends cleanly.
    let count = |k: &str| frames.iter().filter(|f| f["kind"] == k).count();
    assert_eq!(count("request"), count("response"));
}

#[test]
fn frames_filters_by_cmd_name_conn_and_layer() {
    let all = ndjson(&syncscope(&["frames", &sample(), "--format", "ndjson"]));
    let sync = ndjson(&syncscope(&[
        "frames",
        &sample(),
        "--format",
        "ndjson",
        "--cmd",
        "newsync",
    ]));
    assert!(!sync.is_empty());
    assert!(sync
        .iter()
        .all(|f| f["cmd"] == 121 || f["cmd"] == 1_000_000_121));
    let want = all
        .iter()
        .filter(|f| f["cmd"] == 121 || f["cmd"] == 1_000_000_121)
        .count();
    assert_eq!(sync.len(), want);
    let by_number = ndjson(&syncscope(&[
        "frames",
        &sample(),
        "--format",
        "ndjson",
        "--cmd",
        "121",
    ]));
    assert_eq!(by_number, sync);
    let conn1 = ndjson(&syncscope(&[
        "frames",
        &sample(),
        "--format",
        "ndjson",
        "--conn",
        "1",
    ]));
    assert!(!conn1.is_empty() && conn1.iter().all(|f| f["conn"] == 1));
    let none = ndjson(&syncscope(&[
        "frames",
        &sample(),
        "--format",
        "ndjson",
        "--layer",
        "mmtls",
    ]));
    assert!(none.is_empty());
    let bad = syncscope(&["frames", &sample(), "--layer", "tcp"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("--layer"), "{}", stderr(&bad));
}

#[test]
fn frames_json_is_the_ndjson_records_as_an_array() {
    let nd = ndjson(&syncscope(&["frames", &sample(), "--format", "ndjson"]));
    let out = syncscope(&["frames", &sample(), "--format", "json"]);
    let arr: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(arr, nd);
}

#[test]
fn analyze_with_the_key_log_reports_what_expected_md_lists() {
    let out = syncscope(&[
        "analyze",
        &wechat("capture-logged-in-all-keys.pcapng"),
        "--keylog",
        &wechat("frida-logged-in-all-keys.log"),
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["connections"].as_array().unwrap().len(), 34);
    assert_eq!(r["by_protocol"]["mmtls_short"], 25);
    assert_eq!(r["mmtls"]["records"], 204);
    assert_eq!(r["mmtls"]["decrypted"], 117);
    assert_eq!(r["mmtls"]["no_key"], 33);
    assert_eq!(r["synckeys"].as_array().unwrap().len(), 5);
    let text = syncscope(&[
        "analyze",
        &wechat("capture-logged-in-all-keys.pcapng"),
        "--keylog",
        &wechat("frida-logged-in-all-keys.log"),
    ]);
    let t = String::from_utf8_lossy(&text.stdout);
    for s in [
        "Connections: 34",
        "MMTLS records: 204",
        "decrypted 117",
        "longlink_identify",
        "SyncKeys seen",
    ] {
        assert!(t.contains(s), "{s} missing from the report:\n{t}");
    }
}

#[test]
fn without_the_key_log_records_are_reported_as_encrypted() {
    let out = syncscope(&[
        "analyze",
        &wechat("capture-logged-in-all-keys.pcapng"),
        "--format",
        "json",
    ]);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["mmtls"]["records"], 204);
    assert_eq!(r["mmtls"]["decrypted"], 0);
    assert_eq!(r["mmtls"]["no_key"], 150);
    let frames = ndjson(&syncscope(&[
        "frames",
        &wechat("capture-logged-in-all-keys.pcapng"),
        "--format",
        "ndjson",
        "--layer",
        "mmtls",
    ]));
    assert_eq!(frames.len(), 204);
    assert!(frames
        .iter()
        .all(|f| f["crypto"] == "plaintext" || f["crypto"] == "no_key"));
}

#[test]
fn short_link_records_carry_uri_host_and_business() {
    let frames = ndjson(&syncscope(&[
        "frames",
        &wechat("capture-logged-in-all-keys.pcapng"),
        "--keylog",
        &wechat("frida-logged-in-all-keys.log"),
        "--format",
        "ndjson",
        "--layer",
        "shortlink",
    ]));
    assert_eq!(frames.len(), 36);
    for f in &frames {
        let b = &f["business"];
        for k in [
            "cgi",
            "cgi_name",
            "algo",
            "compress",
            "uin",
            "decrypted",
            "plaintext_len",
            "plaintext_sha256",
        ] {
            assert!(b.get(k).is_some(), "business.{k} missing in {f}");
        }
        assert!(
            f["uri"]
                .as_str()
                .unwrap()
                .starts_with("/cgi-bin/micromsg-bin/"),
            "{f}"
        );
        assert!(f["host"].is_string());
        assert!(f["mmtls_record"].is_u64());
    }
}

#[test]
fn bad_inputs_name_the_file_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("keys.log");
    std::fs::write(&junk, "not json\n").unwrap();
    let out = syncscope(&["analyze", &sample(), "--keylog", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("keys.log"), "{}", stderr(&out));
    let out = syncscope(&["analyze", &sample(), "--keylog", "/nonexistent/k.log"]);
    assert_eq!(out.status.code(), Some(2));
    let bad_proto = dir.path().join("bad.proto");
    std::fs::write(
        &bad_proto,
        "syntax = \"proto3\";\nmessage X { int32 a = ; }\n",
    )
    .unwrap();
    let out = syncscope(&["frames", &sample(), "--proto", bad_proto.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("bad.proto"), "{}", stderr(&out));
    let bad_profile = dir.path().join("p.toml");
    std::fs::write(&bad_profile, "[[command]]\ncmd = 'x'\n").unwrap();
    let out = syncscope(&[
        "frames",
        &sample(),
        "--profile",
        bad_profile.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("p.toml"), "{}", stderr(&out));
}

#[test]
fn a_profile_and_a_proto_decode_bodies_by_message() {
    // The sample's newsync bodies are random bytes: with a profile mapping
    // cmd 121 to a message the body is decoded against it or the schema
    // error is shown next to the schema-less view.
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("p.toml");
    std::fs::write(
        &profile,
        "[[command]]\ncmd = 121\nname = \"sync\"\nrequest = \"micromsg.NewSyncRequest\"\n",
    )
    .unwrap();
    let proto = concat!(env!("CARGO_MANIFEST_DIR"), "/proto/wechat.proto");
    let frames = ndjson(&syncscope(&[
        "frames",
        &sample(),
        "--format",
        "ndjson",
        "--profile",
        profile.to_str().unwrap(),
        "--proto",
        proto,
        "--cmd",
        "121",
    ]));
    assert!(!frames.is_empty());
    for f in &frames {
        assert!(
            f["cmd_name"] == "sync" || f["cmd_name"] == "sync_resp",
            "{f}"
        );
        if f["kind"] == "request" {
            let b = &f["body"];
            assert!(b.is_object(), "{f}");
        }
    }
}

#[test]
fn port_restricts_analysis_to_connections_on_that_port() {
    let out = syncscope(&[
        "analyze",
        &wechat("capture-logged-in-all-keys.pcapng"),
        "--port",
        "8080",
        "--format",
        "json",
    ]);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let conns = r["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 7);
    for c in conns {
        let on = |e: &Value| e.as_str().unwrap().ends_with(":8080");
        assert!(on(&c["server"]) || on(&c["client"]), "{c}");
    }
}

#[test]
fn sync_prints_the_sessions_in_the_documented_shape() {
    let out = syncscope(&[
        "sync",
        &wechat("capture-logged-in-all-keys.pcapng"),
        "--keylog",
        &wechat("frida-logged-in-all-keys.log"),
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sessions = v["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    let s = &sessions[0];
    assert_eq!(s["uin"], 1_505_495_844u64);
    for o in s["observations"].as_array().unwrap() {
        for k in ["ts", "conn", "dir", "source", "keys"] {
            assert!(o.get(k).is_some(), "observation without {k}: {o}");
        }
        assert_eq!(o["keys"].as_object().unwrap().len(), 48);
    }
    let t = &s["transitions"][0];
    assert_eq!((t["from"].as_u64(), t["to"].as_u64()), (Some(0), Some(1)));
    assert_eq!(t["changed"]["24"]["delta"], 59);
    assert!(s["anomalies"].as_array().unwrap().is_empty());
    let nd = syncscope(&[
        "sync",
        &wechat("capture-logged-in-all-keys.pcapng"),
        "--keylog",
        &wechat("frida-logged-in-all-keys.log"),
        "--format",
        "ndjson",
    ]);
    let lines: Vec<Value> = String::from_utf8_lossy(&nd.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, *sessions);
    let table = syncscope(&[
        "sync",
        &wechat("capture-logged-in-all-keys.pcapng"),
        "--keylog",
        &wechat("frida-logged-in-all-keys.log"),
    ]);
    let t = String::from_utf8_lossy(&table.stdout);
    assert!(t.contains("uin 1505495844") && t.contains("24+59"), "{t}");
}

/// `samples/serve-client-NAME.pcapng` (real loopback traffic of `serve`
/// and `client`, recorded by bench/make-samples.sh).
fn serve_client_sample(name: &str) -> String {
    format!(
        "{}/samples/serve-client-{name}.pcapng",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Runs `syncscope ARGS --format json`, which must succeed, and parses its output.
fn json_of(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let out = syncscope(&all);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The sample recorded from `serve` and `client` on loopback: every
/// long-link request is answered, pushes are seen, and the SyncKey (key 2,
/// the mailbox position) only goes up.
#[test]
fn analyze_decodes_the_recorded_serve_client_sample() {
    let sample = &serve_client_sample("longlink");
    let r = json_of(&["analyze", sample]);
    let conns = r["connections"].as_array().unwrap();
    assert!(!conns.is_empty());
    assert!(conns.iter().all(|c| c["kind"] == "longlink"), "{conns:?}");
    assert!(
        r["anomalies"].as_array().unwrap().is_empty(),
        "{}",
        r["anomalies"]
    );
    let cmds = r["commands"].as_array().unwrap();
    let count = |cmd: u64| {
        cmds.iter()
            .find(|c| c["cmd"] == cmd)
            .map_or(0, |c| c["count"].as_u64().unwrap())
    };
    for req in [205u64, 121, 237] {
        assert!(count(req) > 0, "no cmd {req}");
        assert_eq!(
            count(req),
            count(req + 1_000_000_000),
            "cmd {req}: requests and responses differ"
        );
    }
    assert!(count(24) > 0, "no newnotify push");
    for p in r["pairing_by_conn"].as_array().unwrap() {
        assert_eq!(p["unanswered_requests"], 0, "{p}");
        assert_eq!(p["responses_without_request"], 0, "{p}");
    }
    for s in r["sessions"].as_array().unwrap() {
        assert!(s["anomalies"].as_array().unwrap().is_empty(), "{s}");
        for t in s["transitions"].as_array().unwrap() {
            for (_, c) in t["changed"].as_object().unwrap() {
                assert!(
                    c["delta"].is_null() || c["delta"].as_i64().unwrap() > 0,
                    "{t}"
                );
            }
        }
    }
}

/// The short-link sample (plain protobuf `POST .../newsync`): its SyncKeys
/// reach the timeline, and its one resend (the same ClientMsgId for the
/// same message, answered with the same MsgID) is the one anomaly.
#[test]
fn sync_follows_the_short_link_sample() {
    let sample = &serve_client_sample("shortlink");
    let v = json_of(&["sync", sample]);
    let sessions = v["sessions"].as_array().unwrap();
    let obs: usize = sessions
        .iter()
        .map(|s| s["observations"].as_array().unwrap().len())
        .sum();
    assert!(obs >= 2, "{v}");
    let kinds: Vec<&str> = sessions
        .iter()
        .flat_map(|s| s["anomalies"].as_array().unwrap())
        .filter_map(|a| a["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["client_msg_resend"], "{v}");
    let frames = ndjson(&syncscope(&[
        "frames", sample, "--format", "ndjson", "--layer", "http",
    ]));
    let sends: Vec<&Value> = frames
        .iter()
        .filter(|f| f["cmd_name"] == "newsendmsg")
        .collect();
    assert_eq!(sends.len(), 3, "{frames:?}");
    // The analyze table names each session's user, as the JSON does.
    let users: Vec<&str> = sessions.iter().filter_map(|s| s["user"].as_str()).collect();
    assert!(!users.is_empty(), "{v}");
    let out = syncscope(&["analyze", sample, "-q", "--wide"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let table: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("SyncKey sessions"))
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(table.iter().any(|l| l.contains("┆ user ")), "{text}");
    for u in users {
        assert!(
            table.iter().any(|l| l.contains(&format!(" {u} "))),
            "{u} missing in\n{}",
            table.join("\n")
        );
    }
}

/// The web sample (bob logs in on the web, alice sends from the long link,
/// bob answers with webwxsendmsg), with no flags: every web exchange is
/// decoded, and the SyncKey timeline follows the web session: each key
/// the client presents is the last one the server issued, and key 2 goes
/// up by one when the message arrives.
#[test]
fn web_sample_exchanges_and_timeline() {
    let sample = &serve_client_sample("web");
    let r = json_of(&["analyze", sample]);
    assert!(
        r["anomalies"].as_array().unwrap().is_empty(),
        "{}",
        r["anomalies"]
    );
    let kinds: Vec<&str> = r["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"http") && kinds.contains(&"longlink"),
        "{kinds:?}"
    );
    assert!(
        kinds.iter().all(|k| ["http", "longlink"].contains(k)),
        "{kinds:?}"
    );

    let web = ndjson(&syncscope(&[
        "frames", sample, "--format", "ndjson", "--layer", "web",
    ]));
    let of = |endpoint: &str| -> Vec<&Value> {
        web.iter().filter(|f| f["endpoint"] == endpoint).collect()
    };
    for e in [
        "jslogin",
        "login",
        "webwxnewloginpage",
        "webwxinit",
        "webwxstatusnotify",
        "synccheck",
        "webwxsync",
        "webwxsendmsg",
        "webwxlogout",
    ] {
        assert!(!of(e).is_empty(), "no {e} in {web:?}");
    }
    // The ticket page comes as a 301 (the real service in UOS mode).
    assert!(
        web.iter().all(|f| f["status"]
            == if f["endpoint"] == "webwxnewloginpage" {
                301
            } else {
                200
            }),
        "{web:?}"
    );
    // The held synccheck was answered "new messages".
    let checks = of("synccheck");
    assert!(
        checks
            .iter()
            .any(|f| f["body"]["info"]["retcode"] == 0 && f["body"]["info"]["selector"] == 2),
        "{checks:?}"
    );
    // A webwxsync brought alice's message to bob.
    let adds: Vec<&Value> = of("webwxsync")
        .iter()
        .flat_map(|f| {
            f["body"]["info"]["add_msgs"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .collect();
    assert_eq!(adds.len(), 1, "{adds:?}");
    assert_eq!(
        (&adds[0]["from"], &adds[0]["to"]),
        (&"@alice".into(), &"@bob".into())
    );
    assert_eq!(adds[0]["msg_type"], 1);
    // bob's answer: sent once, with its ClientMsgId, confirmed with a MsgID.
    let sends = of("webwxsendmsg");
    assert_eq!(sends.len(), 1, "{sends:?}");
    let s = &sends[0]["body"];
    assert_eq!(
        (
            &s["request"]["Msg"]["FromUserName"],
            &s["request"]["Msg"]["ToUserName"]
        ),
        (&"@bob".into(), &"@alice".into())
    );
    assert!(s["info"]["client_msg_id"]
        .as_str()
        .is_some_and(|c| !c.is_empty()));
    assert!(s["info"]["msg_id"]
        .as_str()
        .is_some_and(|m| m != "0" && !m.is_empty()));
    let uin = of("webwxnewloginpage")[0]["body"]["info"]["uin"].clone();
    assert!(uin.as_u64().is_some(), "{uin}");

    let v = json_of(&["sync", sample]);
    let sessions = v["sessions"].as_array().unwrap();
    assert!(
        sessions
            .iter()
            .all(|s| s["anomalies"].as_array().unwrap().is_empty()),
        "{v}"
    );
    let session = sessions
        .iter()
        .find(|s| s["uin"] == uin && s["sid"].is_string())
        .unwrap_or_else(|| panic!("no web session of uin {uin}: {v}"));
    let obs = session["observations"].as_array().unwrap();
    assert_eq!(
        (&obs[0]["source"], &obs[0]["message"]),
        (&"server_issued".into(), &"webwxinit".into())
    );
    let mut issued: Option<&Value> = None;
    let mut seen = std::collections::BTreeSet::new();
    for o in obs {
        let (source, message) = (
            o["source"].as_str().unwrap(),
            o["message"].as_str().unwrap(),
        );
        seen.insert(format!("{source} {message}"));
        if source == "server_issued" {
            issued = Some(&o["keys"]);
        } else {
            assert_eq!(
                Some(&o["keys"]),
                issued,
                "{message} presents a key never issued: {o}"
            );
        }
    }
    for want in [
        "client_presented webwxsync_request",
        "server_issued webwxsync_response",
        "server_issued webwxsync_response.SyncCheckKey",
        "synccheck_param synccheck",
    ] {
        assert!(seen.contains(want), "no {want} in {seen:?}");
    }
    let steps: Vec<&Value> = session["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["changed"])
        .collect();
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert_eq!(steps[0]["2"]["delta"], 1, "{steps:?}");
}

#[test]
fn each_reports_every_capture_apart() {
    // The samples are unrelated runs of the reference server: merged, the
    // sessions of the same uins meet and the SyncKey timeline finds
    // regressions between captures; apart, each report is that capture's.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/samples");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().into_owned())
        .filter(|p| p.ends_with(".pcapng"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    let of_kind = |r: &Value, kind: &str| {
        r["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["kind"] == kind)
            .count()
    };
    let json = |extra: &[&str]| -> Value {
        let mut args = vec!["analyze", "--format", "json", "-q"];
        args.extend_from_slice(extra);
        args.extend(files.iter().map(String::as_str));
        let o = syncscope(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let merged = json(&[]);
    assert!(
        of_kind(&merged, "key_regression") > 0,
        "{}",
        merged["anomalies"]
    );
    let each = json(&["--each"]);
    let each = each.as_array().expect("a list");
    // In the order of the inputs' first packets, as a merged run reads them.
    let mut named: Vec<&str> = each.iter().map(|e| e["file"].as_str().unwrap()).collect();
    named.sort_unstable();
    assert_eq!(named, files);
    for e in each {
        let f = e["file"].as_str().unwrap();
        assert_eq!(of_kind(&e["report"], "key_regression"), 0, "{f}");
        let o = syncscope(&["analyze", "--format", "json", "-q", f]);
        let alone: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(e["report"], alone, "{f}");
    }
    // As tables: one section per file, named.
    let mut args = vec!["analyze", "--each", "-q"];
    args.extend(files.iter().map(String::as_str));
    let o = syncscope(&args);
    let text = String::from_utf8_lossy(&o.stdout);
    for f in &files {
        assert!(text.contains(&format!("== {f}")), "{text}");
    }
}
