//! HTTP/2 glue: the connection's [`h2::Conn`] (opened TLS bytes when ALPN
//! said `h2` or the client preface came, or clear text with the preface or
//! a server's first SETTINGS); every frame becomes an `http2` record, every
//! stream's exchange goes where HTTP/1.x exchanges go (web endpoints, the
//! SyncKey timeline, the short link, the per-path tables), anomalies are
//! `http2` events.

use super::record::{FrameRecord, Kind, Layer};
use super::{Analyzer, AnomalyKind, Here};
use crate::proto::h2::{self, H2Event};

impl<F: FnMut(&FrameRecord)> Analyzer<'_, F> {
    /// Runs `f` on the connection's HTTP/2 state (made when missing),
    /// handling what it reports.
    pub(super) fn with_h2(
        &mut self,
        here: &Here,
        f: impl FnOnce(&mut h2::Conn, &mut dyn FnMut(H2Event<'_>)),
    ) {
        let Some(c) = self.conns.get_mut(&here.conn) else {
            return;
        };
        let mut h =
            c.h2.take()
                .unwrap_or_else(|| Box::new(h2::Conn::new(h2::Config::default())));
        f(&mut h, &mut |ev| self.h2_event(here, ev));
        if let Some(c) = self.conns.get_mut(&here.conn) {
            c.h2 = Some(h);
        }
    }

    /// Ends the connection's HTTP/2 state, if it has one.
    pub(super) fn h2_finish(&mut self, here: &Here) {
        if self.conns.get(&here.conn).is_some_and(|c| c.h2.is_some()) {
            self.with_h2(here, |h, mut out| h.finish(&mut out));
        }
    }

    fn h2_event(&mut self, here: &Here, ev: H2Event<'_>) {
        match ev {
            H2Event::Http(ev) => self.http_event(here, ev),
            H2Event::Anomaly { dir, offset, what } => {
                self.anomaly(here.conn, dir, offset, AnomalyKind::Http2, what)
            }
            H2Event::Frame { dir, info, ts } => {
                if let Some(c) = self.conns.get_mut(&here.conn) {
                    c.layers.h2_frames += 1;
                }
                if !self.records {
                    return;
                }
                let at = Here {
                    conn: here.conn,
                    dir,
                    ts,
                    roles: here.roles,
                };
                let (from, len) = (
                    info.stream_offset,
                    h2::HEADER_LEN as u64 + u64::from(info.len),
                );
                let span = self
                    .tls_plain_span(here.conn, dir, from, from + len)
                    .unwrap_or_else(|| self.span(here.conn, dir, from, from + len));
                let rec = FrameRecord {
                    body: serde_json::to_value(info).unwrap_or_default(),
                    first_packet: span.0,
                    last_packet: span.1,
                    ..FrameRecord::new(&at, Layer::Http2, Kind::H2(info.type_id), from, len)
                };
                (self.out)(&rec);
            }
        }
    }
}
