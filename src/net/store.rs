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
//! confirmed (a sync that starts inside them is answered without reading
//! SQLite). It is loaded lazily from the
//! database, bounded ([`VIEW_ENTRIES`], [`VIEW_USERS`]), and thrown away
//! whenever a statement, an operation or a batch fails (it is rebuilt from
//! what was really committed). This connection must be the database's only
//! writer, which the server's single writer thread guarantees.
//!
//! Group commit: a [`Committer`] is one writer thread in front of the
//! store. Callers submit operations; the thread takes everything queued,
//! runs it in one transaction (each operation in its own savepoint, so a
//! failing operation rolls back only itself), commits once (one fsync on
//! disk) and only then hands each caller its result. Durability costs one
//! fsync per batch, not per message.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};

use rusqlite::config::DbConfig;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "syncscope.sqlite3";

/// A user's uin (the users table's row id).
pub type UserId = i64;

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
    /// The database was written by a newer syncscope.
    #[error("store: schema version {0} is newer than this syncscope's ({SCHEMA_VERSION}); use a newer syncscope or another --data directory")]
    Version(i64),
}

trait Context<T> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError>;
}

impl<T> Context<T> for rusqlite::Result<T> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Sqlite { context, source })
    }
}

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

/// The outcome of [`Store::send`].
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
struct View {
    ids: HashMap<String, UserId>,
    names: HashMap<UserId, String>,
    mailboxes: HashMap<UserId, Mailbox>,
    /// Tail entries held, over all mailboxes.
    entries: usize,
}

#[derive(Debug)]
struct Mailbox {
    /// The position of the mailbox's last entry.
    last_seq: u64,
    /// `tail` holds every entry after `base`, in order, up to `last_seq`.
    base: u64,
    tail: VecDeque<Entry>,
    /// Confirmed positions of the devices looked at so far.
    acked: HashMap<String, u64>,
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
    fn forget_through(&mut self, seq: u64) -> usize {
        let n = self.tail.iter().take_while(|e| e.seq <= seq).count();
        if let Some(last) = self.tail.drain(..n).next_back() {
            self.base = last.seq;
        }
        n
    }
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    message: StoredMessage,
    origin: Option<String>,
}

impl View {
    /// Forgets a user's mailbox tails when the view is over its bounds.
    fn trim(&mut self) {
        if self.names.len() > VIEW_USERS || self.mailboxes.len() > VIEW_USERS {
            *self = View::default();
        } else if self.entries > VIEW_ENTRIES {
            for mb in self.mailboxes.values_mut() {
                mb.forget_through(mb.last_seq);
            }
            self.entries = 0;
        }
    }

    fn remember_user(&mut self, name: &str, id: UserId) {
        self.ids.insert(name.to_owned(), id);
        self.names.insert(id, name.to_owned());
        self.trim();
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    id       INTEGER PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS devices (
    user_id    INTEGER NOT NULL REFERENCES users(id),
    device     TEXT NOT NULL,
    is_primary INTEGER NOT NULL,
    acked_seq  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, device)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    msg_id        INTEGER PRIMARY KEY AUTOINCREMENT,
    from_user     INTEGER NOT NULL REFERENCES users(id),
    from_device   TEXT NOT NULL,
    to_user       INTEGER NOT NULL REFERENCES users(id),
    client_msg_id TEXT,
    msg_type      INTEGER NOT NULL,
    content       TEXT NOT NULL,
    create_time   INTEGER NOT NULL,
    UNIQUE (from_user, client_msg_id)
);
CREATE TABLE IF NOT EXISTS mailbox (
    user_id       INTEGER NOT NULL REFERENCES users(id),
    seq           INTEGER NOT NULL,
    msg_id        INTEGER NOT NULL REFERENCES messages(msg_id),
    origin_device TEXT,
    PRIMARY KEY (user_id, seq)
) WITHOUT ROWID;
";

/// Page size of a new database file.
const PAGE_SIZE: i64 = 1024;

/// The schema's version (`PRAGMA user_version`). Version 1 kept each
/// mailbox's last position in `users.last_seq`, updated on every append;
/// version 2 takes it from the mailbox itself (its primary key), once per
/// user, and drops the column.
const SCHEMA_VERSION: i64 = 2;

const MESSAGE_COLUMNS: &str = "m.msg_id, f.name, m.from_device, t.name, m.client_msg_id, \
     m.msg_type, m.content, m.create_time";
const MESSAGE_JOIN: &str =
    "messages m JOIN users f ON f.id = m.from_user JOIN users t ON t.id = m.to_user";

fn message_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        msg_id: r.get::<_, i64>(0)? as u64,
        from: r.get(1)?,
        from_device: r.get(2)?,
        to: r.get(3)?,
        client_msg_id: r.get(4)?,
        msg_type: r.get::<_, i64>(5)? as u32,
        content: r.get(6)?,
        create_time: r.get::<_, i64>(7)? as u64,
    })
}

