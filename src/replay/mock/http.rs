//! The mock's HTTP (web, the plain short link): requests read by the
//! server's reader, matched in the index on (method and endpoint or path,
//! the decoded body minus volatile fields), answered with the recorded
//! response made to fit the live connection.

use serde_json::json;
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::{http_key, Applied, Found, HttpAnswer, Peer, Shared, Stats, Unmatched, ANY};
use crate::analyze::http_request_value;
use crate::net::frame::Connection;
use crate::net::server::{next_request, HttpRequest};
use crate::proto::http::message::encode_response;
use crate::proto::web::Endpoint;

/// The synccheck answer "nothing new" (the server's, once held).
const NOTHING_NEW: &[u8] = b"window.synccheck={retcode:\"0\",selector:\"0\"}";

/// Headers the mock sets itself.
const OWN_HEADERS: &[&str] = &["content-length", "connection", "transfer-encoding"];

/// The recorded response as this connection gets it: Content-Length of
/// the body sent, Connection as the request asked, Content-Encoding left
/// out when the body was recorded decoded, and the recorded server's
/// address in the body replaced by the live Host (a login's redirect_uri
/// must lead back here).
pub fn response(a: &HttpAnswer, host: &str, keep_alive: bool) -> Vec<u8> {
    let mut body = a.body.clone();
    if !host.is_empty() && host != a.server {
        if let Ok(text) = std::str::from_utf8(&body) {
            let from = format!("//{}", a.server);
            if text.contains(&from) {
                body = text.replace(&from, &format!("//{host}")).into_bytes();
            }
        }
    }
    let len = body.len().to_string();
    let mut headers: Vec<(&str, &[u8])> = Vec::new();
    for (k, v) in &a.headers {
        let lower = k.to_ascii_lowercase();
        if OWN_HEADERS.contains(&lower.as_str()) || (a.decoded && lower == "content-encoding") {
            continue;
        }
        headers.push((k, v));
    }
    let connection: &[u8] = if keep_alive { b"keep-alive" } else { b"close" };
    headers.push(("Content-Length", len.as_bytes()));
    headers.push(("Connection", connection));
    let mut out = format!("HTTP/1.1 {} {}\r\n", a.status, a.reason).into_bytes();
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    out
}

/// A plain response (404 naming an unmatched request, a held synccheck's
/// answer, a refused request).
fn plain(status: u16, content_type: &str, body: &[u8], keep_alive: bool) -> Vec<u8> {
    let len = body.len().to_string();
    let connection = if keep_alive { "keep-alive" } else { "close" };
    encode_response(
        status,
        &[
            ("Content-Type", content_type),
            ("Content-Length", &len),
            ("Connection", connection),
        ],
        body,
    )
}

/// Serves requests until the peer closes or asks to, bad input, or
/// shutdown.
pub(crate) async fn serve(shared: &Shared, conn: &mut Connection<TcpStream>, peer: &mut Peer) {
    let config = &shared.config;
    let max_body = config.max_frame_len as usize;
    loop {
        let read = timeout(config.idle_timeout, next_request(conn, max_body));
        let req = tokio::select! {
            biased;
            _ = peer.shutdown.recv() => return,
            r = read => match r {
                Err(_) | Ok(Ok(None)) | Ok(Err(None)) => return,
                Ok(Ok(Some(req))) => req,
                Ok(Err(Some((status, error)))) => {
                    let body = format!("syncscope serve --replay: {error}\n");
                    let _ = conn.write_raw(&plain(status, "text/plain", body.as_bytes(), false)).await;
                    let _ = conn.shutdown().await;
                    shared.log(super::Event::BadInput { conn: peer.id, peer: peer.addr, error });
                    return;
                }
            },
        };
        let Some(resp) = answer(shared, peer, &req).await else {
            return;
        };
        if conn.write_raw(&resp).await.is_err() {
            return;
        }
        if !req.keep_alive {
            let _ = conn.shutdown().await;
            return;
        }
    }
}

/// The bytes answering `req` (None: shutdown came during a hold).
async fn answer(shared: &Shared, peer: &mut Peer, req: &HttpRequest) -> Option<Vec<u8>> {
    let target = if req.query.is_empty() {
        req.path.clone()
    } else {
        format!("{}?{}", req.path, req.query)
    };
    let value = http_request_value(&target, &req.body);
    let key = http_key(&req.method, &req.path);
    let policy = shared.config.unmatched;
    let found = shared
        .mock
        .http()
        .answer(&[ANY.to_owned()], &key, &value, policy);
    let keep_alive = req.keep_alive;
    match found {
        Found::Exact { answer, exhausted } => {
            if exhausted && Endpoint::from_path(&req.path) == Some(Endpoint::Synccheck) {
                // Nothing recorded left to tell: held as the server holds
                // it, then "nothing new" (at once on shutdown).
                Stats::add(&shared.stats.held);
                tokio::select! {
                    _ = tokio::time::sleep(shared.config.web_poll) => {}
                    _ = peer.shutdown.recv() => {}
                }
                return Some(plain(200, "text/javascript", NOTHING_NEW, keep_alive));
            }
            Stats::add(&shared.stats.answered);
            Some(response(&answer, &req.host, keep_alive))
        }
        Found::Nearest {
            answer, differing, ..
        } => {
            shared.unmatched(peer.id, peer.addr, key, Applied::Nearest { differing });
            Some(response(&answer, &req.host, keep_alive))
        }
        Found::None { name_known } => {
            let applied = if policy == Unmatched::Nearest {
                Applied::NothingNear
            } else {
                Applied::Error
            };
            shared.unmatched(peer.id, peer.addr, key.clone(), applied);
            // Keys in this order (serde_json sorts them): what and why
            // first, the request's decoded body last.
            let body = json!({
                "error": format!(
                    "serve --replay: the recording has no answer to {} {}{}",
                    req.method,
                    req.path,
                    if name_known { " with these fields" } else { "" }
                ),
                "request": key,
                "unmatched": policy.as_str(),
                "value": value,
            });
            Some(plain(
                404,
                "application/json",
                body.to_string().as_bytes(),
                keep_alive,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: &[u8]) -> HttpAnswer {
        HttpAnswer {
            status: 200,
            reason: "OK".into(),
            headers: vec![
                ("Content-Type".into(), b"text/javascript".to_vec()),
                ("Content-Length".into(), b"999".to_vec()),
                ("Connection".into(), b"close".to_vec()),
                ("Set-Cookie".into(), b"wxsid=abc; Path=/".to_vec()),
            ],
            body: body.to_vec(),
            decoded: false,
            server: "127.0.0.1:8080".into(),
        }
    }

    #[test]
    fn the_recorded_response_fits_the_live_connection() {
        let a = answer(b"window.redirect_uri=\"http://127.0.0.1:8080/cgi-bin/x?t=1\";");
        let r = String::from_utf8(response(&a, "127.0.0.1:4321", true)).unwrap();
        let body = "window.redirect_uri=\"http://127.0.0.1:4321/cgi-bin/x?t=1\";";
        assert_eq!(
            r,
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/javascript\r\nSet-Cookie: wxsid=abc; \
                 Path=/\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{body}",
                body.len()
            )
        );
        // The same host: the body as recorded.
        let r = response(&a, "127.0.0.1:8080", false);
        assert!(r.ends_with(b"http://127.0.0.1:8080/cgi-bin/x?t=1\";"));
        assert!(String::from_utf8_lossy(&r).contains("Connection: close\r\n"));
    }
}
