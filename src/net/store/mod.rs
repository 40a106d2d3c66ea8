//! The reference server's store: SQLite through rusqlite (bundled), on disk
//! in WAL mode with `synchronous=FULL`, or in memory (`--memory`). The
//! store is synchronous; the server calls it from blocking tasks.
//!
//! Model (protocol.md section 7):
//!
//! * users: a name and a uin (the row id).
//! * devices: per (user, device id): primary (the first device the user
//!   ever identified with) or secondary, and `acked_seq`, the highest
//!   mailbox sequence the device confirmed by presenting a SyncKey.
//! * messages: server MsgId, sender and sending device, recipient,
//!   ClientMsgId (unique per sender: exactly once), type, content, time.
//! * mailbox: per user, a sequence of message ids. A message goes to the
//!   recipient's mailbox and the sender's (marked with the sending device,
//!   which does not get its own message back).
//!
//! A device's SyncKey carries its position in the mailbox under key id 2
//! ([`crate::net::KEY_MESSAGES`]). Data counts as consumed only when the
//! device presents a key that covers it; until then it is offered again.
//! Nothing is deleted: the primary device's history stays whole.
//!
//! Every write method is atomic: it runs in a savepoint, which is a
//! transaction of its own when called alone; inside a batch's operation
//! the operation's savepoint covers it.
//!
//! The view: the store keeps what the hot path asks for in memory, so a
//! send or a sync runs few statements: user names and uins, each mailbox's
//! last position, the confirmed position of devices, and the last
//! [`TAIL_CAP`] entries of each mailbox that not every device seen has
//! confirmed (a sync that starts inside them reads no mailbox rows). It is
//! loaded lazily from the database and bounded in entries
//! ([`VIEW_ENTRIES`], [`VIEW_USERS`]) and in bytes: message bodies stay in
//! it within a byte budget ([`VIEW_BYTES`]), the oldest dropped first and
//! read from SQLite when a page needs them. It is thrown away whenever a
//! statement, an operation or a batch fails (it is rebuilt from what was
//! really committed). This connection must be the database's only writer,
//! which the server's single writer thread guarantees.
//!
//! Pages: a sync answer is one page, capped in entries and in bytes
//! ([`PageLimit`], at least one message), and only the page's messages
//! are read: nothing is built whole.
//!
//! Group commit: a [`Committer`] is one writer thread in front of the
//! store. Callers submit operations; the thread takes everything queued,
//! runs it in one transaction (each operation in its own savepoint, so a
//! failing operation rolls back only itself), commits once (one fsync on
//! disk) and only then hands each caller its result. Durability costs one
//! fsync per batch, not per message.
//!
//! ```text
//! mod.rs     Store: the public API (users, devices, send, sync, confirm, pending), atomic()
//! model.rs   the types it takes and gives (UserId, Device, NewMessage, Sent, StoredMessage,
//!            SyncPage, PageLimit) and wire_len, the size pages are capped in
//! page.rs    one sync page: entries from the view's tail or SQLite, capped, then their messages
//! sql.rs     the schema, its version and upgrade, opening, the shared statements and row readers
//! view.rs    the in-memory view (bounded in entries and body bytes) and the write-through
//!            steps that keep it and SQLite alike
//! commit.rs  the group-commit writer thread (Committer), batches and savepoints, checkpoints
//! ```

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

mod check;
mod commit;
mod media;
mod model;
mod page;
mod receipts;
mod repair;
mod sql;
mod view;

#[cfg(test)]
mod tests;

pub use check::{CheckReport, Counts, MARKER_FILE};
pub use commit::{BatchStats, Committer, MAX_BATCH};
pub use media::{Media, Part, PartOutcome};

use crate::net::messages::ReceiptKind;
pub use model::{
    wire_len, Device, NewMessage, PageLimit, Sent, StoredMessage, SyncPage, UserId,
    MESSAGE_OVERHEAD,
};
pub use repair::{RepairReport, PROBE_MISSES};
pub use sql::DB_FILE;
pub use view::{TAIL_CAP, VIEW_BYTES, VIEW_ENTRIES, VIEW_USERS};