impl Store {
    /// Opens (or creates) the store in `dir` (created if missing).
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(DB_FILE);
        let conn = Connection::open(&path).ctx("opening the database file")?;
        // Small pages for a new database (an existing one keeps its own):
        // each message dirties a few pages far apart (two mailboxes, a
        // device), and every dirty page goes to the WAL whole at each
        // commit and back at each checkpoint.
        conn.pragma_update(None, "page_size", PAGE_SIZE)
            .ctx("setting page_size")?;
        // WAL: a commit is one append; FULL: it is on disk (fsync) before
        // the server answers, so neither kill -9 nor a power cut loses an
        // acknowledged message.
        conn.pragma_update(None, "journal_mode", "WAL")
            .ctx("switching to WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")
            .ctx("setting synchronous=FULL")?;
        // Checkpoint every 10 000 pages (40 MiB of WAL) rather than 1 000:
        // the hot pages (users, devices, the mailbox's tail) change in every
        // batch and are copied back once per checkpoint.
        conn.pragma_update(None, "wal_autocheckpoint", 10_000)
            .ctx("setting wal_autocheckpoint")?;
        Self::init(conn, Some(path))
    }

    /// A throwaway store in memory.
    pub fn memory() -> Result<Store, StoreError> {
        let conn = Connection::open_in_memory().ctx("opening an in-memory database")?;
        Self::init(conn, None)
    }

    fn init(conn: Connection, path: Option<PathBuf>) -> Result<Store, StoreError> {
        conn.pragma_update(None, "foreign_keys", "ON")
            .ctx("enabling foreign keys")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .ctx("setting the busy timeout")?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .ctx("reading the schema version")?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Version(version));
        }
        conn.execute_batch(SCHEMA).ctx("creating the schema")?;
        if version == 1 {
            conn.execute_batch("ALTER TABLE users DROP COLUMN last_seq")
                .ctx("upgrading the schema from version 1")?;
        }
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .ctx("writing the schema version")?;
        conn.set_prepared_statement_cache_capacity(64);
        // Savepoint journals stay in memory (a batch's can exceed the
        // 64 KiB after which SQLite spills it to a temporary file), and
        // 64 MiB of page cache.
        conn.pragma_update(None, "temp_store", "MEMORY")
            .ctx("setting temp_store")?;
        conn.pragma_update(None, "cache_size", -65_536)
            .ctx("setting cache_size")?;
        // Plans do not depend on bound values: without this (SQLite built
        // with STAT4), a cached statement with a range on a parameter, as
        // in `sync`, is compiled again whenever the value changes.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
            .ctx("enabling the query planner stability guarantee")?;
        Ok(Store {
            conn,
            path,
            view: View::default(),
            in_op: false,
        })
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

