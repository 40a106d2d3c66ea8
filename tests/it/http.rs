//! HTTP/1.x over real captures: the pipeline reassembles each connection
//! (`common::run_file`), then `proto::http::Conn` is fed the client-to-server
//! bytes, then the server-to-client bytes, in 1448-byte chunks, with a gap
//! wherever reassembly reported one, and finished.
//!
//! Expected numbers come from tshark 4.0 on the same files:
//! - counts: `tshark -r F -Y http -T fields -e tcp.stream -e http.request
//!   -e http.response` (summed per stream; several messages of one frame
//!   are listed comma-separated);
//! - status, lengths, codings: `-e http.response.code
//!   -e http.content_length_header -e http.transfer_encoding
//!   -e http.content_encoding`;
//! - decoded and de-chunked sizes: `tshark -r F -Y http.response -V`
//!   ("Content-encoded entity body (gzip): 165 bytes -> 197 bytes", the
//!   "Data chunk (N octets)" lines);
//! - the gap: `tshark -r F -T fields -e tcp.seq -e tcp.len` and
//!   `-q -z follow,tcp,ascii,0` ("[14 bytes missing in capture file]").
//!
//! Connection ids are in first-packet order, the same as tshark's
//! `tcp.stream`.

use std::path::Path;

use syncscope::flow::Direction;
use syncscope::proto::http::{
    Config, Conn, HttpEvent, Message, OwnedHttpEvent as Ev, SKIP_AFTER_GAP, SKIP_UPGRADED,
};

use crate::common::{self, Collect};

const C2S: Direction = Direction::ClientToServer;
const S2C: Direction = Direction::ServerToClient;

/// The gaps reassembly reported for one direction of a connection:
/// (stream offset, length).
fn gaps(c: &Collect, id: u64, dir: Direction) -> Vec<(u64, u64)> {
    c.events
        .iter()
        .filter(|(i, d, _)| *i == id && *d == dir)
        .filter_map(|(_, _, s)| {
            let rest = s.strip_prefix("Gap { offset: ")?;
            let (off, rest) = rest.split_once(", len: ")?;
            let (len, _) = rest.split_once(',')?;
            Some((off.parse().ok()?, len.parse().ok()?))
        })
        .collect()
}

/// Every connection of a capture (id, events), fed in `chunk`-byte chunks.
fn dissect_with(path: &Path, chunk: usize) -> Vec<(u64, Vec<Ev>)> {
    let (c, _) = common::run_file(path);
    let mut flows = Vec::new();
    for (s, bytes) in &c.flows {
        let mut conn = Conn::new(Config::default());
        let mut evs = Vec::new();
        let mut out = |e: HttpEvent<'_>| evs.push(e.to_owned_event());
        for (dir, b) in [(C2S, &bytes[0]), (S2C, &bytes[1])] {
            // Data bytes are concatenated without the gaps: put them back.
            let mut off = 0u64;
            let mut pos = 0usize;
            let mut feed =
                |conn: &mut Conn, off: &mut u64, n: usize, out: &mut dyn FnMut(HttpEvent<'_>)| {
                    let n = n.min(b.len() - pos);
                    for piece in b[pos..pos + n].chunks(chunk) {
                        conn.feed(dir, *off, piece, s.first_ts, &mut |e| out(e));
                        *off += piece.len() as u64;
                    }
                    pos += n;
                };
            for (g_off, g_len) in gaps(&c, s.id, dir) {
                let n = usize::try_from(g_off - off).unwrap();
                feed(&mut conn, &mut off, n, &mut out);
                conn.gap(dir, g_len, &mut out);
                off += g_len;
            }
            feed(&mut conn, &mut off, usize::MAX, &mut out);
        }
        conn.finish(&mut out);
        flows.push((s.id, evs));
    }
    flows
}

fn dissect(path: &Path) -> Vec<(u64, Vec<Ev>)> {
    dissect_with(path, 1448)
}

fn real(name: &str) -> std::path::PathBuf {
    common::corpus_real().join(name)
}

fn requests(evs: &[Ev]) -> Vec<&Message> {
    evs.iter()
        .filter_map(|e| match e {
            Ev::Request(m) => Some(m),
            _ => None,
        })
        .collect()
}

fn responses(evs: &[Ev]) -> Vec<(&Message, Option<&Message>)> {
    evs.iter()
        .filter_map(|e| match e {
            Ev::Response(m, r) => Some((m, r.as_ref())),
            _ => None,
        })
        .collect()
}

