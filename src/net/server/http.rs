//! HTTP on the long link's port, for the short link ([`super::shortlink`])
//! and web WeChat ([`super::web`]): one request reader (an async adapter
//! over the shared codec, [`crate::proto::http::message`]), the requests
//! and replies both use, what they may know of the connection
//! ([`Origin`]; never the socket), the response encoder and the serving
//! loop ([`serve`]) that routes each request to one of them.
//!
//! Keep-alive and pipelining work; `Expect: 100-continue` is honoured.
//! Bad requests (malformed HTTP, a Transfer-Encoding, a body over the
//! frame cap, a head over 16 KiB or with more than 32 fields, a body that
//! does not decode, ...) get an HTTP error with a one-line text body, the
//! connection is closed and one event is logged, as on the long link.

use std::net::SocketAddr;

use tokio::sync::broadcast;
use tokio::time::{sleep_until, Instant};

use super::conn::Close;
use super::service::{Service, Wake};
use super::{shortlink, web};
use crate::net::frame::Connection;
use crate::net::messages::ret;
use crate::proto::http::message::{
    encode_response, parse, parse_head, HttpMessage, Kind, Limits, Parse, ParseError,
};

/// Cap on a request's head (request line and headers).
pub const MAX_HEAD_LEN: usize = 16 << 10;
/// Cap on a request's header fields.
pub const MAX_HEADERS: usize = 32;

/// A whole request, owned.
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: String,
    /// The Host header ("" when absent).
    pub(crate) host: String,
    /// The Cookie header ("" when absent).
    pub(crate) cookie: String,
    /// The Content-Type header ("" when absent).
    pub(crate) content_type: String,
    pub(crate) keep_alive: bool,
    pub(crate) body: Vec<u8>,
}

/// A request target in absolute form (`http://HOST/PATH?QUERY`, as a
/// client sends it to a proxy), split into its authority and the rest
/// (`/PATH?QUERY`, `/` when empty); `None` for the origin form.
fn absolute_form(target: &str) -> Option<(&str, &str)> {
    let rest = ["http://", "https://"].iter().find_map(|scheme| {
        let head = target.get(..scheme.len())?;
        head.eq_ignore_ascii_case(scheme)
            .then(|| &target[scheme.len()..])
    })?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    Some((authority, if tail.is_empty() { "/" } else { tail }))
}

impl Request {
    fn new(m: &HttpMessage<'_>) -> Request {
        let raw = |name: &str| {
            m.header(name)
                .map(|v| String::from_utf8_lossy(v).trim().to_owned())
                .unwrap_or_default()
        };
        let target = m.path.unwrap_or_default();
        // The absolute form (RFC 9112 section 3.2.2: a server must accept
        // it): its authority is the request's host, the Host header aside.
        let (host, target) = match absolute_form(target) {
            Some((authority, rest)) => (authority.to_owned(), rest),
            None => (raw("host"), target),
        };
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        Request {
            method: m.method.unwrap_or_default().to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            host,
            cookie: raw("cookie"),
            content_type: raw("content-type"),
            keep_alive: m.keep_alive(),
            body: m.body.to_vec(),
        }
    }
}

#[cfg(test)]
impl Request {
    /// A request as the reader would give it (Host `h`, no cookie,
    /// keep-alive), for the routes' unit tests.
    pub(super) fn test(method: &str, target: &str, body: &[u8]) -> Request {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        Request {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            host: "h".to_owned(),
            cookie: String::new(),
            content_type: String::new(),
            keep_alive: true,
            body: body.to_vec(),
        }
    }
}

/// What a route may need of the connection a request came on, without
/// the socket.
pub(super) struct Origin<'a> {
    pub(super) peer: SocketAddr,
    /// The server's address on the connection (a login redirect's host
    /// when the request has no Host header).
    pub(super) local: Option<SocketAddr>,
    /// The server's shutdown signal: a held poll is answered at once when
    /// it fires.
    pub(super) shutdown: &'a mut broadcast::Receiver<()>,
}

