//! Images from a web client through `syncscope serve`: itchat-uos (from
//! PyPI, as tests/it/web_server.rs installs it) uploads a PNG with
//! webwxuploadmedia in two chunks and sends it with webwxsendmsgimg; the
//! long-link recipient's `client listen --save` writes it byte for byte.

use serde_json::Value;

use crate::net::{run_bounded, ServeProcess};
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
}
