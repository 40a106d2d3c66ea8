//! Web WeChat on the server's port (protocol.md section 6): HTTP/1.1 with
//! JSON bodies, on the same connections as the short link: [`route`]
//! serves one request, given the [`Service`] and the request's [`Origin`]
//! (no socket).
//!
//! | request | answer |
//! |---|---|
//! | `GET` or `POST /jslogin?appid=..&fun=new[&user=NAME]` | `window.QRLogin.code = 200; window.QRLogin.uuid = "UUID";` |
//! | `GET /cgi-bin/mmwebwx-bin/login?uuid=UUID&tip=1..` | `window.code=201;` (scanned), then `window.code=200;` with `window.redirect_uri="http://HOST/cgi-bin/mmwebwx-bin/webwxnewloginpage?ticket=..&uuid=..&lang=zh_CN&scan=.."`; `408` while nobody confirms, `400` unknown uuid |
//! | `GET .../webwxnewloginpage?ticket=..&uuid=..` | `301` (no `Location`, as the real service in UOS mode): XML `<error><ret>0</ret>..<skey/><wxsid/><wxuin/><pass_ticket/>..</error>`, cookies `wxsid`, `wxuin`, `webwx_data_ticket` |
//! | `POST .../webwxinit` `{BaseRequest}` | `BaseResponse`, `User`, `ContactList`, `SyncKey`, `SKey`, ... |
//! | `POST .../webwxstatusnotify` | `BaseResponse`, `MsgID` |
//! | `GET .../webwxgetcontact` | `BaseResponse`, `MemberCount`, `MemberList` (the user, `filehelper`, the other test users), `Seq` |
//! | `POST .../webwxbatchgetcontact` `{BaseRequest, List: [{UserName}]}` | `BaseResponse`, `Count`, `ContactList` (those that exist) |
//! | `GET .../synccheck?sid=..&uin=..&skey=..&synckey=1_1\|2_5\|3_1` | `window.synccheck={retcode:"0",selector:"2"}`, held up to [`Config::web_poll`](super::Config) (25 s) and answered as soon as data arrives; selector `0`: nothing new |
//! | `POST .../webwxsync` `{BaseRequest, SyncKey, rr}` | `AddMsgList`, `ContinueFlag`, `SyncKey`, `SyncCheckKey`, `SKey`, ... |
//! | `POST .../webwxsendmsg` `{BaseRequest, Msg{Type, Content, FromUserName, ToUserName, LocalID, ClientMsgId}}` | `BaseResponse`, `MsgID`, `LocalID` |
//! | `POST .../webwxuploadmedia`, `webwxsendmsgimg`, `GET .../webwxgetmsgimg` | images: see [`media`] |
//! | `GET` or `POST .../webwxlogout` | ends the session; a synccheck it holds is answered `1101` |
//!
//! A login is confirmed by a device of the user, as the phone confirms a
//! QR code: long-link cmd [`WEBLOGIN_CONFIRM`] with the jslogin's uuid
//! from a connection that authenticated ([`Service::confirm_web_login`];
//! `syncscope client confirm UUID`); a held login poll is answered as soon
//! as it comes. A jslogin may name its user with `user=` (a syncscope
//! extension): then only that user may confirm it. When logins are
//! confirmed automatically ([`Access::auto_confirm`](super::Access): test
//! mode, or `--web-auto-confirm`), a login is confirmed at once for the
//! user it names, else for the first test user (`--users`) without a web
//! session. A confirmed login becomes a session of the user's device
//! [`WEB_DEVICE`], a secondary device: it gets the messages stored after
//! its webwxinit (a sync presenting key 0 included), and its sends reach
//! the user's other devices. Pending logins and sessions are bounded per
//! address and in all, the oldest giving way (`session.rs`).
//!
//! Session ids (`wxsid`), `skey`, `pass_ticket`, tickets and uuids are
//! random from the operating system's source (128 bits for ids). Later
//! requests name their session by `BaseRequest.Sid` (POST), the `sid`
//! parameter or the `wxsid` cookie; `Uin` (a number or a string; null,
//! empty or 0 name nothing) and a non-empty `Skey` must match it;
//! `pass_ticket` is not needed. What is sent to `filehelper` is the
//! user's message to themselves (their other devices get it, shown as to
//! `filehelper`). An unknown session is answered as the real service
//! does (Ret / retcode 1101, "logged out"); a body that is not JSON, or
//! lacks what the endpoint needs, gets HTTP 400 and a closed connection.
//!
//! Web user names are `@` + the syncscope user name. Content is
//! delivered verbatim (the real service HTML-escapes it).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};

