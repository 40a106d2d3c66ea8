//! The WeChat capture (`../shared/corpus/wechat`) through the MMTLS,
//! key-log, short-link and business-packet dissectors, compared field by
//! field with `expected.json`: every MMTLS record (index, type, length,
//! stream offset, crypto status, key-log line, sequence number, handshake
//! fields), the short-link requests and responses, and every business
//! packet (header fields, keys, lengths, plaintext sha256).
//!
//! Connection bytes come from the library's own reassembly
//! (`common::run_file`); all mismatches are collected and reported at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;
use sha2::{Digest, Sha256};
use syncscope::proto::business::{self, BusinessHeader, Outcome};
use syncscope::proto::http::{message, HttpMessage, Limits};
use syncscope::proto::keylog::{Decrypt, KeyLog};
use syncscope::proto::mmtls::{self, Hello, Output, Record, RecordType, Splitter};
use syncscope::proto::shortlink::{self, ShortLinkPayload};

use crate::common::{run_file, shared};

fn dir() -> PathBuf {
    shared().join("corpus/wechat")
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

const DIRS: [&str; 2] = ["c2s", "s2c"];

/// One dissected MMTLS record.
#[derive(Debug, Clone)]
struct Rec {
    i: usize,
    http_msg: Option<usize>,
    stream_off: u64,
    typ: RecordType,
    len: u16,
    raw: Vec<u8>,
    /// "plaintext" | "decrypted" | "no_key" | "failed"
    crypto: &'static str,
    line: Option<usize>,
    /// Decrypted plaintext, or the cleartext payload.
    plain: Option<Vec<u8>>,
}

/// Splits a record stream, feeding it in `chunk`-byte pieces (so records
/// straddling chunks are assembled) and checking that every chunking and
/// the whole-buffer helper agree.
fn split(base: u64, bytes: &[u8], problems: &mut Vec<String>, what: &str) -> Vec<(u64, Vec<u8>)> {
    let mut results: Vec<Vec<(u64, Vec<u8>)>> = Vec::new();
    for chunk in [usize::MAX, 1448, 97, 1] {
        let mut sp = Splitter::new();
        let mut recs = Vec::new();
        let mut skips = Vec::new();
        let mut out = |o: Output<'_>| match o {
            Output::Record(r) => recs.push((r.stream_offset, r.raw.to_vec())),
            Output::Skipped(s) => skips.push(s),
        };
        for (k, c) in bytes.chunks(chunk.min(bytes.len().max(1))).enumerate() {
            let off = base + (k * chunk.min(bytes.len().max(1))) as u64;
            sp.feed_with(off, c, &mut out);
        }
        sp.finish(&mut out);
        if !skips.is_empty() {
            problems.push(format!(
                "{what}: splitter skipped bytes (chunk {chunk}): {skips:?}"
            ));
        }
        results.push(recs);
    }
    let (whole, skips) = mmtls::split_all(base, bytes);
    if !skips.is_empty() {
        problems.push(format!("{what}: split_all skipped bytes: {skips:?}"));
    }
    let whole: Vec<(u64, Vec<u8>)> = whole
        .iter()
        .map(|r: &Record<'_>| (r.stream_offset, r.raw.to_vec()))
        .collect();
    for r in &results {
        if *r != whole {
            problems.push(format!(
                "{what}: chunked splitting differs from whole-buffer splitting"
            ));
        }
    }
    whole
}

fn classify(keys: &KeyLog, i: usize, http_msg: Option<usize>, off: u64, raw: Vec<u8>) -> Rec {
    let h = mmtls::RecordHeader::parse(&raw)
        .ok()
        .flatten()
        .expect("splitter yields valid headers");
    let payload = raw[mmtls::HEADER_LEN..].to_vec();
    let (crypto, line, plain) = if mmtls::is_cleartext(h.typ, &payload) {
        ("plaintext", None, Some(payload))
    } else {
        match keys.decrypt_record(&raw) {
            Decrypt::NoKey => ("no_key", None, None),
            Decrypt::Plaintext(o) => ("decrypted", Some(o.line), Some(o.plaintext)),
            Decrypt::Failed(_) => ("failed", None, None),
        }
    };
    Rec {
        i,
        http_msg,
        stream_off: off,
        typ: h.typ,
        len: h.len,
        raw,
        crypto,
        line,
        plain,
    }
}

/// Per direction: the HTTP messages (short link) and the records.
struct DirResult<'a> {
    http: Vec<HttpMessage<'a>>,
    recs: Vec<Rec>,
}

