//! Replay of HTTP sessions (web, the plain short link): in progress.

use super::recording::Session;
use super::report::{Counts, Exchange, SessionRow, Verdict};
use super::{Ctx, Step};

/// Replays one HTTP session.
pub async fn run_session(ctx: &Ctx, si: usize, s: &Session) -> SessionRow {
    let mut counts = Counts::default();
    for (i, st) in s.steps.iter().enumerate() {
        let name = match st {
            Step::Http { name, .. } => name.clone(),
            _ => "http".into(),
        };
        ctx.give_up(si, i);
        counts.not_sent += 1;
        ctx.push(
            Exchange::new(s.conn, ctx.clone, name, Verdict::NotSent)
                .note("HTTP sessions are not replayed yet"),
        );
    }
    SessionRow {
        conn: s.conn,
        clone: ctx.clone,
        link: s.link,
        client: s.client.clone(),
        server: s.server.clone(),
        counts,
        pushes_recorded: 0,
        pushes_live: 0,
        error: None,
    }
}
