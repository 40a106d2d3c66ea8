//! Message lifecycles: each message a capture shows being sent, followed
//! through its steps, WhatsApp's ticks on the wire:
//!
//! * **sent**: the sender's send request (newsendmsg, the uploadmsgimg
//!   part answered with the MsgId, the uploadvoice chunk with EndFlag 1,
//!   webwxsendmsg), on any link;
//! * **acknowledged**: the server's answer to it, naming the server's MsgId;
//! * **delivered**, per device: the sync answer (newsync on the long or
//!   short link, webwxsync) that carries the MsgId to a session other than
//!   the sender's;
//! * **read**: a read report (statusnotify or webwxstatusnotify Code 1,
//!   "the chat with PEER is read up to MsgId N") of the recipient.
//!
//! Sends are matched to their answer by sender and ClientMsgId (or
//! ClientImgId), later steps by the server's MsgId, across connections,
//! devices and layers. A message whose later steps are not in the capture
//! stays listed, with what it lacks counted. Memory is bounded: the first
//! [`MAX_MESSAGES`] messages are followed, later ones only counted.

use std::collections::HashMap;

use serde::Serialize;

use crate::capture::Timestamp;
use crate::track::pairing::{Latency, LatencyTable};

/// Messages followed per capture; later sends are counted in
/// [`Lifecycle::untracked`].
pub const MAX_MESSAGES: usize = 1 << 16;

/// Devices a message's deliveries are listed for (more are counted).
const MAX_DELIVERIES: usize = 64;

/// What kind of message was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MsgKind {
    Text,
    Image,
    Voice,
}

impl MsgKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MsgKind::Text => "text",
            MsgKind::Image => "image",
            MsgKind::Voice => "voice",
        }
    }
}

/// The link a send went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    Longlink,
    Shortlink,
    Web,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Longlink => "longlink",
            Via::Shortlink => "shortlink",
            Via::Web => "web",
        }
    }
}

/// A send request as the analyzer found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    /// ClientMsgId (ClientImgId for an image).
    pub client_id: String,
    pub kind: MsgKind,
    pub via: Via,
    /// The sender's user name, when the request names it.
    pub from: Option<String>,
    /// The recipient's user name.
    pub to: Option<String>,
}

/// One step: when, on which connection, in which packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Step {
    pub ts: Timestamp,
    pub conn: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packet: Option<u64>,
}

/// A step on a device (delivered to it, read on it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceStep {
    /// The session: `user/device`, `uin N/device`, or the web `sid`.
    pub device: String,
    pub ts: Timestamp,
    pub conn: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packet: Option<u64>,
    /// Milliseconds since the step before (acknowledged, or delivered
    /// for a read), when it is in the capture.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_ms: Option<f64>,
}

/// How far a message got in the capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reached {
    /// Sent, never answered in the capture.
    Sent,
    /// Answered with a MsgId, delivered to no other device in the capture.
    Acknowledged,
    /// Delivered to at least one device, no read report.
    Delivered,
    Read,
}

impl Reached {
    pub fn as_str(self) -> &'static str {
        match self {
            Reached::Sent => "sent",
            Reached::Acknowledged => "acknowledged",
            Reached::Delivered => "delivered",
            Reached::Read => "read",
        }
    }
}

