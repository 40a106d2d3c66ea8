//! Frame body decoding for the analyzer: the identify body, business
//! packets, a user's schema when the profile maps the cmd, otherwise
//! schema-less protobuf, otherwise hex with an entropy figure.

use serde::Serialize;
use serde_json::Value;

use super::sends::{media_facts, newsendmsg_facts, SendFacts};
use super::{KeyMap, Options};
use crate::body::identify::Identify;
use crate::body::messages::{NewSyncRequest, NewSyncResponse};
use crate::body::protobuf::{decode_raw, to_json, Blob, SchemaError, Schemas};
use crate::capture::Timestamp;
use crate::proto::business::{self, BusinessHeader, Outcome, MAGIC};
use crate::proto::commands::{
    response, Mapping, Registry, CGI_NEWSENDMSG, CGI_NEWSYNC, IDENTIFY, NEWSENDMSG, NEWSYNC,
    SEQ_IDENTIFY, UPLOADMSGIMG, UPLOADVOICE,
};
use crate::proto::longlink::Header;
use crate::track::synckey::{Message, Observation, Source};

/// The message a SyncKey was seen in, as `analyze` lists it (the `source`
/// of a [`super::SyncKeySeen`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncKeySource {
    /// The identify frame a client sends first on a long link (cmd 205).
    LonglinkIdentify,
    /// The KeyBuf of a newsync request (long link cmd 121, cgi 138).
    NewsyncRequest,
    /// The KeyBuf of a newsync response.
    NewsyncResponse,
}

impl SyncKeySource {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncKeySource::LonglinkIdentify => "longlink_identify",
            SyncKeySource::NewsyncRequest => "newsync_request",
            SyncKeySource::NewsyncResponse => "newsync_response",
        }
    }

    /// The newsync KeyBuf of a request or a response.
    pub fn newsync(is_response: bool) -> Self {
        if is_response {
            SyncKeySource::NewsyncResponse
        } else {
            SyncKeySource::NewsyncRequest
        }
    }

    /// The field of a newsync message that holds the KeyBuf: 3 in the
    /// request, 4 in the response (None for the identify).
    pub fn keybuf_field(self) -> Option<u32> {
        match self {
            SyncKeySource::LonglinkIdentify => None,
            SyncKeySource::NewsyncRequest => Some(NewSyncRequest::FIELD_KEY_BUF),
            SyncKeySource::NewsyncResponse => Some(NewSyncResponse::FIELD_KEY_BUF),
        }
    }

    /// Who put the key on the wire.
    pub fn source(self) -> Source {
        match self {
            SyncKeySource::NewsyncResponse => Source::ServerIssued,
            SyncKeySource::LonglinkIdentify | SyncKeySource::NewsyncRequest => {
                Source::ClientPresented
            }
        }
    }

    /// The message on the SyncKey timeline.
    pub fn message(self) -> Message {
        match self {
            SyncKeySource::LonglinkIdentify => Message::Identify,
            SyncKeySource::NewsyncRequest => Message::NewsyncRequest,
            SyncKeySource::NewsyncResponse => Message::NewsyncResponse,
        }
    }

    /// A timeline observation of `keys` seen in this message.
    pub fn observation(self, ts: Timestamp, conn: u64, keys: KeyMap) -> Observation {
        Observation::new(ts, conn, self.source(), self.message(), keys)
    }
}

named!(SyncKeySource);

/// A decoded body and what trackers need from it.
#[derive(Default)]
pub struct Decoded {
    pub value: Value,
    /// A SyncKey the body carries, and the message it is in.
    pub synckey: Option<(SyncKeySource, KeyMap)>,
    pub business: Option<BusinessSummary>,
    /// The user, when the body names one (identify, business header).
    pub uin: Option<u64>,
    /// The device, when the body names one (the identify's network-id
    /// string: the device id on syncscope's server).
    pub device: Option<String>,
    /// MsgIds of the AddMsg items a newsync response delivers.
    pub msg_ids: Vec<String>,
    /// A newsendmsg's messages (request) or MsgIDs (answer), or the end of
    /// a media upload.
    pub sends: Option<SendFacts>,
    /// The user an identify names (its tail's context string).
    pub user: Option<String>,
}

fn blob(body: &[u8]) -> Value {
    serde_json::to_value(Blob::new(body)).unwrap_or(Value::Null)
}

