//! Replay of a long-link session: the recorded frames sent again on a new
//! connection, in the recorded order ([`Ctx::before_send`]), with their
//! seq renumbered, their bodies substituted ([`Tokens`]), and every frame
//! the server sends read and matched: answers by (cmd, seq), pushes by
//! cmd in recorded order.

use std::collections::HashMap;
use std::time::Instant;

use prost::Message as _;
use prost_reflect::{DynamicMessage, ReflectMessage};
use serde_json::Value;
use tokio::net::TcpStream;

use super::diff;
use super::recording::{Session, Step, Wire};
use super::report::{Exchange, SessionRow, Verdict};
use super::tokens::Tokens;
use super::Ctx;
use crate::analyze::decode_frame_body;
use crate::body::identify::Identify;
use crate::body::protobuf::Schemas;
use crate::body::synckey::SyncKey;
use crate::net::frame::{Connection, Frame, ReadError};
use crate::net::messages::{IdentifyExt, IdentifyReply};
use crate::proto::business::MAGIC;
use crate::proto::commands::{
    response, Registry, ERROR, IDENTIFY, MANUALAUTH, NEWSENDMSG, SEQ_HEARTBEAT, SEQ_IDENTIFY,
    SEQ_PUSH,
};
use crate::proto::longlink::{Header, Kind};

/// A request on the wire, waiting for its answer.
struct InFlight {
    step: usize,
    sent: Instant,
    substituted: usize,
}

/// One session's driver state.
struct Driver<'a> {
    ctx: &'a Ctx,
    si: usize,
    s: &'a Session,
    conn: Option<Connection<TcpStream>>,
    next_seq: u32,
    inflight: HashMap<(u32, u32), InFlight>,
    /// Recorded pushes not yet seen live: step indices, in order.
    pushes: Vec<usize>,
    row: SessionRow,
}

/// Replays one long-link session.
pub async fn run_session(ctx: &Ctx, si: usize, s: &Session) -> SessionRow {
    let pushes: Vec<usize> = s
        .steps
        .iter()
        .enumerate()
        .filter(|(_, st)| matches!(st, Step::Push(_)))
        .map(|(i, _)| i)
        .collect();
    let mut d = Driver {
        ctx,
        si,
        s,
        conn: None,
        next_seq: 1,
        inflight: HashMap::new(),
        row: SessionRow {
            pushes_recorded: pushes.len() as u64,
            ..SessionRow::new(s, ctx.clone)
        },
        pushes,
    };
    d.run().await;
    d.row
}

