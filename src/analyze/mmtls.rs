//! MMTLS glue: every record is counted and becomes a record, opened with
//! the key log when one is given. A long link's data record holds one
//! long-link frame; a short link's request and response bodies go to
//! [`super::shortlink`].

use serde::Serialize;

use super::record::{FrameRecord, Kind, Layer};
use super::shortlink::ShortReq;
use super::{Analyzer, AnomalyKind, Here};
use crate::flow::Side;
use crate::proto::keylog::Decrypt;
use crate::proto::longlink::{self, Header};
use crate::proto::mmtls::{self, RecordType, Splitter};

/// What became of an MMTLS record's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Crypto {
    /// Sent in clear (handshake and alert records before keys exist).
    Plaintext,
    /// Opened and authenticated with a key from the key log.
    Decrypted,
    /// Encrypted, and no logged key opens it (or no key log).
    NoKey,
    /// A logged key matched but the record did not authenticate.
    Failed,
}

impl Crypto {
    pub fn as_str(self) -> &'static str {
        match self {
            Crypto::Plaintext => "plaintext",
            Crypto::Decrypted => "decrypted",
            Crypto::NoKey => "no_key",
            Crypto::Failed => "failed",
        }
    }
}

/// Where an MMTLS record was found.
pub(super) enum RecCtx {
    /// On a long link (records straight on TCP), sent by this side.
    Long(Side),
    /// In a short-link request body.
    ShortRequest,
    /// In a short-link response body, with the request it answers.
    ShortResponse(Option<ShortReq>),
}

/// A direction that carries MMTLS records straight on TCP.
#[derive(Debug, Default)]
pub(super) struct MmtlsSide {
    pub splitter: Splitter,
}

/// The body of an `mmtls` record: its type, payload length and the key-log
/// line that opened it.
#[derive(Serialize)]
struct RecordBody {
    #[serde(rename = "type")]
    typ: String,
    len: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    keylog_line: Option<usize>,
}

impl<F: FnMut(&FrameRecord)> Analyzer<'_, F> {
    /// Feeds a long-link direction's bytes to its record splitter.
    pub(super) fn mmtls_feed(
        &mut self,
        here: &Here,
        side: Side,
        m: &mut MmtlsSide,
        offset: u64,
        bytes: &[u8],
    ) {
        m.splitter.feed_with(offset, bytes, &mut |o| match o {
            mmtls::Output::Record(r) => {
                self.record(
                    here,
                    r.header,
                    r.index,
                    r.stream_offset,
                    r.raw,
                    &RecCtx::Long(side),
                );
            }
            mmtls::Output::Skipped(sk) => self.anomaly(
                here.conn,
                here.dir,
                sk.stream_offset,
                AnomalyKind::MmtlsSkipped,
                format!("{} bytes skipped ({:?})", sk.len, sk.reason),
            ),
        })
    }

    /// One MMTLS record: counted, recorded, and when it opens, its content
    /// dissected (a long-link frame, or short-link early data / response).
    /// Returns the short-link request it holds, if it is one.
    pub(super) fn record(
        &mut self,
        here: &Here,
        h: mmtls::RecordHeader,
        index: u64,
        offset: u64,
        raw: &[u8],
        ctx: &RecCtx,
    ) -> Option<ShortReq> {
        let payload = raw.get(mmtls::HEADER_LEN..).unwrap_or(&[]);
        let (crypto, plaintext, line) = if mmtls::is_cleartext(h.typ, payload) {
            (Crypto::Plaintext, None, None)
        } else {
            match self.opts.keylog.as_ref().map(|k| k.decrypt_record(raw)) {
                Some(Decrypt::Plaintext(o)) => (Crypto::Decrypted, Some(o.plaintext), Some(o.line)),
                Some(Decrypt::Failed(f)) => {
                    self.anomaly(
                        here.conn,
                        here.dir,
                        offset,
                        AnomalyKind::MmtlsDecryptFailed,
                        f.to_string(),
                    );
                    (Crypto::Failed, None, None)
                }
                _ => (Crypto::NoKey, None, None),
            }
        };
        let typ = h.typ.0;
        self.shared(move |g| g.report.mmtls.add(typ, crypto));
        if let Some(c) = self.conns.get_mut(&here.conn) {
            c.layers.mmtls_records += 1;
        }
        let body = RecordBody {
            typ: format!("0x{:02x}", h.typ.0),
            len: payload.len(),
            keylog_line: line,
        };
        let extent = offset..offset + raw.len() as u64;
        let span = self.span(here.conn, here.dir, extent.start, extent.end);
        let rec = FrameRecord {
            body: serde_json::to_value(body).unwrap_or_default(),
            first_packet: span.0,
            last_packet: span.1,
            mmtls_record: Some(index),
            crypto: Some(crypto.as_str()),
            ..FrameRecord::new(
                here,
                Layer::Mmtls,
                Kind::Record(h.typ),
                offset,
                raw.len() as u64,
            )
        };
        (self.out)(&rec);
        let pt = plaintext?;
        if h.typ != RecordType::DATA {
            return None;
        }
        let side = match ctx {
            RecCtx::ShortRequest => return self.short_request(here, extent, index, &pt),
            RecCtx::ShortResponse(req) => {
                self.short_response(here, extent, index, &pt, req.as_ref());
                return None;
            }
            RecCtx::Long(side) => *side,
        };
        // A long-link data record holds one frame.
        if let Some(fh) = Header::parse(&pt)
            .ok()
            .filter(|_| longlink::looks_like_frame(&pt))
        {
            let end = (fh.len as usize).min(pt.len());
            let body = pt.get(longlink::HEADER_LEN..end).unwrap_or(&[]);
            self.frame(
                here,
                side,
                offset,
                fh,
                super::longlink::Body::Bytes(body),
                false,
                Some((index, span)),
            );
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crypto_names_are_the_report_words() {
        let all = [
            Crypto::Plaintext,
            Crypto::Decrypted,
            Crypto::NoKey,
            Crypto::Failed,
        ];
        let names: Vec<&str> = all.iter().map(|c| c.as_str()).collect();
        assert_eq!(names, ["plaintext", "decrypted", "no_key", "failed"]);
    }

    #[test]
    fn record_body_json() {
        let b = RecordBody {
            typ: "0x17".into(),
            len: 40,
            keylog_line: None,
        };
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            r#"{"type":"0x17","len":40}"#
        );
        let b = RecordBody {
            keylog_line: Some(12),
            ..b
        };
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            r#"{"type":"0x17","len":40,"keylog_line":12}"#
        );
    }
}
