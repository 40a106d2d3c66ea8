//! webwxuploadmedia, webwxsendmsgimg and webwxgetmsgimg without a
//! network: chunks out of order and twice, a wrong FileMd5, bad forms,
//! unknown and unfinished MediaIds.

use md5::{Digest, Md5};
use serde_json::{json, Value};

use super::super::tests::{get, json_of, login, serve};
use super::super::WEB_PREFIX;
use super::{MEDIA_ID_PREFIX, WEB_CHUNK};
use crate::net::messages::ret;
use crate::net::server::http::Request;
use crate::net::server::service::tests::service;
use crate::net::server::service::with_store;
use crate::net::server::service::Service;
use crate::proto::http::multipart;

/// A PNG over one chunk (noise does not compress).
fn big_png() -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    let img = image::RgbImage::from_fn(520, 400, |_, _| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        image::Rgb([x as u8, (x >> 8) as u8, (x >> 16) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("png");
    let png = out.into_inner();
    assert!(png.len() > WEB_CHUNK && png.len() < 2 * WEB_CHUNK);
    png
}

struct Session {
    sid: String,
    uin: u64,
    skey: String,
}

const BOUNDARY: &str = "----syncscopetest0123";

/// Chunk `chunk` of `data` as itchat posts it (`chunks` fields when
/// there is more than one), with `md5` as FileMd5.
fn upload(w: &Session, cid: &str, data: &[u8], chunk: usize, md5: &str) -> Request {
    let chunks = data.len().div_ceil(WEB_CHUNK);
    let meta = json!({
        "UploadType": 2,
        "BaseRequest": {"Uin": w.uin, "Sid": w.sid, "Skey": w.skey, "DeviceID": "e1"},
        "ClientMediaId": cid.parse::<u64>().expect("numeric"), "TotalLen": data.len(),
        "StartPos": 0, "DataLen": data.len(), "MediaType": 4,
        "FromUserName": "@alice", "ToUserName": "filehelper", "FileMd5": md5,
    })
    .to_string();
    let part = &data[chunk * WEB_CHUNK..((chunk + 1) * WEB_CHUNK).min(data.len())];
    let (c, n) = (chunk.to_string(), chunks.to_string());
    let mut fields: Vec<(&str, Option<&str>, &[u8])> =
        vec![("id", None, b"WU_FILE_0"), ("mediatype", None, b"pic")];
    if chunks > 1 {
        fields.push(("chunks", None, n.as_bytes()));
        fields.push(("chunk", None, c.as_bytes()));
    }
    fields.push(("uploadmediarequest", None, meta.as_bytes()));
    fields.push(("filename", Some("photo.png"), part));
    let mut req = Request::test(
        "POST",
        &format!("{WEB_PREFIX}webwxuploadmedia?f=json"),
        &multipart::encode(BOUNDARY, &fields),
    );
    req.content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    req
}

async fn post(s: &Service, req: &Request) -> Value {
    json_of(&serve(s, req).await.expect("answered"))
}

fn sendmsgimg(w: &Session, media_id: &str, to: &str) -> Request {
    let body = json!({
        "BaseRequest": {"Uin": w.uin, "Sid": w.sid, "Skey": w.skey, "DeviceID": "e1"},
        "Msg": {"Type": 3, "MediaId": media_id, "FromUserName": "@alice", "ToUserName": to,
                "LocalID": "17", "ClientMsgId": "17"},
        "Scene": 0,
    });
    Request::test(
        "POST",
        &format!("{WEB_PREFIX}webwxsendmsgimg?fun=async&f=json"),
        body.to_string().as_bytes(),
    )
}

#[tokio::test]
async fn chunks_in_any_order_then_the_message_and_the_image_back() {
    let (s, _) = service(|c| c.test_users = vec!["alice".into(), "bob".into()]);
    s.identify(Some("bob".into()), 0, "phone")
        .await
        .expect("bob exists");
    let (sid, uin, skey, _) = login(&s, "alice").await;
    let w = Session {
        sid,
        uin: uin.parse().expect("uin"),
        skey,
    };
    let png = big_png();
    let md5 = hex::encode(Md5::digest(&png));
    // The last chunk first, twice: taken, not whole yet.
    for _ in 0..2 {
        let v = post(&s, &upload(&w, "1701", &png, 1, &md5)).await;
        assert_eq!(v["BaseResponse"]["Ret"], 0, "{v}");
        assert_eq!(v["MediaId"], "", "{v}");
    }
    // Not whole: it cannot be sent yet.
    let early = post(
        &s,
        &sendmsgimg(&w, &format!("{MEDIA_ID_PREFIX}1701"), "@bob"),
    )
    .await;
    assert_eq!(early["BaseResponse"]["Ret"], ret::MEDIA_REFUSED, "{early}");
    let v = post(&s, &upload(&w, "1701", &png, 0, &md5)).await;
    assert_eq!(v["BaseResponse"]["Ret"], 0, "{v}");
    let media_id = v["MediaId"].as_str().expect("a MediaId").to_owned();
    assert!(!media_id.is_empty(), "{v}");

    let sent = post(&s, &sendmsgimg(&w, &media_id, "@bob")).await;
    assert_eq!(sent["BaseResponse"]["Ret"], 0, "{sent}");
    let msg_id: u64 = sent["MsgID"].as_str().expect("MsgID").parse().expect("id");
    let again = post(&s, &sendmsgimg(&w, &media_id, "@bob")).await;
    assert_eq!(
        again["MsgID"], sent["MsgID"],
        "a MediaId sent again: the same message"
    );
    let media = with_store(&s.store, move |st| st.media(msg_id))
        .await
        .expect("store")
        .expect("stored");
    assert_eq!(media.msg_type, 3);
    assert!(media.data == png, "the stored image differs");
    assert_ne!(media.to, media.from, "to bob");

    let r = get(
        &s,
        &format!(
            "{WEB_PREFIX}webwxgetmsgimg?MsgID={msg_id}&skey={}&sid={}",
            w.skey.replace('@', "%40"),
            w.sid
        ),
    )
    .await;
    assert_eq!(
        r.content_type,
        "image/png",
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(r.body == png, "webwxgetmsgimg gives the image");
    let r = get(
        &s,
        &format!(
            "{WEB_PREFIX}webwxgetmsgimg?MsgID={msg_id}&type=slave&sid={}",
            w.sid
        ),
    )
    .await;
    assert!(r.body.starts_with(&[0xff, 0xd8]), "a JPEG thumbnail");
}

#[tokio::test]
async fn wrong_md5_bad_forms_and_unknown_media() {
    let (s, _) = service(|c| c.test_users = vec!["alice".into()]);
    let (sid, uin, skey, _) = login(&s, "alice").await;
    let w = Session {
        sid,
        uin: uin.parse().expect("uin"),
        skey,
    };
    let png = big_png();
    let wrong = "0123456789abcdef0123456789abcdef";
    post(&s, &upload(&w, "1702", &png, 0, wrong)).await;
    let v = post(&s, &upload(&w, "1702", &png, 1, wrong)).await;
    assert_eq!(v["BaseResponse"]["Ret"], ret::MEDIA_REFUSED, "{v}");
    assert_eq!(v["MediaId"], "");
    // Dropped: nothing to send.
    let gone = post(
        &s,
        &sendmsgimg(&w, &format!("{MEDIA_ID_PREFIX}1702"), "filehelper"),
    )
    .await;
    assert_eq!(gone["BaseResponse"]["Ret"], ret::NO_SUCH_MEDIA, "{gone}");
    let never = post(&s, &sendmsgimg(&w, "@crypt_nothing", "filehelper")).await;
    assert_eq!(never["BaseResponse"]["Ret"], ret::NO_SUCH_MEDIA, "{never}");

    // Not a form; a form without the uploadmediarequest.
    let mut not_form = upload(&w, "1703", &png, 0, wrong);
    not_form.content_type = "application/json".into();
    assert!(serve(&s, &not_form).await.is_err());
    let mut no_meta = Request::test(
        "POST",
        &format!("{WEB_PREFIX}webwxuploadmedia?f=json"),
        &multipart::encode(BOUNDARY, &[("filename", Some("a.png"), b"x")]),
    );
    no_meta.content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    assert!(serve(&s, &no_meta).await.is_err());
}