/// One message's lifecycle.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageLife {
    pub client_id: String,
    /// The server's MsgId, once acknowledged.
    pub msg_id: Option<String>,
    pub kind: MsgKind,
    pub via: Via,
    /// The sender's session (see [`DeviceStep::device`]).
    pub sender: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The send request (absent: only its answer is in the capture).
    pub sent: Option<Step>,
    pub acknowledged: Option<Step>,
    /// Milliseconds from the send request to its answer.
    pub ack_ms: Option<f64>,
    /// Each device it was delivered to, first delivery only, in order.
    pub delivered: Vec<DeviceStep>,
    /// Deliveries past the ones listed.
    #[serde(skip_serializing_if = "is_zero")]
    pub delivered_omitted: u64,
    pub read: Option<DeviceStep>,
    pub reached: Reached,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Latency of one step over all messages, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepLatency {
    /// `sent->acknowledged`, `acknowledged->delivered` (every device),
    /// `delivered->read`, `sent->read`.
    pub step: &'static str,
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Messages by how far they got.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reach {
    pub messages: u64,
    /// Sent and never acknowledged in the capture.
    pub never_acknowledged: u64,
    /// Acknowledged, delivered to no device in the capture.
    pub never_delivered: u64,
    /// Delivered, never reported read.
    pub never_read: u64,
    pub read: u64,
    /// Acknowledged without the send request in the capture.
    pub request_missing: u64,
}

/// Every message's lifecycle, and figures over them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Lifecycle {
    pub reach: Reach,
    pub latency: Vec<StepLatency>,
    pub messages: Vec<MessageLife>,
    /// Sends past [`MAX_MESSAGES`], counted only.
    pub untracked: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    client_id: String,
    msg_id: Option<String>,
    kind: MsgKind,
    via: Via,
    session: usize,
    from: Option<String>,
    to: Option<String>,
    sent: Option<Step>,
    acked: Option<Step>,
    delivered: Vec<(usize, Step)>,
    delivered_omitted: u64,
    read: Option<(usize, Step)>,
}

/// The tracker the SyncKey timeline drives; sessions are its indexes.
#[derive(Debug, Default)]
pub struct Tracker {
    entries: Vec<Entry>,
    by_client: HashMap<(usize, String), usize>,
    by_msg_id: HashMap<String, usize>,
    untracked: u64,
}

fn ms(later: &Timestamp, earlier: &Timestamp) -> f64 {
    later.nanos_since(earlier) as f64 / 1e6
}

impl Tracker {
    /// A send request of `session`.
    pub fn sending(&mut self, session: usize, step: Step, send: Send) {
        if let Some(&i) = self.by_client.get(&(session, send.client_id.clone())) {
            // A resend: the first request is when it was sent.
            let e = &mut self.entries[i];
            e.sent.get_or_insert(step);
            e.from = e.from.take().or(send.from);
            e.to = e.to.take().or(send.to);
            return;
        }
        self.add(session, Some(step), send);
    }

    fn add(&mut self, session: usize, sent: Option<Step>, send: Send) -> Option<usize> {
        if self.entries.len() >= MAX_MESSAGES {
            self.untracked += 1;
            return None;
        }
        let i = self.entries.len();
        self.by_client.insert((session, send.client_id.clone()), i);
        self.entries.push(Entry {
            client_id: send.client_id,
            msg_id: None,
            kind: send.kind,
            via: send.via,
            session,
            from: send.from,
            to: send.to,
            sent,
            acked: None,
            delivered: Vec::new(),
            delivered_omitted: 0,
            read: None,
        });
        Some(i)
    }

    /// The server's answer to a send of `session`: the MsgId it got.
    /// `send` describes the message when its request was not seen.
    pub fn acknowledged(&mut self, session: usize, step: Step, send: Send, msg_id: &str) {
        let i = match self.by_client.get(&(session, send.client_id.clone())) {
            Some(&i) => i,
            None => match self.add(session, None, send) {
                Some(i) => i,
                None => return,
            },
        };
        let e = &mut self.entries[i];
        if e.acked.is_none() {
            e.acked = Some(step);
            e.msg_id = Some(msg_id.to_owned());
            self.by_msg_id.entry(msg_id.to_owned()).or_insert(i);
        }
    }

    /// A sync answer to `session` carried these MsgIds. `same_user`: whether
    /// a session is the sender's user (its own devices get copies, which
    /// are not deliveries).
    pub fn delivered(
        &mut self,
        session: usize,
        step: Step,
        msg_ids: &[String],
        same_user: impl Fn(usize, usize) -> bool,
    ) {
        for id in msg_ids {
            let Some(&i) = self.by_msg_id.get(id) else {
                continue;
            };
            let e = &mut self.entries[i];
            if e.session == session
                || same_user(e.session, session)
                || e.delivered.iter().any(|(s, _)| *s == session)
            {
                continue;
            }
            if e.delivered.len() < MAX_DELIVERIES {
                e.delivered.push((session, step));
            } else {
                e.delivered_omitted += 1;
            }
        }
    }

