//! Damaged stores are refused before anything is written to them: a
//! database truncated to half with its WAL kept (as after kill -9), bit
//! flips, an empty or missing database where the marker says data was;
//! and `check` reports what it found.

use std::fs;
use std::path::Path;

use super::*;
use crate::net::store::{NewMessage, RepairReport, StoredMessage};

fn msg(from: i64, to: i64, i: usize) -> NewMessage {
    NewMessage {
        from,
        from_device: "phone".into(),
        to,
        client_msg_id: Some(i.to_string()),
        msg_type: 1,
        content: format!("message {i} ").repeat(20),
        create_time: 1_700_000_000,
    }
}

/// A store in `dir` with `n` messages from alice to bob, the first half
/// checkpointed into the database, the rest only in the WAL; closed
/// cleanly when `crash` is false, else left as kill -9 leaves it (the
/// files copied while the store is open).
fn store_with(dir: &Path, n: usize, crash: bool) {
    let live = tempfile::tempdir().unwrap();
    let mut s = Store::open(live.path()).unwrap();
    let a = s.user("alice", true).unwrap().unwrap();
    let b = s.user("bob", true).unwrap().unwrap();
    s.register_device(b, "phone").unwrap();
    // Two transactions (an fsync each, not one per message).
    s.alone(|s| (0..n / 2).try_for_each(|i| s.send(&msg(a, b, i)).map(drop)))
        .unwrap();
    s.conn
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    s.alone(|s| (n / 2..n).try_for_each(|i| s.send(&msg(a, b, i)).map(drop)))
        .unwrap();
    if crash {
        for f in [DB_FILE, "syncscope.sqlite3-wal", MARKER_FILE] {
            fs::copy(live.path().join(f), dir.join(f)).unwrap();
        }
        drop(s);
    } else {
        drop(s);
        for f in fs::read_dir(live.path()).unwrap() {
            let f = f.unwrap();
            fs::copy(f.path(), dir.join(f.file_name())).unwrap();
        }
    }
}

/// The length and a hash of the database and of its WAL (missing and
/// empty alike: SQLite may create an empty one), to show nothing was
/// written.
fn files(dir: &Path) -> Vec<(usize, u64)> {
    use std::hash::{Hash, Hasher};
    [DB_FILE, "syncscope.sqlite3-wal"]
        .iter()
        .map(|f| {
            let bytes = fs::read(dir.join(f)).unwrap_or_default();
            let mut h = std::collections::hash_map::DefaultHasher::new();
            bytes.hash(&mut h);
            (bytes.len(), h.finish())
        })
        .collect()
}

/// `Store::open` refuses the store in `dir` as damaged, names the file
/// and what to do, and writes nothing.
fn refused_as_damaged(dir: &Path) -> Vec<String> {
    let before = files(dir);
    let e = Store::open(dir).expect_err("a damaged store is refused");
    let text = e.to_string();
    let StoreError::Damaged { path, problems } = e else {
        panic!("not refused as damaged: {text}");
    };
    assert_eq!(path, dir.join(DB_FILE));
    assert!(!problems.is_empty());
    assert!(
        text.contains(&dir.join(DB_FILE).display().to_string()),
        "{text}"
    );
    assert!(
        text.contains("--check") && text.contains("--repair"),
        "{text}"
    );
    assert!(text.contains("nothing was written"), "{text}");
    assert_eq!(files(dir), before, "the refused store was written to");
    // The full check finds it too, and writes nothing either.
    let report = Store::check(dir, true).unwrap();
    assert!(!report.is_sound() && report.counts.is_none(), "{report:?}");
    assert_eq!(files(dir), before, "the check wrote to the store");
    problems
}

#[test]
fn a_sound_store_after_a_crash_opens_and_has_everything() {
    let dir = tempfile::tempdir().unwrap();
    store_with(dir.path(), 600, true);
    let report = Store::check(dir.path(), true).unwrap();
    assert!(report.is_sound(), "{report:?}");
    let counts = report.counts.unwrap();
    assert_eq!((counts.users, counts.messages), (2, 600));
    assert_eq!((counts.devices, counts.mailbox), (1, 1200));
    let mut s = Store::open(dir.path()).unwrap();
    let b = s.user("bob", false).unwrap().unwrap();
    let p = s.sync(b, "phone", 0, 1000).unwrap();
    assert_eq!(p.messages.len(), 600);
}

#[test]
fn a_database_truncated_to_half_with_its_wal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    store_with(dir.path(), 2000, true);
    let db = dir.path().join(DB_FILE);
    let len = fs::metadata(&db).unwrap().len();
    let wal = fs::metadata(dir.path().join("syncscope.sqlite3-wal")).unwrap();
    assert!(len > 200_000 && wal.len() > 100_000, "{len} {}", wal.len());
    truncate_to_half(&db);
    refused_as_damaged(dir.path());
}

