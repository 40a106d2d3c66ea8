//! The long link over one socket: [`Handler`] reads frames (check-then-
//! parse, capped, each within the frame timeout), hands each request to
//! the [`Service`] and writes its answer, writes
//! newnotify when the push signal fires, and closes on the idle timer, on
//! shutdown or on bad input (one error frame, one event). A connection
//! whose first byte is an upper-case letter is HTTP and is served by
//! [`http::serve`] instead (which routes to `shortlink.rs` or `web/`).

use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::futures::OwnedNotified;
use tokio::sync::{broadcast, mpsc, OwnedSemaphorePermit};
use tokio::time::{timeout, Instant};

use super::access::Slot;
use super::service::{Failure, Link, Service};
use super::{http, Event};
use crate::body::messages::BaseResponse;
use crate::net::frame::{self, Connection, Frame, FrameError, ReadError};
use crate::net::messages::ret;
use crate::proto::commands::{ERROR, NEWNOTIFY, SEQ_PUSH};

/// Writes a last message (error frame or HTTP error), closes the write
/// side, and reads (and drops) what the peer still sends for a moment, so
/// the close is a FIN after the message rather than a reset that could
/// destroy it.
pub(super) async fn close_with(conn: &mut Connection<TcpStream>, last: &[u8]) {
    let linger = async {
        conn.write_raw(last).await?;
        conn.shutdown().await?;
        let mut sink = [0u8; 8192];
        let mut left = 1usize << 20;
        let stream = conn.get_mut();
        while left > 0 {
            let n = stream.read(&mut sink).await?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
        }
        Ok::<_, std::io::Error>(())
    };
    let _ = timeout(Duration::from_millis(500), linger).await;
}

/// Why a connection is closed.
#[derive(Debug)]
pub(super) enum Close {
    /// Bad input: answered with an error frame and logged.
    Bad { ret: i32, seq: u32, error: String },
    /// The peer went away mid-frame.
    Truncated(usize),
    /// An I/O error (reset, write timeout): nothing to tell the peer.
    Io,
    /// Bad input on the short link: an HTTP error response, logged.
    Http {
        status: u16,
        ret: i32,
        error: String,
    },
}

impl Close {
    pub(super) fn bad(ret: i32, seq: u32, error: impl fmt::Display) -> Close {
        Close::Bad {
            ret,
            seq,
            error: error.to_string(),
        }
    }
}

impl Failure {
    /// The close for a refused request with `seq`.
    pub(super) fn close(self, seq: u32) -> Close {
        Close::Bad {
            ret: self.ret,
            seq,
            error: self.error,
        }
    }
}

/// One connection: its socket, its state and its share of the server.
pub(super) struct Handler {
    pub(super) shared: Arc<Service>,
    pub(super) conn: Connection<TcpStream>,
    pub(super) peer: SocketAddr,
    pub(super) link: Link,
    pub(super) shutdown: broadcast::Receiver<()>,
    /// Dropped when the connection ends (the drain waits for all).
    pub(super) _done: mpsc::Sender<()>,
    /// The connection's place under the cap.
    pub(super) _permit: OwnedSemaphorePermit,
    /// Its place under its address's cap on connections not yet
    /// authenticated: given back once it authenticates.
    pub(super) unauthenticated: Option<Slot>,
}

impl Drop for Handler {
    fn drop(&mut self) {
        if let Some(s) = &self.link.session {
            self.shared.offline(s.user, self.link.id);
        }
    }
}

impl Handler {
    pub(super) async fn run(mut self) {
        match self.serve().await {
            Ok(()) | Err(Close::Io) => {}
            Err(Close::Truncated(have)) => self.shared.log(Event::Truncated {
                peer: self.peer,
                have,
            }),
            Err(Close::Bad { ret, seq, error }) => {
                let body = BaseResponse::error(ret, error.clone()).encode_to_vec();
                self.shared.log(Event::BadInput {
                    peer: self.peer,
                    ret,
                    error,
                });
                close_with(&mut self.conn, &frame::encode(ERROR, seq, &body)).await;
            }
            Err(Close::Http { status, ret, error }) => {
                let body = format!("syncscope: {error} (ret {ret})\n");
                self.shared.log(Event::BadInput {
                    peer: self.peer,
                    ret,
                    error,
                });
                let resp = http::response(status, "text/plain", body.as_bytes(), false);
                close_with(&mut self.conn, &resp).await;
            }
        }
    }

