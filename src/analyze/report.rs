//! The `analyze` report: what was found, in one serializable document.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Crypto, KeyMap, SyncKeySource};
use crate::capture::Timestamp;
use crate::detect::Protocol;
use crate::flow::{Direction, FlowSummary};
use crate::proto::longlink::Kind;
use crate::track::pairing::{Latency, PairCounts};

/// One connection.
#[derive(Debug, Clone, Serialize)]
pub struct ConnRow {
    pub id: u64,
    pub client: String,
    pub server: String,
    /// What the connection carries: longlink (plaintext), mmtls_long,
    /// mmtls_short (short-link HTTP with MMTLS bodies), http, unknown or
    /// no_payload.
    pub kind: &'static str,
    pub protocol_c2s: Option<Protocol>,
    pub protocol_s2c: Option<Protocol>,
    pub bytes_c2s: u64,
    pub bytes_s2c: u64,
    pub frames: u64,
    pub end: &'static str,
    /// First bytes of directions whose protocol is unknown, in hex.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub preview: Vec<String>,
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

/// A request never answered.
#[derive(Debug, Clone, Serialize)]
pub struct Unanswered {
    pub conn: u64,
    pub cmd: u32,
    pub name: String,
    pub seq: u32,
}

/// An anomaly with where it happened.
#[derive(Debug, Clone, Serialize)]
pub struct AnomalyRow {
    pub conn: u64,
    pub dir: Direction,
    /// Stream offset in that direction (0 when not tied to one).
    pub offset: u64,
    pub kind: String,
    pub detail: String,
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
    pub unanswered: Vec<Unanswered>,
    pub mmtls: MmtlsTotals,
    /// Short-link messages dissected (requests and responses).
    pub short_links: u64,
    pub synckeys: Vec<SyncKeySeen>,
    /// SyncKey timelines per user (uin or web sid), binary and web flows together.
    pub sessions: Vec<crate::track::synckey::Session>,
    pub anomalies: Vec<AnomalyRow>,
    #[serde(skip)]
    pub(super) pairing: Vec<(u64, PairCounts, Latency)>,
    #[serde(skip)]
    cmds: BTreeMap<u32, CmdRow>,
}

impl Report {
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
        protos: [Option<Protocol>; 2],
        previews: [String; 2],
        frames: u64,
        short_links: u64,
    ) {
        let kind = if short_links > 0 {
            "mmtls_short"
        } else {
            match protos[0].or(protos[1]) {
                Some(Protocol::Mmtls) => "mmtls_long",
                Some(Protocol::Longlink) => "longlink",
                Some(Protocol::Http) => "http",
                Some(Protocol::Unknown) => "unknown",
                None => "no_payload",
            }
        };
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
            frames,
            end: s.end.as_str(),
            preview,
        });
    }

    pub(super) fn finish(&mut self) {
        self.connections.sort_by_key(|c| c.id);
        self.by_protocol.clear();
        for c in &self.connections {
            *self.by_protocol.entry(c.kind.to_owned()).or_default() += 1;
        }
        self.commands = self.cmds.values().cloned().collect();
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
        self.anomalies.sort_by_key(|a| (a.conn, a.offset));
    }
}
