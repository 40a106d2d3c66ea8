//! HTTP and web WeChat glue: the connection's HTTP state, its events
//! routed to the short link or to a web exchange, and a web exchange's
//! facts on the SyncKey timeline (login, synccheck long polls, webwxsync
//! SyncKeys and messages).

use serde::Serialize;
use serde_json::Value;

use super::decode;
use super::record::{FrameRecord, Layer, Raw};
use super::report::{MessageKind, MessageSeen};
use super::shortlink::ShortLink;
use super::{micros, Analyzer, AnomalyKind, Here};
use crate::proto::http::{self, HttpEvent};
use crate::proto::longlink::Kind;
use crate::proto::web::{self, Endpoint, WebInfo};
use crate::track::lifecycle::{MsgKind, Send, Via};
use crate::track::synckey::{message_digest, Ids, Message, Observation, Source};

/// Path prefix of the reference server's plain-protobuf short link.
const PLAIN_SHORT_PREFIX: &str = "/cgi-bin/micromsg-bin/";

/// The body of an `http` or `web` record.
#[derive(Serialize)]
struct ExchangeBody<'a> {
    request: &'a Value,
    response: &'a Value,
    /// Web exchanges: what the exchange tells.
    #[serde(skip_serializing_if = "Option::is_none")]
    info: Option<&'a WebInfo>,
    /// What the HTTP parser found wrong in the response and the request.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    problems: Vec<&'a String>,
    /// The sha256 (hex) of each body as kept (de-chunked, decoded; at most
    /// the body cap), absent for an empty body or no message.
    #[serde(skip_serializing_if = "Option::is_none")]
    request_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_sha256: Option<String>,
}

/// The hex sha256 of a non-empty body.
fn sha256(b: &[u8]) -> Option<String> {
    use sha2::Digest;
    (!b.is_empty()).then(|| hex::encode(sha2::Sha256::digest(b)))
}

/// A body shown as text: JSON when it parses, else (the first 2048
/// characters of) UTF-8 text, else protobuf or hex (the body of an `http`
/// record; the replay decodes live answers with it too).
pub fn text(b: &[u8]) -> Value {
    if b.is_empty() {
        Value::Null
    } else if let Ok(v) = serde_json::from_slice(b) {
        v
    } else if let Ok(t) = std::str::from_utf8(b) {
        t.chars().take(2048).collect::<String>().into()
    } else {
        decode::raw_or_blob(b)
    }
}

/// The decoded body of an HTTP request as a record shows it (`path` with
/// its query): a web endpoint's JSON, else [`text`]. The replay mock
/// matches live requests on it.
pub fn request_value(path: &str, body: &[u8]) -> Value {
    match web::decode(path, body, None) {
        Some(e) => e.request,
        None => text(body),
    }
}

/// The last non-empty segment of a path, without its query.
fn last_segment(path: &str) -> Option<&str> {
    let p = path.split('?').next().unwrap_or("");
    p.rsplit('/').find(|s| !s.is_empty())
}