#[test]
fn bit_flips_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    store_with(dir.path(), 2000, false);
    let db = dir.path().join(DB_FILE);
    assert!(!dir.path().join("syncscope.sqlite3-wal").exists());
    flip_bits(&db);
    let problems = refused_as_damaged(dir.path());
    // SQLite's own words, one problem a line.
    assert!(problems.iter().all(|p| !p.contains('\n')), "{problems:?}");
}

#[test]
fn an_empty_or_missing_database_where_data_was_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    store_with(dir.path(), 10, false);
    assert!(dir.path().join(MARKER_FILE).exists());
    let db = dir.path().join(DB_FILE);
    for what in ["empty", "missing"] {
        if what == "empty" {
            fs::write(&db, b"").unwrap();
        } else {
            fs::remove_file(&db).unwrap();
        }
        let e = Store::open(dir.path()).expect_err("refused");
        let text = e.to_string();
        assert!(
            matches!(&e, StoreError::Lost { what: w, .. } if *w == what),
            "{text}"
        );
        assert!(text.contains(&db.display().to_string()), "{text}");
        assert!(
            text.contains(MARKER_FILE) && text.contains("backup"),
            "{text}"
        );
        // Nothing was created in its place.
        let now = fs::metadata(&db).ok().map(|m| m.len());
        assert_eq!(now, (what == "empty").then_some(0), "{what}");
        let report = Store::check(dir.path(), false).unwrap();
        assert!(report.problems[0].contains(what), "{report:?}");
    }
    // Without the marker, an empty directory is a new store.
    fs::remove_file(dir.path().join(MARKER_FILE)).unwrap();
    Store::open(dir.path()).unwrap();
    assert!(dir.path().join(MARKER_FILE).exists());
}

#[test]
fn a_wal_with_data_and_no_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    store_with(dir.path(), 100, true);
    fs::remove_file(dir.path().join(MARKER_FILE)).unwrap();
    fs::remove_file(dir.path().join(DB_FILE)).unwrap();
    let e = Store::open(dir.path()).expect_err("refused");
    assert!(
        matches!(&e, StoreError::Lost { evidence, .. } if evidence.ends_with("syncscope.sqlite3-wal")),
        "{e}"
    );
}

#[test]
fn a_store_from_before_the_marker_gets_one() {
    let dir = tempfile::tempdir().unwrap();
    store_with(dir.path(), 10, false);
    fs::remove_file(dir.path().join(MARKER_FILE)).unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    assert!(dir.path().join(MARKER_FILE).exists());
    let stored: Vec<StoredMessage> = s.messages().unwrap();
    assert_eq!(stored.len(), 10);
    let b = s.user("bob", false).unwrap().unwrap();
    assert_eq!(s.last_seq(b).unwrap(), 10);
}

/// Repairs the damaged store in `dir`: what was readable is copied, the
/// damaged files are kept aside, the new store is sound, serves what it
/// has and issues MsgIds above the old ones.
fn repaired(dir: &Path) -> RepairReport {
    let r = Store::repair(dir).expect("repaired");
    assert!(r.check.is_sound(), "{r:?}");
    assert!(r.aside.join(DB_FILE).exists(), "{r:?}");
    assert!(r.aside.starts_with(dir));
    assert!(!dir.join("repair.tmp").exists());
    let mut s = Store::open(dir).expect("the repaired store opens");
    let (a, b) = (
        s.user("alice", false).unwrap().unwrap(),
        s.user("bob", false).unwrap().unwrap(),
    );
    let mut got = 0;
    let mut at = 0;
    loop {
        let p = s.sync(b, "phone", at, 500).unwrap();
        got += p.messages.len() as u64;
        at = p.next_seq;
        if !p.more {
            break;
        }
    }
    let bobs: u64 = s
        .conn
        .query_row(
            "SELECT count(*) FROM mailbox WHERE user_id = ?1",
            [b],
            |r| r.get(0),
        )
        .unwrap();
    assert!(got > 0 && got == bobs, "{got} {bobs} {r:?}");
    let sent = s.send(&msg(a, b, 100_000)).unwrap();
    assert!(sent.msg_id > r.highest_msg_id.unwrap(), "{r:?}");
    r
}

#[test]
fn repair_copies_what_is_readable_of_a_truncated_store() {
    let dir = tempfile::tempdir().unwrap();
    store_with(dir.path(), 2000, true);
    let db = dir.path().join(DB_FILE);
    truncate_to_half(&db);
    let r = repaired(dir.path());
    assert_eq!(r.copied.users, 2);
    assert!(r.copied.messages > 500, "{r:?}");
    assert_eq!(r.highest_msg_id, Some(2000));
}

#[test]
fn repair_copies_what_is_readable_after_bit_flips() {
    let dir = tempfile::tempdir().unwrap();
    store_with(dir.path(), 2000, false);
    let db = dir.path().join(DB_FILE);
    flip_bits(&db);
    let r = repaired(dir.path());
    assert!(r.copied.messages > 1000, "{r:?}");
}

