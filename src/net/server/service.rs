//! The server's command logic, apart from sockets (mini-redis's
//! `Command::apply`): [`Service::apply`] takes one long-link request (cmd
//! and body) for a connection's [`Link`] state and gives the [`Answer`] to
//! write and what to do once it is written ([`Then`]: push to other
//! devices, or check for pending data). The short link and the web
//! handlers call the same functions ([`Service::identify`],
//! [`Service::auth`], [`Service::newsync`], [`Service::newsendmsg`],
//! [`Service::send_messages`], [`Service::wake`]), so every link stores and
//! answers alike. A refused request is a [`Failure`] (Ret code and why);
//! the caller turns it into an error frame or an HTTP error.
//!
//! The store is reached through the group-commit writer ([`Committer`]),
//! so a stored message is committed before it is answered. Tests run the
//! commands against an in-memory store, no socket involved.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

use prost::Message;
use tokio::sync::Notify;

use super::media::MediaStats;
use super::web::WebState;
use super::{Config, Event};
use crate::body::messages::{
    self, AddMsg, AutoAuthRequest, AutoAuthResponse, BaseResponse, BodyError, CmdItem, CmdList,
    ManualAuthRequest, ManualAuthResponse, MicroMsgResponseNew, NewSendMsgRequest,
    NewSendMsgResponse, NewSyncRequest, NewSyncResponse, SkBuiltinBuffer, SkBuiltinString,
};
use crate::body::synckey::{KeyMap, SyncKey};
use crate::net::frame::page_bytes;
use crate::net::messages::{ret, IdentifyExt, IdentifyReply};
use crate::net::store::{
    wire_len, Committer, Device, NewMessage, PageLimit, Sent, Store, StoreError, StoredMessage,
    SyncPage, UserId,
};
pub(super) use crate::net::unix_now;
use crate::net::{CMDID_ADDMSG, FILEHELPER, KEY_MESSAGES, MSG_TYPE_TEXT};
use crate::proto::commands::{
    response, AUTOAUTH, DOWNLOADVOICE, GETMSGIMG, IDENTIFY, MANUALAUTH, NEWSENDMSG, NEWSYNC, NOOP,
    UPLOADMSGIMG, UPLOADVOICE, WEBLOGIN_CONFIRM,
};

/// Runs `f` on the store in the writer thread's next batch (group
/// commit): the result comes once the batch is committed.
pub(super) async fn with_store<T, F>(store: &Committer, f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
{
    store.run(f).await
}

/// A connection (or web session) to wake when its user has news.
pub(super) struct Online {
    /// The connection's id ([`Service::next_conn`]).
    pub(super) conn: u64,
    pub(super) device: String,
    pub(super) notify: Arc<Notify>,
}

/// What the server's connections share: the store's writer, the settings,
/// who is online, the web sessions and the autoauth keys.
pub(super) struct Service {
    pub(super) store: Committer,
    pub(super) config: Config,
    online: Mutex<HashMap<UserId, Vec<Online>>>,
    /// Ids of connections and web sessions (their entries in `online`).
    pub(super) next_conn: AtomicU64,
    pub(super) web: WebState,
    auth_keys: Mutex<AuthKeys>,
    pub(super) media_stats: MediaStats,
}

/// autoauth keys given by manualauth: key -> (uin, device), the oldest
/// forgotten past [`MAX_AUTH_KEYS`]. In memory: after a restart, autoauth
/// is refused and the client does a manualauth again.
#[derive(Default)]
struct AuthKeys {
    by_key: HashMap<Vec<u8>, (u32, String)>,
    order: VecDeque<Vec<u8>>,
}

/// An accepted auth: the uin, the device and the autoauth key (which
/// is also the short link's session: the `mmsid` cookie).
pub(super) type Auth = Option<(u32, String, Vec<u8>)>;

/// autoauth keys remembered at most.
const MAX_AUTH_KEYS: usize = 1 << 16;

/// Fills `buf` from the operating system's random source.
pub(super) fn random_fill(buf: &mut [u8]) -> Result<(), String> {
    getrandom::fill(buf).map_err(|e| format!("no random source: {e}"))
}

impl Service {
    /// A service in front of `store` (its writer thread already running).
    pub(super) fn new(store: Committer, config: Config) -> Service {
        Service {
            store,
            config,
            online: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            web: WebState::default(),
            auth_keys: Mutex::new(AuthKeys::default()),
            media_stats: MediaStats::default(),
        }
    }

    /// [`with_store`] for operations that may make receipts (they confirm
    /// positions, or report reads): once committed, the devices of the
    /// users whose mailboxes got receipts are woken.
    pub(super) async fn with_receipts<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    {
        let (r, wakes) = with_store(&self.store, move |st| {
            st.take_wakes();
            let r = f(st)?;
            Ok((r, st.take_wakes()))
        })
        .await?;
        for user in wakes {
            self.push(user, None);
        }
        Ok(r)
    }

    pub(super) fn log(&self, e: Event) {
        if let Some(log) = &self.config.log {
            log(&e);
        }
    }

    /// What one sync page may carry (every link): `page_size` entries and
    /// the bytes that fit the frame limit ([`page_bytes`]).
    pub(super) fn page_limit(&self) -> PageLimit {
        PageLimit {
            entries: self.config.page_size.max(1),
            bytes: page_bytes(self.config.max_frame_len),
        }
    }

    pub(super) fn online(&self) -> MutexGuard<'_, HashMap<UserId, Vec<Online>>> {
        self.online.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes every online connection of `user`, except those of device
    /// `except` (the sender's own device).
    pub(super) fn push(&self, user: UserId, except: Option<&str>) {
        if let Some(list) = self.online().get(&user) {
            for o in list {
                if except != Some(o.device.as_str()) {
                    o.notify.notify_one();
                }
            }
        }
    }
}

/// A request the server refuses: the Ret code and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Failure {
    pub(super) ret: i32,
    pub(super) error: String,
}

