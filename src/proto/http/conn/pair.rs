//! Pairing: requests queued for their responses (keep-alive, pipelining,
//! interim `1xx`, upgrades), and what happens when a half ends (gap or end
//! of the stream).

use super::super::framing::Framing;
use super::super::{HttpEvent, Message, SKIP_AFTER_GAP, SKIP_NOT_HTTP};
use super::{seek, upgraded, Answer, Cause, Conn, NlCache, Pending, State};

impl Conn {
    /// Emits a request and queues it for its response. True: the half
    /// pauses until the answer to this upgrade request.
    pub(super) fn finish_request<F: FnMut(HttpEvent<'_>)>(
        &mut self,
        mut msg: Message,
        upgrade: bool,
        answered: bool,
        out: &mut F,
    ) -> bool {
        if !answered && self.pending.len() >= self.cfg.max_pending {
            if let Some(old) = self.pending.pop_front() {
                self.dropped += 1;
                msg.problems.push(format!(
                    "pending queue full ({}): dropped the oldest unanswered request ({} at offset {})",
                    self.cfg.max_pending,
                    old.msg.start_line(),
                    old.msg.stream_offset
                ));
            }
        }
        out(HttpEvent::Request(&msg));
        let pause = upgrade && msg.complete && !answered;
        if !answered {
            self.pending.push_back(Pending { msg, upgrade });
        }
        pause
    }

    /// Emits a final response with its request. True: the connection
    /// switched protocols.
    pub(super) fn finish_response<F: FnMut(HttpEvent<'_>)>(
        &mut self,
        i: usize,
        mut msg: Message,
        answer: Answer,
        out: &mut F,
    ) -> bool {
        if answer.dropped {
            msg.problems
                .push("answers a request dropped from the full pending queue".to_string());
        }
        let status = msg.status().unwrap_or(0);
        let upgraded =
            status == 101 || (answer.method_is("CONNECT") && (200..300).contains(&status));
        out(HttpEvent::Response {
            response: &msg,
            request: answer.req.as_deref(),
        });
        let j = 1 - i;
        if upgraded {
            self.upgrade_half(j, out);
        } else if answer.upgrade && matches!(self.halves[j].state, State::Paused) {
            self.halves[j].state = seek();
            if self.halves[j].held_len() > 0 {
                self.wake = Some(j);
            }
        }
        upgraded
    }

    /// An interim response: pairs with the oldest unanswered request
    /// without consuming it.
    pub(super) fn emit_interim<F: FnMut(HttpEvent<'_>)>(
        &mut self,
        i: usize,
        msg: &Message,
        out: &mut F,
    ) {
        let request = if self.dropped > 0 {
            None
        } else if let Some(p) = self.pending.front() {
            Some(&p.msg)
        } else {
            match &self.halves[1 - i].state {
                State::Body(b) if b.msg.is_request() && !b.answered => Some(&b.msg),
                _ => None,
            }
        };
        out(HttpEvent::Response {
            response: msg,
            request,
        });
    }

    /// The request a final response from half `i` answers.
    pub(super) fn take_answer(&mut self, i: usize) -> Answer {
        if self.dropped > 0 {
            self.dropped -= 1;
            return Answer {
                dropped: true,
                ..Answer::default()
            };
        }
        if let Some(p) = self.pending.pop_front() {
            return Answer {
                req: Some(Box::new(p.msg)),
                upgrade: p.upgrade,
                dropped: false,
            };
        }
        // Answered before the request was complete (early error, or the
        // request body still coming): the request as it is now.
        if let State::Body(b) = &mut self.halves[1 - i].state {
            if b.msg.is_request() && !b.answered {
                b.answered = true;
                return Answer {
                    req: Some(Box::new(b.msg.clone())),
                    upgrade: b.upgrade,
                    dropped: false,
                };
            }
        }
        Answer::default()
    }