impl<F: FnMut(&FrameRecord)> Analyzer<'_, F> {
    /// Runs `f` on the connection's HTTP state, handling what it reports.
    pub(super) fn with_http(
        &mut self,
        here: &Here,
        f: impl FnOnce(&mut http::Conn, &mut dyn FnMut(HttpEvent<'_>)),
    ) {
        let Some(mut h) = self.conns.get_mut(&here.conn).and_then(|c| c.http.take()) else {
            return;
        };
        f(&mut h, &mut |ev| self.http_event(here, ev));
        if let Some(c) = self.conns.get_mut(&here.conn) {
            c.http = Some(h);
        }
    }

    pub(super) fn http_event(&mut self, here: &Here, ev: HttpEvent<'_>) {
        match ev {
            HttpEvent::Skipped {
                dir,
                offset,
                len,
                reason,
            } => {
                self.anomaly(
                    here.conn,
                    dir,
                    offset,
                    AnomalyKind::HttpSkipped,
                    format!("{len} bytes are not HTTP ({reason})"),
                );
            }
            HttpEvent::Request(rq) => {
                let path = || match &rq.start {
                    http::Start::Request { method, path } => {
                        format!("an HTTP request line ({method} {path})")
                    }
                    http::Start::Response { .. } => "an HTTP request line".to_owned(),
                };
                self.role_evidence(here.conn, here.roles, rq.dir, rq.stream_offset, true, path);
                let at = Here {
                    conn: here.conn,
                    dir: rq.dir,
                    ts: rq.ts_last,
                    roles: here.roles,
                };
                if let Some(link) = ShortLink::of(rq) {
                    self.short_link_request(&at, link, rq);
                }
            }
            HttpEvent::Response {
                response: rs,
                request,
            } => {
                let status = || match &rs.start {
                    http::Start::Response { status, .. } => {
                        format!("an HTTP status line ({status})")
                    }
                    http::Start::Request { .. } => "an HTTP status line".to_owned(),
                };
                self.role_evidence(
                    here.conn,
                    here.roles,
                    rs.dir,
                    rs.stream_offset,
                    false,
                    status,
                );
                let at = Here {
                    conn: here.conn,
                    dir: rs.dir,
                    ts: rs.ts_last,
                    roles: here.roles,
                };
                match request.and_then(ShortLink::of) {
                    Some(link) => self.short_link_response(&at, link, rs),
                    None => self.web_exchange(&at, request, rs),
                }
            }
            HttpEvent::Unanswered(rq) => {
                // A short link's request made its records already.
                if ShortLink::of(rq).is_none() {
                    let at = Here {
                        conn: here.conn,
                        dir: rq.dir,
                        ts: rq.ts_last,
                        roles: here.roles,
                    };
                    self.unanswered_http(&at, rq);
                }
            }
        }
    }

    /// A web exchange's facts on the SyncKey timeline.
    /// `cookie`: the request's Cookie header (a session named only by its
    /// `wxsid` / `wxuin` cookies).
    fn web_facts(
        &mut self,
        at: &Here,
        ex: &web::WebExchange,
        req_ts: crate::capture::Timestamp,
        rs: &http::Message,
        cookie: Option<&str>,
    ) {
        let i = &ex.info;
        let from_cookie = |name| cookie.and_then(|c| web::cookie(c, name));
        let ids = Ids {
            uin: i
                .uin
                .filter(|&u| u != 0)
                .or_else(|| from_cookie("wxuin").and_then(|u| u.parse().ok())),
            sid: i
                .sid
                .as_deref()
                .filter(|s| !s.is_empty())
                .or_else(|| from_cookie("wxsid")),
            user: None,
            device: None,
            conn: at.conn,
        };
        let ids = ids.owned();
        let (i, endpoint, conn, rs_ts) = (i.clone(), ex.endpoint, at.conn, rs.ts_last);
        let what = i.client_msg_id.as_ref().map(|_| {
            let msg = &ex.request["Msg"];
            message_digest(
                &web::id_string(&msg["ToUserName"]),
                web::as_u64(&msg["Type"]).unwrap_or(0),
                &web::id_string(&msg["Content"]),
            )
        });
        // The message's steps on the lifecycles: a send (webwxsendmsg,
        // webwxsendmsgimg) and its answer, a read report.
        let send = i.client_msg_id.as_ref().map(|c| {
            let msg = &ex.request["Msg"];
            Send {
                client_id: c.clone(),
                kind: if endpoint == Endpoint::Webwxsendmsgimg {
                    MsgKind::Image
                } else {
                    MsgKind::Text
                },
                via: Via::Web,
                from: Some(web::id_string(&msg["FromUserName"])).filter(|s| !s.is_empty()),
                to: Some(web::id_string(&msg["ToUserName"])).filter(|s| !s.is_empty()),
            }
        });
        let read = (endpoint == Endpoint::Webwxstatusnotify
            && web::as_u64(&ex.request["Code"]) == Some(1))
        .then(|| {
            (
                web::id_string(&ex.request["FromUserName"]),
                web::id_string(&ex.request["ToUserName"]),
            )
        })
        .filter(|(f, t)| !f.is_empty() && !t.is_empty());
        self.shared(move |g| {
            let ids = ids.ids();
            web_timeline(
                &mut g.timeline,
                &ids,
                &i,
                endpoint,
                conn,
                (req_ts, rs_ts),
                what,
            );
            if let Some(send) = send {
                g.timeline.life_send(ids, req_ts, send.clone());
                if let Some(m) = &i.msg_id {
                    g.timeline.life_ack(ids, rs_ts, send, m);
                }
            }
            if let Some((from, to)) = &read {
                g.timeline.life_read(ids, req_ts, from, to, 0);
            }
        });
    }

    /// A plain HTTP or web WeChat exchange: a record, and the web protocol's
    /// facts on the SyncKey timeline.
    fn web_exchange(&mut self, at: &Here, request: Option<&http::Message>, rs: &http::Message) {
        let path = request.and_then(|r| r.path()).unwrap_or("").to_owned();
        let req_body = request.map(|r| r.body.as_slice()).unwrap_or(&[]);
        let ex = web::decode(&path, req_body, Some(&rs.body));
        match &ex {
            Some(ex) => {
                let req_ts = request.map_or(rs.ts_first, |r| r.ts_last);
                let cookie = request.and_then(|r| r.header_str("cookie"));
                self.web_facts(at, ex, req_ts, rs, cookie);
            }
            None => {
                let (p, q) = path.split_once('?').unwrap_or((&path, ""));
                if let Some(cgi) = p.strip_prefix(PLAIN_SHORT_PREFIX) {
                    self.plain_short_link(at.conn, cgi, q, request, rs);
                }
            }
        }
        self.http_record(at, request, Some(rs), ex.as_ref());
    }

    /// A request the connection ended without answering (a synccheck still
    /// held, a lone HEAD): a record of kind `request`.
    fn unanswered_http(&mut self, at: &Here, rq: &http::Message) {
        let path = rq.path().unwrap_or("");
        let ex = web::decode(path, &rq.body, None);
        self.http_record(at, Some(rq), None, ex.as_ref());
    }

    /// The record of an HTTP exchange, or of a request alone.
    fn http_record(
        &mut self,
        at: &Here,
        request: Option<&http::Message>,
        response: Option<&http::Message>,
        ex: Option<&web::WebExchange>,
    ) {
        let span = |m: &http::Message, this: &mut Self| {
            this.tls_plain_span(at.conn, m.dir, m.stream_offset, m.end_offset)
                .unwrap_or_else(|| this.span(at.conn, m.dir, m.stream_offset, m.end_offset))
        };
        let req_span = request.map(|r| span(r, self));
        let resp_span = response.map(|r| span(r, self));
        let path = request.and_then(|r| r.path()).unwrap_or("");
        let name = match ex {
            Some(e) => e.endpoint.as_str(),
            None => last_segment(path).unwrap_or("/"),
        };
        let extent = |m: Option<&http::Message>| m.map_or(0, |m| m.end_offset - m.stream_offset);
        let latency_us = request
            .zip(response)
            .map(|(q, r)| micros(r.ts_last.nanos_since(&q.ts_last)));
        let layer = if ex.is_some() {
            Layer::Web
        } else {
            Layer::Http
        };
        let name_ = name.to_owned();
        let uri = request
            .and_then(|r| r.path())
            .map(|p| p.split('?').next().unwrap_or(p).to_owned());
        let kind = match (request, response) {
            (Some(_), Some(_)) => MessageKind::Exchange,
            (None, _) => MessageKind::Response,
            (Some(_), None) => MessageKind::Unanswered,
        };
        let bytes = extent(request) + extent(response);
        self.shared(move |g| {
            g.report.add_message(MessageSeen {
                layer,
                name: &name_,
                uri: uri.as_deref(),
                kind,
                bytes,
                decrypted: false,
                latency_us,
            })
        });
        if let Some(c) = self.conns.get_mut(&at.conn) {
            c.layers.http_exchanges += 1;
        }
        if self.opts.plots {
            let conn = at.conn;
            let messages: Vec<_> = [request, response]
                .into_iter()
                .flatten()
                .map(|m| (m.ts_last, m.dir as usize, m.end_offset - m.stream_offset))
                .collect();
            let exchange = request
                .zip(response)
                .map(|(q, r)| (name.to_owned(), q.ts_first, r.ts_last));
            self.shared(move |g| {
                let plots = &mut g.report.plots;
                for (ts, dir, len) in messages {
                    plots.message(conn, ts, dir, len);
                }
                if let Some((name, first, last)) = exchange {
                    plots.exchange(conn, layer, &name, first, last);
                }
            });
        }
        if !self.records {
            return;
        }
        let req_body = request.map(|r| r.body.as_slice()).unwrap_or(&[]);
        let mut problems: Vec<&String> = Vec::new();
        if let Some(r) = response {
            problems.extend(r.problems.iter());
        }
        if let Some(r) = request {
            problems.extend(r.problems.iter());
        }
        let (req_text, resp_text);
        let request_sha256 = sha256(req_body);
        let response_sha256 = response.and_then(|r| sha256(&r.body));
        let body = match ex {
            Some(e) => ExchangeBody {
                request: &e.request,
                response: &e.response,
                info: Some(&e.info),
                problems,
                request_sha256,
                response_sha256,
            },
            None => {
                req_text = text(req_body);
                resp_text = response.map_or(Value::Null, |r| text(&r.body));
                ExchangeBody {
                    request: &req_text,
                    response: &resp_text,
                    info: None,
                    problems,
                    request_sha256,
                    response_sha256,
                }
            }
        };
        let layer = if ex.is_some() {
            Layer::Web
        } else {
            Layer::Http
        };
        // The record sits where its last message is.
        let Some(last) = response.or(request) else {
            return;
        };
        let kind = if response.is_some() {
            Kind::Response
        } else {
            Kind::Request
        };
        let first_packet = req_span.or(resp_span).and_then(|s| s.0);
        let last_packet = resp_span.or(req_span).and_then(|s| s.1);
        let rec = FrameRecord {
            file: None,
            cmd_name: match ex {
                Some(e) => Some(e.endpoint.as_str().to_owned()),
                None => last_segment(path).map(str::to_owned),
            },
            first_packet,
            last_packet,
            latency_us,
            after_gap: !last.complete || request.is_some_and(|r| !r.complete),
            body: serde_json::to_value(body).unwrap_or_default(),
            host: request
                .and_then(|r| r.header_str("host").or_else(|| r.header_str(":authority")))
                .map(str::to_owned),
            method: request.and_then(|r| r.method()).map(str::to_owned),
            path: request.and_then(|r| r.path()).map(str::to_owned),
            status: response.and_then(|r| r.status()),
            endpoint: ex.map(|e| e.endpoint.as_str()),
            raw: match (self.opts.raw, response) {
                (true, Some(rs)) => Some(Box::new(Raw::Exchange {
                    request: request.cloned().map(Box::new),
                    response: Box::new(rs.clone()),
                })),
                _ => None,
            },
            ..FrameRecord::new(
                at,
                layer,
                kind,
                last.stream_offset,
                last.end_offset - last.stream_offset,
            )
        };
        (self.out)(&rec);
    }
}

/// A web exchange's facts (`i`, of `endpoint`, on `conn`, its request at
/// `req_ts` and its response at `rs_ts`) on the SyncKey timeline; `what`:
/// the digest of the message a webwxsendmsg sent.
fn web_timeline(
    timeline: &mut crate::track::synckey::Timeline,
    ids: &Ids<'_>,
    i: &web::WebInfo,
    endpoint: Endpoint,
    conn: u64,
    (req_ts, rs_ts): (crate::capture::Timestamp, crate::capture::Timestamp),
    what: Option<u64>,
) {
    let ids = *ids;
    let obs = |ts, source, message: Message, keys: &web::KeyMap| {
        Observation::new(ts, conn, source, message, keys.clone())
    };
    match endpoint {
        Endpoint::Newloginpage | Endpoint::Webwxinit => timeline.start(ids),
        _ => {}
    }
    if let Some(k) = &i.synccheck_key {
        timeline.observe(
            ids,
            obs(req_ts, Source::SynccheckParam, Message::Synccheck, k),
            false,
        );
    }
    if let Some(k) = &i.synckey_presented {
        timeline.observe(
            ids,
            obs(
                req_ts,
                Source::ClientPresented,
                Message::WebwxsyncRequest,
                k,
            ),
            false,
        );
    }
    if endpoint == Endpoint::Webwxsync {
        timeline.sync_request(ids, req_ts);
    }
    if let Some(k) = &i.synckey_issued {
        let m = if endpoint == Endpoint::Webwxinit {
            Message::Webwxinit
        } else {
            Message::WebwxsyncResponse
        };
        timeline.observe(ids, obs(rs_ts, Source::ServerIssued, m, k), false);
    }
    if let Some(k) = &i.synccheckkey_issued {
        timeline.observe(
            ids,
            obs(
                rs_ts,
                Source::ServerIssued,
                Message::WebwxsyncResponseSyncCheckKey,
                k,
            ),
            true,
        );
    }
    if endpoint == Endpoint::Webwxsync {
        let brought = i.add_msg_count.unwrap_or(0) + i.mod_contact_count.unwrap_or(0);
        let ids_list: Vec<String> = i.add_msgs.iter().map(|m| m.msg_id.clone()).collect();
        timeline.sync_result(ids, rs_ts, conn, brought, &ids_list);
    }
    if endpoint == Endpoint::Synccheck {
        timeline.longpoll(ids, req_ts, rs_ts);
        if let Some(sel) = i.selector.filter(|&s| s > 0) {
            timeline.notified(ids, rs_ts, Some(sel));
        }
    }
    if let Some(c) = &i.client_msg_id {
        timeline.sent(ids, rs_ts, conn, c, what, i.msg_id.as_deref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_name_from_the_path() {
        assert_eq!(
            last_segment("/cgi-bin/newgetdns?uin=1&x=/y"),
            Some("newgetdns")
        );
        assert_eq!(last_segment("/a/b/"), Some("b"));
        assert_eq!(last_segment("/"), None);
        assert_eq!(last_segment(""), None);
    }

    #[test]
    fn bodies_as_text() {
        assert_eq!(text(b""), Value::Null);
        assert_eq!(text(br#"{"Ret":0}"#), serde_json::json!({"Ret": 0}));
        assert_eq!(text(b"window.code=200;"), Value::from("window.code=200;"));
        let long = "x".repeat(3000);
        assert_eq!(text(long.as_bytes()).as_str().map(str::len), Some(2048));
    }

    #[test]
    fn exchange_body_json() {
        let (rq, rs) = (Value::Null, Value::from("ok"));
        let p = "truncated body".to_owned();
        let b = ExchangeBody {
            request: &rq,
            response: &rs,
            info: None,
            problems: vec![],
            request_sha256: None,
            response_sha256: sha256(b"ok"),
        };
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            r#"{"request":null,"response":"ok","response_sha256":"2689367b205c16ce32ed4200942b8b8b1e262dfc70d9bc9fbc77c49699a4f1df"}"#
        );
        let b = ExchangeBody {
            problems: vec![&p],
            ..b
        };
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            r#"{"request":null,"response":"ok","problems":["truncated body"],"response_sha256":"2689367b205c16ce32ed4200942b8b8b1e262dfc70d9bc9fbc77c49699a4f1df"}"#
        );
    }
}