fn dissect<'a>(
    bytes: &'a [u8],
    short: bool,
    keys: &KeyLog,
    problems: &mut Vec<String>,
    what: &str,
) -> DirResult<'a> {
    let mut recs = Vec::new();
    let mut http = Vec::new();
    if short {
        match message::split(bytes, &Limits::default()) {
            Ok(msgs) => http = msgs,
            Err(e) => problems.push(format!("{what}: HTTP split failed: {e}")),
        }
        for (k, m) in http.iter().enumerate() {
            if !m.complete {
                problems.push(format!("{what}: HTTP message {k} incomplete"));
            }
            for (off, raw) in split(m.body_offset as u64, m.body, problems, what) {
                let i = recs.len();
                recs.push(classify(keys, i, Some(k), off, raw));
            }
        }
        let end = http.last().map_or(0, |m| m.end_offset());
        if end != bytes.len() {
            problems.push(format!(
                "{what}: {} byte(s) after the last HTTP message",
                bytes.len() - end
            ));
        }
    } else {
        for (off, raw) in split(0, bytes, problems, what) {
            let i = recs.len();
            recs.push(classify(keys, i, None, off, raw));
        }
    }
    DirResult { http, recs }
}

fn hexs(v: &Value) -> String {
    v.as_str().unwrap_or("").trim_start_matches("0x").to_owned()
}

struct Checker {
    problems: Vec<String>,
    checked: usize,
}

impl Checker {
    fn eq<T: PartialEq + std::fmt::Debug>(
        &mut self,
        what: impl FnOnce() -> String,
        got: T,
        want: T,
    ) {
        self.checked += 1;
        if got != want {
            self.problems
                .push(format!("{}: got {got:?}, expected {want:?}", what()));
        }
    }
}

/// A business packet found in the capture.
struct Found {
    conn: u64,
    dir: &'static str,
    packet: Vec<u8>,
    uri: Option<String>,
}