/// What a route answers.
#[derive(Debug)]
pub(super) struct Reply {
    /// 200, or 301 for the web ticket page (as the real service answers it).
    pub(super) status: u16,
    pub(super) content_type: &'static str,
    pub(super) body: Vec<u8>,
    /// `Set-Cookie` header values.
    pub(super) cookies: Vec<String>,
    /// Pushes to send once the answer is written.
    pub(super) wake: Option<Wake>,
}

impl Reply {
    pub(super) fn protobuf(body: Vec<u8>, wake: Option<Wake>) -> Reply {
        Reply {
            status: 200,
            content_type: "application/octet-stream",
            body,
            cookies: Vec::new(),
            wake,
        }
    }
}

/// An HTTP/1.1 response with a body.
pub fn response(status: u16, content_type: &str, body: &[u8], keep_alive: bool) -> Vec<u8> {
    response_with(status, content_type, body, keep_alive, &[])
}

/// An HTTP/1.1 response with a body and `Set-Cookie` headers.
fn response_with(
    status: u16,
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
    cookies: &[String],
) -> Vec<u8> {
    let len = body.len().to_string();
    let mut headers = vec![
        ("Content-Type", content_type),
        ("Content-Length", len.as_str()),
        (
            "Connection",
            if keep_alive { "keep-alive" } else { "close" },
        ),
    ];
    headers.extend(cookies.iter().map(|c| ("Set-Cookie", c.as_str())));
    encode_response(status, &headers, body)
}

pub(super) fn http(status: u16, ret: i32, error: impl Into<String>) -> Close {
    Close::Http {
        status,
        ret,
        error: error.into(),
    }
}

/// The HTTP error a request the codec refused gets.
fn refused(e: ParseError) -> Close {
    match e {
        ParseError::HeadTooLong { .. } => http(
            431,
            ret::OVERSIZE,
            format!("request head over {MAX_HEAD_LEN} bytes"),
        ),
        ParseError::TooManyHeaders(n) => {
            http(431, ret::OVERSIZE, format!("more than {n} request headers"))
        }
        ParseError::Head(e) => http(
            400,
            ret::BAD_FRAME,
            format!("not an HTTP request or a long-link frame: {e}"),
        ),
        ParseError::TransferEncoding(_) => http(
            411,
            ret::BAD_FRAME,
            "chunked bodies are not supported: send Content-Length",
        ),
        ParseError::BadContentLength(v) => http(
            400,
            ret::BAD_FRAME,
            format!(
                "Content-Length {v:?} is not one number (a second, different Content-Length is \
                 refused: it could smuggle a request)"
            ),
        ),
        ParseError::BodyTooLong { len, cap } => http(
            413,
            ret::OVERSIZE,
            format!("body of {len} bytes is over the {cap}-byte cap"),
        ),
    }
}

/// Reads one request: bytes into the connection's buffer until the codec
/// says complete (a `100 Continue` is sent once the head asks for it).
/// `Ok(None)`: the peer closed between requests.
async fn read_request<S>(
    conn: &mut Connection<S>,
    max_body: usize,
) -> Result<Option<Request>, Close>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let limits = Limits {
        max_head: MAX_HEAD_LEN,
        max_headers: MAX_HEADERS,
        max_body,
        lenient: false,
    };
    let mut continued = false;
    loop {
        if conn.buffered() > 0 {
            match parse(conn.buffer(), Kind::Request, &limits, false) {
                Parse::Complete(m, used) => {
                    let req = Request::new(&m);
                    conn.consume(used);
                    return Ok(Some(req));
                }
                Parse::Invalid(e) => return Err(refused(e)),
                Parse::Incomplete => {}
            }
            if !continued {
                if let Parse::Complete(h, _) = parse_head(conn.buffer(), Kind::Request, &limits) {
                    continued = true;
                    if h.expects_continue()
                        && conn
                            .write_raw(&encode_response(100, &[], b""))
                            .await
                            .is_err()
                    {
                        return Err(Close::Io);
                    }
                }
            }
        }
        match conn.fill().await {
            Ok(0) if conn.buffered() == 0 => return Ok(None),
            Ok(0) => return Err(Close::Truncated(conn.buffered())),
            Ok(_) => {}
            Err(_) => return Err(Close::Io),
        }
    }
}