use sql::{device_row, message_row, MESSAGE_COLUMNS, MESSAGE_JOIN, SCHEMA_VERSION};
use view::{confirm, mailbox, name_of, send, View};

/// A store failure, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {context}: {source}")]
    Sqlite {
        context: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot create the data directory {}: {source}", path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("store: device {device:?} of user {user} is not registered")]
    UnknownDevice { user: UserId, device: String },
    #[error("store: unknown user {0}")]
    UnknownUser(UserId),
    /// The batch's commit failed: nothing of it was stored.
    #[error("store: committing a batch failed, nothing of it was stored: {0}")]
    Commit(String),
    /// An operation panicked (it was rolled back).
    #[error("store: an operation panicked and was rolled back: {0}")]
    Panicked(String),
    /// The writer thread is gone (the server is stopping).
    #[error("store: the writer thread has stopped")]
    WriterGone,
    /// A mailbox names a message the messages table does not have.
    #[error("store: message {0} is in a mailbox but not stored (the store is damaged: run `syncscope serve --check`)")]
    MissingMessage(u64),
    /// The data directory held a store (its marker, or a WAL with data,
    /// says so) and the database is missing or empty.
    #[error("store: {} is {what}, but {} shows this directory held a store: its data is not there. Nothing was written. Restore the directory from a backup; to start an empty store instead, move the directory aside", path.display(), evidence.display())]
    Lost {
        path: PathBuf,
        /// The marker, or the WAL with data.
        evidence: PathBuf,
        what: &'static str,
    },
    /// The database failed its start-up check.
    #[error("{}", check::damaged_message(.path, .problems))]
    Damaged {
        path: PathBuf,
        problems: Vec<String>,
    },
    /// `--repair` could not, or had nothing to do.
    #[error("store: repair: {0}")]
    Repair(String),
    /// The data directory's marker could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Marker {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The database was written by a newer syncscope.
    #[error("store: schema version {0} is newer than this syncscope's ({SCHEMA_VERSION}); use a newer syncscope or another --data directory")]
    Version(i64),
}

/// Adds what was being done to a rusqlite error.
trait Context<T> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError>;
}

impl<T> Context<T> for rusqlite::Result<T> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Sqlite { context, source })
    }
}

/// The store.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: Option<PathBuf>,
    /// What the hot path needs, in memory (module docs).
    view: View,
    /// Inside an operation's savepoint ([`Store::in_savepoint`]): methods
    /// need no savepoint of their own.
    in_op: bool,
}

impl Store {
    /// Sets the byte budget of the message bodies the in-memory view holds
    /// ([`VIEW_BYTES`] by default); bodies past it are read from SQLite
    /// when a page needs them.
    pub fn set_view_budget(&mut self, bytes: usize) {
        self.view.budget = bytes;
        self.view.trim();
    }

    /// The database file (`None` in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The uin of `name`, creating the user when `create` is set.
    pub fn user(&mut self, name: &str, create: bool) -> Result<Option<UserId>, StoreError> {
        if let Some(&id) = self.view.ids.get(name) {
            return Ok(Some(id));
        }
        let found = self
            .conn
            .prepare_cached("SELECT id FROM users WHERE name = ?1")
            .and_then(|mut st| st.query_row([name], |r| r.get(0)).optional())
            .ctx("looking up a user")?;
        let id = match found {
            Some(id) => id,
            None if create => {
                self.conn
                    .prepare_cached("INSERT INTO users (name) VALUES (?1)")
                    .and_then(|mut st| st.execute([name]))
                    .ctx("creating a user")?;
                self.conn.last_insert_rowid()
            }
            None => return Ok(None),
        };
        self.view.remember_user(name, id);
        Ok(Some(id))
    }

