//! Body decoding: schema-less protobuf, `.proto` schemas, the identify
//! (cmd 205) body and its SyncKey.
//!
//! The real identify body is MMTLS-encrypted in the capture, so it cannot be
//! read from the reassembled TCP bytes without the MMTLS layer. The two
//! bodies below were taken from the capture once, outside this crate:
//! `tshark -z follow,tcp,raw,31`, MMTLS records split by their 5-byte header,
//! each matched to its key-log OUTER line by the record's last 8 bytes and
//! opened with AES-128-GCM (logged key, nonce and metadata as AAD); the
//! plaintext is a 16-byte long-link header (cmd 205 / 1000000205, seq
//! 0xfffffffe) and the body below. Everything they are checked against
//! comes from `corpus/wechat/expected.json`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use proptest::collection::vec;
use proptest::prelude::*;
use prost::Message as _;
use prost_reflect::{DynamicMessage, Value as PValue};
use serde_json::{json, Value as Json};

use syncscope::body::identify::{self, Identify, IdentifyReason, Tail};
use syncscope::body::protobuf::{
    decode_raw, encode_bytes_field, encode_raw, encode_varint_field, BytesKind, Fields, RawReason,
    SchemaError, Schemas, Value,
};
use syncscope::body::synckey::{Form, SyncKey};

use crate::common;

/// Frame 411 (conn 31, c2s): the identify body, 514 bytes.
const IDENTIFY_BODY_HEX: &str = concat!(
    "5de33f610f21f28108301208080110dcb7b686031208080210cebab686031208080310a6b5b686031208080410a6b5b6",
    "86031208080510a6b5b686031204080610001204080710001204080810001208080910a6b5b686031204080a10001208",
    "080b10a6b5b686031204080d10001208080e10a6b5b686031208081010a6b5b686031208081110a6b5b6860312060813",
    "10a88a021204081410001204081510001208081610a6b5b686031208081710ceaab5ab061208081810c0f0b9ab061208",
    "081910cebab686031204081a10001205081b10f323120408651000120408661000120408671000120408681000120408",
    "6910001204086a10001204086b10001204086c10001204086d10001204086f1000120408701000120408721000120408",
    "7a1000120908c90110bef0b9ab06120508ca011000120508cb011000120508cc011000120508cd011000120508ce0110",
    "6d120508cf011000120908e8071085a6b9ab06120908e90710b6c2b9ab06120908d10f108ed8b5ab06120908d30f1094",
    "b9b7ab0628001737656e5f55530000000000000200000001000000013436383836363332613563383763623130653363",
    "36303835323235306138663300000042473657735379534765757a6f435a326b72687325324270466d356c564e6e7536",
    "44436e747a7255436c4165476f467342546669597256656746617941253344253344",
);

/// Frame 413 (conn 31, s2c): the identify response body, 118 bytes.
const IDENTIFY_RESPONSE_HEX: &str = concat!(
    "0000000200000000000000000000000034363838363633326135633837636231306533633630383532323530613866",
    "3300000042473657735379534765757a6f435a326b72687325324270466d777a56646e753644436e747a7257386a47",
    "37534449513444746243716c645944326641253344253344",
);

fn identify_body() -> Vec<u8> {
    hex::decode(IDENTIFY_BODY_HEX).expect("hex")
}

fn expected() -> Json {
    let path = common::shared().join("corpus/wechat/expected.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("expected.json")
}

/// The longlink frame of conn 31 with the given cmd.
fn expected_frame(cmd: u64) -> Json {
    let e = expected();
    let conns = e["longlink"].as_array().expect("longlink");
    conns
        .iter()
        .filter(|c| c["conn"] == 31)
        .flat_map(|c| c["frames"].as_array().cloned().unwrap_or_default())
        .find(|f| f["cmd"] == cmd)
        .unwrap_or_else(|| panic!("no cmd {cmd} frame on conn 31"))
}

fn wechat_proto() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("proto/wechat.proto")
}

fn hex_u32(v: &Json) -> u32 {
    let s = v.as_str().expect("hex string");
    u32::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex number")
}

// ---------------------------------------------------------------------------
// Identify against expected.json

