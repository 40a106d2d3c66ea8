//! Unit tests of the wire reader, the schema-less decoder and the blob.

use super::*;

fn json(bytes: &[u8]) -> String {
    serde_json::to_string(&Fields(&decode_raw(bytes).expect("decodes"))).expect("json")
}

#[test]
fn varint_limits() {
    assert_eq!(read_varint(&[0x00], 0, 0), Ok((0, 1)));
    assert_eq!(read_varint(&[0xac, 0x02], 0, 0), Ok((300, 2)));
    let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
    assert_eq!(read_varint(&max, 0, 0), Ok((u64::MAX, 10)));
    let over = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
    assert_eq!(
        read_varint(&over, 0, 7).unwrap_err().reason,
        RawReason::VarintOverflow
    );
    let e = read_varint(&[0x80, 0x80], 0, 5).unwrap_err();
    assert_eq!((e.offset, e.reason), (5, RawReason::TruncatedVarint));
}

#[test]
fn readable_json_shape() {
    // {1: 5, 2: {1: "abc"}, 3: "repeated", 3: "values"}
    let mut b = Vec::new();
    encode_varint_field(1, 5, &mut b);
    encode_bytes_field(2, &[0x0a, 0x03, b'a', b'b', b'c'], &mut b);
    encode_bytes_field(3, b"repeated", &mut b);
    encode_bytes_field(3, b"values", &mut b);
    assert_eq!(
        json(&b),
        r#"{"1":5,"2":{"1":"abc"},"3":["repeated","values"]}"#
    );
}

