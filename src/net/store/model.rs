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

/// One page of a device's mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPage {
    /// Messages for the device, in mailbox order (its own sends left out).
    pub messages: Vec<StoredMessage>,
    /// The mailbox position the new SyncKey carries.
    pub next_seq: u64,
    /// More entries follow `next_seq`.
    pub more: bool,
}