#[test]
fn real_identify_matches_expected_json() {
    let frame = expected_frame(205);
    let exp = &frame["identify"];
    let body = identify_body();
    assert_eq!(
        body.len() as u64,
        frame["body_len"].as_u64().expect("body_len")
    );
    assert_eq!(format!("0x{:02x}", body[0]), frame["body_first_byte"]);
    assert_eq!(
        hex::encode(&body[..4]),
        exp["w1"].as_str().expect("w1")[2..]
    );
    assert_eq!(
        hex::encode(&body[4..8]),
        exp["w2"].as_str().expect("w2")[2..]
    );

    let id = Identify::decode(&body).expect("identify decodes");
    assert_eq!(u64::from(id.uin), exp["decoded_uin"].as_u64().expect("uin"));
    assert_eq!(id.uin, 1_505_495_844);
    assert_eq!(
        u64::from(id.synckey_len),
        exp["synckey_len"].as_u64().expect("len")
    );
    assert_eq!(id.client_version, hex_u32(&exp["client_version"]));
    assert_eq!(id.client_version, 0x2800_1737);
    assert_eq!(id.locale, exp["locale"].as_str().expect("locale"));
    assert_eq!(id.locale, "en_US");
    assert_eq!(id.network_id.as_deref(), exp["networkid"].as_str());
    assert_eq!(id.network_id_ctx.as_deref(), exp["networkidctx"].as_str());
    assert!(id.network_id_ctx.is_some() && id.network_id.is_some());
    let words: Vec<u32> = serde_json::from_value(exp["tail_words"].clone()).expect("words");
    assert_eq!(id.tail_words, words);
    assert_eq!(
        id.tail.len() as u64,
        exp["tail_len"].as_u64().expect("tail_len")
    );
    assert_eq!(hex::encode(&id.tail[..12]), exp["tail_hex_head"]);
    assert_eq!(Json::Bool(id.tail_fully_parsed), exp["tail_fully_parsed"]);

    // All 48 keys and values, in wire order.
    let pairs: Vec<(u32, u64)> =
        serde_json::from_value(exp["synckey"]["pairs"].clone()).expect("pairs");
    assert_eq!(pairs.len(), 48);
    assert_eq!(id.synckey.keys, pairs);
    assert_eq!(
        id.synckey_count.map(u64::from),
        exp["synckey"]["count"].as_u64()
    );
    assert!(id.synckey.is_sorted());
    assert!(!id.synckey.has_duplicate_keys());

    // Byte-for-byte re-encoding.
    assert_eq!(id.encode(), body);
    assert_eq!(id.synckey.encode(), body[8..8 + 380]);
}

#[test]
fn real_identify_synckey_is_observation_2() {
    let e = expected();
    let obs = e["synckeys"]["observations"]
        .as_array()
        .expect("observations")
        .iter()
        .find(|o| o["source"] == "longlink_identify(cmd 205)")
        .cloned()
        .expect("identify observation");
    let map: BTreeMap<String, u64> = serde_json::from_value(obs["map"].clone()).expect("map");
    let map: BTreeMap<u32, u64> = map
        .into_iter()
        .map(|(k, v)| (k.parse().expect("key id"), v))
        .collect();
    let order: Vec<u32> = serde_json::from_value(obs["wire_key_order"].clone()).expect("order");

    let body = identify_body();
    let sk = SyncKey::decode(&body[8..8 + 380]).expect("synckey");
    assert_eq!(sk.to_map(), map);
    assert_eq!(sk.keys.iter().map(|k| k.0).collect::<Vec<_>>(), order);
    assert_eq!(
        sk.keys.len() as u64,
        obs["key_count"].as_u64().expect("count")
    );
    // The same SyncKey wrapped as newsync's KeyBuf decodes the same.
    let p = SyncKey::decode_detailed(&sk.encode_keybuf()).expect("keybuf");
    assert_eq!((p.form, p.synckey.to_map()), (Form::KeyBuf, map));
}

#[test]
fn real_identify_response_tail() {
    let frame = expected_frame(1_000_000_205);
    let exp = &frame["identify_response"];
    let body = hex::decode(IDENTIFY_RESPONSE_HEX).expect("hex");
    assert_eq!(body.len() as u64, exp["len"].as_u64().expect("len"));
    let tail = Tail::parse(&body, identify::RESPONSE_WORDS);
    let words: Vec<u32> = serde_json::from_value(exp["head_words"].clone()).expect("words");
    assert_eq!(tail.words, words);
    assert_eq!(tail.network_id.as_deref(), exp["networkid"].as_str());
    assert_eq!(tail.network_id_ctx.as_deref(), exp["networkidctx"].as_str());
    assert_eq!(Json::Bool(tail.fully_parsed), exp["fully_parsed"]);
}

