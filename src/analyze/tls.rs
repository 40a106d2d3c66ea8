//! TLS glue: every record is counted and becomes a `tls` record; the
//! hellos give the connection's server name, version, cipher suite, ALPN
//! and resumption; alerts are listed. With an NSS key log the protected
//! records are opened (see [`crate::proto::tls::Protection`]), and the
//! application bytes go to the connection's HTTP/1.x state like clear
//! text (web endpoints, short links, the SyncKey timeline). Records that
//! stay closed carry the reason in their `crypto` field.

use std::collections::VecDeque;

use serde::Serialize;

use super::packets::{self, Span};

use super::record::{FrameRecord, Kind, Layer};
use super::{Analyzer, AnomalyKind, Here};
use crate::flow::Direction;
use crate::proto::http;
use crate::proto::tls::{
    self, alert_text, hello, HandshakeBuf, HelloFacts, Protection, Splitter, Undecrypted,
};

/// A direction that carries TLS records.
#[derive(Debug, Default)]
pub(super) struct TlsSide {
    pub splitter: Splitter,
}

/// A TLS connection's state (both directions).
#[derive(Debug, Default)]
pub(super) struct TlsConn {
    pub facts: HelloFacts,
    /// Built once the ServerHello is seen: the keys, or why there are none.
    protection: Option<Result<Protection, Undecrypted>>,
    /// Handshake messages per direction (client, server), clear or opened.
    hs: [HandshakeBuf; 2],
    /// TLS 1.2: the direction sent its ChangeCipherSpec.
    ccs: [bool; 2],
    /// Application bytes opened so far per direction (their stream offsets
    /// in the HTTP state).
    app: [u64; 2],
    /// The reason no key opens this connection was reported already.
    reported: bool,
    /// Per direction: (offset of an opened record's application bytes in
    /// the HTTP state, the record's first and last packet), oldest first,
    /// at most [`packets::MAX_MARKS`]: the packets of an HTTP message.
    plain: [VecDeque<(u64, Span)>; 2],
}

/// Totals over every TLS record.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TlsTotals {
    pub records: u64,
    pub plaintext: u64,
    pub decrypted: u64,
    pub no_key: u64,
    pub unsupported_suite: u64,
    pub failed: u64,
    /// Application bytes opened.
    pub decrypted_bytes: u64,
}

/// The body of a `tls` record.
#[derive(Serialize)]
struct RecordBody {
    /// The record header's version (`TLS 1.2` on TLS 1.3 records too).
    record_version: String,
    len: usize,
    /// Handshake messages that completed in this record.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    handshake: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alert: Option<String>,
    /// Opened: the inner content type and the plaintext length.
    #[serde(skip_serializing_if = "Option::is_none")]
    inner: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plaintext_len: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keylog_line: Option<usize>,
    /// Not opened: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    undecrypted: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_name: Option<String>,
}

fn ci(dir: Direction) -> usize {
    usize::from(dir != Direction::ClientToServer)
}

