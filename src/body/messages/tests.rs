//! The structs against proto/wechat.proto, and the lenient reading against
//! the strict one.

use prost::Message;

use super::*;
use crate::body::protobuf::Schemas;
use crate::body::synckey::SyncKey;

/// The structs here and proto/wechat.proto must describe the same bytes.
#[test]
fn structs_agree_with_the_proto_file() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("proto/wechat.proto");
    let schemas = Schemas::compile(&[path], &[]).expect("proto/wechat.proto compiles");
    let add = AddMsg {
        msg_id: Some(3),
        from_user_name: Some(SkBuiltinString::new("alice")),
        to_user_name: Some(SkBuiltinString::new("bob")),
        msg_type: Some(1),
        content: Some(SkBuiltinString::new("hi")),
        create_time: Some(1_700_000_000),
        new_msg_id: Some(3),
        client_msg_id: Some("42".into()),
        msg_seq: Some(7),
    };
    let send = NewSendMsgRequest {
        count: Some(1),
        list: vec![MicroMsgRequestNew {
            to_user_name: Some(SkBuiltinString::new("bob")),
            content: Some("hi".into()),
            msg_type: Some(1),
            create_time: Some(1),
            client_msg_id: Some(u64::MAX),
        }],
    };
    let sent = NewSendMsgResponse {
        base_response: Some(BaseResponse::error(0, "")),
        count: Some(1),
        list: vec![MicroMsgResponseNew {
            ret: Some(0),
            to_user_name: Some(SkBuiltinString::new("bob")),
            msg_id: Some(3),
            client_msg_id: Some(u64::MAX),
            create_time: Some(1),
            server_time: Some(2),
            msg_type: Some(1),
            new_msg_id: Some(3),
        }],
    };
    let sync = NewSyncResponse {
        ret: Some(0),
        cmd_list: Some(CmdList {
            count: Some(1),
            list: vec![CmdItem {
                cmd_id: Some(5),
                cmd_buf: Some(SkBuiltinBuffer::new(add.encode_to_vec())),
            }],
        }),
        continue_flag: Some(1),
        key_buf: Some(keybuf(&SyncKey { keys: vec![(2, 5)] })),
        status: Some(0),
    };
    let req = NewSyncRequest {
        oplog: None,
        selector: Some(7),
        key_buf: Some(keybuf(&SyncKey::default())),
        scene: Some(7),
        device_type: Some("syncscope".into()),
    };
    let check = |name: &str, bytes: Vec<u8>, expect: serde_json::Value| {
        let msg = schemas
            .message(&format!("micromsg.{name}"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let dm = prost_reflect::DynamicMessage::decode(msg, bytes.as_slice())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            dm.unknown_fields().next().is_none(),
            "{name} has fields the .proto does not declare"
        );
        let json = serde_json::to_value(&dm).expect("json");
        for (k, v) in expect.as_object().expect("object") {
            assert_eq!(&json[k], v, "{name}.{k} in {json}");
        }
    };
    check(
        "AddMsg",
        add.encode_to_vec(),
        serde_json::json!({"MsgId": 3, "ClientMsgId": "42", "NewMsgId": "3", "CreateTime": 1_700_000_000}),
    );
    check(
        "NewSendMsgRequest",
        send.encode_to_vec(),
        serde_json::json!({"Count": 1}),
    );
    check(
        "NewSendMsgResponse",
        sent.encode_to_vec(),
        serde_json::json!({"Count": 1}),
    );
    check(
        "NewSyncResponse",
        sync.encode_to_vec(),
        serde_json::json!({"Ret": 0, "ContinueFlag": 1}),
    );
    check(
        "NewSyncRequest",
        req.encode_to_vec(),
        serde_json::json!({"Selector": 7, "DeviceType": "syncscope"}),
    );
    check(
        "BaseResponse",
        BaseResponse::error(-4, "bad").encode_to_vec(),
        serde_json::json!({"Ret": -4}),
    );
    // Field names of nested items too.
    let dm = prost_reflect::DynamicMessage::decode(
        schemas.message("micromsg.NewSendMsgRequest").expect("msg"),
        send.encode_to_vec().as_slice(),
    )
    .expect("decode");
    let json = serde_json::to_value(&dm).expect("json");
    assert_eq!(json["List"][0]["ClientMsgId"], u64::MAX.to_string());
    assert_eq!(json["List"][0]["ToUserName"]["String"], "bob");
    let dm = prost_reflect::DynamicMessage::decode(
        schemas.message("micromsg.NewSendMsgResponse").expect("msg"),
        sent.encode_to_vec().as_slice(),
    )
    .expect("decode");
    let json = serde_json::to_value(&dm).expect("json");
    assert_eq!(json["List"][0]["ServerTime"], 2);
    assert_eq!(json["List"][0]["NewMsgId"], "3");
    assert_eq!(json["BaseResponse"]["ErrMsg"]["String"], "");
    // The auth messages.
    let json_of = |name: &str, bytes: Vec<u8>| {
        let dm = prost_reflect::DynamicMessage::decode(
            schemas.message(name).expect("msg"),
            bytes.as_slice(),
        )
        .expect("decode");
        serde_json::to_value(&dm).expect("json")
    };
    const CLIENT_VERSION: u32 = 0x1800_0000;
    let manual = ManualAuthRequest {
        user_name: Some(SkBuiltinString::new("alice")),
        device_id: Some("phone".into()),
        client_version: Some(CLIENT_VERSION),
        password: Some("secret".into()),
    };
    let j = json_of("micromsg.ManualAuthRequest", manual.encode_to_vec());
    assert_eq!(j["UserName"]["String"], "alice");
    assert_eq!(j["Password"], "secret");
    assert_eq!(j["DeviceId"], "phone");
    assert_eq!(j["ClientVersion"], CLIENT_VERSION);
    let answer = ManualAuthResponse {
        base_response: Some(BaseResponse::error(0, "")),
        uin: Some(7),
        auto_auth_key: Some(vec![1, 2, 3]),
    };
    let j = json_of("micromsg.ManualAuthResponse", answer.encode_to_vec());
    assert_eq!(
        (j["Uin"].clone(), j["AutoAuthKey"].clone()),
        (7.into(), "AQID".into())
    );
    let auto = AutoAuthRequest {
        uin: Some(7),
        auto_auth_key: Some(vec![1, 2, 3]),
        device_id: Some("phone".into()),
    };
    let j = json_of("micromsg.AutoAuthRequest", auto.encode_to_vec());
    assert_eq!(
        (j["Uin"].clone(), j["DeviceId"].clone()),
        (7.into(), "phone".into())
    );
    let j = json_of(
        "micromsg.AutoAuthResponse",
        AutoAuthResponse {
            base_response: Some(BaseResponse::error(-6, "no")),
            uin: Some(0),
        }
        .encode_to_vec(),
    );
    assert_eq!(j["BaseResponse"]["Ret"], -6);
    let j = json_of(
        "micromsg.WebLoginConfirmRequest",
        WebLoginConfirmRequest {
            uuid: Some("ab12".into()),
        }
        .encode_to_vec(),
    );
    assert_eq!(j["Uuid"], "ab12");
    let j = json_of(
        "micromsg.WebLoginConfirmResponse",
        WebLoginConfirmResponse {
            base_response: Some(BaseResponse::error(-12, "no such login")),
        }
        .encode_to_vec(),
    );
    assert_eq!(j["BaseResponse"]["Ret"], -12);
}