impl Driver<'_> {
    fn exchange(&mut self, name: String, v: Verdict) -> Exchange {
        Exchange::new(self.s.conn, self.ctx.clone, name, v)
    }

    fn emit(&mut self, e: Exchange) {
        self.row.counts.add(e.verdict);
        self.ctx.push(e);
    }

    fn name(&self, cmd: u32) -> String {
        self.ctx
            .opts
            .registry
            .name(cmd)
            .map(|n| n.into_owned())
            .unwrap_or_else(|| format!("cmd {cmd}"))
    }

    async fn run(&mut self) {
        for i in 0..self.s.steps.len() {
            let st = &self.s.steps[i];
            match st {
                Step::Push(_) => {}
                Step::Unsendable { name, why, .. } => {
                    self.ctx.give_up(self.si, i);
                    let e = self
                        .exchange(name.clone(), Verdict::NotSent)
                        .note(why.clone());
                    self.emit(e);
                }
                Step::Http { name, .. } => {
                    self.ctx.give_up(self.si, i);
                    let e = self
                        .exchange(name.clone(), Verdict::NotSent)
                        .note("an HTTP exchange on a long-link connection");
                    self.emit(e);
                }
                Step::Frame { request, .. } if request.mars => {
                    self.ctx.give_up(self.si, i);
                    let e = self
                        .exchange(self.name(request.cmd), Verdict::NotSent)
                        .note("Mars (20-byte header) frames are not replayed yet");
                    self.emit(e);
                }
                Step::Frame { request, .. } => {
                    let ts = request.ts;
                    // Keep reading (answers, pushes) while waiting for the order.
                    if !self.wait_reading(i, ts).await {
                        return self.abandon(i);
                    }
                    let connected = match self.conn {
                        Some(_) => Ok(()),
                        None => self.connect().await,
                    };
                    let sent = match connected {
                        Ok(()) => self.send(i, request).await,
                        e => e,
                    };
                    if let Err(why) = sent {
                        self.row.error = Some(why.clone());
                        let e = self
                            .exchange(self.name(request.cmd), Verdict::Error)
                            .note(why);
                        self.emit(e);
                        self.ctx.give_up(self.si, i);
                        return self.abandon(i + 1);
                    }
                }
            }
        }
        self.drain().await;
    }

    /// Waits for step `i`'s turn while reading what the server sends.
    /// False when the connection failed.
    async fn wait_reading(&mut self, i: usize, ts: crate::capture::Timestamp) -> bool {
        let ctx = self.ctx;
        let turn = ctx.before_send(self.si, i, ts);
        tokio::pin!(turn);
        loop {
            let Some(conn) = self.conn.as_mut() else {
                turn.as_mut().await;
                return true;
            };
            tokio::select! {
                _ = &mut turn => return true,
                r = conn.read_frame() => {
                    if !self.on_read(r) {
                        return false;
                    }
                }
            }
        }
    }

    /// After the last send: reads until every answer and push of the
    /// session happened or was given up, or the server closed.
    async fn drain(&mut self) {
        let ctx = self.ctx;
        let waiting = |d: &Self| {
            (0..d.s.steps.len())
                .filter_map(|i| ctx.plan.answer(d.si, i))
                .any(|e| ctx.gate.state(e).is_none())
        };
        while waiting(self) {
            let Some(conn) = self.conn.as_mut() else {
                break;
            };
            let r = tokio::time::timeout(ctx.config.stall, conn.read_frame()).await;
            match r {
                Ok(r) => {
                    if !self.on_read(r) {
                        break;
                    }
                }
                Err(_) => continue,
            }
        }
        self.finish_missing();
        if let Some(mut c) = self.conn.take() {
            let _ = c.shutdown().await;
        }
    }

    /// Reports what was recorded and never came: answers in flight, pushes.
    fn finish_missing(&mut self) {
        let ctx = self.ctx;
        let mut left: Vec<(u32, InFlight)> =
            self.inflight.drain().map(|((c, _), f)| (c, f)).collect();
        left.sort_by_key(|(_, f)| f.step);
        for (_, f) in left {
            ctx.give_up(self.si, f.step);
            if let Step::Frame { request, answer } = &self.s.steps[f.step] {
                let e = match answer {
                    Some(_) => self
                        .exchange(self.name(request.cmd), Verdict::Missing)
                        .note("no answer came"),
                    None => self.exchange(self.name(request.cmd), Verdict::Sent),
                };
                let e = Exchange {
                    substituted: f.substituted,
                    ..e
                };
                self.emit(e);
            }
        }
        for i in std::mem::take(&mut self.pushes) {
            ctx.give_up(self.si, i);
            if let Step::Push(w) = &self.s.steps[i] {
                let mut e = self
                    .exchange(self.name(w.cmd), Verdict::Missing)
                    .note("a recorded push that did not come");
                e.push = true;
                self.emit(e);
            }
        }
    }

    /// The connection failed before step `from`: the rest is given up.
    fn abandon(&mut self, from: usize) {
        self.finish_missing();
        for i in from..self.s.steps.len() {
            self.ctx.give_up(self.si, i);
            let (name, push) = match &self.s.steps[i] {
                Step::Frame { request, .. } => (self.name(request.cmd), false),
                Step::Push(w) => (self.name(w.cmd), true),
                Step::Http { name, .. } | Step::Unsendable { name, .. } => (name.clone(), false),
            };
            let why = self
                .row
                .error
                .clone()
                .unwrap_or_else(|| "connection lost".into());
            let mut e = self
                .exchange(name, Verdict::NotSent)
                .note(format!("not sent: {why}"));
            e.push = push;
            if push {
                e.verdict = Verdict::Missing;
            }
            self.emit(e);
        }
        self.conn = None;
    }

    async fn connect(&mut self) -> Result<(), String> {
        let server = &self.ctx.config.server;
        let c = tokio::time::timeout(self.ctx.config.connect_timeout, TcpStream::connect(server))
            .await
            .map_err(|_| format!("cannot connect to {server}: timed out"))?
            .map_err(|e| format!("cannot connect to {server}: {e}"))?;
        let _ = c.set_nodelay(true);
        self.conn = Some(Connection::new(c, self.ctx.config.max_frame_len));
        Ok(())
    }

    /// Sends step `i`: seq renumbered, body substituted.
    async fn send(&mut self, i: usize, w: &Wire) -> Result<(), String> {
        let seq = match w.seq {
            SEQ_PUSH | SEQ_HEARTBEAT | SEQ_IDENTIFY => w.seq,
            _ => {
                let s = self.next_seq;
                self.next_seq = self.next_seq.wrapping_add(1).max(1);
                s
            }
        };
        let (body, substituted) = {
            let tokens = self.ctx.tokens();
            substitute(
                w,
                &tokens,
                &self.ctx.config,
                self.ctx.opts.schemas.as_ref(),
                &self.ctx.opts.registry,
            )
        };
        let h = Header::new(w.cmd, w.seq, 0);
        let expects = matches!(h.kind(), Kind::Request | Kind::Heartbeat);
        let conn = self.conn.as_mut().expect("connected");
        conn.write_frame(w.cmd, seq, &body)
            .await
            .map_err(|e| format!("connection to {} lost: {e}", self.ctx.config.server))?;
        self.ctx.sent(self.si, i);
        if expects {
            self.inflight.insert(
                (response(w.cmd), seq),
                InFlight {
                    step: i,
                    sent: Instant::now(),
                    substituted,
                },
            );
        } else {
            let mut e = self.exchange(self.name(w.cmd), Verdict::Sent);
            e.substituted = substituted;
            self.emit(e);
        }
        Ok(())
    }

    /// Handles one read; false when the connection is finished.
    fn on_read(&mut self, r: Result<Option<Frame>, ReadError>) -> bool {
        match r {
            Ok(Some(f)) => {
                self.on_frame(f);
                true
            }
            Ok(None) => {
                if !self.inflight.is_empty() || !self.pushes.is_empty() {
                    self.row.error = Some("the server closed the connection".into());
                }
                self.conn = None;
                false
            }
            Err(e) => {
                self.row.error = Some(format!("reading from the server: {e}"));
                self.conn = None;
                false
            }
        }
    }

    fn decode(&self, h: &Header, body: &[u8]) -> Value {
        decode_body(&self.ctx.opts, h, body)
    }

    fn on_frame(&mut self, f: Frame) {
        let h = f.header;
        let live = self.decode(&h, &f.body);
        if let Some(fl) = self.inflight.remove(&(h.cmd, h.seq)) {
            let Step::Frame { request, answer } = &self.s.steps[fl.step] else {
                return;
            };
            let latency = fl.sent.elapsed().as_micros() as u64;
            let on_time = self.ctx.answered(self.si, fl.step);
            let name = self.name(request.cmd);
            let mut e = match answer {
                None => self
                    .exchange(name, Verdict::Extra)
                    .note("an answer the capture does not have"),
                Some(rec) => {
                    let mut e = self.compare(name, rec, &h, &live);
                    if !on_time {
                        e.verdict = Verdict::Missing;
                        e.note = Some(format!(
                            "the answer came after the replay gave it up ({} ms)",
                            latency / 1000
                        ));
                    }
                    e
                }
            };
            e.latency_us = Some(latency);
            e.substituted = fl.substituted;
            if request.cmd == NEWSENDMSG {
                e.msg_ids = live
                    .get("List")
                    .and_then(Value::as_array)
                    .map(|l| {
                        l.iter()
                            .filter_map(|m| m.get("MsgId").and_then(Value::as_u64))
                            .collect()
                    })
                    .unwrap_or_default();
            }
            self.emit(e);
            return;
        }
        if h.cmd == ERROR {
            let mut e = self.exchange("error".into(), Verdict::Error).note(format!(
                "the server sent an error frame (seq {}): {live}",
                h.seq
            ));
            if let Some(fl) = self
                .inflight
                .iter()
                .find(|(k, _)| k.1 == h.seq)
                .map(|(k, _)| *k)
                .and_then(|k| self.inflight.remove(&k))
            {
                self.ctx.answered(self.si, fl.step);
                if let Step::Frame { request, .. } = &self.s.steps[fl.step] {
                    e.name = self.name(request.cmd);
                }
                e.latency_us = Some(fl.sent.elapsed().as_micros() as u64);
            }
            self.emit(e);
            return;
        }
        // A push: the next recorded push of the same cmd.
        self.row.pushes_live += 1;
        let found = self.pushes.iter().position(|&i| match &self.s.steps[i] {
            Step::Push(w) => w.cmd == h.cmd,
            _ => false,
        });
        let name = self.name(h.cmd);
        let mut e = match found {
            Some(p) => {
                let i = self.pushes.remove(p);
                let Step::Push(rec) = &self.s.steps[i] else {
                    return;
                };
                let on_time = self.ctx.answered(self.si, i);
                let mut e = self.compare(name, rec, &h, &live);
                if !on_time {
                    e.verdict = Verdict::Missing;
                    e.note = Some("the push came after the replay gave it up".into());
                }
                e
            }
            None => self
                .exchange(name, Verdict::Extra)
                .note(format!("a push the capture does not have (seq {})", h.seq)),
        };
        e.push = true;
        self.emit(e);
    }

    /// Compares a recorded frame with a live one, learning substitutions.
    fn compare(&mut self, name: String, rec: &Wire, h: &Header, live: &Value) -> Exchange {
        let recorded = decode_body(&self.ctx.opts, &Header::new(rec.cmd, rec.seq, 0), &rec.body);
        let (mut diffs, mut learned) = (Vec::new(), Vec::new());
        if h.cmd != rec.cmd {
            diffs.push(diff::FieldDiff {
                path: "cmd".into(),
                recorded: Some(rec.cmd.into()),
                live: Some(h.cmd.into()),
            });
        }
        diff::compare(
            &recorded,
            live,
            &self.ctx.config.volatile,
            &mut diffs,
            &mut learned,
        );
        let mut tokens = self.ctx.tokens();
        tokens.learn_all(&learned);
        diffs.retain(|d| match (&d.recorded, &d.live) {
            (Some(r), Some(l)) => !tokens.explains(r, l),
            _ => true,
        });
        drop(tokens);
        let v = if diffs.is_empty() {
            Verdict::Matched
        } else {
            Verdict::Different
        };
        let mut e = self.exchange(name, v);
        e.diffs = diffs;
        e
    }
}