// ---------------------------------------------------------------------------
// Identify built from known values with the protocol.md formulas

/// The formulas exactly as protocol.md writes them, independent of the
/// crate's `encode_words`.
fn build_identify(
    uin: u32,
    keys: &[(u32, u64)],
    version: u32,
    locale: &[u8],
    tail: &[u8],
) -> Vec<u8> {
    let mut sk = Vec::new();
    encode_varint_field(1, keys.len() as u64, &mut sk);
    for &(k, v) in keys {
        let mut kv = Vec::new();
        encode_varint_field(1, u64::from(k), &mut kv);
        encode_varint_field(2, v, &mut kv);
        encode_bytes_field(2, &kv, &mut sk);
    }
    let synckey_len = sk.len() as u32;
    let w1: u32 = ((uin >> 13) & 0x7FFFF | synckey_len << 19) ^ 0x5601F281;
    let w2: u32 = 0x5601F281 ^ (((synckey_len >> 13) & 0x7FFFF) | uin << 19);
    let mut body = Vec::new();
    body.extend_from_slice(&w1.to_be_bytes());
    body.extend_from_slice(&w2.to_be_bytes());
    body.extend_from_slice(&sk);
    body.extend_from_slice(&version.to_be_bytes());
    let mut loc = [0u8; 8];
    loc[..locale.len()].copy_from_slice(locale);
    body.extend_from_slice(&loc);
    body.extend_from_slice(tail);
    body
}

fn sample_tail() -> Vec<u8> {
    let mut t = Vec::new();
    for w in [2u32, 1, 1] {
        t.extend_from_slice(&w.to_be_bytes());
    }
    t.extend_from_slice(b"0123456789abcdef0123456789abcdef");
    let ctx = b"abc%2Bdef%3D%3D";
    t.extend_from_slice(&(ctx.len() as u32).to_be_bytes());
    t.extend_from_slice(ctx);
    t
}

#[test]
fn constructed_identify_round_trips() {
    let keys = [
        (1, 818_781_148),
        (2, 818_781_518),
        (19, 34_088),
        (24, 1_701_738_560),
        (27, 4_595),
        (101, 0),
        (206, 109),
        (1000, 1_701_729_029),
        (2003, 1_701_698_708),
    ];
    let tail = sample_tail();
    let body = build_identify(1_505_495_844, &keys, 0x2800_1737, b"en_US", &tail);
    let id = Identify::decode(&body).expect("decodes");
    assert_eq!(id.uin, 1_505_495_844);
    assert_eq!(id.synckey.keys, keys);
    assert_eq!(id.synckey_count, Some(keys.len() as u32));
    assert_eq!(id.client_version, 0x2800_1737);
    assert_eq!(id.locale, "en_US");
    assert_eq!(id.tail_words, [2, 1, 1]);
    assert_eq!(
        id.network_id.as_deref(),
        Some("0123456789abcdef0123456789abcdef")
    );
    assert_eq!(id.network_id_ctx.as_deref(), Some("abc%2Bdef%3D%3D"));
    assert!(id.tail_fully_parsed);
    assert_eq!(id.tail, tail);
    assert_eq!(id.encode(), body);

    // A bare body (no tail, as before 2023) and an 8-byte locale.
    let body = build_identify(7, &keys[..2], 1, b"zh_CN_xx", &[]);
    let id = Identify::decode(&body).expect("decodes");
    assert_eq!((id.uin, id.locale.as_str()), (7, "zh_CN_xx"));
    assert_eq!((id.tail_words.len(), id.network_id.clone()), (0, None));
    assert_eq!(id.encode(), body);

    // JSON report shape.
    let j = serde_json::to_value(&id).expect("json");
    assert_eq!(j["synckey"]["keys"][0], json!([1, 818_781_148]));
    assert_eq!(j["tail"], "");
}

#[test]
fn identify_tail_garbage_never_fails() {
    let keys = [(1, 5), (2, 6)];
    for tail in [
        vec![0xff; 3],
        vec![0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0xfe],
        vec![
            0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, b'a', 0xff, 0xff, 0xff, 0xff,
        ],
    ] {
        let body = build_identify(1, &keys, 2, b"en", &tail);
        let id = Identify::decode(&body).expect("tail never fails");
        assert!(!id.tail_fully_parsed);
        assert_eq!(id.tail, tail);
    }
}

