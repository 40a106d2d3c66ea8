//! Packet numbers (1-based, every packet of the file counted) against
//! tshark's frame numbers: HTTP responses on the real captures of the
//! corpus end in the packet tshark shows them in; long-link frames on the
//! samples and a realistic generated capture end where tshark, with the
//! long-link Lua dissector in `bench/`, puts them; reassembly anomalies
//! name the retransmission that showed them.
//!
//! tshark must be installed (`.ci/run` installs it). Without it these tests
//! say so on stderr and pass, except under CI (`CI` set), where they fail.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use syncscope::synth::mix::{self, Params};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_syncscope")
}

fn tshark_here(test: &str) -> bool {
    let ok = Command::new("tshark")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: tshark is missing; .ci/run installs it"
        );
        eprintln!("{test}: NOT RUN: tshark is not installed");
    }
    ok
}

fn tshark(file: &Path, args: &[&str]) -> String {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(file)
        .args(args)
        .output()
        .expect("run tshark");
    // 2 for a file damaged after some packets (tshark prints those).
    let err = String::from_utf8_lossy(&out.stderr);
    let damaged = err.contains("damaged or corrupt") || err.contains("cut short");
    assert!(
        out.status.success() || (out.status.code() == Some(2) && damaged),
        "tshark on {}: {}",
        file.display(),
        err
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn records(file: &Path) -> Vec<Value> {
    let out = Command::new(bin())
        .args(["frames", "--format", "ndjson"])
        .arg(file)
        .output()
        .expect("run frames");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/real");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.to_string_lossy();
            n.ends_with(".pcap") || n.ends_with(".pcapng")
        })
        .collect();
    v.sort();
    v
}

/// Responses syncscope completes and tshark's HTTP dissector does not show,
/// with the reason (other extras must be cut by a gap: tshark shows no
/// response it could not reassemble).
const JUSTIFIED: &[(&str, u64, &str)] = &[(
    "206_example_b.pcap",
    953,
    "an 817 KB body whose segments come with retransmissions: tshark's HTTP \
     reassembly gives it up, while its TCP stream (followed, as in the \
     conformance test) and ours hold the whole body",
)];

#[test]
fn http_responses_end_in_the_packet_tshark_shows_them_in() {
    if !tshark_here("http_responses_end_in_the_packet_tshark_shows_them_in") {
        return;
    }
    let (mut files, mut compared) = (0, 0);
    for f in corpus() {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let theirs: BTreeSet<u64> = tshark(
            &f,
            &["-Y", "http.response", "-T", "fields", "-e", "frame.number"],
        )
        .lines()
        .map(|l| l.trim().parse().expect("frame number"))
        .collect();
        let recs = records(&f);
        let mut ours = BTreeMap::new();
        for r in &recs {
            if let (Some(first), Some(last)) =
                (r["first_packet"].as_u64(), r["last_packet"].as_u64())
            {
                assert!(1 <= first && first <= last, "{name}: {r}");
            } else {
                panic!("{name}: a record without packet numbers: {r}");
            }
            if r["status"].is_u64() {
                ours.insert(r["last_packet"].as_u64().unwrap(), r["after_gap"] == true);
            }
        }
        for p in &theirs {
            assert!(
                ours.contains_key(p),
                "{name}: tshark shows a response in packet {p}, syncscope does not"
            );
        }
        for (p, cut) in &ours {
            if theirs.contains(p) || *cut {
                continue;
            }
            assert!(
                JUSTIFIED.iter().any(|(n, q, _)| *n == name && q == p),
                "{name}: syncscope ends a whole response in packet {p}, tshark shows none there"
            );
        }
        files += usize::from(!theirs.is_empty());
        compared += theirs.len();
    }
    assert!(
        files >= 15 && compared >= 50,
        "{files} files, {compared} responses"
    );
}

/// (packet, cmd, seq) of each long-link frame, as tshark with the Lua
/// dissector shows them (several frames in one packet: comma-separated).
fn tshark_frames(file: &Path) -> Vec<(u64, u64, u64)> {
    let lua = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/wechat_longlink.lua");
    let script = format!("lua_script:{}", lua.display());
    let text = tshark(
        file,
        &[
            // As syncscope, tshark then puts a frame whose segments came out
            // of order in the packet that completed it.
            "-o",
            "tcp.reassemble_out_of_order:TRUE",
            "-X",
            &script,
            "-Y",
            "wechat_ll",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "wechat_ll.cmd",
            "-e",
            "wechat_ll.seq",
        ],
    );
    let mut v = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let packet: u64 = f[0].parse().unwrap();
        for (cmd, seq) in f[1].split(',').zip(f[2].split(',')) {
            let seq = u64::from_str_radix(seq.trim_start_matches("0x"), 16).unwrap();
            v.push((packet, cmd.parse().unwrap(), seq));
        }
    }
    v.sort_unstable();
    v
}

