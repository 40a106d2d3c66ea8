//! The SyncKey timeline: per session (a user: uin, or sid on the web, across
//! all its connections, binary and web alike) every SyncKey observation,
//! the transitions between them, and the anomalies they show.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;

use serde::Serialize;

use crate::capture::Timestamp;
use crate::flow::Direction;

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
    /// The device, when the event names one (a long-link identify): a
    /// user's devices keep their own SyncKeys, so each is a session.
    pub device: Option<&'a str>,
    pub conn: u64,
}

/// All sessions of a capture.
#[derive(Debug, Default)]
pub struct Timeline {
    sessions: Vec<Session>,
    by_uin: HashMap<u64, usize>,
    by_device: HashMap<(u64, String), usize>,
    by_sid: HashMap<String, usize>,
    by_conn: HashMap<u64, usize>,
    /// MsgIds delivered lately (a redelivery comes soon after the first).
    msg_ids: Recent<()>,
    /// ClientMsgIds sent lately, with the MsgID the server answered.
    client_msgs: Recent<Option<String>>,
    /// The packet being processed ([`Timeline::at_packet`]).
    packet: Option<u64>,
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
        if device.is_some() {
            self.by_conn.insert(ids.conn, i);
        } else {
            self.by_conn.entry(ids.conn).or_insert(i);
        }
        i
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

    /// A message sent with a client id, and the MsgID the server answered.
    pub fn sent(
        &mut self,
        ids: Ids<'_>,
        ts: Timestamp,
        conn: u64,
        client_msg_id: &str,
        msg_id: Option<&str>,
    ) {
        let i = self.session(ids);
        let s = &mut self.sessions[i];
        match self.client_msgs.get(i, client_msg_id) {
            Some(prev) => {
                let same = prev.as_deref() == msg_id;
                s.anomalies.push(Anomaly {
                    kind: "client_msg_resend",
                    ts,
                    conn,
                    dir: Direction::ServerToClient,
                    packet: self.packet,
                    detail: format!(
                        "ClientMsgId {client_msg_id} sent again; {}",
                        if same {
                            format!("answered with the same MsgID {}", msg_id.unwrap_or("-"))
                        } else {
                            format!(
                                "answered with a different MsgID ({} then {})",
                                prev.as_deref().unwrap_or("-"),
                                msg_id.unwrap_or("-")
                            )
                        }
                    ),
                });
            }
            None => {
                self.client_msgs
                    .insert(i, client_msg_id, msg_id.map(str::to_owned));
            }
        }
    }

    /// Sessions with their transitions computed, in order of first appearance.
    pub fn finish(mut self) -> Vec<Session> {
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
        self.sessions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::new(s, 0, 6)
    }

    fn obs(s: i64, conn: u64, source: Source, message: &str, keys: &[(u32, u64)]) -> Observation {
        Observation {
            ts: t(s),
            conn,
            dir: if source == Source::ServerIssued {
                Direction::ServerToClient
            } else {
                Direction::ClientToServer
            },
            source,
            message: message.parse().expect("a known message"),
            keys: keys.iter().copied().collect(),
            packet: None,
        }
    }

    #[test]
    fn messages_round_trip_their_names() {
        for m in Message::ALL {
            assert_eq!(m.as_str().parse::<Message>(), Ok(m));
            assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
        }
        assert_eq!(
            serde_json::to_string(&Message::WebwxsyncResponseSyncCheckKey).unwrap(),
            r#""webwxsync_response.SyncCheckKey""#
        );
        assert!("longlink_identify".parse::<Message>().is_err());
    }

    #[test]
    fn each_device_of_a_user_is_its_own_session() {
        let mut tl = Timeline::new();
        let ids = |device, conn| Ids {
            uin: Some(5),
            sid: None,
            device,
            conn,
        };
        // An event without a device first (a short-link newsync), then the
        // phone's identify claims that session; the pad gets its own.
        tl.observe(
            ids(None, 1),
            obs(1, 1, Source::ServerIssued, "newsync_response", &[(2, 3)]),
            false,
        );
        tl.observe(
            ids(Some("phone"), 2),
            obs(2, 2, Source::ClientPresented, "identify", &[(2, 3)]),
            false,
        );
        tl.observe(
            ids(Some("pad"), 3),
            obs(3, 3, Source::ClientPresented, "identify", &[(2, 0)]),
            false,
        );
        // Later frames of the pad's connection name no device.
        let later = Ids {
            uin: None,
            sid: None,
            device: None,
            conn: 3,
        };
        tl.observe(
            later,
            obs(4, 3, Source::ServerIssued, "newsync_response", &[(2, 1)]),
            false,
        );
        let s = tl.finish();
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(s[0].device.as_deref(), Some("phone"));
        assert_eq!(s[0].observations.len(), 2);
        assert_eq!(s[1].device.as_deref(), Some("pad"));
        assert_eq!(s[1].observations.len(), 2);
        // The pad's older key is not stale against the phone's.
        assert!(s.iter().all(|x| x.anomalies.is_empty()), "{s:?}");
    }