#[test]
fn identify_rejects_a_bad_synckey() {
    // w1/w2 announce 3 bytes: 0x08 0x01 0x17 (wire type 7).
    let (w1, w2) = identify::encode_words(1, 3);
    let mut body = Vec::new();
    body.extend_from_slice(&w1.to_be_bytes());
    body.extend_from_slice(&w2.to_be_bytes());
    body.extend_from_slice(&[0x08, 0x01, 0x17]);
    body.extend_from_slice(&[0; 12]);
    let e = Identify::decode(&body).unwrap_err();
    assert_eq!(e.offset, 10);
    assert!(matches!(e.reason, IdentifyReason::SyncKey(_)), "{e}");
}

#[test]
fn identify_every_truncated_prefix() {
    let body = identify_body();
    let fixed = 8 + 380 + 12;
    for n in 0..body.len() {
        let r = Identify::decode(&body[..n]);
        if n < fixed {
            let e = r.expect_err("the fixed part is incomplete");
            assert!(e.offset <= n, "prefix {n}: {e}");
        } else {
            let id = r.unwrap_or_else(|e| panic!("prefix {n}: {e}"));
            assert_eq!((id.uin, id.synckey.keys.len()), (1_505_495_844, 48));
            assert_eq!(id.tail.len(), n - fixed);
            // The context string is last: only the whole body has it.
            assert!(id.network_id_ctx.is_none(), "prefix {n}");
        }
    }
    assert!(Identify::decode(&body).expect("full").tail_fully_parsed);
}

// ---------------------------------------------------------------------------
// Schema-less decoding

