//! The analyzer's output unit: one [`FrameRecord`] per application frame
//! (or MMTLS record), built by [`FrameRecord::new`] with what every record
//! has; each protocol's glue fills in the rest with struct update syntax.

use serde::Serialize;

use super::{Here, RolesBy};
use crate::capture::Timestamp;
use crate::flow::Direction;
use crate::proto::longlink;
use crate::proto::mmtls::RecordType;

/// Which dissector produced a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    Longlink,
    /// Long-link frames with the Tencent Mars 20-byte header.
    Mars,
    Shortlink,
    Mmtls,
    /// An HTTP exchange that is not a known web endpoint.
    Http,
    /// A web WeChat exchange (jslogin ... webwxsendmsg).
    Web,
    /// A TLS record.
    Tls,
    /// An HTTP/2 frame (its exchanges are `http` or `web` records).
    Http2,
}

impl Layer {
    /// Every layer, in the order the help lists them: what `--layer`
    /// accepts is what records print.
    pub const ALL: [Layer; 8] = [
        Layer::Longlink,
        Layer::Mars,
        Layer::Shortlink,
        Layer::Mmtls,
        Layer::Http,
        Layer::Web,
        Layer::Tls,
        Layer::Http2,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Longlink => "longlink",
            Layer::Mars => "mars",
            Layer::Shortlink => "shortlink",
            Layer::Mmtls => "mmtls",
            Layer::Http => "http",
            Layer::Web => "web",
            Layer::Tls => "tls",
            Layer::Http2 => "http2",
        }
    }
}

impl std::str::FromStr for Layer {
    type Err = String;

    /// A layer by the name records print (`http`, `web`, ...).
    fn from_str(s: &str) -> Result<Layer, String> {
        Layer::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Layer::ALL.iter().map(|l| l.as_str()).collect();
                format!("unknown layer '{s}' (one of {})", names.join(", "))
            })
    }
}

/// What a record is, as its `kind` field names it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A message: request, response, push or heartbeat.
    Message(longlink::Kind),
    /// An MMTLS record of this type (`unknown` when the type is not known).
    Record(RecordType),
    /// A TLS record of this content type.
    Tls(u8),
    /// An HTTP/2 frame of this type.
    H2(u8),
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Message(k) => k.as_str(),
            Kind::Record(t) => t.name().unwrap_or("unknown"),
            Kind::Tls(t) => crate::proto::tls::content_type_name(t),
            Kind::H2(t) => crate::proto::h2::type_name(t),
        }
    }
}

impl From<longlink::Kind> for Kind {
    fn from(k: longlink::Kind) -> Self {
        Kind::Message(k)
    }
}

/// One application frame (or, on the `mmtls` layer, one MMTLS record).
#[derive(Debug, Clone, Serialize)]
pub struct FrameRecord {
    /// The capture file of the packet that completed the record, when a run
    /// reads several (absent for one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub ts: Timestamp,
    pub conn: u64,
    pub dir: Direction,
    /// How the roles behind `dir` were inferred (protocol, port or
    /// first_packet); absent when a SYN or SYN+ACK showed them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<RolesBy>,
    pub layer: Layer,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u32>,
    /// Frame (or record) length, header included.
    pub len: u64,
    /// request, response, push, heartbeat; for MMTLS records the record type.
    pub kind: String,
    /// Offset of the frame's first byte in its direction's TCP stream (for
    /// frames inside MMTLS records: of the record).
    pub stream_offset: u64,
    /// The first and the last captured packet (by number: 1-based, as
    /// Wireshark numbers them) that carried the record's bytes; the last is
    /// the one that completed it, where Wireshark shows a reassembled PDU
    /// (also when a segment came late). An exchange runs from its request's
    /// first packet to its response's last. Absent when not known (packets
    /// not numbered, or older than the marks kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_packet: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_packet: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<u64>,
    pub after_gap: bool,
    /// Decoded body, or hex with an entropy figure.
    pub body: serde_json::Value,
    /// Index of the MMTLS record (per direction) the frame came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mmtls_record: Option<u64>,
    /// Index of the TLS record (per direction).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_record: Option<u64>,
    /// MMTLS and TLS records: plaintext, decrypted, no_key or failed (TLS
    /// also unsupported_suite).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crypto: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business: Option<serde_json::Value>,
    /// HTTP exchanges: the request method and path (with query), the status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Web exchanges: the endpoint (webwxsync, synccheck, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<&'static str>,
    /// The bytes the record was decoded from, when [`Options::raw`](super::Options::raw)
    /// asked for them (never printed).
    #[serde(skip)]
    pub raw: Option<Box<Raw>>,
}