impl Failure {
    pub(super) fn new(ret: i32, error: impl fmt::Display) -> Failure {
        Failure {
            ret,
            error: error.to_string(),
        }
    }
}

impl From<BodyError> for Failure {
    fn from(e: BodyError) -> Self {
        Failure::new(ret::BAD_BODY, e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::new(ret::STORE, e)
    }
}

/// A message to store, as either link sends it.
pub(super) struct Outgoing {
    /// The recipient's user name.
    pub(super) to: String,
    pub(super) content: String,
    pub(super) msg_type: u32,
    pub(super) client_msg_id: Option<String>,
}

/// Who to push to after a newsendmsg was answered.
#[derive(Debug, Default)]
pub(super) struct Wake {
    from: UserId,
    from_device: String,
    to: Vec<UserId>,
}

impl Wake {
    /// The push for one new message from `device` of `from` to `to`.
    pub(super) fn new(from: UserId, device: &str, to: UserId) -> Wake {
        Wake {
            from,
            from_device: device.to_owned(),
            to: vec![to],
        }
    }
}

impl Service {
    /// Finds (or, with auto-registration, creates) a user by name, or by
    /// uin when there is no name, and registers the device.
    pub(super) async fn identify(
        &self,
        name: Option<String>,
        uin: u32,
        device: &str,
    ) -> Result<(UserId, String, Device), Failure> {
        let auto = self.config.auto_register;
        let device = device.to_owned();
        with_store(&self.store, move |s| {
            let (user, name) = match name {
                Some(name) => match s.user(&name, auto)? {
                    Some(id) => (id, name),
                    None => return Ok(Err(format!("unknown user {name:?}"))),
                },
                None => match s.user_name(i64::from(uin))? {
                    Some(name) => (i64::from(uin), name),
                    None => return Ok(Err(format!("unknown uin {uin}"))),
                },
            };
            if uin != 0 && i64::from(uin) != user {
                return Ok(Err(format!("uin {uin} is not the uin of user {name:?}")));
            }
            let d = s.register_device(user, &device)?;
            Ok(Ok((user, name, d)))
        })
        .await?
        .map_err(|e| Failure::new(ret::UNKNOWN_USER, e))
    }

