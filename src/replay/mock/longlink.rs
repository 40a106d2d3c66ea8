//! The mock's long link: each request frame decoded as the recording's
//! were, matched in the index, answered with the recorded body under the
//! live request's seq, then the pushes recorded after that answer.

use prost::Message;
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::{identity, scopes, Applied, Found, Peer, Shared, Stats};
use crate::analyze::decode_frame_body;
use crate::body::messages::BaseResponse;
use crate::net::frame::{Connection, ReadError};
use crate::net::messages::ret;
use crate::proto::commands::{response, ERROR, NOOP};

/// Serves frames until the peer closes, bad input, silence past the idle
/// timeout, or shutdown.
pub(crate) async fn serve(shared: &Shared, conn: &mut Connection<TcpStream>, peer: &mut Peer) {
    let config = &shared.config;
    // The user and device the connection named (manualauth, identify).
    let mut who: Option<(String, String)> = None;
    loop {
        let read = timeout(
            config.idle_timeout,
            conn.read_frame_within(Some(config.frame_timeout)),
        );
        let frame = tokio::select! {
            biased;
            _ = peer.shutdown.recv() => return,
            r = read => match r {
                Err(_) => return,
                Ok(Ok(Some(f))) => f,
                Ok(Ok(None)) | Ok(Err(ReadError::Io(_) | ReadError::Truncated { .. })) => return,
                Ok(Err(e)) => {
                    let body = BaseResponse::error(ret::BAD_FRAME, e.to_string()).encode_to_vec();
                    let _ = conn.write_frame(ERROR, 0, &body).await;
                    let _ = conn.shutdown().await;
                    shared.log(super::Event::BadInput {
                        conn: peer.id,
                        peer: peer.addr,
                        error: e.to_string(),
                    });
                    return;
                }
            },
        };
        let (cmd, seq) = (frame.header.cmd, frame.header.seq);
        let value = decode_frame_body(&shared.mock.opts, &frame.header, &frame.body, true).value;
        if let Some(w) = identity(cmd, &value) {
            who = Some(w);
        }
        let found = shared.mock.frames().answer(
            &scopes(who.as_ref()),
            &super::cmd_key(cmd),
            &value,
            config.unmatched,
        );
        // (answer, its pushes are sent): an answer given again once its
        // entry's are used up goes without them, or a client that syncs on
        // every push would sync forever.
        let (answer, push) = match found {
            Found::Exact { answer, exhausted } => {
                Stats::add(&shared.stats.answered);
                (answer, !exhausted)
            }
            Found::Nearest {
                answer,
                exhausted,
                differing,
            } => {
                let what = shared.mock.cmd_name(cmd);
                shared.unmatched(peer.id, peer.addr, what, Applied::Nearest { differing });
                (answer, !exhausted)
            }
            // A heartbeat the recording did not answer gets the empty
            // answer every heartbeat gets: nothing to match.
            Found::None { .. } if cmd == NOOP => (
                super::FrameAnswer {
                    cmd: response(NOOP),
                    body: Vec::new(),
                    pushes: Vec::new(),
                },
                false,
            ),
            Found::None { name_known } => {
                let what = shared.mock.cmd_name(cmd);
                let why = format!(
                    "serve --replay: the recording has no answer to this {what} request{}",
                    if name_known {
                        " (its fields differ from every recorded one)"
                    } else {
                        ""
                    }
                );
                let applied = if config.unmatched == super::Unmatched::Nearest {
                    Applied::NothingNear
                } else {
                    Applied::Error
                };
                shared.unmatched(peer.id, peer.addr, what, applied);
                let body = BaseResponse::error(ret::NOT_RECORDED, why).encode_to_vec();
                if conn.write_frame(ERROR, seq, &body).await.is_err() {
                    return;
                }
                continue;
            }
        };
        if conn
            .write_frame(answer.cmd, seq, &answer.body)
            .await
            .is_err()
        {
            return;
        }
        for (cmd, seq, body) in answer.pushes.iter().filter(|_| push) {
            if conn.write_frame(*cmd, *seq, body).await.is_err() {
                return;
            }
            Stats::add(&shared.stats.pushes);
        }
    }
}