    /// The name of the user with uin `id`.
    pub fn user_name(&mut self, id: UserId) -> Result<Option<String>, StoreError> {
        match name_of(&self.conn, &mut self.view, id) {
            Ok(name) => Ok(Some(name)),
            Err(StoreError::UnknownUser(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Registers a device (the user's first one is primary) and returns it.
    pub fn register_device(&mut self, user: UserId, device: &str) -> Result<Device, StoreError> {
        self.register_device_as(user, device, true)
    }

    /// Registers a device and returns it: primary when `may_be_primary`
    /// and the user has no primary yet (a web session is never primary:
    /// the phone that logs in after it is).
    pub fn register_device_as(
        &mut self,
        user: UserId,
        device: &str,
        may_be_primary: bool,
    ) -> Result<Device, StoreError> {
        self.atomic(|tx, view| {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO devices (user_id, device, is_primary)
                 VALUES (?1, ?2, ?3 AND NOT EXISTS
                     (SELECT 1 FROM devices WHERE user_id = ?1 AND is_primary))",
            )
            .and_then(|mut st| st.execute(params![user, device, may_be_primary]))
            .ctx("registering a device")?;
            let d = device_row(tx, user, device)?;
            if let Some(mb) = view.mailboxes.get_mut(&user) {
                mb.acked.insert(device.to_owned(), d.acked_seq);
            }
            Ok(d)
        })
    }

    /// A registered device.
    pub fn device(&self, user: UserId, device: &str) -> Result<Device, StoreError> {
        device_row(&self.conn, user, device)
    }

    /// The devices of a user, primary first.
    pub fn devices(&self, user: UserId) -> Result<Vec<Device>, StoreError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT device, is_primary, acked_seq FROM devices WHERE user_id = ?1
                 ORDER BY is_primary DESC, device",
            )
            .ctx("listing devices")?;
        let rows = st
            .query_map([user], |r| {
                Ok(Device {
                    user,
                    device: r.get(0)?,
                    primary: r.get(1)?,
                    acked_seq: r.get::<_, i64>(2)? as u64,
                })
            })
            .ctx("listing devices")?;
        rows.collect::<Result<_, _>>().ctx("listing devices")
    }

    /// Stores a message once: a ClientMsgId the sender already used
    /// returns the original message with `duplicate` set. Committed (and,
    /// on disk, synced) when this returns.
    pub fn send(&mut self, m: &NewMessage) -> Result<Sent, StoreError> {
        self.atomic(|tx, view| send(tx, view, m))
    }
}

impl Store {
    /// One newsync: the device presents mailbox position `presented` (from
    /// its SyncKey), which confirms everything up to it; the page holds the
    /// entries after what the device confirmed, up to `limit` (in entries,
    /// and in bytes: at least one message whatever its size). A position
    /// past the mailbox's end (a key this store never issued, e.g. after a
    /// `--memory` restart) is taken as the end.
    pub fn sync(
        &mut self,
        user: UserId,
        device: &str,
        presented: u64,
        limit: impl Into<PageLimit>,
    ) -> Result<SyncPage, StoreError> {
        let limit = limit.into();
        let (messages, next_seq, more) = self.atomic(|tx, view| {
            let from = confirm(tx, view, user, device, presented)?;
            page::page(tx, view, user, device, from, limit)
        })?;
        let (positions, messages) = messages.into_iter().unzip();
        Ok(SyncPage {
            messages,
            positions,
            next_seq,
            more,
        })
    }

    /// Makes receipts (off by default): a device's confirmation marks what
    /// it covers delivered, a read report marks messages read, and each
    /// receipt goes to the sender's mailbox as a status message.
    pub fn set_receipts(&mut self, on: bool) {
        self.view.receipts = on;
    }

    /// The users whose mailboxes got receipts since the last call: wake
    /// their devices once the operation is committed.
    pub fn take_wakes(&mut self) -> Vec<UserId> {
        let mut w = std::mem::take(&mut self.view.wakes);
        w.sort_unstable();
        w.dedup();
        w
    }

    /// A read report of `device` of `user` for the chat with `peer`
    /// (statusnotify Code 1): the messages of `peer` in the mailbox up to
    /// MsgId `upto` (`u64::MAX`: all) are read; how many receipts it made.
    pub fn report_read(
        &mut self,
        user: UserId,
        device: &str,
        peer: UserId,
        upto: u64,
        now: u64,
    ) -> Result<usize, StoreError> {
        if !self.view.receipts {
            return Ok(0);
        }
        self.atomic(|tx, view| receipts::read(tx, view, user, device, peer, upto, now))
    }

    /// The receipts of a message: (device, kind, Unix time), in order.
    pub fn receipts(&self, msg_id: u64) -> Result<Vec<(String, ReceiptKind, u64)>, StoreError> {
        receipts::of_message(&self.conn, msg_id)
    }

    /// Records that the device presented position `presented` (identify
    /// carries a SyncKey too) and returns the device's confirmed position.
    pub fn confirm(
        &mut self,
        user: UserId,
        device: &str,
        presented: u64,
    ) -> Result<u64, StoreError> {
        self.atomic(|tx, view| confirm(tx, view, user, device, presented))
    }

    /// Whether the mailbox holds entries after `seq` that are not the
    /// device's own sends.
    pub fn pending(&mut self, user: UserId, device: &str, seq: u64) -> Result<bool, StoreError> {
        self.atomic(|tx, view| {
            let mb = mailbox(tx, view, user)?;
            if seq >= mb.base {
                return Ok(mb
                    .tail
                    .iter()
                    .any(|e| e.seq > seq && e.origin.as_deref() != Some(device)));
            }
            tx.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM mailbox WHERE user_id = ?1 AND seq > ?2
                 AND (origin_device IS NULL OR origin_device <> ?3))",
            )
            .and_then(|mut st| st.query_row(params![user, seq as i64, device], |r| r.get(0)))
            .ctx("checking for pending data")
        })
    }