    /// A manualauth: the ManualAuthResponse body (a refusal is an answer
    /// with a non-zero Ret; only an undecodable body fails), and the uin
    /// and device when accepted.
    pub(super) async fn manualauth(&self, body: &[u8]) -> Result<(Vec<u8>, Auth), Failure> {
        let req: ManualAuthRequest = messages::decode("ManualAuthRequest", body)?;
        let refuse = |ret: i32, why: String| {
            let body = ManualAuthResponse {
                base_response: Some(BaseResponse::error(ret, why)),
                uin: Some(0),
                auto_auth_key: None,
            }
            .encode_to_vec();
            (body, None)
        };
        let name = req.user().to_owned();
        let device = req.device_id.clone().unwrap_or_default();
        if !IdentifyExt::valid_user(&name) || !IdentifyExt::valid_device(&device) {
            return Ok(refuse(
                ret::UNKNOWN_USER,
                "manualauth needs a user name and a device id (1 to 64 characters, no spaces)"
                    .into(),
            ));
        }
        if !self
            .config
            .access
            .password_ok(&name, req.password.as_deref())
        {
            return Ok(refuse(
                ret::NOT_AUTHENTICATED,
                "wrong user name or password".into(),
            ));
        }
        let auto = self.config.auto_register;
        let n = name.clone();
        let Some(user) = with_store(&self.store, move |s| s.user(&n, auto)).await? else {
            return Ok(refuse(ret::UNKNOWN_USER, format!("unknown user {name:?}")));
        };
        let Ok(uin) = u32::try_from(user) else {
            return Ok(refuse(
                ret::STORE,
                format!("uin {user} does not fit 32 bits"),
            ));
        };
        let mut key = vec![0u8; 16];
        random_fill(&mut key).map_err(|e| Failure::new(ret::STORE, e))?;
        {
            let mut keys = self.auth_keys.lock().unwrap_or_else(|p| p.into_inner());
            keys.by_key.insert(key.clone(), (uin, device.clone()));
            keys.order.push_back(key.clone());
            while keys.order.len() > MAX_AUTH_KEYS {
                if let Some(old) = keys.order.pop_front() {
                    keys.by_key.remove(&old);
                }
            }
        }
        let body = ManualAuthResponse {
            base_response: Some(BaseResponse::error(0, "")),
            uin: Some(uin),
            auto_auth_key: Some(key.clone()),
        }
        .encode_to_vec();
        Ok((body, Some((uin, device, key))))
    }

    /// An autoauth: the AutoAuthResponse body, Ret 0 when the key is the
    /// one a manualauth gave this uin and device (then also the uin and
    /// device).
    pub(super) fn autoauth(&self, body: &[u8]) -> Result<(Vec<u8>, Auth), Failure> {
        let req: AutoAuthRequest = messages::decode("AutoAuthRequest", body)?;
        let uin = req.uin.unwrap_or(0);
        let device = req.device_id.unwrap_or_default();
        let key = req.auto_auth_key.unwrap_or_default();
        let known = self
            .auth_key_owner(&key)
            .is_some_and(|(u, d)| u == uin && d == device);
        let (ret, msg) = if known {
            (0, String::new())
        } else {
            (
                ret::UNKNOWN_USER,
                format!("autoauth key unknown for uin {uin} device {device:?}: do a manualauth"),
            )
        };
        let body = AutoAuthResponse {
            base_response: Some(BaseResponse::error(ret, msg)),
            uin: Some(if known { uin } else { 0 }),
        }
        .encode_to_vec();
        Ok((body, known.then_some((uin, device, key))))
    }

    /// The uin and device an autoauth key was given to.
    pub(super) fn auth_key_owner(&self, key: &[u8]) -> Option<(u32, String)> {
        let keys = self.auth_keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.by_key.get(key).cloned()
    }