fn our_frames(file: &Path) -> Vec<(u64, u64, u64)> {
    let mut v: Vec<_> = records(file)
        .iter()
        .filter(|r| r["layer"] == "longlink")
        .map(|r| {
            (
                r["last_packet"].as_u64().unwrap_or_else(|| panic!("{r}")),
                r["cmd"].as_u64().unwrap(),
                r["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    v.sort_unstable();
    v
}

#[test]
fn long_link_frames_end_in_the_packet_tshark_puts_them_in() {
    if !tshark_here("long_link_frames_end_in_the_packet_tshark_puts_them_in") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mixed = dir.path().join("mix.pcap");
    let p = Params {
        bytes: 3 << 20,
        conns: 6,
        seed: 11,
        scan_syns: 40,
        http_conns: 2,
        sync_max: 256 << 10,
        ..Params::default()
    };
    let mut out = std::io::BufWriter::new(std::fs::File::create(&mixed).unwrap());
    mix::generate(&mut out, &p).expect("generate");
    drop(out);
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let mut total = 0;
    let mut spanning = 0;
    for f in [
        samples.join("longlink-8080.pcap"),
        samples.join("serve-client-longlink.pcapng"),
        samples.join("serve-client-web.pcapng"),
        mixed.clone(),
    ] {
        let theirs = tshark_frames(&f);
        let ours = our_frames(&f);
        assert!(!ours.is_empty(), "{}", f.display());
        assert!(
            ours == theirs,
            "{}: frames differ: ours {} tshark {}",
            f.display(),
            ours.len(),
            theirs.len()
        );
        total += ours.len();
    }
    for r in records(&mixed) {
        if r["layer"] == "longlink" && r["first_packet"] != r["last_packet"] {
            spanning += 1;
        }
    }
    eprintln!("{total} frames compared, {spanning} over several packets");
    assert!(total > 300, "{total} frames compared");
    assert!(spanning > 50, "only {spanning} frames span several packets");
}

/// The packet numbers on anomalies: a retransmission with other bytes
/// names the packet that carried them, and that packet (by tshark's
/// relative sequence numbers) holds the first differing byte.
#[test]
fn an_overlap_names_the_packet_that_carried_the_other_bytes() {
    if !tshark_here("an_overlap_names_the_packet_that_carried_the_other_bytes") {
        return;
    }
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/real/reassembly.pcap");
    // Packet -> stream offsets of its payload (relative seq 1 is offset 0).
    let payload: BTreeMap<u64, (u64, u64)> = tshark(
        &f,
        &[
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "tcp.seq",
            "-e",
            "tcp.len",
        ],
    )
    .lines()
    .map(|l| {
        let v: Vec<u64> = l.split('\t').map(|x| x.parse().unwrap()).collect();
        (
            v[0],
            (v[1].saturating_sub(1), v[1].saturating_sub(1) + v[2]),
        )
    })
    .collect();
    let out = Command::new(bin())
        .args(["analyze", "--format", "json"])
        .arg(&f)
        .output()
        .expect("run analyze");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let overlaps: Vec<&Value> = v["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "overlap_mismatch")
        .collect();
    assert!(overlaps.len() >= 3, "{v}");
    for a in overlaps {
        let p = a["packet"]
            .as_u64()
            .unwrap_or_else(|| panic!("no packet: {a}"));
        let off = a["offset"].as_u64().unwrap();
        let (from, to) = payload[&p];
        assert!(
            from <= off && off < to,
            "{a}: packet {p} carries offsets {from}..{to}"
        );
    }
}

/// tshark's TCP conversation table: (endpoint A, endpoint B) -> (frames
/// A->B, frames B->A).
fn tshark_conversations(file: &Path) -> BTreeMap<(String, String), (u64, u64)> {
    let mut m = BTreeMap::new();
    for line in tshark(file, &["-q", "-z", "conv,tcp"]).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 || f[1] != "<->" {
            continue;
        }
        // A <-> B | frames B->A, bytes | frames A->B, bytes | ...
        let num = |i: usize| f[i].parse::<u64>().ok();
        let (Some(b_to_a), Some(a_to_b)) = (num(3), num(3 + unit_words(&f[4..]) + 1)) else {
            continue;
        };
        m.insert((f[0].to_owned(), f[2].to_owned()), (a_to_b, b_to_a));
    }
    m
}

/// Words a byte figure takes in tshark's table (`1217 kB` is two,
/// `5673 bytes` two, `66` one ...).
fn unit_words(rest: &[&str]) -> usize {
    match rest.get(1) {
        Some(u) if ["bytes", "kB", "MB", "GB"].contains(u) => 2,
        _ => 1,
    }
}

/// `[v6]:port` as tshark writes it (`v6:port`).
fn tshark_addr(a: &str) -> String {
    a.replace(['[', ']'], "")
}

#[test]
fn flows_count_packets_per_direction_as_tsharks_conversation_table() {
    if !tshark_here("flows_count_packets_per_direction_as_tsharks_conversation_table") {
        return;
    }
    let mut compared = 0;
    for f in corpus() {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let theirs = tshark_conversations(&f);
        let out = Command::new(bin())
            .args(["flows", "--format", "json"])
            .arg(&f)
            .output()
            .expect("run flows");
        let Ok(Value::Array(flows)) = serde_json::from_slice::<Value>(&out.stdout) else {
            continue; // damaged files are the subject of other tests
        };
        // Only 4-tuples that occur once on both sides (port reuse splits
        // differently).
        let mut seen: BTreeMap<(String, String), Vec<&Value>> = BTreeMap::new();
        for fl in &flows {
            let c = tshark_addr(fl["client"].as_str().unwrap());
            let s = tshark_addr(fl["server"].as_str().unwrap());
            seen.entry((c, s)).or_default().push(fl);
        }
        for ((c, s), fls) in seen {
            if fls.len() != 1 {
                continue;
            }
            let fl = fls[0];
            let ours = (
                fl["c2s"]["packets"].as_u64().unwrap(),
                fl["s2c"]["packets"].as_u64().unwrap(),
            );
            let want = match (
                theirs.get(&(c.clone(), s.clone())),
                theirs.get(&(s.clone(), c.clone())),
            ) {
                (Some(&(ab, ba)), _) => (ab, ba),
                (None, Some(&(ab, ba))) => (ba, ab),
                (None, None) => continue,
            };
            assert_eq!(ours, want, "{name}: {c} -> {s} packets (c2s, s2c)");
            compared += 1;
        }
    }
    eprintln!("{compared} connections compared");
    assert!(compared >= 60, "only {compared} connections compared");
}

/// A Mars (20-byte header) conversation on port 8080, frames split over
/// several segments and several frames in one.
/// An Ethernet pcap of `frames` (time, bytes).
fn write_pcap(path: &Path, frames: &[(syncscope::capture::Timestamp, Vec<u8>)]) {
    use syncscope::capture::writer::PcapWriter;
    use syncscope::capture::Linktype;
    let mut w = PcapWriter::new(
        std::fs::File::create(path).unwrap(),
        Linktype::ETHERNET,
        false,
    )
    .unwrap();
    for (ts, f) in frames {
        w.write(*ts, f, None).unwrap();
    }
}

/// Requests sent again before their answer: a 10^9 response answers the
/// last send; echoes (the server repeating cmd and seq) answer the sends
/// oldest first.
fn resend_capture(path: &Path) {
    use syncscope::capture::Timestamp;
    use syncscope::proto::longlink::encode;
    use syncscope::synth::{later, Conversation, Side};
    let t0 = Timestamp::new(1_700_000_000, 0, 6);
    let mut conv = Conversation::new(
        "10.0.0.1:40000".parse().unwrap(),
        "10.0.0.2:8080".parse().unwrap(),
        1000,
        5000,
    );
    let mut frames: Vec<(Timestamp, _)> = conv.handshake().into_iter().map(|f| (t0, f)).collect();
    let steps: [(Side, Vec<u8>); 7] = [
        (Side::Client, encode(121, 5, b"sync")),
        (Side::Client, encode(121, 5, b"sync")),
        (Side::Server, encode(1_000_000_121, 5, b"keys")),
        (Side::Client, encode(138, 7, b"a")),
        (Side::Client, encode(138, 7, b"a")),
        (Side::Server, encode(138, 7, b"")),
        (Side::Server, encode(138, 7, b"")),
    ];
    for (i, (side, bytes)) in steps.iter().enumerate() {
        let at = later(t0, 10 * (i as u64 + 1) + i as u64 * i as u64);
        frames.extend(conv.send(*side, bytes).into_iter().map(|f| (at, f)));
    }
    frames.extend(conv.close().into_iter().map(|f| (later(t0, 200), f)));
    write_pcap(path, &frames);
}

fn mars_capture(path: &Path) {
    use syncscope::capture::Timestamp;
    use syncscope::proto::commands::{
        NEWNOTIFY, NEWSENDMSG, NEWSYNC, NOOP, SEQ_HEARTBEAT, SEQ_PUSH,
    };
    use syncscope::proto::longlink::mars::encode;
    use syncscope::synth::{later, Conversation, Side};
    const VERSION: u32 = 0x2700_0000;
    let t0 = Timestamp::new(1_700_000_000, 0, 6);
    let mut conv = Conversation::new(
        "10.0.0.1:40000".parse().unwrap(),
        "10.0.0.2:8080".parse().unwrap(),
        1000,
        5000,
    );
    let mut frames: Vec<(Timestamp, _)> = conv.handshake().into_iter().map(|f| (t0, f)).collect();
    let mut c2s = encode(VERSION, NOOP, SEQ_HEARTBEAT, b"");
    c2s.extend(encode(VERSION, NEWSYNC, 1, &[7; 3000]));
    c2s.extend(encode(VERSION, NEWSENDMSG, 2, b"hello"));
    let mut s2c = encode(VERSION, NOOP, SEQ_HEARTBEAT, b"");
    s2c.extend(encode(VERSION, NEWSYNC, 1, &[9; 30]));
    s2c.extend(encode(VERSION, NEWNOTIFY, SEQ_PUSH, &[1, 2, 3, 4]));
    s2c.extend(encode(VERSION, NEWSENDMSG, 2, b"ok!"));
    // Odd chunk sizes: frames cut across segments, several in one.
    for (i, chunk) in c2s.chunks(1111).enumerate() {
        frames.extend(
            conv.send(Side::Client, chunk)
                .into_iter()
                .map(|f| (later(t0, i as u64 + 1), f)),
        );
    }
    for (i, chunk) in s2c.chunks(37).enumerate() {
        frames.extend(
            conv.send(Side::Server, chunk)
                .into_iter()
                .map(|f| (later(t0, i as u64 + 10), f)),
        );
    }
    frames.extend(conv.close().into_iter().map(|f| (later(t0, 100), f)));
    write_pcap(path, &frames);
}

/// `syncscope dissector --lua` in tshark finds the long-link frames
/// `syncscope frames` finds: same packet, cmd, seq, length and direction,
/// on the 16-byte header and on Mars.
#[test]
fn the_generated_lua_dissector_finds_the_frames_syncscope_finds() {
    if !tshark_here("the_generated_lua_dissector_finds_the_frames_syncscope_finds") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lua = dir.path().join("syncscope.lua");
    let out = Command::new(bin())
        .args(["dissector", "--lua", "-o"])
        .arg(&lua)
        .output()
        .expect("run dissector");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mixed = dir.path().join("mix.pcap");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&mixed).unwrap());
    mix::generate(
        &mut w,
        &Params {
            bytes: 2 << 20,
            conns: 5,
            seed: 5,
            scan_syns: 20,
            http_conns: 1,
            sync_max: 128 << 10,
            ..Params::default()
        },
    )
    .expect("generate");
    drop(w);
    let mars = dir.path().join("mars.pcap");
    mars_capture(&mars);
    let resends = dir.path().join("resends.pcap");
    resend_capture(&resends);
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let script = format!("lua_script:{}", lua.display());
    let mut total = 0;
    let mut paired = 0;
    for f in [
        samples.join("longlink-8080.pcap"),
        samples.join("serve-client-longlink.pcapng"),
        samples.join("serve-client-web.pcapng"),
        mixed,
        mars.clone(),
        resends,
    ] {
        // The client port of each connection (tshark's tcp.stream is our id).
        let flows: Value = serde_json::from_slice(
            &Command::new(bin())
                .args(["flows", "--format", "json", "-q"])
                .arg(&f)
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let client_port = |id: u64| -> u64 {
            let fl = flows
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["id"] == id)
                .unwrap();
            fl["client"]
                .as_str()
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        let text = tshark(
            &f,
            &[
                "-o",
                "tcp.reassemble_out_of_order:TRUE",
                "-X",
                &script,
                "-Y",
                "syncscope",
                "-T",
                "fields",
                "-e",
                "frame.number",
                "-e",
                "tcp.stream",
                "-e",
                "tcp.srcport",
                "-e",
                "syncscope.cmd",
                "-e",
                "syncscope.seq",
                "-e",
                "syncscope.len",
            ],
        );
        let mut theirs = Vec::new();
        for line in text.lines() {
            let v: Vec<&str> = line.split('\t').collect();
            let (packet, stream, src): (u64, u64, u64) = (
                v[0].parse().unwrap(),
                v[1].parse().unwrap(),
                v[2].parse().unwrap(),
            );
            let dir = if src == client_port(stream) {
                "c2s"
            } else {
                "s2c"
            };
            for ((cmd, seq), len) in v[3].split(',').zip(v[4].split(',')).zip(v[5].split(',')) {
                let seq = u64::from_str_radix(seq.trim_start_matches("0x"), 16).unwrap();
                theirs.push((
                    packet,
                    cmd.parse::<u64>().unwrap(),
                    seq,
                    len.parse::<u64>().unwrap(),
                    dir.to_owned(),
                ));
            }
        }
        let mut ours: Vec<_> = records(&f)
            .iter()
            .filter(|r| r["layer"] == "longlink" || r["layer"] == "mars")
            .map(|r| {
                (
                    r["last_packet"].as_u64().unwrap(),
                    r["cmd"].as_u64().unwrap(),
                    r["seq"].as_u64().unwrap(),
                    r["len"].as_u64().unwrap(),
                    r["dir"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        theirs.sort();
        ours.sort();
        assert!(!ours.is_empty(), "{}", f.display());
        let only_ours: Vec<_> = ours.iter().filter(|x| !theirs.contains(x)).collect();
        let only_theirs: Vec<_> = theirs.iter().filter(|x| !ours.contains(x)).collect();
        assert!(
            ours == theirs,
            "{}: only syncscope {only_ours:?}; only tshark {only_theirs:?}",
            f.display()
        );
        if f == mars {
            assert_eq!(ours.len(), 7, "{ours:?}");
        }
        total += ours.len();
        paired += lua_pairs_equal_ours(&f, &script);
    }
    assert!(total > 300, "{total}");
    assert!(paired > 100, "{paired}");
}

/// The dissector's pairs (tshark's second pass) against the records': each
/// response's packet and latency (µs) with its request's packet, and each
/// request's "response in" link pointing back. Returns the pairs compared.
fn lua_pairs_equal_ours(f: &Path, script: &str) -> usize {
    let text = tshark(
        f,
        &[
            "-2",
            "-o",
            "tcp.reassemble_out_of_order:TRUE",
            "-X",
            script,
            "-Y",
            "syncscope.request_in",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "syncscope.request_in",
            "-e",
            "syncscope.time",
        ],
    );
    // "0.000528915" seconds -> whole microseconds, as the records round.
    let micros = |t: &str| -> u64 {
        let (s, frac) = t.split_once('.').unwrap_or((t, ""));
        let ns: u64 = format!("{frac:0<9}")[..9].parse().unwrap();
        s.parse::<u64>().unwrap() * 1_000_000 + ns / 1000
    };
    let mut theirs = Vec::new();
    for line in text.lines() {
        let v: Vec<&str> = line.split('\t').collect();
        let packet: u64 = v[0].parse().unwrap();
        for (req, t) in v[1].split(',').zip(v[2].split(',')) {
            theirs.push((packet, micros(t), req.parse::<u64>().unwrap()));
        }
    }
    let recs = records(f);
    let mut ours: Vec<(u64, u64)> = recs
        .iter()
        .filter(|r| r["layer"] == "longlink" || r["layer"] == "mars")
        .filter_map(|r| Some((r["last_packet"].as_u64()?, r["latency_us"].as_u64()?)))
        .collect();
    let mut theirs_lat: Vec<(u64, u64)> = theirs.iter().map(|&(p, t, _)| (p, t)).collect();
    ours.sort();
    theirs_lat.sort();
    assert_eq!(
        ours,
        theirs_lat,
        "{}: (response packet, latency µs) of syncscope vs the dissector",
        f.display()
    );
    // Every request the dissector names is a request frame in that packet,
    // and its "response in" names the response back.
    let back = tshark(
        f,
        &[
            "-2",
            "-o",
            "tcp.reassemble_out_of_order:TRUE",
            "-X",
            script,
            "-Y",
            "syncscope.response_in",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "syncscope.response_in",
        ],
    );
    let mut links = Vec::new();
    for line in back.lines() {
        let (req, resps) = line.split_once('\t').unwrap();
        for r in resps.split(',') {
            links.push((r.parse::<u64>().unwrap(), req.parse::<u64>().unwrap()));
        }
    }
    let mut forward: Vec<(u64, u64)> = theirs.iter().map(|&(p, _, q)| (p, q)).collect();
    links.sort();
    forward.sort();
    assert_eq!(links, forward, "{}: request_in vs response_in", f.display());
    for &(resp, req) in &forward {
        assert!(
            req <= resp,
            "{}: request {req} after response {resp}",
            f.display()
        );
    }
    ours.len()
}