    /// HTTPS: the TLS handshake (within the frame timeout), then HTTP
    /// requests over it as on a plain connection.
    async fn serve_tls(
        &mut self,
        tls: Arc<rustls::ServerConfig>,
        limit: Duration,
    ) -> Result<(), Close> {
        let local = self.conn.get_ref().local_addr().ok();
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let stream = match timeout(limit, acceptor.accept(self.conn.get_mut())).await {
            Ok(Ok(s)) => s,
            // A failed handshake has its alert sent by rustls; nothing to add.
            Ok(Err(_)) | Err(_) => return Err(Close::Io),
        };
        if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
            let shutdown = self.shutdown.resubscribe();
            return super::h2::serve(stream, self.shared.clone(), self.peer, local, shutdown).await;
        }
        let mut conn = Connection::new(stream, self.shared.config.max_frame_len);
        let mut origin = http::Origin {
            peer: self.peer,
            local,
            shutdown: &mut self.shutdown,
        };
        let r = http::serve(&mut conn, &self.shared, &mut origin).await;
        let r = match r {
            // The error answer goes over TLS, here.
            Err(Close::Http { status, ret, error }) => {
                let body = format!("syncscope: {error} (ret {ret})\n");
                self.shared.log(Event::BadInput {
                    peer: self.peer,
                    ret,
                    error,
                });
                let resp = http::response(status, "text/plain", body.as_bytes(), false);
                let _ = conn.write_raw(&resp).await;
                Err(Close::Io)
            }
            r => r,
        };
        let _ = conn.shutdown().await;
        r
    }

    async fn serve(&mut self) -> Result<(), Close> {
        let config = &self.shared.config;
        let (idle, auth) = (config.idle_timeout, config.auth_timeout);
        let enforced = config.access.enforced_mode();
        let unauthenticated = move || {
            if enforced {
                format!("no manualauth or autoauth within {} s", auth.as_secs_f32())
            } else {
                format!("no auth or identify within {} s", auth.as_secs_f32())
            }
        };
        let frame_timeout = config.frame_timeout;
        // The shutdown signal, the deadline's timer and the push signal
        // live across the loop's turns: registered once, not once per
        // frame (10 000 connections share the shutdown channel's lock and
        // the timer wheel's). The timer fires at the deadline it was set
        // for; a frame that came meanwhile moved `deadline` on, and the
        // timer is then set again (once per idle period, not per frame).
        let mut stop = self.shutdown.resubscribe();
        let stop = async move {
            let _ = stop.recv().await;
        };
        tokio::pin!(stop);
        let mut deadline = Instant::now() + auth;
        let timer = tokio::time::sleep_until(deadline);
        tokio::pin!(timer);
        // With --tls-cert, a first byte that starts a TLS handshake record
        // is HTTPS: looked at without reading it, so that rustls gets it.
        if let Some(tls) = config.tls.clone() {
            let mut first = [0u8; 1];
            let peeked = tokio::select! {
                biased;
                _ = &mut stop => return Ok(()),
                r = self.conn.get_ref().peek(&mut first) => r,
                _ = &mut timer => return Err(Close::bad(ret::TIMEOUT, 0, unauthenticated())),
            };
            match peeked {
                Ok(0) => return Ok(()),
                Err(_) => return Err(Close::Io),
                Ok(_) if first[0] == super::tls::TLS_HANDSHAKE => {
                    return self.serve_tls(tls, frame_timeout).await;
                }
                Ok(_) => {}
            }
        }
        // The first byte tells the long link (a frame's length: 0x00 for
        // any frame under 16 MiB) from HTTP (an upper-case method name).
        while self.conn.buffered() == 0 {
            tokio::select! {
                biased;
                _ = &mut stop => return Ok(()),
                r = self.conn.fill() => match r {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(_) => return Err(Close::Io),
                },
                _ = &mut timer => return Err(Close::bad(ret::TIMEOUT, 0, unauthenticated())),
            }
        }
        if self.conn.buffer()[0].is_ascii_uppercase() {
            let mut origin = http::Origin {
                peer: self.peer,
                local: self.conn.get_ref().local_addr().ok(),
                shutdown: &mut self.shutdown,
            };
            return http::serve(&mut self.conn, &self.shared, &mut origin).await;
        }
        let mut notified: Option<Pin<Box<OwnedNotified>>> = None;
        loop {
            if notified.is_none() {
                notified = self
                    .link
                    .session
                    .as_ref()
                    .map(|s| Box::pin(Arc::clone(&s.notify).notified_owned()));
            }
            let pushed = async {
                match notified.as_mut() {
                    Some(n) => n.as_mut().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = &mut stop => return Ok(()),
                r = self.conn.read_frame_within(Some(frame_timeout)) => {
                    let frame = match r {
                        Ok(Some(f)) => f,
                        Ok(None) => return Ok(()),
                        Err(ReadError::Io(_)) => return Err(Close::Io),
                        Err(ReadError::Truncated { have }) => return Err(Close::Truncated(have)),
                        Err(e @ ReadError::Slow { .. }) => return Err(Close::bad(ret::TIMEOUT, 0, e)),
                        Err(ReadError::Frame(e @ FrameError::Oversize { .. })) => {
                            return Err(Close::bad(ret::OVERSIZE, 0, e))
                        }
                        Err(ReadError::Frame(e)) => return Err(Close::bad(ret::BAD_FRAME, 0, e)),
                    };
                    self.handle(frame).await?;
                    // Until it authenticates, the deadline counts from
                    // connecting (heartbeats do not extend it).
                    if self.link.authenticated(enforced) {
                        self.unauthenticated = None;
                        deadline = Instant::now() + idle;
                    }
                }
                _ = pushed => {
                    notified = None;
                    self.write(NEWNOTIFY, SEQ_PUSH, &[]).await?;
                }
                _ = &mut timer => {
                    if Instant::now() < deadline {
                        timer.as_mut().reset(deadline);
                        continue;
                    }
                    let error = if self.link.authenticated(enforced) {
                        format!("no frame for {} s", idle.as_secs())
                    } else {
                        unauthenticated()
                    };
                    return Err(Close::bad(ret::TIMEOUT, 0, error));
                }
            }
        }
    }

    async fn write(&mut self, cmd: u32, seq: u32, body: &[u8]) -> Result<(), Close> {
        match timeout(
            self.shared.config.write_timeout,
            self.conn.write_frame(cmd, seq, body),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) | Err(_) => Err(Close::Io),
        }
    }

    /// Answers one request, then does what follows the answer.
    async fn handle(&mut self, f: Frame) -> Result<(), Close> {
        let seq = f.header.seq;
        let answer = self
            .shared
            .apply(&mut self.link, f.header.cmd, &f.body)
            .await
            .map_err(|e| e.close(seq))?;
        self.write(answer.cmd, seq, &answer.body).await?;
        let notify = self
            .shared
            .follow_up(answer.then)
            .await
            .map_err(|e| e.close(seq))?;
        if notify {
            self.write(NEWNOTIFY, SEQ_PUSH, &[]).await?;
        }
        Ok(())
    }
}