fn skips(evs: &[Ev]) -> Vec<&Ev> {
    evs.iter()
        .filter(|e| matches!(e, Ev::Skipped(..)))
        .collect()
}

/// Each response pairs with the request at the same position, in order.
fn paired_in_order(evs: &[Ev]) {
    let reqs = requests(evs);
    let resps = responses(evs);
    assert_eq!(reqs.len(), resps.len());
    for (k, (resp, req)) in resps.iter().enumerate() {
        assert_eq!(*req, Some(reqs[k]), "response {k}: {resp:?}");
        assert!(resp.complete, "response {k}: {resp:?}");
    }
}

#[test]
fn pipelined_scanner() {
    // 40 GET requests, up to 9 per segment and split across segments; 40
    // responses "404" with Content-Length 146, 4-5 per segment.
    let flows = dissect(&real("sv-http-protocol-nodup_input.pcap"));
    assert_eq!(flows.len(), 1);
    let evs = &flows[0].1;
    assert_eq!(requests(evs).len(), 40);
    assert_eq!(responses(evs).len(), 40);
    assert!(skips(evs).is_empty(), "{:?}", skips(evs));
    paired_in_order(evs);
    for (resp, _) in responses(evs) {
        assert_eq!(resp.status(), Some(404));
        assert_eq!(resp.wire_body_len, 146);
        assert_eq!(resp.body.len(), 146);
    }
    let reqs = requests(evs);
    assert!(reqs.iter().all(|r| r.method() == Some("GET") && r.complete));
    assert_eq!(reqs[0].path(), Some("/postinfo.html"));
    assert_eq!(reqs[6].query(), Some("Page=default.asp|Image=3"));
    assert_eq!(reqs[39].path(), Some("/.bzr/README"));
}

#[test]
fn content_length_and_obfuscated_chunked() {
    // One 376-byte HEAD request carrying `Content-Length: 0` and
    // `Transfer-Encoding: ,<TAB>chunked,`; no response bytes. Transfer-
    // Encoding wins (RFC 9112 6.1; empty list elements do not count), so a
    // chunked body is expected and never comes: the request is cut by the
    // end of the stream.
    let flows = dissect(&real("sv-http-chunked_input.pcap"));
    assert_eq!(flows.len(), 1);
    let evs = &flows[0].1;
    // The request, then the same request left unanswered at the end.
    assert_eq!(evs.len(), 2, "{evs:#?}");
    let Ev::Request(m) = &evs[0] else {
        panic!("{evs:?}")
    };
    assert_eq!(evs[1], Ev::Unanswered(m.clone()));
    assert_eq!(m.method(), Some("HEAD"));
    assert_eq!(m.path(), Some("/resources/fonts/SourceSansPro-Regular.ttf"));
    assert!(m.chunked && !m.complete);
    assert_eq!((m.stream_offset, m.end_offset), (0, 376));
    assert_eq!(
        m.problems,
        [
            "both Content-Length and Transfer-Encoding sent: Content-Length ignored",
            "stream ended inside the chunked body"
        ]
    );
}

#[test]
fn gzip_json_body() {
    // GET /gzip; 200 with Content-Encoding gzip, Content-Length 165,
    // 165 bytes -> 197 bytes of JSON.
    let flows = dissect(&real("get-gzip.pcap"));
    assert_eq!(flows.len(), 1);
    let evs = &flows[0].1;
    assert_eq!(evs.len(), 2, "{evs:#?}");
    paired_in_order(evs);
    let (resp, req) = responses(evs)[0];
    assert_eq!(req.and_then(|r| r.path()), Some("/gzip"));
    assert_eq!(resp.status(), Some(200));
    assert_eq!(resp.encoding.as_deref(), Some("gzip"));
    assert!(resp.decoded && resp.problems.is_empty(), "{resp:?}");
    assert_eq!(resp.wire_body_len, 165);
    assert_eq!(resp.body.len(), 197);
    let json: serde_json::Value = serde_json::from_slice(&resp.body).expect("JSON");
    assert!(json.is_object());
}