    /// The last position of a user's mailbox.
    pub fn last_seq(&mut self, user: UserId) -> Result<u64, StoreError> {
        self.atomic(|tx, view| Ok(mailbox(tx, view, user)?.last_seq))
    }

    /// Every stored chat message, in MsgId order (the status messages
    /// that carry receipts left out).
    pub fn messages(&self) -> Result<Vec<StoredMessage>, StoreError> {
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM {MESSAGE_JOIN} WHERE m.msg_type != ?1
                 ORDER BY m.msg_id"
            ))
            .ctx("listing messages")?;
        let rows = st
            .query_map([crate::net::MSG_TYPE_STATUS], message_row)
            .ctx("listing messages")?;
        rows.collect::<Result<_, _>>().ctx("listing messages")
    }
}

impl Store {
    /// Runs `f` atomically: in a savepoint of its own (a transaction when
    /// none is open), or, inside an operation, in the operation's. Cached
    /// statements, unlike rusqlite's `savepoint()`, which parses its SQL
    /// every time. When `f` fails its changes are rolled back and the view
    /// is dropped.
    fn atomic<T>(
        &mut self,
        f: impl FnOnce(&Connection, &mut View) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.in_op {
            // The operation's savepoint rolls back and drops the view.
            return f(&self.conn, &mut self.view);
        }
        self.exec_cached("SAVEPOINT store_op", "starting a savepoint")?;
        let r = f(&self.conn, &mut self.view);
        if r.is_err() {
            self.view.reset();
            // If even the rollback fails, the savepoint stays open (not
            // released, so not committed) and the error is reported.
            self.exec_cached("ROLLBACK TO store_op", "rolling back a savepoint")?;
        }
        self.exec_cached("RELEASE store_op", "releasing a savepoint")?;
        r
    }

    fn exec_cached(&self, sql: &str, context: &'static str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut st| st.execute([]))
            .map(drop)
            .ctx(context)
    }
}
