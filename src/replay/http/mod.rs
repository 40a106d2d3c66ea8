//! Replay of HTTP sessions (web, the plain short link, other HTTP): the
//! recorded requests sent again in order on one keep-alive connection per
//! session ([`Conn`], reopened when the server closed it), each made live
//! first ([`request`]), each answer decoded as the recording was and
//! compared with it ([`answer`]).
//!
//! A held request (synccheck, the login poll) may take as long as the
//! server holds it, up to [`REQUEST_LIMIT`]; meanwhile the gate may give
//! its answer up (other sessions go on), and an answer that comes after
//! that is counted missing, with a note and its latency. A connection
//! that cannot be opened or fails mid-request ends the session: that
//! exchange is an error, the steps after it are not sent.

pub mod answer;
pub mod request;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::recording::Session;
use super::report::{Counts, Exchange, SessionRow, Verdict};
use super::{Ctx, Step};
use crate::net::webclient::http::Conn;
use crate::proto::web;

/// How long one request may take, its answer included: the reference
/// server holds a synccheck or a login poll up to 25 s.
pub const REQUEST_LIMIT: Duration = Duration::from_secs(60);

/// The web session a recorded request belongs to: its sid (query,
/// `BaseRequest.Sid`, else the `wxsid` cookie).
fn recorded_sid(m: &crate::proto::http::Message) -> Option<String> {
    let path = m.path()?;
    let ex = web::decode(path, &m.body, None)?;
    ex.info.sid.or_else(|| {
        let c = m.header_str("cookie")?;
        c.split(';')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| k.trim() == "wxsid")
            .map(|(_, v)| v.trim().to_owned())
    })
}

/// The user names an HTTP session logs in or acts as: the `user=` query
/// parameter (a syncscope jslogin, the plain short link in test mode) and
/// the user name of a plain short-link manualauth; what clones rename
/// (the long link's are the engine's).
pub fn recorded_users(s: &Session) -> BTreeSet<String> {
    let mut users = BTreeSet::new();
    for st in &s.steps {
        let Step::Http { request, .. } = st else {
            continue;
        };
        if let Some(u) = request
            .message
            .query()
            .map(web::parse_query)
            .and_then(|q| q.get("user").cloned())
        {
            if !u.is_empty() {
                users.insert(u);
            }
        }
        let auth = request.message.path().and_then(answer::short_cmd);
        if auth == Some(crate::proto::commands::MANUALAUTH) {
            // ManualAuthRequest.UserName.String, read schema-less.
            let fields = crate::body::protobuf::decode_raw(&request.message.body);
            let v = fields.map(|f| crate::body::protobuf::to_json(&f));
            let name = v.as_ref().ok().and_then(|v| v.pointer("/1/1")?.as_str());
            if let Some(n) = name.filter(|n| !n.is_empty()) {
                users.insert(n.to_owned());
            }
        }
    }
    users
}

/// Replays one HTTP session.
pub async fn run_session(ctx: &Ctx, si: usize, s: &Session) -> SessionRow {
    let mut counts = Counts::default();
    let mut conn = Conn::new(&ctx.config.server);
    let mut jar: BTreeMap<String, String> = BTreeMap::new();
    let mut failed: Option<String> = None;
    let push = |counts: &mut Counts, e: Exchange| {
        counts.add(e.verdict);
        ctx.push(e);
    };
    for (i, st) in s.steps.iter().enumerate() {
        let (name, rq, rs) = match st {
            Step::Http {
                name,
                request,
                response,
            } => (name, request, response),
            Step::Unsendable { name, why, .. } => {
                ctx.give_up(si, i);
                push(
                    &mut counts,
                    Exchange::new(s.conn, ctx.clone, name.clone(), Verdict::NotSent).note(why),
                );
                continue;
            }
            _ => {
                ctx.give_up(si, i);
                push(
                    &mut counts,
                    Exchange::new(s.conn, ctx.clone, "frame", Verdict::NotSent)
                        .note("a long-link frame in an HTTP session"),
                );
                continue;
            }
        };
        if let Some(why) = &failed {
            ctx.give_up(si, i);
            push(
                &mut counts,
                Exchange::new(s.conn, ctx.clone, name.clone(), Verdict::NotSent)
                    .note(format!("not sent: {why}")),
            );
            continue;
        }
        ctx.before_send(si, i, st.ts()).await;
        let sid = recorded_sid(&rq.message);
        let live = request::Live {
            server: &ctx.config.server,
            volatile: &ctx.config.volatile,
            fresh_ids: ctx.config.fresh_ids,
            opts: &ctx.opts,
            jar: &jar,
        };
        let built = request::build(&mut ctx.tokens(), &live, &rq.message, sid.as_deref());
        let sent_at = OnceLock::new();
        let result = conn
            .send_bytes("the request", &built.bytes, REQUEST_LIMIT, || {
                let _ = sent_at.set(Instant::now());
                ctx.sent(si, i);
            })
            .await;
        let latency = sent_at
            .get()
            .map(|t| t.elapsed().as_micros().min(u128::from(u64::MAX)) as u64);
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                // Sent or not, the session ends here.
                ctx.give_up(si, i);
                let why = format!("the connection to {} failed: {e}", ctx.config.server);
                let mut x = Exchange::new(s.conn, ctx.clone, name.clone(), Verdict::Error)
                    .note(why.clone());
                x.substituted = built.substituted;
                x.latency_us = latency;
                push(&mut counts, x);
                failed = Some(why);
                continue;
            }
        };
        let rec_path = rq.message.path().unwrap_or("/");
        let recorded = answer::decode(&ctx.opts, rec_path, &rq.message.body, &rs.message.body);
        let live_dec = answer::decode(&ctx.opts, &built.target, &built.body, &resp.body);
        let rec_cookies = answer::set_cookies(
            rs.message
                .headers
                .iter()
                .filter_map(|(n, v)| Some((n.as_str(), std::str::from_utf8(v).ok()?))),
        );
        let live_cookies =
            answer::set_cookies(resp.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        for (n, v) in &live_cookies {
            jar.insert(n.clone(), v.clone());
        }
        let diffs = answer::learn_and_compare(
            &mut ctx.tokens(),
            &ctx.config.volatile,
            &recorded,
            &live_dec,
            sid.as_deref(),
            (&rec_cookies, &live_cookies),
            (rs.message.status(), resp.status),
        );
        let on_time = ctx.answered(si, i);
        let verdict = if !on_time {
            Verdict::Missing
        } else if diffs.is_empty() {
            Verdict::Matched
        } else {
            Verdict::Different
        };
        let mut x = Exchange::new(s.conn, ctx.clone, name.clone(), verdict);
        if !on_time {
            x = x.note(format!(
                "the answer came late ({:.1} s), after it was given up",
                latency.unwrap_or(0) as f64 / 1e6
            ));
        }
        x.diffs = diffs;
        x.latency_us = latency;
        x.substituted = built.substituted;
        push(&mut counts, x);
    }
    SessionRow {
        counts,
        error: failed,
        ..SessionRow::new(s, ctx.clone)
    }
}