impl<F: FnMut(&FrameRecord)> Analyzer<'_, F> {
    /// Feeds a direction's bytes to its record splitter.
    pub(super) fn tls_feed(&mut self, here: &Here, t: &mut TlsSide, offset: u64, bytes: &[u8]) {
        t.splitter
            .feed(offset, bytes, &mut |o| self.tls_output(here, o));
    }

    pub(super) fn tls_gap(&mut self, here: &Here, t: &mut TlsSide, len: u64) {
        t.splitter.gap(len, &mut |o| self.tls_output(here, o));
        // The records lost: the next one opens at its own sequence number,
        // and the HTTP state learns of a hole (as many bytes as were lost
        // on the wire: the plaintext's length is not known).
        let i = ci(here.dir);
        let Some(t) = self.conns.get_mut(&here.conn).and_then(|c| c.tls.as_mut()) else {
            return;
        };
        if let Some(Ok(p)) = t.protection.as_mut() {
            p.gap(i == 0);
        }
        if t.app[i] > 0 {
            t.app[i] += len;
            if self.conns.get(&here.conn).is_some_and(|c| c.h2.is_some()) {
                self.with_h2(here, |h, mut out| h.gap(here.dir, len, &mut out));
            } else {
                self.with_http(here, |h, mut out| h.gap(here.dir, len, &mut out));
            }
        }
    }

    pub(super) fn tls_finish(&mut self, here: &Here, t: &mut TlsSide) {
        t.splitter.finish(&mut |o| self.tls_output(here, o));
    }

    fn tls_output(&mut self, here: &Here, o: tls::Output<'_>) {
        match o {
            tls::Output::Record(r) => self.tls_record(here, &r),
            tls::Output::Skipped { stream_offset, len } => self.anomaly(
                here.conn,
                here.dir,
                stream_offset,
                AnomalyKind::TlsSkipped,
                format!("{len} bytes are not TLS records"),
            ),
        }
    }

    /// One record: its handshake messages read, opened when protected,
    /// counted and recorded.
    fn tls_record(&mut self, here: &Here, r: &tls::Record<'_>) {
        let i = ci(here.dir);
        let from_client = i == 0;
        let keylog = self.opts.keylog.as_ref().and_then(|k| k.nss());
        let Some(c) = self.conns.get_mut(&here.conn) else {
            return;
        };
        c.layers.tls_records += 1;
        let t = c.tls.get_or_insert_with(Box::default);
        let protected = match r.content_type {
            tls::CHANGE_CIPHER_SPEC => false,
            tls::APPLICATION_DATA => true,
            _ => t.ccs[i] && !t.facts.is_tls13(),
        };
        let mut body = RecordBody {
            record_version: hello::version_name(r.version),
            len: r.payload().len(),
            handshake: Vec::new(),
            alert: None,
            inner: None,
            plaintext_len: None,
            keylog_line: None,
            undecrypted: None,
            server_name: None,
        };
        let mut crypto = "plaintext";
        let mut app: Option<Vec<u8>> = None;
        let mut failed = None;
        if r.content_type == tls::CHANGE_CIPHER_SPEC {
            t.ccs[i] = true;
            if t.protection.is_none() && t.facts.version_id.is_some() {
                t.protection = Some(Protection::new(&t.facts, keylog));
            }
            if let Some(Ok(p)) = &mut t.protection {
                if !p.is_tls13() {
                    p.change_cipher_spec(from_client);
                }
            }
        }
        let opened = if protected {
            if t.protection.is_none() {
                t.protection = Some(Protection::new(&t.facts, keylog));
            }
            match t.protection.as_mut().expect("just set") {
                Ok(p) => p.open(from_client, &r.raw[..tls::HEADER_LEN], r.payload()),
                Err(e) => Err(e.clone()),
            }
        } else {
            Ok(tls::Decrypted {
                content_type: r.content_type,
                plaintext: r.payload().to_vec(),
                line: 0,
            })
        };
        match opened {
            Ok(d) => {
                if protected {
                    crypto = "decrypted";
                    body.inner = Some(tls::content_type_name(d.content_type));
                    body.plaintext_len = Some(d.plaintext.len());
                    body.keylog_line = Some(d.line);
                }
                match d.content_type {
                    tls::HANDSHAKE => {
                        for m in t.hs[i].push(&d.plaintext) {
                            body.handshake.push(hello::handshake_name(m.typ));
                            handshake_message(t, from_client, &m);
                        }
                    }
                    tls::ALERT => {
                        let a = alert_text(&d.plaintext);
                        if t.facts.alerts.len() < 16 {
                            t.facts.alerts.push(a.clone());
                        }
                        body.alert = Some(a);
                    }
                    tls::APPLICATION_DATA => app = Some(d.plaintext),
                    _ => {}
                }
            }
            Err(e) => {
                crypto = e.as_str();
                body.undecrypted = Some(e.detail());
                let first = !t.reported;
                if matches!(e, Undecrypted::Failed)
                    || (first && !matches!(e, Undecrypted::NoKeyLog))
                {
                    t.reported = true;
                    failed = Some(e);
                }
            }
        }
        if body.handshake.contains(&"client_hello") {
            body.server_name = t.facts.server_name.clone();
        }
        self.shared(move |g| g.report.tls.add(crypto));
        if let Some(e) = failed {
            self.anomaly(
                here.conn,
                here.dir,
                r.stream_offset,
                AnomalyKind::TlsUndecrypted,
                e.detail(),
            );
        }
        let extent = r.stream_offset..r.stream_offset + r.raw.len() as u64;
        let span = self.span(here.conn, here.dir, extent.start, extent.end);
        let rec = FrameRecord {
            body: serde_json::to_value(&body).unwrap_or_default(),
            first_packet: span.0,
            last_packet: span.1,
            tls_record: Some(r.index),
            crypto: Some(crypto),
            ..FrameRecord::new(
                here,
                Layer::Tls,
                Kind::Tls(r.content_type),
                r.stream_offset,
                r.raw.len() as u64,
            )
        };
        (self.out)(&rec);
        if let Some(pt) = app {
            self.tls_application(here, &pt, span);
        }
    }

    /// Opened application bytes: to the connection's HTTP/2 state when ALPN
    /// said `h2` or the client preface came, else to its HTTP/1.x state.
    fn tls_application(&mut self, here: &Here, pt: &[u8], span: Span) {
        let n = pt.len() as u64;
        self.shared(move |g| g.report.tls.decrypted_bytes += n);
        let i = ci(here.dir);
        let Some(c) = self.conns.get_mut(&here.conn) else {
            return;
        };
        let Some(t) = c.tls.as_mut() else {
            return;
        };
        let offset = t.app[i];
        t.app[i] += pt.len() as u64;
        if !pt.is_empty() {
            let p = &mut t.plain[i];
            if p.len() >= packets::MAX_MARKS {
                p.pop_front();
            }
            p.push_back((offset, span));
        }
        if i == 0 {
            t.facts.decrypted_c2s += pt.len() as u64;
        } else {
            t.facts.decrypted_s2c += pt.len() as u64;
        }
        if pt.is_empty() {
            return;
        }
        let h2 = c.h2.is_some()
            || t.facts.alpn.as_deref() == Some("h2")
            || (offset == 0 && pt.starts_with(b"PRI * HTTP/2.0"));
        if h2 {
            self.with_h2(here, |h, mut out| {
                h.feed(here.dir, offset, pt, here.ts, &mut out)
            });
            return;
        }
        if c.http.is_none() {
            if offset > 0 || crate::detect::detect(pt, true) != Some(crate::detect::Protocol::Http)
            {
                return;
            }
            c.http = Some(Box::new(http::Conn::new(http::Config::default())));
        }
        self.with_http(here, |h, mut out| {
            h.feed(here.dir, offset, pt, here.ts, &mut out)
        });
    }
}