/// [`Store::send`] inside its savepoint.
fn send(tx: &Connection, view: &mut View, m: &NewMessage) -> Result<Sent, StoreError> {
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

impl Store {
    /// One newsync: the device presents mailbox position `presented` (from
    /// its SyncKey), which confirms everything up to it; the page holds up
    /// to `limit` entries after what the device confirmed. A position past
    /// the mailbox's end (a key this store never issued, e.g. after a
    /// `--memory` restart) is taken as the end.
    pub fn sync(
        &mut self,
        user: UserId,
        device: &str,
        presented: u64,
        limit: usize,
    ) -> Result<SyncPage, StoreError> {
        let (from, rows) = self.atomic(|tx, view| {
            let from = confirm(tx, view, user, device, presented)?;
            let mb = mailbox(tx, view, user)?;
            if from >= mb.base {
                // Inside the tail: no read.
                let rows = mb
                    .tail
                    .iter()
                    .skip_while(|e| e.seq <= from)
                    .take(limit.saturating_add(1))
                    .map(|e| (e.message.clone(), e.seq, e.origin.clone()))
                    .collect::<Vec<_>>();
                return Ok((from, rows));
            }
            let mut st = tx
                .prepare_cached(&format!(
                    "SELECT {MESSAGE_COLUMNS}, b.seq, b.origin_device
                     FROM mailbox b JOIN {MESSAGE_JOIN}
                     WHERE m.msg_id = b.msg_id AND b.user_id = ?1 AND b.seq > ?2
                     ORDER BY b.seq LIMIT ?3"
                ))
                .ctx("preparing a sync")?;
            let rows = st
                .query_map(
                    params![user, from as i64, limit.saturating_add(1) as i64],
                    |r| {
                        Ok((
                            message_row(r)?,
                            r.get::<_, i64>(8)? as u64,
                            r.get::<_, Option<String>>(9)?,
                        ))
                    },
                )
                .ctx("reading a mailbox")?
                .collect::<Result<Vec<_>, _>>()
                .ctx("reading a mailbox")?;
            Ok((from, rows))
        })?;
        let more = rows.len() > limit;
        let mut next_seq = from;
        let mut messages = Vec::new();
        for (m, seq, origin) in rows.into_iter().take(limit) {
            next_seq = seq;
            if origin.as_deref() != Some(device) {
                messages.push(m);
            }
        }
        Ok(SyncPage {
            messages,
            next_seq,
            more,
        })
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

    /// Every stored message, in MsgId order.
    pub fn messages(&self) -> Result<Vec<StoredMessage>, StoreError> {
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM {MESSAGE_JOIN} ORDER BY m.msg_id"
            ))
            .ctx("listing messages")?;
        let rows = st.query_map([], message_row).ctx("listing messages")?;
        rows.collect::<Result<_, _>>().ctx("listing messages")
    }
}

/// Savepoint of one operation inside a batch.
const OP_SAVEPOINT: &str = "SAVEPOINT batch_op";
const OP_RELEASE: &str = "RELEASE batch_op";
const OP_ROLLBACK: &str = "ROLLBACK TO batch_op";

/// Most operations in one batch (bounds the wait of the last caller).
pub const MAX_BATCH: usize = 1024;

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
            self.view = View::default();
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

    /// Runs `f` in a savepoint of its own: its changes stay when it
    /// returns `Ok`, and are rolled back when it fails or panics. The
    /// outer `Err`: the savepoint itself failed, so the enclosing
    /// transaction must not be committed.
    fn in_savepoint<T>(
        &mut self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError>,
    ) -> Result<Result<T, StoreError>, StoreError> {
        self.exec_cached(OP_SAVEPOINT, "starting an operation's savepoint")?;
        let outer = std::mem::replace(&mut self.in_op, true);
        let r = match catch_unwind(AssertUnwindSafe(|| f(self))) {
            Ok(r) => r,
            Err(p) => Err(StoreError::Panicked(panic_message(p.as_ref()))),
        };
        self.in_op = outer;
        if r.is_err() {
            self.view = View::default();
            self.exec_cached(OP_ROLLBACK, "rolling back a failed operation")?;
        }
        self.exec_cached(OP_RELEASE, "releasing an operation's savepoint")?;
        Ok(r)
    }

    /// [`Store::in_savepoint`] on its own (its own transaction).
    fn alone<T>(
        &mut self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let r = self.in_savepoint(f);
        if r.is_err() {
            self.view = View::default();
            if !self.conn.is_autocommit() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
        }
        r?
    }

    /// Runs `ops` in one transaction, each in its own savepoint, and
    /// commits once. `Err` when the transaction could not be started,
    /// kept whole or committed: then nothing of the batch is stored.
    fn run_batch(&mut self, ops: &mut [Box<dyn Op>]) -> Result<(), StoreError> {
        self.exec_cached("BEGIN IMMEDIATE", "starting a batch")?;
        let mut r = Ok(());
        for op in ops.iter_mut() {
            r = op.run(self);
            if r.is_err() {
                break;
            }
        }
        if r.is_ok() {
            r = self.exec_cached("COMMIT", "committing a batch");
        }
        if r.is_err() {
            self.view = View::default();
            if !self.conn.is_autocommit() {
                // Best effort: the error to report is the first one.
                let _ = self.conn.execute_batch("ROLLBACK");
            }
        }
        r
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned())
}