/// The `FIELD_*` numbers the lenient reader uses are the prost tags.
#[test]
fn field_numbers_agree_with_the_prost_tags() {
    let first = |bytes: Vec<u8>| {
        crate::body::protobuf::WireReader::new(&bytes)
            .next()
            .expect("a field")
            .expect("well-formed")
            .number
    };
    let buf = |i_len, buffer| SkBuiltinBuffer { i_len, buffer };
    assert_eq!(
        first(buf(Some(1), None).encode_to_vec()),
        SkBuiltinBuffer::FIELD_I_LEN
    );
    assert_eq!(
        first(buf(None, Some(vec![1])).encode_to_vec()),
        SkBuiltinBuffer::FIELD_BUFFER
    );
    let item = CmdItem {
        cmd_id: None,
        cmd_buf: None,
    };
    assert_eq!(
        first(
            CmdList {
                count: None,
                list: vec![item.clone()]
            }
            .encode_to_vec()
        ),
        CmdList::FIELD_LIST
    );
    let with_id = CmdItem {
        cmd_id: Some(5),
        ..item.clone()
    };
    assert_eq!(first(with_id.encode_to_vec()), CmdItem::FIELD_CMD_ID);
    let with_buf = CmdItem {
        cmd_buf: Some(buf(None, None)),
        ..item
    };
    assert_eq!(first(with_buf.encode_to_vec()), CmdItem::FIELD_CMD_BUF);
    let req = NewSyncRequest {
        key_buf: Some(buf(None, None)),
        ..Default::default()
    };
    assert_eq!(first(req.encode_to_vec()), NewSyncRequest::FIELD_KEY_BUF);
    let resp = NewSyncResponse {
        key_buf: Some(buf(None, None)),
        ..Default::default()
    };
    assert_eq!(first(resp.encode_to_vec()), NewSyncResponse::FIELD_KEY_BUF);
    let resp = NewSyncResponse {
        cmd_list: Some(CmdList::default()),
        ..Default::default()
    };
    assert_eq!(first(resp.encode_to_vec()), NewSyncResponse::FIELD_CMD_LIST);
    let add = AddMsg {
        msg_id: Some(1),
        ..Default::default()
    };
    assert_eq!(first(add.encode_to_vec()), AddMsg::FIELD_MSG_ID);
    let add = AddMsg {
        new_msg_id: Some(1),
        ..Default::default()
    };
    assert_eq!(first(add.encode_to_vec()), AddMsg::FIELD_NEW_MSG_ID);
}