    /// A read report of `session` (user `reader`): the chat with `peer`
    /// is read up to MsgId `upto` (0: all). Each acknowledged message of
    /// `peer` (or of an unnamed sender) to `reader` it covers is read.
    pub fn read(&mut self, session: usize, step: Step, reader: &str, peer: &str, upto: u64) {
        for e in &mut self.entries {
            let covered = e.read.is_none()
                && e.acked.is_some_and(|a| a.ts <= step.ts)
                && e.to.as_deref() == Some(reader)
                && e.from.as_deref().is_none_or(|f| f == peer)
                && (upto == 0
                    || e.msg_id
                        .as_deref()
                        .and_then(|m| m.parse::<u64>().ok())
                        .is_some_and(|m| m <= upto));
            if covered {
                e.read = Some((session, step));
            }
        }
    }

    /// The senders' names a session is known by (`names`), the session's
    /// label (`label`): the lifecycles and their figures.
    pub fn finish(
        self,
        label: impl Fn(usize) -> String,
        name: impl Fn(usize) -> Option<String>,
    ) -> Lifecycle {
        let mut lat: LatencyTable<&'static str> = LatencyTable::default();
        let mut reach = Reach::default();
        let us = |ms: f64| (ms.max(0.0) * 1000.0).round() as u64;
        let mut messages = Vec::with_capacity(self.entries.len());
        for e in self.entries {
            let ack_ms = e.sent.zip(e.acked).map(|(s, a)| ms(&a.ts, &s.ts));
            if let Some(m) = ack_ms {
                lat.add("1 sent->acknowledged", us(m));
            }
            let delivered: Vec<DeviceStep> = e
                .delivered
                .iter()
                .map(|(s, st)| {
                    let after = e.acked.map(|a| ms(&st.ts, &a.ts));
                    if let Some(m) = after {
                        lat.add("2 acknowledged->delivered", us(m));
                    }
                    DeviceStep {
                        device: label(*s),
                        ts: st.ts,
                        conn: st.conn,
                        packet: st.packet,
                        after_ms: after,
                    }
                })
                .collect();
            let read = e.read.map(|(s, st)| {
                // Since its delivery to the reader's device, or else the first.
                let before = e
                    .delivered
                    .iter()
                    .find(|(d, _)| *d == s)
                    .or(e.delivered.first())
                    .map(|(_, d)| d.ts);
                let after = before.map(|b| ms(&st.ts, &b));
                if let Some(m) = after {
                    lat.add("3 delivered->read", us(m));
                }
                if let Some(sent) = e.sent {
                    lat.add("4 sent->read", us(ms(&st.ts, &sent.ts)));
                }
                DeviceStep {
                    device: label(s),
                    ts: st.ts,
                    conn: st.conn,
                    packet: st.packet,
                    after_ms: after,
                }
            });
            let reached = if read.is_some() {
                Reached::Read
            } else if !delivered.is_empty() {
                Reached::Delivered
            } else if e.acked.is_some() {
                Reached::Acknowledged
            } else {
                Reached::Sent
            };
            reach.messages += 1;
            match reached {
                Reached::Sent => reach.never_acknowledged += 1,
                Reached::Acknowledged => reach.never_delivered += 1,
                Reached::Delivered => reach.never_read += 1,
                Reached::Read => reach.read += 1,
            }
            if e.sent.is_none() {
                reach.request_missing += 1;
            }
            messages.push(MessageLife {
                client_id: e.client_id,
                msg_id: e.msg_id,
                kind: e.kind,
                via: e.via,
                sender: label(e.session),
                from: e.from.or_else(|| name(e.session)),
                to: e.to,
                sent: e.sent,
                acknowledged: e.acked,
                ack_ms,
                delivered,
                delivered_omitted: e.delivered_omitted,
                read,
                reached,
            });
        }
        let latency = lat
            .figures()
            .into_iter()
            .map(|(step, l)| step_latency(step.get(2..).unwrap_or(step), &l))
            .collect();
        Lifecycle {
            reach,
            latency,
            messages,
            untracked: self.untracked,
        }
    }
}