    /// A newsync of `device`: the NewSyncResponse body.
    pub(super) async fn newsync(
        &self,
        user: UserId,
        device: &str,
        body: &[u8],
    ) -> Result<Vec<u8>, Failure> {
        let req: NewSyncRequest = messages::decode("NewSyncRequest", body)?;
        let key = messages::synckey_of("NewSyncRequest", &req.key_buf)?;
        let presented = position(&key.to_map());
        let wants_messages = req.selector.is_none_or(|sel| sel & 0x2 != 0);
        let device = device.to_owned();
        let limit = self.page_limit();
        let page = self
            .with_receipts(move |st| {
                if wants_messages {
                    st.sync(user, &device, presented, limit)
                } else {
                    let acked = st.confirm(user, &device, presented)?;
                    Ok(SyncPage {
                        messages: Vec::new(),
                        positions: Vec::new(),
                        next_seq: acked,
                        more: false,
                    })
                }
            })
            .await?;
        let items: Vec<CmdItem> = page
            .messages
            .iter()
            .zip(&page.positions)
            .map(|(m, &seq)| CmdItem {
                cmd_id: Some(CMDID_ADDMSG),
                cmd_buf: Some(SkBuiltinBuffer::new(add_msg(m, seq).encode_to_vec())),
            })
            .collect();
        Ok(NewSyncResponse {
            ret: Some(0),
            cmd_list: Some(CmdList {
                count: Some(items.len() as u32),
                list: items,
            }),
            continue_flag: Some(u32::from(page.more)),
            key_buf: Some(messages::keybuf(&synckey(page.next_seq))),
            status: Some(0),
        }
        .encode_to_vec())
    }

    /// A newsendmsg from `device`: stores every item (committed when this
    /// returns) and gives the NewSendMsgResponse body and whom to push to.
    pub(super) async fn newsendmsg(
        &self,
        from: UserId,
        device: &str,
        body: &[u8],
    ) -> Result<(Vec<u8>, Wake), Failure> {
        let req: NewSendMsgRequest = messages::decode("NewSendMsgRequest", body)?;
        let cap = self.config.max_send_items.max(1);
        if req.list.len() > cap {
            return Err(Failure::new(
                ret::OVERSIZE,
                format!(
                    "newsendmsg with {} items, over the cap of {cap} per request: send fewer at a time",
                    req.list.len()
                ),
            ));
        }
        let now = unix_now();
        let outgoing = req
            .list
            .iter()
            .map(|item| Outgoing {
                to: item.to().to_owned(),
                content: item.content.clone().unwrap_or_default(),
                msg_type: item.msg_type.unwrap_or(MSG_TYPE_TEXT),
                client_msg_id: item
                    .client_msg_id
                    .filter(|&c| c != 0)
                    .map(|c| c.to_string()),
            })
            .collect();
        let (results, wake) = self.send_messages(from, device, outgoing).await?;
        // A refusal's reason goes in the BaseResponse (an item has only
        // its Ret); the request as a whole was handled.
        let why = results
            .iter()
            .find_map(|r| r.as_ref().err().map(|f| f.error.clone()))
            .unwrap_or_default();
        let list: Vec<MicroMsgResponseNew> = req
            .list
            .iter()
            .zip(results)
            .map(|(item, r)| {
                let mut resp = MicroMsgResponseNew {
                    ret: Some(0),
                    to_user_name: Some(SkBuiltinString::new(item.to())),
                    msg_id: Some(0),
                    client_msg_id: item.client_msg_id,
                    create_time: Some(0),
                    server_time: Some(now as u32),
                    msg_type: Some(item.msg_type.unwrap_or(MSG_TYPE_TEXT)),
                    new_msg_id: Some(0),
                };
                match r {
                    Ok(sent) => {
                        resp.msg_id = Some(u32::try_from(sent.msg_id).unwrap_or(0));
                        resp.new_msg_id = Some(sent.msg_id);
                        resp.create_time = Some(sent.create_time as u32);
                    }
                    Err(f) => resp.ret = Some(f.ret),
                }
                resp
            })
            .collect();
        let resp = NewSendMsgResponse {
            base_response: Some(BaseResponse::error(0, why)),
            count: Some(list.len() as u32),
            list,
        };
        Ok((resp.encode_to_vec(), wake))
    }

