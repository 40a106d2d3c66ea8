//! Images from a web client through `syncscope serve`: itchat-uos (from
//! PyPI, as tests/it/web_server.rs installs it) uploads a PNG with
//! webwxuploadmedia in two chunks and sends it with webwxsendmsgimg; the
//! long-link recipient's `client listen --save` writes it byte for byte;
//! `export-objects` puts such chunks back together from a capture.

use serde_json::Value;
use syncscope::proto::http::message::{encode_request, encode_response};
use syncscope::proto::http::multipart;
use syncscope::synth::{Conversation, Side};

use crate::common::pcap_of;
use crate::net::{run_bounded, syncscope, ServeProcess};
use crate::net_media::test_png;
use crate::web_server::{phone, Itchat};

/// web WeChat's (and itchat's) chunk size.
const WEB_CHUNK: usize = 512 << 10;

#[test]
fn itchat_sends_an_image_a_long_link_user_saves() {
    let serve = ServeProcess::start(&["--memory", "--users", "alice:secret,bob:pw"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let png = test_png(700, 500);
    assert!(
        png.len() > WEB_CHUNK && png.len() < 2 * WEB_CHUNK,
        "two chunks: {} bytes",
        png.len()
    );
    let path = dir.path().join("photo.png");
    std::fs::write(&path, &png).expect("write the png");
    // The session is captured on lo, for export-objects below.
    let cap = dir.path().join("itchat-upload.pcapng");
    let dumpcap = Dumpcap::start(&serve.addr, &cap);
    let (itchat, login) = Itchat::login(
        "itchat_send_image.py",
        &serve.addr,
        &["@bob", path.to_str().expect("utf-8 path")],
        "alice",
        Some("secret"),
    );
    assert_eq!(login["user"], "@alice", "{login}");
    let sent = itchat.next("sent");
    assert_eq!(sent["event"], "sent", "{sent}");
    assert_eq!(sent["upload_ret"], 0, "{sent}");
    assert_eq!(sent["ret"], 0, "{sent}");
    assert!(
        sent["media_id"].as_str().is_some_and(|m| !m.is_empty()),
        "{sent}"
    );
    itchat.finish();

    let save = dir.path().join("saved");
    let mut c = phone(&serve.addr, "bob", Some("pw"));
    c.args([
        "listen",
        "--count",
        "1",
        "--timeout",
        "10",
        "--format",
        "ndjson",
    ]);
    c.arg("--save").arg(&save);
    let out = run_bounded(c);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("ndjson"))
        .collect();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["msg_type"], 3, "{got:?}");
    assert_eq!(got[0]["from"], "alice");
    assert_eq!(
        got[0]["msg_id"].to_string(),
        sent["msg_id"].as_str().unwrap_or("")
    );
    let saved =
        std::fs::read(save.join(format!("{}.png", got[0]["msg_id"]))).expect("the saved image");
    assert!(
        saved == png,
        "the saved image differs ({} bytes)",
        saved.len()
    );

    // From the capture of that session (a real web client's two
    // webwxuploadmedia POSTs, the long-link download): the same image.
    dumpcap.stop();
    let chunks = upload_chunks(&cap);
    assert_eq!(chunks.len(), 2, "{chunks:?}");
    for (i, m) in chunks.iter().enumerate() {
        assert_eq!(m["chunk"].as_u64(), Some(i as u64), "{m}");
        assert_eq!(m["size"].as_u64(), Some(png.len() as u64), "{m}");
    }
    let objects = export_objects(&cap, &dir.path().join("objects"));
    let uploads: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == "image" && o["from"] == "@alice")
        .collect();
    assert_eq!(uploads.len(), 1, "{objects:?}");
    let o = uploads[0];
    assert_eq!(
        (o["parts"].as_u64(), o["complete"].as_bool()),
        (Some(2), Some(true)),
        "{o}"
    );
    let file = o["file"].as_str().expect("written");
    assert!(
        std::fs::read(file).expect("the file") == png,
        "{file} differs from the image itchat sent"
    );
}

/// dumpcap on lo, on the port of `addr`, writing `out`; stopped with
/// SIGINT (CI runs as root and installs tshark's dumpcap).
struct Dumpcap(std::process::Child);