fn step_latency(step: &'static str, l: &Latency) -> StepLatency {
    let ms = |us: u64| us as f64 / 1000.0;
    StepLatency {
        step,
        count: l.count,
        p50_ms: ms(l.p50_us),
        p90_ms: ms(l.p90_us),
        p99_ms: ms(l.p99_us),
        max_ms: ms(l.max_us),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64, conn: u64) -> Step {
        Step {
            ts: Timestamp::new(1000 + ms / 1000, ((ms % 1000) * 1_000_000) as u32, 6),
            conn,
            packet: None,
        }
    }

    fn text(cid: &str, to: &str) -> Send {
        Send {
            client_id: cid.into(),
            kind: MsgKind::Text,
            via: Via::Longlink,
            from: Some("alice".into()),
            to: Some(to.into()),
        }
    }

    #[test]
    fn steps_latencies_and_what_is_missing() {
        let mut t = Tracker::default();
        // Session 0 alice sends two; session 1 and 2 are bob's devices.
        t.sending(0, at(0, 1), text("c1", "bob"));
        t.sending(0, at(5, 1), text("c1", "bob")); // a resend
        t.acknowledged(0, at(10, 1), text("c1", "bob"), "41");
        t.sending(0, at(20, 1), text("c2", "carol"));
        t.acknowledged(0, at(30, 1), text("c2", "carol"), "42");
        t.sending(0, at(40, 1), text("c3", "bob")); // never answered
        let same = |a: usize, b: usize| a == 0 && b == 3;
        t.delivered(1, at(50, 2), &["41".into(), "99".into()], same);
        t.delivered(3, at(55, 5), &["41".into()], same); // alice's other device
        t.delivered(2, at(100, 3), &["41".into()], same);
        t.delivered(2, at(110, 3), &["41".into()], same); // again: the first counts
        t.read(2, at(200, 4), "bob", "alice", 41);
        t.read(2, at(300, 4), "bob", "alice", 0); // already read
        let l = t.finish(|s| format!("s{s}"), |_| None);
        assert_eq!(l.messages.len(), 3);
        let m = &l.messages[0];
        assert_eq!(m.reached, Reached::Read);
        assert_eq!(m.sent.unwrap().ts, at(0, 1).ts, "the first request");
        assert_eq!(m.ack_ms, Some(10.0));
        let devs: Vec<_> = m.delivered.iter().map(|d| d.device.as_str()).collect();
        assert_eq!(devs, ["s1", "s2"], "not the sender's own device");
        assert_eq!(m.delivered[1].after_ms, Some(90.0));
        let r = m.read.as_ref().unwrap();
        assert_eq!((r.device.as_str(), r.after_ms), ("s2", Some(100.0)));
        assert_eq!(l.messages[1].reached, Reached::Acknowledged);
        assert_eq!(l.messages[2].reached, Reached::Sent);
        assert_eq!(
            (
                l.reach.read,
                l.reach.never_delivered,
                l.reach.never_acknowledged
            ),
            (1, 1, 1)
        );
        let steps: Vec<_> = l.latency.iter().map(|s| (s.step, s.count)).collect();
        assert_eq!(
            steps,
            [
                ("sent->acknowledged", 2),
                ("acknowledged->delivered", 2),
                ("delivered->read", 1),
                ("sent->read", 1)
            ]
        );
        assert_eq!(l.latency[1].p50_ms, 40.0);
        assert_eq!(l.latency[1].max_ms, 90.0);
    }

    #[test]
    fn read_reports_cover_only_their_chat_and_range() {
        let mut t = Tracker::default();
        t.acknowledged(0, at(0, 1), text("a", "bob"), "5");
        t.acknowledged(0, at(0, 1), text("b", "bob"), "9");
        t.acknowledged(0, at(0, 1), text("c", "carol"), "6");
        t.read(1, at(10, 2), "bob", "mallory", 0);
        t.read(1, at(10, 2), "bob", "alice", 7);
        let l = t.finish(|s| format!("s{s}"), |_| None);
        let r: Vec<_> = l.messages.iter().map(|m| m.reached).collect();
        assert_eq!(
            r,
            [Reached::Read, Reached::Acknowledged, Reached::Acknowledged]
        );
        assert_eq!(l.reach.request_missing, 3);
    }

    #[test]
    fn bounded() {
        let mut t = Tracker::default();
        for n in 0..MAX_MESSAGES + 3 {
            t.sending(0, at(0, 1), text(&n.to_string(), "bob"));
        }
        assert_eq!(t.entries.len(), MAX_MESSAGES);
        assert_eq!(t.untracked, 3);
    }
}
