//! The short link on the long link's port: plain HTTP/1.1
//! `POST /cgi-bin/micromsg-bin/newsync`, `.../newsendmsg`, `.../manualauth`
//! and `.../autoauth` with the same protobuf bodies as cmds 121, 237, 253
//! and 254, answered `200` with
//! `application/octet-stream` bodies. Requests are independent, so each
//! names its user and device in the query string:
//! `?user=NAME` (or `?uin=N`) and `&device=ID` (default `shortlink`).
//! Keep-alive and pipelining work; `Expect: 100-continue` is honoured.
//!
//! Bad requests (malformed HTTP, no Content-Length, a body over the frame
//! cap, a head over 16 KiB, a body that does not decode, no user) get an
//! HTTP error with a one-line text body, the connection is closed and
//! one event is logged, as on the long link.

use tokio::time::{sleep_until, Instant};

use super::{Close, Handler, IdentifyExt};
use crate::net::frame::Connection;
use crate::net::messages::ret;

/// Cap on a request's head (request line and headers).
pub const MAX_HEAD_LEN: usize = 16 << 10;
/// Path prefix of the cgi endpoints.
pub const CGI_PREFIX: &str = "/cgi-bin/micromsg-bin/";
/// Device id of short-link requests that name none.
pub const DEFAULT_DEVICE: &str = "shortlink";

/// A whole request, owned.
pub(super) struct Request {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) query: String,
    /// The Host header ("" when absent).
    pub(super) host: String,
    /// The Cookie header ("" when absent).
    pub(super) cookie: String,
    pub(super) keep_alive: bool,
    pub(super) body: Vec<u8>,
}

/// What a route answers (status 200).
pub(super) struct Reply {
    pub(super) content_type: &'static str,
    pub(super) body: Vec<u8>,
    /// `Set-Cookie` header values.
    pub(super) cookies: Vec<String>,
    /// Pushes to send once the answer is written.
    pub(super) wake: Option<super::Wake>,
}