#[test]
fn decode_raw_real_synckey() {
    let body = identify_body();
    let fields = decode_raw(&body[8..388]).expect("decodes");
    assert_eq!(fields.len(), 49);
    let j = serde_json::to_string(&Fields(&fields)).expect("json");
    assert!(
        j.starts_with(r#"{"1":48,"2":[{"1":1,"2":818781148},{"1":2,"2":818781518},"#),
        "{j}"
    );
    // The whole identify body is not a protobuf message.
    assert!(decode_raw(&body).is_err());
}

#[test]
fn decode_raw_every_truncated_prefix() {
    let body = identify_body();
    let mut samples = vec![body[8..388].to_vec(), sample_message(), nested_groups()];
    samples.push(body.clone());
    for s in &samples {
        for n in 0..=s.len() {
            let _ = decode_raw(&s[..n]);
            let _ = SyncKey::decode(&s[..n]);
        }
    }
    // Errors point into the prefix (or just past it, for a value cut short).
    let sk = &body[8..388];
    for n in 1..sk.len() {
        if let Err(e) = decode_raw(&sk[..n]) {
            assert!(e.offset <= n, "prefix {n}: {e}");
        }
    }
    assert_eq!(
        decode_raw(&sk[..4]).unwrap_err().reason,
        RawReason::Truncated {
            what: "length-delimited",
            needed: 8,
            available: 0
        }
    );
}

fn sample_message() -> Vec<u8> {
    let mut inner = Vec::new();
    encode_varint_field(1, 150, &mut inner);
    encode_bytes_field(2, b"hello", &mut inner);
    encode_bytes_field(3, &[0x00, 0xff, 0x10], &mut inner);
    let mut m = Vec::new();
    encode_varint_field(1, u64::MAX, &mut m);
    encode_bytes_field(2, &inner, &mut m);
    m.extend_from_slice(&[0x1d, 1, 2, 3, 4, 0x21, 1, 2, 3, 4, 5, 6, 7, 8]);
    encode_bytes_field(5, &inner, &mut m);
    m
}

fn nested_groups() -> Vec<u8> {
    // 1: group { 2: group { 3: 7 } }, 4: 1
    vec![0x0b, 0x13, 0x18, 0x07, 0x14, 0x0c, 0x20, 0x01]
}

#[test]
fn decode_raw_sample_shape() {
    let m = sample_message();
    let j = serde_json::to_string(&Fields(&decode_raw(&m).expect("decodes"))).expect("json");
    assert_eq!(
        j,
        concat!(
            r#"{"1":18446744073709551615,"2":{"1":150,"2":"hello","3":{"hex":"00ff10","len":3,"entropy":1.58}},"#,
            r#""3":"0x04030201","4":"0x0807060504030201","5":{"1":150,"2":"hello","3":{"hex":"00ff10","len":3,"entropy":1.58}}}"#
        )
    );
}

// ---------------------------------------------------------------------------
// Schemas

fn schemas() -> Schemas {
    Schemas::compile(&[wechat_proto()], &[]).expect("proto/wechat.proto compiles")
}

#[test]
fn wechat_proto_compiles_and_lists_messages() {
    let names = schemas().message_names();
    for n in [
        "micromsg.SyncKey",
        "micromsg.KeyVal",
        "micromsg.SKBuiltinBuffer_t",
        "micromsg.NewSyncRequest",
        "micromsg.NewSyncResponse",
        "micromsg.CmdList",
        "micromsg.CmdItem",
        "micromsg.AddMsg",
    ] {
        assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
    }
}

#[test]
fn schema_decodes_the_real_synckey() {
    let body = identify_body();
    let j = schemas()
        .decode("micromsg.SyncKey", &body[8..388])
        .expect("decodes");
    assert_eq!(j["KeyCount"], 48);
    let keys = j["Key"].as_array().expect("Key");
    assert_eq!(keys.len(), 48);
    let pairs: Vec<(u64, u64)> =
        serde_json::from_value(expected_frame(205)["identify"]["synckey"]["pairs"].clone())
            .expect("pairs");
    for (kv, (k, v)) in keys.iter().zip(pairs) {
        assert_eq!(kv["Key"], k);
        // Val 0 is explicit on the wire (proto2), so it is present.
        assert_eq!(kv["Val"], v);
    }
}

#[test]
fn schema_decodes_a_hand_encoded_newsync_response() {
    // AddMsg {1: 42, 2: {1: "wxid_a"}, 3: {1: "wxid_b"}, 4: 1, 5: {1: "hi"},
    //         9: 1701738560, 12: 7000000000000000001, 99: "extra"}
    let mut s = Vec::new();
    let mut addmsg = Vec::new();
    encode_varint_field(1, 42, &mut addmsg);
    for (n, text) in [(2, "wxid_a"), (3, "wxid_b")] {
        s.clear();
        encode_bytes_field(1, text.as_bytes(), &mut s);
        encode_bytes_field(n, &s, &mut addmsg);
    }
    encode_varint_field(4, 1, &mut addmsg);
    s.clear();
    encode_bytes_field(1, b"hi", &mut s);
    encode_bytes_field(5, &s, &mut addmsg);
    encode_varint_field(9, 1_701_738_560, &mut addmsg);
    encode_varint_field(12, 7_000_000_000_000_000_001, &mut addmsg);
    encode_bytes_field(99, b"extra", &mut addmsg);

    let mut cmdbuf = Vec::new();
    encode_varint_field(1, addmsg.len() as u64, &mut cmdbuf);
    encode_bytes_field(2, &addmsg, &mut cmdbuf);
    let mut item = Vec::new();
    encode_varint_field(1, 5, &mut item);
    encode_bytes_field(2, &cmdbuf, &mut item);
    let mut cmdlist = Vec::new();
    encode_varint_field(1, 1, &mut cmdlist);
    encode_bytes_field(2, &item, &mut cmdlist);
    let keybuf = SyncKey {
        keys: vec![(1, 818_781_148), (2, 818_781_518)],
    }
    .encode_keybuf();
    let mut resp = Vec::new();
    encode_varint_field(1, 0, &mut resp);
    encode_bytes_field(2, &cmdlist, &mut resp);
    encode_varint_field(3, 0, &mut resp);
    encode_bytes_field(4, &keybuf, &mut resp);
    encode_varint_field(5, 0, &mut resp);

    let sch = schemas();
    let j = sch.decode("NewSyncResponse", &resp).expect("decodes");
    assert_eq!(j["Ret"], 0);
    assert_eq!(j["CmdList"]["Count"], 1);
    let item = &j["CmdList"]["List"][0];
    assert_eq!(item["CmdId"], 5);
    let buf = &item["CmdBuf"];
    assert_eq!(buf["iLen"], addmsg.len());
    // The SyncKey inside KeyBuf.Buffer is bytes to the schema: decode it.
    let kb = SyncKey::decode(&keybuf).expect("keybuf");
    assert_eq!(kb.keys, [(1, 818_781_148), (2, 818_781_518)]);

    let msg = sch.decode("micromsg.AddMsg", &addmsg).expect("AddMsg");
    assert_eq!(
        msg,
        json!({
            "MsgId": 42,
            "FromUserName": {"String": "wxid_a"},
            "ToUserName": {"String": "wxid_b"},
            "MsgType": 1,
            "Content": {"String": "hi"},
            "CreateTime": 1_701_738_560u32,
            "NewMsgId": 7_000_000_000_000_000_001i64,
            "_unknown": {"99": "extra"}
        })
    );
}

#[test]
fn schema_decodes_a_dynamic_message_encoding() {
    let sch = schemas();
    let desc = sch.message("NewSyncRequest").expect("found by short name");
    let mut req = DynamicMessage::new(desc);
    req.set_field_by_name("Selector", PValue::U32(7));
    req.set_field_by_name("Scene", PValue::U32(3));
    req.set_field_by_name("DeviceType", PValue::String("android-34".into()));
    let keybuf_desc = sch.message("micromsg.SKBuiltinBuffer_t").expect("found");
    let mut kb = DynamicMessage::new(keybuf_desc);
    let sk = SyncKey {
        keys: vec![(1, 1), (201, 1_701_738_558)],
    }
    .encode();
    kb.set_field_by_name("iLen", PValue::U32(sk.len() as u32));
    kb.set_field_by_name("Buffer", PValue::Bytes(sk.clone().into()));
    req.set_field_by_name("KeyBuf", PValue::Message(kb));
    let bytes = req.encode_to_vec();

    let j = sch
        .decode(".micromsg.NewSyncRequest", &bytes)
        .expect("decodes");
    assert_eq!(j["Selector"], 7);
    assert_eq!(j["Scene"], 3);
    assert_eq!(j["DeviceType"], "android-34");
    assert_eq!(j["KeyBuf"]["iLen"], sk.len());
    assert!(j.get("_unknown").is_none());
    // The same bytes schema-less: field 3 is a nested message.
    let raw = decode_raw(&bytes).expect("raw");
    let f3 = raw.iter().find(|f| f.number == 3).expect("field 3");
    assert!(matches!(&f3.value, Value::Bytes(b) if matches!(b.kind, BytesKind::Message(_))));
    let p = SyncKey::decode_detailed(match &f3.value {
        Value::Bytes(b) => b.raw,
        _ => unreachable!(),
    })
    .expect("keybuf");
    assert_eq!(
        (p.form, p.synckey.keys),
        (Form::KeyBuf, vec![(1, 1), (201, 1_701_738_558)])
    );
}

#[test]
fn schema_errors_are_clear() {
    // Missing file.
    let missing = PathBuf::from("/nonexistent/dir/none.proto");
    let e = Schemas::compile(&[missing], &[]).unwrap_err();
    assert!(matches!(e, SchemaError::FileNotFound { .. }), "{e}");
    assert!(e.to_string().contains("none.proto"), "{e}");
    assert!(matches!(
        Schemas::compile(&[], &[]).unwrap_err(),
        SchemaError::NoFiles
    ));

    // Syntax error: file:line:col.
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.proto");
    std::fs::write(
        &bad,
        "syntax = \"proto2\";\nmessage A {\n  optional int32 x = ;\n}\n",
    )
    .expect("write");
    let e = Schemas::compile(&[bad], &[]).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, SchemaError::Compile { .. }), "{text}");
    assert!(text.contains("bad.proto:3:"), "{text}");

    // Missing import.
    let imp = dir.path().join("imp.proto");
    std::fs::write(&imp, "syntax = \"proto3\";\nimport \"nope.proto\";\n").expect("write");
    let text = Schemas::compile(&[imp], &[]).unwrap_err().to_string();
    assert!(text.contains("nope.proto"), "{text}");

    // Unknown message name with close matches.
    let sch = schemas();
    let e = sch.decode("Synckey", &[]).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("micromsg.SyncKey"), "{text}");
    match e {
        SchemaError::UnknownMessage { close, .. } => assert_eq!(close[0], "micromsg.SyncKey"),
        other => panic!("{other}"),
    }
    let e = sch.decode("NewSync", &[]).unwrap_err();
    assert!(e.to_string().contains("micromsg.NewSyncRequest"), "{e}");

    // Bytes that are not the message.
    let e = sch
        .decode("micromsg.SyncKey", &[0x12, 0x05, 0x08])
        .unwrap_err();
    assert!(matches!(e, SchemaError::Decode { .. }), "{e}");
    assert!(e.to_string().contains("micromsg.SyncKey"), "{e}");
}