/// An operation queued for the writer thread.
trait Op: Send {
    /// Runs inside the batch's transaction (in a savepoint of its own);
    /// `Err` when the savepoint failed and the batch must not commit.
    fn run(&mut self, store: &mut Store) -> Result<(), StoreError>;
    /// After the batch: hands over the result, or `commit_error` when the
    /// commit failed (then nothing was stored).
    fn finish(self: Box<Self>, commit_error: Option<&str>);
}

struct Call<T, F> {
    f: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Op for Call<T, F>
where
    T: Send,
    F: FnOnce(&mut Store) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, store: &mut Store) -> Result<(), StoreError> {
        if let Some(f) = self.f.take() {
            self.result = Some(store.in_savepoint(f)?);
        }
        Ok(())
    }

    fn finish(self: Box<Self>, commit_error: Option<&str>) {
        let result = match (self.result, commit_error) {
            // Its own failure was rolled back before the commit: report it.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(_)), Some(e)) | (None, Some(e)) => Err(StoreError::Commit(e.to_owned())),
            (Some(Ok(v)), None) => Ok(v),
            (None, None) => Err(StoreError::Commit("the operation did not run".to_owned())),
        };
        // The caller may have gone away: nothing to tell.
        let _ = self.reply.send(result);
    }
}

/// Group commit in front of a shared [`Store`]: one writer thread runs
/// what callers submit in batches, one transaction and one commit (one
/// fsync) per batch, and answers each caller only after the commit.
///
/// The store stays reachable through its mutex (the thread holds it for
/// the length of a batch), so tests and tools can still read it. The
/// thread stops when the last `Committer` clone is dropped.
#[derive(Clone)]
pub struct Committer {
    store: Arc<Mutex<Store>>,
    /// `None` when the thread could not be started: then every call runs
    /// on its own on a blocking task (correct, not grouped).
    jobs: Option<mpsc::Sender<Box<dyn Op>>>,
    stats: Arc<BatchStats>,
    /// Dropped with the last clone: stops the checkpoint thread.
    _checkpoints: Option<mpsc::Sender<()>>,
}

/// What the writer thread did so far.
#[derive(Debug, Default)]
pub struct BatchStats {
    batches: AtomicU64,
    ops: AtomicU64,
}

impl BatchStats {
    /// Batches committed (or attempted), and operations run in them.
    pub fn get(&self) -> (u64, u64) {
        (
            self.batches.load(Ordering::Relaxed),
            self.ops.load(Ordering::Relaxed),
        )
    }
}

impl fmt::Debug for Committer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Committer")
            .field("threaded", &self.jobs.is_some())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Committer {
    /// Starts the writer thread for `store`.
    pub fn spawn(store: Arc<Mutex<Store>>) -> Committer {
        let (tx, rx) = mpsc::channel::<Box<dyn Op>>();
        let stats = Arc::new(BatchStats::default());
        let thread_store = Arc::clone(&store);
        let thread_stats = Arc::clone(&stats);
        let jobs = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || write_loop(&thread_store, &rx, &thread_stats))
            .ok()
            .map(|_| tx);
        let path = lock(&store).path().map(Path::to_owned);
        let checkpoints = path.and_then(|path| {
            let (tx, rx) = mpsc::channel::<()>();
            std::thread::Builder::new()
                .name("store-checkpoint".into())
                .spawn(move || checkpoint_loop(&path, &rx))
                .ok()
                .map(|_| tx)
        });
        Committer {
            store,
            jobs,
            stats,
            _checkpoints: checkpoints,
        }
    }

    /// The store (for reads outside the writer; waits for a running batch).
    pub fn lock(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    /// Batches and operations so far.
    pub fn stats(&self) -> &BatchStats {
        &self.stats
    }

    fn submit<T, F>(&self, f: F) -> Result<oneshot::Receiver<Result<T, StoreError>>, F>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    {
        let Some(jobs) = &self.jobs else {
            return Err(f);
        };
        let (reply, rx) = oneshot::channel();
        let call = Box::new(Call {
            f: Some(f),
            result: None,
            reply,
        });
        match jobs.send(call) {
            Ok(()) => Ok(rx),
            // The thread is gone: the call comes back unrun.
            Err(mpsc::SendError(_)) => Ok(gone()),
        }
    }

    /// Runs `f` in the next batch; the result comes once the batch is
    /// committed (durable on disk).
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    {
        match self.submit(f) {
            Ok(rx) => rx.await.unwrap_or(Err(StoreError::WriterGone)),
            Err(f) => {
                let store = Arc::clone(&self.store);
                match tokio::task::spawn_blocking(move || lock(&store).alone(f)).await {
                    Ok(r) => r,
                    Err(_) => Err(StoreError::WriterGone),
                }
            }
        }
    }

    /// [`Committer::run`] for synchronous callers (not on an async task).
    pub fn run_blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    {
        match self.submit(f) {
            Ok(rx) => rx.blocking_recv().unwrap_or(Err(StoreError::WriterGone)),
            Err(f) => lock(&self.store).alone(f),
        }
    }
}

