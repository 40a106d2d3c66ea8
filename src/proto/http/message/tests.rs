//! The shared codec: the short-link splitter's tests (formerly
//! `proto::shortlink::split_http`), the web client's, the server's.

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;
use crate::proto::shortlink::is_short_link_request;

const REQ: &[u8] = b"POST /mmtls/2a9b1264 HTTP/1.1\r\nAccept: */*\r\nCache-Control: no-cache\r\n\
Connection: Keep-Alive\r\nContent-Length: 8\r\nContent-Type: application/octet-stream\r\n\
Host: sgshort.wechat.com\r\nUpgrade: mmtls\r\nUser-Agent: MicroMessenger Client\r\n\r\n\
\x19\xf1\x04\x00\x03abc";
const RESP: &[u8] =
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/octet-stream\r\n\
Content-Length: 4\r\n\r\nwxyz";

fn split_all(b: &[u8]) -> Result<Vec<HttpMessage<'_>>, ParseError> {
    split(b, &Limits::default())
}

#[test]
fn request_and_response() {
    let m = split_all(REQ).unwrap();
    assert_eq!(m.len(), 1);
    let r = &m[0];
    assert_eq!(r.method, Some("POST"));
    assert_eq!(r.path, Some("/mmtls/2a9b1264"));
    assert!(is_short_link_request(r));
    assert_eq!(r.header_str("host"), Some("sgshort.wechat.com"));
    assert_eq!(r.body, b"\x19\xf1\x04\x00\x03abc");
    assert_eq!(r.body_offset, REQ.len() - 8);
    assert!(r.complete);
    assert_eq!(r.start_line(), "POST /mmtls/2a9b1264 HTTP/1.1");
    let m = split_all(RESP).unwrap();
    assert_eq!(m[0].status, Some(200));
    assert_eq!(m[0].start_line(), "HTTP/1.1 200 OK");
    assert_eq!(m[0].body, b"wxyz");
    // Two messages back to back, then a third without a length.
    let mut two = REQ.to_vec();
    two.extend_from_slice(REQ);
    let m = split_all(&two).unwrap();
    assert_eq!(m.len(), 2);
    assert_eq!(m[1].start_offset, REQ.len());
    let m = split_all(b"HTTP/1.0 200 OK\r\n\r\nto the end").unwrap();
    assert_eq!(m[0].body, b"to the end");
    assert_eq!(m[0].version, 0);
}

#[test]
fn http_errors() {
    assert!(matches!(
        split_all(b"\x19\xf1\x04\x00\x03abc"),
        Err(ParseError::Head(_))
    ));
    assert!(matches!(
        split_all(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
        Err(ParseError::BadContentLength(_))
    ));
    assert!(matches!(
        split_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
        Err(ParseError::TransferEncoding(te)) if te == "chunked"
    ));
}

#[test]
fn every_truncated_prefix() {
    for src in [REQ, RESP] {
        for n in 0..src.len() {
            let m = split_all(&src[..n]).unwrap();
            if let Some(m) = m.first() {
                assert!(!m.complete || m.end_offset() == n);
                assert!(m.end_offset() <= n);
            }
            // Without eof a prefix is never a message.
            assert_eq!(
                parse(&src[..n], Kind::Either, &Limits::default(), false),
                Parse::Incomplete,
                "prefix {n}"
            );
        }
        let Parse::Complete(m, used) = parse(src, Kind::Either, &Limits::default(), false) else {
            panic!("not complete");
        };
        assert_eq!((used, m.end_offset()), (src.len(), src.len()));
    }
}

#[test]
fn caps_and_kinds() {
    let tiny_head = Limits {
        max_head: 18,
        max_headers: 1,
        max_body: 3,
        lenient: false,
    };
    let h = |b: &'static [u8]| parse(b, Kind::Request, &tiny_head, false);
    // A head over the cap, incomplete or complete (in one read).
    assert_eq!(
        h(b"GET /a-very-long-target HTTP/1.1\r\n"),
        Parse::Invalid(ParseError::HeadTooLong { cap: 18 })
    );
    assert_eq!(
        h(b"GET /abcdefg HTTP/1.1\r\n\r\n"),
        Parse::Invalid(ParseError::HeadTooLong { cap: 18 })
    );
    // Exactly at the cap is fine.
    assert!(matches!(
        h(b"GET / HTTP/1.1\r\n\r\n"),
        Parse::Complete(_, 18)
    ));
    let small = Limits {
        max_head: 64,
        ..tiny_head
    };
    let p = |b: &'static [u8], k| parse(b, k, &small, false);
    assert_eq!(
        p(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n", Kind::Request),
        Parse::Invalid(ParseError::TooManyHeaders(1))
    );
    assert_eq!(
        p(
            b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\n",
            Kind::Request
        ),
        Parse::Invalid(ParseError::BodyTooLong { len: 4, cap: 3 })
    );
    assert!(matches!(
        p(b"HTTP/1.1 200 OK\r\n\r\n", Kind::Request),
        Parse::Invalid(ParseError::Head(_))
    ));
    // A response without a length waits for the end of the connection.
    assert_eq!(
        p(b"HTTP/1.1 200 OK\r\n\r\nab", Kind::Response),
        Parse::Incomplete
    );
    let Parse::Complete(m, n) = p(b"HTTP/1.1 204 No\r\n\r\n", Kind::Response) else {
        panic!("204 has no body");
    };
    assert_eq!((m.status, m.body, n), (Some(204), &b""[..], 19));
}

#[test]
fn keep_alive_and_continue() {
    let head = |b: &'static [u8]| match parse_head(b, Kind::Either, &Limits::default()) {
        Parse::Complete(m, _) => m,
        other => panic!("{other:?}"),
    };
    assert!(head(b"GET / HTTP/1.1\r\n\r\n").keep_alive());
    assert!(!head(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").keep_alive());
    assert!(!head(b"GET / HTTP/1.0\r\n\r\n").keep_alive());
    assert!(head(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive());
    assert!(head(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n").expects_continue());
}

#[test]
fn encoders() {
    assert_eq!(
        encode_response(100, &[], b""),
        b"HTTP/1.1 100 Continue\r\n\r\n".to_vec()
    );
    let req = encode_request(
        "POST",
        "/x?y=1",
        &[("Host", "h"), ("Content-Length", "2")],
        b"{}",
    );
    assert_eq!(
        String::from_utf8(req.clone()).unwrap(),
        "POST /x?y=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}"
    );
    let Parse::Complete(m, n) = parse(&req, Kind::Request, &Limits::default(), false) else {
        panic!("the encoded request does not parse");
    };
    assert_eq!(
        (m.method, m.path, m.body, n),
        (Some("POST"), Some("/x?y=1"), &b"{}"[..], req.len())
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_input_never_panics(data in vec(any::<u8>(), 0..600), head in 0usize..3) {
        let mut b = [&b"POST /mmtls/0a0b0c0d HTTP/1.1\r\nContent-Length: 9\r\n\r\n"[..],
                     b"HTTP/1.1 200 OK\r\n\r\n", b""][head].to_vec();
        b.extend_from_slice(&data);
        if let Ok(m) = split_all(&b) {
            for m in m {
                prop_assert!(m.end_offset() <= b.len());
            }
        }
        for eof in [false, true] {
            if let Parse::Complete(m, n) = parse(&b, Kind::Either, &Limits::default(), eof) {
                prop_assert!(n <= b.len());
                prop_assert_eq!(m.end_offset(), n);
            }
        }
    }
}
