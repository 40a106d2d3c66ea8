//! The reference server and client (`syncscope serve`, `syncscope client`)
//! over tokio. They speak the plaintext long link of protocol.md sections
//! 2, 3 and 7, the short link and the web protocol (section 6), the long
//! link with the same frame codec as the analyzer
//! ([`crate::proto::longlink::Header`]), so whatever the server reads, the
//! analyzer can dissect.
//!
//! ```text
//! frame.rs      check-then-parse framing over the shared Header codec (sans-IO) + async Connection
//! media.rs      client side of images and voice: send_image (short link, parallel parts),
//!               send_voice (long link, chunks), fetch (getmsgimg, downloadvoice)
//! messages.rs   the protobuf bodies (proto/wechat.proto) and the identify extension
//! store/        durable store: SQLite (WAL) on disk or in memory
//!   mod.rs        Store: users, devices, send (exactly once), sync, confirm, pending
//!   model.rs sql.rs view.rs commit.rs   types; schema and upgrade; in-memory view; group commit
//! server/       run(listener, store, config, shutdown): accept loop, caps, drain; bind (backlog)
//!   access.rs     Access: test mode or identity enforced; the per-address cap before auth
//!   conn.rs       one connection: the long-link frame loop (read, answer, push, idle timer)
//!   service.rs    the command logic without sockets, shared by all three links
//!   http.rs       HTTP on the same port: request reader over proto::http, the serving loop
//!   shortlink.rs  route: POST /cgi-bin/micromsg-bin/newsync|newsendmsg|manualauth|autoauth
//!                 and the media cgis
//!   media.rs      uploadmsgimg, getmsgimg, uploadvoice, downloadvoice; the thumbnail
//!   receipts.rs   statusnotify: read reports (receipts themselves: store/receipts.rs)
//!   web/          route: web WeChat: jslogin ... synccheck (long poll), webwxsync, webwxsendmsg;
//!                 session.rs: logins and sessions (WebState)
//! client.rs     manualauth/autoauth, identify, heartbeat, newsync, newsendmsg; send with retries,
//!               web login confirmation; listen with reconnects (client/listen.rs)
//! receipts.rs   client side of receipts: report_read (statusnotify), wait_receipt
//! shortclient.rs the same over the short link (HTTP POST per request, session cookie, newsync polls)
//! webclient.rs  the same over the web endpoints (login, webwxinit, synccheck, webwxsync, webwxsendmsg)
//!   http.rs       a small HTTP/1.1 client over crate::proto::http's codec, one keep-alive connection
//!   answers.rs    its reading of the answers (JavaScript lines, ticket XML, JSON) without I/O
//! ```
//!
//! # Long-link conversation
//!
//! The numbers (cmd, seq) are [`crate::proto::commands`]'s.
//!
//! | request (cmd, seq) | answer |
//! |---|---|
//! | manualauth 253, n | 1000000253: `ManualAuthResponse` (uin, autoauth key) |
//! | autoauth 254, n | 1000000254: `AutoAuthResponse` (uin) |
//! | identify 205, 0xFFFFFFFE | 1000000205: four u32 words `ret, uin, role (1 primary, 2 secondary), 0`, then newnotify if the device has data waiting |
//! | noop (heartbeat) 6, 0xFFFFFFFF | 1000000006, same seq, empty body |
//! | newsync 121, n | 1000000121: `NewSyncResponse` (AddMsg items, ContinueFlag, new KeyBuf) |
//! | newsendmsg 237, n | 1000000237: `NewSendMsgResponse` with the server MsgId of every item |
//! | uploadmsgimg 9, n / uploadvoice 19, n | 1000000009 / 1000000019: `UploadMsgImgResponse` / `UploadVoiceResponse` per part (MsgId once whole; see `server/media.rs`) |
//! | getmsgimg 10, n / downloadvoice 20, n | 1000000010 / 1000000020: a range of the stored object |
//! | webloginconfirm 900001, n (syncscope's) | 1000900001: `WebLoginConfirmResponse` (a device confirms a pending web login) |
//! | (server push) | newnotify 24, seq 0, empty body: "sync now" |
//! | bad input | [`ERROR`](crate::proto::commands::ERROR) (10^9) with the request's seq (0 when unknown), body `BaseResponse {Ret, ErrMsg}`, then close |
//!
//! The short link (HTTP on the same port, told apart by the first byte)
//! carries the same newsync and newsendmsg bodies; see `server/shortlink.rs`.
//!
//! The identify body is protocol.md section 2's; syncscope extends its
//! tail (see [`messages::IdentifyExt`]): the network-id string is the
//! device id and the length-prefixed context string is the user name.

pub mod client;
pub mod frame;
pub mod media;
pub mod messages;
pub mod receipts;
pub mod server;
pub mod shortclient;
pub mod store;
pub mod webclient;

/// Message type of a text message (protocol.md section 6).
pub const MSG_TYPE_TEXT: u32 = 1;
/// Message type of an image (uploaded with uploadmsgimg).
pub const MSG_TYPE_IMAGE: u32 = 3;
/// Message type of a voice recording (uploaded with uploadvoice).
pub const MSG_TYPE_VOICE: u32 = 34;
/// Message type of a status notify: what carries receipts to the sender
/// ([`messages::Receipt`]).
pub const MSG_TYPE_STATUS: u32 = 51;
pub use crate::body::messages::CMDID_ADDMSG;
/// The built-in contact every user has (as on the real service): what is
/// sent to it is the user's message to themselves, delivered to their
/// other devices (and shown as sent to `filehelper`).
pub const FILEHELPER: &str = "filehelper";
/// SyncKey key id that counts the messages of a user's mailbox.
pub const KEY_MESSAGES: u32 = 2;

/// Seconds since the Unix epoch (0 if the clock is before it): message
/// times of the server and both clients.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