#[test]
fn wechat_capture_matches_expected_json() {
    let exp: Value = serde_json::from_str(
        &std::fs::read_to_string(dir().join("expected.json"))
            .expect("expected.json (is ../shared beside the checkout?)"),
    )
    .unwrap();
    let keys = KeyLog::load(dir().join("frida-logged-in-all-keys.log")).unwrap();
    let mut c = Checker {
        problems: Vec::new(),
        checked: 0,
    };

    // Key log shape (EXPECTED.md: 162 lines = 119 OUTER, 8 INNER GCM, 35 CBC).
    c.eq(|| "key-log lines".into(), keys.line_count(), 162);
    c.eq(|| "OUTER lines".into(), keys.outer.len(), 119);
    c.eq(|| "INNER GCM lines".into(), keys.inner_gcm.len(), 8);
    c.eq(|| "INNER CBC lines".into(), keys.inner_cbc.len(), 35);

    // Connections: ids and endpoints of our reassembly equal expected.json's.
    let (got, _) = run_file(&dir().join("capture-logged-in-all-keys.pcapng"));
    let mut conns: BTreeMap<u64, &[Vec<u8>; 2]> = BTreeMap::new();
    for (s, bytes) in &got.flows {
        conns.insert(s.id, bytes);
    }
    for tc in exp["tcp_connections"].as_array().unwrap() {
        let id = tc["id"].as_u64().unwrap();
        let Some((s, bytes)) = got.flows.iter().find(|(s, _)| s.id == id) else {
            c.problems.push(format!("conn {id}: missing"));
            continue;
        };
        c.eq(
            || format!("conn {id} client"),
            s.client.to_string(),
            tc["client"].as_str().unwrap().to_owned(),
        );
        c.eq(
            || format!("conn {id} server"),
            s.server.to_string(),
            tc["server"].as_str().unwrap().to_owned(),
        );
        for (d, name) in DIRS.iter().enumerate() {
            c.eq(
                || format!("conn {id} {name} sha256"),
                sha(&bytes[d]),
                tc["payload_sha256"][name].as_str().unwrap_or("").to_owned(),
            );
        }
        // Detection by content only.
        let b = &bytes[0];
        let proto = if b.is_empty() {
            "no_payload"
        } else if b.starts_with(b"POST /mmtls/") {
            "mmtls_short"
        } else if mmtls::looks_like_record(b) {
            "mmtls_long"
        } else if message::split(b, &Limits::default())
            .is_ok_and(|m| m.first().is_some_and(|m| m.is_request()))
        {
            "http"
        } else {
            "unknown"
        };
        c.eq(
            || format!("conn {id} protocol"),
            proto,
            tc["protocol"].as_str().unwrap(),
        );
    }

    // ---- MMTLS records ----
    let mut by_type: BTreeMap<u8, usize> = BTreeMap::new();
    let mut by_crypto: BTreeMap<&str, usize> = BTreeMap::new();
    let mut outer_used: BTreeSet<usize> = BTreeSet::new();
    let mut total = 0;
    let mut found_bp: Vec<Found> = Vec::new();
    let mut dissected: BTreeMap<u64, [DirResult<'_>; 2]> = BTreeMap::new();
    for ec in exp["mmtls"].as_array().unwrap() {
        let id = ec["conn"].as_u64().unwrap();
        let short = ec["kind"] == "short";
        let Some(bytes) = conns.get(&id) else {
            continue;
        };
        let [a, b] = [0, 1].map(|d| {
            dissect(
                &bytes[d],
                short,
                &keys,
                &mut c.problems,
                &format!("conn {id} {}", DIRS[d]),
            )
        });
        dissected.insert(id, [a, b]);
        let res = &dissected[&id];
        for (d, name) in DIRS.iter().enumerate() {
            let want = ec[name].as_array().unwrap();
            let recs = &res[d].recs;
            c.eq(
                || format!("conn {id} {name} record count"),
                recs.len(),
                want.len(),
            );
            for (r, w) in recs.iter().zip(want) {
                let at = |f: &str| format!("conn {id} {name} record {} {f}", r.i);
                total += 1;
                *by_type.entry(r.typ.0).or_default() += 1;
                *by_crypto.entry(r.crypto).or_default() += 1;
                c.eq(|| at("i"), r.i as u64, w["i"].as_u64().unwrap());
                c.eq(
                    || at("type"),
                    format!("0x{:02x}", r.typ.0),
                    w["type"].as_str().unwrap().to_owned(),
                );
                c.eq(|| at("type_name"), r.typ.name(), w["type_name"].as_str());
                c.eq(|| at("len"), u64::from(r.len), w["len"].as_u64().unwrap());
                c.eq(
                    || at("stream_off"),
                    r.stream_off,
                    w["stream_off"].as_u64().unwrap(),
                );
                c.eq(
                    || at("http_msg"),
                    r.http_msg.map(|m| m as u64),
                    w["http_msg"].as_u64(),
                );
                c.eq(|| at("crypto"), r.crypto, w["crypto"].as_str().unwrap());
                c.eq(
                    || at("keylog_line"),
                    r.line.map(|l| l as u64),
                    w["keylog_line"].as_u64(),
                );
                if let Some(line) = r.line {
                    outer_used.insert(line);
                    let e = keys.outer_entry(line).unwrap();
                    c.eq(|| at("aead_seq"), e.seq(), w["aead_seq"].as_u64());
                    c.eq(
                        || at("iv_xor_seq"),
                        e.static_iv().map(hex::encode),
                        w["iv_xor_seq"].as_str().map(str::to_owned),
                    );
                    c.eq(
                        || at("aad_header_matches"),
                        e.aad_header() == Some(&r.raw[..5]),
                        w["aad_header_matches"] == true,
                    );
                    c.eq(
                        || at("pt_len"),
                        r.plain.as_ref().map(|p| p.len() as u64),
                        w["pt_len"].as_u64(),
                    );
                }
                if let Some(a) = w["alert_hex"].as_str() {
                    c.eq(
                        || at("alert_hex"),
                        r.plain.as_ref().map(hex::encode),
                        Some(a.to_owned()),
                    );
                }
                if let Some(a) = w["plaintext_hex"].as_str() {
                    c.eq(
                        || at("plaintext_hex"),
                        r.plain.as_ref().map(hex::encode),
                        Some(a.to_owned()),
                    );
                }
                let hs = &w["handshake"];
                match (r.crypto, r.plain.as_deref()) {
                    ("plaintext", Some(p)) if !hs.is_null() => match mmtls::parse_hello(p) {
                        Ok(Hello::ClientHello(h)) => {
                            c.eq(|| at("msg"), "client_hello", hs["msg"].as_str().unwrap());
                            c.eq(
                                || at("random"),
                                hex::encode(h.random),
                                hs["random"].as_str().unwrap().to_owned(),
                            );
                            c.eq(
                                || at("timestamp"),
                                u64::from(h.timestamp),
                                hs["timestamp"].as_u64().unwrap(),
                            );
                            let want: Vec<String> = hs["cipher_suites"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .map(hexs)
                                .collect();
                            let got: Vec<String> =
                                h.cipher_suites.iter().map(|s| format!("{s:04x}")).collect();
                            c.eq(|| at("cipher_suites"), got, want);
                        }
                        Ok(Hello::ServerHello(h)) => {
                            c.eq(|| at("msg"), "server_hello", hs["msg"].as_str().unwrap());
                            c.eq(
                                || at("random"),
                                hex::encode(h.random),
                                hs["random"].as_str().unwrap().to_owned(),
                            );
                            c.eq(
                                || at("cipher_suite"),
                                format!("{:04x}", h.cipher_suite),
                                hexs(&hs["cipher_suite"]),
                            );
                        }
                        Err(e) => c.problems.push(format!("{}: {e}", at("hello"))),
                    },
                    ("decrypted", Some(p))
                        if r.typ == RecordType::HANDSHAKE
                            || r.typ == RecordType::RESUMPTION_HANDSHAKE =>
                    {
                        let name = mmtls::handshake_type(p).and_then(|t| t.name());
                        c.eq(|| at("handshake msg"), name, hs["msg"].as_str());
                    }
                    _ => c.eq(|| at("handshake"), Value::Null, hs.clone()),
                }
            }
        }
    }
    c.eq(|| "records".into(), total, 204);
    let want_types: BTreeMap<u8, usize> = [(0x15, 47), (0x16, 61), (0x17, 50), (0x19, 46)].into();
    c.eq(|| "records by type".into(), by_type, want_types);
    let want_crypto: BTreeMap<&str, usize> =
        [("decrypted", 117), ("no_key", 33), ("plaintext", 54)].into();
    c.eq(
        || "records by crypto status (no 'failed')".into(),
        by_crypto,
        want_crypto,
    );
    c.eq(|| "OUTER lines used".into(), outer_used.len(), 117);
    let unused: Vec<u64> = keys
        .outer
        .iter()
        .map(|e| e.line as u64)
        .filter(|l| !outer_used.contains(&(*l as usize)))
        .collect();
    let want_unused: Vec<u64> = exp["keylog_usage"]["outer_unused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["line"].as_u64().unwrap())
        .collect();
    c.eq(|| "OUTER lines unused".into(), unused, want_unused);

    // ---- Short links ----
    let mut n_post = 0;
    let mut early_ok = 0;
    let mut resp_ok = 0;
    let mut uris = BTreeSet::new();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for es in exp["shortlink"].as_array().unwrap() {
        let id = es["conn"].as_u64().unwrap();
        let Some([req, resp]) = dissected.get(&id) else {
            c.problems
                .push(format!("shortlink conn {id}: not dissected"));
            continue;
        };
        let at = |f: &str| format!("shortlink conn {id} {f}");
        let Some(m) = req.http.first() else {
            c.problems.push(at("no request"));
            continue;
        };
        if shortlink::is_short_link_request(m) {
            n_post += 1;
        }
        c.eq(
            || at("request_line"),
            m.start_line(),
            es["request_line"].as_str().unwrap().to_owned(),
        );
        c.eq(
            || at("host"),
            m.header_str("Host"),
            es["http_host"].as_str(),
        );
        c.eq(
            || at("content_length"),
            m.body.len() as u64,
            es["content_length"].as_u64().unwrap(),
        );
        let types = |recs: &[Rec]| {
            recs.iter()
                .map(|r| format!("0x{:02x}", r.typ.0))
                .collect::<Vec<_>>()
        };
        let strs = |v: &Value| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        c.eq(
            || at("request_records"),
            types(&req.recs),
            strs(&es["request_records"]),
        );
        let kind = match req.recs.first().map(|r| r.typ) {
            Some(RecordType::RESUMPTION_HANDSHAKE) => "psk_0rtt",
            _ => "full_handshake_only",
        };
        *kinds.entry(kind).or_default() += 1;
        c.eq(|| at("kind"), kind, es["kind"].as_str().unwrap());
        // Early data.
        let early = req.recs.iter().find(|r| r.typ == RecordType::DATA);
        match (early, &es["early_data"]) {
            (Some(r), ed) if r.crypto == "decrypted" => {
                early_ok += 1;
                let pt = r.plain.as_deref().unwrap();
                match ShortLinkPayload::parse(pt) {
                    Ok((p, used)) => {
                        uris.insert(p.uri.to_owned());
                        c.eq(|| at("uri"), Some(p.uri), ed["uri"].as_str());
                        c.eq(|| at("early host"), Some(p.host), ed["host"].as_str());
                        c.eq(
                            || at("body_len"),
                            p.body.len() as u64,
                            ed["body_len"].as_u64().unwrap(),
                        );
                        c.eq(
                            || at("pt_len"),
                            pt.len() as u64,
                            ed["pt_len"].as_u64().unwrap(),
                        );
                        c.eq(
                            || at("total_len"),
                            u64::from(p.total),
                            ed["total_len"].as_u64().unwrap(),
                        );
                        c.eq(
                            || at("total_len_ok"),
                            p.total_matches(pt.len()),
                            ed["total_len_ok"] == true,
                        );
                        c.eq(
                            || at("trailing"),
                            (pt.len() - used) as u64,
                            ed["trailing"].as_u64().unwrap(),
                        );
                        c.eq(
                            || at("body_first_byte"),
                            p.body.first().map(|b| format!("0x{b:02x}")),
                            ed["body_first_byte"].as_str().map(str::to_owned),
                        );
                        let cgi = BusinessHeader::parse(p.body)
                            .ok()
                            .map(|h| u64::from(h.0.cgi));
                        c.eq(|| at("business_cgi"), cgi, ed["business_cgi"].as_u64());
                        if p.body.first() == Some(&business::MAGIC) {
                            found_bp.push(Found {
                                conn: id,
                                dir: "c2s",
                                packet: p.body.to_vec(),
                                uri: Some(p.uri.to_owned()),
                            });
                        }
                    }
                    Err(e) => c.problems.push(format!("{}: {e}", at("early data"))),
                }
            }
            // Full-handshake-only requests carry no early data at all.
            (r, _) => c.eq(
                || at("early_data_status"),
                r.map(|r| r.crypto),
                es["early_data_status"].as_str(),
            ),
        }
        // Response.
        let er = &es["response"];
        let Some(rm) = resp.http.first() else {
            c.problems.push(at("no response"));
            continue;
        };
        c.eq(
            || at("status_line"),
            rm.start_line(),
            er["status_line"].as_str().unwrap().to_owned(),
        );
        c.eq(
            || at("response content_length"),
            rm.body.len() as u64,
            er["content_length"].as_u64().unwrap(),
        );
        c.eq(
            || at("response records"),
            types(&resp.recs),
            strs(&er["records"]),
        );
        let data = resp.recs.iter().find(|r| r.typ == RecordType::DATA);
        c.eq(
            || at("data_status"),
            data.map(|r| r.crypto),
            er["data_status"].as_str(),
        );
        if let Some(r) = data.filter(|r| r.crypto == "decrypted") {
            resp_ok += 1;
            let pt = r.plain.as_deref().unwrap();
            c.eq(
                || at("data_len"),
                Some(pt.len() as u64),
                er["data_len"].as_u64(),
            );
            c.eq(
                || at("data_starts_bf"),
                Some(pt.first() == Some(&0xbf)),
                er["data_starts_bf"].as_bool(),
            );
            if pt.first() == Some(&business::MAGIC) {
                let uri = early
                    .and_then(|r| r.plain.as_deref())
                    .and_then(|p| ShortLinkPayload::parse(p).ok())
                    .map(|(p, _)| p.uri.to_owned());
                found_bp.push(Found {
                    conn: id,
                    dir: "s2c",
                    packet: pt.to_vec(),
                    uri,
                });
            }
        }
    }
    let sum = &exp["summary"]["shortlink"];
    c.eq(|| "POST /mmtls/<8 hex>".into(), n_post, 25);
    c.eq(
        || "POSTs".into(),
        n_post as u64,
        sum["http_requests"].as_u64().unwrap(),
    );
    c.eq(
        || "psk_0rtt".into(),
        kinds.get("psk_0rtt").copied(),
        Some(23),
    );
    c.eq(
        || "full_handshake_only".into(),
        kinds.get("full_handshake_only").copied(),
        Some(2),
    );
    c.eq(|| "early data decrypted".into(), early_ok, 21);
    c.eq(|| "response data decrypted".into(), resp_ok, 15);
    let want_uris: BTreeSet<String> = sum["uris"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_owned())
        .collect();
    c.eq(|| "distinct URIs".into(), uris.len(), 10);
    c.eq(|| "URIs".into(), uris, want_uris);

    // ---- Long link: one 16-byte-header frame per decrypted data record ----
    for el in exp["longlink"].as_array().unwrap() {
        let id = el["conn"].as_u64().unwrap();
        let Some(res) = dissected.get(&id) else {
            continue;
        };
        let want = el["frames"].as_array().unwrap();
        let mut n = 0;
        for (d, name) in DIRS.iter().enumerate() {
            for r in res[d]
                .recs
                .iter()
                .filter(|r| r.typ == RecordType::DATA && r.crypto == "decrypted")
            {
                let p = r.plain.as_deref().unwrap();
                let Some(h) = p.get(..16) else {
                    c.problems
                        .push(format!("conn {id} {name} record {}: short frame", r.i));
                    continue;
                };
                let be = |a: usize| u32::from_be_bytes([h[a], h[a + 1], h[a + 2], h[a + 3]]);
                let (len, cmd, seq) = (be(0), be(8), be(12));
                let Some(w) = want
                    .iter()
                    .find(|w| w["dir"] == *name && w["record_i"] == r.i as u64)
                else {
                    c.problems
                        .push(format!("conn {id} {name} record {}: unexpected frame", r.i));
                    continue;
                };
                n += 1;
                c.eq(
                    || format!("conn {id} frame {} len/cmd/seq", w["i"]),
                    (u64::from(len), u64::from(cmd), u64::from(seq)),
                    (
                        w["len"].as_u64().unwrap(),
                        w["cmd"].as_u64().unwrap(),
                        w["seq"].as_u64().unwrap(),
                    ),
                );
                c.eq(
                    || format!("conn {id} frame {} length = record", w["i"]),
                    len as usize,
                    p.len(),
                );
                if p.get(16) == Some(&business::MAGIC) {
                    found_bp.push(Found {
                        conn: id,
                        dir: DIRS[d],
                        packet: p[16..].to_vec(),
                        uri: None,
                    });
                }
            }
        }
        c.eq(|| format!("conn {id} frames"), n, want.len());
    }

    // ---- Business packets ----
    let ebp = exp["business_packets"].as_array().unwrap();
    c.eq(
        || "business packets visible".into(),
        found_bp.len(),
        ebp.len(),
    );
    c.eq(
        || "business packets visible (38)".into(),
        found_bp.len(),
        38,
    );
    let mut inner_used: BTreeSet<usize> = BTreeSet::new();
    let (mut n_req, mut n_resp, mut n_plain) = (0, 0, 0);
    let mut by_algo: BTreeMap<u8, usize> = BTreeMap::new();
    let mut session_key_checked = false;
    for f in &found_bp {
        let Some(w) = ebp
            .iter()
            .find(|w| w["conn"] == f.conn && w["dir"] == f.dir)
        else {
            c.problems.push(format!(
                "business packet conn {} {}: not expected",
                f.conn, f.dir
            ));
            continue;
        };
        let at = |x: &str| {
            format!(
                "business packet {} (conn {} {}) {x}",
                w["id"], f.conn, f.dir
            )
        };
        let (h, outcome) = match business::decode(&f.packet, &keys) {
            Ok(v) => v,
            Err(e) => {
                c.problems.push(format!("{}: {e}", at("header")));
                continue;
            }
        };
        let wh = &w["header"];
        c.eq(
            || at("algo"),
            u64::from(h.algo.0),
            wh["algo"].as_u64().unwrap(),
        );
        c.eq(|| at("cgi"), u64::from(h.cgi), wh["cgi"].as_u64().unwrap());
        c.eq(
            || at("cgi_name"),
            syncscope::proto::commands::cgi_name(h.cgi),
            w["cgi_name"].as_str(),
        );
        c.eq(
            || at("client_version"),
            format!("0x{:08x}", h.client_version),
            wh["client_version"].as_str().unwrap().to_owned(),
        );
        c.eq(
            || at("compress_flag"),
            u64::from(h.compress.0),
            wh["compress_flag"].as_u64().unwrap(),
        );
        c.eq(
            || at("cookie"),
            hex::encode(h.cookie),
            wh["cookie"].as_str().unwrap().to_owned(),
        );
        c.eq(
            || at("cookie_len"),
            u64::from(h.cookie_len),
            wh["cookie_len"].as_u64().unwrap(),
        );
        c.eq(
            || at("header_len"),
            u64::from(h.header_len),
            wh["header_len"].as_u64().unwrap(),
        );
        c.eq(
            || at("len_compressed"),
            u64::from(h.compressed_len),
            wh["len_compressed"].as_u64().unwrap(),
        );
        c.eq(
            || at("len_uncompressed"),
            u64::from(h.plain_len),
            wh["len_uncompressed"].as_u64().unwrap(),
        );
        c.eq(|| at("uin"), u64::from(h.uin), wh["uin"].as_u64().unwrap());
        c.eq(
            || at("rest_hex"),
            hex::encode(h.rest),
            wh["rest_hex"].as_str().unwrap().to_owned(),
        );
        let rt = &wh["rest_tentative"];
        match h.rest_fields() {
            Some(r) => c.eq(
                || at("rest_tentative"),
                (
                    u64::from(r.v1),
                    u64::from(r.v2),
                    u64::from(r.signature),
                    format!("0x{:02x}", r.flag),
                    u64::from(r.v3),
                    hex::encode(r.tail),
                ),
                (
                    rt["v1"].as_u64().unwrap(),
                    rt["v2"].as_u64().unwrap(),
                    rt["signature"].as_u64().unwrap(),
                    rt["flag_byte"].as_str().unwrap().to_owned(),
                    rt["v3"].as_u64().unwrap(),
                    rt["tail_hex"].as_str().unwrap().to_owned(),
                ),
            ),
            None => c.problems.push(at("rest_tentative does not parse")),
        }
        c.eq(
            || at("len"),
            f.packet.len() as u64,
            w["len"].as_u64().unwrap(),
        );
        c.eq(
            || at("body_len"),
            (f.packet.len() - usize::from(h.header_len)) as u64,
            w["body_len"].as_u64().unwrap(),
        );
        c.eq(|| at("uri"), f.uri.as_deref(), w["uri"].as_str());
        if h.is_response() {
            n_resp += 1;
        } else {
            n_req += 1;
        }
        *by_algo.entry(h.algo.0).or_default() += 1;
        let d = match outcome {
            Outcome::Decoded(d) => d,
            other => {
                c.problems.push(format!("{}: {other:?}", at("not decoded")));
                continue;
            }
        };
        n_plain += 1;
        let wc = &w["crypto"];
        c.eq(
            || at("protobuf.sha256"),
            sha(&d.plaintext),
            w["protobuf"]["sha256"].as_str().unwrap().to_owned(),
        );
        c.eq(
            || at("protobuf.len"),
            d.plaintext.len() as u64,
            w["protobuf"]["len"].as_u64().unwrap(),
        );
        c.eq(|| at("key_by_trial"), d.key_by_trial, false);
        inner_used.extend(d.key_lines.iter().copied());
        if let Some(env) = &d.envelope {
            for ef in &env.fields {
                if let Some(o) = &ef.opened {
                    inner_used.extend(o.key_lines.iter().copied());
                }
            }
            c.eq(
                || at("client_random_fields_equal"),
                env.client_random_equal,
                wc["client_random_fields_equal"].as_bool(),
            );
            c.eq(
                || at("inflated_len"),
                Some(d.plaintext.len() as u64),
                wc["inflated_len"].as_u64(),
            );
            for wl in wc["layout"].as_array().unwrap() {
                let fnum = wl["field"].as_u64().unwrap() as u32;
                let Some(ef) = env.fields.iter().find(|e| e.field == fnum) else {
                    c.problems
                        .push(at(&format!("envelope field {fnum} missing")));
                    continue;
                };
                let af = |x: &str| at(&format!("envelope field {fnum} {x}"));
                c.eq(
                    || af("wt"),
                    u64::from(ef.wire_type),
                    wl["wt"].as_u64().unwrap(),
                );
                if let Some(l) = wl["len"].as_u64() {
                    c.eq(|| af("len"), ef.len as u64, l);
                }
                if let Some(v) = wl["value"].as_u64() {
                    c.eq(|| af("value"), ef.varint, Some(v));
                }
                if let Some(p) = wl["ecdh_pub"]["nid"].as_u64() {
                    c.eq(|| af("nid"), env.nid, Some(p));
                }
                if wl["gcm_status"].is_string() {
                    let o = ef.opened.as_ref();
                    c.eq(
                        || af("gcm_status"),
                        o.map(|_| "decrypted"),
                        wl["gcm_status"].as_str(),
                    );
                    c.eq(
                        || af("decrypted_len"),
                        o.map(|o| o.decrypted_len as u64),
                        wl["decrypted_len"].as_u64(),
                    );
                    c.eq(
                        || af("inflated_len"),
                        o.and_then(|o| o.inflated_len).map(|l| l as u64),
                        wl["inflated_len"].as_u64(),
                    );
                    let want: Vec<usize> = wl["keys"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|k| k["keylog_line"].as_u64().unwrap() as usize)
                        .collect();
                    c.eq(
                        || af("keylog lines"),
                        o.map(|o| o.key_lines.clone()),
                        Some(want),
                    );
                    // Request AADs are derived from the envelope itself.
                    let derived = env.role == business::EnvelopeRole::Request;
                    c.eq(
                        || af("aad derived"),
                        o.map(|o| o.aad == business::AadSource::Derived),
                        Some(derived),
                    );
                }
            }
            // Session-key check: the auth response carries the AES-CBC session
            // key at protobuf path 3.3.2, encrypted with the CBC key of line 16.
            if env.role == business::EnvelopeRole::Response {
                for sk in w["session_key_check"].as_array().into_iter().flatten() {
                    let path: Vec<u32> = sk["pb_path"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| p.as_u64().unwrap() as u32)
                        .collect();
                    let mut cur: &[u8] = &d.plaintext;
                    for p in &path {
                        let fields = business::pb_fields(cur).unwrap_or_default();
                        cur = match fields.iter().find(|f| f.0 == *p) {
                            Some((_, _, business::PbValue::Bytes(b))) => b,
                            _ => &[],
                        };
                    }
                    match keys.open_inner_cbc(cur) {
                        Decrypt::Plaintext(o) => {
                            session_key_checked = true;
                            inner_used.insert(o.line);
                            c.eq(
                                || at("session key line"),
                                o.line as u64,
                                sk["keylog_line"].as_u64().unwrap(),
                            );
                            c.eq(
                                || at("session key"),
                                hex::encode(&o.plaintext),
                                sk["session_key"].as_str().unwrap().to_owned(),
                            );
                            let is_cbc_key = keys.inner_cbc.iter().any(|e| e.key == o.plaintext);
                            c.eq(
                                || at("session key is a logged CBC key"),
                                is_cbc_key,
                                sk["session_key_is_cbc_key_in_log"] == true,
                            );
                        }
                        other => c.problems.push(format!("{}: {other:?}", at("session key"))),
                    }
                }
            }
        } else {
            c.eq(
                || at("decrypted_len"),
                Some(d.decrypted_len as u64),
                wc["decrypted_len"].as_u64(),
            );
            c.eq(|| at("zlib"), Some(d.inflated), wc["zlib"].as_bool());
            if d.inflated {
                c.eq(
                    || at("inflated_len"),
                    Some(d.plaintext.len() as u64),
                    wc["inflated_len"].as_u64(),
                );
            }
            let want: BTreeSet<usize> = wc["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["keylog_line"].as_u64().unwrap() as usize)
                .collect();
            c.eq(
                || at("keylog lines"),
                d.key_lines.iter().copied().collect::<BTreeSet<_>>(),
                want,
            );
        }
    }
    let bsum = &exp["summary"]["business_packets"];
    c.eq(|| "business requests".into(), n_req, 22);
    c.eq(|| "business responses".into(), n_resp, 16);
    c.eq(|| "business fully decrypted".into(), n_plain, 38);
    c.eq(
        || "business requests (summary)".into(),
        n_req as u64,
        bsum["requests"].as_u64().unwrap(),
    );
    c.eq(
        || "business responses (summary)".into(),
        n_resp as u64,
        bsum["responses"].as_u64().unwrap(),
    );
    let want_algo: BTreeMap<u8, usize> = [(5, 32), (12, 2), (13, 4)].into();
    c.eq(|| "business by algo".into(), by_algo, want_algo);
    c.eq(|| "session key checked".into(), session_key_checked, true);
    // INNER key-log usage: every line expected.json says is used, and only those.
    let want_inner: BTreeSet<usize> = exp["keylog_usage"]["inner_used_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["line"].as_u64().unwrap() as usize)
        .collect();
    c.eq(|| "INNER lines used".into(), inner_used.clone(), want_inner);
    c.eq(|| "INNER lines used (42)".into(), inner_used.len(), 42);

    // Hidden business packets: (conn, dir) whose data record has no key.
    let mut hidden = BTreeSet::new();
    for (id, res) in &dissected {
        for (d, name) in DIRS.iter().enumerate() {
            if res[d]
                .recs
                .iter()
                .any(|r| r.typ == RecordType::DATA && r.crypto == "no_key")
            {
                hidden.insert((*id, name.to_string()));
            }
        }
    }
    let want_hidden: BTreeSet<(u64, String)> = bsum["not_decryptable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["conn"].as_u64().unwrap(),
                n["dir"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    c.eq(|| "not decryptable (conn, dir)".into(), hidden, want_hidden);

    eprintln!(
        "wechat_crypto: {} comparisons, {} mismatches",
        c.checked,
        c.problems.len()
    );
    assert!(
        c.problems.is_empty(),
        "{} of {} comparisons with expected.json failed:\n{}",
        c.problems.len(),
        c.checked,
        c.problems.join("\n")
    );
}

/// Every truncated prefix of real short-link request and response streams
/// goes through the HTTP splitter, record splitter, key log, early-data and
/// business parsers without panicking.
#[test]
fn truncated_real_streams_never_panic() {
    let keys = KeyLog::load(dir().join("frida-logged-in-all-keys.log")).unwrap();
    let (got, _) = run_file(&dir().join("capture-logged-in-all-keys.pcapng"));
    // conn 18 (statusnotify, both directions decrypt) and conn 31 (long link).
    for (s, bytes) in got.flows.iter().filter(|(s, _)| s.id == 18 || s.id == 31) {
        for b in bytes {
            for n in (0..=b.len()).step_by(7).chain([b.len()]) {
                let p = &b[..n];
                let bodies: Vec<&[u8]> = if s.id == 18 {
                    message::split(p, &Limits::default())
                        .map(|m| m.iter().map(|m| m.body).collect())
                        .unwrap_or_default()
                } else {
                    vec![p]
                };
                for body in bodies {
                    let (recs, _) = mmtls::split_all(0, body);
                    for r in recs {
                        if let Decrypt::Plaintext(o) = keys.decrypt_record(r.raw) {
                            let pt = &o.plaintext;
                            for k in (0..=pt.len()).step_by(3) {
                                let _ = ShortLinkPayload::parse(&pt[..k]);
                                let _ = business::decode(&pt[..k], &keys);
                                if let Some(f) = pt.get(16..k) {
                                    let _ = business::decode(f, &keys);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
