//! The store's in-memory view of the database (module docs of
//! [`super`]): names and uins, each mailbox's last position and tail, the
//! devices' confirmed positions; and the write-through steps (send,
//! append, confirm) that change SQLite and the view together.
//!
//! The view is bounded in entries and in bytes: a tail entry always keeps
//! where its message is (position, MsgId, sending device, size), and keeps
//! the message itself only while the bodies held stay within the view's
//! byte budget ([`VIEW_BYTES`] by default); past it the oldest bodies are
//! dropped and read from SQLite when a page needs them.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};

use super::sql::device_row;
use super::{Context, NewMessage, Sent, StoreError, StoredMessage, UserId};

/// Entries kept in memory per mailbox: a device that is at most this far
/// behind syncs without reading the mailbox from SQLite.
pub const TAIL_CAP: usize = 16;
/// Mailbox entries kept in memory in all; past it every tail is dropped.
pub const VIEW_ENTRIES: usize = 1 << 18;
/// Users (names, mailboxes) kept in memory; past it the view starts anew.
pub const VIEW_USERS: usize = 1 << 18;
/// Default byte budget of the message bodies the view holds
/// ([`Store::set_view_budget`](super::Store::set_view_budget)).
pub const VIEW_BYTES: usize = 64 << 20;

/// The store's memory of the database (module docs). Everything in it is
/// what the database says inside the current transaction.
#[derive(Debug)]
pub(super) struct View {
    pub(super) ids: HashMap<String, UserId>,
    pub(super) names: HashMap<UserId, String>,
    pub(super) mailboxes: HashMap<UserId, Mailbox>,
    /// Tail entries held, over all mailboxes.
    pub(super) entries: usize,
    /// Bytes of the bodies held ([`body_cost`] of each entry's; a body two
    /// mailboxes share counts twice).
    pub(super) bytes: usize,
    /// Entries holding a body.
    pub(super) bodies: usize,
    /// The most `bytes` may be.
    pub(super) budget: usize,
    /// Entries that got a body, oldest first: the order bodies are dropped
    /// in. Entries forgotten since stay until they come up (skipped) or
    /// the list is compacted.
    held: VecDeque<(UserId, u64)>,
    /// Users whose mailbox got receipts in the current operation: to
    /// wake once it is committed ([`super::Store::take_wakes`]).
    pub(super) wakes: Vec<UserId>,
    /// Receipts are made ([`super::Store::set_receipts`]).
    pub(super) receipts: bool,
}

impl Default for View {
    fn default() -> Self {
        View::new(VIEW_BYTES)
    }
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

/// What leaving the view freed.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Freed {
    entries: usize,
    bodies: usize,
    bytes: usize,
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
    /// SQLite from then on).
    pub(super) fn forget_through(&mut self, seq: u64) -> Freed {
        let n = self.tail.iter().take_while(|e| e.seq <= seq).count();
        let mut freed = Freed {
            entries: n,
            ..Freed::default()
        };
        for e in self.tail.drain(..n) {
            self.base = e.seq;
            if let Some(b) = &e.body {
                freed.bodies += 1;
                freed.bytes += body_cost(b);
            }
        }
        freed
    }

    /// The tail's entry at position `seq`.
    fn entry_mut(&mut self, seq: u64) -> Option<&mut Entry> {
        let i = seq.checked_sub(self.base + 1)?;
        self.tail
            .get_mut(usize::try_from(i).ok()?)
            .filter(|e| e.seq == seq)
    }
}

/// One mailbox entry in a tail.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) seq: u64,
    pub(super) msg_id: u64,
    /// The sending device, in the sender's own mailbox.
    pub(super) origin: Option<String>,
    /// The message's [`StoredMessage::wire_len`].
    pub(super) size: usize,
    /// The message, while the byte budget allows; else read from SQLite.
    pub(super) body: Option<Arc<StoredMessage>>,
}

/// The bytes a body held in the view counts for: its strings and the
/// struct itself.
pub(super) fn body_cost(m: &StoredMessage) -> usize {
    std::mem::size_of::<StoredMessage>()
        + m.from.len()
        + m.from_device.len()
        + m.to.len()
        + m.client_msg_id.as_ref().map_or(0, String::len)
        + m.content.len()
}

impl View {
    /// An empty view whose bodies stay within `budget` bytes.
    pub(super) fn new(budget: usize) -> View {
        View {
            ids: HashMap::new(),
            names: HashMap::new(),
            mailboxes: HashMap::new(),
            entries: 0,
            bytes: 0,
            bodies: 0,
            budget,
            held: VecDeque::new(),
            wakes: Vec::new(),
            receipts: false,
        }
    }

    /// Forgets everything (the budget stays).
    pub(super) fn reset(&mut self) {
        let receipts = self.receipts;
        *self = View::new(self.budget);
        self.receipts = receipts;
    }

