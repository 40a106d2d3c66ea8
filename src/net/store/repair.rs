//! `serve --repair`: copies what is readable of a damaged store into a
//! new one, then moves the damaged files aside (`DIR/damaged-<time>/`) and
//! puts the new database in their place. The damaged store is read on a
//! connection that cannot write to it; the new one is built in
//! `DIR/repair.tmp/` and only moved in once it is complete and closed.
//!
//! Reading past damage: each table is scanned in key order until a read
//! fails, then single keys are looked up one after the other until one is
//! found (the scan resumes after it), giving up after [`PROBE_MISSES`]
//! misses in a row past the highest key the damaged store still reports.
//! Rows that refer to rows lost (a mailbox entry whose message is gone, a
//! message whose sender is gone) are not copied, and counted. Media
//! objects, receipts, read marks and uploads (with the parts of unfinished
//! ones) are copied too: media by MsgId past damage like messages, the
//! others a group at a time (a message's receipts, a user's marks and
//! uploads), all of a group or none. The highest
//! MsgId stays reserved, so no new message reuses the id of a lost one.

use std::fs;
use std::path::{Path, PathBuf};

use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};

use super::check::{self, look, open_without_writing, Counts, Found};
use super::sql::DB_FILE;
use super::{CheckReport, Context, Store, StoreError};

/// Lookups of single keys that find nothing, in a row, before the
/// search past damage gives up (beyond the highest key known).
pub const PROBE_MISSES: i64 = 4096;

/// What a repair did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RepairReport {
    /// Where the damaged files went.
    pub aside: PathBuf,
    /// Rows copied into the new store.
    pub copied: Counts,
    /// Rows read but not copied: they refer to rows that could not be
    /// read (or repeat one).
    pub dropped: Counts,
    /// The highest MsgId the damaged store reports having issued, when it
    /// can tell (so `copied.messages` against it shows what was lost).
    pub highest_msg_id: Option<u64>,
    /// The new store's full check.
    pub check: CheckReport,
}

/// A table as the salvage reads it.
struct Table {
    name: &'static str,
    /// The columns to copy; the key's last part first.
    cols: &'static str,
    /// The key's last part.
    key: &'static str,
    /// The condition on the key's first part (`?1`), if it has two.
    within: &'static str,
}

