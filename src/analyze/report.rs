//! The `analyze` report: what was found, in one serializable document.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Crypto, KeyMap, RolesBy, SyncKeySource};
use crate::capture::Timestamp;
use crate::detect::Protocol;
use crate::flow::{Direction, FlowSummary};
use crate::proto::longlink::Kind;
use crate::report::{Bounded, Kinded, Overflow};
use crate::track::pairing::{Latency, LatencyTable, PairCounts};

use super::record::Layer;

/// The kinds of anomaly the analyzer reports (the `kind` of an
/// [`AnomalyRow`]), serialized by [`AnomalyKind::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnomalyKind {
    /// Bytes missing from the capture.
    Gap,
    /// A long-link frame partly lost to a gap.
    FrameCutByGap,
    /// Bytes skipped to find the next long-link frame.
    Resync,
    /// A long-link header claiming more than the frame cap.
    OversizeFrame,
    /// Bytes at the end of a stream that are not a whole frame or record.
    UnfinishedFrame,
    /// Bytes the HTTP parser skipped.
    HttpSkipped,
    /// Bytes that are not TLS records (after a gap, or garbage).
    TlsSkipped,
    /// HTTP/2: a malformed frame, an HPACK error, header blocks that
    /// cannot be decoded, bytes that are not frames.
    Http2,
    /// TLS records a key log was given for and that stay closed: the first
    /// of a connection without a key (or with an unsupported suite), and
    /// every record that does not authenticate.
    TlsUndecrypted,
    /// Bytes that are not MMTLS records.
    MmtlsSkipped,
    /// Short-link early data that does not parse.
    ShortlinkPayload,
    /// An MMTLS record a logged key did not open.
    MmtlsDecryptFailed,
    /// A request sent again before its response.
    DuplicateRequest,
    /// Evidence against roles that were inferred (a response or status
    /// line from the client, a request or identify from the server, a hello
    /// of the other role); the roles are kept.
    RoleConflict,
    /// An anomaly the reassembly reported, by its own name.
    Reassembly(&'static str),
    /// A SyncKey session's anomaly (`duplicate_msgid`, `synckey_regressed`,
    /// ...), by its own name; also listed under its session.
    Session(&'static str),
}

impl AnomalyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::Gap => "gap",
            AnomalyKind::FrameCutByGap => "frame_cut_by_gap",
            AnomalyKind::Resync => "resync",
            AnomalyKind::OversizeFrame => "oversize_frame",
            AnomalyKind::UnfinishedFrame => "unfinished_frame",
            AnomalyKind::HttpSkipped => "http_skipped",
            AnomalyKind::TlsSkipped => "tls_skipped",
            AnomalyKind::Http2 => "http2",
            AnomalyKind::TlsUndecrypted => "tls_undecrypted",
            AnomalyKind::MmtlsSkipped => "mmtls_skipped",
            AnomalyKind::ShortlinkPayload => "shortlink_payload",
            AnomalyKind::MmtlsDecryptFailed => "mmtls_decrypt_failed",
            AnomalyKind::DuplicateRequest => "duplicate_request",
            AnomalyKind::RoleConflict => "role_conflict",
            AnomalyKind::Reassembly(k) | AnomalyKind::Session(k) => k,
        }
    }
}

named!(AnomalyKind);

impl Serialize for AnomalyKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What a connection carries, as [`ConnRow::kind`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnKind {
    /// Plaintext long-link frames.
    Longlink,
    /// MMTLS records straight on TCP (a long link under MMTLS).
    MmtlsLong,
    /// Short-link HTTP exchanges (MMTLS bodies, or legacy business packets).
    MmtlsShort,
    /// Other HTTP (web WeChat, plain short links, anything else).
    Http,
    /// TLS records (HTTPS and the like), opened or not.
    Tls,
    /// Bytes no dissector recognises.
    Unknown,
    /// A connection without payload.
    NoPayload,
}

impl ConnKind {
    /// The kind of a connection from its directions' protocols and the
    /// short-link exchanges found on it.
    pub fn of(protos: [Option<Protocol>; 2], short_links: u64) -> ConnKind {
        if protos.contains(&Some(Protocol::Tls)) {
            return ConnKind::Tls;
        }
        if short_links > 0 {
            return ConnKind::MmtlsShort;
        }
        match protos[0].or(protos[1]) {
            Some(Protocol::Mmtls) => ConnKind::MmtlsLong,
            Some(Protocol::Longlink | Protocol::Mars) => ConnKind::Longlink,
            Some(Protocol::Http) => ConnKind::Http,
            Some(Protocol::Tls) => ConnKind::Tls,
            Some(Protocol::Unknown) => ConnKind::Unknown,
            None => ConnKind::NoPayload,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ConnKind::Longlink => "longlink",
            ConnKind::MmtlsLong => "mmtls_long",
            ConnKind::MmtlsShort => "mmtls_short",
            ConnKind::Http => "http",
            ConnKind::Tls => "tls",
            ConnKind::Unknown => "unknown",
            ConnKind::NoPayload => "no_payload",
        }
    }
}

named!(ConnKind);

/// What a connection carried, layer by layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LayerCounts {
    /// Long-link frames (plaintext, Mars, or in MMTLS records).
    pub frames: u64,
    /// Short-link messages: HTTP requests and responses, whether or not a
    /// key opened the business packet they carry.
    pub short_link_messages: u64,
    /// Web and other HTTP exchanges (a request with its response, or a
    /// request the connection ended without answering).
    pub http_exchanges: u64,
    pub mmtls_records: u64,
    /// TLS records (the envelope of the HTTP exchanges opened in them).
    pub tls_records: u64,
    /// HTTP/2 frames (the envelope of the HTTP exchanges in them); absent
    /// when none.
    #[serde(skip_serializing_if = "is_zero")]
    pub h2_frames: u64,
}