/// The record body of an identify frame: `{"identify": {...}}`.
#[derive(Serialize)]
struct IdentifyBody<'a> {
    identify: IdentifyView<'a>,
}

#[derive(Serialize)]
struct IdentifyView<'a> {
    uin: u32,
    synckey: KeyMap,
    synckey_count: Option<u32>,
    client_version: String,
    locale: &'a str,
    network_id: &'a Option<String>,
    network_id_ctx: &'a Option<String>,
}

impl<'a> IdentifyBody<'a> {
    fn new(id: &'a Identify) -> Self {
        IdentifyBody {
            identify: IdentifyView {
                uin: id.uin,
                synckey: id.synckey.to_map(),
                synckey_count: id.synckey_count,
                client_version: format!("0x{:08x}", id.client_version),
                locale: &id.locale,
                network_id: &id.network_id,
                network_id_ctx: &id.network_id_ctx,
            },
        }
    }
}

/// Whether a long-link frame's body matters to the trackers even when no
/// record is wanted: the identify (SyncKey, user, device), newsync
/// (SyncKeys, MsgIds) and newsendmsg (ClientMsgIds).
pub fn tracker_needs_body(h: &Header) -> bool {
    (h.cmd == IDENTIFY && h.seq == SEQ_IDENTIFY)
        || matches!(
            h.request_cmd(),
            NEWSYNC | NEWSENDMSG | UPLOADMSGIMG | UPLOADVOICE
        )
}

/// Decodes a long-link frame body. Without `want_value` only what the
/// trackers need (SyncKeys, uin, MsgIds, the business summary) is worked out.
pub fn decode(opts: &Options, h: &Header, body: &[u8], want_value: bool) -> Decoded {
    let mut d = Decoded::default();
    if h.cmd == IDENTIFY && h.seq == SEQ_IDENTIFY {
        if let Ok(id) = Identify::decode(body) {
            d.synckey = Some((SyncKeySource::LonglinkIdentify, id.synckey.to_map()));
            d.uin = Some(id.uin as u64);
            d.device = id.network_id.clone().filter(|n| !n.is_empty());
            d.user = id.network_id_ctx.clone().filter(|n| !n.is_empty());
            d.value = serde_json::to_value(IdentifyBody::new(&id)).unwrap_or(Value::Null);
            return d;
        }
    }
    if body.first() == Some(&MAGIC) {
        // The cmd's message, when the profile maps it, is that of the
        // business packet's plaintext (the real client's long link).
        if let Some(b) = business(opts, body, opts.registry.message(h.cmd)) {
            d.value = b.body;
            d.business = Some(b.summary);
            d.uin = b.uin;
            d.msg_ids = b.msg_ids;
            d.synckey = b.synckey;
            d.sends = b.sends;
            return d;
        }
    }
    // A plain-protobuf newsync (the reference server's long link, old
    // clients).
    if h.request_cmd() == NEWSYNC {
        let is_response = h.cmd == response(NEWSYNC);
        let (synckey, msg_ids) = newsync_facts(body, is_response);
        if synckey.is_some() {
            d.synckey = synckey;
            d.msg_ids = msg_ids;
        }
    }
    if h.request_cmd() == NEWSENDMSG {
        d.sends = newsendmsg_facts(body, h.cmd == response(NEWSENDMSG));
    }
    let media = match h.request_cmd() {
        UPLOADMSGIMG => Some("uploadmsgimg"),
        UPLOADVOICE => Some("uploadvoice"),
        _ => None,
    };
    if let Some(cgi) = media {
        d.sends = media_facts(cgi, body, h.cmd == response(h.request_cmd()), false);
    }
    if !want_value {
        return d;
    }
    d.value = schema_or_raw(opts, opts.registry.message(h.cmd), body);
    d
}

/// A body decoded with the message the profile maps it to (`message`),
/// else schema-less ([`raw_or_blob`]). A body the message does not decode
/// says why under `schema_error`, its schema-less view under `raw`.
pub fn schema_or_raw(opts: &Options, message: Option<&str>, body: &[u8]) -> Value {
    let (Some(name), Some(schemas)) = (message, &opts.schemas) else {
        return raw_or_blob(body);
    };
    match schemas.decode(name, body) {
        Ok(v) => v,
        Err(e) => serde_json::to_value(SchemaFailure {
            schema_error: e.to_string(),
            raw: raw_or_blob(body),
        })
        .unwrap_or(Value::Null),
    }
}

