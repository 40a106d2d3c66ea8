//! Read reports (the store's receipts are in `store/receipts.rs`):
//! statusnotify (cgi 251 on the short link) with Code 1 says the chat with
//! ToUserName is read, as the web's webwxstatusnotify Code 1 does; other
//! codes (3: the client started) are answered and change nothing. The
//! receipts it makes reach the sender's devices as status messages
//! (MsgType 51), pushed once committed ([`Service::with_receipts`]).

use prost::Message;

use super::service::{unix_now, Failure, Service};
use crate::body::messages::{self, BaseResponse, StatusNotifyRequest, StatusNotifyResponse};
use crate::net::messages::{ret, IdentifyExt};
use crate::net::store::UserId;

/// statusnotify Code: the chat is read.
pub const CODE_READ: u32 = 1;

impl Service {
    /// A read report of `device` of `user` for the chat with `peer` (a
    /// user name) up to MsgId `upto` (0: all): how many receipts it made.
    pub(super) async fn report_read(
        &self,
        user: UserId,
        device: &str,
        peer: &str,
        upto: u64,
    ) -> Result<usize, Failure> {
        if !IdentifyExt::valid_user(peer) {
            return Err(Failure::new(ret::BAD_RECIPIENT, "invalid user name"));
        }
        let (peer, device) = (peer.to_owned(), device.to_owned());
        let upto = if upto == 0 { u64::MAX } else { upto };
        let now = unix_now();
        let made = self
            .with_receipts(move |st| match st.user(&peer, false)? {
                Some(p) => st.report_read(user, &device, p, upto, now).map(Some),
                None => Ok(None),
            })
            .await?;
        made.ok_or_else(|| Failure::new(ret::BAD_RECIPIENT, "unknown user in the read report"))
    }

    /// cgi statusnotify: the StatusNotifyResponse body.
    pub(super) async fn statusnotify(
        &self,
        user: UserId,
        device: &str,
        body: &[u8],
    ) -> Result<Vec<u8>, Failure> {
        let req: StatusNotifyRequest = messages::decode("StatusNotifyRequest", body)?;
        if req.code == Some(CODE_READ) {
            let peer = req.to_user_name.clone().unwrap_or_default();
            self.report_read(user, device, &peer, req.msg_id.unwrap_or(0))
                .await?;
        }
        Ok(StatusNotifyResponse {
            base_response: Some(BaseResponse::error(0, "")),
            msg_id: Some(0),
            new_msg_id: Some(0),
        }
        .encode_to_vec())
    }
}