impl LayerCounts {
    /// Application messages of every layer (MMTLS records are the envelope
    /// of some of them, not counted again).
    pub fn messages(&self) -> u64 {
        self.frames + self.short_link_messages + self.http_exchanges
    }
}

/// One connection.
#[derive(Debug, Clone, Serialize)]
pub struct ConnRow {
    pub id: u64,
    pub client: String,
    pub server: String,
    /// What the connection carries: longlink (plaintext), mmtls_long,
    /// mmtls_short (short-link HTTP with MMTLS bodies), http, tls, unknown
    /// or no_payload.
    pub kind: ConnKind,
    pub protocol_c2s: Option<Protocol>,
    pub protocol_s2c: Option<Protocol>,
    pub bytes_c2s: u64,
    pub bytes_s2c: u64,
    /// Messages of every layer: long-link frames, short-link messages and
    /// HTTP exchanges (each also counted on its own below).
    pub messages: u64,
    #[serde(flatten)]
    pub layers: LayerCounts,
    pub end: &'static str,
    /// The server name a TLS client asked for (SNI).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// What the TLS hellos said (version, cipher suite, ALPN, resumption,
    /// alerts); absent for connections without TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<crate::proto::tls::HelloFacts>,
    /// How client and server were told apart, when no handshake showed
    /// them: protocol, port or first_packet (absent: a SYN or SYN+ACK).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<RolesBy>,
    /// Evidence seen against the inferred roles (`role_conflict`
    /// anomalies); absent when none.
    #[serde(skip_serializing_if = "is_zero")]
    pub role_conflicts: u64,
    /// First bytes of directions whose protocol is unknown, in hex.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub preview: Vec<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Frames per command.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CmdRow {
    pub cmd: u32,
    pub name: Option<String>,
    pub count: u64,
    pub bytes: u64,
    pub requests: u64,
    pub responses: u64,
    pub pushes: u64,
    pub heartbeats: u64,
}

/// Short-link, web and other HTTP messages of one name (a cgi, a web
/// endpoint, the last segment of a path).
#[derive(Debug, Clone, Serialize)]
pub struct MessageRow {
    pub layer: Layer,
    pub name: String,
    /// The first URI (short link) or path (HTTP) seen under this name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    pub requests: u64,
    pub responses: u64,
    /// Requests the connection ended without answering.
    pub unanswered: u64,
    /// Bytes on the wire: the messages' extents in their TCP streams.
    pub bytes: u64,
    /// Short link: business packets a logged key opened.
    pub decrypted: u64,
    /// Request to response.
    pub latency: Latency,
}

/// One short-link, web or HTTP message, for [`Report::add_message`].
pub(super) struct MessageSeen<'a> {
    pub layer: Layer,
    pub name: &'a str,
    pub uri: Option<&'a str>,
    pub kind: MessageKind,
    pub bytes: u64,
    pub decrypted: bool,
    pub latency_us: Option<u64>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum MessageKind {
    Request,
    Response,
    /// An exchange: a request and its response, counted as both.
    Exchange,
    /// A request never answered.
    Unanswered,
}

/// Latency of one request cmd.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyRow {
    pub cmd: u32,
    pub name: Option<String>,
    #[serde(flatten)]
    pub latency: Latency,
}