/// A body the profile's schema did not decode.
#[derive(Serialize)]
struct SchemaFailure {
    schema_error: String,
    raw: Value,
}

/// Why a profile's message mappings do not fit the `.proto` files.
#[derive(Debug, thiserror::Error)]
pub enum ProfileMessageError {
    #[error(
        "the profile maps the {mapping} body to message '{name}', but no .proto file \
         was given: add --proto FILE.proto (the file that defines it; -I DIR for its \
         imports), e.g. --proto proto/wechat.proto"
    )]
    NoSchemas { mapping: Mapping, name: String },
    #[error("the profile's {mapping} message")]
    Message {
        mapping: Mapping,
        #[source]
        source: SchemaError,
    },
}

/// Checks a profile's message names against the schemas before a capture
/// is read and replaces each by the full name it resolves to (with or
/// without its package). An unknown name (with close matches), an
/// ambiguous one (with the candidates) or mappings without any schema are
/// errors.
pub fn resolve_profile(
    registry: &mut Registry,
    schemas: Option<&Schemas>,
) -> Result<(), ProfileMessageError> {
    let Some(schemas) = schemas else {
        return match registry.mappings().next() {
            Some((mapping, name)) => Err(ProfileMessageError::NoSchemas {
                mapping,
                name: name.to_owned(),
            }),
            None => Ok(()),
        };
    };
    registry
        .resolve_messages(|name| schemas.resolve(name))
        .map_err(|(mapping, source)| ProfileMessageError::Message { mapping, source })
}

/// What a newsync message (plain protobuf) tells: its KeyBuf's SyncKey
/// and, in a response, the MsgIds of the AddMsg items it delivers.
pub fn newsync_facts(
    msg: &[u8],
    is_response: bool,
) -> (Option<(SyncKeySource, KeyMap)>, Vec<String>) {
    let source = SyncKeySource::newsync(is_response);
    let (key, ids) = crate::body::messages::scan::whole(msg, is_response);
    (key.map(|k| (source, k)), ids)
}

/// What [`decode`] finds without `want_value` in a plain-protobuf newsync
/// body, from its scan ([`NewSyncScan`](crate::body::messages::scan::NewSyncScan)'s
/// SyncKey and MsgIds) instead of the body.
pub fn scanned_newsync(is_response: bool, (key, ids): (Option<KeyMap>, Vec<String>)) -> Decoded {
    let mut d = Decoded::default();
    if let Some(k) = key {
        d.synckey = Some((SyncKeySource::newsync(is_response), k));
        d.msg_ids = ids;
    }
    d
}

/// Schema-less protobuf when the bytes parse as a message, else hex.
pub fn raw_or_blob(body: &[u8]) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    match decode_raw(body) {
        Ok(fields) if !fields.is_empty() => serde_json::to_value(RawProtobuf {
            protobuf: to_json(&fields),
        })
        .unwrap_or(Value::Null),
        _ => blob(body),
    }
}

#[derive(Serialize)]
struct RawProtobuf {
    protobuf: Value,
}

/// The `business` object of a frame record: a business packet's header
/// fields and, with a key log, how its body decrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BusinessSummary {
    pub cgi: u32,
    pub cgi_name: Option<String>,
    pub algo: u8,
    pub compress: u8,
    pub uin: u32,
    pub decrypted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plaintext_len: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plaintext_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keylog_lines: Option<Vec<usize>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl BusinessSummary {
    /// The record's JSON `business` object.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    pub fn is_newsync(&self) -> bool {
        self.cgi == CGI_NEWSYNC
    }
}

/// A business packet: header fields, the decrypted protobuf when a key
/// opens it, and a SyncKey when it is a newsync.
pub struct Business {
    /// The `business` object of a frame record.
    pub summary: BusinessSummary,
    /// The body to show: decoded plaintext, or the encrypted bytes.
    pub body: Value,
    pub synckey: Option<(SyncKeySource, KeyMap)>,
    /// The header's uin (0 in responses: None).
    pub uin: Option<u64>,
    /// MsgIds of the AddMsg items of a newsync response.
    pub msg_ids: Vec<String>,
    /// A decrypted newsendmsg's messages or MsgIDs.
    pub sends: Option<SendFacts>,
}

