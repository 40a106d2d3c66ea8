//! Short-link glue: which HTTP requests are short links, the MMTLS records
//! in their bodies, the business packets they carry (cgi, decryption,
//! newsync SyncKeys) and the plain-protobuf newsync of the reference server.

use std::ops::Range;

use super::decode::{self, SyncKeySource};
use super::mmtls::RecCtx;
use super::record::{FrameRecord, Layer, Raw};
use super::report::{MessageKind, MessageSeen};
use super::{micros, Analyzer, AnomalyKind, Here};
use crate::capture::Timestamp;
use crate::proto::business::MAGIC;
use crate::proto::http;
use crate::proto::longlink::Kind;
use crate::proto::mmtls;
use crate::proto::shortlink::{is_mmtls_path, ShortLinkPayload};
use crate::track::lifecycle::Via;
use crate::track::synckey::Ids;

/// Path prefix of the legacy short link (business packets in plain HTTP).
const LEGACY_PREFIX: &str = "/cgi-bin/micromsg-bin/";

/// A short-link request waiting for its response.
#[derive(Debug, Clone)]
pub(super) struct ShortReq {
    pub uri: String,
    pub host: String,
    pub ts: Timestamp,
}

impl ShortReq {
    /// Microseconds from this request to an answer at `now`.
    fn latency_us(&self, now: Timestamp) -> u64 {
        micros(now.nanos_since(&self.ts))
    }

    /// The cgi name the URI ends with.
    fn cgi_name(&self) -> &str {
        self.uri.rsplit('/').next().unwrap_or(&self.uri)
    }
}

/// Which short link an HTTP request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ShortLink {
    /// `POST /mmtls/<8 hex>`: MMTLS records in both bodies.
    Mmtls,
    /// `POST /cgi-bin/micromsg-bin/<cgi>` with a business packet for a body.
    Legacy,
}

impl ShortLink {
    /// The short link a request (method, path with query, body) is, if any.
    pub(super) fn classify(method: Option<&str>, path: &str, body: &[u8]) -> Option<ShortLink> {
        if is_mmtls_path(path) {
            Some(ShortLink::Mmtls)
        } else if method == Some("POST")
            && path.starts_with(LEGACY_PREFIX)
            && body.first() == Some(&MAGIC)
        {
            Some(ShortLink::Legacy)
        } else {
            None
        }
    }

    pub(super) fn of(rq: &http::Message) -> Option<ShortLink> {
        ShortLink::classify(rq.method(), rq.path().unwrap_or(""), &rq.body)
    }
}