/// MMTLS record counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MmtlsTotals {
    pub records: u64,
    /// By record type (hex).
    pub by_type: BTreeMap<String, u64>,
    pub plaintext: u64,
    pub decrypted: u64,
    pub no_key: u64,
    pub failed: u64,
}

impl MmtlsTotals {
    pub(super) fn add(&mut self, typ: u8, crypto: Crypto) {
        self.records += 1;
        *self.by_type.entry(format!("0x{typ:02x}")).or_default() += 1;
        match crypto {
            Crypto::Plaintext => self.plaintext += 1,
            Crypto::Decrypted => self.decrypted += 1,
            Crypto::Failed => self.failed += 1,
            Crypto::NoKey => self.no_key += 1,
        }
    }
}

/// A SyncKey seen on the wire.
#[derive(Debug, Clone, Serialize)]
pub struct SyncKeySeen {
    pub ts: Timestamp,
    pub conn: u64,
    pub dir: Direction,
    /// The message it came in (serialized as `longlink_identify`,
    /// `newsync_request`, `newsync_response`).
    pub source: SyncKeySource,
    pub keys: KeyMap,
}

/// SyncKeys seen are capped and counted per message they came in.
impl Kinded for SyncKeySeen {
    type Kind = &'static str;
    fn kind(&self) -> &'static str {
        self.source.as_str()
    }
}

/// A request never answered.
#[derive(Debug, Clone, Serialize)]
pub struct Unanswered {
    pub conn: u64,
    pub cmd: u32,
    pub name: String,
    pub seq: u32,
}

/// Unanswered requests are capped and counted per request cmd.
impl Kinded for Unanswered {
    type Kind = u32;
    fn kind(&self) -> u32 {
        self.cmd
    }
}

/// An anomaly with where it happened.
#[derive(Debug, Clone, Serialize)]
pub struct AnomalyRow {
    pub conn: u64,
    pub dir: Direction,
    /// Stream offset in that direction (0 when not tied to one).
    pub offset: u64,
    /// The packet that carried the byte at `offset`, or else the packet
    /// being processed when it was found (1-based, as Wireshark numbers
    /// them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packet: Option<u64>,
    pub kind: AnomalyKind,
    pub detail: String,
}

/// Anomalies are capped and counted per kind.
impl Kinded for AnomalyRow {
    type Kind = &'static str;
    fn kind(&self) -> &'static str {
        self.kind.as_str()
    }
}

/// Per-connection pairing figures.
#[derive(Debug, Clone, Serialize)]
pub struct ConnPairing {
    pub conn: u64,
    #[serde(flatten)]
    pub counts: PairCounts,
    pub heartbeat_interval: Latency,
}

/// Everything `analyze` reports.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub connections: Vec<ConnRow>,
    /// Connections by kind (see [`ConnRow::kind`]).
    pub by_protocol: BTreeMap<String, u64>,
    pub commands: Vec<CmdRow>,
    pub latency: Vec<LatencyRow>,
    pub pairing_by_conn: Vec<ConnPairing>,
    /// The first unanswered requests of each cmd (`--max-examples`).
    pub unanswered: Bounded<Unanswered>,
    /// Only when some unanswered requests are not listed: how many, and
    /// the count per request cmd.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unanswered_omitted: Option<Overflow<u32>>,
    pub mmtls: MmtlsTotals,
    /// TLS records: how many, and how many were opened (or why not).
    pub tls: super::tls::TlsTotals,
    /// Short-link messages dissected (requests and responses); per cgi in
    /// `messages`.
    pub short_links: u64,
    /// Short-link, web and other HTTP messages per layer and name.
    pub messages: Vec<MessageRow>,
    /// The first SyncKeys seen in each kind of message (`--max-examples`).
    pub synckeys: Bounded<SyncKeySeen>,
    /// Only when some SyncKeys are not listed: how many, and the count per message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synckeys_omitted: Option<Overflow<&'static str>>,
    /// SyncKey timelines per user (uin or web sid), binary and web flows together.
    pub sessions: Vec<crate::track::synckey::Session>,
    /// Each message's lifecycle (sent, acknowledged, delivered per device,
    /// read) and the latency of each step.
    pub lifecycle: crate::track::lifecycle::Lifecycle,
    /// The first anomalies of each kind (`--max-examples`), by connection and offset.
    pub anomalies: Bounded<AnomalyRow>,
    /// Only when some anomalies are not listed: how many, and the count per kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anomalies_omitted: Option<Overflow<&'static str>>,
    #[serde(skip)]
    pub(super) pairing: Vec<(u64, PairCounts, Latency)>,
    #[serde(skip)]
    cmds: BTreeMap<u32, CmdRow>,
    /// What the HTML report plots (collected with `Options::plots`).
    #[serde(skip)]
    pub plots: super::plots::Plots,
    #[serde(skip)]
    msgs: BTreeMap<(Layer, String), MessageRow>,
    #[serde(skip)]
    msg_latency: LatencyTable<(Layer, String)>,
}

