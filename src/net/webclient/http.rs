//! The web client's HTTP/1.1: requests are encoded and responses parsed
//! without I/O by the shared codec ([`encode_request`] and
//! [`parse_response`] over [`crate::proto::http::message`]; bodies by
//! Content-Length, chunked (de-chunked) or to the end of the connection),
//! and [`Conn`] is one keep-alive connection over tokio that runs one
//! request at a time.

use std::io;
use std::time::Duration;

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::net::client::ClientError;
pub use crate::proto::http::ParseError;
use crate::proto::http::{chunked, message, HttpMessage, Kind, Limits, Parse};

/// Cap on a response's head, and on its body.
pub const MAX_RESPONSE_LEN: usize = 16 << 20;

/// The codec's caps for responses.
const LIMITS: Limits = Limits {
    max_head: MAX_RESPONSE_LEN,
    max_headers: message::MAX_HEADERS,
    max_body: MAX_RESPONSE_LEN,
    lenient: false,
};

/// A request to encode.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'static str,
    /// Path and query, already percent-encoded.
    pub target: &'a str,
    /// `Cookie` header value, if any.
    pub cookie: Option<&'a str>,
    /// JSON body (POST).
    pub body: Option<&'a [u8]>,
}

/// The bytes of a request to `host`.
pub fn encode_request(host: &str, req: &Request<'_>) -> Vec<u8> {
    let mut headers = vec![("Host", host), ("User-Agent", "syncscope")];
    if let Some(c) = req.cookie.filter(|c| !c.is_empty()) {
        headers.push(("Cookie", c));
    }
    let len = req.body.map(|b| b.len().to_string());
    if let Some(len) = &len {
        headers.push(("Content-Type", "application/json;charset=UTF-8"));
        headers.push(("Content-Length", len));
    }
    message::encode_request(
        req.method,
        req.target,
        &headers,
        req.body.unwrap_or_default(),
    )
}

/// A whole response, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The server keeps the connection open after it.
    pub keep_alive: bool,
}

impl Response {
    fn new(m: &HttpMessage<'_>, body: Vec<u8>) -> Response {
        Response {
            status: m.status.unwrap_or(0),
            reason: m.reason.unwrap_or("").to_owned(),
            headers: m
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        (*n).to_owned(),
                        String::from_utf8_lossy(v).trim().to_owned(),
                    )
                })
                .collect(),
            body,
            keep_alive: m.keep_alive(),
        }
    }

    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `name=value` of every `Set-Cookie` (attributes dropped).
    pub fn set_cookies(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
            .filter_map(|(_, v)| {
                let pair = v.split(';').next()?;
                let (name, value) = pair.split_once('=')?;
                Some((name.trim(), value.trim()))
            })
    }

    /// Whether the server keeps the connection open after this response.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// The body as text, cut for an error message.
    pub fn body_excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let line = text.trim();
        match line.char_indices().nth(200) {
            Some((i, _)) => format!("{}...", &line[..i]),
            None => line.to_owned(),
        }
    }
}

/// Parses one response at the start of `buf`: the response and the bytes
/// it took, `None` while incomplete. `eof`: the server closed after `buf`
/// (a response without Content-Length ends there).
pub fn parse_response(buf: &[u8], eof: bool) -> Result<Option<(Response, usize)>, ParseError> {
    match chunked::parse_owned(buf, Kind::Response, &LIMITS, eof) {
        Parse::Complete((m, _), _) if !m.complete => Ok(None),
        Parse::Complete((m, body), used) => Ok(Some((Response::new(&m, body), used))),
        Parse::Incomplete => Ok(None),
        Parse::Invalid(e) => Err(e),
    }
}

/// How one exchange on a connection failed.
enum Failure {
    /// A reused connection was closed before any byte of the answer: the
    /// server dropped an idle keep-alive connection, try a fresh one.
    Stale,
    Error(ClientError),
}

/// A connection's byte stream: TCP, or TLS over it.
trait Io: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> Io for T {}