/// How often the checkpoint thread copies committed WAL frames back.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(25);

/// The checkpoint thread: on a connection of its own, a passive checkpoint
/// (it never blocks the writer) every [`CHECKPOINT_EVERY`], so the writer
/// does not stall its batch copying the WAL back (its own automatic
/// checkpoint stays as a backstop should this one fall behind). Stops
/// when `stop`'s sender is dropped.
fn checkpoint_loop(path: &Path, stop: &mpsc::Receiver<()>) {
    let Ok(conn) = Connection::open(path) else {
        return;
    };
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        // Busy or failed: the next round (or the writer's own automatic
        // checkpoint) does it; committed data is safe in the WAL anyway.
        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    }
}

/// A receiver that reports [`StoreError::WriterGone`].
fn gone<T>() -> oneshot::Receiver<Result<T, StoreError>> {
    let (tx, rx) = oneshot::channel();
    let _ = tx.send(Err(StoreError::WriterGone));
    rx
}

/// Locks the store; a panic in an earlier holder does not leave the
/// database inconsistent (every operation is rolled back or committed).
fn lock(store: &Mutex<Store>) -> MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(|p| p.into_inner())
}

/// The writer thread: waits for an operation, takes the store, adds
/// everything queued meanwhile (up to [`MAX_BATCH`]), runs and commits
/// the batch, releases the store, then answers the callers.
fn write_loop(store: &Mutex<Store>, jobs: &mpsc::Receiver<Box<dyn Op>>, stats: &BatchStats) {
    let mut batch: Vec<Box<dyn Op>> = Vec::new();
    while let Ok(first) = jobs.recv() {
        batch.push(first);
        let commit = {
            let mut guard = lock(store);
            while batch.len() < MAX_BATCH {
                match jobs.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            guard.run_batch(&mut batch)
        };
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.ops.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let error = commit.err().map(|e| e.to_string());
        for op in batch.drain(..) {
            op.finish(error.as_deref());
        }
    }
}

fn device_row(conn: &Connection, user: UserId, device: &str) -> Result<Device, StoreError> {
    conn.prepare_cached(
        "SELECT is_primary, acked_seq FROM devices WHERE user_id = ?1 AND device = ?2",
    )
    .and_then(|mut st| {
        st.query_row(params![user, device], |r| {
            Ok(Device {
                user,
                device: device.to_owned(),
                primary: r.get(0)?,
                acked_seq: r.get::<_, i64>(1)? as u64,
            })
        })
        .optional()
    })
    .ctx("reading a device")?
    .ok_or_else(|| StoreError::UnknownDevice {
        user,
        device: device.to_owned(),
    })
}

/// The view of a user's mailbox, loaded when missing (its last position
/// from the mailbox's primary key; an empty tail).
fn mailbox<'v>(
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
fn name_of(tx: &Connection, view: &mut View, id: UserId) -> Result<String, StoreError> {
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
fn append(
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
fn confirm(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(from: UserId, to: UserId, cid: &str, text: &str) -> NewMessage {
        NewMessage {
            from,
            from_device: "phone".into(),
            to,
            client_msg_id: Some(cid.into()),
            msg_type: 1,
            content: text.into(),
            create_time: 1_700_000_000,
        }
    }

    #[test]
    fn exactly_once_and_mailboxes() {
        let mut s = Store::memory().unwrap();
        let a = s.user("alice", true).unwrap().unwrap();
        let b = s.user("bob", true).unwrap().unwrap();
        assert_eq!(s.user("carol", false).unwrap(), None);
        assert!(s.register_device(a, "phone").unwrap().primary);
        assert!(!s.register_device(a, "web").unwrap().primary);
        assert!(s.register_device(b, "phone").unwrap().primary);
        let first = s.send(&msg(a, b, "1", "hi")).unwrap();
        assert!(!first.duplicate);
        let again = s.send(&msg(a, b, "1", "hi (resent)")).unwrap();
        assert_eq!((again.msg_id, again.duplicate), (first.msg_id, true));
        // Another sender may reuse the id.
        assert!(!s.send(&msg(b, a, "1", "yo")).unwrap().duplicate);
        assert_eq!(s.messages().unwrap().len(), 2);
        // Bob: one message, then his own send (skipped for his phone).
        let p = s.sync(b, "phone", 0, 10).unwrap();
        assert_eq!(p.messages.len(), 1);
        assert_eq!((p.next_seq, p.more), (2, false));
        // Alice's web sees both; her phone only Bob's.
        assert_eq!(s.sync(a, "web", 0, 10).unwrap().messages.len(), 2);
        let p = s.sync(a, "phone", 0, 1).unwrap();
        assert_eq!((p.messages.len(), p.next_seq, p.more), (0, 1, true));
        // Not confirmed yet: offered again.
        assert_eq!(s.sync(a, "phone", 0, 1).unwrap().next_seq, 1);
        // Confirmed: gone, and an older key cannot bring it back.
        let p = s.sync(a, "phone", 1, 1).unwrap();
        assert_eq!((p.messages.len(), p.next_seq), (1, 2));
        assert_eq!(s.sync(a, "phone", 0, 5).unwrap().next_seq, 2);
        assert_eq!(s.device(a, "phone").unwrap().acked_seq, 1);
        // A key from the future is capped at the mailbox's end.
        assert_eq!(s.confirm(b, "phone", 99).unwrap(), 2);
        assert!(!s.pending(b, "phone", 2).unwrap());
        assert!(s.pending(a, "web", 0).unwrap());
        assert!(matches!(
            s.sync(a, "nope", 0, 1),
            Err(StoreError::UnknownDevice { .. })
        ));
    }

    #[test]
    fn note_to_self_is_one_entry() {
        let mut s = Store::memory().unwrap();
        let a = s.user("alice", true).unwrap().unwrap();
        s.register_device(a, "phone").unwrap();
        s.register_device(a, "web").unwrap();
        s.send(&msg(a, a, "x", "note")).unwrap();
        assert_eq!(s.last_seq(a).unwrap(), 1);
        assert_eq!(s.sync(a, "web", 0, 10).unwrap().messages.len(), 1);
        assert_eq!(s.sync(a, "phone", 0, 10).unwrap().messages.len(), 0);
    }

    #[test]
    fn a_web_session_first_leaves_the_primary_role_to_the_phone() {
        let mut s = Store::memory().unwrap();
        let a = s.user("alice", true).unwrap().unwrap();
        assert!(!s.register_device_as(a, "web", false).unwrap().primary);
        assert!(s.register_device(a, "phone").unwrap().primary);
        assert!(!s.register_device(a, "desktop").unwrap().primary);
        // Registering again does not change a role.
        assert!(s.register_device(a, "phone").unwrap().primary);
    }

    type BoxedOp<T> = Box<dyn FnOnce(&mut Store) -> Result<T, StoreError> + Send>;

    /// Messages committed, counted through a connection of its own.
    fn committed(dir: &Path) -> i64 {
        Connection::open(dir.join(DB_FILE))
            .unwrap()
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_failing_operation_rolls_back_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let a = s.user("alice", true).unwrap().unwrap();
        let b = s.user("bob", true).unwrap().unwrap();
        s.register_device(b, "phone").unwrap();
        let c = Committer::spawn(Arc::new(Mutex::new(s)));
        let ops: Vec<BoxedOp<u64>> = vec![
            Box::new(move |s| Ok(s.send(&msg(a, b, "1", "one"))?.msg_id)),
            // Writes, then fails: its message must not stay.
            Box::new(move |s| {
                s.send(&msg(a, b, "2", "two"))?;
                Err(StoreError::UnknownUser(99))
            }),
            Box::new(move |s| {
                s.send(&msg(a, b, "4", "four"))?;
                panic!("a bug in an operation")
            }),
            Box::new(move |s| Ok(s.send(&msg(a, b, "3", "three"))?.msg_id)),
        ];
        // The test holds the store until all four are queued: one batch.
        let guard = c.lock();
        let rxs: Vec<_> = ops.into_iter().map(|f| c.submit(f).ok().unwrap()).collect();
        drop(guard);
        let results: Vec<_> = rxs
            .into_iter()
            .map(|rx| rx.blocking_recv().unwrap())
            .collect();
        assert!(results[0].is_ok(), "{:?}", results[0]);
        assert!(matches!(results[1], Err(StoreError::UnknownUser(99))));
        assert!(matches!(results[2], Err(StoreError::Panicked(_))));
        assert!(results[3].is_ok(), "{:?}", results[3]);
        assert_eq!(c.stats().get(), (1, 4), "one batch of four");
        // On disk, seen through another connection: "one" and "three".
        let mut other = Store::open(dir.path()).unwrap();
        let texts: Vec<String> = other
            .messages()
            .unwrap()
            .into_iter()
            .map(|m| m.content)
            .collect();
        assert_eq!(texts, ["one", "three"]);
        // Bob's mailbox advanced by those two only.
        assert_eq!(other.last_seq(b).unwrap(), 2);
        // The writer still serves.
        let p = c.run_blocking(move |s| s.sync(b, "phone", 0, 10)).unwrap();
        assert_eq!(p.messages.len(), 2);
    }

    #[test]
    fn results_come_only_after_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let a = s.user("alice", true).unwrap().unwrap();
        let b = s.user("bob", true).unwrap().unwrap();
        let c = Committer::spawn(Arc::new(Mutex::new(s)));
        let guard = c.lock();
        let first = c
            .submit(move |s| s.send(&msg(a, b, "1", "first")))
            .ok()
            .unwrap();
        let first = Arc::new(Mutex::new(first));
        let slot = Arc::clone(&first);
        let path = dir.path().to_owned();
        // Runs after the first in the same batch: the first caller has no
        // answer yet and its message is not visible to other connections.
        let second = c
            .submit(move |_| {
                let pending = matches!(
                    slot.lock().unwrap().try_recv(),
                    Err(oneshot::error::TryRecvError::Empty)
                );
                Ok((pending, committed(&path)))
            })
            .ok()
            .unwrap();
        drop(guard);
        assert_eq!(second.blocking_recv().unwrap().unwrap(), (true, 0));
        // Answers go out in submission order: the first is there.
        let sent = first.lock().unwrap().try_recv().unwrap().unwrap();
        assert!(!sent.duplicate);
        assert_eq!(c.stats().get(), (1, 2), "one batch of two");
        // Answered: committed.
        assert_eq!(committed(dir.path()), 1);
    }

    #[test]
    fn store_methods_work_alone_and_nested() {
        let mut s = Store::memory().unwrap();
        let a = s.user("alice", true).unwrap().unwrap();
        s.register_device(a, "phone").unwrap();
        // A duplicate inside an outer savepoint that is then rolled back.
        let r = s.alone(|s| {
            s.send(&msg(a, a, "x", "note"))?;
            assert!(s.send(&msg(a, a, "x", "again"))?.duplicate);
            Err::<(), _>(StoreError::UnknownUser(7))
        });
        assert!(matches!(r, Err(StoreError::UnknownUser(7))));
        assert!(s.messages().unwrap().is_empty());
        assert_eq!(s.last_seq(a).unwrap(), 0);
        s.alone(|s| s.send(&msg(a, a, "x", "note"))).unwrap();
        assert_eq!(s.last_seq(a).unwrap(), 1);
    }
    /// The view answers as the database does: the same operations on two
    /// stores, one of which forgets its view before every call (so it
    /// reads everything from SQLite), give the same results, including
    /// around failed operations (rolled back) and pages longer than the
    /// tail.
    mod view_model {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Step {
            Send {
                from: usize,
                to: usize,
                cid: u8,
            },
            Sync {
                user: usize,
                device: usize,
                back: u64,
                limit: usize,
            },
            Pending {
                user: usize,
                device: usize,
                back: u64,
            },
            /// A send, then a failure in the same operation.
            FailedSend {
                from: usize,
                to: usize,
                cid: u8,
            },
        }

        const DEVICES: [&str; 2] = ["phone", "web"];

        fn step() -> impl Strategy<Value = Step> {
            prop_oneof![
                4 => (0..3usize, 0..3usize, any::<u8>())
                    .prop_map(|(from, to, cid)| Step::Send { from, to, cid }),
                3 => (0..3usize, 0..2usize, 0..(TAIL_CAP as u64 + 8), 1..(TAIL_CAP + 8))
                    .prop_map(|(user, device, back, limit)| Step::Sync { user, device, back, limit }),
                1 => (0..3usize, 0..2usize, 0..(TAIL_CAP as u64 + 8))
                    .prop_map(|(user, device, back)| Step::Pending { user, device, back }),
                1 => (0..3usize, 0..3usize, any::<u8>())
                    .prop_map(|(from, to, cid)| Step::FailedSend { from, to, cid }),
            ]
        }

        /// Runs one step; `forget` drops the view first.
        fn run(s: &mut Store, users: &[UserId], st: &Step, forget: bool) -> String {
            if forget {
                s.view = View::default();
            }
            match *st {
                Step::Send { from, to, cid } => {
                    format!(
                        "{:?}",
                        s.send(&msg(users[from], users[to], &cid.to_string(), "x"))
                    )
                }
                Step::Sync {
                    user,
                    device,
                    back,
                    limit,
                } => {
                    let u = users[user];
                    let at = s.last_seq(u).unwrap().saturating_sub(back);
                    if forget {
                        s.view = View::default();
                    }
                    format!("{:?}", s.sync(u, DEVICES[device], at, limit))
                }
                Step::Pending { user, device, back } => {
                    let u = users[user];
                    let at = s.last_seq(u).unwrap().saturating_sub(back);
                    if forget {
                        s.view = View::default();
                    }
                    format!("{:?}", s.pending(u, DEVICES[device], at))
                }
                Step::FailedSend { from, to, cid } => {
                    let m = msg(users[from], users[to], &format!("f{cid}"), "y");
                    let r: Result<(), _> = s.alone(|st| {
                        st.send(&m)?;
                        Err(StoreError::UnknownUser(-1))
                    });
                    format!("{r:?}")
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            #[test]
            fn view_matches_the_database(steps in proptest::collection::vec(step(), 1..160)) {
                let mut with = Store::memory().unwrap();
                let mut without = Store::memory().unwrap();
                let mut users = Vec::new();
                for name in ["alice", "bob", "carol"] {
                    let a = with.user(name, true).unwrap().unwrap();
                    let b = without.user(name, true).unwrap().unwrap();
                    prop_assert_eq!(a, b);
                    for d in DEVICES {
                        with.register_device(a, d).unwrap();
                        without.register_device(b, d).unwrap();
                    }
                    users.push(a);
                }
                for (i, st) in steps.iter().enumerate() {
                    let a = run(&mut with, &users, st, false);
                    let b = run(&mut without, &users, st, true);
                    prop_assert_eq!(a, b, "step {} {:?}", i, st);
                }
                for &u in &users {
                    for d in DEVICES {
                        prop_assert_eq!(
                            with.device(u, d).unwrap().acked_seq,
                            without.device(u, d).unwrap().acked_seq
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_version_1_store_is_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = Connection::open(dir.path().join(DB_FILE)).unwrap();
            c.execute_batch(
                "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
                     last_seq INTEGER NOT NULL DEFAULT 0);
                 PRAGMA user_version = 1;",
            )
            .unwrap();
            c.execute("INSERT INTO users (name, last_seq) VALUES ('alice', 0)", [])
                .unwrap();
        }
        let mut s = Store::open(dir.path()).unwrap();
        let a = s.user("alice", false).unwrap().unwrap();
        s.register_device(a, "phone").unwrap();
        s.send(&msg(a, a, "1", "note")).unwrap();
        assert_eq!(s.last_seq(a).unwrap(), 1);
        drop(s);
        let c = Connection::open(dir.path().join(DB_FILE)).unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        // A newer store is refused, not misread.
        c.execute_batch("PRAGMA user_version = 99").unwrap();
        drop(c);
        assert!(matches!(
            Store::open(dir.path()),
            Err(StoreError::Version(99))
        ));
    }
}
