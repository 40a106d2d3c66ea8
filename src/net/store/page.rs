//! One sync page: the mailbox entries after a device's confirmed
//! position, capped in entries and in bytes ([`PageLimit`]), at least one
//! message whatever its size. The entries come from the view's tail when
//! the page starts inside it, else from SQLite (positions, MsgIds and
//! sizes only); then only the chosen messages are read, from the view or
//! SQLite: a page holds no more than its limit, or one message.

use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};

use super::model::MESSAGE_OVERHEAD;
use super::sql::{message_row, MESSAGE_COLUMNS, MESSAGE_JOIN};
use super::view::{mailbox, View};
use super::{Context, PageLimit, StoreError, StoredMessage, UserId};

/// A message of a page and its mailbox position.
pub(super) type Positioned = (u64, StoredMessage);

/// One mailbox entry as a page is planned.
struct Slot {
    seq: u64,
    msg_id: u64,
    /// The device's own send: skipped, so it costs no bytes.
    mine: bool,
    /// [`StoredMessage::wire_len`].
    size: usize,
    /// The message when the view holds it.
    body: Option<Arc<StoredMessage>>,
}

/// The entries a page takes from `slots` (in mailbox order), and whether
/// entries are left after them. Stops at `limit.entries` entries, and
/// before a message that would take the page over `limit.bytes` unless
/// the page has no message yet.
fn plan(
    slots: impl Iterator<Item = Result<Slot, StoreError>>,
    limit: PageLimit,
) -> Result<(Vec<Slot>, bool), StoreError> {
    let mut taken: Vec<Slot> = Vec::new();
    let (mut bytes, mut messages) = (0usize, 0usize);
    for slot in slots {
        let slot = slot?;
        if taken.len() >= limit.entries.max(1) {
            return Ok((taken, true));
        }
        if !slot.mine {
            if messages > 0 && bytes.saturating_add(slot.size) > limit.bytes {
                return Ok((taken, true));
            }
            bytes = bytes.saturating_add(slot.size);
            messages += 1;
        }
        taken.push(slot);
    }
    Ok((taken, false))
}

/// The messages of one page for `device` of `user` after position `from`
/// with their positions, the position the page ends at, and whether more
/// entries follow.
pub(super) fn page(
    tx: &Connection,
    view: &mut View,
    user: UserId,
    device: &str,
    from: u64,
    limit: PageLimit,
) -> Result<(Vec<Positioned>, u64, bool), StoreError> {
    let mb = mailbox(tx, view, user)?;
    let (taken, more) = if from >= mb.base {
        // Inside the tail: no read of the mailbox.
        let slots = mb.tail.iter().skip_while(|e| e.seq <= from).map(|e| {
            Ok(Slot {
                seq: e.seq,
                msg_id: e.msg_id,
                mine: e.origin.as_deref() == Some(device),
                size: e.size,
                body: e.body.clone(),
            })
        });
        plan(slots, limit)?
    } else {
        let mut st = tx
            .prepare_cached(
                "SELECT b.seq, b.msg_id, b.origin_device IS ?4,
                     octet_length(f.name) + octet_length(t.name) + octet_length(m.content)
                     + COALESCE(octet_length(m.client_msg_id), 0)
                 FROM mailbox b JOIN messages m ON m.msg_id = b.msg_id
                     JOIN users f ON f.id = m.from_user JOIN users t ON t.id = m.to_user
                 WHERE b.user_id = ?1 AND b.seq > ?2
                 ORDER BY b.seq LIMIT ?3",
            )
            .ctx("preparing a sync")?;
        let rows = st
            .query_map(
                params![
                    user,
                    from as i64,
                    limit.entries.max(1).saturating_add(1) as i64,
                    device
                ],
                |r| {
                    Ok(Slot {
                        seq: r.get::<_, i64>(0)? as u64,
                        msg_id: r.get::<_, i64>(1)? as u64,
                        mine: r.get(2)?,
                        size: MESSAGE_OVERHEAD + r.get::<_, i64>(3)? as usize,
                        body: None,
                    })
                },
            )
            .ctx("reading a mailbox")?;
        plan(rows.map(|r| r.ctx("reading a mailbox")), limit)?
    };
    let next_seq = taken.last().map_or(from, |s| s.seq);
    let mut messages = Vec::new();
    for slot in taken.into_iter().filter(|s| !s.mine) {
        messages.push((
            slot.seq,
            match slot.body {
                Some(b) => Arc::unwrap_or_clone(b),
                None => message(tx, slot.msg_id)?,
            },
        ));
    }
    Ok((messages, next_seq, more))
}

/// The message with id `msg_id`, from SQLite.
fn message(tx: &Connection, msg_id: u64) -> Result<StoredMessage, StoreError> {
    tx.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM {MESSAGE_JOIN} WHERE m.msg_id = ?1"
    ))
    .and_then(|mut st| st.query_row([msg_id as i64], message_row).optional())
    .ctx("reading a message")?
    .ok_or(StoreError::MissingMessage(msg_id))
}