/// A recorded frame's body for the live server: users mapped, the
/// password of the live user in a manualauth, learned values in volatile
/// fields, new ClientMsgIds when asked. Returns the body and how many
/// values changed (0: the recorded bytes as they were).
pub fn substitute(
    w: &Wire,
    tokens: &Tokens,
    config: &super::Config,
    schemas: Option<&Schemas>,
    registry: &Registry,
) -> (Vec<u8>, usize) {
    let vol = &config.volatile;
    if w.body.first() == Some(&MAGIC) {
        // A business packet: encrypted for the recorded session.
        return (w.body.clone(), 0);
    }
    if w.cmd == IDENTIFY && w.seq == SEQ_IDENTIFY {
        return substitute_identify(&w.body, tokens);
    }
    let (Some(schemas), Some(name)) = (schemas, registry.message(w.cmd)) else {
        return (w.body.clone(), 0);
    };
    let Ok(desc) = schemas.message(name) else {
        return (w.body.clone(), 0);
    };
    let Ok(mut m) = DynamicMessage::decode(desc, w.body.as_slice()) else {
        return (w.body.clone(), 0);
    };
    let mut n = tokens.substitute_message(&mut m, vol);
    if w.cmd == MANUALAUTH {
        n += set_password(&mut m, tokens, config);
    }
    if config.fresh_ids {
        n += fresh_client_msg_ids(&mut m);
    }
    if n == 0 {
        return (w.body.clone(), 0);
    }
    fix_lengths(&mut m);
    (m.encode_to_vec(), n)
}

