//! TLS as a layer: detection by content, the hellos' facts in the
//! connection table, checked against tshark on nDPI's Web WeChat capture.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

use crate::common::shared;

pub(crate) fn syncscope(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_syncscope"))
        .args(args)
        .env_remove("COLUMNS")
        .output()
        .expect("run syncscope")
}

fn wechat_pcap() -> String {
    shared()
        .join("corpus/ndpi/wechat.pcap")
        .to_string_lossy()
        .into_owned()
}

/// tshark's server names (SNI) per client port, from every ClientHello.
fn tshark_sni(path: &str) -> BTreeMap<u16, String> {
    let o = Command::new("tshark")
        .args(["-r", path, "-Y", "tls.handshake.type == 1", "-T", "fields"])
        .args([
            "-e",
            "tcp.srcport",
            "-e",
            "tls.handshake.extensions_server_name",
        ])
        .output()
        .expect("tshark is installed (.ci/run)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let (port, name) = l.split_once('\t')?;
            Some((port.parse().ok()?, name.to_owned()))
        })
        .collect()
}

/// `analyze` on nDPI's wechat.pcap: of the 35 connections that were
/// `unknown`, 34 are `tls` by content, and each names the server its
/// ClientHello asked for, as tshark reads it. The 35th (port 54084) carries
/// 604 bytes from the middle of a record and nothing else: no record header
/// in it (tshark calls it "Continuation Data", TLS by port 443 only), so it
/// stays unknown.
#[test]
fn tls_connections_of_the_ndpi_wechat_capture_are_named_like_tshark() {
    let path = wechat_pcap();
    let o = syncscope(&["analyze", &path, "--format", "json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["by_protocol"]["tls"], 34, "{}", r["by_protocol"]);
    assert_eq!(r["by_protocol"]["unknown"], 1, "{}", r["by_protocol"]);
    let conns = r["connections"].as_array().unwrap();
    let unknown = conns.iter().find(|c| c["kind"] == "unknown").unwrap();
    assert!(unknown["client"].as_str().unwrap().ends_with(":54084"));
    assert_eq!(unknown["bytes_s2c"], 604);
    let ours: BTreeMap<u16, String> = conns
        .iter()
        .filter_map(|c| {
            let port = c["client"].as_str()?.rsplit(':').next()?.parse().ok()?;
            Some((port, c["server_name"].as_str()?.to_owned()))
        })
        .collect();
    let theirs = tshark_sni(&path);
    assert_eq!(theirs.len(), 28);
    assert_eq!(ours, theirs);
    // The hellos' facts: every connection with a ServerHello has a version
    // and a cipher suite.
    let with_version = conns
        .iter()
        .filter(|c| c["tls"]["version"].is_string() && c["tls"]["cipher"].is_string())
        .count();
    assert!(with_version >= 20, "{with_version}");
    // The table has the server name column.
    let o = syncscope(&["analyze", &path]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("server name"), "{table}");
    assert!(table.contains("web.wechat.com"), "{table}");
}

/// `frames --layer tls` lists the records with their content type and why
/// they stay closed (no key log).
#[test]
fn tls_records_are_frames_with_a_reason_when_closed() {
    let path = wechat_pcap();
    let o = syncscope(&["frames", &path, "--layer", "tls", "--format", "json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let recs: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert!(recs.len() > 100, "{}", recs.len());
    let hello = recs
        .iter()
        .find(|r| r["body"]["server_name"] == "res.wx.qq.com")
        .expect("the ClientHello of res.wx.qq.com");
    assert_eq!(hello["kind"], "handshake");
    assert_eq!(hello["crypto"], "plaintext");
    let closed = recs
        .iter()
        .filter(|r| r["kind"] == "application_data")
        .collect::<Vec<_>>();
    assert!(!closed.is_empty());
    assert!(closed.iter().all(|r| r["crypto"] == "no_key"));
}

/// The hex sha256 of a body, "" for an empty one (as records leave it out).
pub(crate) fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    if b.is_empty() {
        String::new()
    } else {
        hex::encode(sha2::Sha256::digest(b))
    }
}

pub(crate) fn sample(name: &str) -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/samples/").to_owned() + name
}

/// `analyze --keylog KEYS --format json` of a capture whose every record
/// the key log opens: the report, checked to have no record that failed
/// or lacked a key.
pub(crate) fn analyze_opened(cap: &str, keys: &str) -> Value {
    let o = syncscope(&["analyze", cap, "--keylog", keys, "--format", "json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let t = &r["tls"];
    assert_eq!(t["failed"], 0, "{t}");
    assert_eq!(t["no_key"], 0, "{t}");
    assert_eq!(
        t["decrypted"].as_u64().unwrap() + t["plaintext"].as_u64().unwrap(),
        t["records"].as_u64().unwrap()
    );
    r
}

/// Each connection's `tls` facts as `"<version> <field>"` (`field` as
/// JSON text when it is not a string), in connection order.
pub(crate) fn tls_facts(report: &Value, field: &str) -> Vec<String> {
    report["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let f = &c["tls"][field];
            let f = f.as_str().map_or_else(|| f.to_string(), str::to_owned);
            format!("{} {f}", c["tls"]["version"].as_str().unwrap())
        })
        .collect()
}

/// The application bytes each connection's key log opened: id ->
/// [client to server, server to client].
pub(crate) fn decrypted_bytes(report: &Value) -> BTreeMap<u64, [u64; 2]> {
    report["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let b = [&c["tls"]["decrypted_c2s"], &c["tls"]["decrypted_s2c"]]
                .map(|v| v.as_u64().unwrap_or(0));
            (c["id"].as_u64().unwrap(), b)
        })
        .collect()
}

/// The library's report of `bytes` (a capture file, perhaps cut short)
/// with the key log at `keys`; None when not even the file header is whole.
pub(crate) fn report_of_bytes(bytes: &[u8], keys: &str) -> Option<syncscope::analyze::Report> {
    use std::io::Cursor;
    use syncscope::analyze::Options;
    use syncscope::capture::Reader;
    use syncscope::proto::keylog::KeyLog;
    let opts = Options {
        keylog: Some(KeyLog::load(keys).unwrap()),
        ..Options::default()
    };
    let mut r = Reader::from_read(Box::new(Cursor::new(bytes.to_vec())), "prefix").ok()?;
    Some(crate::common::analyze_capture(&mut r, &opts).1)
}

/// tshark's decrypted application bytes per TCP stream (numbered as our
/// connections are, by first packet): client to server, server to client
/// (`-z follow,tls,raw`; its node 0 is whichever sent first, `server_port`
/// tells which that is).
pub(crate) fn tshark_tls_bytes(
    cap: &str,
    keys: &str,
    streams: u64,
    server_port: &str,
) -> BTreeMap<u64, [u64; 2]> {
    let mut out = BTreeMap::new();
    for s in 0..streams {
        let o = Command::new("tshark")
            .args(["-o", &format!("tls.keylog_file:{keys}"), "-r", cap, "-q"])
            .args(["-z", &format!("follow,tls,raw,{s}")])
            .output()
            .expect("tshark");
        let text = String::from_utf8_lossy(&o.stdout);
        let mut bytes = [0u64; 2];
        let mut node0_is_server = false;
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("Node 0: ") {
                node0_is_server = rest.ends_with(&format!(":{server_port}"));
            }
            let (node, hex) = match l.strip_prefix('\t') {
                Some(h) => (1, h),
                None => (0, l),
            };
            if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                let i = if (node == 0) == node0_is_server { 1 } else { 0 };
                bytes[i] += hex.len() as u64 / 2;
            }
        }
        out.insert(s, bytes);
    }
    out
}

