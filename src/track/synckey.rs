//! The SyncKey timeline: per session (a user: uin, or sid on the web, across
//! all its connections, binary and web alike) every SyncKey observation,
//! the transitions between them, and the anomalies they show.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;

use serde::Serialize;

use crate::capture::Timestamp;
use crate::flow::Direction;
use crate::track::lifecycle::{self, Lifecycle};

pub use crate::body::synckey::KeyMap;

/// Who put a SyncKey on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The server issued it (newsync response, webwxinit, webwxsync response).
    ServerIssued,
    /// The client presented it (identify, newsync request, webwxsync request).
    ClientPresented,
    /// The `synckey` parameter of a synccheck long poll.
    SynccheckParam,
}

/// The message a SyncKey was seen in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Message {
    /// A long-link identify (client).
    Identify,
    /// A newsync request's KeyBuf (long or short link).
    NewsyncRequest,
    /// A newsync response's KeyBuf.
    NewsyncResponse,
    /// The SyncKey of a web `webwxinit` response.
    Webwxinit,
    /// The SyncKey a web client presents in `webwxsync`.
    WebwxsyncRequest,
    /// The SyncKey of a `webwxsync` response.
    WebwxsyncResponse,
    /// The SyncCheckKey of a `webwxsync` response.
    WebwxsyncResponseSyncCheckKey,
    /// The `synckey` parameter of a synccheck long poll.
    Synccheck,
}

impl Message {
    const ALL: [Message; 8] = [
        Message::Identify,
        Message::NewsyncRequest,
        Message::NewsyncResponse,
        Message::Webwxinit,
        Message::WebwxsyncRequest,
        Message::WebwxsyncResponse,
        Message::WebwxsyncResponseSyncCheckKey,
        Message::Synccheck,
    ];

    /// The name in reports and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Message::Identify => "identify",
            Message::NewsyncRequest => "newsync_request",
            Message::NewsyncResponse => "newsync_response",
            Message::Webwxinit => "webwxinit",
            Message::WebwxsyncRequest => "webwxsync_request",
            Message::WebwxsyncResponse => "webwxsync_response",
            Message::WebwxsyncResponseSyncCheckKey => "webwxsync_response.SyncCheckKey",
            Message::Synccheck => "synccheck",
        }
    }
}

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Message {
    type Err = String;

    /// The message [`Message::as_str`] names.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Message::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("not a SyncKey message: {s:?}"))
    }
}

impl Serialize for Message {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One SyncKey seen on the wire.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Observation {
    pub ts: Timestamp,
    pub conn: u64,
    pub dir: Direction,
    pub source: Source,
    /// The message it came in: identify, newsync_request, newsync_response,
    /// webwxinit, webwxsync_request, webwxsync_response, synccheck.
    pub message: Message,
    pub keys: KeyMap,
    /// The packet that completed the message (1-based, as Wireshark
    /// numbers them), when packets are numbered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packet: Option<u64>,
}

impl Observation {
    /// An observation; the direction follows from who put the key on the
    /// wire (the server sends what it issues, the client the rest).
    pub fn new(ts: Timestamp, conn: u64, source: Source, message: Message, keys: KeyMap) -> Self {
        let dir = if source == Source::ServerIssued {
            Direction::ServerToClient
        } else {
            Direction::ClientToServer
        };
        Observation {
            ts,
            conn,
            dir,
            source,
            message,
            keys,
            packet: None,
        }
    }
}

/// How one key changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub from: Option<u64>,
    pub to: Option<u64>,
    pub delta: Option<i64>,
}

/// Between two consecutive observations that differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transition {
    /// Indexes into the session's observations.
    pub from: usize,
    pub to: usize,
    pub changed: BTreeMap<u32, Change>,
}

/// Something wrong in a session, with its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Anomaly {
    pub kind: &'static str,
    pub ts: Timestamp,
    pub conn: u64,
    /// The direction of the message that showed it.
    pub dir: Direction,
    /// The packet that completed that message, when packets are numbered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packet: Option<u64>,
    pub detail: String,
}

/// Time from "new data" (push or selector > 0) to the next sync request,
/// and long-poll durations, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Timings {
    pub notify_to_sync_ms: Vec<f64>,
    pub longpoll_ms: Vec<f64>,
}