#[test]
fn docker_api_with_upgrade() {
    // Conn 0: HEAD /_ping -> 200 (Content-Length 0), POST create
    // (Content-Length 1719) -> 201 (88 bytes of JSON), POST wait -> 200
    // chunked (one 30-byte chunk). Conn 1: POST attach with `Upgrade: tcp`
    // -> 101; then 41 client bytes and 468 server bytes of raw stream
    // (c2s 332 - 291 request, s2c 577 - 109 head). Conn 2: POST start ->
    // 204, POST resize -> 200 (Content-Length 0).
    let flows = dissect(&real("docker-http-upgrade.pcap"));
    assert_eq!(flows.len(), 3);
    let counts: Vec<(usize, usize)> = flows
        .iter()
        .map(|(_, e)| (requests(e).len(), responses(e).len()))
        .collect();
    assert_eq!(counts, [(3, 3), (1, 1), (2, 2)]);
    for (_, evs) in &flows {
        paired_in_order(evs);
    }

    let evs = &flows[0].1;
    assert!(skips(evs).is_empty());
    let resps = responses(evs);
    let status: Vec<_> = resps.iter().map(|(m, _)| m.status()).collect();
    assert_eq!(status, [Some(200), Some(201), Some(200)]);
    assert_eq!(resps[0].1.and_then(|r| r.method()), Some("HEAD"));
    assert_eq!(requests(evs)[1].wire_body_len, 1719);
    serde_json::from_slice::<serde_json::Value>(&requests(evs)[1].body).expect("JSON");
    assert_eq!(resps[1].0.body.len(), 88);
    assert!(resps[2].0.chunked);
    assert_eq!(resps[2].0.body, b"{\"Error\":null,\"StatusCode\":0}\n");

    let evs = &flows[1].1;
    let (resp, req) = responses(evs)[0];
    assert_eq!(resp.status(), Some(101));
    assert_eq!(req.and_then(|r| r.header_str("upgrade")), Some("tcp"));
    assert_eq!(
        skips(evs),
        [
            &Ev::Skipped(C2S, 291, 41, SKIP_UPGRADED),
            &Ev::Skipped(S2C, 109, 468, SKIP_UPGRADED)
        ]
    );

    let evs = &flows[2].1;
    let status: Vec<_> = responses(evs).iter().map(|(m, _)| m.status()).collect();
    assert_eq!(status, [Some(204), Some(200)]);
}

#[test]
fn ipv6_keep_alive_and_chunked() {
    // Conn 0: GET / (200, 2056 bytes), GET /header.shtml (200 chunked:
    // 1384 + 5 + 62 = 1451 bytes), GET /images/logo.jpg (200, 8010 bytes).
    // Conn 1: style1.css 807, main.html 3495, header.css 626,
    // space23.jpg 1151. Conn 2: top_bground.jpg 11076. Conn 3: log.php3 43.
    let flows = dissect(&real("four_ipv6_http_streams.pcap"));
    assert_eq!(flows.len(), 4);
    let want: [&[(&str, u64)]; 4] = [
        &[
            ("/", 2056),
            ("/header.shtml", 1451),
            ("/images/logo.jpg", 8010),
        ],
        &[
            ("/style1.css", 807),
            ("/main.html", 3495),
            ("/header.css", 626),
            ("/images/space23.jpg", 1151),
        ],
        &[("/images/top_bground.jpg", 11076)],
        &[("/ipv6/stats/log.php3?URL=www.uk6x.com&ImageId=6", 43)],
    ];
    for ((_, evs), want) in flows.iter().zip(want) {
        assert!(skips(evs).is_empty(), "{:?}", skips(evs));
        paired_in_order(evs);
        let got: Vec<(&str, u64)> = responses(evs)
            .iter()
            .map(|(m, r)| (r.and_then(|r| r.path()).unwrap_or(""), m.body.len() as u64))
            .collect();
        assert_eq!(got, want);
        assert!(responses(evs).iter().all(|(m, _)| m.status() == Some(200)));
    }
    let chunked = responses(&flows[0].1)[1].0;
    assert!(chunked.chunked && chunked.complete);
    assert_eq!(chunked.wire_body_len, 1451);
}