/// tshark's HTTP messages: (tcp stream, method, path, status, body).
fn tshark_http(cap: &str, keys: &str) -> Vec<(String, String, String, String)> {
    let o = Command::new("tshark")
        .args([
            "-o",
            &format!("tls.keylog_file:{keys}"),
            "-r",
            cap,
            "-Y",
            "http",
        ])
        .args([
            "-T",
            "fields",
            "-e",
            "http.request.method",
            "-e",
            "http.request.uri",
        ])
        .args(["-e", "http.response.code", "-e", "http.file_data"])
        .output()
        .expect("tshark");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].into(), f[1].into(), f[2].into(), f[3].into())
        })
        .collect()
}

/// curl against an HTTPS server, one connection per suite (TLS 1.2 with
/// AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305; TLS 1.3 with the same three),
/// with curl's key log (`samples/curl-tls.*`, bench/make-tls-samples.sh):
/// every record opens, and the application bytes per connection and
/// direction, and every HTTP request and response (method, path, status,
/// body sha256) are tshark's.
#[test]
fn curl_tls12_and_tls13_decrypt_like_tshark() {
    let (cap, keys) = (sample("curl-tls.pcapng"), sample("curl-tls.keys"));
    let r = analyze_opened(&cap, &keys);
    let mut suites = tls_facts(&r, "cipher");
    suites.sort();
    assert_eq!(
        suites,
        [
            "TLS 1.2 TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "TLS 1.2 TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            "TLS 1.2 TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            "TLS 1.3 TLS_AES_128_GCM_SHA256",
            "TLS 1.3 TLS_AES_256_GCM_SHA384",
            "TLS 1.3 TLS_CHACHA20_POLY1305_SHA256",
        ]
    );
    let ours = decrypted_bytes(&r);
    assert_eq!(ours, tshark_tls_bytes(&cap, &keys, 6, "8443"));
    // The HTTP messages, in capture order.
    let o = syncscope(&["frames", &cap, "--keylog", &keys, "--format", "json"]);
    let recs: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    let mut ours = Vec::new();
    for x in recs
        .iter()
        .filter(|x| x["layer"] == "web" || x["layer"] == "http")
    {
        let sha = |v: &Value| v.as_str().unwrap_or("").to_owned();
        ours.push((
            x["method"].as_str().unwrap().to_owned(),
            x["path"].as_str().unwrap().to_owned(),
            String::new(),
            sha(&x["body"]["request_sha256"]),
        ));
        ours.push((
            String::new(),
            String::new(),
            x["status"].to_string(),
            sha(&x["body"]["response_sha256"]),
        ));
    }
    // tshark prints these (JSON, ASCII) bodies as their text.
    let theirs: Vec<_> = tshark_http(&cap, &keys)
        .into_iter()
        .map(|(m, p, s, b)| (m, p, s, sha256_hex(b.as_bytes())))
        .collect();
    assert_eq!(theirs.len(), 24);
    assert!(theirs.iter().filter(|t| !t.3.is_empty()).count() >= 18);
    assert_eq!(ours, theirs);
}

