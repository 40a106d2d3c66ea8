//! The store's in-memory view of the database (module docs of
//! [`super`]): names and uins, each mailbox's last position and tail, the
//! devices' confirmed positions; and the write-through steps (send,
//! append, confirm) that change SQLite and the view together.

use std::collections::{HashMap, VecDeque};

use rusqlite::{params, Connection, OptionalExtension};

use super::sql::device_row;
use super::{Context, NewMessage, Sent, StoreError, StoredMessage, UserId};

/// Entries kept in memory per mailbox: a device that is at most this far
/// behind syncs without a read from SQLite.
pub const TAIL_CAP: usize = 16;
/// Mailbox entries kept in memory in all; past it every tail is dropped.
pub const VIEW_ENTRIES: usize = 1 << 18;
/// Users (names, mailboxes) kept in memory; past it the view starts anew.
pub const VIEW_USERS: usize = 1 << 18;

/// The store's memory of the database (module docs). Everything in it is
/// what the database says inside the current transaction.
#[derive(Debug, Default)]
pub(super) struct View {
    pub(super) ids: HashMap<String, UserId>,
    pub(super) names: HashMap<UserId, String>,
    pub(super) mailboxes: HashMap<UserId, Mailbox>,
    /// Tail entries held, over all mailboxes.
    pub(super) entries: usize,
}

#[derive(Debug)]
pub(super) struct Mailbox {
    /// The position of the mailbox's last entry.
    pub(super) last_seq: u64,
    /// `tail` holds every entry after `base`, in order, up to `last_seq`.
    pub(super) base: u64,
    pub(super) tail: VecDeque<Entry>,
    /// Confirmed positions of the devices looked at so far.
    pub(super) acked: HashMap<String, u64>,
}

impl Mailbox {
    /// An empty tail at position `last`.
    fn at(last: u64) -> Mailbox {
        Mailbox {
            last_seq: last,
            base: last,
            tail: VecDeque::new(),
            acked: HashMap::new(),
        }
    }

    /// Drops the tail's entries up to position `seq` (they are read from
    /// SQLite from then on); returns how many.
    pub(super) fn forget_through(&mut self, seq: u64) -> usize {
        let n = self.tail.iter().take_while(|e| e.seq <= seq).count();
        if let Some(last) = self.tail.drain(..n).next_back() {
            self.base = last.seq;
        }
        n
    }
}

#[derive(Debug)]
pub(super) struct Entry {
    pub(super) seq: u64,
    pub(super) message: StoredMessage,
    pub(super) origin: Option<String>,
}

impl View {
    /// Forgets a user's mailbox tails when the view is over its bounds.
    pub(super) fn trim(&mut self) {
        if self.names.len() > VIEW_USERS || self.mailboxes.len() > VIEW_USERS {
            *self = View::default();
        } else if self.entries > VIEW_ENTRIES {
            for mb in self.mailboxes.values_mut() {
                mb.forget_through(mb.last_seq);
            }
            self.entries = 0;
        }
    }

    pub(super) fn remember_user(&mut self, name: &str, id: UserId) {
        self.ids.insert(name.to_owned(), id);
        self.names.insert(id, name.to_owned());
        self.trim();
    }
}

/// [`Store::send`] inside its savepoint.
pub(super) fn send(tx: &Connection, view: &mut View, m: &NewMessage) -> Result<Sent, StoreError> {
    // A resent ClientMsgId hits the unique index and stores nothing.
    let stored = tx
        .prepare_cached(
            "INSERT INTO messages
                 (from_user, from_device, to_user, client_msg_id, msg_type, content, create_time)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (from_user, client_msg_id) DO NOTHING",
        )
        .and_then(|mut st| {
            st.execute(params![
                m.from,
                m.from_device,
                m.to,
                m.client_msg_id,
                m.msg_type,
                m.content,
                m.create_time as i64
            ])
        })
        .ctx("storing a message")?;
    if stored == 0 {
        let (msg_id, create_time) = tx
            .prepare_cached(
                "SELECT msg_id, create_time FROM messages
                     WHERE from_user = ?1 AND client_msg_id = ?2",
            )
            .and_then(|mut st| {
                st.query_row(params![m.from, m.client_msg_id], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
                })
            })
            .ctx("looking up a ClientMsgId")?;
        return Ok(Sent {
            msg_id: msg_id as u64,
            create_time: create_time as u64,
            duplicate: true,
        });
    }
    let msg_id = tx.last_insert_rowid();
    let stored = StoredMessage {
        msg_id: msg_id as u64,
        from: name_of(tx, view, m.from)?,
        from_device: m.from_device.clone(),
        to: name_of(tx, view, m.to)?,
        client_msg_id: m.client_msg_id.clone(),
        msg_type: m.msg_type,
        content: m.content.clone(),
        create_time: m.create_time,
    };
    if m.to == m.from {
        append(tx, view, m.to, stored, Some(&m.from_device))?;
    } else {
        append(tx, view, m.to, stored.clone(), None)?;
        append(tx, view, m.from, stored, Some(&m.from_device))?;
    }
    Ok(Sent {
        msg_id: msg_id as u64,
        create_time: m.create_time,
        duplicate: false,
    })
}