#[test]
fn gap_inside_a_body() {
    // HTTP/1.0, three requests. Server stream: response 1 at 0..150
    // ("Hello World!"), response 2 head at 150..249 with Content-Length 70,
    // 14 body bytes, then 14 bytes missing at 263 (reassembly reports the
    // gap), 42 more body bytes at 277..319, response 3 at 319..430
    // ("Hello People") and a CRLF (an empty line between messages: ignored).
    let flows = dissect(&real("sv-http-gap-simple_input.pcap"));
    assert_eq!(flows.len(), 1);
    let evs = &flows[0].1;
    assert_eq!(evs.len(), 7, "{evs:#?}");
    let reqs = requests(evs);
    let paths: Vec<_> = reqs.iter().map(|r| r.path().unwrap()).collect();
    assert_eq!(paths, ["/1", "/2", "/3"]);
    let resps = responses(evs);
    assert_eq!(resps.len(), 3);
    for (k, (_, req)) in resps.iter().enumerate() {
        assert_eq!(*req, Some(reqs[k]));
    }
    assert_eq!(resps[0].0.body, b"Hello World!");
    let cut = resps[1].0;
    assert!(!cut.complete);
    assert_eq!(cut.body, [b'A'; 14]);
    assert_eq!((cut.stream_offset, cut.end_offset), (150, 263));
    assert_eq!(cut.problems, ["gap of 14 bytes inside the body"]);
    assert_eq!(skips(evs), [&Ev::Skipped(S2C, 277, 42, SKIP_AFTER_GAP)]);
    let last = resps[2].0;
    assert!(last.complete && last.problems.is_empty());
    assert_eq!(last.body, b"Hello People");
    assert_eq!((last.stream_offset, last.end_offset), (319, 430));
}

#[test]
fn wechat_newgetdns_on_8080() {
    // Conns 4 and 16: plain `GET /cgi-bin/micromsg-bin/newgetdns?...` ->
    // 200, Content-Encoding deflate, text/xml: 2876 -> 17988 bytes and
    // 2833 -> 17986 bytes.
    let path = common::shared().join("corpus/wechat/capture-logged-in-all-keys.pcapng");
    let flows = dissect(&path);
    for (id, wire, decoded) in [(4, 2876, 17988), (16, 2833, 17986)] {
        let evs = &flows.iter().find(|f| f.0 == id).expect("conn").1;
        assert_eq!(evs.len(), 2, "conn {id}: {evs:#?}");
        paired_in_order(evs);
        let (resp, req) = responses(evs)[0];
        let req = req.unwrap();
        assert_eq!(req.method(), Some("GET"));
        assert!(req
            .path()
            .unwrap()
            .starts_with("/cgi-bin/micromsg-bin/newgetdns?"));
        assert!(req.query().unwrap().starts_with("uin=1505495844&"));
        assert_eq!(resp.status(), Some(200));
        assert_eq!(resp.encoding.as_deref(), Some("deflate"));
        assert!(
            resp.decoded && resp.problems.is_empty(),
            "{:?}",
            resp.problems
        );
        assert_eq!(resp.wire_body_len, wire);
        assert_eq!(resp.body.len(), decoded);
        assert!(resp.body.starts_with(b"<?xml"));
    }
}

/// The chunking does not matter: one byte at a time and everything at once
/// give the events 1448-byte chunks give.
#[test]
fn chunk_size_does_not_matter() {
    for name in [
        "sv-http-protocol-nodup_input.pcap",
        "docker-http-upgrade.pcap",
        "sv-http-gap-simple_input.pcap",
        "four_ipv6_http_streams.pcap",
    ] {
        let path = real(name);
        let base = dissect(&path);
        assert_eq!(dissect_with(&path, 1), base, "{name}: 1-byte chunks");
        assert_eq!(dissect_with(&path, usize::MAX), base, "{name}: one chunk");
    }
}

/// A request the connection ended without answering is a record of its own
/// (kind `request`, no status), and `analyze` counts it as open.
#[test]
fn a_request_never_answered_is_a_record_of_its_own() {
    let file = real("sv-http-chunked_input.pcap");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_syncscope"))
            .args(args)
            .arg(&file)
            .arg("-q")
            .output()
            .expect("run syncscope");
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let recs: Vec<serde_json::Value> = run(&["frames", "--format", "ndjson"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 1, "{recs:?}");
    let r = &recs[0];
    assert_eq!(
        (r["kind"].as_str(), r["method"].as_str()),
        (Some("request"), Some("HEAD"))
    );
    assert!(
        r.get("status").is_none() && r.get("latency_us").is_none(),
        "{r}"
    );
    assert_eq!(
        (r["first_packet"].as_u64(), r["last_packet"].as_u64()),
        (Some(4), Some(4))
    );
    let report: serde_json::Value =
        serde_json::from_str(&run(&["analyze", "--format", "json"])).unwrap();
    let m = &report["messages"][0];
    assert_eq!(
        (
            m["requests"].as_u64(),
            m["responses"].as_u64(),
            m["unanswered"].as_u64()
        ),
        (Some(1), Some(0), Some(1)),
        "{m}"
    );
    assert_eq!(report["connections"][0]["http_exchanges"], 1);
    assert_eq!(report["connections"][0]["messages"], 1);
}