    #[test]
    fn binary_and_web_flows_of_one_uin_share_a_timeline() {
        let mut tl = Timeline::new();
        let web = Ids {
            uin: Some(7),
            sid: Some("S"),
            device: None,
            conn: 3,
        };
        tl.start(web);
        tl.observe(
            web,
            obs(1, 3, Source::ServerIssued, "webwxinit", &[(1, 10), (2, 20)]),
            false,
        );
        tl.observe(
            Ids {
                uin: None,
                sid: Some("S"),
                device: None,
                conn: 4,
            },
            obs(
                2,
                4,
                Source::ClientPresented,
                "webwxsync_request",
                &[(1, 10), (2, 20)],
            ),
            false,
        );
        tl.observe(
            Ids {
                uin: Some(7),
                sid: None,
                device: None,
                conn: 9,
            },
            obs(
                3,
                9,
                Source::ServerIssued,
                "newsync_response",
                &[(1, 12), (2, 20)],
            ),
            false,
        );
        let s = tl.finish();
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].uin, s[0].sid.as_deref()), (Some(7), Some("S")));
        assert_eq!(s[0].observations.len(), 3);
        assert_eq!(s[0].transitions.len(), 1);
        let tr = &s[0].transitions[0];
        assert_eq!((tr.from, tr.to), (1, 2));
        assert_eq!(
            tr.changed[&1],
            Change {
                from: Some(10),
                to: Some(12),
                delta: Some(2)
            }
        );
        assert!(s[0].anomalies.is_empty(), "{:?}", s[0].anomalies);
    }

    #[test]
    fn regression_stale_never_issued_and_synccheck_mismatch() {
        let mut tl = Timeline::new();
        let ids = Ids {
            uin: Some(1),
            sid: Some("S"),
            device: None,
            conn: 0,
        };
        tl.start(ids);
        tl.observe(
            ids,
            obs(1, 0, Source::ServerIssued, "webwxinit", &[(1, 10), (2, 20)]),
            false,
        );
        tl.observe(
            ids,
            obs(
                2,
                0,
                Source::ServerIssued,
                "webwxsync_response",
                &[(1, 11), (2, 21)],
            ),
            false,
        );
        tl.observe(
            ids,
            obs(
                3,
                0,
                Source::ClientPresented,
                "webwxsync_request",
                &[(1, 10), (2, 20)],
            ),
            false,
        );
        tl.observe(
            ids,
            obs(
                4,
                0,
                Source::ClientPresented,
                "webwxsync_request",
                &[(1, 99), (2, 21)],
            ),
            false,
        );
        tl.observe(
            ids,
            obs(
                5,
                0,
                Source::ServerIssued,
                "webwxsync_response",
                &[(1, 12), (2, 19)],
            ),
            false,
        );
        tl.observe(
            ids,
            obs(
                6,
                0,
                Source::SynccheckParam,
                "synccheck",
                &[(1, 11), (2, 21)],
            ),
            false,
        );
        let s = tl.finish();
        let kinds: Vec<(&str, i64)> = s[0].anomalies.iter().map(|a| (a.kind, a.ts.secs)).collect();
        assert_eq!(
            kinds,
            [
                ("stale_key", 3),
                ("never_issued", 4),
                ("key_regression", 5),
                ("synccheck_mismatch", 6)
            ]
        );
        assert!(
            s[0].anomalies[2].detail.contains("2: 21 -> 19"),
            "{}",
            s[0].anomalies[2].detail
        );
    }

    #[test]
    fn selectors_messages_resends_and_timings() {
        let mut tl = Timeline::new();
        let ids = Ids {
            uin: Some(1),
            sid: None,
            device: None,
            conn: 0,
        };
        tl.notified(ids, t(10), Some(2));
        tl.sync_request(ids, t(11));
        tl.sync_result(ids, t(12), 0, 0, &[]);
        tl.sync_result(ids, t(13), 0, 2, &["a".into(), "b".into()]);
        tl.sync_result(ids, t(14), 0, 1, &["b".into()]);
        tl.sent(ids, t(15), 0, "c1", Some("m1"));
        tl.sent(ids, t(16), 0, "c1", Some("m1"));
        tl.sent(ids, t(17), 0, "c2", Some("m2"));
        tl.sent(ids, t(18), 0, "c2", Some("m3"));
        tl.longpoll(ids, t(20), t(45));
        let s = tl.finish();
        let kinds: Vec<&str> = s[0].anomalies.iter().map(|a| a.kind).collect();
        assert_eq!(
            kinds,
            [
                "empty_sync_after_selector",
                "duplicate_msgid",
                "client_msg_resend",
                "client_msg_resend"
            ]
        );
        assert!(s[0].anomalies[2].detail.contains("same MsgID m1"));
        assert!(s[0].anomalies[3]
            .detail
            .contains("different MsgID (m2 then m3)"));
        assert_eq!(s[0].timings.notify_to_sync_ms, [1000.0]);
        assert_eq!(s[0].timings.longpoll_ms, [25000.0]);
    }

    #[test]
    fn recent_ids_forget_the_oldest_beyond_the_window() {
        let mut r: Recent<u32> = Recent::default();
        assert!(r.insert(0, "a", 1));
        assert!(!r.insert(0, "a", 2), "already there");
        assert!(r.insert(1, "a", 5), "another session's id is another id");
        assert_eq!(r.get(0, "a"), Some(&1));
        for i in 0..RECENT_IDS - 2 {
            assert!(r.insert(2, &i.to_string(), 0));
        }
        assert_eq!(r.get(0, "a"), Some(&1), "still inside the window");
        assert!(r.insert(2, "one more", 0));
        assert_eq!(r.get(0, "a"), None, "the oldest is forgotten");
        assert_eq!(r.get(1, "a"), Some(&5));
        assert_eq!((r.map.len(), r.order.len()), (RECENT_IDS, RECENT_IDS));
        assert!(r.insert(0, "a", 3), "a forgotten id counts as new");
    }
}