    pub(super) fn freed(&mut self, f: Freed) {
        self.entries = self.entries.saturating_sub(f.entries);
        self.bodies = self.bodies.saturating_sub(f.bodies);
        self.bytes = self.bytes.saturating_sub(f.bytes);
    }

    /// Keeps the view within its bounds: past [`VIEW_USERS`] it starts
    /// anew, past [`VIEW_ENTRIES`] every tail is dropped, past the byte
    /// budget the oldest bodies are dropped (their entries stay).
    pub(super) fn trim(&mut self) {
        if self.names.len() > VIEW_USERS || self.mailboxes.len() > VIEW_USERS {
            self.reset();
            return;
        }
        if self.entries > VIEW_ENTRIES {
            for mb in self.mailboxes.values_mut() {
                mb.forget_through(mb.last_seq);
            }
            self.entries = 0;
            self.bodies = 0;
            self.bytes = 0;
            self.held.clear();
        }
        while self.bytes > self.budget {
            let Some((user, seq)) = self.held.pop_front() else {
                // Cannot happen (every body has its record): start anew
                // rather than stay over.
                self.reset();
                return;
            };
            let body = self
                .mailboxes
                .get_mut(&user)
                .and_then(|mb| mb.entry_mut(seq))
                .and_then(|e| e.body.take());
            if let Some(b) = body {
                self.freed(Freed {
                    entries: 0,
                    bodies: 1,
                    bytes: body_cost(&b),
                });
            }
        }
        // Records of entries gone since: compact when they are most of it
        // (amortised O(1) per body).
        if self.held.len() > 2 * self.bodies + 64 {
            let mailboxes = &mut self.mailboxes;
            self.held.retain(|&(user, seq)| {
                mailboxes
                    .get_mut(&user)
                    .and_then(|mb| mb.entry_mut(seq))
                    .is_some_and(|e| e.body.is_some())
            });
        }
    }

    pub(super) fn remember_user(&mut self, name: &str, id: UserId) {
        self.ids.insert(name.to_owned(), id);
        self.names.insert(id, name.to_owned());
        self.trim();
    }

    /// Counts the body just put in the tail's entry `seq` of `user`'s
    /// mailbox, then trims.
    fn hold(&mut self, user: UserId, seq: u64, body: &StoredMessage) {
        self.bodies += 1;
        self.bytes += body_cost(body);
        self.held.push_back((user, seq));
        self.trim();
    }

    /// The records of held bodies (for the tests' accounting checks).
    #[cfg(test)]
    pub(super) fn held_len(&self) -> usize {
        self.held.len()
    }
}

/// [`Store::send`] inside its savepoint.
pub(super) fn send(tx: &Connection, view: &mut View, m: &NewMessage) -> Result<Sent, StoreError> {
    // A resend (the same sender, ClientMsgId, recipient, type and
    // content) is the message already stored; the same ClientMsgId with
    // anything else is another message (clients make ids from a clock:
    // two sends in one millisecond share one).
    if let Some(cid) = &m.client_msg_id {
        let found = tx
            .prepare_cached(
                "SELECT msg_id, create_time FROM messages
                     WHERE from_user = ?1 AND client_msg_id = ?2 AND to_user = ?3
                         AND msg_type = ?4 AND content = ?5
                     ORDER BY msg_id LIMIT 1",
            )
            .and_then(|mut st| {
                st.query_row(params![m.from, cid, m.to, m.msg_type, m.content], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
                })
                .optional()
            })
            .ctx("looking up a ClientMsgId")?;
        if let Some((msg_id, create_time)) = found {
            return Ok(Sent {
                msg_id: msg_id as u64,
                create_time: create_time as u64,
                duplicate: true,
            });
        }
    }
    tx.prepare_cached(
        "INSERT INTO messages
             (from_user, from_device, to_user, client_msg_id, msg_type, content, create_time)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
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
    let msg_id = tx.last_insert_rowid();
    let stored = Arc::new(StoredMessage {
        msg_id: msg_id as u64,
        from: name_of(tx, view, m.from)?,
        from_device: m.from_device.clone(),
        to: name_of(tx, view, m.to)?,
        client_msg_id: m.client_msg_id.clone(),
        msg_type: m.msg_type,
        content: m.content.clone(),
        create_time: m.create_time,
    });
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
    message: Arc<StoredMessage>,
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
        msg_id: message.msg_id,
        origin: origin.cloned(),
        size: message.wire_len(),
        body: Some(Arc::clone(&message)),
    });
    let over = mb.tail.len().saturating_sub(TAIL_CAP);
    let freed = match over {
        0 => Freed::default(),
        n => mb.forget_through(mb.tail[n - 1].seq),
    };
    view.entries += 1;
    view.freed(freed);
    view.hold(user, seq, &message);
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
    let freed = mb.forget_through(floor);
    view.freed(freed);
    if view.receipts {
        super::receipts::delivered(
            tx,
            view,
            user,
            device,
            acked,
            presented,
            crate::net::unix_now(),
        )?;
    }
    Ok(presented)
}
