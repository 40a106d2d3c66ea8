//! The engine: the selected sessions of a recording replayed against the
//! live server (each clone with its own users, order and substitutions),
//! then the report.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::recording::{Link, Recording, Session, Step};
use super::report::{Counts, Exchange, Report, SessionRow, Verdict};
use super::{http, longlink, Config, Ctx, Gate, Plan, Tokens};
use crate::analyze::Options;

/// Why a replay cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(
        "connection {conn} is not in the capture's sessions (sessions with something to \
         send: {available}); `syncscope analyze CAPTURE` lists the connections"
    )]
    NoSuchConn { conn: u64, available: String },
    #[error("the capture holds no client session to replay (no long-link frame or HTTP request)")]
    Nothing,
}

/// The sessions `config.conns` selects (all that have steps when empty).
pub fn select<'a>(rec: &'a Recording, config: &Config) -> Result<Vec<&'a Session>, ReplayError> {
    if config.conns.is_empty() {
        let all: Vec<&Session> = rec
            .sessions
            .iter()
            .filter(|s| s.link != Link::None)
            .collect();
        if all.is_empty() {
            return Err(ReplayError::Nothing);
        }
        return Ok(all);
    }
    let wanted: BTreeSet<u64> = config.conns.iter().copied().collect();
    for &c in &wanted {
        if !rec.sessions.iter().any(|s| s.conn == c) {
            let available: Vec<String> = rec.sessions.iter().map(|s| s.conn.to_string()).collect();
            return Err(ReplayError::NoSuchConn {
                conn: c,
                available: if available.is_empty() {
                    "none".into()
                } else {
                    available.join(", ")
                },
            });
        }
    }
    Ok(rec
        .sessions
        .iter()
        .filter(|s| wanted.contains(&s.conn))
        .collect())
}

/// The user names a recording logs in with (manualauth UserName, identify
/// user): what clones rename.
pub fn recorded_users(sessions: &[&Session]) -> BTreeSet<String> {
    let mut users = BTreeSet::new();
    for s in sessions {
        users.extend(super::http::recorded_users(s));
        for st in &s.steps {
            if let Step::Frame { request, .. } = st {
                let v = &request.value;
                let name = v
                    .pointer("/UserName/String")
                    .or_else(|| v.pointer("/identify/network_id_ctx"));
                if let Some(n) = name.and_then(|n| n.as_str()) {
                    users.insert(n.to_owned());
                }
            }
        }
    }
    users
}

/// Replays `sessions` against `config.server`: `config.clones` copies at
/// once (clone `c > 0` logs in as `<user>-c<c>` for each recorded user),
/// started `config.rate` per second. `tokens` holds the user mappings.
pub async fn run(
    sessions: Vec<Session>,
    config: Config,
    opts: Options,
    tokens: Tokens,
    all: bool,
) -> Report {
    let sessions = Arc::new(sessions);
    let config = Arc::new(config);
    let opts = Arc::new(opts);
    let refs: Vec<&Session> = sessions.iter().collect();
    let users = recorded_users(&refs);
    let started = Instant::now();
    let mut clones = Vec::new();
    for c in 0..config.clones.max(1) {
        if c > 0 {
            if let Some(rate) = config.rate {
                tokio::time::sleep(Duration::from_secs_f64(1.0 / rate)).await;
            }
        }
        let mut t = tokens.clone();
        if c > 0 {
            for u in &users {
                let live = format!("{}-c{c}", t.user(u));
                t.map_user(u, &live);
            }
        }
        let refs: Vec<&Session> = sessions.iter().collect();
        let plan = Plan::new(&refs);
        let ctx = Arc::new(Ctx {
            gate: Gate::new(plan.len()),
            plan,
            config: config.clone(),
            opts: opts.clone(),
            tokens: Mutex::new(t),
            clone: c,
            started: Instant::now(),
            out: Mutex::new(Vec::new()),
        });
        clones.push(tokio::spawn(run_clone(ctx, sessions.clone())));
    }
    let mut rows = Vec::new();
    let mut exchanges = Vec::new();
    for h in clones {
        if let Ok((r, e)) = h.await {
            rows.extend(r);
            exchanges.extend(e);
        }
    }
    Report::build(
        &config.server,
        config.clones.max(1),
        rows,
        exchanges,
        started.elapsed().as_millis() as u64,
        all,
    )
}

async fn run_clone(ctx: Arc<Ctx>, sessions: Arc<Vec<Session>>) -> (Vec<SessionRow>, Vec<Exchange>) {
    let dog = tokio::spawn({
        let ctx = ctx.clone();
        async move { ctx.gate.watchdog(ctx.config.stall).await }
    });
    let mut tasks = Vec::new();
    for si in 0..sessions.len() {
        let ctx = ctx.clone();
        let sessions = sessions.clone();
        tasks.push(tokio::spawn(async move {
            let s = &sessions[si];
            match s.link {
                Link::Longlink | Link::Mars => longlink::run_session(&ctx, si, s).await,
                Link::Http => http::run_session(&ctx, si, s).await,
                Link::Shortlink | Link::None => unsendable(&ctx, si, s),
            }
        }));
    }
    let mut rows = Vec::new();
    for t in tasks {
        if let Ok(r) = t.await {
            rows.push(r);
        }
    }
    dog.abort();
    let out = std::mem::take(&mut *ctx.out.lock().unwrap_or_else(|p| p.into_inner()));
    (rows, out)
}

/// A session the replay cannot send (MMTLS short link, unknown bytes).
fn unsendable(ctx: &Ctx, si: usize, s: &Session) -> SessionRow {
    let mut counts = Counts::default();
    for (i, st) in s.steps.iter().enumerate() {
        ctx.give_up(si, i);
        if matches!(st, Step::Push(_)) {
            continue;
        }
        let (name, why) = match st {
            Step::Unsendable { name, why, .. } => (name.clone(), why.clone()),
            _ => (
                "?".to_owned(),
                "the connection's protocol is not one the replay sends".to_owned(),
            ),
        };
        counts.not_sent += 1;
        ctx.push(Exchange::new(s.conn, ctx.clone, name, Verdict::NotSent).note(why));
    }
    SessionRow {
        counts,
        ..SessionRow::new(s, ctx.clone)
    }
}