    /// Stores messages sent from `device` of `from` (committed when this
    /// returns; a ClientMsgId the sender already used gives the original
    /// message): per item the stored message or why not (an unknown
    /// recipient; a message larger than one sync page can carry, which
    /// could never be delivered), and whom to push to.
    pub(super) async fn send_messages(
        &self,
        from: UserId,
        device: &str,
        items: Vec<Outgoing>,
    ) -> Result<(Vec<Result<Sent, Failure>>, Wake), Failure> {
        let auto = self.config.auto_register;
        let now = unix_now();
        let from_device = device.to_owned();
        let page = page_bytes(self.config.max_frame_len);
        // (result, recipient to push to when the message is new)
        let results = with_store(&self.store, move |st| {
            let from_name = st.user_name(from)?.unwrap_or_default();
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let size = wire_len(
                    &from_name,
                    &item.to,
                    &item.content,
                    item.client_msg_id.as_deref(),
                );
                if size > page {
                    out.push((Err(too_large(size, page)), None));
                    continue;
                }
                let to = if item.to == FILEHELPER {
                    // The user's own: reaches the user's other devices.
                    Some(from)
                } else if IdentifyExt::valid_user(&item.to) {
                    st.user(&item.to, auto)?
                } else {
                    None
                };
                let Some(to) = to else {
                    let why = format!("unknown recipient {:?}", item.to);
                    out.push((Err(Failure::new(ret::BAD_RECIPIENT, why)), None));
                    continue;
                };
                let sent = st.send(&NewMessage {
                    from,
                    from_device: from_device.clone(),
                    to,
                    client_msg_id: item.client_msg_id,
                    msg_type: item.msg_type,
                    content: item.content,
                    create_time: now,
                })?;
                let new = (!sent.duplicate).then_some(to);
                out.push((Ok(sent), new));
            }
            Ok(out)
        })
        .await?;
        let mut wake = Wake {
            from,
            from_device: device.to_owned(),
            to: Vec::new(),
        };
        let results = results
            .into_iter()
            .map(|(r, to)| {
                wake.to.extend(to);
                r
            })
            .collect();
        Ok((results, wake))
    }

    /// Pushes newnotify for newly stored messages: to every online device
    /// of each recipient, and to the sender's other devices.
    pub(super) fn wake(&self, mut w: Wake) {
        if w.to.is_empty() {
            return;
        }
        self.push(w.from, Some(&w.from_device));
        w.to.sort_unstable();
        w.to.dedup();
        for to in w.to.into_iter().filter(|&to| to != w.from) {
            self.push(to, None);
        }
    }
}

/// The refusal of a message of `size` bytes ([`wire_len`]) when a page
/// carries `page`.
fn too_large(size: usize, page: usize) -> Failure {
    Failure::new(
        ret::TOO_LARGE,
        format!(
            "message too large: {size} bytes with its names and fields, over the {page} bytes \
             one sync page can carry (pages fit the frame limit clients read); \
             not stored: send it in parts"
        ),
    )
}

/// A device's mailbox position in its SyncKey's keys (0 when it has no
/// [`KEY_MESSAGES`]).
pub(super) fn position(keys: &KeyMap) -> u64 {
    keys.get(&KEY_MESSAGES).copied().unwrap_or(0)
}

/// The SyncKey the server issues for mailbox position `seq`: key 1
/// (profile) and 3 (contacts) stay at 1, key 2 counts messages.
pub fn synckey(seq: u64) -> SyncKey {
    SyncKey {
        keys: vec![(1, 1), (KEY_MESSAGES, seq), (3, 1)],
    }
}

/// The AddMsg of a stored message at mailbox position `seq`.
fn add_msg(m: &StoredMessage, seq: u64) -> AddMsg {
    AddMsg {
        msg_id: Some(i32::try_from(m.msg_id).unwrap_or(0)),
        from_user_name: Some(SkBuiltinString::new(m.from.clone())),
        // A message to oneself is one to filehelper.
        to_user_name: Some(SkBuiltinString::new(if m.to == m.from {
            FILEHELPER.to_owned()
        } else {
            m.to.clone()
        })),
        msg_type: Some(m.msg_type as i32),
        content: Some(SkBuiltinString::new(m.content.clone())),
        create_time: Some(m.create_time as u32),
        new_msg_id: Some(m.msg_id as i64),
        client_msg_id: m.client_msg_id.clone(),
        msg_seq: Some(seq),
    }
}

/// The identified side of a long-link connection.
pub(super) struct Session {
    pub(super) user: UserId,
    pub(super) device: String,
    /// Woken when the user has news ([`Service::push`]).
    pub(super) notify: Arc<Notify>,
}

