//! `syncscope sniff` on loopback (feature `live`): a long-link client and
//! server in the test talk over 127.0.0.1 while sniff captures `lo`; the
//! frames it prints must be exactly those sent, and its `--write` capture
//! must read back (with `syncscope frames`) to the very same records.
//!
//! Capturing needs CAP_NET_RAW. Without it these tests say so on stderr and
//! pass, except under CI (`CI` set), which runs as root: there they fail.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use syncscope::proto::longlink::{Header, HEADER_LEN};

const RESPONSE: u32 = 1_000_000_000;
/// Bound on every wait in these tests.
const WAIT: Duration = Duration::from_secs(30);

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_syncscope")
}

/// CAP_NET_RAW (bit 13) in this process's effective capabilities.
fn can_capture() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 13) != 0)
}

/// Whether the test can run; fails under CI when it cannot.
fn capture_allowed(test: &str) -> bool {
    if can_capture() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{test}: live capture needs CAP_NET_RAW (run the tests as root); \
             CI runs as root, so this must not happen there"
        );
    }
    eprintln!("{test}: NOT RUN: live capture needs CAP_NET_RAW (run the tests as root)");
    false
}

/// A running `syncscope sniff`, its stderr read by a thread.
struct Sniff {
    child: Child,
    lines: Receiver<String>,
    stderr: Vec<String>,
    /// Reads stdout from the start, so that sniff never blocks on a full pipe.
    stdout: Option<thread::JoinHandle<Vec<u8>>>,
}

impl Sniff {
    /// Starts sniff and waits until it says it is listening.
    fn start(args: &[&str]) -> Sniff {
        let mut child = Command::new(bin())
            .arg("sniff")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run syncscope sniff");
        let mut stdout = child.stdout.take().expect("stdout");
        let stdout = thread::spawn(move || {
            let mut v = Vec::new();
            let _ = stdout.read_to_end(&mut v);
            v
        });
        let stderr: ChildStderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut s = Sniff {
            child,
            lines,
            stderr: Vec::new(),
            stdout: Some(stdout),
        };
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match s.lines.recv_timeout(left) {
                Ok(line) => {
                    let ready = line.starts_with("listening on ");
                    s.stderr.push(line);
                    if ready {
                        return s;
                    }
                }
                Err(_) => {
                    let _ = s.child.kill();
                    let _ = s.child.wait();
                    panic!(
                        "sniff did not say \"listening on\" within {WAIT:?}; stderr:\n{}",
                        s.stderr.join("\n")
                    );
                }
            }
        }
    }

    fn interrupt(&self) {
        let ok = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -INT failed");
    }

    /// Waits (bounded) for sniff to exit; returns its output, stderr as text.
    fn wait(mut self) -> (Output, String) {
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                break st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "sniff did not exit within {WAIT:?}; stderr so far:\n{}",
                    self.stderr.join("\n")
                );
            }
            thread::sleep(Duration::from_millis(20));
        };
        let stdout = self
            .stdout
            .take()
            .expect("stdout reader")
            .join()
            .expect("stdout reader");
        // The stderr thread ends at EOF, which came with the exit.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.stderr.push(line);
        }
        let stderr = self.stderr.join("\n");
        (
            Output {
                status,
                stdout,
                stderr: Vec::new(),
            },
            stderr,
        )
    }
}

fn ndjson(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn frame(cmd: u32, seq: u32, body: &[u8]) -> Vec<u8> {
    let mut f = Header::new(cmd, seq, body.len()).emit().to_vec();
    f.extend_from_slice(body);
    f
}

fn read_frame(s: &mut TcpStream) -> std::io::Result<Option<(Header, Vec<u8>)>> {
    let mut h = [0u8; HEADER_LEN];
    match s.read_exact(&mut h) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let hdr = Header::parse(&h).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
    let mut body = vec![0u8; hdr.body_len()];
    s.read_exact(&mut body)?;
    Ok(Some((hdr, body)))
}

/// The response body the server sends for a request body.
fn response_body(req: &[u8]) -> Vec<u8> {
    req.iter().rev().copied().take(100).collect()
}

/// Answers every request on one connection with cmd + 10^9 and the same seq.
fn serve(listener: TcpListener) -> thread::JoinHandle<usize> {
    thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.set_nodelay(true).unwrap();
        let mut n = 0;
        while let Some((h, body)) = read_frame(&mut s).expect("server read") {
            let rb = response_body(&body);
            s.write_all(&frame(h.cmd + RESPONSE, h.seq, &rb))
                .expect("server write");
            n += 1;
        }
        n
    })
}