use serde_json::{json, Value};
use tokio::time::{sleep_until, Instant};

use super::conn::Close;
use super::http::{http, Origin, Reply, Request};
use super::service::{
    position, random_fill, synckey, unix_now, with_store, Answer, Failure, Link, Outgoing, Service,
    Then,
};
use crate::body::messages::{self, BaseResponse, WebLoginConfirmRequest, WebLoginConfirmResponse};
use crate::net::messages::ret;
use crate::net::store::{StoreError, StoredMessage, UserId};
use crate::net::{FILEHELPER, MSG_TYPE_TEXT};
use crate::proto::commands::{response, WEBLOGIN_CONFIRM};
use prost::Message;
mod login;
mod media;
mod session;

use self::session::{body_credentials, query_credentials, Inner, Session};
pub(super) use self::session::{cookies, WebState};
use crate::proto::web::{
    as_u64, id_string, parse_query, parse_synckey_param, synckey_json, synckey_to_json,
};

/// The endpoints served, for error messages.
pub const SERVED: &str = "/jslogin, /cgi-bin/mmwebwx-bin/{login, webwxnewloginpage, webwxinit, \
     webwxstatusnotify, webwxgetcontact, webwxbatchgetcontact, synccheck, webwxsync, webwxsendmsg, webwxuploadmedia, webwxsendmsgimg, webwxgetmsgimg, webwxlogout}";
/// Path prefix of the web endpoints (jslogin excepted).
pub const WEB_PREFIX: &str = "/cgi-bin/mmwebwx-bin/";
/// The device id of every web session of a user.
pub const WEB_DEVICE: &str = "web";
/// Ret (and synccheck retcode) of a request whose session is unknown,
/// expired or logged out.
pub const RET_LOGGED_OUT: i32 = 1101;
/// Names one webwxbatchgetcontact looks up at most (the rest are left out).
const MAX_BATCH_CONTACTS: usize = 100;
/// Ret of a ticket page whose ticket is unknown or used.
pub const RET_BAD_TICKET: i32 = 1203;

/// Whether a request path is a web endpoint.
pub(super) fn is_web_path(path: &str) -> bool {
    path == "/jslogin" || path.starts_with(WEB_PREFIX)
}

fn js(text: String) -> Reply {
    Reply {
        status: 200,
        content_type: "text/javascript",
        body: text.into_bytes(),
        cookies: Vec::new(),
        wake: None,
    }
}

fn json_reply(v: &Value) -> Reply {
    Reply {
        status: 200,
        content_type: "application/json; charset=UTF-8",
        body: v.to_string().into_bytes(),
        cookies: Vec::new(),
        wake: None,
    }
}

fn base(ret: i32, msg: &str) -> Value {
    json!({ "Ret": ret, "ErrMsg": msg })
}

/// The JSON answer of a request whose session is not (or no longer) known.
/// The answer to a send: its BaseResponse, the MsgID given and the
/// client's LocalID back.
fn send_answer(local_id: &str, ret: i32, err: &str, msg_id: String) -> Reply {
    json_reply(&json!({
        "BaseResponse": base(ret, err),
        "MsgID": msg_id,
        "LocalID": local_id,
    }))
}

fn logged_out(why: &str) -> Reply {
    json_reply(&json!({ "BaseResponse": base(RET_LOGGED_OUT, why) }))
}

fn store_error(e: StoreError) -> Close {
    http(500, ret::STORE, e.to_string())
}

fn web_name(name: &str) -> String {
    format!("@{name}")
}

/// The SyncKey JSON the server issues for mailbox position `seq`.
fn synckey_value(seq: u64) -> Value {
    synckey_to_json(&synckey(seq).to_map())
}