impl<F: FnMut(&FrameRecord)> Analyzer<'_, F> {
    /// A short-link request: its records or business packet; it waits for
    /// its response.
    pub(super) fn short_link_request(&mut self, at: &Here, link: ShortLink, rq: &http::Message) {
        let conn = self.conns.get_mut(&at.conn).expect("conn");
        conn.short_links += 1;
        conn.layers.short_link_messages += 1;
        let req = match link {
            ShortLink::Mmtls => {
                let mut req = None;
                for (idx, off, h, raw) in self.body_records(at, rq) {
                    if let Some(q) = self.record(at, h, idx, off, &raw, &RecCtx::ShortRequest) {
                        req = Some(q);
                    }
                }
                req
            }
            ShortLink::Legacy => {
                let req = ShortReq {
                    uri: rq.path().unwrap_or("").to_owned(),
                    host: rq.header_str("host").unwrap_or("").to_owned(),
                    ts: rq.ts_last,
                };
                let extent = rq.stream_offset..rq.end_offset;
                self.short_frame(at, extent, 0, &rq.body, Kind::Request, Some(&req));
                Some(req)
            }
        };
        self.conns
            .get_mut(&at.conn)
            .expect("conn")
            .short_pending
            .push_back(req);
    }

    /// A short-link response, matched to the oldest request waiting.
    pub(super) fn short_link_response(&mut self, at: &Here, link: ShortLink, rs: &http::Message) {
        let conn = self.conns.get_mut(&at.conn).expect("conn");
        conn.layers.short_link_messages += 1;
        let req = conn.short_pending.pop_front().flatten();
        match link {
            ShortLink::Mmtls => {
                let ctx = RecCtx::ShortResponse(req);
                for (idx, off, h, raw) in self.body_records(at, rs) {
                    self.record(at, h, idx, off, &raw, &ctx);
                }
            }
            ShortLink::Legacy => self.short_frame(
                at,
                rs.stream_offset..rs.end_offset,
                0,
                &rs.body,
                Kind::Response,
                req.as_ref(),
            ),
        }
    }

    /// The MMTLS records in an HTTP message's body, with their stream offsets.
    fn body_records(
        &mut self,
        at: &Here,
        m: &http::Message,
    ) -> Vec<(u64, u64, mmtls::RecordHeader, Vec<u8>)> {
        let body_at = m.end_offset.saturating_sub(m.wire_body_len);
        let (recs, skipped) = mmtls::split_all(body_at, &m.body);
        for sk in skipped {
            self.anomaly(
                at.conn,
                at.dir,
                sk.stream_offset,
                AnomalyKind::MmtlsSkipped,
                format!(
                    "{} bytes of an HTTP body are not MMTLS records ({:?})",
                    sk.len, sk.reason
                ),
            );
        }
        let d = at.dir as usize;
        let conn = self.conns.get_mut(&at.conn).expect("conn");
        recs.into_iter()
            .map(|r| {
                let idx = conn.http_records[d];
                conn.http_records[d] += 1;
                (idx, r.stream_offset, r.header, r.raw.to_vec())
            })
            .collect()
    }

    /// Decrypted short-link early data: URI, host and a business packet.
    pub(super) fn short_request(
        &mut self,
        here: &Here,
        extent: Range<u64>,
        index: u64,
        pt: &[u8],
    ) -> Option<ShortReq> {
        let (p, _) = match ShortLinkPayload::parse(pt) {
            Ok(v) => v,
            Err(e) => {
                self.anomaly(
                    here.conn,
                    here.dir,
                    extent.start,
                    AnomalyKind::ShortlinkPayload,
                    e.to_string(),
                );
                return None;
            }
        };
        let req = ShortReq {
            uri: p.uri.to_owned(),
            host: p.host.to_owned(),
            ts: here.ts,
        };
        self.short_frame(here, extent, index, p.body, Kind::Request, Some(&req));
        Some(req)
    }

    /// A decrypted short-link response: a business packet.
    pub(super) fn short_response(
        &mut self,
        here: &Here,
        extent: Range<u64>,
        index: u64,
        pt: &[u8],
        req: Option<&ShortReq>,
    ) {
        self.short_frame(here, extent, index, pt, Kind::Response, req);
    }

    /// One short-link message (`kind` is request or response): its business
    /// packet's facts go on the timeline, and it becomes a record.
    /// `extent`: the stream bytes it came in (its MMTLS record, or the
    /// whole HTTP message of a legacy short link).
    fn short_frame(
        &mut self,
        here: &Here,
        extent: Range<u64>,
        index: u64,
        packet: &[u8],
        kind: Kind,
        req: Option<&ShortReq>,
    ) {
        let latency_us = match kind {
            Kind::Response => req.map(|r| r.latency_us(here.ts)),
            _ => None,
        };
        let (body, business) = match decode::business(self.opts, packet, None) {
            Some(b) => {
                if let Some((source, keys)) = b.synckey {
                    self.synckey_seen(here, (b.uin, None), source, keys);
                }
                if b.summary.is_newsync() {
                    let ids = Ids {
                        uin: b.uin,
                        sid: None,
                        user: None,
                        device: None,
                        conn: here.conn,
                    };
                    let (ts, conn) = (here.ts, here.conn);
                    match kind {
                        Kind::Response => {
                            let msg_ids = b.msg_ids.clone();
                            self.shared(move |g| {
                                g.timeline.sync_result(
                                    ids,
                                    ts,
                                    conn,
                                    msg_ids.len() as u64,
                                    &msg_ids,
                                )
                            });
                        }
                        Kind::Request => self.shared(move |g| g.timeline.sync_request(ids, ts)),
                        _ => {}
                    }
                }
                if let Some(f) = &b.sends {
                    let ids = Ids {
                        uin: b.uin,
                        sid: None,
                        user: None,
                        device: None,
                        conn: here.conn,
                    };
                    self.send_facts(ids, here.ts, Via::Shortlink, f);
                }
                (b.body, Some(b.summary))
            }
            None => (decode::raw_or_blob(packet), None),
        };
        let cgi_name = business
            .as_ref()
            .and_then(|b| b.cgi_name.clone())
            .or_else(|| req.map(|r| r.cgi_name().to_owned()));
        self.shared(|g| g.report.short_links += 1);
        let name = cgi_name
            .clone()
            .or_else(|| req.map(|r| r.uri.clone()))
            .unwrap_or_else(|| "?".to_owned());
        if self.opts.plots {
            let (conn, ts, dir, len) = (
                here.conn,
                here.ts,
                here.dir as usize,
                extent.end - extent.start,
            );
            let exchange = match (kind, req) {
                (Kind::Response, Some(r)) => Some((name.clone(), r.ts)),
                _ => None,
            };
            self.shared(move |g| {
                let plots = &mut g.report.plots;
                plots.message(conn, ts, dir, len);
                if let Some((name, at)) = exchange {
                    plots.exchange(conn, Layer::Shortlink, &name, at, ts);
                }
            });
        }
        let (name_, uri) = (name.clone(), req.map(|r| r.uri.clone()));
        let message_kind = if kind == Kind::Response {
            MessageKind::Response
        } else {
            MessageKind::Request
        };
        let bytes = extent.end - extent.start;
        let decrypted = business.as_ref().is_some_and(|b| b.decrypted);
        self.shared(move |g| {
            g.report.add_message(MessageSeen {
                layer: Layer::Shortlink,
                name: &name_,
                uri: uri.as_deref(),
                kind: message_kind,
                bytes,
                decrypted,
                latency_us,
            })
        });
        let (first_packet, last_packet) = self.span(here.conn, here.dir, extent.start, extent.end);
        let rec = FrameRecord {
            file: None,
            first_packet,
            last_packet,
            cmd: business.as_ref().map(|b| b.cgi),
            cmd_name: cgi_name,
            latency_us,
            body,
            mmtls_record: Some(index),
            raw: self
                .opts
                .raw
                .then(|| Box::new(Raw::Business(packet.to_vec()))),
            uri: req.map(|r| r.uri.clone()),
            host: req.map(|r| r.host.clone()),
            business: business.as_ref().map(decode::BusinessSummary::to_value),
            ..FrameRecord::new(
                here,
                Layer::Shortlink,
                kind,
                extent.start,
                packet.len() as u64,
            )
        };
        (self.out)(&rec);
    }

    /// A short-link `POST .../newsync` with plain protobuf bodies (the
    /// reference server's short link) of the user `ids` names: its
    /// SyncKeys go on the timeline.
    pub(super) fn plain_short_newsync(
        &mut self,
        ids: Ids<'_>,
        request: Option<&http::Message>,
        rs: &http::Message,
    ) {
        let conn = ids.conn;
        if let Some(rq) = request {
            if let (Some((source, k)), _) = decode::newsync_facts(&rq.body, false) {
                let obs = source.observation(rq.ts_last, conn, k);
                let (ids, ts) = (ids.owned(), rq.ts_last);
                self.shared(move |g| {
                    g.timeline.observe(ids.ids(), obs, false);
                    g.timeline.sync_request(ids.ids(), ts);
                });
            }
        }
        if let (Some((source, k)), msg_ids) = decode::newsync_facts(&rs.body, true) {
            debug_assert_eq!(source, SyncKeySource::NewsyncResponse);
            let obs = source.observation(rs.ts_last, conn, k);
            let (ids, ts) = (ids.owned(), rs.ts_last);
            self.shared(move |g| {
                g.timeline.observe(ids.ids(), obs, false);
                g.timeline
                    .sync_result(ids.ids(), ts, conn, msg_ids.len() as u64, &msg_ids);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_requests_are_short_links() {
        let bf = [MAGIC, 0x4a, 0x00];
        let c = ShortLink::classify;
        assert_eq!(
            c(Some("POST"), "/mmtls/0a1b2c3d", b"\x19\xf1\x03"),
            Some(ShortLink::Mmtls)
        );
        // The MMTLS path decides alone (method and body are not looked at).
        assert_eq!(c(None, "/mmtls/DEADBEEF", b""), Some(ShortLink::Mmtls));
        assert_eq!(c(Some("POST"), "/mmtls/0a1b2c3", b""), None, "7 hex digits");
        assert_eq!(c(Some("POST"), "/mmtls/0a1b2c3g", b""), None, "not hex");
        assert_eq!(
            c(Some("POST"), "/cgi-bin/micromsg-bin/newsync", &bf),
            Some(ShortLink::Legacy)
        );
        // A legacy short link needs all three: POST, the cgi path, a business packet.
        assert_eq!(c(Some("GET"), "/cgi-bin/micromsg-bin/newsync", &bf), None);
        assert_eq!(
            c(Some("POST"), "/cgi-bin/micromsg-bin/newsync", b"\x0a\x00"),
            None
        );
        assert_eq!(c(Some("POST"), "/cgi-bin/micromsg-bin/newsync", b""), None);
        assert_eq!(c(Some("POST"), "/cgi-bin/mmwebwx-bin/webwxsync", &bf), None);
        assert_eq!(c(Some("POST"), "/newsync?uin=7", b"\x1a\x00"), None);
    }

    #[test]
    fn request_latency_and_cgi_name() {
        let req = ShortReq {
            uri: "/cgi-bin/micromsg-bin/newsync".into(),
            host: "sgshort.wechat.com".into(),
            ts: Timestamp::new(100, 250_000_000, 9),
        };
        assert_eq!(req.cgi_name(), "newsync");
        assert_eq!(req.latency_us(Timestamp::new(101, 0, 9)), 750_000);
        // An answer stamped before its request (clock skew) counts as 0.
        assert_eq!(req.latency_us(Timestamp::new(100, 0, 9)), 0);
        let bare = ShortReq {
            uri: "newsync".into(),
            ..req
        };
        assert_eq!(bare.cgi_name(), "newsync");
    }
}
