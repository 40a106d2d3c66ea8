//! HTTP/2 inside TLS, checked against tshark: curl --http2 against `serve
//! --tls-cert` over TLS 1.2 and 1.3 (`samples/curl-h2.*`,
//! bench/make-tls-samples.sh h2).

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

use crate::tls::{
    analyze_opened, decrypted_bytes, report_of_bytes, sample, sha256_hex, syncscope, tls_facts,
    tshark_tls_bytes,
};

/// One exchange: tcp stream, method, path, status, request and response
/// body sha256 ("" when empty).
type Exchange = (u64, String, String, String, String, String);

/// tshark's HTTP/2 exchanges, from its frames (`-T fields`, every
/// occurrence, `|` between them): per packet the frames' stream ids and
/// types, the header block's fields, the DATA frames' bytes. Also the
/// number of HTTP/2 frames.
fn tshark_h2(cap: &str, keys: &str) -> (Vec<Exchange>, usize) {
    let o = Command::new("tshark")
        .args(["-o", &format!("tls.keylog_file:{keys}"), "-r", cap])
        .args([
            "-Y",
            "http2",
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=|",
        ])
        .args([
            "-e",
            "tcp.stream",
            "-e",
            "http2.streamid",
            "-e",
            "http2.type",
        ])
        .args(["-e", "http2.header.name", "-e", "http2.header.value"])
        .args(["-e", "http2.data.data"])
        .output()
        .expect("tshark is installed (.ci/run)");
    #[derive(Default)]
    struct Ex {
        method: String,
        path: String,
        status: String,
        req: Vec<u8>,
        resp: Vec<u8>,
    }
    let mut ex: BTreeMap<(u64, u64), Ex> = BTreeMap::new();
    let mut frames = 0;
    let split = |s: &str| -> Vec<String> {
        if s.is_empty() {
            vec![]
        } else {
            s.split('|').map(str::to_owned).collect()
        }
    };
    for l in String::from_utf8_lossy(&o.stdout).lines() {
        let f: Vec<&str> = l.split('\t').collect();
        let tcp: u64 = f[0].parse().unwrap();
        let (sids, types) = (split(f[1]), split(f[2]));
        let (names, values) = (split(f[3]), split(f[4]));
        let mut data = split(f[5]).into_iter();
        frames += types.len();
        assert!(
            types.iter().filter(|t| *t == "1").count() <= 1,
            "one header block per packet here: {l}"
        );
        for (sid, typ) in sids.iter().zip(&types) {
            let e = ex.entry((tcp, sid.parse().unwrap())).or_default();
            match typ.as_str() {
                "1" => {
                    for (n, v) in names.iter().zip(&values) {
                        match n.as_str() {
                            ":method" => e.method.clone_from(v),
                            ":path" => e.path.clone_from(v),
                            ":status" => e.status.clone_from(v),
                            _ => {}
                        }
                    }
                }
                "0" => {
                    let d = hex::decode(data.next().unwrap_or_default()).unwrap();
                    if e.status.is_empty() {
                        e.req.extend(d);
                    } else {
                        e.resp.extend(d);
                    }
                }
                _ => {}
            }
        }
    }
    let list = ex
        .into_iter()
        .filter(|(k, _)| k.1 != 0)
        .map(|((tcp, _), e)| {
            let (rq, rs) = (sha256_hex(&e.req), sha256_hex(&e.resp));
            (tcp, e.method, e.path, e.status, rq, rs)
        })
        .collect();
    (list, frames)
}