/// What a record was decoded from: enough to send it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Raw {
    /// A long-link frame's body (on TCP, or from a decrypted MMTLS record).
    Frame(Vec<u8>),
    /// A short-link business packet (decrypted early data or response data).
    Business(Vec<u8>),
    /// An HTTP exchange: the request when it was seen, and the response.
    Exchange {
        request: Option<Box<crate::proto::http::Message>>,
        response: Box<crate::proto::http::Message>,
    },
}

impl FrameRecord {
    /// A record of `len` bytes at `stream_offset` of the direction `at`
    /// names, with everything optional unset, no body and no gap before it.
    pub(super) fn new(
        at: &Here,
        layer: Layer,
        kind: impl Into<Kind>,
        stream_offset: u64,
        len: u64,
    ) -> Self {
        FrameRecord {
            file: None,
            ts: at.ts,
            conn: at.conn,
            dir: at.dir,
            roles: at.roles.inferred().then_some(at.roles),
            layer,
            cmd: None,
            cmd_name: None,
            seq: None,
            len,
            kind: kind.into().as_str().to_owned(),
            stream_offset,
            first_packet: None,
            last_packet: None,
            latency_us: None,
            raw: None,
            after_gap: false,
            body: serde_json::Value::Null,
            mmtls_record: None,
            tls_record: None,
            crypto: None,
            uri: None,
            host: None,
            business: None,
            method: None,
            path: None,
            status: None,
            endpoint: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn here() -> Here {
        Here {
            conn: 3,
            dir: Direction::ServerToClient,
            ts: Timestamp::new(1_700_000_000, 123_456_789, 9),
            roles: RolesBy::Syn,
        }
    }

    /// The constructor fills what every record has and leaves the rest
    /// unset: the JSON then holds exactly the always-present fields, in
    /// declaration order.
    #[test]
    fn new_record_serializes_only_the_common_fields() {
        let r = FrameRecord::new(
            &here(),
            Layer::Shortlink,
            longlink::Kind::Response,
            1234,
            56,
        );
        let json = serde_json::to_string(&r).unwrap();
        let keys: Vec<String> = serde_json::from_str::<serde_json::Map<_, _>>(&json)
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let mut want = vec![
            "ts",
            "conn",
            "dir",
            "layer",
            "len",
            "kind",
            "stream_offset",
            "after_gap",
            "body",
        ];
        want.sort_unstable();
        assert_eq!(keys, want);
        assert!(json.contains(r#""conn":3,"dir":"s2c","layer":"shortlink","len":56,"kind":"response","stream_offset":1234,"after_gap":false,"body":null"#), "{json}");
    }

    /// Set fields appear in their declared place; MMTLS record kinds come
    /// from the record type (unknown types are `unknown`).
    #[test]
    fn set_fields_and_record_kinds() {
        let r = FrameRecord {
            file: None,
            cmd: Some(121),
            seq: Some(7),
            mmtls_record: Some(2),
            crypto: Some("decrypted"),
            ..FrameRecord::new(&here(), Layer::Mmtls, Kind::Record(RecordType(0x17)), 0, 9)
        };
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            json.contains(r#""layer":"mmtls","cmd":121,"seq":7,"len":9,"kind":"data","#),
            "{json}"
        );
        assert!(
            json.ends_with(r#""body":null,"mmtls_record":2,"crypto":"decrypted"}"#),
            "{json}"
        );
        assert_eq!(Kind::Record(RecordType(0x42)).as_str(), "unknown");
        assert_eq!(
            Kind::Record(RecordType(0x19)).as_str(),
            "handshake_resumption"
        );
        assert_eq!(Kind::from(longlink::Kind::Push).as_str(), "push");
    }

    /// `--layer` takes exactly the names records print.
    #[test]
    fn layer_names_parse_back_and_match_the_json() {
        for l in Layer::ALL {
            assert_eq!(l.as_str().parse::<Layer>(), Ok(l));
            assert_eq!(
                serde_json::to_value(l).unwrap(),
                serde_json::Value::from(l.as_str())
            );
        }
        let e = "shortlinks".parse::<Layer>().unwrap_err();
        assert_eq!(
            e,
            "unknown layer 'shortlinks' (one of longlink, mars, shortlink, mmtls, http, web, tls, http2)"
        );
    }
}
