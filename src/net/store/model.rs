//! The store's model: what it takes and gives.

/// A user's uin (the users table's row id).
pub type UserId = i64;

/// What a device is, as registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub user: UserId,
    pub device: String,
    pub primary: bool,
    pub acked_seq: u64,
}

/// A message to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub from: UserId,
    pub from_device: String,
    pub to: UserId,
    /// `None`: the sender gave no id, so a resend cannot be recognised.
    pub client_msg_id: Option<String>,
    pub msg_type: u32,
    pub content: String,
    /// Unix seconds.
    pub create_time: u64,
}

/// The outcome of [`Store::send`](super::Store::send).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub msg_id: u64,
    pub create_time: u64,
    /// The ClientMsgId was already stored: this is the original message,
    /// nothing was stored or should be delivered again.
    pub duplicate: bool,
}

/// A stored message with names resolved.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredMessage {
    pub msg_id: u64,
    pub from: String,
    pub from_device: String,
    pub to: String,
    pub client_msg_id: Option<String>,
    pub msg_type: u32,
    pub content: String,
    pub create_time: u64,
}

/// Bytes a message's fixed fields take at most in a long-link sync
/// answer, beyond its strings ([`wire_len`]): the CmdItem and AddMsg tags,
/// lengths and numbers at their longest varints, and the list entry's tag
/// and length, the MsgSeq (129 bytes, rounded up).
pub const MESSAGE_OVERHEAD: usize = 144;

/// An upper bound of the bytes a message takes in a long-link newsync
/// answer (its CmdItem in the CmdList, the AddMsg inside): the strings it
/// carries (sender and recipient names, content, ClientMsgId) and
/// [`MESSAGE_OVERHEAD`]. Pages are capped in these bytes, and a message
/// over one page's worth is refused when it is sent.
pub fn wire_len(from: &str, to: &str, content: &str, client_msg_id: Option<&str>) -> usize {
    MESSAGE_OVERHEAD + from.len() + to.len() + content.len() + client_msg_id.map_or(0, str::len)
}

impl StoredMessage {
    /// [`wire_len`] of this message.
    pub fn wire_len(&self) -> usize {
        wire_len(
            &self.from,
            &self.to,
            &self.content,
            self.client_msg_id.as_deref(),
        )
    }
}

/// How much one sync page may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit {
    /// Mailbox entries: messages for the device and its own sends, which
    /// the page skips.
    pub entries: usize,
    /// Bytes of the messages for the device, as [`wire_len`] counts them.
    /// A page holds at least one message whatever its size (ContinueFlag
    /// says when more follow).
    pub bytes: usize,
}

impl PageLimit {
    /// Up to `entries` entries, and no cap in bytes.
    pub fn entries(entries: usize) -> PageLimit {
        PageLimit {
            entries,
            bytes: usize::MAX,
        }
    }
}

/// A number alone caps entries ([`PageLimit::entries`]).
impl From<usize> for PageLimit {
    fn from(entries: usize) -> PageLimit {
        PageLimit::entries(entries)
    }
}

/// One page of a device's mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPage {
    /// Messages for the device, in mailbox order (its own sends left out).
    pub messages: Vec<StoredMessage>,
    /// The mailbox position of each message (as many as `messages`): a
    /// client that handles only the first few can confirm up to the last
    /// of them.
    pub positions: Vec<u64>,
    /// The mailbox position the new SyncKey carries.
    pub next_seq: u64,
    /// More entries follow `next_seq`.
    pub more: bool,
}