/// A long-link connection's state as the commands see it.
pub(super) struct Link {
    /// Its entry in the online list.
    pub(super) id: u64,
    pub(super) peer: SocketAddr,
    /// Set by identify.
    pub(super) session: Option<Session>,
    /// The uin and device of the last manualauth or autoauth accepted on
    /// this connection.
    pub(super) auth: Option<(u32, String)>,
}

impl Link {
    /// Whether the connection has authenticated: a manualauth or autoauth
    /// accepted; when identity is not `enforced`, an identify counts too.
    pub(super) fn authenticated(&self, enforced: bool) -> bool {
        self.auth.is_some() || (!enforced && self.session.is_some())
    }
}

/// The answer to one long-link request (sent with the request's seq).
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) cmd: u32,
    pub(super) body: Vec<u8>,
    /// What to do once the answer is written.
    pub(super) then: Then,
}

/// What follows an answer once it is written ([`Service::follow_up`]).
#[derive(Debug)]
pub(super) enum Then {
    Nothing,
    /// newsendmsg: push newnotify to the recipients and the sender's other
    /// devices.
    Push(Wake),
    /// identify: push newnotify to this connection when the device has
    /// data after its confirmed position `acked`.
    CheckPending {
        user: UserId,
        device: String,
        acked: u64,
    },
}

impl Answer {
    fn new(cmd: u32, body: Vec<u8>) -> Answer {
        Answer {
            cmd,
            body,
            then: Then::Nothing,
        }
    }
}

impl Service {
    /// The state of a new long-link connection from `peer`.
    pub(super) fn link(&self, peer: SocketAddr) -> Link {
        Link {
            id: self
                .next_conn
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            peer,
            session: None,
            auth: None,
        }
    }

    /// Runs one long-link request of `link`: heartbeat (noop), manualauth,
    /// autoauth, identify (once), and, once identified, newsync and
    /// newsendmsg. A [`Failure`] closes the connection.
    pub(super) async fn apply(
        &self,
        link: &mut Link,
        cmd: u32,
        body: &[u8],
    ) -> Result<Answer, Failure> {
        match cmd {
            NOOP => Ok(Answer::new(response(NOOP), Vec::new())),
            MANUALAUTH | AUTOAUTH => {
                let (body, accepted) = self.auth(link.peer, cmd == AUTOAUTH, body).await?;
                if let Some((uin, device, _)) = accepted {
                    link.auth = Some((uin, device));
                }
                Ok(Answer::new(response(cmd), body))
            }
            WEBLOGIN_CONFIRM => self.confirm_web_login(link, body).await,
            IDENTIFY if link.session.is_none() => self.identify_link(link, body).await,
            IDENTIFY => Err(Failure::new(
                ret::BAD_BODY,
                "identify on a connection that already identified",
            )),
            NEWSYNC | NEWSENDMSG => {
                let Some(s) = &link.session else {
                    return Err(Failure::new(
                        ret::NOT_IDENTIFIED,
                        format!("cmd {cmd} before identify (cmd {IDENTIFY})"),
                    ));
                };
                let (user, device) = (s.user, s.device.as_str());
                if cmd == NEWSYNC {
                    let body = self.newsync(user, device, body).await?;
                    Ok(Answer::new(response(NEWSYNC), body))
                } else {
                    let (body, wake) = self.newsendmsg(user, device, body).await?;
                    Ok(Answer {
                        cmd: response(NEWSENDMSG),
                        body,
                        then: Then::Push(wake),
                    })
                }
            }
            UPLOADMSGIMG | GETMSGIMG | UPLOADVOICE | DOWNLOADVOICE => {
                let Some(s) = &link.session else {
                    return Err(Failure::new(
                        ret::NOT_IDENTIFIED,
                        format!("cmd {cmd} before identify (cmd {IDENTIFY})"),
                    ));
                };
                self.media_request(s.user, &s.device, cmd, body).await
            }
            _ => Err(Failure::new(
                ret::UNKNOWN_CMD,
                format!(
                    "unknown cmd {cmd} (served: {NOOP} noop, {MANUALAUTH} manualauth, \
                     {AUTOAUTH} autoauth, {IDENTIFY} identify, {NEWSYNC} newsync, \
                     {NEWSENDMSG} newsendmsg, {UPLOADMSGIMG} uploadmsgimg, {GETMSGIMG} getmsgimg, \
                     {UPLOADVOICE} uploadvoice, {DOWNLOADVOICE} downloadvoice, \
                     {WEBLOGIN_CONFIRM} webloginconfirm)"
                ),
            )),
        }
    }