/// Every HTTP/2 exchange (method, path, status, body sha256 both ways),
/// the number of frames and the decrypted bytes per connection are
/// tshark's; both connections negotiated h2, nothing is an anomaly.
#[test]
fn curl_h2_over_tls12_and_tls13_like_tshark() {
    let (cap, keys) = (sample("curl-h2.pcapng"), sample("curl-h2.keys"));
    let r = analyze_opened(&cap, &keys);
    assert_eq!(
        r["anomalies"].as_array().map(Vec::len),
        Some(0),
        "{}",
        r["anomalies"]
    );
    let conns = r["connections"].as_array().unwrap();
    let mut versions = tls_facts(&r, "alpn");
    versions.sort();
    assert_eq!(versions, ["TLS 1.2 h2", "TLS 1.3 h2"]);
    let ours = decrypted_bytes(&r);
    assert_eq!(ours, tshark_tls_bytes(&cap, &keys, 2, "8445"));
    let our_frames: u64 = conns.iter().map(|c| c["h2_frames"].as_u64().unwrap()).sum();

    let o = syncscope(&["frames", &cap, "--keylog", &keys, "--format", "json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let recs: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    let sha = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let mut ours: Vec<Exchange> = recs
        .iter()
        .filter(|x| x["layer"] == "web" || x["layer"] == "http")
        .map(|x| {
            (
                x["conn"].as_u64().unwrap(),
                x["method"].as_str().unwrap().to_owned(),
                x["path"].as_str().unwrap().to_owned(),
                x["status"].to_string(),
                sha(&x["body"]["request_sha256"]),
                sha(&x["body"]["response_sha256"]),
            )
        })
        .collect();
    ours.sort();
    let (mut theirs, frames) = tshark_h2(&cap, &keys);
    theirs.sort();
    assert_eq!(theirs.len(), 8);
    // Two POSTs with a body per connection, every response with one.
    assert_eq!(theirs.iter().filter(|t| !t.4.is_empty()).count(), 4);
    assert_eq!(theirs.iter().filter(|t| !t.5.is_empty()).count(), 8);
    assert_eq!(ours, theirs);
    assert_eq!(our_frames, frames as u64);
    let h2_records = recs.iter().filter(|x| x["layer"] == "http2").count();
    assert_eq!(h2_records, frames);
}

/// Every prefix of the h2 capture (cut every 53 bytes) is analyzed
/// without a panic, and never finds more exchanges than the whole.
#[test]
fn every_prefix_of_the_h2_capture_is_safe() {
    let bytes = std::fs::read(sample("curl-h2.pcapng")).unwrap();
    let keys = sample("curl-h2.keys");
    let exchanges = |rep: &syncscope::analyze::Report| {
        rep.connections
            .iter()
            .map(|c| c.layers.http_exchanges)
            .sum::<u64>()
    };
    let whole = report_of_bytes(&bytes, &keys).unwrap();
    assert_eq!(exchanges(&whole), 8);
    for cut in (0..bytes.len()).step_by(53) {
        if let Some(rep) = report_of_bytes(&bytes[..cut], &keys) {
            assert_eq!(rep.tls.failed, 0, "cut at {cut}");
            assert!(exchanges(&rep) <= 8, "cut at {cut}");
        }
    }
}

/// HTTP/2 in clear text with prior knowledge (h2c): the client preface
/// and the server's first SETTINGS make both directions HTTP, and a POST
/// of webwxinit with a JSON body, answered over two DATA frames, is one
/// `web` record (the body whole) with its frames as `http2` records, in
/// any segmentation.
#[test]
fn h2c_prior_knowledge_gives_web_exchanges() {
    use loona_hpack::Encoder;
    use syncscope::proto::h2::{self, FrameHeader};
    let frame = |typ: u8, flags: u8, stream: u32, p: &[u8]| {
        let h = FrameHeader {
            len: p.len() as u32,
            typ,
            flags,
            stream,
        };
        [h.encode().as_slice(), p].concat()
    };
    let body = br#"{"BaseRequest":{"Uin":7,"Sid":"s1","Skey":"","DeviceID":"e1"}}"#;
    let mut ce = Encoder::new();
    let req: Vec<(&[u8], &[u8])> = vec![
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":authority", b"wx.qq.com"),
        (b":path", b"/cgi-bin/mmwebwx-bin/webwxinit?r=1"),
        (b"content-type", b"application/json"),
    ];
    let mut c2s = h2::PREFACE.to_vec();
    c2s.extend(frame(h2::SETTINGS, 0, 0, &[]));
    c2s.extend(frame(h2::HEADERS, h2::END_HEADERS, 1, &ce.encode(req)));
    c2s.extend(frame(h2::DATA, h2::END_STREAM, 1, body));
    let answer = br#"{"BaseResponse":{"Ret":0,"ErrMsg":""},"SyncKey":{"Count":1,"List":[{"Key":1,"Val":5}]}}"#;
    let mut se = Encoder::new();
    let resp: Vec<(&[u8], &[u8])> =
        vec![(b":status", b"200"), (b"content-type", b"application/json")];
    let mut s2c = frame(h2::SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]);
    s2c.extend(frame(h2::HEADERS, h2::END_HEADERS, 1, &se.encode(resp)));
    s2c.extend(frame(h2::DATA, 0, 1, &answer[..20]));
    s2c.extend(frame(h2::DATA, h2::END_STREAM, 1, &answer[20..]));
    for step in [7, 40, 1000] {
        // The request in segments of `step` bytes, then the answer.
        let mut c = syncscope::synth::Conversation::new(
            "10.0.0.1:40000".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
            1000,
            9000,
        );
        c.mss = step;
        let mut frames = c.handshake();
        frames.extend(c.send(syncscope::synth::Side::Client, &c2s));
        frames.extend(c.send(syncscope::synth::Side::Server, &s2c));
        frames.extend(c.close());
        let pcap = crate::common::pcap_of(&frames);
        let mut reader =
            syncscope::capture::Reader::from_read(Box::new(std::io::Cursor::new(pcap)), "h2c")
                .unwrap();
        let opts = syncscope::analyze::Options::default();
        let (records, report) = crate::common::analyze_capture(&mut reader, &opts);
        assert!(report.anomalies.is_empty(), "{:?}", report.anomalies);
        let web: Vec<_> = records
            .iter()
            .filter(|r| r.layer.as_str() == "web")
            .collect();
        assert_eq!(
            web.len(),
            1,
            "step {step}: {:?}",
            records
                .iter()
                .map(|r| (r.layer, r.kind.clone(), r.dir))
                .collect::<Vec<_>>()
        );
        assert_eq!(web[0].endpoint, Some("webwxinit"));
        assert_eq!(web[0].method.as_deref(), Some("POST"));
        assert_eq!(web[0].status, Some(200));
        assert_eq!(web[0].host.as_deref(), Some("wx.qq.com"));
        assert_eq!(web[0].body["response"]["SyncKey"]["Count"], 1);
        assert_eq!(web[0].body["request_sha256"], sha256_hex(body));
        let frames = records
            .iter()
            .filter(|r| r.layer.as_str() == "http2")
            .count();
        assert_eq!(frames, 7, "step {step}");
        assert_eq!(report.connections[0].kind.as_str(), "http");
    }
}
