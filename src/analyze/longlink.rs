//! Long-link glue: the framer's events become records, anomalies, pairs
//! (request / response latency) and SyncKey timeline facts (identify,
//! newsync, newnotify pushes).

use super::decode::{self, tracker_needs_body, Decoded};
use super::packets::Span;
use super::record::{FrameRecord, Layer, Raw};
use super::roles;
use super::{micros, Analyzer, AnomalyKind, Here};
use crate::body::messages::scan::NewSyncScan;
use crate::flow::Side;
use crate::proto::business::MAGIC;
use crate::proto::commands::{response, NEWNOTIFY, NEWSYNC};
use crate::proto::longlink::{Framer, FramerEvent, Header, Kind, SkipReason, MARS_HEADER_LEN};
use crate::track::lifecycle::Via;
use crate::track::pairing::Paired;
use crate::track::synckey::Ids;

/// A long-link direction's framer. Without records and keys only the
/// bodies the trackers read are wanted, and they are streamed (see
/// [`LonglinkSide`]) rather than assembled.
pub(super) fn framer(cap: u32, keep_all: bool) -> Framer {
    let fr = Framer::new(cap);
    if keep_all {
        fr
    } else {
        fr.stream_bodies(tracker_needs_body)
    }
}

/// A long-link direction: its framer, and the body being read of a frame
/// whose body comes in parts.
#[derive(Debug, Default)]
pub(super) struct LonglinkSide {
    pub(super) framer: Framer,
    body: Option<Box<BodyScan>>,
}

impl LonglinkSide {
    pub(super) fn new(framer: Framer) -> Self {
        LonglinkSide { framer, body: None }
    }
}

/// The streamed body of the frame at `offset`.
#[derive(Debug)]
struct BodyScan {
    offset: u64,
    sink: Sink,
}

/// What a streamed body goes to: a plain-protobuf newsync is scanned
/// (its SyncKey and MsgIds, without holding it: responses can be
/// megabytes on every connection at once); anything else (an identify,
/// a business packet) is small and assembled.
#[derive(Debug)]
enum Sink {
    /// No byte of the body yet.
    Undecided,
    Whole(Vec<u8>),
    NewSync(Box<NewSyncScan>),
}

impl BodyScan {
    fn feed(&mut self, h: &Header, bytes: &[u8]) {
        if matches!(self.sink, Sink::Undecided) {
            let Some(&first) = bytes.first() else {
                return;
            };
            self.sink = if h.request_cmd() == NEWSYNC && first != MAGIC {
                Sink::NewSync(Box::new(NewSyncScan::new(h.cmd == response(NEWSYNC))))
            } else {
                Sink::Whole(Vec::with_capacity(
                    h.len as usize - usize::from(h.header_len),
                ))
            };
        }
        match &mut self.sink {
            Sink::Whole(v) => v.extend_from_slice(bytes),
            Sink::NewSync(s) => s.feed(bytes),
            Sink::Undecided => {}
        }
    }
}

/// A frame's body: its bytes, or what a scan of them found.
pub(super) enum Body<'a> {
    Bytes(&'a [u8]),
    Scanned(Box<Decoded>),
}

/// What a timeline learns from a frame's header alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HeaderFact {
    /// A newnotify push: the server says there is new data.
    Notified,
    /// A newsync request.
    SyncRequest,
}

impl HeaderFact {
    pub(super) fn of(h: &Header) -> Option<HeaderFact> {
        match (h.kind(), h.request_cmd()) {
            (Kind::Push, NEWNOTIFY) => Some(HeaderFact::Notified),
            (Kind::Request, NEWSYNC) => Some(HeaderFact::SyncRequest),
            _ => None,
        }
    }
}