impl<F: FnMut(&FrameRecord)> Analyzer<'_, F> {
    /// The packets of bytes `from..to` of the application stream opened in
    /// `dir` (an HTTP message inside TLS): the first packet of the record
    /// holding `from`, the last of the record holding `to - 1`. `None` when
    /// the connection carries no opened TLS. Older entries are forgotten.
    pub(super) fn tls_plain_span(
        &mut self,
        conn: u64,
        dir: Direction,
        from: u64,
        to: u64,
    ) -> Option<Span> {
        let t = self.conns.get_mut(&conn)?.tls.as_mut()?;
        let p = &mut t.plain[ci(dir)];
        if p.is_empty() {
            return None;
        }
        let at = |o: u64| {
            let i = p.partition_point(|&(s, _)| s <= o);
            i.checked_sub(1).map(|i| p[i].1)
        };
        let span = (
            at(from).and_then(|s| s.0),
            at(to.saturating_sub(1).max(from)).and_then(|s| s.1),
        );
        while p.len() >= 2 && p[1].0 <= from {
            p.pop_front();
        }
        Some(span)
    }
}

/// A whole handshake message of the direction (`from_client`): the hellos
/// fill the facts; a Finished or KeyUpdate moves a TLS 1.3 direction to
/// its next keys.
fn handshake_message(t: &mut TlsConn, from_client: bool, m: &tls::Handshake) {
    match m.typ {
        hello::CLIENT_HELLO if from_client => {
            t.facts.client_hello(m.body());
        }
        hello::SERVER_HELLO if !from_client => {
            t.facts.server_hello(m.body());
        }
        8 if !from_client => {
            // TLS 1.3 EncryptedExtensions: the ALPN the server picked.
            if let Some(p) = hello::encrypted_extensions_alpn(m.body()) {
                t.facts.alpn = Some(p);
            }
        }
        hello::FINISHED | hello::KEY_UPDATE => {
            if let Some(Ok(p)) = &mut t.protection {
                if p.is_tls13() {
                    if m.typ == hello::FINISHED {
                        p.to_application(from_client);
                    } else {
                        p.key_update(from_client);
                    }
                }
            }
        }
        _ => {}
    }
}

impl TlsTotals {
    pub(super) fn add(&mut self, crypto: &str) {
        self.records += 1;
        match crypto {
            "plaintext" => self.plaintext += 1,
            "decrypted" => self.decrypted += 1,
            "unsupported_suite" => self.unsupported_suite += 1,
            "failed" => self.failed += 1,
            _ => self.no_key += 1,
        }
    }
}