/// One user's timeline.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Session {
    pub uin: Option<u64>,
    pub sid: Option<String>,
    /// The user name, when the traffic names one (the reference server's
    /// short link: `?user=`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    pub observations: Vec<Observation>,
    pub transitions: Vec<Transition>,
    pub anomalies: Vec<Anomaly>,
    pub timings: Timings,
    #[serde(skip)]
    state: State,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct State {
    /// Every map the server issued (SyncKey and SyncCheckKey).
    issued: HashSet<KeyMap>,
    last_synckey: Option<KeyMap>,
    last_synccheckkey: Option<KeyMap>,
    /// The session's start (login / webwxinit) is in the capture.
    start_seen: bool,
    /// Time of a push or a selector > 0 not yet followed by a sync request.
    notified: Option<Timestamp>,
    /// A synccheck said there is data; the next webwxsync should bring some.
    selector_pending: Option<(Timestamp, i64)>,
}

/// How many MsgIds (and as many ClientMsgIds) the timeline remembers, over
/// all sessions, for telling a duplicate: a delivery or a send repeated
/// after this many others is not reported. Memory stays bounded (about
/// 6 MB each) on captures of millions of messages and of any number of
/// users.
pub const RECENT_IDS: usize = 1 << 18;

/// Messages one ClientMsgId is remembered for (a collision past it is
/// reported against the ones kept).
const MAX_SENDS_PER_ID: usize = 8;

/// What a sent message is, for telling a resend from a ClientMsgId reused
/// for another message: a 64-bit hash of its recipient, type and content.
pub fn message_digest(to: &str, msg_type: u64, content: &str) -> u64 {
    foldhash::fast::FixedState::default().hash_one((to, msg_type, content))
}

/// Ids (MsgIds, ClientMsgIds) seen lately, each with a value and the
/// session it belongs to: the last [`RECENT_IDS`] insertions, by a 64-bit
/// hash of (session, id) (a false match needs a hash collision among a
/// window's ids: about 2^-28 per capture).
#[derive(Debug, Clone, PartialEq, Default)]
struct Recent<V> {
    map: HashMap<u64, V, foldhash::fast::FixedState>,
    order: VecDeque<u64>,
}

impl<V> Recent<V> {
    fn key(session: usize, id: &str) -> u64 {
        foldhash::fast::FixedState::default().hash_one((session, id))
    }

    fn get(&self, session: usize, id: &str) -> Option<&V> {
        self.map.get(&Self::key(session, id))
    }

    fn get_mut(&mut self, session: usize, id: &str) -> Option<&mut V> {
        self.map.get_mut(&Self::key(session, id))
    }

    /// Sets `id` of `session` to `v`, inserted or replaced.
    fn put(&mut self, session: usize, id: &str, v: V) {
        if let Some(old) = self.get_mut(session, id) {
            *old = v;
        } else {
            self.insert(session, id, v);
        }
    }

    /// Inserts `id` of `session` unless it is there; false when it was.
    fn insert(&mut self, session: usize, id: &str, v: V) -> bool {
        let k = Self::key(session, id);
        if self.map.contains_key(&k) {
            return false;
        }
        if self.order.len() == RECENT_IDS {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
        self.order.push_back(k);
        self.map.insert(k, v);
        true
    }
}

/// Identifiers an event carries; any of them links it to a session.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ids<'a> {
    pub uin: Option<u64>,
    pub sid: Option<&'a str>,
    /// A user name (the reference server's short link names its user
    /// with `?user=`).
    pub user: Option<&'a str>,
    /// The device, when the event names one (a long-link identify): a
    /// user's devices keep their own SyncKeys, so each is a session.
    pub device: Option<&'a str>,
    pub conn: u64,
}

/// [`Ids`] that own their strings: what an event names, kept to be put on
/// the timeline later (a worker of a split run logs it).
#[derive(Debug, Clone, Default)]
pub struct OwnedIds {
    pub uin: Option<u64>,
    pub sid: Option<String>,
    pub user: Option<String>,
    pub device: Option<String>,
    pub conn: u64,
}

impl Ids<'_> {
    pub fn owned(&self) -> OwnedIds {
        OwnedIds {
            uin: self.uin,
            sid: self.sid.map(str::to_owned),
            user: self.user.map(str::to_owned),
            device: self.device.map(str::to_owned),
            conn: self.conn,
        }
    }
}

impl OwnedIds {
    pub fn ids(&self) -> Ids<'_> {
        Ids {
            uin: self.uin,
            sid: self.sid.as_deref(),
            user: self.user.as_deref(),
            device: self.device.as_deref(),
            conn: self.conn,
        }
    }
}

