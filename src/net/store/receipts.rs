//! Receipts: per message and device, when it was delivered (the device
//! presented a SyncKey that covers it) and read (a read report of the
//! device: statusnotify Code 1, "the chat with PEER is read", as the real
//! clients send it, protocol.md section 6). Each new receipt is also a
//! status message (MsgType 51) from the recipient, appended to the
//! sender's mailbox only: every device of the sender gets it by newsync
//! like any message, an offline one when it comes back, in order.
//!
//! A message to oneself, and a status message itself, get no receipts.
//! Read reports keep a mark per (reader, peer): the mailbox position up
//! to which that chat was reported read, so each report reads only the
//! entries after it.

use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};

use super::view::{append, name_of, View};
use super::{Context, StoreError, StoredMessage, UserId};
use crate::net::messages::{Receipt, ReceiptKind};
use crate::net::MSG_TYPE_STATUS;

/// The receipts the mailbox entries `from_seq` (excluded) to `to_seq` of
/// `user` give: each message another user sent to `user` there is now
/// delivered to `device`.
pub(super) fn delivered(
    tx: &Connection,
    view: &mut View,
    user: UserId,
    device: &str,
    from_seq: u64,
    to_seq: u64,
    now: u64,
) -> Result<(), StoreError> {
    let found: Vec<(i64, i64)> = {
        let mut st = tx
            .prepare_cached(
                "SELECT mb.msg_id, m.from_user FROM mailbox mb JOIN messages m ON m.msg_id = mb.msg_id
                 WHERE mb.user_id = ?1 AND mb.seq > ?2 AND mb.seq <= ?3 AND m.to_user = ?1
                     AND m.from_user != ?1 AND m.msg_type != ?4
                 ORDER BY mb.seq",
            )
            .ctx("finding delivered messages")?;
        let rows = st
            .query_map(
                params![user, from_seq as i64, to_seq as i64, MSG_TYPE_STATUS],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .ctx("finding delivered messages")?;
        rows.collect::<Result<_, _>>()
            .ctx("finding delivered messages")?
    };
    for (msg_id, sender) in found {
        record(
            tx,
            view,
            msg_id,
            user,
            sender,
            device,
            ReceiptKind::Delivered,
            now,
        )?;
    }
    Ok(())
}

/// A read report of `device` of `user` for the chat with `peer`: every
/// message of `peer` to `user` in the mailbox up to MsgId `upto` (all:
/// `u64::MAX`) that the chat's mark does not cover is read (and, if no
/// receipt said so yet, delivered to the device: it was shown). How many
/// receipts it made.
#[allow(clippy::too_many_arguments)]
pub(super) fn read(
    tx: &Connection,
    view: &mut View,
    user: UserId,
    device: &str,
    peer: UserId,
    upto: u64,
    now: u64,
) -> Result<usize, StoreError> {
    let upto = upto.min(i64::MAX as u64) as i64;
    let mark: i64 = tx
        .prepare_cached("SELECT seq FROM read_marks WHERE user_id = ?1 AND peer = ?2")
        .and_then(|mut st| st.query_row(params![user, peer], |r| r.get(0)).optional())
        .ctx("reading a read mark")?
        .unwrap_or(0);
    let found: Vec<(i64, i64)> = {
        let mut st = tx
            .prepare_cached(
                "SELECT mb.seq, mb.msg_id FROM mailbox mb JOIN messages m ON m.msg_id = mb.msg_id
                 WHERE mb.user_id = ?1 AND mb.seq > ?2 AND m.to_user = ?1
                     AND m.from_user = ?3 AND m.msg_type != ?4 AND m.msg_id <= ?5
                 ORDER BY mb.seq",
            )
            .ctx("finding read messages")?;
        let rows = st
            .query_map(params![user, mark, peer, MSG_TYPE_STATUS, upto], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .ctx("finding read messages")?;
        rows.collect::<Result<_, _>>()
            .ctx("finding read messages")?
    };
    let Some(&(last, _)) = found.last() else {
        return Ok(0);
    };
    tx.prepare_cached(
        "INSERT INTO read_marks (user_id, peer, seq) VALUES (?1, ?2, ?3)
         ON CONFLICT (user_id, peer) DO UPDATE SET seq = excluded.seq",
    )
    .and_then(|mut st| st.execute(params![user, peer, last]))
    .ctx("moving a read mark")?;
    let mut made = 0;
    for (_, msg_id) in found {
        record(
            tx,
            view,
            msg_id,
            user,
            peer,
            device,
            ReceiptKind::Delivered,
            now,
        )?;
        if record(tx, view, msg_id, user, peer, device, ReceiptKind::Read, now)? {
            made += 1;
        }
    }
    Ok(made)
}

/// Records one receipt; when it is new, appends its status message to
/// the sender's mailbox and notes the sender to wake. Whether it was new.
#[allow(clippy::too_many_arguments)]
fn record(
    tx: &Connection,
    view: &mut View,
    msg_id: i64,
    user: UserId,
    sender: UserId,
    device: &str,
    kind: ReceiptKind,
    now: u64,
) -> Result<bool, StoreError> {
    let new = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO receipts (msg_id, device, kind, time) VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut st| st.execute(params![msg_id, device, kind as i64, now as i64]))
        .ctx("recording a receipt")?
        == 1;
    if !new {
        return Ok(false);
    }
    let by = name_of(tx, view, user)?;
    let receipt = Receipt {
        kind,
        msg_id: msg_id as u64,
        user: by.clone(),
        device: device.to_owned(),
        time: now,
    };
    let content = receipt.content();
    tx.prepare_cached(
        "INSERT INTO messages
             (from_user, from_device, to_user, client_msg_id, msg_type, content, create_time)
             VALUES (?1, ?2, ?3, NULL, ?4, ?5, ?6)",
    )
    .and_then(|mut st| {
        st.execute(params![
            user,
            device,
            sender,
            MSG_TYPE_STATUS,
            content,
            now as i64
        ])
    })
    .ctx("storing a receipt")?;
    let stored = Arc::new(StoredMessage {
        msg_id: tx.last_insert_rowid() as u64,
        from: by,
        from_device: device.to_owned(),
        to: name_of(tx, view, sender)?,
        client_msg_id: None,
        msg_type: MSG_TYPE_STATUS,
        content,
        create_time: now,
    });
    append(tx, view, sender, stored, None)?;
    view.wakes.push(sender);
    Ok(true)
}

/// The receipts of message `msg_id`: (device, kind, time), in the order
/// they came.
pub(super) fn of_message(
    tx: &Connection,
    msg_id: u64,
) -> Result<Vec<(String, ReceiptKind, u64)>, StoreError> {
    let mut st = tx
        .prepare_cached(
            "SELECT device, kind, time FROM receipts WHERE msg_id = ?1 ORDER BY time, kind, device",
        )
        .ctx("reading receipts")?;
    let rows = st
        .query_map([msg_id as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)? as u64,
            ))
        })
        .ctx("reading receipts")?;
    let mut out = Vec::new();
    for row in rows {
        let (device, kind, time) = row.ctx("reading receipts")?;
        let kind = if kind == ReceiptKind::Read as i64 {
            ReceiptKind::Read
        } else {
            ReceiptKind::Delivered
        };
        out.push((device, kind, time));
    }
    Ok(out)
}