pub(crate) mod lenient_reading {
    use prost::Message;

    use super::super::lenient::{
        keybuf_synckey, newsync_request_synckey, newsync_response_msg_ids, newsync_response_synckey,
    };
    use super::super::*;
    use crate::body::protobuf::{encode_bytes_field, encode_varint_field};
    use crate::body::synckey::{KeyMap, SyncKey};

    /// An AddMsg with this MsgId from "alice" (also used by the analyzer's tests).
    pub(crate) fn add_msg(id: u64) -> Vec<u8> {
        let mut from = Vec::new();
        encode_bytes_field(1, b"alice", &mut from);
        let mut m = Vec::new();
        encode_varint_field(1, id, &mut m);
        encode_bytes_field(2, &from, &mut m);
        m
    }

    fn item(cmd_id: u64, buf: &[u8]) -> Vec<u8> {
        let mut item = Vec::new();
        encode_varint_field(1, cmd_id, &mut item);
        encode_bytes_field(2, buf, &mut item);
        item
    }

    fn wrapped(len: u64, msg: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        encode_varint_field(1, len, &mut buf);
        encode_bytes_field(2, msg, &mut buf);
        buf
    }

    fn cmdlist(items: &[Vec<u8>]) -> Vec<u8> {
        let mut l = Vec::new();
        encode_varint_field(1, items.len() as u64, &mut l);
        for it in items {
            encode_bytes_field(2, it, &mut l);
        }
        l
    }

    fn key() -> SyncKey {
        SyncKey {
            keys: vec![(1, 10), (2, 20)],
        }
    }

    /// Ret, CmdList, KeyBuf; the two AddMsg items one wrapped, one not.
    /// Returns the body and where the CmdList field ends.
    fn response() -> (Vec<u8>, usize) {
        let a = add_msg(41);
        let items = [item(5, &wrapped(a.len() as u64, &a)), item(5, &add_msg(42))];
        let mut resp = Vec::new();
        encode_varint_field(1, 0, &mut resp);
        encode_bytes_field(2, &cmdlist(&items), &mut resp);
        let cmdlist_end = resp.len();
        encode_bytes_field(4, &key().encode_keybuf(), &mut resp);
        (resp, cmdlist_end)
    }

    #[test]
    fn msg_ids_and_keybuf_of_a_response() {
        let (resp, _) = response();
        assert_eq!(newsync_response_msg_ids(&resp), ["41", "42"]);
        assert_eq!(
            newsync_response_synckey(&resp),
            Some(KeyMap::from([(1, 10), (2, 20)]))
        );
        assert_eq!(keybuf_synckey(&resp, 4), newsync_response_synckey(&resp));
        assert_eq!(newsync_response_msg_ids(b"garbage"), Vec::<String>::new());
        assert_eq!(newsync_response_synckey(b"garbage"), None);
    }