#[test]
fn repair_refuses_a_sound_or_lost_store() {
    let dir = tempfile::tempdir().unwrap();
    store_with(dir.path(), 10, false);
    let e = Store::repair(dir.path()).expect_err("nothing to repair");
    assert!(e.to_string().contains("nothing to repair"), "{e}");
    fs::remove_file(dir.path().join(DB_FILE)).unwrap();
    let e = Store::repair(dir.path()).expect_err("nothing to read");
    assert!(e.to_string().contains("backup"), "{e}");
}

/// Flips 200 bits anywhere past the schema's pages (whose damage is found
/// anyway), the same ones every run.
fn flip_bits(db: &std::path::Path) {
    let mut bytes = fs::read(db).unwrap();
    let mut x: u64 = 0x5eed_b175;
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bit = 8192 * 8 + x % ((bytes.len() as u64 - 8192) * 8);
        bytes[(bit / 8) as usize] ^= 1 << (bit % 8);
    }
    fs::write(db, &bytes).unwrap();
}

/// Cuts a file to half its length.
fn truncate_to_half(path: &std::path::Path) {
    let len = fs::metadata(path).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
}

/// Makes the store in `dir` fail its check while every table stays
/// readable: the ClientMsgId index's root is pointed at another index's,
/// so the index no longer lists the messages.
fn break_an_index(dir: &Path) {
    let c = rusqlite::Connection::open(dir.join(DB_FILE)).unwrap();
    c.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DEFENSIVE, false)
        .unwrap();
    let other: i64 = c
        .query_row(
            "SELECT rootpage FROM sqlite_schema WHERE name = 'uploads_open'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    c.execute_batch("PRAGMA writable_schema = ON").unwrap();
    c.execute(
        "UPDATE sqlite_schema SET rootpage = ?1 WHERE name = 'messages_by_client_id'",
        [other],
    )
    .unwrap();
    c.execute_batch("PRAGMA writable_schema = OFF").unwrap();
}

#[test]
fn repair_copies_media_receipts_and_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let (image, thumb) = (vec![7u8; 5000], vec![9u8; 300]);
    let (msg_id, receipts) = {
        let mut s = Store::open(dir.path()).unwrap();
        s.set_receipts(true);
        let a = s.user("alice", true).unwrap().unwrap();
        let b = s.user("bob", true).unwrap().unwrap();
        s.register_device(b, "phone").unwrap();
        let m = NewMessage {
            msg_type: 3,
            content: "<msg><img/></msg>".into(),
            ..msg(a, b, 1)
        };
        let sent = s
            .finish_upload(a, 3, "img1", &m, &image, Some(&thumb))
            .unwrap();
        let msg_id = match sent {
            Some(sent) => sent.msg_id,
            // No upload row: finish_upload wants one; make it by its part.
            None => {
                let part = crate::net::store::Part {
                    user: a,
                    kind: 3,
                    client_id: "img1",
                    to: b,
                    total: Some(image.len() as u64),
                    start: 0,
                    data: &image,
                    now: 1_700_000_000,
                };
                s.put_part(&part, 8).unwrap();
                s.finish_upload(a, 3, "img1", &m, &image, Some(&thumb))
                    .unwrap()
                    .expect("the upload is there")
                    .msg_id
            }
        };
        assert_eq!(
            s.report_read(b, "phone", a, u64::MAX, 1_700_000_001)
                .unwrap(),
            1
        );
        // An upload not finished: its first part.
        let part = crate::net::store::Part {
            user: a,
            kind: 3,
            client_id: "img2",
            to: b,
            total: Some(3000),
            start: 0,
            data: &image[..1500],
            now: 1_700_000_002,
        };
        s.put_part(&part, 8).unwrap();
        (msg_id, s.receipts(msg_id).unwrap())
    };
    assert!(!receipts.is_empty());
    break_an_index(dir.path());
    assert!(!Store::check(dir.path(), true).unwrap().is_sound());
    let r = Store::repair(dir.path()).expect("repaired");
    assert!(r.check.is_sound(), "{r:?}");
    assert_eq!(
        (
            r.copied.media,
            r.copied.receipts,
            r.copied.read_marks,
            r.copied.uploads,
            r.copied.upload_parts
        ),
        (1, receipts.len() as u64, 1, 2, 1),
        "{r:?}"
    );
    let mut s = Store::open(dir.path()).unwrap();
    // Still downloadable, byte for byte, with its receipts.
    let m = s.media(msg_id).unwrap().expect("the image");
    assert_eq!((m.data, m.thumb), (image.clone(), Some(thumb)));
    assert_eq!(s.receipts(msg_id).unwrap(), receipts);
    // The unfinished upload goes on where it stopped.
    let (a, b) = (
        s.user("alice", false).unwrap().unwrap(),
        s.user("bob", false).unwrap().unwrap(),
    );
    let rest = crate::net::store::Part {
        user: a,
        kind: 3,
        client_id: "img2",
        to: b,
        total: Some(3000),
        start: 1500,
        data: &image[1500..3000],
        now: 1_700_000_003,
    };
    assert!(matches!(
        s.put_part(&rest, 8).unwrap(),
        crate::net::store::PartOutcome::Whole(ref v) if v[..] == image[..3000]
    ));
}