    /// Does what follows a written answer; `true`: write a newnotify to
    /// this connection.
    pub(super) async fn follow_up(&self, then: Then) -> Result<bool, Failure> {
        match then {
            Then::Nothing => Ok(false),
            Then::Push(wake) => {
                self.wake(wake);
                Ok(false)
            }
            Then::CheckPending {
                user,
                device,
                acked,
            } => Ok(with_store(&self.store, move |s| s.pending(user, &device, acked)).await?),
        }
    }

    /// A manualauth or autoauth (either link): the answer's body and, when
    /// it was accepted, who (and one event).
    pub(super) async fn auth(
        &self,
        peer: SocketAddr,
        auto: bool,
        body: &[u8],
    ) -> Result<(Vec<u8>, Auth), Failure> {
        let (answer, accepted) = if auto {
            self.autoauth(body)?
        } else {
            self.manualauth(body).await?
        };
        if let Some((uin, device, _)) = &accepted {
            self.log(Event::Authenticated {
                peer,
                uin: *uin,
                device: device.clone(),
                auto,
            });
        }
        Ok((answer, accepted))
    }

    /// A long-link identify: finds the user, registers the device,
    /// records the position its SyncKey presents and puts the connection
    /// online (before the pending check, so a message stored in between
    /// still wakes it).
    async fn identify_link(&self, link: &mut Link, body: &[u8]) -> Result<Answer, Failure> {
        let ext = IdentifyExt::decode(body)?;
        let device = ext.device.clone().unwrap_or_else(|| "default".to_owned());
        let presented = position(&ext.synckey.to_map());
        // Enforced: only the uin and device this connection authenticated
        // as (the name, if given, must be that uin's).
        let uin = match (&link.auth, self.config.access.enforced_mode()) {
            (_, false) => ext.uin,
            (None, true) => {
                return Err(Failure::new(
                    ret::NOT_AUTHENTICATED,
                    format!(
                        "identify before a manualauth (cmd {MANUALAUTH}) or autoauth (cmd \
                         {AUTOAUTH}) on this connection"
                    ),
                ))
            }
            (Some((uin, authed)), true)
                if *authed != device || (ext.uin != 0 && ext.uin != *uin) =>
            {
                return Err(Failure::new(
                    ret::NOT_AUTHENTICATED,
                    format!(
                        "identify as uin {} device {device:?}, but this connection \
                         authenticated as uin {uin} device {authed:?}",
                        ext.uin
                    ),
                ))
            }
            (Some((uin, _)), true) => *uin,
        };
        let (user, user_name, dev) = self.identify(ext.user, uin, &device).await?;
        let primary = dev.primary;
        let d = device.clone();
        let acked = self
            .with_receipts(move |s| s.confirm(user, &d, presented))
            .await?;
        let notify = Arc::new(Notify::new());
        self.online().entry(user).or_default().push(Online {
            conn: link.id,
            device: device.clone(),
            notify: Arc::clone(&notify),
        });
        link.session = Some(Session {
            user,
            device: device.clone(),
            notify,
        });
        self.log(Event::Identified {
            peer: link.peer,
            user: user_name,
            device: device.clone(),
            primary,
        });
        let reply = IdentifyReply {
            ret: 0,
            uin: u32::try_from(user).unwrap_or(0),
            primary,
        };
        Ok(Answer {
            cmd: response(IDENTIFY),
            body: reply.encode(),
            then: Then::CheckPending {
                user,
                device,
                acked,
            },
        })
    }

    /// Takes connection `conn` of `user` off the online list.
    pub(super) fn offline(&self, user: UserId, conn: u64) {
        let mut online = self.online();
        if let Some(list) = online.get_mut(&user) {
            list.retain(|o| o.conn != conn);
            if list.is_empty() {
                online.remove(&user);
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests;