    /// The connection switched protocols: half `j` (not the one being
    /// driven) skips everything from its frontier on.
    pub(super) fn upgrade_half<F: FnMut(HttpEvent<'_>)>(&mut self, j: usize, out: &mut F) {
        let st = std::mem::replace(&mut self.halves[j].state, upgraded());
        if let State::Body(mut b) = st {
            let h = &self.halves[j];
            b.msg.end_offset = h.frontier;
            b.msg.ts_last = h.ts_of(h.frontier.saturating_sub(1));
            b.msg.complete = false;
            b.msg
                .problems
                .push("connection upgraded before the message ended".to_string());
            self.complete(j, b, out);
            self.halves[j].state = upgraded();
        }
        if self.halves[j].held_len() > 0 {
            self.wake = Some(j);
        }
    }

    /// Half `i` has no more contiguous bytes (gap or end): everything held
    /// is decided, cut messages are emitted.
    pub(super) fn end_half<F: FnMut(HttpEvent<'_>)>(
        &mut self,
        i: usize,
        cause: Cause,
        out: &mut F,
    ) {
        let held = self.halves[i].take_held();
        let (frontier, next) = (self.halves[i].frontier, self.halves[i].next);
        let st = std::mem::replace(&mut self.halves[i].state, seek());
        let after = match cause {
            Cause::Gap(_) => SKIP_AFTER_GAP,
            Cause::End => SKIP_NOT_HTTP,
        };
        let new = match st {
            State::Seek { reason } => {
                self.halves[i].add_skip(frontier, held.len() as u64, reason, out);
                State::Seek { reason: after }
            }
            State::Paused => {
                self.halves[i].add_skip(frontier, held.len() as u64, SKIP_NOT_HTTP, out);
                State::Seek { reason: after }
            }
            State::Head { start, ts, .. } => {
                let what = match cause {
                    Cause::Gap(n) => format!("gap of {n} bytes inside the head"),
                    Cause::End => "stream ended inside the head".to_string(),
                };
                match self.cut_head(i, &held, start, ts, what, out) {
                    Some(true) => upgraded(),
                    _ => State::Seek { reason: after },
                }
            }
            State::Body(mut b) => {
                let framing = b.framing;
                let what = match (cause, framing) {
                    (Cause::End, Framing::Close) => None,
                    (Cause::Gap(n), _) => Some(format!("gap of {n} bytes inside the body")),
                    (Cause::End, Framing::Length(left)) => Some(format!(
                        "stream ended inside the body ({} of {} bytes)",
                        b.msg.wire_body_len,
                        b.msg.wire_body_len + left
                    )),
                    (Cause::End, Framing::Chunked(_)) => {
                        Some("stream ended inside the chunked body".to_string())
                    }
                };
                if let Some(what) = what {
                    b.msg.complete = false;
                    b.msg.problems.push(what);
                }
                b.msg.end_offset = next;
                b.msg.ts_last = self.halves[i].ts_of(next.saturating_sub(1));
                match (self.complete(i, b, out), cause, framing) {
                    (s @ State::Drain { .. }, _, _) => s,
                    (_, Cause::Gap(n), Framing::Length(left)) if left > n => State::SkipN {
                        left: left - n,
                        reason: SKIP_AFTER_GAP,
                    },
                    (_, Cause::Gap(_), Framing::Close) => State::Drain {
                        reason: SKIP_AFTER_GAP,
                    },
                    _ => State::Seek { reason: after },
                }
            }
            State::SkipN { left, reason } => {
                self.halves[i].add_skip(frontier, held.len() as u64, reason, out);
                match cause {
                    Cause::Gap(n) if left > n => State::SkipN {
                        left: left - n,
                        reason,
                    },
                    _ => State::Seek { reason: after },
                }
            }
            State::Drain { reason } => {
                self.halves[i].add_skip(frontier, held.len() as u64, reason, out);
                State::Drain { reason }
            }
        };
        let h = &mut self.halves[i];
        h.flush_skip(out);
        h.state = new;
        h.frontier = h.next;
        h.nl = NlCache::default();
    }
}
