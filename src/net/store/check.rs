//! Damaged stores fail loudly: before [`Store::open`] writes anything it
//! checks the data directory (a marker file says the directory held a
//! store, so a missing or empty database there is refused rather than
//! started empty) and the database (SQLite's `quick_check`, on a
//! connection that cannot write and does not checkpoint on close), and
//! refuses a damaged store naming the file and what to do.
//! [`Store::check`] is `serve --check` (the full `integrity_check` and the
//! row counts); [`Store::repair`] is `serve --repair` (repair.rs).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use super::sql::DB_FILE;
use super::{Context, Store, StoreError};

/// The file that marks a data directory as holding a store; written when
/// the database is created (or first opened by a syncscope that knows it).
pub const MARKER_FILE: &str = "syncscope.store";

const MARKER_TEXT: &str = "This directory holds a syncscope store (syncscope.sqlite3 and its \
-wal file). If the database is missing or empty while this file is here, `syncscope serve` \
refuses to start rather than start empty: restore the directory from a backup, or move it \
aside to start anew.\n";

/// Problems shown in a refusal (the check's full list is longer).
const SHOWN: usize = 3;
/// Problems collected from SQLite at most.
const MAX_PROBLEMS: usize = 100;

/// What checking a store found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CheckReport {
    /// The database file.
    pub path: PathBuf,
    /// What is wrong (the first [`MAX_PROBLEMS`]); empty: the store is sound.
    pub problems: Vec<String>,
    /// Rows of each table, when the store is sound.
    pub counts: Option<Counts>,
}

impl CheckReport {
    pub fn is_sound(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Rows of each table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub users: u64,
    pub devices: u64,
    pub messages: u64,
    pub mailbox: u64,
    /// Stored images and recordings.
    pub media: u64,
    /// Receipts (per message, device and kind) and read marks (per reader
    /// and chat).
    pub receipts: u64,
    pub read_marks: u64,
    /// Uploads (finished or not) and the parts of unfinished ones.
    pub uploads: u64,
    pub upload_parts: u64,
}

/// How a refused store is described (the [`StoreError::Damaged`] text).
pub(super) fn damaged_message(path: &Path, problems: &[String]) -> String {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut shown = problems
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("; ");
    match problems.len() {
        n if n >= MAX_PROBLEMS => shown.push_str("; and more"),
        n if n > SHOWN => shown.push_str(&format!("; and {} more", n - SHOWN)),
        _ => {}
    }
    format!(
        "store: {} is damaged ({shown}); it was not opened and nothing was written to it. \
         Run `syncscope serve --data {} --check` for the full report, then `--repair` to copy \
         what is readable into a new store (the damaged files are kept aside), or restore the \
         directory from a backup",
        path.display(),
        dir.display()
    )
}

/// What the directory holds.
pub(super) enum Found {
    /// No database and nothing that says there was one: a new store.
    Nothing,
    /// A database with data in it.
    Database,
    /// The marker (or a WAL with data), `evidence`, says there was a
    /// store, and the database is missing or empty.
    Lost {
        what: &'static str,
        evidence: PathBuf,
    },
}

pub(super) fn len(path: &Path) -> Option<u64> {
    fs::metadata(path).ok().map(|m| m.len())
}

pub(super) fn wal_of(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

pub(super) fn look(dir: &Path) -> Found {
    let db = dir.join(DB_FILE);
    let marker = dir.join(MARKER_FILE);
    let wal = wal_of(&db);
    let evidence = if marker.exists() {
        Some(marker)
    } else if len(&wal).is_some_and(|n| n > 0) {
        Some(wal)
    } else {
        None
    };
    match (len(&db), evidence) {
        (Some(n), _) if n > 0 => Found::Database,
        (found, Some(evidence)) => Found::Lost {
            what: if found.is_some() { "empty" } else { "missing" },
            evidence,
        },
        _ => Found::Nothing,
    }
}

/// Opens `db` so that nothing is written to it: statements may not write
/// (`query_only`) and closing does not checkpoint the WAL into it.
pub(super) fn open_without_writing(db: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .ctx("opening the database file to check it")?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        .ctx("turning off the checkpoint on close")?;
    conn.pragma_update(None, "query_only", true)
        .ctx("making the check read-only")?;
    Ok(conn)
}

/// SQLite's own check of `conn`'s database: the problems it lists (an
/// error counts as one).
pub(super) fn sqlite_check(conn: &Connection, full: bool) -> Vec<String> {
    let pragma = if full {
        "PRAGMA integrity_check(100)"
    } else {
        "PRAGMA quick_check(100)"
    };
    let rows = conn.prepare(pragma).and_then(|mut st| {
        st.query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()
    });
    match rows {
        Ok(rows) if rows.len() == 1 && rows[0] == "ok" => Vec::new(),
        Ok(rows) if rows.is_empty() => vec!["the check gave no answer".to_owned()],
        // A row may hold several lines, under a "*** in database main ***".
        Ok(rows) => rows
            .iter()
            .flat_map(|r| r.lines())
            .filter(|l| !l.is_empty() && !l.starts_with("***"))
            .take(MAX_PROBLEMS)
            .map(str::to_owned)
            .collect(),
        Err(e) => vec![e.to_string()],
    }
}

fn counts(conn: &Connection) -> rusqlite::Result<Counts> {
    let n = |table: &str| {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
            r.get::<_, i64>(0)
        })
        .map(|n| n as u64)
    };
    Ok(Counts {
        users: n("users")?,
        devices: n("devices")?,
        messages: n("messages")?,
        mailbox: n("mailbox")?,
        media: n("media")?,
        receipts: n("receipts")?,
        read_marks: n("read_marks")?,
        uploads: n("uploads")?,
        upload_parts: n("upload_parts")?,
    })
}