/// (cmd, seq, body length); the last two go out in one write.
const REQUESTS: &[(u32, u32, usize)] = &[
    (121, 1, 10),
    (138, 2, 0),
    (522, 3, 300),
    // Larger than loopback's MSS: one frame over several segments.
    (6, 4, 150_000),
    (121, 5, 40),
    (121, 6, 41),
];

fn body(seq: u32, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u32 ^ seq) as u8).collect()
}

/// The client's whole conversation; returns the frames sent, in wire order
/// (cmd, seq, len, dir, kind).
fn converse(port: u16) -> Vec<(u64, u64, u64, &'static str, &'static str)> {
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.set_nodelay(true).unwrap();
    let mut want = Vec::new();
    let request = |cmd: u32, seq: u32, len: usize| {
        let len = (HEADER_LEN + len) as u64;
        (u64::from(cmd), u64::from(seq), len, "c2s", "request")
    };
    let response = |cmd: u32, seq: u32, len: usize| {
        let len = (HEADER_LEN + len) as u64;
        (u64::from(cmd), u64::from(seq), len, "s2c", "response")
    };
    let (single, pair) = REQUESTS.split_at(REQUESTS.len() - 2);
    for &(cmd, seq, len) in single {
        let b = body(seq, len);
        c.write_all(&frame(cmd, seq, &b)).expect("client write");
        want.push(request(cmd, seq, len));
        let (h, rb) = read_frame(&mut c).expect("client read").expect("response");
        assert_eq!((h.cmd, h.seq), (cmd + RESPONSE, seq));
        assert_eq!(rb, response_body(&b));
        want.push(response(h.cmd, seq, rb.len()));
    }
    // Two requests in one write (one segment), then both responses.
    let mut both = Vec::new();
    for &(cmd, seq, len) in pair {
        both.extend(frame(cmd, seq, &body(seq, len)));
        want.push(request(cmd, seq, len));
    }
    c.write_all(&both).expect("client write");
    for &(cmd, seq, len) in pair {
        let (h, rb) = read_frame(&mut c).expect("client read").expect("response");
        assert_eq!((h.cmd, h.seq), (cmd + RESPONSE, seq));
        assert_eq!(rb.len(), len.min(100));
        want.push(response(h.cmd, seq, rb.len()));
    }
    c.shutdown(std::net::Shutdown::Both).ok();
    want
}

fn summary(f: &Value) -> (u64, u64, u64, String, String) {
    (
        f["cmd"].as_u64().unwrap_or(u64::MAX),
        f["seq"].as_u64().unwrap_or(u64::MAX),
        f["len"].as_u64().unwrap_or(u64::MAX),
        f["dir"].as_str().unwrap_or("").to_owned(),
        f["kind"].as_str().unwrap_or("").to_owned(),
    )
}