    /// What the server sends (the prost structs) reads back the same way.
    #[test]
    fn server_bodies_read_back() {
        let add = AddMsg {
            msg_id: Some(7),
            new_msg_id: Some(9),
            ..Default::default()
        };
        let resp = NewSyncResponse {
            ret: Some(0),
            cmd_list: Some(CmdList {
                count: Some(2),
                list: vec![
                    CmdItem {
                        cmd_id: Some(CMDID_ADDMSG),
                        cmd_buf: Some(SkBuiltinBuffer::new(add.encode_to_vec())),
                    },
                    CmdItem {
                        cmd_id: Some(CMDID_ADDMSG),
                        cmd_buf: Some(SkBuiltinBuffer::new(
                            AddMsg {
                                new_msg_id: Some(10),
                                ..Default::default()
                            }
                            .encode_to_vec(),
                        )),
                    },
                ],
            }),
            continue_flag: Some(0),
            key_buf: Some(keybuf(&key())),
            status: Some(0),
        }
        .encode_to_vec();
        assert_eq!(newsync_response_msg_ids(&resp), ["7", "10"]);
        // The server's KeyBuf is SyncKey's own wrapper encoding.
        assert_eq!(keybuf(&key()).encode_to_vec(), key().encode_keybuf());
        assert_eq!(newsync_response_synckey(&resp), Some(key().to_map()));
        let req = NewSyncRequest {
            selector: Some(7),
            key_buf: Some(keybuf(&key())),
            ..Default::default()
        }
        .encode_to_vec();
        assert_eq!(newsync_request_synckey(&req), Some(key().to_map()));
        // The request's KeyBuf is field 3: read as a response, nothing.
        assert_eq!(newsync_response_synckey(&req), None);
        let empty = NewSyncRequest {
            key_buf: Some(keybuf(&SyncKey::default())),
            ..Default::default()
        };
        assert_eq!(
            newsync_request_synckey(&empty.encode_to_vec()),
            Some(KeyMap::new())
        );
    }

    /// A truncated response gives something only when it is cut between
    /// two top-level fields: the MsgIds once the CmdList is whole, the
    /// SyncKey only with the KeyBuf (the last field) whole.
    #[test]
    fn truncated_responses() {
        let (resp, cmdlist_end) = response();
        for n in 0..=resp.len() {
            let cut = &resp[..n];
            let ids = if n == cmdlist_end || n == resp.len() {
                vec!["41", "42"]
            } else {
                vec![]
            };
            assert_eq!(newsync_response_msg_ids(cut), ids, "cut at {n}");
            let synckey = (n == resp.len()).then(|| key().to_map());
            assert_eq!(newsync_response_synckey(cut), synckey, "cut at {n}");
        }
    }

    /// Items that do not parse, or are not AddMsg, are skipped; the others
    /// still count, where the strict decode refuses the whole body.
    #[test]
    fn odd_items_give_partial_results() {
        let good = add_msg(1);
        let mut no_msg_id = Vec::new();
        encode_varint_field(12, 77, &mut no_msg_id);
        let negative = AddMsg {
            msg_id: Some(-1),
            ..Default::default()
        }
        .encode_to_vec();
        let mut cmd_id_as_bytes = Vec::new();
        encode_bytes_field(1, b"\x05", &mut cmd_id_as_bytes);
        encode_bytes_field(2, &good, &mut cmd_id_as_bytes);
        let mut no_buf = Vec::new();
        encode_varint_field(1, 5, &mut no_buf);
        let items = [
            item(5, &good),
            // Not an AddMsg.
            item(2, &add_msg(2)),
            // The AddMsg is cut short.
            item(5, &good[..good.len() - 1]),
            no_buf,
            // The item itself does not parse.
            vec![0x08],
            cmd_id_as_bytes,
            // No MsgId: the NewMsgId.
            item(5, &no_msg_id),
            // A negative int32 MsgId is the varint as sent.
            item(5, &wrapped(negative.len() as u64, &negative)),
            // A wrapper whose iLen is wrong is not a wrapper: the bytes
            // are read as the AddMsg, whose field 1 is the iLen.
            item(5, &wrapped(99, &add_msg(3))),
            item(5, &add_msg(4)),
        ];
        let mut resp = Vec::new();
        encode_bytes_field(2, &cmdlist(&items), &mut resp);
        assert_eq!(
            newsync_response_msg_ids(&resp),
            ["1", "77", "18446744073709551615", "99", "4"]
        );
        assert!(NewSyncResponse::decode(resp.as_slice()).is_err());
    }

    /// A CmdList that is not well-formed as a whole gives nothing; only
    /// the first CmdList counts.
    #[test]
    fn cmdlist_level_rules() {
        let mut list = cmdlist(&[item(5, &add_msg(1))]);
        list.push(0x12); // a field 2 with no length
        let mut resp = Vec::new();
        encode_bytes_field(2, &list, &mut resp);
        assert_eq!(newsync_response_msg_ids(&resp), Vec::<String>::new());
        let mut resp = Vec::new();
        encode_varint_field(2, 1, &mut resp); // field 2, but not bytes: ignored
        encode_bytes_field(2, &cmdlist(&[item(5, &add_msg(1))]), &mut resp);
        encode_bytes_field(2, &cmdlist(&[item(5, &add_msg(2))]), &mut resp);
        assert_eq!(newsync_response_msg_ids(&resp), ["1"]);
        // Prost refuses the varint field 2.
        assert!(NewSyncResponse::decode(resp.as_slice()).is_err());
    }