/// The store in `dir` before it is opened for writing: `Ok` for a new
/// store (nothing there yet) or a sound one, the refusal for a lost or
/// damaged one. Writes nothing.
pub(super) fn before_open(dir: &Path) -> Result<(), StoreError> {
    let db = dir.join(DB_FILE);
    match look(dir) {
        Found::Nothing => Ok(()),
        Found::Lost { what, evidence } => Err(StoreError::Lost {
            path: db,
            evidence,
            what,
        }),
        Found::Database => {
            let conn = open_without_writing(&db)?;
            let problems = sqlite_check(&conn, false);
            if problems.is_empty() {
                Ok(())
            } else {
                Err(StoreError::Damaged { path: db, problems })
            }
        }
    }
}

/// Writes the marker of `dir` (durably) if it is not there.
pub(super) fn mark(dir: &Path) -> Result<(), StoreError> {
    let marker = dir.join(MARKER_FILE);
    if marker.exists() {
        return Ok(());
    }
    let write = || -> std::io::Result<()> {
        let tmp = dir.join(format!("{MARKER_FILE}.tmp"));
        let mut f = File::create(&tmp)?;
        f.write_all(MARKER_TEXT.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, &marker)?;
        // The rename itself must survive a power cut.
        File::open(dir)?.sync_all()
    };
    write().map_err(|source| StoreError::Marker {
        path: marker.clone(),
        source,
    })
}

impl Store {
    /// Checks the store in `dir` without writing anything (`serve
    /// --check`): the marker and the files, then SQLite's
    /// `integrity_check` (`full`) or `quick_check`, and the rows of each
    /// table when it is sound. `Err` only when the check itself could not
    /// run.
    pub fn check(dir: &Path, full: bool) -> Result<CheckReport, StoreError> {
        let path = dir.join(DB_FILE);
        let mut report = CheckReport {
            path: path.clone(),
            problems: Vec::new(),
            counts: None,
        };
        match look(dir) {
            Found::Nothing => report.problems.push(format!(
                "there is no store in {} (no {DB_FILE})",
                dir.display()
            )),
            Found::Lost { what, evidence } => report.problems.push(
                StoreError::Lost {
                    path: path.clone(),
                    evidence,
                    what,
                }
                .to_string(),
            ),
            Found::Database => {
                let conn = open_without_writing(&path)?;
                report.problems = sqlite_check(&conn, full);
                if report.is_sound() {
                    match counts(&conn) {
                        Ok(c) => report.counts = Some(c),
                        Err(e) => report.problems.push(e.to_string()),
                    }
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests;