#[test]
fn sniff_sees_exactly_the_frames_sent_and_writes_a_capture_that_reads_back() {
    if !capture_allowed("sniff_sees_exactly_the_frames_sent") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pcapng = dir.path().join("live.pcapng");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let port_s = port.to_string();
    let sniff = Sniff::start(&[
        "-i",
        "lo",
        "--port",
        &port_s,
        "--format",
        "ndjson",
        "--write",
        pcapng.to_str().unwrap(),
        "--duration",
        "120",
    ]);
    let server = serve(listener);
    let want = converse(port);
    assert_eq!(server.join().expect("server"), REQUESTS.len());
    // Everything is on the wire (the client read every response): stop.
    sniff.interrupt();
    let (out, stderr) = sniff.wait();
    assert!(out.status.success(), "sniff failed:\n{stderr}");

    let frames = ndjson(&out.stdout);
    let got: Vec<_> = frames.iter().map(summary).collect();
    let want: Vec<_> = want
        .into_iter()
        .map(|(c, s, l, d, k)| (c, s, l, d.to_owned(), k.to_owned()))
        .collect();
    assert_eq!(
        got, want,
        "sniffed frames differ from those sent; stderr:\n{stderr}"
    );
    for f in &frames {
        assert_eq!(f["layer"], "longlink", "{f}");
        assert_eq!(f["conn"], frames[0]["conn"], "{f}");
        assert_eq!(f["after_gap"], false, "{f}");
        if f["kind"] == "response" {
            assert!(f["latency_us"].is_u64(), "response without latency: {f}");
        } else {
            assert!(f.get("latency_us").is_none(), "{f}");
        }
    }
    assert!(stderr.contains("stopped on Ctrl-C"), "{stderr}");
    assert!(
        stderr.contains("kernel: received") && stderr.contains("dropped 0"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Connections: 1"),
        "report missing:\n{stderr}"
    );

    // The capture it wrote gives the very same records.
    let back = Command::new(bin())
        .args(["frames", pcapng.to_str().unwrap(), "--format", "ndjson"])
        .output()
        .expect("run syncscope frames");
    assert!(
        back.status.success(),
        "{}",
        String::from_utf8_lossy(&back.stderr)
    );
    assert_eq!(ndjson(&back.stdout), frames);
    assert_pcapng_shape(&pcapng);
}

#[test]
fn sniff_keeps_only_the_frames_of_cmd_and_host_asked_for() {
    if !capture_allowed("sniff_keeps_only_the_frames_of_cmd_and_host_asked_for") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let port_s = port.to_string();
    let (cmd, _, _) = REQUESTS[0];
    let cmd_s = cmd.to_string();
    let common = ["-i", "lo", "--port", &port_s, "--format", "ndjson"];
    let by_cmd = Sniff::start(&[&common[..], &["--cmd", &cmd_s, "--host", "127.0.0.1"]].concat());
    let elsewhere = Sniff::start(&[&common[..], &["--host", "10.9.9.9"]].concat());
    let server = serve(listener);
    let want = converse(port);
    assert_eq!(server.join().expect("server"), REQUESTS.len());
    by_cmd.interrupt();
    elsewhere.interrupt();
    let (out, stderr) = by_cmd.wait();
    assert!(out.status.success(), "sniff --cmd failed:\n{stderr}");
    let got: Vec<_> = ndjson(&out.stdout).iter().map(summary).collect();
    let want: Vec<_> = want
        .into_iter()
        .filter(|&(c, ..)| c % u64::from(RESPONSE) == u64::from(cmd))
        .map(|(c, s, l, d, k)| (c, s, l, d.to_owned(), k.to_owned()))
        .collect();
    assert!(want.len() >= 2, "the conversation has cmd {cmd} both ways");
    assert_eq!(got, want, "sniff --cmd {cmd}; stderr:\n{stderr}");
    // The report still covers the connection.
    assert!(stderr.contains("Connections: 1"), "{stderr}");

    let (out, stderr) = elsewhere.wait();
    assert!(out.status.success(), "sniff --host failed:\n{stderr}");
    assert!(
        ndjson(&out.stdout).is_empty(),
        "sniff --host 10.9.9.9 printed frames of 127.0.0.1"
    );
    assert!(stderr.contains("Connections: 0"), "{stderr}");
}

/// SHB, then an IDB for link type 1 (Ethernet, which `lo` is) with the snaplen.
fn assert_pcapng_shape(path: &Path) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[0..4], &[0x0a, 0x0d, 0x0d, 0x0a]);
    let shb_len = u32::from_le_bytes(b[4..8].try_into().unwrap()) as usize;
    let idb = &b[shb_len..];
    assert_eq!(u32::from_le_bytes(idb[0..4].try_into().unwrap()), 1);
    assert_eq!(u16::from_le_bytes(idb[8..10].try_into().unwrap()), 1);
    assert_eq!(u32::from_le_bytes(idb[12..16].try_into().unwrap()), 262_144);
}

#[test]
fn sniff_stops_after_count_packets_and_prints_the_report() {
    if !capture_allowed("sniff_stops_after_count_packets") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    // The three packets of the handshake end the capture.
    let sniff = Sniff::start(&["-i", "lo", "--port", &port, "--count", "3"]);
    let _c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (_s, _) = listener.accept().unwrap();
    let (out, stderr) = sniff.wait();
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("stopped after --count packets"), "{stderr}");
    assert!(stderr.contains("packets 3 "), "{stderr}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("ts "), "table header first:\n{text}");
    assert!(text.contains("Connections: 1"), "report missing:\n{text}");
}

#[test]
fn sniff_stops_after_duration_without_traffic() {
    if !capture_allowed("sniff_stops_after_duration") {
        return;
    }
    let t0 = Instant::now();
    let sniff = Sniff::start(&["-i", "lo", "--port", "9", "--duration", "0.5", "-q"]);
    let (out, stderr) = sniff.wait();
    assert!(out.status.success(), "{stderr}");
    assert!(t0.elapsed() < Duration::from_secs(10));
}