impl Report {
    /// Every anomaly found, counted by kind (listed or not): the figure the
    /// run's summary line gives, so that it agrees with the report.
    pub fn anomaly_counts(&self) -> BTreeMap<String, u64> {
        self.anomalies
            .counts()
            .iter()
            .map(|(k, n)| ((*k).to_owned(), *n))
            .collect()
    }

    /// Lists at most `n` anomalies of each kind, unanswered requests of
    /// each cmd and SyncKeys of each source message (all are counted); call
    /// before the first event.
    pub fn set_max_examples(&mut self, n: usize) {
        self.anomalies.set_max_per_kind(n);
        self.unanswered.set_max_per_kind(n);
        self.synckeys.set_max_per_kind(n);
    }

    /// The latency samples of each short-link, web and HTTP name.
    pub(super) fn message_latency_samples(&self) -> Vec<(String, Vec<u64>)> {
        self.msg_latency
            .samples()
            .into_iter()
            .map(|((layer, name), s)| {
                (
                    format!("{name} ({layer})", layer = layer.as_str()),
                    s.to_vec(),
                )
            })
            .collect()
    }

    pub(super) fn add_message(&mut self, m: MessageSeen<'_>) {
        let key = (m.layer, m.name.to_owned());
        let row = self.msgs.entry(key.clone()).or_insert_with(|| MessageRow {
            layer: m.layer,
            name: m.name.to_owned(),
            uri: None,
            requests: 0,
            responses: 0,
            unanswered: 0,
            bytes: 0,
            decrypted: 0,
            latency: Latency::default(),
        });
        if row.uri.is_none() {
            row.uri = m.uri.map(str::to_owned);
        }
        match m.kind {
            MessageKind::Request => row.requests += 1,
            MessageKind::Response => row.responses += 1,
            MessageKind::Exchange => {
                row.requests += 1;
                row.responses += 1;
            }
            MessageKind::Unanswered => {
                row.requests += 1;
                row.unanswered += 1;
            }
        }
        row.bytes += m.bytes;
        row.decrypted += u64::from(m.decrypted);
        if let Some(us) = m.latency_us {
            self.msg_latency.add(key, us);
        }
    }

    pub(super) fn add_frame(&mut self, cmd: u32, name: Option<String>, len: u64, kind: Kind) {
        let row = self.cmds.entry(cmd).or_insert_with(|| CmdRow {
            cmd,
            name,
            ..CmdRow::default()
        });
        row.count += 1;
        row.bytes += len;
        match kind {
            Kind::Request => row.requests += 1,
            Kind::Response => row.responses += 1,
            Kind::Push => row.pushes += 1,
            Kind::Heartbeat => row.heartbeats += 1,
        }
    }

    pub(super) fn add_conn(
        &mut self,
        s: &FlowSummary,
        roles: RolesBy,
        protos: [Option<Protocol>; 2],
        previews: [String; 2],
        layers: LayerCounts,
        short_links: u64,
    ) -> &mut ConnRow {
        let kind = ConnKind::of(protos, short_links);
        let preview = protos
            .iter()
            .zip(previews)
            .filter(|(p, pv)| **p == Some(Protocol::Unknown) && !pv.is_empty())
            .map(|(_, pv)| pv)
            .collect();
        self.connections.push(ConnRow {
            id: s.id,
            client: s.client.to_string(),
            server: s.server.to_string(),
            kind,
            protocol_c2s: protos[0],
            protocol_s2c: protos[1],
            bytes_c2s: s.c2s.bytes,
            bytes_s2c: s.s2c.bytes,
            messages: layers.messages(),
            layers,
            end: s.end.as_str(),
            server_name: None,
            tls: None,
            roles: roles.inferred().then_some(roles),
            role_conflicts: 0,
            preview,
        });
        self.connections.last_mut().expect("just pushed")
    }