/// The manualauth's Password: the live user's, from the command line.
fn set_password(m: &mut DynamicMessage, tokens: &Tokens, config: &super::Config) -> usize {
    let user = m
        .get_field_by_name("UserName")
        .and_then(|u| u.as_message().cloned())
        .and_then(|u| {
            u.get_field_by_name("String")
                .and_then(|s| s.as_str().map(str::to_owned))
        });
    let Some(user) = user else {
        return 0;
    };
    let live = tokens.user(&user).to_owned();
    match config.passwords.get(&live) {
        Some(pw) => {
            if m.get_field_by_name("Password")
                .and_then(|p| p.as_str().map(str::to_owned))
                == Some(pw.clone())
            {
                return 0;
            }
            m.set_field_by_name("Password", prost_reflect::Value::String(pw.clone()));
            1
        }
        None => 0,
    }
}

/// Every ClientMsgId field (u64 or string) gets a new value.
fn fresh_client_msg_ids(m: &mut DynamicMessage) -> usize {
    let mut n = 0;
    let fields: Vec<_> = m.descriptor().fields().collect();
    for f in fields {
        if !m.has_field(&f) {
            continue;
        }
        let v = m.get_field_mut(&f);
        n += fresh_in_value(v, f.name() == "ClientMsgId");
    }
    n
}