/// The web session of `samples/serve-client-web.pcapng` recorded again with
/// bob's connections over TLS 1.3 (`samples/serve-client-web-tls.*`,
/// bench/make-tls-samples.sh): opened with its key log, `sync` follows the
/// same SyncKey timeline as the clear-text recording (the same messages,
/// sources, directions and key names, in the same order; values, times and
/// ids differ from run to run), and every web exchange ends in the packet
/// where tshark sees its response.
#[test]
fn a_web_session_over_tls_gives_the_clear_text_timeline() {
    let (cap, keys) = (
        sample("serve-client-web-tls.pcapng"),
        sample("serve-client-web-tls.keys"),
    );
    let shape = |args: &[&str]| -> Vec<String> {
        let o = syncscope(args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let r: Value = serde_json::from_slice(&o.stdout).unwrap();
        let web = r["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["sid"].is_string())
            .expect("a web session")
            .clone();
        assert_eq!(web["uin"], 2);
        web["observations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let keys: Vec<&String> = o["keys"].as_object().unwrap().keys().collect();
                format!("{} {} {} {keys:?}", o["dir"], o["message"], o["source"])
            })
            .collect()
    };
    let clear = shape(&[
        "sync",
        &sample("serve-client-web.pcapng"),
        "--format",
        "json",
    ]);
    let tls = shape(&["sync", &cap, "--keylog", &keys, "--format", "json"]);
    assert_eq!(clear.len(), 12);
    assert_eq!(tls, clear);
    // Without the key log nothing opens: no web session (alice's long
    // link, in the clear, is there either way).
    let o = syncscope(&["sync", &cap, "--format", "json"]);
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let sessions = r["sessions"].as_array().unwrap();
    assert!(!sessions.is_empty());
    assert!(sessions.iter().all(|s| s["sid"].is_null()), "{r}");
    // Packets: each exchange's last packet is where tshark decodes its response.
    let o = syncscope(&["frames", &cap, "--keylog", &keys, "--format", "json"]);
    let recs: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    let ours: Vec<String> = recs
        .iter()
        .filter(|r| r["layer"] == "web" || r["layer"] == "http")
        .map(|r| r["last_packet"].to_string())
        .collect();
    let t = Command::new("tshark")
        .args(["-o", &format!("tls.keylog_file:{keys}"), "-r", &cap])
        .args(["-Y", "http.response", "-T", "fields", "-e", "frame.number"])
        .output()
        .expect("tshark");
    let theirs: Vec<String> = String::from_utf8_lossy(&t.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(ours.len(), 19);
    assert_eq!(ours, theirs);
}

/// Every prefix of the curl capture (cut anywhere, in steps of 97 bytes)
/// goes through the analyzer with its key log: no panic, no record that
/// fails to open (a cut only loses records), never more opened than in the
/// whole file.
#[test]
fn every_prefix_of_a_tls_capture_is_safe() {
    let bytes = std::fs::read(sample("curl-tls.pcapng")).unwrap();
    let keys = sample("curl-tls.keys");
    let whole = report_of_bytes(&bytes, &keys).unwrap().tls;
    assert_eq!(whole.decrypted, 69);
    for cut in (0..bytes.len()).step_by(97) {
        if let Some(rep) = report_of_bytes(&bytes[..cut], &keys) {
            assert_eq!(rep.tls.failed, 0, "cut at {cut}");
            assert!(rep.tls.decrypted <= whole.decrypted, "cut at {cut}");
        }
    }
}

/// `serve --tls-cert --tls-key`: curl gets the web endpoints over HTTPS
/// (TLS 1.2 and 1.3, checked against the certificate), plain HTTP still
/// works on the same port, `client --web --tls-ca` sends over HTTPS, and
/// with SSLKEYLOGFILE the server and the client write the session secrets
/// as an NSS key log (which `--keylog` reads).
#[test]
fn serve_speaks_https_on_its_port_with_tls_cert() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed (.ci/run)");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let keylog = dir.path().join("server.keys");
    let mut c = crate::net::syncscope();
    c.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--memory",
        "--users",
        "alice,bob",
    ])
    .arg("--tls-cert")
    .arg(&cert)
    .arg("--tls-key")
    .arg(&key)
    .env("SSLKEYLOGFILE", &keylog);
    let srv = crate::net::ServeProcess::spawn(c);
    let port = srv.addr.rsplit(':').next().unwrap().to_owned();
    let url = format!("https://localhost:{port}/jslogin?appid=x&fun=new&user=bob");
    for version in ["--tls-max", "--tlsv1.3"] {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--http1.1", "--cacert"]).arg(&cert);
        if version == "--tls-max" {
            cmd.args(["--tls-max", "1.2"]);
        } else {
            cmd.arg("--tlsv1.3");
        }
        let o = crate::net::run_bounded({
            cmd.arg(&url);
            cmd
        });
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let body = String::from_utf8_lossy(&o.stdout);
        assert!(body.contains("window.QRLogin.code = 200"), "{body}");
    }
    // HTTP/2 when the client offers it (ALPN h2): a GET and a POST with a
    // body on one connection, answered by the same routes.
    let o = crate::net::run_bounded({
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sS",
            "--http2",
            "-w",
            "[%{http_version} %{response_code}]\n",
        ])
        .arg("--cacert")
        .arg(&cert)
        .arg(&url)
        .args([
            "--next",
            "--http2",
            "-w",
            "[%{http_version} %{response_code}]\n",
        ])
        .arg("--cacert")
        .arg(&cert)
        .args(["-d", r#"{"BaseRequest":{"Uin":1,"Sid":"none"}}"#])
        .arg(format!(
            "https://localhost:{port}/cgi-bin/mmwebwx-bin/webwxinit"
        ));
        cmd
    });
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let body = String::from_utf8_lossy(&o.stdout);
    assert!(body.contains("window.QRLogin.code = 200"), "{body}");
    assert!(body.contains(r#""Ret":1101"#), "{body}");
    assert_eq!(body.matches("[2 200]").count(), 2, "{body}");
    // Plain HTTP on the same port still works.
    let o = crate::net::run_bounded({
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sS",
            &format!("http://127.0.0.1:{port}/jslogin?appid=x&fun=new&user=bob"),
        ]);
        cmd
    });
    assert!(String::from_utf8_lossy(&o.stdout).contains("window.QRLogin.code = 200"));
    // The server's key log: a TLS 1.2 master secret and TLS 1.3 secrets.
    let text = std::fs::read_to_string(&keylog).unwrap();
    assert!(text.contains("CLIENT_RANDOM "), "{text}");
    assert!(text.contains("SERVER_TRAFFIC_SECRET_0 "), "{text}");
    syncscope::proto::keylog::KeyLog::parse(&text)
        .unwrap()
        .nss()
        .unwrap();
    // Our web client over HTTPS, with its own key log.
    let client_keys = dir.path().join("client.keys");
    let o = crate::net::run_bounded({
        let mut cmd = crate::net::syncscope();
        cmd.args([
            "client",
            "--server",
            &format!("localhost:{port}"),
            "--user",
            "bob",
            "--web",
        ])
        .arg("--tls-ca")
        .arg(&cert)
        .args(["send", "alice", "hi over https"])
        .env("SSLKEYLOGFILE", &client_keys);
        cmd
    });
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&client_keys).unwrap();
    assert!(text.contains("CLIENT_TRAFFIC_SECRET_0 "), "{text}");
    // A file with no certificate: refused, and said so.
    let o = crate::net::run_bounded({
        let mut cmd = crate::net::syncscope();
        cmd.args([
            "client",
            "--server",
            &format!("localhost:{port}"),
            "--user",
            "bob",
            "--web",
        ])
        .arg("--tls-ca")
        .arg(sample("curl-tls.keys"))
        .args(["send", "alice", "hi"]);
        cmd
    });
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--tls-ca"), "{err}");
    drop(srv);
}
