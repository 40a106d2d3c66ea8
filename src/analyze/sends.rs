//! Sends on the long and the short link, for the timeline's
//! `client_msg_resend` and `client_msg_id_collision`: a newsendmsg
//! request's messages (each ClientMsgId and what the message is, recipient,
//! type and content) and its answer's MsgIDs; and who a plain short-link
//! request is (`?user=`, `?uin=`, or the `mmsid` cookie an accepted
//! manualauth or autoauth set, whose answer names the uin).

use prost::Message as _;

use super::{Analyzer, FrameRecord};
use crate::body::messages::{
    AutoAuthRequest, AutoAuthResponse, ManualAuthRequest, ManualAuthResponse, NewSendMsgRequest,
    NewSendMsgResponse,
};
use crate::capture::Timestamp;
use crate::proto::http;
use crate::proto::web;
use crate::track::synckey::{message_digest, Ids};

/// What a newsendmsg body tells the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendFacts {
    /// A request: each message's ClientMsgId and [`message_digest`].
    Request(Vec<(String, u64)>),
    /// An answer: each message's ClientMsgId and the MsgID it got.
    Response(Vec<(String, Option<String>)>),
}

/// The facts of a plain-protobuf newsendmsg body (`None`: not one, or no
/// message with a ClientMsgId).
pub fn newsendmsg_facts(body: &[u8], is_response: bool) -> Option<SendFacts> {
    let cid = |c: Option<u64>| c.filter(|&c| c != 0).map(|c| c.to_string());
    let facts = if is_response {
        let r = NewSendMsgResponse::decode(body).ok()?;
        SendFacts::Response(
            r.list
                .iter()
                .filter_map(|m| {
                    let id = m
                        .new_msg_id
                        .filter(|&n| n != 0)
                        .or(m.msg_id.map(u64::from).filter(|&n| n != 0));
                    Some((cid(m.client_msg_id)?, id.map(|n| n.to_string())))
                })
                .collect(),
        )
    } else {
        let r = NewSendMsgRequest::decode(body).ok()?;
        SendFacts::Request(
            r.list
                .iter()
                .filter_map(|m| {
                    let to = m.to_user_name.as_ref().and_then(|s| s.string.as_deref());
                    let what = message_digest(
                        to.unwrap_or(""),
                        u64::from(m.msg_type.unwrap_or(0)),
                        m.content.as_deref().unwrap_or(""),
                    );
                    Some((cid(m.client_msg_id)?, what))
                })
                .collect(),
        )
    };
    match &facts {
        SendFacts::Request(v) if v.is_empty() => None,
        SendFacts::Response(v) if v.is_empty() => None,
        _ => Some(facts),
    }
}

/// An accepted plain-protobuf manualauth or autoauth: the uin its answer
/// gives and the device its request names.
pub fn auth_facts(cgi: &str, request: &[u8], response: &[u8]) -> Option<(u64, Option<String>)> {
    let (uin, device) = match cgi {
        "manualauth" => (
            ManualAuthResponse::decode(response).ok()?.uin,
            ManualAuthRequest::decode(request).ok()?.device_id,
        ),
        "autoauth" => (
            AutoAuthResponse::decode(response).ok()?.uin,
            AutoAuthRequest::decode(request).ok()?.device_id,
        ),
        _ => return None,
    };
    let uin = uin.filter(|&u| u != 0)?;
    Some((u64::from(uin), device.filter(|d| !d.is_empty())))
}

/// Who a plain short-link request is, from its query string and cookies:
/// (uin, user name, session cookie).
pub fn short_link_ids(
    query: &str,
    cookie: Option<&str>,
) -> (Option<u64>, Option<String>, Option<String>) {
    let params = web::parse_query(query);
    let uin = params.get("uin").and_then(|u| u.parse().ok());
    let user = params.get("user").filter(|u| !u.is_empty()).cloned();
    let session = cookie
        .and_then(|c| web::cookie(c, SESSION_COOKIE))
        .map(str::to_owned)
        .or_else(|| params.get(SESSION_COOKIE).cloned())
        .filter(|s| !s.is_empty());
    (uin, user, session)
}

/// The reference server's short-link session cookie.
const SESSION_COOKIE: &str = "mmsid";