#[test]
fn key_order_is_first_appearance() {
    let mut b = Vec::new();
    encode_varint_field(10, 1, &mut b);
    encode_varint_field(2, 2, &mut b);
    encode_varint_field(10, 3, &mut b);
    assert_eq!(json(&b), r#"{"10":[1,3],"2":2}"#);
    let mut b = Vec::new();
    encode_varint_field(2, 2, &mut b);
    encode_varint_field(10, 1, &mut b);
    assert_eq!(json(&b), r#"{"2":2,"10":1}"#);
}

#[test]
fn short_text_is_not_a_message() {
    // "hi" = field 13 varint 105 and "en_US" = field 12 fixed32 for protoc.
    for s in ["hi", "en_US", "ok", "zh_CN", "a"] {
        let mut b = Vec::new();
        encode_bytes_field(1, s.as_bytes(), &mut b);
        assert_eq!(json(&b), format!(r#"{{"1":"{s}"}}"#));
    }
    // A printable message with a leading tag byte stays a message.
    let mut inner = Vec::new();
    encode_bytes_field(1, b"46886632a5c87cb10e3c60852250a8f3", &mut inner);
    assert!(inner
        .iter()
        .all(|&c| c == b'\n' || (0x20..0x7f).contains(&c)));
    let mut b = Vec::new();
    encode_bytes_field(7, &inner, &mut b);
    assert_eq!(
        json(&b),
        r#"{"7":{"1":"46886632a5c87cb10e3c60852250a8f3"}}"#
    );
}

#[test]
fn empty_bytes_and_empty_message() {
    assert_eq!(decode_raw(&[]), Ok(vec![]));
    assert_eq!(json(&[0x12, 0x00]), r#"{"2":""}"#);
}

#[test]
fn fixed_values_and_blobs() {
    let mut b = vec![0x0d, 1, 0, 0, 0, 0x11, 2, 0, 0, 0, 0, 0, 0, 0];
    encode_bytes_field(3, &[0xff, 0x00, 0xfe], &mut b);
    assert_eq!(
        json(&b),
        r#"{"1":"0x00000001","2":"0x0000000000000002","3":{"hex":"ff00fe","len":3,"entropy":1.58}}"#
    );
    let big: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let mut b = Vec::new();
    encode_bytes_field(4, &big, &mut b);
    let v: serde_json::Value = serde_json::from_str(&json(&b)).expect("json");
    assert_eq!(v["4"]["len"], 1000);
    assert_eq!(v["4"]["entropy"], 8.0);
    assert_eq!(v["4"]["truncated"], true);
    assert_eq!(
        v["4"]["hex"].as_str().map(str::len),
        Some(2 * HEX_PREFIX_LEN)
    );
    assert_eq!(v["4"]["sha256"].as_str().map(str::len), Some(64));
}

#[test]
fn groups() {
    // 1: group { 2: 150 }, 3: 1
    let b = [0x0b, 0x10, 0x96, 0x01, 0x0c, 0x18, 0x01];
    let f = decode_raw(&b).expect("decodes");
    assert_eq!(
        f[0].value,
        Value::Group(vec![Field {
            number: 2,
            value: Value::Varint(150)
        }])
    );
    assert_eq!(encode_raw(&f), b);
    assert_eq!(json(&b), r#"{"1":{"2":150},"3":1}"#);
    // Unclosed and mismatched groups.
    assert_eq!(
        decode_raw(&[0x0b, 0x10, 0x01]).unwrap_err().reason,
        RawReason::UnclosedGroup(1)
    );
    assert_eq!(
        decode_raw(&[0x0b, 0x14]).unwrap_err().reason,
        RawReason::UnexpectedEndGroup(2)
    );
    assert_eq!(
        decode_raw(&[0x0c]).unwrap_err().reason,
        RawReason::UnexpectedEndGroup(1)
    );
}

#[test]
fn errors_carry_offsets() {
    let e = decode_raw(&[0x08, 0x01, 0x07]).unwrap_err();
    assert_eq!((e.offset, e.reason), (2, RawReason::BadWireType(7)));
    let e = decode_raw(&[0x08, 0x01, 0x00]).unwrap_err();
    assert_eq!((e.offset, e.reason), (2, RawReason::FieldNumberZero));
    let e = decode_raw(&[0x12, 0x05, 0x61]).unwrap_err();
    assert_eq!(
        (e.offset, e.reason),
        (
            1,
            RawReason::Truncated {
                what: "length-delimited",
                needed: 5,
                available: 1
            }
        )
    );
    // Error inside a group is reported at its absolute offset.
    let e = decode_raw(&[0x08, 0x01, 0x0b, 0x10]).unwrap_err();
    assert_eq!((e.offset, e.reason), (4, RawReason::TruncatedVarint));
    let e = decode_raw(&[0x80, 0x80, 0x80, 0x80, 0x10, 0x00]).unwrap_err();
    assert_eq!(e.reason, RawReason::FieldNumberTooLarge(1 << 29));
    assert!(e.to_string().contains("offset 0"), "{e}");
}

#[test]
fn depth_is_capped() {
    // 40 nested messages {1: {1: ... {1: "x"}}}: beyond MAX_DEPTH the
    // value is not opened any more (it is shown as bytes).
    let mut b = {
        let mut v = Vec::new();
        encode_varint_field(1, 1, &mut v);
        v
    };
    for _ in 0..40 {
        let mut outer = Vec::new();
        encode_bytes_field(1, &b, &mut outer);
        b = outer;
    }
    let f = decode_raw(&b).expect("decodes");
    let mut depth = 0;
    let mut cur = &f;
    while let Some(Field {
        value:
            Value::Bytes(Bytes {
                kind: BytesKind::Message(inner),
                ..
            }),
        ..
    }) = cur.first()
    {
        depth += 1;
        cur = inner;
    }
    assert_eq!(depth, MAX_DEPTH);
    // Deeply nested groups are an error, not a stack overflow.
    let mut g = vec![0x0b; 100];
    g.extend(vec![0x0c; 100]);
    assert_eq!(decode_raw(&g).unwrap_err().reason, RawReason::TooDeep);
}

#[test]
fn entropy_figures() {
    assert_eq!(entropy(&[]), 0.0);
    assert_eq!(entropy(b"aaaa"), 0.0);
    assert!((entropy(&[0, 1]) - 1.0).abs() < 1e-12);
    let all: Vec<u8> = (0..=255).collect();
    assert!((entropy(&all) - 8.0).abs() < 1e-12);
}
