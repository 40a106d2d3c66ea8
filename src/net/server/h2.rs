//! HTTP/2 over TLS (`serve --tls-cert`, when the client's ALPN picked
//! `h2`): the hyperium `h2` server drives the connection, each stream is a
//! task that reads its request, makes it the [`Request`] the HTTP/1.1 path
//! makes, and routes it to the same handlers (web or short link); the
//! reply goes back as HEADERS and DATA. Streams are served concurrently (a
//! held synccheck does not block the others); a bad request gets its HTTP
//! error on its own stream, the connection carries on.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::broadcast;
use tokio::task::JoinSet;

use super::conn::Close;
use super::http::{Origin, Reply, Request};
use super::service::Service;
use super::{shortlink, web, Event};

/// Streams one connection may have open at once.
const MAX_STREAMS: u32 = 64;

/// Serves HTTP/2 on `io` (TLS already set up) until the peer closes or the
/// server shuts down (then a graceful GOAWAY).
pub(super) async fn serve<S>(
    io: S,
    service: Arc<Service>,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    mut shutdown: broadcast::Receiver<()>,
) -> Result<(), Close>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let limit = service.config.frame_timeout;
    let handshake = h2::server::Builder::new()
        .max_concurrent_streams(MAX_STREAMS)
        .handshake::<_, Bytes>(io);
    let mut conn = match tokio::time::timeout(limit, handshake).await {
        Ok(Ok(c)) => c,
        _ => return Err(Close::Io),
    };
    let mut tasks = JoinSet::new();
    let mut stopping = false;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.recv(), if !stopping => {
                stopping = true;
                conn.graceful_shutdown();
            }
            next = conn.accept() => match next {
                Some(Ok((req, respond))) => {
                    let stream = Stream {
                        service: service.clone(),
                        peer,
                        local,
                        shutdown: shutdown.resubscribe(),
                    };
                    tasks.spawn(stream.run(req, respond));
                }
                Some(Err(_)) | None => break,
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    tasks.shutdown().await;
    Ok(())
}

/// What one stream's task needs.
struct Stream {
    service: Arc<Service>,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    shutdown: broadcast::Receiver<()>,
}

impl Stream {
    async fn run(mut self, req: http::Request<RecvStream>, mut respond: SendResponse<Bytes>) {
        let reply = match self.request(req).await {
            Ok(r) => self.route(&r).await,
            Err(c) => Err(c),
        };
        let reply = match reply {
            Ok(r) => r,
            Err(Close::Http { status, ret, error }) => {
                let body = format!("syncscope: {error} (ret {ret})\n");
                self.service.log(Event::BadInput {
                    peer: self.peer,
                    ret,
                    error,
                });
                Reply {
                    status,
                    content_type: "text/plain",
                    body: body.into_bytes(),
                    cookies: Vec::new(),
                    wake: None,
                }
            }
            Err(_) => {
                respond.send_reset(h2::Reason::INTERNAL_ERROR);
                return;
            }
        };
        let mut head = http::Response::builder()
            .status(reply.status)
            .header("content-type", reply.content_type)
            .header("content-length", reply.body.len());
        for c in &reply.cookies {
            head = head.header("set-cookie", c.as_str());
        }
        let Ok(head) = head.body(()) else {
            respond.send_reset(h2::Reason::INTERNAL_ERROR);
            return;
        };
        let empty = reply.body.is_empty();
        let Ok(mut send) = respond.send_response(head, empty) else {
            return;
        };
        if !empty && send.send_data(Bytes::from(reply.body), true).is_err() {
            return;
        }
        if let Some(w) = reply.wake {
            self.service.wake(w);
        }
    }

    /// The request whole (its body within the frame cap and timeout), as
    /// the HTTP/1.1 reader gives it.
    async fn request(&self, req: http::Request<RecvStream>) -> Result<Request, Close> {
        let max = self.service.config.max_frame_len as usize;
        let (parts, mut recv) = req.into_parts();
        let mut body = Vec::new();
        let read = async {
            while let Some(chunk) = recv.data().await {
                let chunk = chunk.map_err(|_| Close::Io)?;
                let _ = recv.flow_control().release_capacity(chunk.len());
                if body.len() + chunk.len() > max {
                    return Err(super::http::http(
                        413,
                        crate::net::messages::ret::OVERSIZE,
                        format!("body over the {max}-byte cap"),
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(())
        };
        match tokio::time::timeout(self.service.config.frame_timeout, read).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(super::http::http(
                    408,
                    crate::net::messages::ret::TIMEOUT,
                    "request body not complete in time",
                ))
            }
        }
        let header = |name: &str| {
            let values: Vec<&str> = parts
                .headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            // HTTP/2 may split cookies into fields of their own (RFC 9113
            // section 8.2.3): joined back.
            values.join("; ")
        };
        let host = parts
            .uri
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_else(|| header("host"));
        Ok(Request {
            method: parts.method.as_str().to_owned(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().unwrap_or("").to_owned(),
            host,
            cookie: header("cookie"),
            content_type: header("content-type"),
            keep_alive: true,
            body,
        })
    }

    async fn route(&mut self, req: &Request) -> Result<Reply, Close> {
        let mut origin = Origin {
            peer: self.peer,
            local: self.local,
            shutdown: &mut self.shutdown,
        };
        if web::is_web_path(&req.path) {
            web::route(&self.service, req, &mut origin).await
        } else {
            shortlink::route(&self.service, req, self.peer).await
        }
    }
}