/// One keep-alive connection to the server, (re)opened on demand.
#[derive(Debug)]
pub struct Conn {
    server: String,
    /// HTTPS with this configuration (`None`: plain HTTP).
    tls: Option<Arc<rustls::ClientConfig>>,
    stream: Option<Box<dyn Io>>,
    buf: Vec<u8>,
    /// A request was abandoned half way (timeout or cancel): the stream
    /// may still carry its answer, so it is not reused.
    dirty: bool,
}

impl Conn {
    pub fn new(server: &str) -> Conn {
        Conn {
            server: server.to_owned(),
            tls: None,
            stream: None,
            buf: Vec::new(),
            dirty: false,
        }
    }

    /// Speaks HTTPS with this configuration (`None`: plain HTTP).
    pub fn with_tls(mut self, tls: Option<Arc<rustls::ClientConfig>>) -> Conn {
        self.tls = tls;
        self
    }

    /// Drops the connection (the next request opens a new one).
    pub fn close(&mut self) {
        self.stream = None;
        self.buf.clear();
        self.dirty = false;
    }

    /// Sends `req` and reads its response, all within `limit`. A reused
    /// connection that turns out closed is replaced once. Cancel safe:
    /// an abandoned request leaves the connection to be replaced.
    pub async fn request(
        &mut self,
        what: &'static str,
        req: &Request<'_>,
        limit: Duration,
    ) -> Result<Response, ClientError> {
        let bytes = encode_request(&self.server, req);
        self.send_bytes(what, &bytes, limit, || {}).await
    }