/// All sessions of a capture.
#[derive(Debug, Default)]
pub struct Timeline {
    sessions: Vec<Session>,
    by_uin: HashMap<u64, usize>,
    by_device: HashMap<(u64, String), usize>,
    by_sid: HashMap<String, usize>,
    by_user: HashMap<String, usize>,
    by_conn: HashMap<u64, usize>,
    /// MsgIds delivered lately (a redelivery comes soon after the first).
    msg_ids: Recent<()>,
    /// ClientMsgIds sent lately: each message sent with it (what it was,
    /// [`message_digest`], when known) and the MsgID the server answered.
    client_msgs: Recent<Vec<(Option<u64>, Option<String>)>>,
    /// Sends whose answer has not come yet, by connection and ClientMsgId:
    /// what they were (long and short link: the answer names only the
    /// ClientMsgId).
    sending: Recent<u64>,
    /// The packet being processed ([`Timeline::at_packet`]).
    packet: Option<u64>,
    /// Message lifecycles, by session index.
    life: lifecycle::Tracker,
    /// User names of sessions their keys' messages do not name (a
    /// long-link identify's).
    names: HashMap<usize, String>,
}

fn diff(a: &KeyMap, b: &KeyMap) -> BTreeMap<u32, Change> {
    let mut out = BTreeMap::new();
    for k in a.keys().chain(b.keys()) {
        let (x, y) = (a.get(k).copied(), b.get(k).copied());
        if x != y {
            let delta = match (x, y) {
                (Some(x), Some(y)) => {
                    Some((y as i128 - x as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64)
                }
                _ => None,
            };
            out.insert(
                *k,
                Change {
                    from: x,
                    to: y,
                    delta,
                },
            );
        }
    }
    out
}

fn keys_list(m: &BTreeMap<u32, Change>) -> String {
    m.iter()
        .map(|(k, c)| match (c.from, c.to) {
            (Some(f), Some(t)) => format!("{k}: {f} -> {t}"),
            (None, Some(t)) => format!("{k}: new {t}"),
            (Some(f), None) => format!("{k}: {f} gone"),
            _ => String::new(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Timeline {
    /// What follows was seen in this packet (observations and anomalies
    /// carry it).
    pub fn at_packet(&mut self, packet: Option<u64>) {
        self.packet = packet;
    }

    pub fn new() -> Self {
        Self::default()
    }

    /// The session these ids belong to, created or linked as needed.
    fn session(&mut self, ids: Ids<'_>) -> usize {
        let uin = ids.uin.filter(|&u| u != 0);
        let device = uin.zip(ids.device.filter(|d| !d.is_empty()));
        let found = match device {
            // A named device: its own session, or the user's session that
            // no device has claimed yet (its earlier events named none).
            Some((u, d)) => self
                .by_device
                .get(&(u, d.to_owned()))
                .copied()
                .or_else(|| {
                    self.by_uin
                        .get(&u)
                        .copied()
                        .filter(|&i| self.sessions[i].device.is_none())
                })
                .or_else(|| {
                    self.by_conn
                        .get(&ids.conn)
                        .copied()
                        .filter(|&i| self.sessions[i].device.is_none())
                }),
            None => ids
                .uin
                .and_then(|u| self.by_uin.get(&u).copied())
                .or_else(|| ids.user.and_then(|u| self.by_user.get(u).copied()))
                .or_else(|| ids.sid.and_then(|s| self.by_sid.get(s).copied()))
                .or_else(|| self.by_conn.get(&ids.conn).copied()),
        };
        let i = match found {
            Some(i) => i,
            None => {
                self.sessions.push(Session::default());
                self.sessions.len() - 1
            }
        };
        let s = &mut self.sessions[i];
        if let Some(u) = ids.uin.filter(|&u| u != 0) {
            s.uin.get_or_insert(u);
            self.by_uin.entry(u).or_insert(i);
        }
        if let Some((u, d)) = device {
            s.device.get_or_insert_with(|| d.to_owned());
            self.by_device.entry((u, d.to_owned())).or_insert(i);
        }
        if let Some(sid) = ids.sid.filter(|s| !s.is_empty()) {
            s.sid.get_or_insert_with(|| sid.to_owned());
            self.by_sid.entry(sid.to_owned()).or_insert(i);
        }
        if let Some(user) = ids.user.filter(|u| !u.is_empty()) {
            s.user.get_or_insert_with(|| user.to_owned());
            self.by_user.entry(user.to_owned()).or_insert(i);
        }
        if device.is_some() {
            self.by_conn.insert(ids.conn, i);
        } else {
            self.by_conn.entry(ids.conn).or_insert(i);
        }
        i
    }

    /// These ids name one session (an auth answer giving a session cookie
    /// for a uin).
    pub fn link(&mut self, ids: Ids<'_>) {
        self.session(ids);
    }

    /// The session's start is in the capture (web login or webwxinit).
    pub fn start(&mut self, ids: Ids<'_>) {
        let i = self.session(ids);
        self.sessions[i].state.start_seen = true;
    }

    /// A SyncKey seen on the wire. `synccheckkey`: a SyncCheckKey issued by the server.
    pub fn observe(&mut self, ids: Ids<'_>, obs: Observation, synccheckkey: bool) {
        let i = self.session(ids);
        let s = &mut self.sessions[i];
        let (ts, conn) = (obs.ts, obs.conn);
        let mut found = Vec::new();
        match obs.source {
            Source::ServerIssued => {
                let prev = if synccheckkey {
                    &s.state.last_synccheckkey
                } else {
                    &s.state.last_synckey
                };
                if let Some(prev) = prev {
                    let down: BTreeMap<u32, Change> = diff(prev, &obs.keys)
                        .into_iter()
                        .filter(|(_, c)| c.delta.is_some_and(|d| d < 0))
                        .collect();
                    if !down.is_empty() {
                        found.push((
                            "key_regression",
                            format!(
                                "the server issued a {} with lower values: {}",
                                obs.message,
                                keys_list(&down)
                            ),
                        ));
                    }
                }
                s.state.issued.insert(obs.keys.clone());
                if synccheckkey {
                    s.state.last_synccheckkey = Some(obs.keys.clone());
                } else {
                    s.state.last_synckey = Some(obs.keys.clone());
                }
            }
            Source::ClientPresented => {
                if let Some(last) = &s.state.last_synckey {
                    let older: BTreeMap<u32, Change> = diff(last, &obs.keys)
                        .into_iter()
                        .filter(|(_, c)| c.delta.is_some_and(|d| d < 0))
                        .collect();
                    if !older.is_empty() {
                        found.push((
                            "stale_key",
                            format!(
                                "{} presents values older than the latest issued: {}",
                                obs.message,
                                keys_list(&older)
                            ),
                        ));
                    }
                }
                if s.state.start_seen && !s.state.issued.contains(&obs.keys) {
                    found.push((
                        "never_issued",
                        format!(
                            "{} presents a SyncKey the server never issued in this capture",
                            obs.message
                        ),
                    ));
                }
            }
            Source::SynccheckParam => {
                let expected = s
                    .state
                    .last_synccheckkey
                    .as_ref()
                    .or(s.state.last_synckey.as_ref());
                if let Some(e) = expected {
                    if *e != obs.keys {
                        found.push((
                            "synccheck_mismatch",
                            format!(
                                "synccheck key differs from the latest issued: {}",
                                keys_list(&diff(e, &obs.keys))
                            ),
                        ));
                    }
                }
            }
        }
        for (kind, detail) in found {
            s.anomalies.push(Anomaly {
                kind,
                ts,
                conn,
                dir: obs.dir,
                packet: self.packet,
                detail,
            });
        }
        s.observations.push(Observation {
            packet: obs.packet.or(self.packet),
            ..obs
        });
    }

    /// The server signalled new data (long-link push, or a synccheck selector > 0).
    pub fn notified(&mut self, ids: Ids<'_>, ts: Timestamp, selector: Option<i64>) {
        let i = self.session(ids);
        let st = &mut self.sessions[i].state;
        st.notified.get_or_insert(ts);
        if let Some(sel) = selector {
            st.selector_pending = Some((ts, sel));
        }
    }

    /// A sync request (newsync or webwxsync) was sent.
    pub fn sync_request(&mut self, ids: Ids<'_>, ts: Timestamp) {
        let i = self.session(ids);
        let s = &mut self.sessions[i];
        if let Some(t0) = s.state.notified.take() {
            s.timings
                .notify_to_sync_ms
                .push(ts.nanos_since(&t0) as f64 / 1e6);
        }
    }

    /// A webwxsync answer: what it brought.
    pub fn sync_result(
        &mut self,
        ids: Ids<'_>,
        ts: Timestamp,
        conn: u64,
        brought: u64,
        msg_ids: &[String],
    ) {
        let i = self.session(ids);
        let s = &mut self.sessions[i];
        if let Some((t0, sel)) = s.state.selector_pending.take() {
            if brought == 0 {
                s.anomalies.push(Anomaly {
                    kind: "empty_sync_after_selector",
                    ts,
                    conn,
                    dir: Direction::ServerToClient,
                    packet: self.packet,
                    detail: format!(
                        "synccheck said selector {sel} {:.0} ms earlier, but the next webwxsync brought nothing",
                        ts.nanos_since(&t0) as f64 / 1e6
                    ),
                });
            }
        }
        let step = lifecycle::Step {
            ts,
            conn,
            packet: self.packet,
        };
        let (sessions, names) = (&self.sessions, &self.names);
        self.life
            .delivered(i, step, msg_ids, |a, b| same_user(sessions, names, a, b));
        let s = &mut self.sessions[i];
        for id in msg_ids {
            if !self.msg_ids.insert(i, id, ()) {
                s.anomalies.push(Anomaly {
                    kind: "duplicate_msgid",
                    ts,
                    conn,
                    dir: Direction::ServerToClient,
                    packet: self.packet,
                    detail: format!("MsgId {id} delivered again"),
                });
            }
        }
    }

    /// A long poll (synccheck) took this long.
    pub fn longpoll(&mut self, ids: Ids<'_>, started: Timestamp, answered: Timestamp) {
        let i = self.session(ids);
        self.sessions[i]
            .timings
            .longpoll_ms
            .push(answered.nanos_since(&started) as f64 / 1e6);
    }

    /// A message sent with a client id whose answer is still to come (long
    /// and short link): what it was ([`message_digest`]), for [`Self::sent`].
    pub fn sending(&mut self, conn: u64, client_msg_id: &str, what: u64) {
        self.sending.put(conn as usize, client_msg_id, what);
    }

    /// A message sent with a client id, what it was ([`message_digest`]:
    /// recipient, type and content; `None`: the request was not seen, or
    /// it was given to [`Self::sending`]), and the MsgID the server
    /// answered. The same ClientMsgId sent again for the same message is a
    /// resend (`client_msg_resend`); for another message, a collision
    /// (`client_msg_id_collision`: clients make the ids from a clock, and a
    /// server that takes it for a resend drops the message).
    pub fn sent(
        &mut self,
        ids: Ids<'_>,
        ts: Timestamp,
        conn: u64,
        client_msg_id: &str,
        what: Option<u64>,
        msg_id: Option<&str>,
    ) {
        let what = what.or_else(|| self.sending.get(conn as usize, client_msg_id).copied());
        let i = self.session(ids);
        let packet = self.packet;
        let anomaly = |kind, detail| Anomaly {
            kind,
            ts,
            conn,
            dir: Direction::ServerToClient,
            packet,
            detail,
        };
        let Some(prev) = self.client_msgs.get_mut(i, client_msg_id) else {
            self.client_msgs
                .insert(i, client_msg_id, vec![(what, msg_id.map(str::to_owned))]);
            return;
        };
        let unknown = what.is_none() || prev.iter().any(|(w, _)| w.is_none());
        let found = match prev.iter().find(|(w, _)| *w == what) {
            Some(p) => Some(p),
            // Cannot tell the messages apart: the latest.
            None if unknown => prev.last(),
            None => None,
        };
        let found = found.map(|(_, m)| m.clone());
        let name = |m: &Option<String>| m.clone().unwrap_or_else(|| "-".to_owned());
        let a = match found {
            Some(first) => anomaly(
                "client_msg_resend",
                format!(
                    "ClientMsgId {client_msg_id} sent again{}; {}",
                    if unknown { "" } else { " for the same message" },
                    if first.as_deref() == msg_id {
                        format!("answered with the same MsgID {}", name(&first))
                    } else {
                        format!(
                            "answered with a different MsgID ({} then {})",
                            name(&first),
                            msg_id.unwrap_or("-")
                        )
                    }
                ),
            ),
            None => {
                let first = prev.first().and_then(|(_, m)| m.clone());
                if prev.len() < MAX_SENDS_PER_ID {
                    prev.push((what, msg_id.map(str::to_owned)));
                }
                anomaly(
                    "client_msg_id_collision",
                    format!(
                        "ClientMsgId {client_msg_id} reused for another message (another \
                         recipient, type or content); {}",
                        if msg_id.is_some() && first.as_deref() == msg_id {
                            format!(
                                "answered with the first one's MsgID {}: taken for a resend, \
                                 so never delivered",
                                name(&first)
                            )
                        } else {
                            format!(
                                "answered with its own MsgID ({} then {})",
                                name(&first),
                                msg_id.unwrap_or("-")
                            )
                        }
                    ),
                )
            }
        };
        self.sessions[i].anomalies.push(a);
    }

    /// A send request seen (for the message lifecycles).
    pub fn life_send(&mut self, ids: Ids<'_>, ts: Timestamp, send: lifecycle::Send) {
        let i = self.session(ids);
        let step = self.step(ids, ts);
        self.life.sending(i, step, send);
    }

    /// A send's answer with the server's MsgId (for the lifecycles).
    pub fn life_ack(&mut self, ids: Ids<'_>, ts: Timestamp, send: lifecycle::Send, msg_id: &str) {
        let i = self.session(ids);
        let step = self.step(ids, ts);
        self.life.acknowledged(i, step, send, msg_id);
    }

    /// A read report: `reader` read the chat with `peer` up to MsgId
    /// `upto` (0: all).
    pub fn life_read(&mut self, ids: Ids<'_>, ts: Timestamp, reader: &str, peer: &str, upto: u64) {
        let i = self.session(ids);
        self.names.entry(i).or_insert_with(|| reader.to_owned());
        let step = self.step(ids, ts);
        self.life.read(i, step, reader, peer, upto);
    }

    /// The session of these ids is user `user` (a long-link identify).
    pub fn life_name(&mut self, ids: Ids<'_>, user: &str) {
        let i = self.session(ids);
        self.names.entry(i).or_insert_with(|| user.to_owned());
    }

    fn step(&self, ids: Ids<'_>, ts: Timestamp) -> lifecycle::Step {
        lifecycle::Step {
            ts,
            conn: ids.conn,
            packet: self.packet,
        }
    }

    /// Sessions with their transitions computed, in order of first appearance.
    pub fn finish(self) -> Vec<Session> {
        self.finish_all().0
    }

    /// The sessions ([`Self::finish`]) and the message lifecycles.
    pub fn finish_all(mut self) -> (Vec<Session>, Lifecycle) {
        let life = std::mem::take(&mut self.life);
        let (sessions, names) = (&self.sessions, &self.names);
        let lifecycle = life.finish(
            |i| session_label(sessions, names, i),
            |i| name_of(sessions, names, i),
        );
        for s in &mut self.sessions {
            // What tracking needed (issued keys, the recent-id windows) is
            // not part of the result.
            s.state = State::default();
            s.transitions = s
                .observations
                .windows(2)
                .enumerate()
                .filter_map(|(i, w)| {
                    let changed = diff(&w[0].keys, &w[1].keys);
                    (!changed.is_empty()).then_some(Transition {
                        from: i,
                        to: i + 1,
                        changed,
                    })
                })
                .collect();
        }
        self.sessions
            .retain(|s| !s.observations.is_empty() || !s.anomalies.is_empty());
        (self.sessions, lifecycle)
    }
}

/// A session's user name: the one its messages named, or its traffic's.
fn name_of(sessions: &[Session], names: &HashMap<usize, String>, i: usize) -> Option<String> {
    names
        .get(&i)
        .cloned()
        .or_else(|| sessions.get(i).and_then(|s| s.user.clone()))
}

/// Whether two sessions are one user's (the same uin or user name).
fn same_user(sessions: &[Session], names: &HashMap<usize, String>, a: usize, b: usize) -> bool {
    let uin = |i: usize| sessions.get(i).and_then(|s| s.uin);
    if let (Some(x), Some(y)) = (uin(a), uin(b)) {
        return x == y;
    }
    matches!((name_of(sessions, names, a), name_of(sessions, names, b)), (Some(x), Some(y)) if x == y)
}

/// How lifecycles name a session: `user/device`, `uin N/device`, `sid S`.
fn session_label(sessions: &[Session], names: &HashMap<usize, String>, i: usize) -> String {
    let Some(s) = sessions.get(i) else {
        return format!("session {i}");
    };
    let who = name_of(sessions, names, i)
        .or_else(|| s.uin.map(|u| format!("uin {u}")))
        .or_else(|| s.sid.as_ref().map(|x| format!("sid {x}")))
        .unwrap_or_else(|| format!("session {i}"));
    match &s.device {
        Some(d) => format!("{who}/{d}"),
        None => who,
    }
}

#[cfg(test)]
mod tests;
