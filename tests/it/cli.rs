//! The `syncscope flows` command line, as a user runs it.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::common::corpus_real;

fn syncscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_syncscope"))
        .args(args)
        .env_remove("COLUMNS")
        .output()
        .expect("run syncscope")
}

fn real(name: &str) -> String {
    corpus_real().join(name).to_string_lossy().into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Vec<Value> {
    assert!(o.status.success(), "exit {:?}: {}", o.status, stderr(o));
    serde_json::from_slice::<Vec<Value>>(&o.stdout).expect("a JSON array")
}

#[test]
fn json_has_exactly_the_documented_fields() {
    let out = syncscope(&[
        "flows",
        &real("handshake-reorder.pcap"),
        "--format",
        "json",
        "--hash",
    ]);
    let flows = json(&out);
    assert_eq!(flows.len(), 1);
    let f = flows[0].as_object().unwrap();
    let mut keys: Vec<_> = f.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["c2s", "client", "end", "first_ts", "id", "last_ts", "s2c", "server"]
    );
    let mut dkeys: Vec<_> = f["c2s"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    dkeys.sort();
    assert_eq!(dkeys, ["bytes", "gap_bytes", "gaps", "packets", "sha256"]);
    // The SYN+ACK comes first in this file; the client is still the SYN sender.
    assert_eq!(f["client"], "141.142.228.5:59856");
    assert_eq!(f["server"], "192.150.187.43:80");
    assert_eq!(f["c2s"]["bytes"], 136);
    assert_eq!(f["s2c"]["bytes"], 5007);
    assert_eq!(f["end"], "fin");
    assert_eq!(f["first_ts"], "2013-03-07T21:42:06.939084Z");
    // Without --hash there is no sha256.
    let plain = json(&syncscope(&[
        "flows",
        &real("handshake-reorder.pcap"),
        "--format",
        "json",
    ]));
    assert!(plain[0]["c2s"].get("sha256").is_none());
}

#[test]
fn ndjson_streams_the_same_records() {
    let file = real("raw_ip.pcap");
    let all = json(&syncscope(&["flows", &file, "--format", "json", "--hash"]));
    let out = syncscope(&["flows", &file, "--format", "ndjson", "--hash"]);
    assert!(out.status.success());
    let mut lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    lines.sort_by_key(|v| v["id"].as_u64());
    assert_eq!(lines, all);
    assert_eq!(all.len(), 6);
    let ids: Vec<u64> = all.iter().map(|v| v["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (0..6).collect::<Vec<_>>());
}

#[test]
fn ipv6_endpoints_are_bracketed() {
    let flows = json(&syncscope(&[
        "flows",
        &real("one_ipv6_http_stream.pcap"),
        "--format",
        "json",
    ]));
    let c = flows[0]["client"].as_str().unwrap();
    assert!(c.starts_with('[') && c.contains("]:"), "{c}");
}

#[test]
fn nanosecond_capture_keeps_nine_digits() {
    let flows = json(&syncscope(&[
        "flows",
        &real("nanosecs_big_endian.pcap"),
        "--format",
        "json",
    ]));
    let ts = flows[0]["first_ts"].as_str().unwrap();
    let frac = ts.rsplit('.').next().unwrap();
    assert_eq!(frac.len(), 10, "{ts}"); // 9 digits + 'Z'
}

#[test]
fn table_lists_the_columns_and_summary_goes_to_stderr() {
    let out = syncscope(&["flows", &real("sv-bug-3844_input.pcap")]);
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout.clone()).unwrap();
    for col in [
        "id",
        "client",
        "server",
        "start",
        "duration",
        "bytes c->s",
        "bytes s->c",
        "gaps",
        "end",
    ] {
        assert!(table.contains(col), "missing column {col}:\n{table}");
    }
    // Port reuse: two connections on one 4-tuple.
    assert_eq!(table.matches("1.1.1.1:12345").count(), 2, "{table}");
    let err = stderr(&out);
    assert!(
        err.contains("packets 8") && err.contains("flows 2"),
        "{err}"
    );
    assert!(err.contains("EN10MB"), "{err}");
}

#[test]
fn not_a_capture_exits_2_naming_the_file_and_magic() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("notes.txt");
    std::fs::write(&p, b"<!DOCTYPE html>").unwrap();
    let out = syncscope(&["flows", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("notes.txt") && err.contains("3c 21 44 4f"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn missing_file_exits_2() {
    let out = syncscope(&["flows", "/nonexistent/x.pcap"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent/x.pcap"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn truncated_capture_warns_with_offset_and_strict_fails() {
    let file = real("derived-truncated-pcapng-example.pcapng");
    let out = syncscope(&["flows", &file, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let flows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!flows.is_empty());
    let err = stderr(&out);
    assert!(err.contains("warning") && err.contains("15704"), "{err}");
    let strict = syncscope(&["flows", &file, "--format", "json", "--strict"]);
    assert_eq!(strict.status.code(), Some(2));
    assert_eq!(
        strict.stdout, out.stdout,
        "results are printed with --strict too"
    );
}

#[test]
fn corrupt_record_keeps_what_came_before() {
    let out = syncscope(&[
        "flows",
        &real("10.7.29.101_49898-178.63.41.150_25.pcap"),
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let flows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(flows.len(), 1);
    assert!(stderr(&out).contains("packets 18"), "{}", stderr(&out));
}

#[test]
fn stdin_and_gzip_give_the_same_result_as_the_file() {
    let file = real("get-gzip.pcap");
    let want = syncscope(&["flows", &file, "--format", "json", "--hash"]).stdout;
    let raw = std::fs::read(&file).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&raw).unwrap();
    let gz = gz.finish().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A misleading name: detection is by content.
    let gz_path = dir.path().join("capture.pcap");
    std::fs::write(&gz_path, &gz).unwrap();
    let from_gz = syncscope(&[
        "flows",
        gz_path.to_str().unwrap(),
        "--format",
        "json",
        "--hash",
    ]);
    assert_eq!(from_gz.stdout, want);
    for input in [raw, gz] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_syncscope"))
            .args(["flows", "-", "--format", "json", "--hash"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(out.stdout, want);
    }
}

#[test]
fn dump_writes_each_direction_matching_the_hash() {
    let file = real("four_ipv6_http_streams.pcap");
    let dir = tempfile::tempdir().unwrap();
    let flows = json(&syncscope(&[
        "flows",
        &file,
        "--format",
        "json",
        "--hash",
        "--dump",
        dir.path().to_str().unwrap(),
    ]));
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for f in &flows {
        for d in ["c2s", "s2c"] {
            let bytes = f[d]["bytes"].as_u64().unwrap();
            let prefix = format!("{}-", f["id"]);
            let name = names
                .iter()
                .find(|n| n.starts_with(&prefix) && n.ends_with(&format!(".{d}")));
            if bytes == 0 {
                continue;
            }
            let name =
                name.unwrap_or_else(|| panic!("no dump for flow {} {d} in {names:?}", f["id"]));
            assert!(
                !name.contains(':') && !name.contains('['),
                "unsafe name {name}"
            );
            let content = std::fs::read(dir.path().join(name)).unwrap();
            assert_eq!(content.len() as u64, bytes);
            assert_eq!(
                hex::encode(Sha256::digest(&content)),
                f[d]["sha256"].as_str().unwrap()
            );
        }
    }
}

#[test]
fn help_lists_the_flows_options() {
    let out = syncscope(&["flows", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "--format",
        "--hash",
        "--dump",
        "--strict",
        "--idle-timeout",
        "--max-buffer",
        "--max-flows",
    ] {
        assert!(help.contains(opt), "{opt} missing from --help");
    }
}

/// The server speaks first and the client's SYN comes late: the roles
/// change after data was seen, and each side's bytes must still land in
/// the right direction, hash and dump file.
#[test]
fn late_syn_keeps_each_senders_bytes_apart() {
    use syncscope::capture::writer::PcapWriter;
    use syncscope::capture::{Linktype, Timestamp};
    use syncscope::synth::{Conversation, Side};

    let c = "10.0.0.1:40000".parse().unwrap();
    let s = "10.0.0.2:8080".parse().unwrap();
    let conv = Conversation::new(c, s, 1000, 5000);
    let frames = [
        conv.segment(Side::Server, 5001, "PA", b"hello"),
        conv.segment(Side::Client, 1000, "S", b""),
        conv.segment(Side::Client, 1001, "PA", b"world!"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("late-syn.pcap");
    let mut w = PcapWriter::new(
        std::fs::File::create(&pcap).unwrap(),
        Linktype::ETHERNET,
        false,
    )
    .unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.write(Timestamp::new(1_700_000_000 + i as i64, 0, 6), f, None)
            .unwrap();
    }
    drop(w);
    let dump = dir.path().join("dump");
    let flows = json(&syncscope(&[
        "flows",
        pcap.to_str().unwrap(),
        "--format",
        "json",
        "--hash",
        "--dump",
        dump.to_str().unwrap(),
    ]));
    assert_eq!(flows[0]["client"], "10.0.0.1:40000");
    assert_eq!(flows[0]["c2s"]["bytes"], 6);
    assert_eq!(flows[0]["s2c"]["bytes"], 5);
    assert_eq!(
        flows[0]["c2s"]["sha256"],
        hex::encode(Sha256::digest(b"world!"))
    );
    assert_eq!(
        flows[0]["s2c"]["sha256"],
        hex::encode(Sha256::digest(b"hello"))
    );
    let c2s = std::fs::read(dump.join("0-10.0.0.1_40000-10.0.0.2_8080.c2s")).unwrap();
    let s2c = std::fs::read(dump.join("0-10.0.0.1_40000-10.0.0.2_8080.s2c")).unwrap();
    assert_eq!(
        (c2s.as_slice(), s2c.as_slice()),
        (&b"world!"[..], &b"hello"[..])
    );
    assert_eq!(std::fs::read_dir(&dump).unwrap().count(), 2);
}

/// A SYN scan over more connections than `--max-flows`: every connection is
/// still reported (SYN-only, in id order), the evictions are said on
/// stderr, and a cap of 0 is refused.
#[test]
fn max_flows_caps_the_table_and_says_so() {
    use syncscope::capture::writer::PcapWriter;
    use syncscope::capture::{Linktype, Timestamp};
    use syncscope::synth::{Conversation, Side};

    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("syn-scan.pcap");
    let mut w = PcapWriter::new(
        std::fs::File::create(&pcap).unwrap(),
        Linktype::ETHERNET,
        false,
    )
    .unwrap();
    for i in 0..5u16 {
        let c = format!("10.0.0.1:{}", 40000 + i).parse().unwrap();
        let conv = Conversation::new(c, "10.0.0.2:8080".parse().unwrap(), 1000, 5000);
        let syn = conv.segment(Side::Client, 1000, "S", b"");
        w.write(Timestamp::new(1_700_000_000 + i as i64, 0, 6), &syn, None)
            .unwrap();
    }
    drop(w);
    let path = pcap.to_str().unwrap();
    let out = syncscope(&["flows", path, "--format", "json", "--max-flows", "2"]);
    let flows = json(&out);
    let ids: Vec<u64> = flows.iter().map(|f| f["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [0, 1, 2, 3, 4]);
    assert!(flows
        .iter()
        .all(|f| f["c2s"]["bytes"] == 0 && f["end"] == "open"));
    let err = stderr(&out);
    assert!(
        err.contains("connections evicted: 3 (") && err.contains("at most 2 were tracked"),
        "{err}"
    );
    // Under the cap nothing is evicted, and nothing is said.
    let out = syncscope(&["flows", path, "--format", "json"]);
    assert_eq!(json(&out).len(), 5);
    assert!(!stderr(&out).contains("evicted"), "{}", stderr(&out));
    let out = syncscope(&["flows", path, "--max-flows", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--max-flows"), "{}", stderr(&out));
}

#[test]
fn parquet_and_output_go_together_on_every_command() {
    let cap = format!("{}/samples/longlink-8080.pcap", env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let (d, f) = (dir.path().to_str().unwrap(), file.to_str().unwrap());
    for cmd in ["flows", "frames", "analyze"] {
        let out = syncscope(&[cmd, "--format", "parquet", &cap]);
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        assert!(
            stderr(&out).contains("needs --output DIR"),
            "{cmd}: {}",
            stderr(&out)
        );
        let out = syncscope(&[cmd, "--format", "json", "--output", d, &cap]);
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        assert!(
            stderr(&out).contains("--output DIR goes with --format parquet"),
            "{cmd}: {}",
            stderr(&out)
        );
        let out = syncscope(&[cmd, "--format", "parquet", "--output", f, &cap]);
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        assert!(
            stderr(&out).contains("not a directory"),
            "{cmd}: {}",
            stderr(&out)
        );
        assert!(out.stdout.is_empty());
    }
    // Written: each command's own table, and what it wrote said on stderr.
    for (cmd, table) in [("flows", "tcp"), ("frames", "frames")] {
        let out = syncscope(&[cmd, "--format", "parquet", "--output", d, &cap]);
        assert!(out.status.success(), "{cmd}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{cmd}");
        let part = std::fs::read_dir(dir.path().join(table))
            .unwrap()
            .next()
            .expect("a part file")
            .unwrap()
            .path();
        assert!(
            stderr(&out).contains(&format!("wrote {}", part.display())),
            "{cmd}: {}",
            stderr(&out)
        );
        assert_eq!(&std::fs::read(&part).unwrap()[..4], b"PAR1");
    }
}
