//! Media through `syncscope serve`: an image uploaded in parts over the
//! short link and a voice recording in chunks over the long link reach the
//! recipient byte for byte (`client send-image`, `send-voice`,
//! `listen --save`); parts out of order, twice, overlapping or missing;
//! the caps; and kill -9 in the middle of an upload.

use std::path::Path;
use std::process::Command;

use prost::Message;
use serde_json::Value;

use syncscope::body::messages::{
    GetMsgImgRequest, GetMsgImgResponse, SkBuiltinBuffer, SkBuiltinString, UploadMsgImgRequest,
    UploadMsgImgResponse,
};
use syncscope::net::client::{ClientError, Config};
use syncscope::net::messages::ret;
use syncscope::net::shortclient::ShortSession;

use crate::net::{run_bounded, syncscope, ServeProcess};

/// A PNG of `w` x `h` pixels that does not compress away (a noisy
/// gradient): tens of parts of 1.5 KB.
pub(crate) fn test_png(w: u32, h: u32) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    let img = image::RgbImage::from_fn(w, h, |i, j| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        image::Rgb([(i * 255 / w) as u8, (j * 255 / h) as u8, (x & 0xff) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("png");
    out.into_inner()
}

/// Bytes that stand for a recording (the server keeps them as they are).
pub(crate) fn test_voice(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn client(serve: &ServeProcess, args: &[&str]) -> Command {
    let mut c = syncscope();
    c.args(["client", "--server", &serve.addr]).args(args);
    c
}

fn err(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn an_image_and_a_recording_arrive_byte_identical() {
    let serve = ServeProcess::start(&["--memory", "--users", "alice,bob"]);
    let dir = tempfile::tempdir().unwrap();
    let png = test_png(120, 90);
    assert!(png.len() > 10 * 1500, "{} bytes: many parts", png.len());
    let voice = test_voice(3000);
    std::fs::write(dir.path().join("a.png"), &png).unwrap();
    std::fs::write(dir.path().join("a.voice"), &voice).unwrap();
    let image_path = dir.path().join("a.png");
    let out = run_bounded(client(
        &serve,
        &[
            "--user",
            "alice",
            "send-image",
            "bob",
            image_path.to_str().unwrap(),
        ],
    ));
    assert!(out.status.success(), "{}", err(&out));
    let img: Value = serde_json::from_slice(&out.stdout).expect("ack JSON");
    assert_eq!(img["len"], png.len());
    assert_eq!(img["parts"], png.len().div_ceil(1500));
    assert!(img["thumb_len"].as_u64().unwrap() > 0, "{img}");
    let voice_path = dir.path().join("a.voice");
    let out = run_bounded(client(
        &serve,
        &[
            "--user",
            "alice",
            "send-voice",
            "bob",
            voice_path.to_str().unwrap(),
            "--duration-ms",
            "2000",
        ],
    ));
    assert!(out.status.success(), "{}", err(&out));
    let vo: Value = serde_json::from_slice(&out.stdout).expect("ack JSON");
    assert_eq!(
        (vo["len"].as_u64(), vo["parts"].as_u64()),
        (Some(3000), Some(2))
    );
    // bob saves both.
    let save = dir.path().join("saved");
    let out = run_bounded(client(
        &serve,
        &[
            "--user",
            "bob",
            "listen",
            "--count",
            "2",
            "--timeout",
            "10",
            "--format",
            "ndjson",
            "--save",
            save.to_str().unwrap(),
        ],
    ));
    assert!(out.status.success(), "{}", err(&out));
    let got: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        got.iter()
            .map(|m| m["msg_type"].as_u64())
            .collect::<Vec<_>>(),
        [Some(3), Some(34)]
    );
    assert_eq!(got[0]["msg_id"], img["msg_id"]);
    assert_eq!(got[1]["msg_id"], vo["msg_id"]);
    let saved =
        |name: String| std::fs::read(save.join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(
        saved(format!("{}.png", img["msg_id"])) == png,
        "the image differs"
    );
    assert!(
        saved(format!("{}.voice", vo["msg_id"])) == voice,
        "the recording differs"
    );
}

fn config(serve: &ServeProcess, user: &str) -> Config {
    Config::new(serve.addr.clone(), user)
}

fn part(id: &str, total: usize, start: usize, data: &[u8]) -> Vec<u8> {
    UploadMsgImgRequest {
        client_img_id: Some(SkBuiltinString::new(id)),
        from_user_name: Some(SkBuiltinString::new("alice")),
        to_user_name: Some(SkBuiltinString::new("bob")),
        total_len: Some(total as u32),
        start_pos: Some(start as u32),
        data_len: Some(data.len() as u32),
        data: Some(SkBuiltinBuffer::new(data.to_vec())),
        msg_type: Some(3),
    }
    .encode_to_vec()
}

/// The (NewMsgId, thumbnail) an upload answer gives (0 until whole).
async fn upload(s: &mut ShortSession, body: Vec<u8>) -> Result<(u64, Vec<u8>), ClientError> {
    let answer = s.call("uploadmsgimg", &body).await?;
    let r = UploadMsgImgResponse::decode(answer.as_slice()).expect("UploadMsgImgResponse");
    assert_eq!(r.base_response.and_then(|b| b.ret), Some(0));
    Ok((r.new_msg_id.unwrap_or(0), r.thumb.unwrap_or_default()))
}

/// The whole image of message `id`, read back in parts.
async fn download(s: &mut ShortSession, id: u64) -> Result<Vec<u8>, ClientError> {
    let mut out = Vec::new();
    loop {
        let req = GetMsgImgRequest {
            msg_id: Some(id as u32),
            new_msg_id: Some(id),
            start_pos: Some(out.len() as u32),
            data_len: Some(1000),
            ..GetMsgImgRequest::default()
        };
        let answer = s.call("getmsgimg", &req.encode_to_vec()).await?;
        let r = GetMsgImgResponse::decode(answer.as_slice()).expect("GetMsgImgResponse");
        let data = r.data.and_then(|d| d.buffer).unwrap_or_default();
        assert!(data.len() <= 1000);
        out.extend_from_slice(&data);
        if data.is_empty() || out.len() >= r.total_len.unwrap_or(0) as usize {
            return Ok(out);
        }
    }
}

fn refused(r: Result<(u64, Vec<u8>), ClientError>) -> (i32, String) {
    match r {
        Err(ClientError::Refused { ret, message, .. }) => (ret, message),
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn parts_out_of_order_twice_overlapping_and_missing() {
    let serve = ServeProcess::start(&["--memory", "--users", "alice,bob,carol"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let png = test_png(60, 40);
        let chunks: Vec<(usize, &[u8])> = png
            .chunks(1500)
            .enumerate()
            .map(|(i, c)| (i * 1500, c))
            .collect();
        assert!(chunks.len() >= 3);
        let mut alice = ShortSession::login(&config(&serve, "alice")).await.unwrap();
        // Backwards, each twice, all but the first part.
        for &(start, data) in chunks[1..].iter().rev() {
            for _ in 0..2 {
                let (id, _) = upload(&mut alice, part("p1", png.len(), start, data))
                    .await
                    .unwrap();
                assert_eq!(id, 0, "not whole before the first part");
            }
        }
        // Nothing delivered yet.
        let mut bob = ShortSession::login(&config(&serve, "bob")).await.unwrap();
        assert!(bob.sync().await.unwrap().messages.is_empty());
        // An overlapping part is refused; so is a recipient change.
        let (r, why) =
            refused(upload(&mut alice, part("p1", png.len(), 1400, &png[1400..1600])).await);
        assert_eq!(r, ret::MEDIA_REFUSED);
        assert!(why.contains("overlaps"), "{why}");
        // The missing first part completes it: one message, a thumbnail.
        let (id, thumb) = upload(&mut alice, part("p1", png.len(), 0, chunks[0].1))
            .await
            .unwrap();
        assert_ne!(id, 0);
        let t = image::load_from_memory(&thumb).expect("the thumbnail decodes");
        assert!(t.width() <= 120 && t.height() <= 120 && t.width() > 0);
        assert_eq!(&thumb[..3], b"\xff\xd8\xff", "a JPEG");
        // A part sent again after the end: the same message, not another.
        let (again, _) = upload(&mut alice, part("p1", png.len(), 0, chunks[0].1))
            .await
            .unwrap();
        assert_eq!(again, id);
        let page = bob.sync().await.unwrap();
        assert_eq!(page.messages.len(), 1);
        assert_eq!(
            (page.messages[0].msg_type, page.messages[0].msg_id),
            (3, id)
        );
        assert!(page.messages[0]
            .content
            .contains(&format!("length=\"{}\"", png.len())));
        assert_eq!(download(&mut bob, id).await.unwrap(), png);
        // carol may not read it.
        let mut carol = ShortSession::login(&config(&serve, "carol")).await.unwrap();
        match download(&mut carol, id).await {
            Err(ClientError::Refused { ret: r, .. }) => assert_eq!(r, ret::NO_SUCH_MEDIA),
            other => panic!("carol read it: {other:?}"),
        }
        // Bytes that are not an image: refused when whole, and dropped.
        let (r, why) = refused(upload(&mut alice, part("junk", 4, 0, b"junk")).await);
        assert_eq!(r, ret::MEDIA_REFUSED);
        assert!(why.contains("not a PNG or JPEG"), "{why}");
        // A part over the cap of 64 KiB, an object over --max-media.
        let big = vec![0u8; 65 << 10];
        let (r, _) = refused(upload(&mut alice, part("big", 1 << 20, 0, &big)).await);
        assert_eq!(r, ret::OVERSIZE);
        let (r, _) = refused(upload(&mut alice, part("huge", 9 << 20, 0, b"x")).await);
        assert_eq!(r, ret::OVERSIZE);
    });
}

#[test]
fn unfinished_uploads_are_capped() {
    let serve = ServeProcess::start(&[
        "--memory",
        "--users",
        "alice,bob",
        "--max-open-uploads",
        "2",
    ]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut alice = ShortSession::login(&config(&serve, "alice")).await.unwrap();
        for id in ["u1", "u2"] {
            upload(&mut alice, part(id, 10, 0, b"abc")).await.unwrap();
        }
        let (r, why) = refused(upload(&mut alice, part("u3", 10, 0, b"abc")).await);
        assert_eq!(r, ret::MEDIA_REFUSED);
        assert!(why.contains("cap of 2"), "{why}");
        // A part of an upload already open is still taken.
        upload(&mut alice, part("u1", 10, 3, b"def")).await.unwrap();
    });
}

/// kill -9 with half an image uploaded: every part the server answered
/// is there after the restart, and the other half completes the image.
#[test]
fn kill_9_in_the_middle_of_an_upload_loses_no_acknowledged_part() {
    let data = tempfile::tempdir().unwrap();
    let dir: &Path = data.path();
    let png = test_png(80, 60);
    let chunks: Vec<(usize, Vec<u8>)> = png
        .chunks(1500)
        .enumerate()
        .map(|(i, c)| (i * 1500, c.to_vec()))
        .collect();
    let half = chunks.len() / 2;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let args = [
        "--data",
        dir.to_str().unwrap(),
        "--users",
        "alice,bob",
        "-q",
    ];
    let mut serve = ServeProcess::start(&args);
    rt.block_on(async {
        let mut alice = ShortSession::login(&config(&serve, "alice")).await.unwrap();
        for (start, d) in &chunks[..half] {
            let (id, _) = upload(&mut alice, part("k9", png.len(), *start, d))
                .await
                .unwrap();
            assert_eq!(id, 0);
        }
    });
    let pid = serve.pid().to_string();
    assert!(Command::new("kill")
        .args(["-9", &pid])
        .status()
        .unwrap()
        .success());
    let _ = serve.wait_and_rest();
    drop(serve);
    let serve = ServeProcess::start(&args);
    rt.block_on(async {
        let mut alice = ShortSession::login(&config(&serve, "alice")).await.unwrap();
        let mut id = 0;
        for (start, d) in &chunks[half..] {
            id = upload(&mut alice, part("k9", png.len(), *start, d))
                .await
                .unwrap()
                .0;
        }
        assert_ne!(id, 0, "the parts from before the kill completed it");
        let mut bob = ShortSession::login(&config(&serve, "bob")).await.unwrap();
        assert_eq!(download(&mut bob, id).await.unwrap(), png);
    });
}

/// `export-objects` on the shipped capture of a media session
/// (bench/make-samples.sh media) gives the files that were sent, byte for
/// byte, with their sha256.
#[test]
fn export_objects_gives_the_files_sent() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out_dir = tempfile::tempdir().unwrap();
    let out = run_bounded({
        let mut c = syncscope();
        c.arg("export-objects")
            .arg(root.join("samples/serve-client-media.pcapng"))
            .arg(out_dir.path())
            .args(["--json", "--fail-on-incomplete"]);
        c
    });
    assert!(out.status.success(), "{}", err(&out));
    let objects: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 2, "{objects:?}");
    for (o, (kind, sent)) in objects
        .iter()
        .zip([("image", "photo.png"), ("voice", "memo.voice")])
    {
        let want = std::fs::read(root.join("samples/serve-client-media").join(sent)).unwrap();
        assert_eq!(o["kind"], kind);
        assert_eq!(o["complete"], true);
        assert_eq!(o["missing"], serde_json::json!([]));
        let file = o["file"].as_str().expect("written");
        assert!(
            std::fs::read(file).unwrap() == want,
            "{file} differs from {sent}"
        );
        use sha2::Digest;
        assert_eq!(o["sha256"], hex::encode(sha2::Sha256::digest(&want)));
    }
    assert!(objects[0]["parts"].as_u64().unwrap() > 10);
    assert_eq!(objects[1]["parts"], 2);
}