    /// Sends an encoded request (`bytes`) and reads its response, all
    /// within `limit`, as [`Conn::request`]; `sent` is called once, when
    /// the request has been written (the replay marks its send then).
    pub async fn send_bytes(
        &mut self,
        what: &'static str,
        bytes: &[u8],
        limit: Duration,
        sent: impl FnOnce(),
    ) -> Result<Response, ClientError> {
        let mut sent = Some(sent);
        let run = async {
            loop {
                if self.dirty {
                    self.close();
                }
                let reused = self.stream.is_some();
                match self.exchange(what, bytes, &mut sent).await {
                    Ok(r) => return Ok(r),
                    Err(Failure::Stale) if reused => self.close(),
                    Err(Failure::Stale) => {
                        return Err(ClientError::Io {
                            what,
                            source: io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "the server closed the connection without answering",
                            ),
                        })
                    }
                    Err(Failure::Error(e)) => return Err(e),
                }
            }
        };
        timeout(limit, run)
            .await
            .map_err(|_| ClientError::Timeout {
                what,
                secs: limit.as_secs_f64(),
            })?
    }

    async fn exchange(
        &mut self,
        what: &'static str,
        bytes: &[u8],
        sent: &mut Option<impl FnOnce()>,
    ) -> Result<Response, Failure> {
        let fail = |source| Failure::Error(ClientError::Io { what, source });
        if self.stream.is_none() {
            let s = TcpStream::connect(&self.server).await.map_err(|source| {
                Failure::Error(ClientError::Connect {
                    server: self.server.clone(),
                    source,
                })
            })?;
            let _ = s.set_nodelay(true);
            self.stream = Some(match &self.tls {
                None => Box::new(s),
                Some(tls) => {
                    let host = self.server.rsplit_once(':').map_or(&*self.server, |h| h.0);
                    let host = host.trim_start_matches('[').trim_end_matches(']');
                    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                        .map_err(|e| fail(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
                    let c = tokio_rustls::TlsConnector::from(Arc::clone(tls));
                    Box::new(c.connect(name, s).await.map_err(fail)?)
                }
            });
            self.buf.clear();
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(Failure::Stale);
        };
        self.dirty = true;
        stream.write_all(bytes).await.map_err(fail)?;
        if let Some(f) = sent.take() {
            f();
        }
        let mut got_any = !self.buf.is_empty();
        let mut eof = false;
        loop {
            match parse_response(&self.buf, eof) {
                Ok(Some((resp, used))) => {
                    self.buf.drain(..used);
                    self.dirty = false;
                    if !resp.keep_alive() {
                        self.close();
                    }
                    return Ok(resp);
                }
                Ok(None) if eof => {
                    return Err(fail(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection in the middle of its answer",
                    )))
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(Failure::Error(ClientError::Malformed {
                        what,
                        detail: e.to_string(),
                    }))
                }
            }
            let mut chunk = [0u8; 8192];
            let n = stream.read(&mut chunk).await.map_err(fail)?;
            if n == 0 {
                if !got_any {
                    return Err(Failure::Stale);
                }
                eof = true;
                continue;
            }
            got_any = true;
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_with_cookie_and_length() {
        let req = Request {
            method: "POST",
            target: "/cgi-bin/mmwebwx-bin/webwxinit?r=1&pass_ticket=a%2Bb",
            cookie: Some("wxsid=S; wxuin=7"),
            body: Some(b"{}"),
        };
        let bytes = encode_request("127.0.0.1:8080", &req);
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "POST /cgi-bin/mmwebwx-bin/webwxinit?r=1&pass_ticket=a%2Bb HTTP/1.1\r\n\
             Host: 127.0.0.1:8080\r\nUser-Agent: syncscope\r\n\
             Cookie: wxsid=S; wxuin=7\r\n\
             Content-Type: application/json;charset=UTF-8\r\nContent-Length: 2\r\n\r\n{}"
        );
        let get = encode_request(
            "h",
            &Request {
                method: "GET",
                target: "/jslogin",
                cookie: Some(""),
                body: None,
            },
        );
        assert!(!String::from_utf8(get).unwrap().contains("Cookie"));
    }

    #[test]
    fn every_prefix_is_incomplete_then_the_whole_parses() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nSet-Cookie: wxsid=S1; Path=/\r\n\
                     set-cookie: webwx_data_ticket=T; Domain=x\r\n\r\nhelloHTTP/1.1";
        let whole = wire.len() - b"HTTP/1.1".len();
        for n in 0..whole {
            assert_eq!(parse_response(&wire[..n], false), Ok(None), "prefix {n}");
        }
        let (r, used) = parse_response(wire, false).unwrap().unwrap();
        assert_eq!(used, whole);
        assert_eq!((r.status, r.reason.as_str()), (200, "OK"));
        assert_eq!(r.body, b"hello");
        assert!(r.keep_alive());
        assert_eq!(
            r.set_cookies().collect::<Vec<_>>(),
            [("wxsid", "S1"), ("webwx_data_ticket", "T")]
        );
    }

    #[test]
    fn what_is_refused() {
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false),
            Err(ParseError::TransferEncoding(te)) if te == "gzip"
        ));
        // Chunked answers (a gateway behind nginx) are read de-chunked.
        let (r, _) = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.body, b"{}");
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false),
            Err(ParseError::BadContentLength(_))
        ));
        assert!(matches!(
            parse_response(b"\x00\x00\x00\x10", false),
            Err(ParseError::Head(_))
        ));
        assert!(matches!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
                false
            ),
            Err(ParseError::BodyTooLong { .. })
        ));
        let (r, _) = parse_response(
            b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert!(r.body.is_empty() && !r.keep_alive());
    }

    #[tokio::test]
    async fn a_keep_alive_connection_reads_chunked_answers_one_after_another() {
        // A gateway behind a proxy answers chunked, in pieces, and keeps
        // the connection: two requests get their two bodies, whole.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            for body in ["{\"a\":1}", "{\"b\":22}"] {
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap();
                    got.extend_from_slice(&buf[..n]);
                }
                let (a, b) = body.split_at(3);
                let wire = format!(
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n",
                    a.len()
                );
                s.write_all(wire.as_bytes()).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
                let rest = format!("{:x}\r\n{b}\r\n0\r\n\r\n", b.len());
                s.write_all(rest.as_bytes()).await.unwrap();
            }
        });
        let mut conn = Conn::new(&addr);
        let req = Request {
            method: "GET",
            target: "/x",
            cookie: None,
            body: None,
        };
        for want in [&b"{\"a\":1}"[..], b"{\"b\":22}"] {
            let r = conn
                .request("x", &req, Duration::from_secs(5))
                .await
                .unwrap();
            assert_eq!(r.body, want);
        }
        server.await.unwrap();
    }
}