impl<F: FnMut(&FrameRecord)> Analyzer<'_, F> {
    /// A newsendmsg's facts on the timeline: a request's messages wait for
    /// their answer, an answer's are sends.
    pub(super) fn send_facts(&mut self, ids: Ids<'_>, ts: Timestamp, facts: &SendFacts) {
        match facts {
            SendFacts::Request(list) => {
                let (conn, list) = (ids.conn, list.clone());
                self.shared(move |g| {
                    for (cid, what) in &list {
                        g.timeline.sending(conn, cid, *what);
                    }
                });
            }
            SendFacts::Response(list) => {
                let (ids, list) = (ids.owned(), list.clone());
                self.shared(move |g| {
                    for (cid, msg_id) in &list {
                        g.timeline
                            .sent(ids.ids(), ts, ids.conn, cid, None, msg_id.as_deref());
                    }
                });
            }
        }
    }

    /// A plain-protobuf short-link exchange (the reference server's): its
    /// user ties to the timeline, its newsync SyncKeys and its sends go on
    /// it. `cgi` is the path's last segment.
    pub(super) fn plain_short_link(
        &mut self,
        conn: u64,
        cgi: &str,
        query: &str,
        request: Option<&http::Message>,
        rs: &http::Message,
    ) {
        let cookie = request.and_then(|r| r.header_str("cookie"));
        let (uin, user, session) = short_link_ids(query, cookie);
        let ids = Ids {
            uin,
            sid: session.as_deref(),
            user: user.as_deref(),
            device: None,
            conn,
        };
        match cgi {
            "newsync" => self.plain_short_newsync(ids, request, rs),
            "newsendmsg" => {
                if let Some(f) = request.and_then(|r| newsendmsg_facts(&r.body, false)) {
                    self.send_facts(ids, request.map_or(rs.ts_first, |r| r.ts_last), &f);
                }
                if let Some(f) = newsendmsg_facts(&rs.body, true) {
                    self.send_facts(ids, rs.ts_last, &f);
                }
            }
            "manualauth" | "autoauth" => {
                let set = rs
                    .headers
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
                    .filter_map(|(_, v)| std::str::from_utf8(v).ok())
                    .find_map(|c| web::cookie(c.split(';').next().unwrap_or(""), SESSION_COOKIE))
                    .map(str::to_owned);
                let auth = request.and_then(|r| auth_facts(cgi, &r.body, &rs.body));
                if let (Some((uin, device)), Some(sid)) = (auth, set) {
                    self.shared(move |g| {
                        g.timeline.link(Ids {
                            uin: Some(uin),
                            sid: Some(&sid),
                            user: None,
                            device: device.as_deref(),
                            conn,
                        })
                    });
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::messages::{MicroMsgRequestNew, MicroMsgResponseNew, SkBuiltinString};

    #[test]
    fn newsendmsg_requests_and_answers() {
        let item = |to: &str, text: &str, cid| MicroMsgRequestNew {
            to_user_name: Some(SkBuiltinString::new(to)),
            content: Some(text.into()),
            msg_type: Some(1),
            create_time: Some(1),
            client_msg_id: Some(cid),
        };
        let req = NewSendMsgRequest {
            count: Some(3),
            list: vec![
                item("bob", "hi", 7),
                item("bob", "hi", 0),
                item("carol", "hi", 7),
            ],
        };
        let Some(SendFacts::Request(v)) = newsendmsg_facts(&req.encode_to_vec(), false) else {
            panic!("a request's facts");
        };
        assert_eq!(v.len(), 2, "no ClientMsgId, no fact");
        assert_eq!((v[0].0.as_str(), v[1].0.as_str()), ("7", "7"));
        assert_ne!(v[0].1, v[1].1, "another recipient, another message");
        let resp = NewSendMsgResponse {
            base_response: None,
            count: Some(1),
            list: vec![MicroMsgResponseNew {
                ret: Some(0),
                to_user_name: None,
                msg_id: Some(5),
                client_msg_id: Some(7),
                create_time: None,
                server_time: None,
                msg_type: None,
                new_msg_id: Some(5_000_000_000),
            }],
        };
        assert_eq!(
            newsendmsg_facts(&resp.encode_to_vec(), true),
            Some(SendFacts::Response(vec![(
                "7".into(),
                Some("5000000000".into())
            )]))
        );
        assert_eq!(newsendmsg_facts(b"\xff\xff", false), None);
    }

    #[test]
    fn short_link_ids_from_the_query_and_the_cookie() {
        assert_eq!(
            short_link_ids("user=alice&device=d", None),
            (None, Some("alice".into()), None)
        );
        assert_eq!(
            short_link_ids("uin=7", Some("x=1; mmsid=ab12")),
            (Some(7), None, Some("ab12".into()))
        );
        assert_eq!(short_link_ids("", None), (None, None, None));
    }
}