/// Parses a `0xBF` business packet and, with a key log, decrypts it. The
/// plaintext is decoded with `message` when given (the long-link cmd's
/// mapping), else with the message the profile maps the cgi to, else
/// schema-less.
pub fn business(opts: &Options, packet: &[u8], message: Option<&str>) -> Option<Business> {
    use sha2::{Digest, Sha256};

    let (h, body_off) = BusinessHeader::parse(packet).ok()?;
    let body = packet.get(body_off..).unwrap_or(&[]);
    let outcome = match &opts.keylog {
        Some(keys) => business::decode_body(&h, body, keys),
        None => Outcome::NoKey,
    };
    let mut out = Business {
        summary: BusinessSummary {
            cgi: h.cgi,
            cgi_name: opts.registry.cgi_name(h.cgi).map(str::to_owned),
            algo: h.algo.0,
            compress: h.compress.0,
            uin: h.uin,
            decrypted: false,
            plaintext_len: None,
            plaintext_sha256: None,
            keylog_lines: None,
            error: None,
        },
        body: blob(body),
        synckey: None,
        uin: Some(h.uin as u64).filter(|&u| u != 0),
        msg_ids: Vec::new(),
        sends: None,
    };
    match outcome {
        Outcome::Decoded(d) => {
            let s = &mut out.summary;
            s.decrypted = true;
            s.plaintext_len = Some(d.plaintext.len());
            s.plaintext_sha256 = Some(hex::encode(Sha256::digest(&d.plaintext)));
            s.keylog_lines = Some(d.key_lines);
            let message = message.or_else(|| opts.registry.cgi_message(h.cgi, h.is_response()));
            out.body = schema_or_raw(opts, message, &d.plaintext);
            if h.cgi == CGI_NEWSYNC {
                (out.synckey, out.msg_ids) = newsync_facts(&d.plaintext, h.is_response());
            }
            if h.cgi == CGI_NEWSENDMSG {
                out.sends = newsendmsg_facts(&d.plaintext, h.is_response());
            }
        }
        Outcome::Failed(e) => out.summary.error = Some(e.to_string()),
        Outcome::NoKey => {}
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::messages::lenient;
    use crate::body::protobuf::{encode_bytes_field, encode_varint_field};
    use crate::body::synckey::SyncKey;

    use crate::body::messages::tests::lenient_reading::add_msg;

    /// Each source's serialized name, timeline message and who sent it.
    #[test]
    fn synckey_sources() {
        use SyncKeySource::*;
        let got: Vec<(String, &str, Source)> = [LonglinkIdentify, NewsyncRequest, NewsyncResponse]
            .into_iter()
            .map(|s| {
                assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
                assert!(s == s.as_str());
                (s.to_string(), s.message().as_str(), s.source())
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "longlink_identify".into(),
                    "identify",
                    Source::ClientPresented
                ),
                (
                    "newsync_request".into(),
                    "newsync_request",
                    Source::ClientPresented
                ),
                (
                    "newsync_response".into(),
                    "newsync_response",
                    Source::ServerIssued
                ),
            ]
        );
        assert_eq!(SyncKeySource::newsync(false), NewsyncRequest);
        assert_eq!(SyncKeySource::newsync(true), NewsyncResponse);
        assert_eq!(
            (
                NewsyncRequest.keybuf_field(),
                NewsyncResponse.keybuf_field()
            ),
            (Some(3), Some(4))
        );
        let o = NewsyncResponse.observation(Timestamp::new(5, 0, 6), 9, KeyMap::from([(1, 2)]));
        assert_eq!(
            (o.conn, o.dir, o.message),
            (
                9,
                crate::flow::Direction::ServerToClient,
                Message::NewsyncResponse
            )
        );
    }

    /// A profile's names are resolved to full names before a capture is
    /// read; mappings without schemas, unknown and ambiguous names are errors.
    #[test]
    fn profile_names_are_resolved_at_startup() {
        let proto =
            std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/proto/wechat.proto"));
        let schemas = Schemas::compile(&[proto], &[]).unwrap();
        let profile = |text: &str| {
            let mut r = Registry::builtin();
            r.apply_profile(text).unwrap();
            r
        };
        let mut r = profile("[[cgi]]\ncgi = 138\nresponse = 'NewSyncResponse'\n");
        assert!(matches!(
            resolve_profile(&mut r.clone(), None),
            Err(ProfileMessageError::NoSchemas { .. })
        ));
        resolve_profile(&mut r, Some(&schemas)).unwrap();
        assert_eq!(r.cgi_message(138, true), Some("micromsg.NewSyncResponse"));
        // Names only: nothing to resolve, no schema needed.
        resolve_profile(&mut profile("[[cgi]]\ncgi = 1\nname = 'x'\n"), None).unwrap();
        let e = resolve_profile(
            &mut profile("[[command]]\ncmd = 121\nrequest = 'NewSyncRequets'\n"),
            Some(&schemas),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "the profile's cmd 121 request message");
        let ProfileMessageError::Message { source, .. } = e else {
            panic!("{e}")
        };
        assert!(
            matches!(&source, SchemaError::UnknownMessage { close, .. }
            if close == &["micromsg.NewSyncRequest"]),
            "{source}"
        );
    }

    /// A business packet without a key log: the header's fields, not
    /// decrypted, and the encrypted body as a blob.
    #[test]
    fn business_summary_without_keys() {
        // A secautoauth request header (cgi 763) from the WeChat capture.
        let packet = hex::decode(
            "bfb2cf2800173759bc0b2454034802000000003baf3ee14faf00fb05dd29dd29974e0200fe808a8492040000",
        )
        .unwrap();
        let mut with_body = packet.clone();
        with_body.extend_from_slice(&[0xde, 0xad]);
        let b = business(&Options::default(), &with_body, None).expect("a business packet");
        assert_eq!(
            serde_json::to_string(&b.summary).unwrap(),
            r#"{"cgi":763,"cgi_name":"secautoauth","algo":12,"compress":2,"uin":1505495844,"decrypted":false}"#
        );
        assert!(!b.summary.is_newsync());
        assert_eq!(b.uin, Some(1505495844));
        assert!(b.synckey.is_none() && b.msg_ids.is_empty());
        assert_eq!(b.body, blob(&[0xde, 0xad]));
        assert!(business(&Options::default(), b"\x0a\x00", None).is_none());
        // Through a long-link frame the summary is the record's `business`.
        let h = Header::new(crate::proto::commands::NEWSENDMSG, 3, with_body.len());
        let d = decode(&Options::default(), &h, &with_body, true);
        assert_eq!(d.business.map(|s| s.to_value()), Some(b.summary.to_value()));
        assert_eq!(d.uin, Some(1505495844));
    }

    /// A NewSyncResponse with two AddMsg items (one wrapped in a buffer, one
    /// not) and a KeyBuf: the MsgIds and the SyncKey come out.
    #[test]
    fn newsync_response_msg_ids_and_keybuf() {
        let mut items = Vec::new();
        for (i, id) in [41u64, 42].into_iter().enumerate() {
            let msg = add_msg(id);
            let mut buf = Vec::new();
            if i == 0 {
                encode_varint_field(1, msg.len() as u64, &mut buf);
                encode_bytes_field(2, &msg, &mut buf);
            } else {
                buf = msg;
            }
            let mut item = Vec::new();
            encode_varint_field(1, 5, &mut item);
            encode_bytes_field(2, &buf, &mut item);
            items.push(item);
        }
        let mut cmdlist = Vec::new();
        encode_varint_field(1, 2, &mut cmdlist);
        for it in &items {
            encode_bytes_field(2, it, &mut cmdlist);
        }
        let key = SyncKey {
            keys: vec![(1, 10), (2, 20)],
        };
        let mut resp = Vec::new();
        encode_varint_field(1, 0, &mut resp);
        encode_bytes_field(2, &cmdlist, &mut resp);
        encode_bytes_field(4, &key.encode_keybuf(), &mut resp);
        assert_eq!(lenient::newsync_response_msg_ids(&resp), ["41", "42"]);
        assert_eq!(
            lenient::keybuf_synckey(&resp, 4),
            Some(KeyMap::from([(1, 10), (2, 20)]))
        );
        let h = Header::new(response(NEWSYNC), 7, resp.len());
        let d = decode(&Options::default(), &h, &resp, true);
        assert_eq!(
            d.synckey.as_ref().map(|(s, _)| s.as_str()),
            Some("newsync_response")
        );
        assert_eq!(d.msg_ids, ["41", "42"]);
        assert_eq!(
            lenient::newsync_response_msg_ids(b"garbage"),
            Vec::<String>::new()
        );
    }
}