/// [`read_request`] for other servers of the crate (the replay mock):
/// the request, `Ok(None)` when the peer closed between requests, or the
/// HTTP error (status and text) the server would answer with (`None`: the
/// connection failed, nothing to answer).
pub(crate) async fn next_request<S>(
    conn: &mut Connection<S>,
    max_body: usize,
) -> Result<Option<Request>, Option<(u16, String)>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    read_request(conn, max_body).await.map_err(|c| match c {
        Close::Http { status, error, .. } => Some((status, error)),
        Close::Truncated(have) => Some((400, format!("request cut {have} bytes in"))),
        Close::Bad { .. } | Close::Io => None,
    })
}

/// Serves HTTP requests on `conn` until the peer closes, asks to close,
/// or sends something bad, or the server shuts down: each goes to the
/// short link's or the web's route, and its reply is written. Each
/// request must arrive whole within the frame timeout of the server
/// starting to wait for it.
pub(super) async fn serve<S>(
    conn: &mut Connection<S>,
    service: &Service,
    origin: &mut Origin<'_>,
) -> Result<(), Close>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let limit = service.config.frame_timeout;
    let max_body = service.config.max_frame_len as usize;
    loop {
        let deadline = Instant::now() + limit;
        let req = tokio::select! {
            biased;
            _ = origin.shutdown.recv() => return Ok(()),
            r = read_request(conn, max_body) => r?,
            _ = sleep_until(deadline) => {
                return Err(http(
                    408,
                    ret::TIMEOUT,
                    format!("request not complete within {} s", limit.as_secs()),
                ));
            }
        };
        let Some(req) = req else {
            return Ok(());
        };
        let reply = if web::is_web_path(&req.path) {
            web::route(service, &req, origin).await?
        } else {
            shortlink::route(service, &req, origin.peer).await?
        };
        let resp = response_with(
            reply.status,
            reply.content_type,
            &reply.body,
            req.keep_alive,
            &reply.cookies,
        );
        let written =
            tokio::time::timeout(service.config.write_timeout, conn.write_raw(&resp)).await;
        if !matches!(written, Ok(Ok(()))) {
            return Err(Close::Io);
        }
        if let Some(w) = reply.wake {
            service.wake(w);
        }
        if !req.keep_alive {
            let _ = conn.shutdown().await;
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_form_targets() {
        assert_eq!(
            absolute_form("https://login.wx.qq.com/jslogin?appid=x"),
            Some(("login.wx.qq.com", "/jslogin?appid=x"))
        );
        assert_eq!(
            absolute_form("HTTP://127.0.0.1:8080"),
            Some(("127.0.0.1:8080", "/"))
        );
        assert_eq!(absolute_form("http://h?q=1"), Some(("h", "?q=1")));
        assert_eq!(absolute_form("/cgi-bin/mmwebwx-bin/login?uuid=u"), None);
        assert_eq!(absolute_form("*"), None);
    }

    #[test]
    fn responses() {
        let r = response(200, "application/octet-stream", b"\x08\x00", true);
        let text = String::from_utf8_lossy(&r);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("Content-Length: 2\r\n"), "{text}");
        assert!(text.contains("Connection: keep-alive\r\n\r\n"), "{text}");
        let r = response_with(200, "text/plain", b"", false, &["a=b; Path=/".to_owned()]);
        assert_eq!(
            r,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\
              Connection: close\r\nSet-Cookie: a=b; Path=/\r\n\r\n"
                .to_vec()
        );
    }
}
