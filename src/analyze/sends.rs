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
    NewSendMsgResponse, SkBuiltinString, StatusNotifyRequest, UploadMsgImgRequest,
    UploadMsgImgResponse, UploadVoiceRequest, UploadVoiceResponse,
};
use crate::capture::Timestamp;
use crate::proto::http;
use crate::proto::web;
use crate::track::lifecycle::{MsgKind, Send, Via};
use crate::track::synckey::{message_digest, Ids};

/// One message of a send request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendItem {
    /// ClientMsgId (an image's ClientImgId).
    pub client_id: String,
    /// What a text message is ([`message_digest`]), for telling a resend.
    pub what: Option<u64>,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// What a send's body (newsendmsg, the end of an uploadmsgimg or
/// uploadvoice) tells the timeline and the message lifecycles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendFacts {
    /// A request: each message.
    Request(MsgKind, Vec<SendItem>),
    /// An answer: each message's client id and the MsgID it got.
    Response(MsgKind, Vec<(String, Option<String>)>),
}

/// The facts of a plain-protobuf newsendmsg body (`None`: not one, or no
/// message with a ClientMsgId).
pub fn newsendmsg_facts(body: &[u8], is_response: bool) -> Option<SendFacts> {
    let cid = |c: Option<u64>| c.filter(|&c| c != 0).map(|c| c.to_string());
    let facts = if is_response {
        let r = NewSendMsgResponse::decode(body).ok()?;
        SendFacts::Response(
            MsgKind::Text,
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
            MsgKind::Text,
            r.list
                .iter()
                .filter_map(|m| {
                    let to = m.to_user_name.as_ref().and_then(|s| s.string.as_deref());
                    let what = message_digest(
                        to.unwrap_or(""),
                        u64::from(m.msg_type.unwrap_or(0)),
                        m.content.as_deref().unwrap_or(""),
                    );
                    Some(SendItem {
                        client_id: cid(m.client_msg_id)?,
                        what: Some(what),
                        from: None,
                        to: to.filter(|t| !t.is_empty()).map(str::to_owned),
                    })
                })
                .collect(),
        )
    };
    match &facts {
        SendFacts::Request(_, v) if v.is_empty() => None,
        SendFacts::Response(_, v) if v.is_empty() => None,
        _ => Some(facts),
    }
}

fn named(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_owned)
}

fn builtin(s: &Option<SkBuiltinString>) -> Option<String> {
    named(s.as_ref().and_then(|s| s.string.as_deref()))
}

/// The MsgId of a media answer (NewMsgId, else MsgId; 0 is none).
fn media_msg_id(new_msg_id: Option<u64>, msg_id: Option<u32>) -> Option<String> {
    new_msg_id
        .filter(|&n| n != 0)
        .or(msg_id.map(u64::from).filter(|&n| n != 0))
        .map(|n| n.to_string())
}

/// The send facts of a plain-protobuf uploadmsgimg or uploadvoice body
/// (`cgi` names it): a request is a send when it is the image's last part
/// (StartPos + DataLen = TotalLen) or the recording's chunk with EndFlag 1,
/// an answer when it names the MsgId (the one that completed the upload).
/// Either way `whole`: the request is the send (an exchange answered with
/// the MsgId, on the short link, where parts go at once).
pub fn media_facts(cgi: &str, body: &[u8], is_response: bool, whole: bool) -> Option<SendFacts> {
    match (cgi, is_response) {
        ("uploadmsgimg", false) => {
            let r = UploadMsgImgRequest::decode(body).ok()?;
            let last = u64::from(r.start_pos.unwrap_or(0)) + u64::from(r.data_len.unwrap_or(0))
                >= u64::from(r.total_len.unwrap_or(u32::MAX));
            (whole || last).then_some(())?;
            Some(SendFacts::Request(
                MsgKind::Image,
                vec![SendItem {
                    client_id: builtin(&r.client_img_id)?,
                    what: None,
                    from: builtin(&r.from_user_name),
                    to: builtin(&r.to_user_name),
                }],
            ))
        }
        ("uploadmsgimg", true) => {
            let r = UploadMsgImgResponse::decode(body).ok()?;
            let id = media_msg_id(r.new_msg_id, r.msg_id)?;
            Some(SendFacts::Response(
                MsgKind::Image,
                vec![(builtin(&r.client_img_id)?, Some(id))],
            ))
        }
        ("uploadvoice", false) => {
            let r = UploadVoiceRequest::decode(body).ok()?;
            (whole || r.end_flag == Some(1)).then_some(())?;
            Some(SendFacts::Request(
                MsgKind::Voice,
                vec![SendItem {
                    client_id: named(r.client_msg_id.as_deref())?,
                    what: None,
                    from: named(r.from_user_name.as_deref()),
                    to: named(r.to_user_name.as_deref()),
                }],
            ))
        }
        ("uploadvoice", true) => {
            let r = UploadVoiceResponse::decode(body).ok()?;
            let id = media_msg_id(r.new_msg_id, r.msg_id)?;
            Some(SendFacts::Response(
                MsgKind::Voice,
                vec![(named(r.client_msg_id.as_deref())?, Some(id))],
            ))
        }
        _ => None,
    }
}

