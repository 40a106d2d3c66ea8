//! Damaged stores through the binary (issue 13, item 8): `serve` refuses
//! a damaged or emptied store with a message naming the file and what to
//! do, `serve --check` reports it (exit 1), `serve --repair` copies what is
//! readable into a new store, after which the server starts again.

use std::fs;
use std::path::Path;

use syncscope::net::store::{NewMessage, Store, DB_FILE, MARKER_FILE};

use crate::net::{run_bounded, syncscope, ServeProcess};

const WAL: &str = "syncscope.sqlite3-wal";

/// A store in `dir` with `n` messages from alice to bob, half of them
/// checkpointed into the database and half only in the WAL, as kill -9
/// leaves it (the files copied while the store is open).
fn crashed_store(dir: &Path, n: usize) {
    let live = tempfile::tempdir().unwrap();
    let mut s = Store::open(live.path()).unwrap();
    let a = s.user("alice", true).unwrap().unwrap();
    let b = s.user("bob", true).unwrap().unwrap();
    s.register_device(b, "phone").unwrap();
    for i in 0..n {
        s.send(&NewMessage {
            from: a,
            from_device: "phone".into(),
            to: b,
            client_msg_id: Some(i.to_string()),
            msg_type: 1,
            content: format!("message {i} ").repeat(20),
            create_time: 1_700_000_000,
        })
        .unwrap();
        if i == n / 2 {
            rusqlite::Connection::open(live.path().join(DB_FILE))
                .unwrap()
                .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
                .unwrap();
        }
    }
    for f in [DB_FILE, WAL, MARKER_FILE] {
        fs::copy(live.path().join(f), dir.join(f)).unwrap();
    }
}

/// Runs `syncscope serve --data DIR ARGS`: exit code, stdout, stderr.
fn serve(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = syncscope();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir)
        .args(args);
    let out = run_bounded(cmd);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_store_truncated_to_half_is_refused_checked_and_repaired() {
    let dir = tempfile::tempdir().unwrap();
    crashed_store(dir.path(), 600);
    let db = dir.path().join(DB_FILE);
    let name = db.display().to_string();
    // Sound: --check says so, with what it holds.
    let (code, out, _) = serve(dir.path(), &["--check"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&name) && out.contains("sound (2 users, 1 devices, 600 messages"),
        "{out}"
    );
    // Cut to half, WAL kept.
    let len = fs::metadata(&db).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let (wal_before, db_before) = (
        fs::read(dir.path().join(WAL)).unwrap(),
        fs::read(&db).unwrap(),
    );
    // serve refuses to start: the file, why, what to do.
    let (code, _, err) = serve(dir.path(), &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(!err.contains("listening on"), "{err}");
    for want in [name.as_str(), "damaged", "--check", "--repair", "backup"] {
        assert!(err.contains(want), "{want:?} in {err}");
    }
    // --check: exit 1 and SQLite's findings.
    let (code, out, _) = serve(dir.path(), &["--check"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&format!("{name}: damaged")), "{out}");
    // Nothing was written to the damaged files.
    assert!(
        fs::read(&db).unwrap() == db_before,
        "the database was written"
    );
    assert!(
        fs::read(dir.path().join(WAL)).unwrap() == wal_before,
        "the WAL was written"
    );
    // --repair, then the server starts on what was saved.
    let (code, out, err) = serve(dir.path(), &["--repair"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("repaired: copied 2 users") && out.contains("damaged-"),
        "{out}"
    );
    let (code, out, _) = serve(dir.path(), &["--check"]);
    assert_eq!(code, Some(0), "{out}");
    let server = ServeProcess::start(&["--data", dir.path().to_str().unwrap()]);
    drop(server);
    // A second repair has nothing to do.
    let (code, _, err) = serve(dir.path(), &["--repair"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("nothing to repair"), "{err}");
}

#[test]
fn an_emptied_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    crashed_store(dir.path(), 10);
    fs::write(dir.path().join(DB_FILE), b"").unwrap();
    fs::remove_file(dir.path().join(WAL)).unwrap();
    let (code, _, err) = serve(dir.path(), &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("is empty") && err.contains(MARKER_FILE) && err.contains("backup"),
        "{err}"
    );
    assert_eq!(fs::metadata(dir.path().join(DB_FILE)).unwrap().len(), 0);
    let (code, out, _) = serve(dir.path(), &["--check"]);
    assert_eq!(code, Some(1), "{out}");
}