    #[test]
    fn keybuf_rules() {
        let other = SyncKey {
            keys: vec![(3, 30)],
        };
        // A plain SyncKey (no wrapper) is taken too.
        let mut resp = Vec::new();
        encode_bytes_field(4, &key().encode(), &mut resp);
        assert_eq!(newsync_response_synckey(&resp), Some(key().to_map()));
        // The first length-delimited field 4 wins; a varint field 4 and a
        // Ret sent as bytes are ignored (prost refuses both).
        let mut resp = Vec::new();
        encode_bytes_field(1, b"odd", &mut resp);
        encode_varint_field(4, 1, &mut resp);
        encode_bytes_field(4, &key().encode_keybuf(), &mut resp);
        encode_bytes_field(4, &other.encode_keybuf(), &mut resp);
        assert_eq!(newsync_response_synckey(&resp), Some(key().to_map()));
        assert!(NewSyncResponse::decode(resp.as_slice()).is_err());
        // The first field 4 is not a SyncKey: nothing, even with a good one
        // after it.
        let mut resp = Vec::new();
        encode_bytes_field(4, &[0x08], &mut resp);
        encode_bytes_field(4, &key().encode_keybuf(), &mut resp);
        assert_eq!(newsync_response_synckey(&resp), None);
        // A malformed CmdList does not matter; a malformed top level does.
        let mut resp = Vec::new();
        encode_bytes_field(2, &[0x12], &mut resp);
        encode_bytes_field(4, &key().encode_keybuf(), &mut resp);
        assert_eq!(newsync_response_synckey(&resp), Some(key().to_map()));
        resp.push(0x08);
        assert_eq!(newsync_response_synckey(&resp), None);
        // The request's KeyBuf, field 3.
        let mut req = Vec::new();
        encode_varint_field(2, 7, &mut req);
        encode_bytes_field(3, &other.encode_keybuf(), &mut req);
        assert_eq!(newsync_request_synckey(&req), Some(other.to_map()));
        assert_eq!(newsync_request_synckey(&req[..req.len() - 1]), None);
    }
}