fn contact(uin: UserId, name: &str) -> Value {
    contact_as(uin, &web_name(name), name)
}

/// A contact entry: `user_name` as the web shows it (`@name`, or a
/// built-in name such as `filehelper`).
fn contact_as(uin: UserId, user_name: &str, nick: &str) -> Value {
    json!({
        "Uin": uin, "UserName": user_name, "NickName": nick, "HeadImgUrl": "",
        "ContactFlag": 3, "MemberCount": 0, "MemberList": [], "RemarkName": "",
        "HideInputBarFlag": 0, "Sex": 0, "Signature": "", "VerifyFlag": 0, "OwnerUin": 0,
        "PYInitial": "", "PYQuanPin": "", "RemarkPYInitial": "", "RemarkPYQuanPin": "",
        "StarFriend": 0, "AppAccountFlag": 0, "Statues": 0, "AttrStatus": 0, "Province": "",
        "City": "", "Alias": "", "SnsFlag": 0, "UniFriend": 0, "DisplayName": "",
        "ChatRoomId": 0, "KeyWord": "", "EncryChatRoomId": "", "IsOwner": 0
    })
}

/// The built-in `filehelper` contact.
fn filehelper() -> Value {
    contact_as(0, FILEHELPER, "文件传输助手")
}

/// How the web names a message's recipient: a message to oneself is one
/// to `filehelper`.
fn web_to(m: &StoredMessage) -> String {
    if m.to == m.from {
        FILEHELPER.to_owned()
    } else {
        web_name(&m.to)
    }
}

/// The web AddMsg of a stored message at mailbox position `seq`
/// (`MsgSeq`, a syncscope extension: a client that handles only part of a
/// page confirms up to it).
fn add_msg(m: &StoredMessage, seq: u64) -> Value {
    json!({
        "MsgId": m.msg_id.to_string(), "FromUserName": web_name(&m.from),
        "ToUserName": web_to(m), "MsgType": m.msg_type, "Content": m.content,
        "Status": 3, "ImgStatus": 1, "CreateTime": m.create_time, "VoiceLength": 0,
        "PlayLength": 0, "FileName": "", "FileSize": "", "MediaId": "", "Url": "",
        "AppMsgType": 0, "StatusNotifyCode": 0, "StatusNotifyUserName": "",
        "RecommendInfo": {
            "UserName": "", "NickName": "", "QQNum": 0, "Province": "", "City": "",
            "Content": "", "Signature": "", "Alias": "", "Scene": 0, "VerifyFlag": 0,
            "AttrStatus": 0, "Sex": 0, "Ticket": "", "OpCode": 0
        },
        "ForwardFlag": 0, "AppInfo": { "AppID": "", "Type": 0 }, "HasProductId": 0,
        "Ticket": "", "ImgHeight": 0, "ImgWidth": 0, "SubMsgType": 0, "NewMsgId": m.msg_id,
        "OriContent": "", "EncryFileName": "", "ClientMsgId": m.client_msg_id, "MsgSeq": seq
    })
}

fn wrong_method(req: &Request, allowed: &str) -> Close {
    http(
        405,
        ret::UNKNOWN_CMD,
        format!("{} {}: use {allowed}", req.method, req.path),
    )
}

fn parse_json(what: &str, body: &[u8]) -> Result<Value, Close> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        http(
            400,
            ret::BAD_BODY,
            format!("{what}: the body is not JSON: {e}"),
        )
    })?;
    if !v.is_object() {
        return Err(http(
            400,
            ret::BAD_BODY,
            format!("{what}: the body is not a JSON object"),
        ));
    }
    Ok(v)
}

/// Serves one web request that came from `origin`.
pub(super) async fn route(
    service: &Service,
    req: &Request,
    origin: &mut Origin<'_>,
) -> Result<Reply, Close> {
    Web { service, origin }.route(req).await
}

/// The web endpoints for one request: the server's service and what they
/// need of the connection (no socket).
struct Web<'a, 'o> {
    service: &'a Service,
    origin: &'a mut Origin<'o>,
}

