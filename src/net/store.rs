//! The reference server's store: SQLite through rusqlite (bundled), on disk
//! in WAL mode with `synchronous=FULL`, or in memory (`--memory`). The
//! store is synchronous; the server calls it from blocking tasks.
//!
//! Model (protocol.md section 7):
//!
//! * users: a name and a uin (the row id); `last_seq` counts the entries
//!   of the user's mailbox.
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
//! Every write is one transaction, committed before the server answers.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension, Transaction};

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
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    id       INTEGER PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE,
    last_seq INTEGER NOT NULL DEFAULT 0
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
PRAGMA user_version = 1;
";

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
        // WAL: a commit is one append; FULL: it is on disk (fsync) before
        // the server answers, so neither kill -9 nor a power cut loses an
        // acknowledged message.
        conn.pragma_update(None, "journal_mode", "WAL")
            .ctx("switching to WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")
            .ctx("setting synchronous=FULL")?;
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
        conn.execute_batch(SCHEMA).ctx("creating the schema")?;
        Ok(Store { conn, path })
    }

    /// The database file (`None` in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The uin of `name`, creating the user when `create` is set.
    pub fn user(&mut self, name: &str, create: bool) -> Result<Option<UserId>, StoreError> {
        let found = self
            .conn
            .query_row("SELECT id FROM users WHERE name = ?1", [name], |r| r.get(0))
            .optional()
            .ctx("looking up a user")?;
        if found.is_some() || !create {
            return Ok(found);
        }
        self.conn
            .execute("INSERT INTO users (name) VALUES (?1)", [name])
            .ctx("creating a user")?;
        Ok(Some(self.conn.last_insert_rowid()))
    }

    /// The name of the user with uin `id`.
    pub fn user_name(&self, id: UserId) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT name FROM users WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .ctx("looking up a uin")
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
        let tx = self.conn.transaction().ctx("starting a transaction")?;
        tx.execute(
            "INSERT OR IGNORE INTO devices (user_id, device, is_primary)
             VALUES (?1, ?2, ?3 AND NOT EXISTS
                 (SELECT 1 FROM devices WHERE user_id = ?1 AND is_primary))",
            params![user, device, may_be_primary],
        )
        .ctx("registering a device")?;
        let d = device_row(&tx, user, device)?;
        tx.commit().ctx("committing a device")?;
        Ok(d)
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
        let tx = self.conn.transaction().ctx("starting a transaction")?;
        if let Some(cid) = &m.client_msg_id {
            let found = tx
                .query_row(
                    "SELECT msg_id, create_time FROM messages
                     WHERE from_user = ?1 AND client_msg_id = ?2",
                    params![m.from, cid],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
                )
                .optional()
                .ctx("looking up a ClientMsgId")?;
            if let Some((msg_id, create_time)) = found {
                return Ok(Sent {
                    msg_id: msg_id as u64,
                    create_time: create_time as u64,
                    duplicate: true,
                });
            }
        }
        tx.execute(
            "INSERT INTO messages
             (from_user, from_device, to_user, client_msg_id, msg_type, content, create_time)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                m.from,
                m.from_device,
                m.to,
                m.client_msg_id,
                m.msg_type,
                m.content,
                m.create_time as i64
            ],
        )
        .ctx("storing a message")?;
        let msg_id = tx.last_insert_rowid();
        append(
            &tx,
            m.to,
            msg_id,
            (m.to == m.from).then_some(&m.from_device),
        )?;
        if m.to != m.from {
            append(&tx, m.from, msg_id, Some(&m.from_device))?;
        }
        tx.commit().ctx("committing a message")?;
        Ok(Sent {
            msg_id: msg_id as u64,
            create_time: m.create_time,
            duplicate: false,
        })
    }

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
        let tx = self.conn.transaction().ctx("starting a transaction")?;
        let from = confirm(&tx, user, device, presented)?;
        let mut st = tx
            .prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS}, b.seq, b.origin_device
                 FROM mailbox b JOIN {MESSAGE_JOIN}
                 WHERE m.msg_id = b.msg_id AND b.user_id = ?1 AND b.seq > ?2 ORDER BY b.seq LIMIT ?3"
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
        drop(st);
        tx.commit().ctx("committing a sync")?;
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
        let tx = self.conn.transaction().ctx("starting a transaction")?;
        let acked = confirm(&tx, user, device, presented)?;
        tx.commit().ctx("committing a confirmation")?;
        Ok(acked)
    }

    /// Whether the mailbox holds entries after `seq` that are not the
    /// device's own sends.
    pub fn pending(&self, user: UserId, device: &str, seq: u64) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM mailbox WHERE user_id = ?1 AND seq > ?2
                 AND (origin_device IS NULL OR origin_device <> ?3))",
                params![user, seq as i64, device],
                |r| r.get(0),
            )
            .ctx("checking for pending data")
    }

    /// The last position of a user's mailbox.
    pub fn last_seq(&self, user: UserId) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT last_seq FROM users WHERE id = ?1", [user], |r| {
                r.get::<_, i64>(0)
            })
            .optional()
            .ctx("reading a mailbox position")?
            .map(|s| s as u64)
            .ok_or(StoreError::UnknownUser(user))
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

fn device_row(conn: &Connection, user: UserId, device: &str) -> Result<Device, StoreError> {
    conn.query_row(
        "SELECT is_primary, acked_seq FROM devices WHERE user_id = ?1 AND device = ?2",
        params![user, device],
        |r| {
            Ok(Device {
                user,
                device: device.to_owned(),
                primary: r.get(0)?,
                acked_seq: r.get::<_, i64>(1)? as u64,
            })
        },
    )
    .optional()
    .ctx("reading a device")?
    .ok_or_else(|| StoreError::UnknownDevice {
        user,
        device: device.to_owned(),
    })
}

/// Appends a message to a user's mailbox.
fn append(
    tx: &Transaction<'_>,
    user: UserId,
    msg_id: i64,
    origin: Option<&String>,
) -> Result<(), StoreError> {
    let seq: i64 = tx
        .query_row(
            "UPDATE users SET last_seq = last_seq + 1 WHERE id = ?1 RETURNING last_seq",
            [user],
            |r| r.get(0),
        )
        .optional()
        .ctx("advancing a mailbox")?
        .ok_or(StoreError::UnknownUser(user))?;
    tx.execute(
        "INSERT INTO mailbox (user_id, seq, msg_id, origin_device) VALUES (?1, ?2, ?3, ?4)",
        params![user, seq, msg_id, origin],
    )
    .ctx("appending to a mailbox")?;
    Ok(())
}

/// Raises the device's confirmed position to `presented` (capped at the
/// mailbox's end) and returns the confirmed position.
fn confirm(
    tx: &Transaction<'_>,
    user: UserId,
    device: &str,
    presented: u64,
) -> Result<u64, StoreError> {
    let acked = device_row(tx, user, device)?.acked_seq;
    let last: i64 = tx
        .query_row("SELECT last_seq FROM users WHERE id = ?1", [user], |r| {
            r.get(0)
        })
        .ctx("reading a mailbox position")?;
    let presented = presented.min(last as u64);
    if presented > acked {
        tx.execute(
            "UPDATE devices SET acked_seq = ?3 WHERE user_id = ?1 AND device = ?2",
            params![user, device, presented as i64],
        )
        .ctx("confirming a position")?;
        return Ok(presented);
    }
    Ok(acked)
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
}
