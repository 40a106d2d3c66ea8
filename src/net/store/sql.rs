//! The SQL side of the store: the schema, its version and the upgrade
//! from version 1, opening a database (pragmas), and the statements and
//! row readers the other parts share.

use std::path::{Path, PathBuf};

use rusqlite::config::DbConfig;
use rusqlite::{params, Connection, OptionalExtension};

use super::check;
use super::view::View;
use super::{Context, Device, Store, StoreError, StoredMessage, UserId};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "syncscope.sqlite3";

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
    create_time   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_client_id ON messages (from_user, client_msg_id);
CREATE TABLE IF NOT EXISTS mailbox (
    user_id       INTEGER NOT NULL REFERENCES users(id),
    seq           INTEGER NOT NULL,
    msg_id        INTEGER NOT NULL REFERENCES messages(msg_id),
    origin_device TEXT,
    PRIMARY KEY (user_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uploads (
    user_id   INTEGER NOT NULL REFERENCES users(id),
    kind      INTEGER NOT NULL,
    client_id TEXT NOT NULL,
    to_user   INTEGER NOT NULL REFERENCES users(id),
    total_len INTEGER NOT NULL,
    started   INTEGER NOT NULL,
    msg_id    INTEGER REFERENCES messages(msg_id),
    PRIMARY KEY (user_id, kind, client_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS upload_parts (
    user_id   INTEGER NOT NULL,
    kind      INTEGER NOT NULL,
    client_id TEXT NOT NULL,
    start_pos INTEGER NOT NULL,
    data      BLOB NOT NULL,
    PRIMARY KEY (user_id, kind, client_id, start_pos)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS receipts (
    msg_id INTEGER NOT NULL REFERENCES messages(msg_id),
    device TEXT NOT NULL,
    kind   INTEGER NOT NULL,
    time   INTEGER NOT NULL,
    PRIMARY KEY (msg_id, device, kind)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS read_marks (
    user_id INTEGER NOT NULL REFERENCES users(id),
    peer    INTEGER NOT NULL REFERENCES users(id),
    seq     INTEGER NOT NULL,
    PRIMARY KEY (user_id, peer)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS uploads_open ON uploads (started) WHERE msg_id IS NULL;
CREATE TABLE IF NOT EXISTS media (
    msg_id INTEGER PRIMARY KEY REFERENCES messages(msg_id),
    data   BLOB NOT NULL,
    thumb  BLOB
);
";

/// Page size of a new database file.
const PAGE_SIZE: i64 = 1024;

/// The schema's version (`PRAGMA user_version`). Version 1 kept each
/// mailbox's last position in `users.last_seq`, updated on every append;
/// version 2 takes it from the mailbox itself (its primary key), once per
/// user, and drops the column. Versions 1 and 2 had a ClientMsgId unique
/// per sender (a reuse with another recipient or content was taken for a
/// resend); version 3 indexes it without the constraint: a resend is the
/// same sender, ClientMsgId, recipient, type and content. Version 4 adds
/// media: uploads in progress (`uploads`, `upload_parts`) and the stored
/// images and recordings (`media`), and receipts (`receipts`, per message
/// and device; `read_marks`, per reader and chat); an older store gets the
/// empty tables.
pub(super) const SCHEMA_VERSION: i64 = 4;

/// The messages table of version 3, built under another name by
/// [`drop_client_id_constraint`].
const MESSAGES_V3: &str = "
CREATE TABLE messages_v3 (
    msg_id        INTEGER PRIMARY KEY AUTOINCREMENT,
    from_user     INTEGER NOT NULL REFERENCES users(id),
    from_device   TEXT NOT NULL,
    to_user       INTEGER NOT NULL REFERENCES users(id),
    client_msg_id TEXT,
    msg_type      INTEGER NOT NULL,
    content       TEXT NOT NULL,
    create_time   INTEGER NOT NULL
);
INSERT INTO messages_v3 (msg_id, from_user, from_device, to_user, client_msg_id, msg_type,
        content, create_time)
    SELECT msg_id, from_user, from_device, to_user, client_msg_id, msg_type, content,
        create_time FROM messages;
DROP TABLE messages;
ALTER TABLE messages_v3 RENAME TO messages;
";

/// The upgrade from a messages table with `UNIQUE (from_user,
/// client_msg_id)` (versions 1 and 2): the table made again without it
/// (SQLite's way of changing a constraint), ids and their sequence kept,
/// in one transaction with foreign keys off meanwhile.
fn drop_client_id_constraint(conn: &Connection) -> Result<(), StoreError> {
    let sql: Option<String> = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'messages'",
            [],
            |r| r.get(0),
        )
        .optional()
        .ctx("reading the messages table's definition")?;
    if !sql.is_some_and(|s| s.contains("UNIQUE")) {
        return Ok(());
    }
    let seq: Option<i64> = conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'messages'",
            [],
            |r| r.get(0),
        )
        .optional()
        .ctx("reading the message id sequence")?;
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = OFF; BEGIN; {MESSAGES_V3}
         UPDATE sqlite_sequence SET seq = MAX(seq, {}) WHERE name = 'messages';
         COMMIT; PRAGMA foreign_keys = ON;",
        seq.unwrap_or(0)
    ))
    .ctx("upgrading the schema to version 3 (ClientMsgIds no longer unique)")
}

pub(super) const MESSAGE_COLUMNS: &str =
    "m.msg_id, f.name, m.from_device, t.name, m.client_msg_id, \
     m.msg_type, m.content, m.create_time";
pub(super) const MESSAGE_JOIN: &str =
    "messages m JOIN users f ON f.id = m.from_user JOIN users t ON t.id = m.to_user";

pub(super) fn message_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredMessage> {
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
    /// Opens (or creates) the store in `dir` (created if missing). A
    /// store that fails its start-up check (check.rs: the marker, SQLite's
    /// `quick_check`) is refused before anything is written to it.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
            path: dir.to_owned(),
            source,
        })?;
        check::before_open(dir)?;
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
        let store = Self::init(conn, Some(path))?;
        check::mark(dir)?;
        Ok(store)
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
        if version < 3 {
            drop_client_id_constraint(&conn)?;
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
}

pub(super) fn device_row(
    conn: &Connection,
    user: UserId,
    device: &str,
) -> Result<Device, StoreError> {
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