impl<F: FnMut(&FrameRecord)> Analyzer<'_, F> {
    /// Feeds a long-link direction's bytes to its framer.
    pub(super) fn longlink_feed(
        &mut self,
        here: &Here,
        side: Side,
        ls: &mut LonglinkSide,
        offset: u64,
        bytes: &[u8],
    ) {
        let LonglinkSide { framer, body } = ls;
        framer.feed(offset, bytes, &mut |e| {
            self.longlink_event(here, side, e, body, false)
        })
    }

    /// A long-link direction ended: what its framer still holds.
    pub(super) fn longlink_finish(&mut self, here: &Here, side: Side, ls: &mut LonglinkSide) {
        let LonglinkSide { framer, body } = ls;
        framer.finish(&mut |e| self.longlink_event(here, side, e, body, true))
    }

    /// One framer event; `at_end`: the stream ended (what is skipped there
    /// is an unfinished frame).
    fn longlink_event(
        &mut self,
        here: &Here,
        side: Side,
        e: FramerEvent<'_>,
        scan: &mut Option<Box<BodyScan>>,
        at_end: bool,
    ) {
        if matches!(e, FramerEvent::Skipped { .. }) {
            // A streamed body the stream cut (or no body in progress).
            *scan = None;
        }
        match e {
            FramerEvent::BodyPart {
                offset,
                header,
                bytes,
            } => {
                let s = match scan {
                    Some(s) if s.offset == offset => s,
                    _ => scan.insert(Box::new(BodyScan {
                        offset,
                        sink: Sink::Undecided,
                    })),
                };
                s.feed(&header, bytes);
            }
            FramerEvent::Frame {
                offset,
                header,
                body,
                after_gap,
            } => {
                let streamed = scan.as_ref().is_some_and(|s| s.offset == offset);
                match scan.take().filter(|_| streamed).map(|s| s.sink) {
                    Some(Sink::Whole(v)) => {
                        self.frame(here, side, offset, header, Body::Bytes(&v), after_gap, None)
                    }
                    Some(Sink::NewSync(s)) => {
                        let facts = decode::scanned_newsync(header.cmd == response(NEWSYNC), s.finish());
                        self.frame(
                            here,
                            side,
                            offset,
                            header,
                            Body::Scanned(Box::new(facts)),
                            after_gap,
                            None,
                        )
                    }
                    Some(Sink::Undecided) | None => {
                        self.frame(here, side, offset, header, Body::Bytes(body), after_gap, None)
                    }
                }
            }
            FramerEvent::Skipped {
                offset,
                len,
                reason: SkipReason::BadLength,
            } => self.anomaly(
                here.conn,
                here.dir,
                offset,
                AnomalyKind::Resync,
                format!(
                    "{len} bytes skipped: a frame length that frames found inside it show bogus"
                ),
            ),
            FramerEvent::Skipped { offset, len, .. } if at_end => self.anomaly(
                here.conn,
                here.dir,
                offset,
                AnomalyKind::UnfinishedFrame,
                format!("{len} bytes at the end of the stream are not a whole frame"),
            ),
            FramerEvent::Skipped { offset, len, .. } => self.anomaly(
                here.conn,
                here.dir,
                offset,
                AnomalyKind::Resync,
                format!("{len} bytes are not long-link frames"),
            ),
            FramerEvent::Oversize { offset, header } => self.anomaly(
                here.conn,
                here.dir,
                offset,
                AnomalyKind::OversizeFrame,
                format!(
                    "cmd {} seq {} claims {} bytes, over the cap; bytes skipped to the next chain of headers",
                    header.cmd, header.seq, header.len
                ),
            ),
        }
    }

    /// A gap in a long-link direction: the frame it cuts is reported.
    pub(super) fn longlink_gap(&mut self, here: &Here, ls: &mut LonglinkSide, len: u64) {
        let mut skipped = Vec::new();
        // A body being streamed is cut.
        ls.body = None;
        ls.framer.gap(len, &mut |e| {
            if let FramerEvent::Skipped { offset, len, .. } = e {
                skipped.push((offset, len));
            }
        });
        for (o, l) in skipped {
            self.anomaly(
                here.conn,
                here.dir,
                o,
                AnomalyKind::FrameCutByGap,
                format!("{l} bytes of a frame lost to a gap"),
            );
        }
    }

    /// One long-link frame (on TCP, or in an MMTLS data record with
    /// `mmtls_record` its index): paired, counted, put on the timeline and
    /// recorded.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn frame(
        &mut self,
        here: &Here,
        side: Side,
        offset: u64,
        h: Header,
        body: Body<'_>,
        after_gap: bool,
        mmtls_record: Option<(u64, Span)>,
    ) {
        if self.opts.plots {
            let (conn, ts, dir, len) = (here.conn, here.ts, here.dir as usize, h.len as u64);
            self.shared(move |g| g.report.plots.message(conn, ts, dir, len));
        }
        let conn = self.conns.get_mut(&here.conn).expect("conn");
        conn.frames += 1;
        conn.sides[side.index()].frames += 1;
        let frame_no = conn.frames;
        let paired =
            conn.pairing
                .frame_from(here.dir, &h, here.ts, frame_no, &mut self.shared.latencies);
        self.latencies_logged();
        let latency_us = paired.latency_ns().map(micros);
        // The header's kind, or response for a Mars echo.
        let kind = paired.kind(&h);
        if let Some(e) = roles::frame_evidence(&h, kind) {
            self.role_evidence(here.conn, here.roles, here.dir, offset, e.client, || {
                format!("{} (cmd {} seq {})", e.what, h.cmd, h.seq)
            });
        }
        if let Paired::Request { duplicate: true } = paired {
            self.anomaly(
                here.conn,
                here.dir,
                offset,
                AnomalyKind::DuplicateRequest,
                format!("cmd {} seq {} sent again before its response", h.cmd, h.seq),
            );
        }
        let name = self.opts.registry.name(h.cmd).map(|n| n.into_owned());
        let (cmd, name_, len) = (h.cmd, name.clone(), h.len as u64);
        self.shared(move |g| g.report.add_frame(cmd, name_, len, kind));
        let ids = Ids {
            uin: None,
            sid: None,
            user: None,
            device: None,
            conn: here.conn,
        };
        let ts = here.ts;
        match HeaderFact::of(&h).filter(|_| kind == h.kind()) {
            Some(HeaderFact::Notified) => self.shared(move |g| g.timeline.notified(ids, ts, None)),
            Some(HeaderFact::SyncRequest) => self.shared(move |g| g.timeline.sync_request(ids, ts)),
            None => {}
        }
        let raw = match body {
            Body::Bytes(b) if self.opts.raw => Some(Box::new(Raw::Frame(b.to_vec()))),
            _ => None,
        };
        let decoded = match body {
            Body::Scanned(d) => *d,
            Body::Bytes(body) => {
                let needed = self.records
                    || self.opts.raw
                    || tracker_needs_body(&h)
                    || (self.opts.keylog.is_some() && body.first() == Some(&MAGIC));
                if !needed {
                    return;
                }
                decode::decode(self.opts, &h, body, self.records)
            }
        };
        if kind == Kind::Response && h.request_cmd() == NEWSYNC && decoded.synckey.is_some() {
            let ids = Ids {
                uin: decoded.uin,
                ..ids
            };
            let (conn, msg_ids) = (here.conn, decoded.msg_ids.clone());
            self.shared(move |g| {
                g.timeline
                    .sync_result(ids, ts, conn, msg_ids.len() as u64, &msg_ids)
            });
        }
        if let Some(f) = decoded.sends.as_ref().filter(|_| kind == h.kind()) {
            let ids = Ids {
                uin: decoded.uin,
                ..ids
            };
            self.send_facts(ids, here.ts, Via::Longlink, f);
        }
        if let Some(user) = &decoded.user {
            let named = Ids {
                uin: decoded.uin,
                device: decoded.device.as_deref(),
                ..ids
            }
            .owned();
            let user = user.clone();
            self.shared(move |g| g.timeline.life_name(named.ids(), &user));
        }
        if let Some((source, keys)) = &decoded.synckey {
            self.synckey_seen(
                here,
                (decoded.uin, decoded.device.as_deref()),
                *source,
                keys.clone(),
            );
        }
        let layer = if usize::from(h.header_len) == MARS_HEADER_LEN {
            Layer::Mars
        } else {
            Layer::Longlink
        };
        let (first_packet, last_packet) = match mmtls_record {
            Some((_, span)) => span,
            None => self.span(here.conn, here.dir, offset, offset + h.len as u64),
        };
        let rec = FrameRecord {
            file: None,
            cmd: Some(h.cmd),
            cmd_name: name,
            seq: Some(h.seq),
            latency_us,
            after_gap,
            body: decoded.value,
            mmtls_record: mmtls_record.map(|(i, _)| i),
            first_packet,
            last_packet,
            raw,
            business: decoded
                .business
                .as_ref()
                .map(decode::BusinessSummary::to_value),
            ..FrameRecord::new(here, layer, kind, offset, h.len as u64)
        };
        (self.out)(&rec);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::commands::{response, IDENTIFY, SEQ_IDENTIFY, SEQ_PUSH};

    #[test]
    fn header_facts() {
        let push = Header::new(NEWNOTIFY, SEQ_PUSH, 0);
        assert_eq!(HeaderFact::of(&push), Some(HeaderFact::Notified));
        let sync = Header::new(NEWSYNC, 7, 10);
        assert_eq!(HeaderFact::of(&sync), Some(HeaderFact::SyncRequest));
        // The response to a newsync, or a newnotify sent as a request, is neither.
        assert_eq!(HeaderFact::of(&Header::new(response(NEWSYNC), 7, 10)), None);
        assert_eq!(HeaderFact::of(&Header::new(NEWNOTIFY, 3, 0)), None);
    }

    #[test]
    fn bodies_the_trackers_need() {
        assert!(tracker_needs_body(&Header::new(IDENTIFY, SEQ_IDENTIFY, 4)));
        // An identify cmd with an ordinary seq is not the identify frame.
        assert!(!tracker_needs_body(&Header::new(IDENTIFY, 5, 4)));
        assert!(tracker_needs_body(&Header::new(NEWSYNC, 5, 4)));
        assert!(tracker_needs_body(&Header::new(response(NEWSYNC), 5, 4)));
        assert!(!tracker_needs_body(&Header::new(NEWNOTIFY, SEQ_PUSH, 0)));
    }
}