    pub(super) fn finish(&mut self) {
        self.connections.sort_by_key(|c| c.id);
        self.by_protocol.clear();
        for c in &self.connections {
            *self
                .by_protocol
                .entry(c.kind.as_str().to_owned())
                .or_default() += 1;
        }
        self.commands = self.cmds.values().cloned().collect();
        self.messages = self
            .msgs
            .iter()
            .map(|(k, row)| MessageRow {
                latency: self.msg_latency.get(k),
                ..row.clone()
            })
            .collect();
        let mut pairing = std::mem::take(&mut self.pairing);
        pairing.sort_by_key(|p| p.0);
        self.pairing_by_conn = pairing
            .into_iter()
            .filter(|(_, c, _)| c.requests + c.responses + c.pushes > 0)
            .map(|(conn, counts, heartbeat_interval)| ConnPairing {
                conn,
                counts,
                heartbeat_interval,
            })
            .collect();
        self.anomalies
            .kept_mut()
            .sort_by_key(|a| (a.conn, a.offset));
        self.anomalies_omitted = self.anomalies.overflow();
        self.unanswered_omitted = self.unanswered.overflow();
        self.synckeys_omitted = self.synckeys.overflow();
    }
}

impl<F: FnMut(&super::FrameRecord)> super::Analyzer<'_, F> {
    /// Lists at most `n` anomalies of each kind, unanswered requests of each
    /// cmd and SyncKeys of each source message in the report (1000 by
    /// default; all are counted).
    pub fn max_examples(mut self, n: usize) -> Self {
        self.shared.report.set_max_examples(n);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_kinds() {
        use Protocol::*;
        let of = |a, b, short| ConnKind::of([a, b], short).as_str();
        assert_eq!(of(None, None, 0), "no_payload");
        assert_eq!(of(Some(Longlink), Some(Longlink), 0), "longlink");
        // The client's direction decides; the server's when the client sent nothing.
        assert_eq!(of(Some(Mmtls), Some(Unknown), 0), "mmtls_long");
        assert_eq!(of(None, Some(Http), 0), "http");
        assert_eq!(of(Some(Unknown), None, 0), "unknown");
        // One short-link exchange makes an HTTP connection a short link.
        assert_eq!(of(Some(Http), Some(Http), 1), "mmtls_short");
        // TLS is TLS whatever is opened inside it.
        assert_eq!(of(Some(Tls), Some(Tls), 1), "tls");
        assert_eq!(of(Some(Tls), Some(Unknown), 0), "tls");
        assert_eq!(
            serde_json::to_string(&ConnKind::MmtlsShort).unwrap(),
            r#""mmtls_short""#
        );
    }

    #[test]
    fn lists_over_the_cap_say_what_they_left_out() {
        let mut r = Report::default();
        r.set_max_examples(1);
        for (i, source) in [
            SyncKeySource::NewsyncRequest,
            SyncKeySource::NewsyncRequest,
            SyncKeySource::NewsyncResponse,
        ]
        .into_iter()
        .enumerate()
        {
            r.synckeys.push(SyncKeySeen {
                ts: Timestamp::new(i as i64, 0, 6),
                conn: 0,
                dir: Direction::ClientToServer,
                source,
                keys: KeyMap::default(),
            });
        }
        for offset in [30, 10] {
            r.anomalies.push(AnomalyRow {
                conn: 1,
                dir: Direction::ServerToClient,
                offset,
                packet: None,
                kind: AnomalyKind::Gap,
                detail: String::new(),
            });
        }
        r.finish();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["synckeys"].as_array().unwrap().len(), 2);
        assert_eq!(
            v["synckeys_omitted"],
            serde_json::json!({"omitted": 1, "max_per_kind": 1,
                "counts": {"newsync_request": 2, "newsync_response": 1}})
        );
        // The first one of the kind is kept, whatever its offset.
        assert_eq!(v["anomalies"][0]["offset"], 30);
        assert_eq!(
            v["anomalies_omitted"]["counts"],
            serde_json::json!({"gap": 2})
        );
        assert!(v.get("unanswered_omitted").is_none());
        assert_eq!(v["unanswered"], serde_json::json!([]));
    }

    #[test]
    fn anomaly_kinds_serialize_as_their_names() {
        let row = AnomalyRow {
            conn: 2,
            dir: Direction::ClientToServer,
            offset: 16,
            packet: None,
            kind: AnomalyKind::FrameCutByGap,
            detail: "8 bytes of a frame lost to a gap".into(),
        };
        assert_eq!(
            serde_json::to_string(&row).unwrap(),
            r#"{"conn":2,"dir":"c2s","offset":16,"kind":"frame_cut_by_gap","detail":"8 bytes of a frame lost to a gap"}"#
        );
        assert_eq!(
            AnomalyKind::Reassembly("overlap_conflict").as_str(),
            "overlap_conflict"
        );
        assert!(AnomalyKind::MmtlsDecryptFailed == "mmtls_decrypt_failed");
    }
}