#[test]
fn schema_with_include_dir_and_relative_name() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("proto");
    let sch = Schemas::compile(&[PathBuf::from("wechat.proto")], &[dir]).expect("compiles");
    assert!(sch.message("micromsg.KeyVal").is_ok());
}

// ---------------------------------------------------------------------------
// Properties

#[derive(Debug, Clone)]
enum Gen {
    Varint(u64),
    Bytes(Vec<u8>),
}

fn gen_field() -> impl Strategy<Value = (u32, Gen)> {
    (
        1u32..=536_870_911,
        prop_oneof![
            any::<u64>().prop_map(Gen::Varint),
            vec(any::<u8>(), 0..40).prop_map(Gen::Bytes),
        ],
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..400)) {
        if let Ok(fields) = decode_raw(&bytes) {
            let _ = serde_json::to_string(&Fields(&fields)).expect("json");
            // Re-emitting gives bytes that decode to the same tree.
            let again = encode_raw(&fields);
            prop_assert_eq!(decode_raw(&again).expect("re-decodes"), fields);
        }
        let _ = SyncKey::decode(&bytes);
        let _ = Identify::decode(&bytes);
        let _ = Tail::parse(&bytes, 3);
    }

    #[test]
    fn random_bytes_behind_real_words_never_panic(len in 0u32..64, rest in vec(any::<u8>(), 0..120)) {
        let (w1, w2) = identify::encode_words(1_505_495_844, len);
        let mut body = w1.to_be_bytes().to_vec();
        body.extend_from_slice(&w2.to_be_bytes());
        body.extend_from_slice(&rest);
        let _ = Identify::decode(&body);
    }

    #[test]
    fn encoded_fields_decode_back(fields in vec(gen_field(), 0..20)) {
        let mut bytes = Vec::new();
        for (n, g) in &fields {
            match g {
                Gen::Varint(v) => encode_varint_field(*n, *v, &mut bytes),
                Gen::Bytes(b) => encode_bytes_field(*n, b, &mut bytes),
            }
        }
        let decoded = decode_raw(&bytes).expect("decodes");
        prop_assert_eq!(decoded.len(), fields.len());
        for (d, (n, g)) in decoded.iter().zip(&fields) {
            prop_assert_eq!(d.number, *n);
            match (&d.value, g) {
                (Value::Varint(a), Gen::Varint(b)) => prop_assert_eq!(a, b),
                (Value::Bytes(a), Gen::Bytes(b)) => prop_assert_eq!(a.raw, b.as_slice()),
                (a, b) => prop_assert!(false, "{:?} decoded as {:?}", b, a),
            }
        }
        prop_assert_eq!(encode_raw(&decoded), bytes);
    }

    #[test]
    fn synckey_round_trips(keys in vec((any::<u32>(), any::<u64>()), 0..60)) {
        let sk = SyncKey { keys };
        let p = SyncKey::decode_detailed(&sk.encode()).expect("plain");
        prop_assert_eq!(p.form, Form::Plain);
        prop_assert_eq!(&p.synckey, &sk);
        let p = SyncKey::decode_detailed(&sk.encode_keybuf()).expect("keybuf");
        prop_assert_eq!(p.form, Form::KeyBuf);
        prop_assert_eq!(&p.synckey, &sk);
    }

    #[test]
    fn identify_round_trips(
        uin in any::<u32>(),
        keys in vec((any::<u32>(), any::<u64>()), 0..50),
        version in any::<u32>(),
        locale in "[a-z]{2}(_[A-Z]{2})?",
        tail in vec(any::<u8>(), 0..80),
    ) {
        let body = build_identify(uin, &keys, version, locale.as_bytes(), &tail);
        let id = Identify::decode(&body).expect("decodes");
        prop_assert_eq!(id.uin, uin);
        prop_assert_eq!(&id.synckey.keys, &keys);
        prop_assert_eq!(id.client_version, version);
        prop_assert_eq!(&id.locale, &locale);
        prop_assert_eq!(&id.tail, &tail);
        prop_assert_eq!(id.encode(), body);
    }
}