/// Reads the rows of `t` (within `?1` = `group` when the key has two
/// parts) in key order, stepping over what cannot be read (module docs),
/// and hands each to `each`; returns the rows that could not be decoded.
fn salvage(
    src: &Connection,
    t: &Table,
    group: i64,
    mut each: impl FnMut(&Row<'_>) -> rusqlite::Result<()>,
) -> Result<u64, StoreError> {
    let Table {
        name,
        cols,
        key,
        within,
    } = t;
    // With a group, `?1` is the group and `?2` the key; without, `?1` the key.
    let (k, cond) = if within.is_empty() {
        ("?1", String::new())
    } else {
        ("?2", format!("{within} AND"))
    };
    let groups: &[i64] = if within.is_empty() { &[] } else { &[group] };
    let args = |key: i64| params_from_iter(groups.iter().copied().chain([key]));
    let scan = format!("SELECT {cols} FROM {name} WHERE {cond} {key} > {k} ORDER BY {key}");
    let one = format!("SELECT {cols} FROM {name} WHERE {cond} {key} = {k}");
    let max = format!("SELECT max({key}) FROM {name} WHERE {cond} 1");
    // The highest key still reported, if the damage allows.
    let upper: i64 = src
        .query_row(&max, params_from_iter(groups), |r| {
            r.get::<_, Option<i64>>(0)
        })
        .ok()
        .flatten()
        .unwrap_or(0);
    let mut last = 0i64;
    let mut undecoded = 0u64;
    let mut st = src.prepare(&scan).ctx("reading a damaged table")?;
    let mut probe = src.prepare(&one).ctx("reading a damaged table")?;
    loop {
        // A scan from `last` until it ends (done) or fails.
        let mut rows = st.query(args(last)).ctx("reading a damaged table")?;
        loop {
            match rows.next() {
                Ok(Some(r)) => {
                    last = last.max(r.get::<_, i64>(0).unwrap_or(last));
                    if each(r).is_err() {
                        undecoded += 1;
                    }
                }
                Ok(None) => return Ok(undecoded),
                Err(_) => break,
            }
        }
        // Single keys from there until one is found.
        let mut misses = 0;
        loop {
            last += 1;
            let found = probe
                .query_row(args(last), |r| {
                    if each(r).is_err() {
                        undecoded += 1;
                    }
                    Ok(())
                })
                .optional();
            if let Ok(Some(())) = found {
                break;
            }
            misses += 1;
            if misses >= PROBE_MISSES && last > upper {
                return Ok(undecoded);
            }
        }
    }
}

const USERS: Table = Table {
    name: "users",
    cols: "id, name",
    key: "id",
    within: "",
};
const MESSAGES: Table = Table {
    name: "messages",
    cols: "msg_id, from_user, from_device, to_user, client_msg_id, msg_type, content, create_time",
    key: "msg_id",
    within: "",
};
const MEDIA: Table = Table {
    name: "media",
    cols: "msg_id, data, thumb",
    key: "msg_id",
    within: "",
};

/// The rows of a small group (a message's receipts, a user's read marks
/// or uploads), all or none: a group that cannot be read is left out.
fn all_rows<T>(
    src: &Connection,
    sql: &str,
    group: i64,
    row: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Vec<T> {
    src.prepare(sql)
        .and_then(|mut st| st.query_map([group], row)?.collect())
        .unwrap_or_default()
}

const MAILBOX: Table = Table {
    name: "mailbox",
    cols: "seq, msg_id, origin_device",
    key: "seq",
    within: "user_id = ?1",
};

/// Runs one insert for a salvaged row: `Ok(true)` copied, `Ok(false)`
/// refused (a reference to a row not copied, or a repeat).
fn insert(dst: &Connection, sql: &str, p: impl rusqlite::Params) -> rusqlite::Result<bool> {
    match dst.prepare_cached(sql)?.execute(p) {
        Ok(_) => Ok(true),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Copies what is readable of `src` into the empty store `dst` (one
/// transaction).
fn copy(src: &Connection, dst: &Connection) -> Result<(Counts, Counts, Option<u64>), StoreError> {
    let mut copied = Counts::default();
    let mut dropped = Counts::default();
    let mut failed: Option<rusqlite::Error> = None;
    dst.execute_batch("BEGIN").ctx("starting the repair")?;
    let mut users = Vec::new();
    salvage(src, &USERS, 0, |r| {
        let (id, name): (i64, String) = (r.get(0)?, r.get(1)?);
        match insert(
            dst,
            "INSERT INTO users (id, name) VALUES (?1, ?2)",
            params![id, name],
        ) {
            Ok(true) => {
                copied.users += 1;
                users.push(id);
            }
            Ok(false) => dropped.users += 1,
            Err(e) => failed = Some(e),
        }
        Ok(())
    })?;
    salvage(src, &MESSAGES, 0, |r| {
        let row = (
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, Option<String>>(4)?,
            r.get::<_, i64>(5)?,
            r.get::<_, String>(6)?,
            r.get::<_, i64>(7)?,
        );
        let sql = "INSERT INTO messages (msg_id, from_user, from_device, to_user, client_msg_id,
                       msg_type, content, create_time) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
        match insert(dst, sql, row) {
            Ok(true) => copied.messages += 1,
            Ok(false) => dropped.messages += 1,
            Err(e) => failed = Some(e),
        }
        Ok(())
    })?;
    for &user in &users {
        // Devices: a user's few rows, all or none.
        let devices = src
            .prepare("SELECT device, is_primary, acked_seq FROM devices WHERE user_id = ?1")
            .and_then(|mut st| {
                st.query_map([user], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, bool>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .unwrap_or_default();
        for (device, primary, acked) in devices {
            let sql = "INSERT INTO devices (user_id, device, is_primary, acked_seq)
                       VALUES (?1, ?2, ?3, ?4)";
            match insert(dst, sql, params![user, device, primary, acked]) {
                Ok(true) => copied.devices += 1,
                Ok(false) => dropped.devices += 1,
                Err(e) => failed = Some(e),
            }
        }
        salvage(src, &MAILBOX, user, |r| {
            let (seq, msg, origin): (i64, i64, Option<String>) = (r.get(0)?, r.get(1)?, r.get(2)?);
            let sql = "INSERT INTO mailbox (user_id, seq, msg_id, origin_device)
                       VALUES (?1, ?2, ?3, ?4)";
            match insert(dst, sql, params![user, seq, msg, origin]) {
                Ok(true) => copied.mailbox += 1,
                Ok(false) => dropped.mailbox += 1,
                Err(e) => failed = Some(e),
            }
            Ok(())
        })?;
    }
    salvage(src, &MEDIA, 0, |r| {
        let row = (
            r.get::<_, i64>(0)?,
            r.get::<_, Vec<u8>>(1)?,
            r.get::<_, Option<Vec<u8>>>(2)?,
        );
        let sql = "INSERT INTO media (msg_id, data, thumb) VALUES (?1, ?2, ?3)";
        match insert(dst, sql, row) {
            Ok(true) => copied.media += 1,
            Ok(false) => dropped.media += 1,
            Err(e) => failed = Some(e),
        }
        Ok(())
    })?;
    // Receipts: a message's few rows, all or none (their key is no integer).
    let msg_ids: Vec<i64> = dst
        .prepare("SELECT msg_id FROM messages ORDER BY msg_id")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .ctx("listing the copied messages")?;
    for msg in msg_ids {
        let rows = all_rows(
            src,
            "SELECT device, kind, time FROM receipts WHERE msg_id = ?1",
            msg,
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            },
        );
        for (device, kind, time) in rows {
            let sql = "INSERT INTO receipts (msg_id, device, kind, time) VALUES (?1, ?2, ?3, ?4)";
            match insert(dst, sql, params![msg, device, kind, time]) {
                Ok(true) => copied.receipts += 1,
                Ok(false) => dropped.receipts += 1,
                Err(e) => failed = Some(e),
            }
        }
    }
    for &user in &users {
        let marks = all_rows(
            src,
            "SELECT peer, seq FROM read_marks WHERE user_id = ?1",
            user,
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
        );
        for (peer, seq) in marks {
            let sql = "INSERT INTO read_marks (user_id, peer, seq) VALUES (?1, ?2, ?3)";
            match insert(dst, sql, params![user, peer, seq]) {
                Ok(true) => copied.read_marks += 1,
                Ok(false) => dropped.read_marks += 1,
                Err(e) => failed = Some(e),
            }
        }
        // Uploads and, for an unfinished one, its parts: all or none.
        let uploads = all_rows(
            src,
            "SELECT kind, client_id, to_user, total_len, started, msg_id FROM uploads
             WHERE user_id = ?1",
            user,
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                ))
            },
        );
        for (kind, client_id, to, total, started, msg) in uploads {
            let sql = "INSERT INTO uploads (user_id, kind, client_id, to_user, total_len, started,
                           msg_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
            match insert(
                dst,
                sql,
                params![user, kind, client_id, to, total, started, msg],
            ) {
                Ok(true) => copied.uploads += 1,
                Ok(false) => {
                    dropped.uploads += 1;
                    continue;
                }
                Err(e) => {
                    failed = Some(e);
                    continue;
                }
            }
            let parts: Vec<(i64, Vec<u8>)> = src
                .prepare(
                    "SELECT start_pos, data FROM upload_parts
                     WHERE user_id = ?1 AND kind = ?2 AND client_id = ?3",
                )
                .and_then(|mut st| {
                    st.query_map(params![user, kind, client_id], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?
                    .collect()
                })
                .unwrap_or_default();
            for (start, data) in parts {
                let sql = "INSERT INTO upload_parts (user_id, kind, client_id, start_pos, data)
                           VALUES (?1, ?2, ?3, ?4, ?5)";
                match insert(dst, sql, params![user, kind, client_id, start, data]) {
                    Ok(true) => copied.upload_parts += 1,
                    Ok(false) => dropped.upload_parts += 1,
                    Err(e) => failed = Some(e),
                }
            }
        }
    }
    if let Some(e) = failed {
        return Err(e).ctx("writing the repaired store");
    }
    // Keep the highest MsgId reserved (clients tell messages by it).
    let highest = src
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'messages'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .ok();
    if let Some(seq) = highest {
        dst.execute(
            "UPDATE sqlite_sequence SET seq = max(seq, ?1) WHERE name = 'messages'",
            [seq],
        )
        .and_then(|n| {
            if n == 0 {
                dst.execute(
                    "INSERT INTO sqlite_sequence (name, seq) VALUES ('messages', ?1)",
                    [seq],
                )
            } else {
                Ok(n)
            }
        })
        .ctx("keeping the highest MsgId")?;
    }
    dst.execute_batch("COMMIT").ctx("committing the repair")?;
    Ok((copied, dropped, highest.map(|s| s as u64)))
}

/// A directory `DIR/damaged-<unix seconds>` that does not exist yet.
fn aside_dir(dir: &Path) -> PathBuf {
    let now = crate::net::unix_now();
    let mut aside = dir.join(format!("damaged-{now}"));
    let mut n = 1;
    while aside.exists() {
        aside = dir.join(format!("damaged-{now}-{n}"));
        n += 1;
    }
    aside
}

fn io(path: &Path, what: &str, e: std::io::Error) -> StoreError {
    StoreError::Repair(format!("{what} {}: {e}", path.display()))
}

impl Store {
    /// Repairs the damaged store in `dir` (module docs): `Err` when it is
    /// sound (nothing to repair), when there is no database to read from,
    /// or when the repair could not be done (then the damaged files are
    /// where they were).
    pub fn repair(dir: &Path) -> Result<RepairReport, StoreError> {
        let db = dir.join(DB_FILE);
        match look(dir) {
            Found::Database => {}
            Found::Nothing | Found::Lost { .. } => {
                return Err(StoreError::Repair(format!(
                    "{} is missing or empty: there is nothing to read; restore the directory \
                     from a backup",
                    db.display()
                )))
            }
        }
        let src = open_without_writing(&db)?;
        if check::sqlite_check(&src, true).is_empty() {
            return Err(StoreError::Repair(format!(
                "{} passes its check: nothing to repair",
                db.display()
            )));
        }
        // Without the schema (the list of tables, on the first pages) no
        // row can be found.
        if let Err(e) = src.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(())) {
            return Err(StoreError::Repair(format!(
                "the schema of {} cannot be read ({e}), so nothing can be copied from it; \
                 restore the directory from a backup",
                db.display()
            )));
        }
        let tmp = dir.join("repair.tmp");
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, "cannot remove", e))?;
        }
        let built = Store::open(&tmp).and_then(|new| copy(&src, &new.conn));
        let (copied, dropped, highest_msg_id) = match built {
            Ok(r) => r,
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        drop(src);
        // The new store is whole and closed: swap.
        let aside = aside_dir(dir);
        fs::create_dir(&aside).map_err(|e| io(&aside, "cannot create", e))?;
        let wal = check::wal_of(&db);
        let mut shm = db.as_os_str().to_owned();
        shm.push("-shm");
        for f in [db.clone(), wal, PathBuf::from(shm)] {
            if f.exists() {
                let to = aside.join(f.file_name().unwrap_or_default());
                fs::rename(&f, &to).map_err(|e| io(&f, "cannot move aside", e))?;
            }
        }
        let built = tmp.join(DB_FILE);
        fs::rename(&built, &db).map_err(|e| io(&built, "cannot move into place", e))?;
        fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, "cannot remove", e))?;
        check::mark(dir)?;
        let check = Store::check(dir, true)?;
        Ok(RepairReport {
            aside,
            copied,
            dropped,
            highest_msg_id,
            check,
        })
    }
}