impl Dumpcap {
    fn start(addr: &str, out: &std::path::Path) -> Dumpcap {
        use std::io::{BufRead, BufReader};
        let port = addr.rsplit(':').next().expect("a port");
        let mut child = std::process::Command::new("dumpcap")
            .args(["-i", "lo", "-f", &format!("tcp port {port}"), "-w"])
            .arg(out)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run dumpcap (tshark's; CI installs it)");
        let err = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(err).lines();
        let ready = lines.any(|l| l.is_ok_and(|l| l.starts_with("Capturing on")));
        assert!(ready, "dumpcap did not start capturing");
        std::thread::spawn(move || lines.for_each(drop));
        Dumpcap(child)
    }

    /// Stops the capture (dumpcap finishes the file and exits 0).
    fn stop(mut self) {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let pid = self.0.id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status();
        let status = self.0.wait().expect("dumpcap ends");
        assert!(status.success(), "dumpcap: {status}");
    }
}

impl Drop for Dumpcap {
    /// A test that fails before `stop` leaves no capture running.
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A capture of a web upload in two chunks, the second sent first and
/// then again (a retry): `export-objects` writes the whole file, the
/// retry counted once.
#[test]
fn export_objects_reads_web_uploads() {
    let png = test_png(700, 500);
    let total = png.len();
    let meta = format!(
        r#"{{"UploadType":2,"BaseRequest":{{"Uin":3,"Sid":"s","Skey":"k","DeviceID":"e1"}},"ClientMediaId":17000000001,"TotalLen":{total},"StartPos":0,"DataLen":{total},"MediaType":4,"FromUserName":"@alice","ToUserName":"filehelper","FileMd5":""}}"#
    );
    let mut conv = Conversation::new(
        "10.0.0.1:40001".parse().unwrap(),
        "10.0.0.2:80".parse().unwrap(),
        1000,
        5000,
    );
    let mut frames = conv.handshake();
    let boundary = "----WebKitFormBoundaryq1w2e3r4";
    let content_type = format!("multipart/form-data; boundary={boundary}");
    for chunk in [1usize, 0, 1] {
        let data = &png[chunk * WEB_CHUNK..((chunk + 1) * WEB_CHUNK).min(total)];
        let c = chunk.to_string();
        let body = multipart::encode(
            boundary,
            &[
                ("id", None, b"WU_FILE_0"),
                ("chunks", None, b"2"),
                ("chunk", None, c.as_bytes()),
                ("mediatype", None, b"pic"),
                ("uploadmediarequest", None, meta.as_bytes()),
                ("filename", Some("photo.png"), data),
            ],
        );
        let len = body.len().to_string();
        frames.extend(conv.send(
            Side::Client,
            &encode_request(
                "POST",
                "/cgi-bin/mmwebwx-bin/webwxuploadmedia?f=json",
                &[
                    ("Host", "file.wx.qq.com"),
                    ("Content-Type", &content_type),
                    ("Content-Length", &len),
                ],
                &body,
            ),
        ));
        let answer = br#"{"BaseResponse":{"Ret":0,"ErrMsg":""},"MediaId":""}"#;
        let len = answer.len().to_string();
        frames.extend(conv.send(
            Side::Server,
            &encode_response(
                200,
                &[
                    ("Content-Type", "application/json"),
                    ("Content-Length", &len),
                ],
                answer,
            ),
        ));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("web-upload.pcap");
    std::fs::write(&pcap, pcap_of(&frames)).expect("write the capture");
    // The web layer names the endpoint and reads each chunk's form.
    let uploads = upload_chunks(&pcap);
    assert_eq!(uploads.len(), 3, "named webwxuploadmedia");
    for (m, chunk) in uploads.iter().zip([1usize, 0, 1]) {
        assert_eq!(m["client_media_id"], "17000000001", "{m}");
        assert_eq!(m["file_name"], "photo.png");
        assert_eq!(m["size"].as_u64(), Some(total as u64));
        assert_eq!(m["chunk"].as_u64(), Some(chunk as u64));
        let len = ((chunk + 1) * WEB_CHUNK).min(total) - chunk * WEB_CHUNK;
        assert_eq!(m["chunk_len"].as_u64(), Some(len as u64));
    }
    let objects = export_objects(&pcap, &dir.path().join("objects"));
    assert_eq!(objects.len(), 1, "{objects:?}");
    let o = &objects[0];
    assert_eq!(o["kind"], "image");
    assert_eq!(o["client_id"], "17000000001");
    assert_eq!(o["from"], "@alice");
    assert_eq!(
        (o["parts"].as_u64(), o["repeats"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(o["complete"], true, "{o}");
    let file = o["file"].as_str().expect("written");
    assert!(
        std::fs::read(file).expect("the file") == png,
        "{file} differs"
    );
}

/// The `info.media` of each webwxuploadmedia record `frames` finds in `pcap`.
fn upload_chunks(pcap: &std::path::Path) -> Vec<Value> {
    let mut c = syncscope();
    c.args(["frames", "--format", "ndjson", "--layer", "web"])
        .arg(pcap);
    crate::net::ndjson_bounded(c)
        .into_iter()
        .filter(|r| r["endpoint"] == "webwxuploadmedia")
        .map(|r| r["body"]["info"]["media"].clone())
        .collect()
}

/// `export-objects PCAP OUT --json --fail-on-incomplete`: its objects.
fn export_objects(pcap: &std::path::Path, out_dir: &std::path::Path) -> Vec<Value> {
    let mut c = syncscope();
    c.arg("export-objects")
        .arg(pcap)
        .arg(out_dir)
        .args(["--json", "--fail-on-incomplete"]);
    crate::net::ndjson_bounded(c)
}