fn fresh_in_value(v: &mut prost_reflect::Value, here: bool) -> usize {
    use prost_reflect::Value as P;
    match v {
        P::Message(m) => fresh_client_msg_ids(m),
        P::List(l) => l.iter_mut().map(|x| fresh_in_value(x, here)).sum(),
        P::U64(x) if here => {
            *x = crate::net::client::new_client_msg_id();
            1
        }
        P::String(s) if here => {
            *s = crate::net::client::new_client_msg_id().to_string();
            1
        }
        _ => 0,
    }
}

/// `iLen` beside a `Buffer` (SKBuiltinBuffer_t) follows the buffer.
fn fix_lengths(m: &mut DynamicMessage) {
    let len = m
        .get_field_by_name("Buffer")
        .and_then(|b| b.as_bytes().map(|b| b.len()));
    if let (Some(len), true) = (len, m.descriptor().get_field_by_name("iLen").is_some()) {
        m.set_field_by_name("iLen", prost_reflect::Value::U32(len as u32));
    }
    let fields: Vec<_> = m.descriptor().fields().collect();
    for f in fields {
        if !m.has_field(&f) {
            continue;
        }
        match m.get_field_mut(&f) {
            prost_reflect::Value::Message(x) => fix_lengths(x),
            prost_reflect::Value::List(l) => {
                for x in l.iter_mut() {
                    if let prost_reflect::Value::Message(x) = x {
                        fix_lengths(x);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The identify: the live uin and SyncKey for the recorded ones, the
/// mapped user.
fn substitute_identify(body: &[u8], tokens: &Tokens) -> (Vec<u8>, usize) {
    let Ok(id) = Identify::decode(body) else {
        return (body.to_vec(), 0);
    };
    let uin = tokens
        .get_u64_field("uin", u64::from(id.uin))
        .and_then(|u| u32::try_from(u).ok())
        .unwrap_or(id.uin);
    let synckey = tokens
        .get_bytes(&id.synckey.encode())
        .and_then(|b| SyncKey::decode(&b).ok())
        .unwrap_or_else(|| id.synckey.clone());
    let user = id
        .network_id_ctx
        .as_deref()
        .map(|u| tokens.user(u).to_owned());
    let n = usize::from(uin != id.uin)
        + usize::from(synckey != id.synckey)
        + usize::from(user != id.network_id_ctx);
    if n == 0 {
        return (body.to_vec(), 0);
    }
    if user != id.network_id_ctx {
        // The user is in the tail: the server's own identify layout.
        if let Ok(ext) = IdentifyExt::decode(body) {
            let ext = IdentifyExt {
                uin,
                user,
                synckey,
                ..ext
            };
            return (ext.encode(), n);
        }
    }
    let id = Identify {
        uin,
        synckey_len: 0,
        synckey_count: None,
        synckey,
        ..id
    };
    (id.encode(), n)
}

/// A frame's body as the replay compares it: the analyzer's decoding, the
/// identify answer as its words (ret, uin, role), newsync's AddMsg items
/// decoded in place.
pub fn decode_body(opts: &crate::analyze::Options, h: &Header, body: &[u8]) -> Value {
    if h.cmd == response(IDENTIFY) && h.seq == SEQ_IDENTIFY {
        if let Some(r) = IdentifyReply::decode(body) {
            return serde_json::json!({"identify_reply": {"ret": r.ret, "uin": r.uin, "primary": r.primary}});
        }
    }
    let mut v = decode_frame_body(opts, h, body, true).value;
    if let Some(s) = &opts.schemas {
        super::schema::expand_add_msgs(&mut v, s);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::messages::{NewSyncRequest, SkBuiltinBuffer};
    use crate::proto::commands::NEWSYNC;
    use crate::replay::{schema, Config};

    fn key(pos: u64) -> SyncKey {
        crate::net::server::synckey(pos)
    }

    fn wire(cmd: u32, seq: u32, body: Vec<u8>) -> Wire {
        Wire {
            ts: crate::capture::Timestamp::default(),
            cmd,
            seq,
            body,
            value: Value::Null,
            mars: false,
        }
    }

    #[test]
    fn newsync_presents_the_live_key_for_the_recorded_one() {
        let (opts, reg) = schema::options(&[], &[], None).unwrap();
        let req = NewSyncRequest {
            key_buf: Some(SkBuiltinBuffer {
                i_len: Some(key(1).encode().len() as u32),
                buffer: Some(key(1).encode()),
            }),
            selector: Some(7),
            scene: Some(7),
            ..Default::default()
        };
        let w = wire(NEWSYNC, 9, req.encode_to_vec());
        let mut t = Tokens::default();
        let b64 = |k: &SyncKey| {
            use base64::Engine;
            Value::from(base64::engine::general_purpose::STANDARD.encode(k.encode()))
        };
        // Nothing learned: the recorded bytes as they were.
        let (body, n) = substitute(&w, &t, &Config::new("x"), opts.schemas.as_ref(), &reg);
        assert_eq!((body.as_slice(), n), (w.body.as_slice(), 0));
        t.learn(&b64(&key(1)), &b64(&key(300)));
        let (body, n) = substitute(&w, &t, &Config::new("x"), opts.schemas.as_ref(), &reg);
        assert_eq!(n, 1);
        let got = NewSyncRequest::decode(body.as_slice()).unwrap();
        let kb = got.key_buf.unwrap();
        assert_eq!(
            SyncKey::decode(&kb.buffer.clone().unwrap()).unwrap(),
            key(300)
        );
        // iLen follows the new buffer; the other fields are kept.
        assert_eq!(kb.i_len, Some(kb.buffer.unwrap().len() as u32));
        assert_eq!((got.selector, got.scene), (Some(7), Some(7)));
    }

    #[test]
    fn identify_presents_the_live_uin_key_and_user() {
        let (opts, reg) = schema::options(&[], &[], None).unwrap();
        let id = IdentifyExt {
            uin: 2,
            user: Some("bob".into()),
            device: Some("phone".into()),
            synckey: key(4),
        };
        let w = wire(IDENTIFY, SEQ_IDENTIFY, id.encode());
        let mut t = Tokens::default();
        t.learn_field("Uin", &Value::from(2), &Value::from(7));
        t.learn_field("MsgId", &Value::from(2), &Value::from(108));
        use base64::Engine;
        let b =
            |k: &SyncKey| Value::from(base64::engine::general_purpose::STANDARD.encode(k.encode()));
        t.learn(&b(&key(4)), &b(&key(40)));
        t.map_user("bob", "carol");
        let (body, n) = substitute(&w, &t, &Config::new("x"), opts.schemas.as_ref(), &reg);
        assert_eq!(n, 3);
        let got = IdentifyExt::decode(&body).unwrap();
        assert_eq!(got.uin, 7);
        assert_eq!(got.synckey, key(40));
        assert_eq!(got.user.as_deref(), Some("carol"));
        assert_eq!(got.device.as_deref(), Some("phone"));
    }

    #[test]
    fn manualauth_carries_the_live_users_password_and_fresh_ids_renew_client_msg_ids() {
        use crate::body::messages::{
            ManualAuthRequest, MicroMsgRequestNew, NewSendMsgRequest, SkBuiltinString,
        };
        let (opts, reg) = schema::options(&[], &[], None).unwrap();
        let auth = ManualAuthRequest {
            user_name: Some(SkBuiltinString {
                string: Some("bob".into()),
            }),
            device_id: Some("phone".into()),
            ..Default::default()
        };
        let mut t = Tokens::default();
        t.map_user("bob", "carol");
        let mut c = Config::new("x");
        c.passwords.insert("carol".into(), "secret".into());
        let (body, _) = substitute(
            &wire(MANUALAUTH, 1, auth.encode_to_vec()),
            &t,
            &c,
            opts.schemas.as_ref(),
            &reg,
        );
        let got = ManualAuthRequest::decode(body.as_slice()).unwrap();
        assert_eq!(got.user_name.unwrap().string.as_deref(), Some("carol"));
        assert_eq!(got.password.as_deref(), Some("secret"));
        let send = NewSendMsgRequest {
            count: Some(1),
            list: vec![MicroMsgRequestNew {
                client_msg_id: Some(42),
                content: Some("hi".into()),
                ..Default::default()
            }],
        };
        let w = wire(NEWSENDMSG, 2, send.encode_to_vec());
        let (same, n) = substitute(&w, &Tokens::default(), &c, opts.schemas.as_ref(), &reg);
        assert_eq!((same, n), (w.body.clone(), 0), "kept by default");
        c.fresh_ids = true;
        let (body, n) = substitute(&w, &Tokens::default(), &c, opts.schemas.as_ref(), &reg);
        assert_eq!(n, 1);
        let got = NewSendMsgRequest::decode(body.as_slice()).unwrap();
        assert_ne!(got.list[0].client_msg_id, Some(42));
        assert_eq!(got.list[0].content.as_deref(), Some("hi"));
    }
}
