//! The client side of receipts: [`report_read`] tells the server a chat is
//! read (statusnotify Code 1 over the short link, as the real clients send
//! it), [`wait_receipt`] waits on the long link for a receipt of one
//! message (`client send --wait`). Receipts arrive as status messages
//! (MsgType 51) that [`crate::net::client::SyncPage::receipts`] holds apart.

use prost::Message;
use tokio::time::{timeout_at, Instant};

use super::client::{ClientError, Config, Session};
use super::messages::{Receipt, ReceiptKind};
use super::shortclient::ShortSession;
use crate::body::messages::{self, StatusNotifyRequest, StatusNotifyResponse};
use crate::body::synckey::SyncKey;

/// statusnotify Code of a read report.
pub const CODE_READ: u32 = 1;

/// Reports the chat with `peer` read up to message `upto` (0: all of it)
/// over the short link.
pub async fn report_read(config: &Config, peer: &str, upto: u64) -> Result<(), ClientError> {
    let mut s = ShortSession::login(config).await?;
    let req = StatusNotifyRequest {
        code: Some(CODE_READ),
        from_user_name: Some(config.user.clone()),
        to_user_name: Some(peer.to_owned()),
        client_msg_id: None,
        msg_id: Some(upto),
    };
    let answer = s.call("statusnotify", &req.encode_to_vec()).await?;
    let resp: StatusNotifyResponse = messages::decode("StatusNotifyResponse", &answer)?;
    match resp.base_response {
        Some(b) if b.ret.unwrap_or(0) != 0 => Err(ClientError::Refused {
            what: "statusnotify",
            ret: b.ret.unwrap_or(0),
            message: b.message().to_owned(),
        }),
        _ => Ok(()),
    }
}

/// Waits on the long link, as `config`'s device, for a receipt of kind
/// `kind` (or a read receipt, which implies delivery) for message
/// `msg_id`, until `deadline` (`None`: timed out). What the device syncs
/// on the way is confirmed, as `listen` confirms what it shows.
pub async fn wait_receipt(
    config: &Config,
    msg_id: u64,
    kind: ReceiptKind,
    deadline: Instant,
) -> Result<Option<Receipt>, ClientError> {
    let wanted =
        |r: &Receipt| r.msg_id == msg_id && (r.kind == kind || r.kind == ReceiptKind::Read);
    let run = async {
        let mut s = Session::connect(config, SyncKey::default()).await?;
        loop {
            let page = s.sync().await?;
            let found = page.receipts.iter().find(|r| wanted(r)).cloned();
            s.adopt(page.synckey);
            if let Some(r) = found {
                s.confirm().await?;
                return Ok(Some(r));
            }
            if !page.more {
                s.wait_push().await?;
            }
        }
    };
    match timeout_at(deadline, run).await {
        Ok(r) => r,
        Err(_) => Ok(None),
    }
}