#[test]
fn sniff_errors_exit_2_and_say_what_to_do() {
    let run = |args: &[&str]| {
        let o = Command::new(bin())
            .arg("sniff")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run syncscope sniff");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    // Unknown interface: no privilege needed to find out; the list is shown.
    let (code, err) = run(&["-i", "no-such-if0", "--duration", "1"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("no interface named \"no-such-if0\"") && err.contains("lo"),
        "{err}"
    );
    let (code, err) = run(&["--port", "1", "--filter", "tcp"]);
    assert_eq!(code, Some(2), "--port and --filter together: {err}");

    if !capture_allowed("sniff_errors (bad filter, no permission)") {
        return;
    }
    let (code, err) = run(&["-i", "lo", "--filter", "tcp port", "--duration", "1"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("bad capture filter \"tcp port\"") && err.contains("syntax error"),
        "{err}"
    );
    // Without CAP_NET_RAW (dropped from the bounding set, so even root lacks it).
    let o = Command::new("setpriv")
        .args(["--bounding-set=-net_raw", bin(), "sniff", "-i", "lo"])
        .args(["--duration", "1"])
        .stdin(Stdio::null())
        .output();
    match o {
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{err}");
            assert!(err.contains("CAP_NET_RAW") && err.contains("root"), "{err}");
        }
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("setpriv (util-linux) is needed for the no-permission check: {e}")
        }
        Err(e) => eprintln!("no-permission check NOT RUN: setpriv: {e}"),
    }
}

/// Sniff started while a long link is already connected (no SYN seen), the
/// server's push first: the roles come from the frames, so the push and
/// the response are `s2c` and the request `c2s`, each saying `"roles":
/// "protocol"`.
#[test]
fn sniff_started_on_a_connected_long_link_infers_the_roles() {
    if !capture_allowed("sniff_started_on_a_connected_long_link") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let port_s = port.to_string();
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (mut s, _) = listener.accept().expect("accept");
    for t in [&c, &s] {
        t.set_read_timeout(Some(WAIT)).unwrap();
        t.set_nodelay(true).unwrap();
    }
    let sniff = Sniff::start(&[
        "-i",
        "lo",
        "--port",
        &port_s,
        "--format",
        "ndjson",
        "--duration",
        "120",
    ]);
    s.write_all(&frame(24, 0, b"push")).expect("push");
    let (h, _) = read_frame(&mut c).expect("read").expect("the push");
    assert_eq!((h.cmd, h.seq), (24, 0));
    c.write_all(&frame(121, 7, b"req")).expect("request");
    let (h, _) = read_frame(&mut s).expect("read").expect("the request");
    s.write_all(&frame(h.cmd + RESPONSE, h.seq, b"resp"))
        .expect("response");
    let (h, _) = read_frame(&mut c).expect("read").expect("the response");
    assert_eq!((h.cmd, h.seq), (121 + RESPONSE, 7));
    drop((c, s));
    sniff.interrupt();
    let (out, stderr) = sniff.wait();
    assert!(out.status.success(), "sniff failed:\n{stderr}");
    let got: Vec<_> = ndjson(&out.stdout)
        .iter()
        .map(|f| {
            (
                f["cmd"].as_u64().unwrap_or(u64::MAX),
                f["dir"].as_str().unwrap_or("").to_owned(),
                f["kind"].as_str().unwrap_or("").to_owned(),
                f["roles"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let row = |cmd: u64, dir: &str, kind: &str| {
        (cmd, dir.to_owned(), kind.to_owned(), "protocol".to_owned())
    };
    assert_eq!(
        got,
        [
            row(24, "s2c", "push"),
            row(121, "c2s", "request"),
            row(121 + u64::from(RESPONSE), "s2c", "response"),
        ],
        "stderr:\n{stderr}"
    );
}

/// Each key's value over a session's observations (empty key sets, such as
/// a first identify, skipped): a key whose value goes down is returned.
fn regressions(session: &Value) -> Vec<String> {
    let mut last: std::collections::BTreeMap<String, u64> = Default::default();
    let mut bad = Vec::new();
    for (i, o) in session["observations"]
        .as_array()
        .expect("observations")
        .iter()
        .enumerate()
    {
        let Some(keys) = o["keys"].as_object() else {
            continue;
        };
        for (k, v) in keys {
            let v = v.as_u64().unwrap_or_else(|| panic!("key {k} = {v} in {o}"));
            if let Some(&prev) = last.get(k) {
                if v < prev {
                    bad.push(format!("observation {i}: key {k} {prev} -> {v}"));
                }
            }
            last.insert(k.clone(), v);
        }
    }
    bad
}

/// Per session (device), its observations as (dir, source, message, keys),
/// without times, connection numbers and uins (the live server numbers its
/// users in the order they first log in).
fn shape(sync: &Value) -> Vec<String> {
    let mut v: Vec<String> = sync["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|s| {
            let obs: Vec<String> = s["observations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| {
                    format!(
                        "{} {} {} {}",
                        o["dir"], o["source"], o["message"], o["keys"]
                    )
                })
                .collect();
            format!("{}: {}", s["device"], obs.join("; "))
        })
        .collect();
    v.sort();
    v
}

/// #14's proof: each sample (long link, short link, web) replayed against a
/// fresh `serve` with its durable store, captured live on `lo` by `sniff`;
/// `syncscope sync` on that capture shows, for every session, a SyncKey
/// timeline that the server moved forward and that never goes back.
#[test]
fn a_capture_of_each_replay_shows_a_monotone_synckey_timeline() {
    if !capture_allowed("a_capture_of_each_replay_shows_a_monotone_synckey_timeline") {
        return;
    }
    for sample in [
        "serve-client-longlink.pcapng",
        "serve-client-shortlink.pcapng",
        "serve-client-web.pcapng",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        // The samples were recorded against `serve --users alice,bob`.
        let serve = crate::net::ServeProcess::start(&[
            "--data",
            store.to_str().unwrap(),
            "--users",
            "alice,bob",
        ]);
        let port = serve.addr.rsplit(':').next().unwrap().to_owned();
        let pcapng = dir.path().join("replay.pcapng");
        let sniff = Sniff::start(&[
            "-i",
            "lo",
            "--port",
            &port,
            "--format",
            "ndjson",
            "--write",
            pcapng.to_str().unwrap(),
            "--duration",
            "120",
        ]);
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("samples")
            .join(sample);
        let replay = Command::new(bin())
            .args(["replay", path.to_str().unwrap(), "--server", &serve.addr])
            .output()
            .expect("run replay");
        let report = String::from_utf8_lossy(&replay.stdout);
        assert_eq!(
            replay.status.code(),
            Some(0),
            "{sample}: {report}\n{}",
            String::from_utf8_lossy(&replay.stderr)
        );
        assert!(
            report.contains(" 0 different, 0 missing"),
            "{sample}: {report}"
        );
        // The replay read every answer: everything is on the wire.
        sniff.interrupt();
        let (out, stderr) = sniff.wait();
        assert!(out.status.success(), "{sample}: sniff failed:\n{stderr}");
        assert!(stderr.contains("dropped 0"), "{sample}: {stderr}");

        let sync = Command::new(bin())
            .args(["sync", pcapng.to_str().unwrap(), "--format", "json"])
            .output()
            .expect("run sync");
        assert!(sync.status.success(), "{sample}: sync failed");
        let v: Value = serde_json::from_slice(&sync.stdout).expect("sync JSON");
        let sessions = v["sessions"].as_array().expect("sessions");
        assert!(!sessions.is_empty(), "{sample}: no SyncKey session in {v}");
        let (mut moved, mut with_keys, mut resends) = (0, 0, 0);
        for s in sessions {
            let who = format!("{sample}: session uin {} device {}", s["uin"], s["device"]);
            // The short-link sample's resend (the same ClientMsgId for
            // the same message) is replayed as it is: one resend there,
            // nothing else anywhere.
            let kinds: Vec<&str> = s["anomalies"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|a| a["kind"].as_str())
                .collect();
            resends += kinds.iter().filter(|k| **k == "client_msg_resend").count();
            assert!(
                kinds.iter().all(|k| *k == "client_msg_resend"),
                "{who}: {s}"
            );
            assert_eq!(regressions(s), Vec::<String>::new(), "{who}");
            let issued = s["observations"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|o| o["source"] == "server_issued")
                .count();
            with_keys += usize::from(issued > 0);
            moved += s["transitions"].as_array().map_or(0, Vec::len);
        }
        assert_eq!(
            resends,
            usize::from(sample.contains("shortlink")),
            "{sample}: {v}"
        );
        assert!(with_keys > 0, "{sample}: the server issued no key: {v}");
        // The short-link sample's receiver syncs once with an empty key and
        // once with the key it got: its timeline has no transition to see.
        assert!(
            moved > 0 || sample.contains("shortlink"),
            "{sample}: no key ever moved: {v}"
        );
        // The same timelines as the recording's, observation by observation.
        let recorded = Command::new(bin())
            .args(["sync", path.to_str().unwrap(), "--format", "json"])
            .output()
            .expect("run sync");
        let r: Value = serde_json::from_slice(&recorded.stdout).expect("sync JSON");
        assert_eq!(shape(&r), shape(&v), "{sample}: replayed timeline differs");
    }
}