impl Reply {
    fn protobuf(body: Vec<u8>, wake: Option<super::Wake>) -> Reply {
        Reply {
            content_type: "application/octet-stream",
            body,
            cookies: Vec::new(),
            wake,
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
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
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: {}\r\n",
        reason(status),
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    for c in cookies {
        head.push_str("Set-Cookie: ");
        head.push_str(c);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

pub(super) fn http(status: u16, ret: i32, error: impl Into<String>) -> Close {
    Close::Http {
        status,
        ret,
        error: error.into(),
    }
}

/// Reads one request. `Ok(None)`: the peer closed between requests.
async fn read_request<S>(
    conn: &mut Connection<S>,
    max_body: usize,
) -> Result<Option<Request>, Close>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    // The head.
    let (head_len, (mut req, len, expect)) = loop {
        if !conn.buffer().is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut r = httparse::Request::new(&mut headers);
            match r.parse(conn.buffer()) {
                Ok(httparse::Status::Complete(n)) => break (n, head(&r)?),
                Ok(httparse::Status::Partial) if conn.buffered() > MAX_HEAD_LEN => {
                    return Err(http(
                        431,
                        ret::OVERSIZE,
                        format!("request head over {MAX_HEAD_LEN} bytes"),
                    ))
                }
                Ok(httparse::Status::Partial) => {}
                Err(httparse::Error::TooManyHeaders) => {
                    return Err(http(431, ret::OVERSIZE, "more than 32 request headers"))
                }
                Err(e) => {
                    return Err(http(
                        400,
                        ret::BAD_FRAME,
                        format!("not an HTTP request or a long-link frame: {e}"),
                    ))
                }
            }
        }
        match conn.fill().await {
            Ok(0) if conn.buffered() == 0 => return Ok(None),
            Ok(0) => return Err(Close::Truncated(conn.buffered())),
            Ok(_) => {}
            Err(_) => return Err(Close::Io),
        }
    };
    if len > max_body {
        return Err(http(
            413,
            ret::OVERSIZE,
            format!("body of {len} bytes is over the {max_body}-byte cap"),
        ));
    }
    if expect && conn.buffered() < head_len + len {
        let cont = b"HTTP/1.1 100 Continue\r\n\r\n";
        if conn.write_raw(cont).await.is_err() {
            return Err(Close::Io);
        }
    }
    while conn.buffered() < head_len + len {
        match conn.fill().await {
            Ok(0) => return Err(Close::Truncated(conn.buffered())),
            Ok(_) => {}
            Err(_) => return Err(Close::Io),
        }
    }
    req.body = conn.buffer()[head_len..head_len + len].to_vec();
    conn.consume(head_len + len);
    Ok(Some(req))
}

/// The owned parts of a parsed head, its Content-Length and whether it
/// expects 100-continue.
fn head(r: &httparse::Request<'_, '_>) -> Result<(Request, usize, bool), Close> {
    let method = r.method.unwrap_or_default().to_owned();
    let target = r.path.unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let raw = |name: &str| {
        r.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_owned())
    };
    let header = |name: &str| raw(name).map(|v| v.to_ascii_lowercase());
    if header("transfer-encoding").is_some() {
        return Err(http(
            411,
            ret::BAD_FRAME,
            "chunked bodies are not supported: send Content-Length",
        ));
    }
    let len = match header("content-length") {
        None => 0,
        Some(v) => v.parse::<usize>().map_err(|_| {
            http(
                400,
                ret::BAD_FRAME,
                format!("Content-Length {v:?} is not a number"),
            )
        })?,
    };
    let connection = header("connection").unwrap_or_default();
    let keep_alive = match r.version {
        Some(0) => connection.contains("keep-alive"),
        _ => !connection.contains("close"),
    };
    let expect = header("expect").is_some_and(|v| v == "100-continue");
    Ok((
        Request {
            method,
            path: path.to_owned(),
            query: query.to_owned(),
            host: raw("host").unwrap_or_default(),
            cookie: raw("cookie").unwrap_or_default(),
            keep_alive,
            body: Vec::new(),
        },
        len,
        expect,
    ))
}

/// A query parameter, not percent-decoded (short-link names and ids have
/// no spaces).
pub(super) fn param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl Handler {
    /// Serves HTTP requests until the peer closes, asks to close, or sends
    /// something bad. Each request must arrive whole within the frame
    /// timeout of the server starting to wait for it.
    pub(super) async fn serve_http(&mut self) -> Result<(), Close> {
        let limit = self.shared.config.frame_timeout;
        let max_body = self.shared.config.max_frame_len as usize;
        loop {
            let deadline = Instant::now() + limit;
            let req = tokio::select! {
                biased;
                _ = self.shutdown.recv() => return Ok(()),
                r = read_request(&mut self.conn, max_body) => r?,
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
            let reply = self.route(&req).await?;
            let resp = response_with(
                200,
                reply.content_type,
                &reply.body,
                req.keep_alive,
                &reply.cookies,
            );
            let written =
                tokio::time::timeout(self.shared.config.write_timeout, self.conn.write_raw(&resp))
                    .await;
            if !matches!(written, Ok(Ok(()))) {
                return Err(Close::Io);
            }
            if let Some(w) = reply.wake {
                self.shared.wake(w);
            }
            if !req.keep_alive {
                let _ = self.conn.shutdown().await;
                return Ok(());
            }
        }
    }

    async fn route(&mut self, req: &Request) -> Result<Reply, Close> {
        if super::web::is_web_path(&req.path) {
            return self.route_web(req).await;
        }
        let Some(cgi) = req.path.strip_prefix(CGI_PREFIX) else {
            return Err(http(
                404,
                ret::UNKNOWN_CMD,
                format!(
                    "no such path {:?} (served: {CGI_PREFIX}newsync, newsendmsg; web: {})",
                    req.path,
                    super::web::SERVED,
                ),
            ));
        };
        if !matches!(cgi, "newsync" | "newsendmsg" | "manualauth" | "autoauth") {
            return Err(http(
                404,
                ret::UNKNOWN_CMD,
                format!("unknown cgi {cgi:?} (served: newsync, newsendmsg, manualauth, autoauth)"),
            ));
        }
        if req.method != "POST" {
            return Err(http(
                405,
                ret::UNKNOWN_CMD,
                format!("{} {}: use POST", req.method, req.path),
            ));
        }
        // The auth requests name their user in the body.
        if matches!(cgi, "manualauth" | "autoauth") {
            let body = self
                .auth(cgi == "autoauth", &req.body)
                .await
                .map_err(|f| http(400, f.ret, f.error))?;
            return Ok(Reply::protobuf(body, None));
        }
        let user = param(&req.query, "user").map(str::to_owned);
        let uin = match param(&req.query, "uin") {
            Some(u) => u.parse::<u32>().map_err(|_| {
                http(
                    400,
                    ret::NOT_IDENTIFIED,
                    format!("uin {u:?} is not a number"),
                )
            })?,
            None => 0,
        };
        if user.is_none() && uin == 0 {
            return Err(http(
                400,
                ret::NOT_IDENTIFIED,
                "name the user in the query string: ?user=NAME (or ?uin=N), optionally &device=ID",
            ));
        }
        if user.as_deref().is_some_and(|u| !IdentifyExt::valid_user(u)) {
            return Err(http(400, ret::NOT_IDENTIFIED, "invalid user name"));
        }
        let device = param(&req.query, "device").unwrap_or(DEFAULT_DEVICE);
        if !IdentifyExt::valid_device(device) {
            return Err(http(400, ret::NOT_IDENTIFIED, "invalid device id"));
        }
        let status = |ret: i32| match ret {
            ret::UNKNOWN_USER => 403,
            ret::STORE => 500,
            _ => 400,
        };
        let fail = |f: super::Failure| http(status(f.ret), f.ret, f.error);
        let (user, _, _) = self
            .shared
            .identify(user, uin, device)
            .await
            .map_err(fail)?;
        if cgi == "newsync" {
            let body = self
                .shared
                .newsync(user, device, &req.body)
                .await
                .map_err(fail)?;
            Ok(Reply::protobuf(body, None))
        } else {
            let (body, wake) = self
                .shared
                .newsendmsg(user, device, &req.body)
                .await
                .map_err(fail)?;
            Ok(Reply::protobuf(body, Some(wake)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters() {
        assert_eq!(param("user=alice&device=web", "user"), Some("alice"));
        assert_eq!(param("user=alice&device=web", "device"), Some("web"));
        assert_eq!(param("user=alice", "uin"), None);
        assert_eq!(param("", "user"), None);
    }

    #[test]
    fn responses() {
        let r = response(200, "application/octet-stream", b"\x08\x00", true);
        let text = String::from_utf8_lossy(&r);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("Content-Length: 2\r\n"), "{text}");
        assert!(text.contains("Connection: keep-alive\r\n\r\n"), "{text}");
    }
}