/// A read report in a plain-protobuf statusnotify request: (reader,
/// peer, up to MsgId; 0: all), for Code 1 only.
pub fn read_facts(body: &[u8]) -> Option<(String, String, u64)> {
    let r = StatusNotifyRequest::decode(body).ok()?;
    (r.code == Some(CODE_READ)).then_some(())?;
    Some((
        named(r.from_user_name.as_deref())?,
        named(r.to_user_name.as_deref())?,
        r.msg_id.unwrap_or(0),
    ))
}

/// statusnotify Code: the chat is read.
const CODE_READ: u32 = 1;

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
    /// A send's facts on the timeline: a newsendmsg request's messages
    /// wait for their answer, an answer's are sends; every send's steps go
    /// on the message lifecycles.
    pub(super) fn send_facts(&mut self, ids: Ids<'_>, ts: Timestamp, via: Via, facts: &SendFacts) {
        let (ids, facts) = (ids.owned(), facts.clone());
        self.shared(move |g| {
            let ids = ids.ids();
            match &facts {
                SendFacts::Request(kind, list) => {
                    for item in list {
                        if let Some(what) = item.what {
                            g.timeline.sending(ids.conn, &item.client_id, what);
                        }
                        let send = Send {
                            client_id: item.client_id.clone(),
                            kind: *kind,
                            via,
                            from: item.from.clone(),
                            to: item.to.clone(),
                        };
                        g.timeline.life_send(ids, ts, send);
                    }
                }
                SendFacts::Response(kind, list) => {
                    for (cid, msg_id) in list {
                        if *kind == MsgKind::Text {
                            g.timeline
                                .sent(ids, ts, ids.conn, cid, None, msg_id.as_deref());
                        }
                        if let Some(m) = msg_id {
                            let send = Send {
                                client_id: cid.clone(),
                                kind: *kind,
                                via,
                                from: None,
                                to: None,
                            };
                            g.timeline.life_ack(ids, ts, send, m);
                        }
                    }
                }
            }
        });
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
                    let ts = request.map_or(rs.ts_first, |r| r.ts_last);
                    self.send_facts(ids, ts, Via::Shortlink, &f);
                }
                if let Some(f) = newsendmsg_facts(&rs.body, true) {
                    self.send_facts(ids, rs.ts_last, Via::Shortlink, &f);
                }
            }
            "uploadmsgimg" | "uploadvoice" => {
                // The part answered with the MsgId is the send: parts go at
                // once, the last to arrive completes the upload.
                if let Some(f) = media_facts(cgi, &rs.body, true, true) {
                    if let Some(rq) = request {
                        if let Some(f) = media_facts(cgi, &rq.body, false, true) {
                            self.send_facts(ids, rq.ts_last, Via::Shortlink, &f);
                        }
                    }
                    self.send_facts(ids, rs.ts_last, Via::Shortlink, &f);
                }
            }
            "statusnotify" => {
                if let Some((reader, peer, upto)) = request.and_then(|r| read_facts(&r.body)) {
                    let ts = request.map_or(rs.ts_first, |r| r.ts_last);
                    let ids = ids.owned();
                    self.shared(move |g| g.timeline.life_read(ids.ids(), ts, &reader, &peer, upto));
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
        let Some(SendFacts::Request(MsgKind::Text, v)) =
            newsendmsg_facts(&req.encode_to_vec(), false)
        else {
            panic!("a request's facts");
        };
        assert_eq!(v.len(), 2, "no ClientMsgId, no fact");
        assert_eq!(
            (v[0].client_id.as_str(), v[1].client_id.as_str()),
            ("7", "7")
        );
        assert_ne!(v[0].what, v[1].what, "another recipient, another message");
        assert_eq!(v[1].to.as_deref(), Some("carol"));
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
            Some(SendFacts::Response(
                MsgKind::Text,
                vec![("7".into(), Some("5000000000".into()))]
            ))
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