impl Web<'_, '_> {
    /// The contacts of session `s`, as on the real service: the user
    /// itself and `filehelper`, then the test users other than the user.
    async fn contacts(&self, s: &Session) -> Result<Vec<Value>, Close> {
        let names = self.service.config.test_users.clone();
        let found = with_store(&self.service.store, move |st| {
            let mut out = Vec::new();
            for n in names {
                if let Some(id) = st.user(&n, false)? {
                    out.push((id, n));
                }
            }
            Ok(out)
        })
        .await
        .map_err(store_error)?;
        let me = s.user;
        Ok([contact(me, &s.name), filehelper()]
            .into_iter()
            .chain(
                found
                    .into_iter()
                    .filter(|(id, _)| *id != me)
                    .map(|(id, n)| contact(id, &n)),
            )
            .collect())
    }

    /// The web state, locked, with stale logins forgotten and idle
    /// sessions ended (taken off the online list).
    fn lock_swept(&self) -> MutexGuard<'_, Inner> {
        let mut inner = self.service.web.lock();
        for s in inner.sweep() {
            self.service.offline(s.user, s.conn);
        }
        inner
    }

    async fn route(&mut self, req: &Request) -> Result<Reply, Close> {
        let endpoint = if req.path == "/jslogin" {
            "jslogin"
        } else {
            req.path.strip_prefix(WEB_PREFIX).unwrap_or_default()
        };
        let mut q = parse_query(&req.query);
        let method = req.method.as_str();
        if endpoint == "jslogin" && method == "POST" {
            // Its parameters in the query string or a form body.
            for (k, v) in parse_query(&String::from_utf8_lossy(&req.body)) {
                q.entry(k).or_insert(v);
            }
        }
        match (endpoint, method) {
            ("jslogin", "GET" | "POST") => self.jslogin(&q),
            ("login", "GET") => self.login_poll(req, &q).await,
            ("webwxnewloginpage", "GET") => self.ticket_page(&q).await,
            ("webwxinit", "POST") => self.webwxinit(req, &q).await,
            ("webwxstatusnotify", "POST") => self.statusnotify(req, &q),
            ("webwxgetcontact", "GET" | "POST") => self.getcontact(req, &q).await,
            ("webwxbatchgetcontact", "POST") => self.batchgetcontact(req, &q).await,
            ("synccheck", "GET") => self.synccheck(req, &q).await,
            ("webwxsync", "POST") => self.webwxsync(req, &q).await,
            ("webwxsendmsg", "POST") => self.webwxsendmsg(req, &q).await,
            ("webwxuploadmedia", "POST") => self.uploadmedia(req, &q).await,
            ("webwxsendmsgimg", "POST") => self.sendmsgimg(req, &q).await,
            ("webwxgetmsgimg", "GET") => self.getmsgimg(req, &q).await,
            ("webwxlogout", "GET" | "POST") => Ok(self.logout(req, &q)),
            ("jslogin", _) => Err(wrong_method(req, "GET or POST")),
            ("login" | "webwxnewloginpage" | "synccheck" | "webwxgetmsgimg", _) => {
                Err(wrong_method(req, "GET"))
            }
            (
                "webwxinit"
                | "webwxstatusnotify"
                | "webwxsync"
                | "webwxsendmsg"
                | "webwxuploadmedia"
                | "webwxsendmsgimg"
                | "webwxbatchgetcontact",
                _,
            ) => Err(wrong_method(req, "POST")),
            _ => Err(http(
                404,
                ret::UNKNOWN_CMD,
                format!("no such web endpoint {:?} (served: {SERVED})", req.path),
            )),
        }
    }

    async fn webwxinit(
        &mut self,
        req: &Request,
        q: &BTreeMap<String, String>,
    ) -> Result<Reply, Close> {
        let body = parse_json("webwxinit", &req.body)?;
        let Some(s) = self.service.web.session(&body_credentials(&body, q, req)) else {
            return Ok(logged_out("webwxinit: no such session (log in again)"));
        };
        let user = s.user;
        let last = with_store(&self.service.store, move |st| st.last_seq(user))
            .await
            .map_err(store_error)?;
        s.floor.fetch_max(last, Ordering::Relaxed);
        let contacts = self.contacts(&s).await?;
        Ok(json_reply(&json!({
            "BaseResponse": base(0, ""),
            "Count": contacts.len(),
            "ContactList": contacts,
            "SyncKey": synckey_value(last),
            "User": contact(user, &s.name),
            "ChatSet": "",
            "SKey": s.skey,
            "ClientVersion": 0x2800_0000u32,
            "SystemTime": unix_now(),
            "GrayScale": 1,
            "InviteStartCount": 0,
            "MPSubscribeMsgCount": 0,
            "MPSubscribeMsgList": [],
            "ClickReportInterval": 600_000
        })))
    }

    fn statusnotify(
        &mut self,
        req: &Request,
        q: &BTreeMap<String, String>,
    ) -> Result<Reply, Close> {
        let body = parse_json("webwxstatusnotify", &req.body)?;
        if self
            .service
            .web
            .session(&body_credentials(&body, q, req))
            .is_none()
        {
            return Ok(logged_out("webwxstatusnotify: no such session"));
        }
        let mut id = [0u8; 8];
        random_fill(&mut id).map_err(|e| http(500, ret::STORE, e))?;
        Ok(json_reply(&json!({
            "BaseResponse": base(0, ""),
            "MsgID": (u64::from_be_bytes(id) >> 1).to_string(),
        })))
    }

    async fn getcontact(
        &mut self,
        req: &Request,
        q: &BTreeMap<String, String>,
    ) -> Result<Reply, Close> {
        let cred = if req.method == "POST" && !req.body.is_empty() {
            body_credentials(&parse_json("webwxgetcontact", &req.body)?, q, req)
        } else {
            query_credentials(q, req)
        };
        let Some(s) = self.service.web.session(&cred) else {
            return Ok(logged_out("webwxgetcontact: no such session"));
        };
        let members = self.contacts(&s).await?;
        Ok(json_reply(&json!({
            "BaseResponse": base(0, ""),
            "MemberCount": members.len(),
            "MemberList": members,
            "Seq": 0
        })))
    }

    /// `webwxbatchgetcontact`: the contacts named in `List` that the
    /// session may see (its own contacts and any user of the server by
    /// web name); unknown names are left out.
    async fn batchgetcontact(
        &mut self,
        req: &Request,
        q: &BTreeMap<String, String>,
    ) -> Result<Reply, Close> {
        let body = parse_json("webwxbatchgetcontact", &req.body)?;
        if self
            .service
            .web
            .session(&body_credentials(&body, q, req))
            .is_none()
        {
            return Ok(logged_out("webwxbatchgetcontact: no such session"));
        }
        let wanted: Vec<String> = body["List"]
            .as_array()
            .map(|l| l.iter().map(|c| id_string(&c["UserName"])).collect())
            .unwrap_or_default();
        let found = with_store(&self.service.store, move |st| {
            let mut out = Vec::new();
            for w in wanted.into_iter().take(MAX_BATCH_CONTACTS) {
                if w == FILEHELPER {
                    out.push(filehelper());
                } else if let Some(name) = w.strip_prefix('@') {
                    if let Some(id) = st.user(name, false)? {
                        out.push(contact(id, name));
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(store_error)?;
        Ok(json_reply(&json!({
            "BaseResponse": base(0, ""),
            "Count": found.len(),
            "ContactList": found
        })))
    }

    async fn synccheck(
        &mut self,
        req: &Request,
        q: &BTreeMap<String, String>,
    ) -> Result<Reply, Close> {
        let answer = |retcode: i32, selector: u32| {
            js(format!(
                "window.synccheck={{retcode:\"{retcode}\",selector:\"{selector}\"}}"
            ))
        };
        let Some(s) = self.service.web.session(&query_credentials(q, req)) else {
            return Ok(answer(RET_LOGGED_OUT, 0));
        };
        let Some(keys) = q.get("synckey").and_then(|k| parse_synckey_param(k)) else {
            return Err(http(
                400,
                ret::BAD_BODY,
                "synccheck: the synckey parameter is missing or not k_v|k_v|...",
            ));
        };
        let presented = position(&keys).max(s.floor.load(Ordering::Relaxed));
        let deadline = Instant::now() + self.service.config.web_poll;
        let user = s.user;
        loop {
            // Logged out (or ended) while held: as the real service, 1101.
            if s.is_ended() {
                return Ok(answer(RET_LOGGED_OUT, 0));
            }
            // From what the device confirmed (a stale key does not bring
            // back what a webwxsync would not offer again).
            let pending = self
                .service
                .with_receipts(move |st| {
                    let acked = st.confirm(user, WEB_DEVICE, presented)?;
                    st.pending(user, WEB_DEVICE, acked)
                })
                .await
                .map_err(store_error)?;
            if pending {
                return Ok(answer(0, 2));
            }
            tokio::select! {
                biased;
                _ = self.origin.shutdown.recv() => return Ok(answer(0, 0)),
                _ = s.notify.notified() => {}
                _ = sleep_until(deadline) => return Ok(answer(0, 0)),
            }
        }
    }

    async fn webwxsync(
        &mut self,
        req: &Request,
        q: &BTreeMap<String, String>,
    ) -> Result<Reply, Close> {
        let body = parse_json("webwxsync", &req.body)?;
        let Some(s) = self.service.web.session(&body_credentials(&body, q, req)) else {
            return Ok(logged_out("webwxsync: no such session (log in again)"));
        };
        let Some(keys) = synckey_json(&body["SyncKey"]) else {
            return Err(http(
                400,
                ret::BAD_BODY,
                "webwxsync: SyncKey is missing or not {\"Count\", \"List\": [{\"Key\", \"Val\"}]}",
            ));
        };
        // Key 0 (or any key before the session's webwxinit) starts at the
        // webwxinit: a session gets what came after it.
        let presented = position(&keys).max(s.floor.load(Ordering::Relaxed));
        let (user, limit) = (s.user, self.service.page_limit());
        let page = self
            .service
            .with_receipts(move |st| st.sync(user, WEB_DEVICE, presented, limit))
            .await
            .map_err(store_error)?;
        let list: Vec<Value> = page
            .messages
            .iter()
            .zip(&page.positions)
            .map(|(m, &seq)| add_msg(m, seq))
            .collect();
        let key = synckey_value(page.next_seq);
        Ok(json_reply(&json!({
            "BaseResponse": base(0, ""),
            "AddMsgCount": list.len(),
            "AddMsgList": list,
            "ModContactCount": 0,
            "ModContactList": [],
            "DelContactCount": 0,
            "DelContactList": [],
            "ModChatRoomMemberCount": 0,
            "ModChatRoomMemberList": [],
            "Profile": { "BitFlag": 0 },
            "ContinueFlag": u32::from(page.more),
            "SyncKey": key,
            "SyncCheckKey": key,
            "SKey": s.skey
        })))
    }

    /// What a send (webwxsendmsg, webwxsendmsgimg) checks first: the
    /// session, the `Msg` object, and that `FromUserName` (when given) is
    /// the session's user. `Ok(Err(reply))`: the answer to give at once.
    #[allow(clippy::type_complexity)]
    fn send_start<'b>(
        &self,
        what: &str,
        body: &'b Value,
        q: &BTreeMap<String, String>,
        req: &Request,
    ) -> Result<Result<(Arc<Session>, &'b Value, String), Reply>, Close> {
        let Some(s) = self.service.web.session(&body_credentials(body, q, req)) else {
            return Ok(Err(logged_out(&format!(
                "{what}: no such session (log in again)"
            ))));
        };
        let msg = &body["Msg"];
        if !msg.is_object() {
            return Err(http(400, ret::BAD_BODY, format!("{what}: no Msg object")));
        }
        let local_id = id_string(&msg["LocalID"]);
        let from = id_string(&msg["FromUserName"]);
        if !from.is_empty() && from != web_name(&s.name) {
            return Ok(Err(send_answer(
                &local_id,
                ret::BAD_BODY,
                &format!("FromUserName {from:?} is not this session's user"),
                String::new(),
            )));
        }
        Ok(Ok((s, msg, local_id)))
    }

    async fn webwxsendmsg(
        &mut self,
        req: &Request,
        q: &BTreeMap<String, String>,
    ) -> Result<Reply, Close> {
        let body = parse_json("webwxsendmsg", &req.body)?;
        let (s, msg, local_id) = match self.send_start("webwxsendmsg", &body, q, req)? {
            Ok(start) => start,
            Err(reply) => return Ok(reply),
        };
        let answer = |ret: i32, err: &str, msg_id: String| send_answer(&local_id, ret, err, msg_id);
        let to_web = id_string(&msg["ToUserName"]);
        let to = to_web.strip_prefix('@').unwrap_or(&to_web).to_owned();
        let msg_type = as_u64(&msg["Type"])
            .and_then(|t| u32::try_from(t).ok())
            .unwrap_or(MSG_TYPE_TEXT);
        let client_msg_id = Some(id_string(&msg["ClientMsgId"]))
            .filter(|c| !c.is_empty() && c != "0")
            .or_else(|| Some(local_id.clone()).filter(|c| !c.is_empty() && c != "0"));
        let out = Outgoing {
            to,
            content: id_string(&msg["Content"]),
            msg_type,
            client_msg_id,
        };
        let (mut results, wake) = self
            .service
            .send_messages(s.user, WEB_DEVICE, vec![out])
            .await
            .map_err(|f| http(500, f.ret, f.error))?;
        let mut reply = match results.pop() {
            Some(Ok(sent)) => answer(0, "", sent.msg_id.to_string()),
            Some(Err(f)) if f.ret != ret::BAD_RECIPIENT => answer(f.ret, &f.error, String::new()),
            _ => answer(
                ret::BAD_RECIPIENT,
                &format!("unknown recipient {to_web:?}"),
                String::new(),
            ),
        };
        reply.wake = Some(wake);
        Ok(reply)
    }

    fn logout(&mut self, req: &Request, q: &BTreeMap<String, String>) -> Reply {
        if let Some(s) = self.service.web.session(&query_credentials(q, req)) {
            self.service.web.lock().sessions.remove(&s.sid);
            s.end();
            self.service.offline(s.user, s.conn);
        }
        Reply {
            status: 200,
            content_type: "text/html",
            body: Vec::new(),
            cookies: Vec::new(),
            wake: None,
        }
    }
}

impl Service {
    /// Long-link cmd [`WEBLOGIN_CONFIRM`]: the connection's authenticated
    /// user (in test mode, its identified one) confirms pending web login
    /// `Uuid`, as the phone does by scanning the QR code. A refusal is an
    /// answer with Ret [`ret::NO_SUCH_LOGIN`]; a connection that has not
    /// authenticated is closed.
    pub(in crate::net::server) async fn confirm_web_login(
        &self,
        link: &Link,
        body: &[u8],
    ) -> Result<Answer, Failure> {
        let req: WebLoginConfirmRequest = messages::decode("WebLoginConfirmRequest", body)?;
        let enforced = self.config.access.enforced_mode();
        let uin = match (&link.auth, &link.session) {
            (Some((uin, _)), _) => UserId::from(*uin),
            (None, Some(s)) if !enforced => s.user,
            _ => {
                return Err(Failure::new(
                    ret::NOT_AUTHENTICATED,
                    format!(
                        "cmd {WEBLOGIN_CONFIRM} (confirm a web login) before a manualauth or \
                         autoauth on this connection"
                    ),
                ))
            }
        };
        let name = with_store(&self.store, move |st| st.user_name(uin)).await?;
        let uuid = req.uuid.unwrap_or_default();
        let outcome = match name {
            Some(name) => self.web.confirm(&uuid, &name),
            None => Err(format!("uin {uin} is no user")),
        };
        let base = match outcome {
            Ok(()) => BaseResponse::error(0, ""),
            Err(why) => BaseResponse::error(ret::NO_SUCH_LOGIN, why),
        };
        let body = WebLoginConfirmResponse {
            base_response: Some(base),
        }
        .encode_to_vec();
        Ok(Answer {
            cmd: response(WEBLOGIN_CONFIRM),
            body,
            then: Then::Nothing,
        })
    }
}

#[cfg(test)]
mod tests;