/// The media structs and proto/wechat.proto describe the same bytes:
/// every field set, none unknown to the schema, names as declared.
#[test]
fn media_structs_agree_with_the_proto_file() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("proto/wechat.proto");
    let schemas = Schemas::compile(&[path], &[]).expect("proto/wechat.proto compiles");
    let s = |v: &str| Some(SkBuiltinString::new(v));
    let b = |v: &[u8]| Some(SkBuiltinBuffer::new(v.to_vec()));
    let mut cases: Vec<(&str, Vec<u8>, serde_json::Value)> = vec![
        (
            "UploadMsgImgRequest",
            UploadMsgImgRequest {
                client_img_id: s("img1"),
                from_user_name: s("alice"),
                to_user_name: s("bob"),
                total_len: Some(3000),
                start_pos: Some(1500),
                data_len: Some(2),
                data: b(b"ab"),
                msg_type: Some(3),
            }
            .encode_to_vec(),
            serde_json::json!({"TotalLen": 3000, "StartPos": 1500, "DataLen": 2, "MsgType": 3,
                "ClientImgId": {"String": "img1"}, "Data": {"iLen": 2, "Buffer": "YWI="}}),
        ),
        (
            "UploadMsgImgResponse",
            UploadMsgImgResponse {
                base_response: Some(BaseResponse::error(0, "")),
                msg_id: Some(9),
                client_img_id: s("img1"),
                from_user_name: s("alice"),
                to_user_name: s("bob"),
                total_len: Some(3000),
                start_pos: Some(0),
                data_len: Some(2),
                create_time: Some(5),
                new_msg_id: Some(9),
                thumb: Some(b"jpg".to_vec()),
            }
            .encode_to_vec(),
            serde_json::json!({"MsgId": 9, "NewMsgId": "9", "CreateTime": 5, "Thumb": "anBn"}),
        ),
        (
            "GetMsgImgRequest",
            GetMsgImgRequest {
                msg_id: Some(9),
                from_user_name: s("alice"),
                to_user_name: s("bob"),
                total_len: Some(3000),
                start_pos: Some(8),
                data_len: Some(16),
                compress_type: Some(1),
                new_msg_id: Some(9),
            }
            .encode_to_vec(),
            serde_json::json!({"MsgId": 9, "StartPos": 8, "DataLen": 16, "CompressType": 1}),
        ),
        (
            "GetMsgImgResponse",
            GetMsgImgResponse {
                base_response: Some(BaseResponse::error(0, "")),
                msg_id: Some(9),
                from_user_name: s("alice"),
                to_user_name: s("bob"),
                total_len: Some(3000),
                start_pos: Some(8),
                data_len: Some(2),
                data: b(b"ab"),
                new_msg_id: Some(9),
            }
            .encode_to_vec(),
            serde_json::json!({"TotalLen": 3000, "Data": {"iLen": 2, "Buffer": "YWI="}}),
        ),
        (
            "UploadVoiceRequest",
            UploadVoiceRequest {
                from_user_name: Some("alice".into()),
                to_user_name: Some("bob".into()),
                offset: Some(1500),
                length: Some(2),
                client_msg_id: Some("v1".into()),
                msg_id: Some(0),
                voice_length: Some(2000),
                data: b(b"ab"),
                end_flag: Some(1),
            }
            .encode_to_vec(),
            serde_json::json!({"Offset": 1500, "Length": 2, "EndFlag": 1, "VoiceLength": 2000,
                "ToUserName": "bob", "ClientMsgId": "v1"}),
        ),
        (
            "UploadVoiceResponse",
            UploadVoiceResponse {
                from_user_name: Some("alice".into()),
                to_user_name: Some("bob".into()),
                offset: Some(1500),
                length: Some(2),
                create_time: Some(5),
                client_msg_id: Some("v1".into()),
                msg_id: Some(9),
                voice_length: Some(2000),
                end_flag: Some(1),
                base_response: Some(BaseResponse::error(0, "")),
                new_msg_id: Some(9),
            }
            .encode_to_vec(),
            serde_json::json!({"MsgId": 9, "NewMsgId": "9", "EndFlag": 1, "CreateTime": 5}),
        ),
        (
            "DownloadVoiceRequest",
            DownloadVoiceRequest {
                msg_id: Some(9),
                offset: Some(0),
                length: Some(1500),
                client_msg_id: Some("v1".into()),
                new_msg_id: Some(9),
            }
            .encode_to_vec(),
            serde_json::json!({"MsgId": 9, "Length": 1500, "NewMsgId": "9"}),
        ),
        (
            "DownloadVoiceResponse",
            DownloadVoiceResponse {
                msg_id: Some(9),
                offset: Some(0),
                length: Some(2),
                voice_length: Some(2000),
                client_msg_id: Some("v1".into()),
                data: b(b"ab"),
                end_flag: Some(1),
                base_response: Some(BaseResponse::error(0, "")),
                new_msg_id: Some(9),
            }
            .encode_to_vec(),
            serde_json::json!({"VoiceLength": 2000, "EndFlag": 1, "Data": {"iLen": 2, "Buffer": "YWI="}}),
        ),
    ];
    cases.push((
        "StatusNotifyRequest",
        StatusNotifyRequest {
            code: Some(1),
            from_user_name: Some("bob".into()),
            to_user_name: Some("alice".into()),
            client_msg_id: Some("7".into()),
            msg_id: Some(9),
        }
        .encode_to_vec(),
        serde_json::json!({"Code": 1, "ToUserName": "alice", "MsgId": "9"}),
    ));
    cases.push((
        "StatusNotifyResponse",
        StatusNotifyResponse {
            base_response: Some(BaseResponse::error(0, "")),
            msg_id: Some(3),
            new_msg_id: Some(3),
        }
        .encode_to_vec(),
        serde_json::json!({"MsgId": 3, "NewMsgId": "3"}),
    ));
    for (name, bytes, expect) in cases {
        let msg = schemas
            .message(&format!("micromsg.{name}"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let dm = prost_reflect::DynamicMessage::decode(msg, bytes.as_slice())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            dm.unknown_fields().next().is_none(),
            "{name} has fields the .proto does not declare"
        );
        let json = serde_json::to_value(&dm).expect("json");
        for (k, v) in expect.as_object().expect("object") {
            assert_eq!(&json[k], v, "{name}.{k} in {json}");
        }
    }
}