/// from the mailbox's primary key; an empty tail).
/// The view of a user's mailbox, loaded when missing (its last position
/// from the mailbox's primary key; an empty tail).
pub(super) fn mailbox<'v>(
    tx: &Connection,
    view: &'v mut View,
    user: UserId,
) -> Result<&'v mut Mailbox, StoreError> {
    if !view.mailboxes.contains_key(&user) {
        let last = tx
            .prepare_cached(
                "SELECT (SELECT COALESCE(MAX(seq), 0) FROM mailbox WHERE user_id = ?1)
                 FROM users WHERE id = ?1",
            )
            .and_then(|mut st| st.query_row([user], |r| r.get::<_, i64>(0)).optional())
            .ctx("reading a mailbox position")?
            .ok_or(StoreError::UnknownUser(user))? as u64;
        view.trim();
        view.mailboxes.insert(user, Mailbox::at(last));
    }
    view.mailboxes
        .get_mut(&user)
        .ok_or(StoreError::UnknownUser(user))
}

/// The name of a user (from the view, or read once).
pub(super) fn name_of(tx: &Connection, view: &mut View, id: UserId) -> Result<String, StoreError> {
    if let Some(name) = view.names.get(&id) {
        return Ok(name.clone());
    }
    let name: String = tx
        .prepare_cached("SELECT name FROM users WHERE id = ?1")
        .and_then(|mut st| st.query_row([id], |r| r.get(0)).optional())
        .ctx("looking up a uin")?
        .ok_or(StoreError::UnknownUser(id))?;
    view.remember_user(&name, id);
    Ok(name)
}

/// Appends a message to a user's mailbox (and to the view's tail).
pub(super) fn append(
    tx: &Connection,
    view: &mut View,
    user: UserId,
    message: StoredMessage,
    origin: Option<&String>,
) -> Result<(), StoreError> {
    let mb = mailbox(tx, view, user)?;
    let seq = mb.last_seq + 1;
    tx.prepare_cached(
        "INSERT INTO mailbox (user_id, seq, msg_id, origin_device) VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut st| st.execute(params![user, seq as i64, message.msg_id as i64, origin]))
    .ctx("appending to a mailbox")?;
    mb.last_seq = seq;
    mb.tail.push_back(Entry {
        seq,
        message,
        origin: origin.cloned(),
    });
    let over = mb.tail.len().saturating_sub(TAIL_CAP);
    let dropped = match over {
        0 => 0,
        n => mb.forget_through(mb.tail[n - 1].seq),
    };
    view.entries = (view.entries + 1).saturating_sub(dropped);
    view.trim();
    Ok(())
}

/// Raises the device's confirmed position to `presented` (capped at the
/// mailbox's end) and returns the confirmed position. Writes only when
/// the position goes up.
pub(super) fn confirm(
    tx: &Connection,
    view: &mut View,
    user: UserId,
    device: &str,
    presented: u64,
) -> Result<u64, StoreError> {
    let mb = mailbox(tx, view, user)?;
    let acked = match mb.acked.get(device) {
        Some(&acked) => acked,
        None => {
            let acked = device_row(tx, user, device)?.acked_seq;
            mb.acked.insert(device.to_owned(), acked);
            acked
        }
    };
    let presented = presented.min(mb.last_seq);
    if presented <= acked {
        return Ok(acked);
    }
    tx.prepare_cached("UPDATE devices SET acked_seq = ?3 WHERE user_id = ?1 AND device = ?2")
        .and_then(|mut st| st.execute(params![user, device, presented as i64]))
        .ctx("confirming a position")?;
    mb.acked.insert(device.to_owned(), presented);
    // Entries every device seen so far has confirmed leave the tail (a
    // device not seen yet, or behind, reads them from SQLite).
    let floor = mb.acked.values().copied().min().unwrap_or(0);
    let dropped = mb.forget_through(floor);
    view.entries = view.entries.saturating_sub(dropped);
    Ok(presented)
}
