//! `syncscope replay`: recorded sessions sent again to a live server, each
//! answer compared with the recorded one.
//!
//! * [`recording`]: a capture read into sessions (the analyzer's
//!   reassembly, framing, decryption and HTTP, with the bytes kept).
//! * [`gate`]: the recorded order of sends, answers and pushes, which the
//!   replay keeps across connections.
//! * [`tokens`]: what is substituted (SyncKeys, uins, session ids, tickets,
//!   users), learned from the answers as they come.
//! * [`diff`]: answers compared field by field, volatile fields aside.
//! * [`longlink`] and [`http`]: the drivers of one session per link.
//! * [`report`]: per session and per command, latency percentiles.

pub mod diff;
pub mod gate;
pub mod http;
pub mod longlink;
pub mod mock;
pub mod recording;
pub mod report;
pub mod run;
pub mod schema;
pub mod tokens;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::analyze::Options;
use crate::capture::Timestamp;

pub use diff::{FieldDiff, Volatile};
pub use gate::{Done, Gate};
pub use recording::{Link, Recording, Session, Step};
pub use report::{Exchange, Report, Verdict};
pub use run::{run, select, ReplayError};
pub use tokens::Tokens;

/// When sends go.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Timing {
    /// As soon as the recorded order allows (see [`gate`]).
    Asap,
    /// At the recorded offsets from the start, divided by the factor
    /// (1: the recorded timing), and never before the order allows.
    Scaled(f64),
}

impl std::str::FromStr for Timing {
    type Err = String;
    fn from_str(s: &str) -> Result<Timing, String> {
        match s {
            "asap" => Ok(Timing::Asap),
            "original" => Ok(Timing::Scaled(1.0)),
            x => match x.strip_prefix('x').and_then(|n| n.parse::<f64>().ok()) {
                Some(f) if f > 0.0 && f.is_finite() => Ok(Timing::Scaled(f)),
                _ => Err(format!(
                    "'{s}' is not a timing: asap, original, or xN (N > 0, e.g. x10 for ten times as fast)"
                )),
            },
        }
    }
}

/// How a replay runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// `host:port` of the live server.
    pub server: String,
    /// Connection ids to replay (empty: every session that can be sent).
    pub conns: Vec<u64>,
    pub timing: Timing,
    /// New ClientMsgIds instead of the recorded ones.
    pub fresh_ids: bool,
    pub volatile: Volatile,
    /// Time without any recorded event happening live before the next
    /// one is given up (counted missing).
    pub stall: Duration,
    pub connect_timeout: Duration,
    /// Live user name -> password, for servers that enforce identity.
    pub passwords: HashMap<String, String>,
    /// Copies of each session, each as its own users (load).
    pub clones: u32,
    /// Clones started per second (None: all at once).
    pub rate: Option<f64>,
    pub max_frame_len: u32,
}

impl Config {
    pub fn new(server: impl Into<String>) -> Config {
        Config {
            server: server.into(),
            conns: Vec::new(),
            timing: Timing::Asap,
            fresh_ids: false,
            volatile: Volatile::default(),
            stall: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            passwords: HashMap::new(),
            clones: 1,
            rate: None,
            max_frame_len: crate::net::frame::DEFAULT_MAX_FRAME_LEN,
        }
    }
}

/// An event's number in the recorded order: sends, answers and pushes of
/// every selected session.
#[derive(Debug, Default)]
pub struct Plan {
    /// (session index, step index) -> (send event, answer event).
    events: HashMap<(usize, usize), (Option<usize>, Option<usize>)>,
    len: usize,
    t0: Option<Timestamp>,
}

impl Plan {
    pub fn new(sessions: &[&Session]) -> Plan {
        // (ts, answer?, session, step)
        let mut all = Vec::new();
        for (si, s) in sessions.iter().enumerate() {
            for (i, st) in s.steps.iter().enumerate() {
                match st {
                    Step::Push(w) => all.push((w.ts, true, si, i)),
                    _ => {
                        all.push((st.ts(), false, si, i));
                        if let Some(a) = st.answer_ts() {
                            all.push((a, true, si, i));
                        }
                    }
                }
            }
        }
        all.sort_by(|a, b| {
            a.0.nanos_since(&b.0)
                .cmp(&0)
                .then(a.1.cmp(&b.1))
                .then(a.2.cmp(&b.2))
                .then(a.3.cmp(&b.3))
        });
        let mut events: HashMap<(usize, usize), (Option<usize>, Option<usize>)> = HashMap::new();
        for (n, &(_, answer, si, i)) in all.iter().enumerate() {
            let e = events.entry((si, i)).or_default();
            if answer {
                e.1 = Some(n);
            } else {
                e.0 = Some(n);
            }
        }
        Plan {
            events,
            len: all.len(),
            t0: all.first().map(|e| e.0),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The send event of step `step` of session `session`.
    pub fn send(&self, session: usize, step: usize) -> Option<usize> {
        self.events.get(&(session, step)).and_then(|e| e.0)
    }

    /// Its answer (or, a push, its arrival) event.
    pub fn answer(&self, session: usize, step: usize) -> Option<usize> {
        self.events.get(&(session, step)).and_then(|e| e.1)
    }

    /// Recorded offset of `ts` from the first event.
    pub fn offset(&self, ts: Timestamp) -> Duration {
        match self.t0 {
            Some(t0) => Duration::from_nanos(ts.nanos_since(&t0).max(0) as u64),
            None => Duration::ZERO,
        }
    }
}

/// What the sessions of one clone share.
pub struct Ctx {
    pub config: Arc<Config>,
    pub opts: Arc<Options>,
    pub gate: Gate,
    pub plan: Plan,
    pub tokens: Mutex<Tokens>,
    /// This clone's number (0 for a plain replay).
    pub clone: u32,
    pub started: Instant,
    pub out: Mutex<Vec<Exchange>>,
}

impl Ctx {
    pub fn tokens(&self) -> std::sync::MutexGuard<'_, Tokens> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&self, e: Exchange) {
        self.out.lock().unwrap_or_else(|p| p.into_inner()).push(e);
    }

    /// Waits until the send of (session, step) may go: every earlier
    /// recorded event happened (or was given up), and with recorded
    /// timing, its offset has come.
    pub async fn before_send(&self, session: usize, step: usize, ts: Timestamp) {
        if let Some(e) = self.plan.send(session, step) {
            self.gate.wait(e).await;
        }
        if let Timing::Scaled(f) = self.config.timing {
            let at = self.started + self.plan.offset(ts).div_f64(f);
            tokio::time::sleep_until(at.into()).await;
        }
    }

    /// Marks the send of (session, step) done.
    pub fn sent(&self, session: usize, step: usize) {
        if let Some(e) = self.plan.send(session, step) {
            self.gate.done(e, Done::Happened);
        }
    }

    /// Marks the answer of (session, step) arrived; false if it had been
    /// given up already (then it counts as late).
    pub fn answered(&self, session: usize, step: usize) -> bool {
        match self.plan.answer(session, step) {
            Some(e) => self.gate.done(e, Done::Happened) == Done::Happened,
            None => true,
        }
    }

    /// Gives up the answer of (session, step) (the connection failed).
    pub fn give_up(&self, session: usize, step: usize) {
        if let Some(e) = self.plan.answer(session, step) {
            self.gate.done(e, Done::GaveUp);
        }
        if let Some(e) = self.plan.send(session, step) {
            self.gate.done(e, Done::GaveUp);
        }
    }
}
