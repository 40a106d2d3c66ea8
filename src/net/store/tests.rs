//! The store alone, the writer thread, and the view against the database.

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

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
    let again = s.send(&msg(a, b, "1", "hi")).unwrap();
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
fn a_client_msg_id_reused_for_another_message_is_a_new_message() {
    let mut s = Store::memory().unwrap();
    let a = s.user("alice", true).unwrap().unwrap();
    let b = s.user("bob", true).unwrap().unwrap();
    let c = s.user("carol", true).unwrap().unwrap();
    for u in [a, b, c] {
        s.register_device(u, "phone").unwrap();
    }
    let first = s.send(&msg(a, b, "1700000000123", "hi")).unwrap();
    // Two sends in one millisecond: another recipient, another content.
    let to_carol = s.send(&msg(a, c, "1700000000123", "hi")).unwrap();
    let other = s.send(&msg(a, b, "1700000000123", "second")).unwrap();
    let typed = s
        .send(&NewMessage {
            msg_type: 3,
            ..msg(a, b, "1700000000123", "hi")
        })
        .unwrap();
    let ids = [first.msg_id, to_carol.msg_id, other.msg_id, typed.msg_id];
    assert!(!to_carol.duplicate && !other.duplicate && !typed.duplicate);
    let mut distinct = ids.to_vec();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "{ids:?}");
    // Each is resent as itself.
    for (m, id) in [
        (msg(a, b, "1700000000123", "hi"), first.msg_id),
        (msg(a, c, "1700000000123", "hi"), to_carol.msg_id),
        (msg(a, b, "1700000000123", "second"), other.msg_id),
    ] {
        let again = s.send(&m).unwrap();
        assert_eq!((again.msg_id, again.duplicate), (id, true));
    }
    // Delivered: Bob gets his three, Carol hers.
    let texts =
        |p: SyncPage| -> Vec<String> { p.messages.into_iter().map(|m| m.content).collect() };
    assert_eq!(
        texts(s.sync(b, "phone", 0, 10).unwrap()),
        ["hi", "second", "hi"]
    );
    assert_eq!(texts(s.sync(c, "phone", 0, 10).unwrap()), ["hi"]);
    assert_eq!(s.messages().unwrap().len(), 4);
}

#[test]
fn a_version_2_store_loses_the_unique_client_msg_id() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = Connection::open(dir.path().join(DB_FILE)).unwrap();
        c.execute_batch(
            "PRAGMA foreign_keys = ON;
             CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
             CREATE TABLE devices (user_id INTEGER NOT NULL REFERENCES users(id),
                 device TEXT NOT NULL, is_primary INTEGER NOT NULL,
                 acked_seq INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (user_id, device)) WITHOUT ROWID;
             CREATE TABLE messages (msg_id INTEGER PRIMARY KEY AUTOINCREMENT,
                 from_user INTEGER NOT NULL REFERENCES users(id), from_device TEXT NOT NULL,
                 to_user INTEGER NOT NULL REFERENCES users(id), client_msg_id TEXT,
                 msg_type INTEGER NOT NULL, content TEXT NOT NULL, create_time INTEGER NOT NULL,
                 UNIQUE (from_user, client_msg_id));
             CREATE TABLE mailbox (user_id INTEGER NOT NULL REFERENCES users(id),
                 seq INTEGER NOT NULL, msg_id INTEGER NOT NULL REFERENCES messages(msg_id),
                 origin_device TEXT, PRIMARY KEY (user_id, seq)) WITHOUT ROWID;
             INSERT INTO users (id, name) VALUES (1, 'alice'), (2, 'bob');
             INSERT INTO devices VALUES (2, 'phone', 1, 0);
             INSERT INTO messages VALUES (7, 1, 'phone', 2, 'c1', 1, 'hi', 1700000000);
             INSERT INTO mailbox VALUES (2, 1, 7, NULL);
             UPDATE sqlite_sequence SET seq = 9 WHERE name = 'messages';
             PRAGMA user_version = 2;",
        )
        .unwrap();
    }
    let mut s = Store::open(dir.path()).unwrap();
    let (a, b) = (1, 2);
    assert_eq!(s.messages().unwrap().len(), 1, "kept");
    assert_eq!(s.sync(b, "phone", 0, 10).unwrap().messages[0].msg_id, 7);
    let again = s.send(&msg(a, b, "c1", "hi")).unwrap();
    assert_eq!((again.msg_id, again.duplicate), (7, true));
    // The same ClientMsgId for another message: stored, after the old
    // sequence.
    let other = s.send(&msg(a, b, "c1", "another")).unwrap();
    assert_eq!((other.msg_id, other.duplicate), (10, false));
    let p = s.sync(b, "phone", 0, 10).unwrap();
    assert_eq!(p.messages.len(), 2);
    drop(s);
    let c = Connection::open(dir.path().join(DB_FILE)).unwrap();
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    let bad: i64 = c
        .query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(bad, 0, "the mailbox still refers to its messages");
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
        assert!(s.send(&msg(a, a, "x", "note"))?.duplicate);
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
/// around failed operations (rolled back), pages longer than the tail,
/// pages capped in bytes, and large bodies the view's small byte budget
/// drops (read back from SQLite). The view's accounting is checked after
/// every step.
mod view_model {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        Send {
            from: usize,
            to: usize,
            cid: u8,
            size: usize,
        },
        Sync {
            user: usize,
            device: usize,
            back: u64,
            limit: usize,
            bytes: usize,
        },
        Pending {
            user: usize,
            device: usize,
            back: u64,
        },
        /// A send, then a failure in the same operation.
        FailedSend { from: usize, to: usize, cid: u8 },
    }

    const DEVICES: [&str; 2] = ["phone", "web"];
    /// Body sizes: most small, some over the view's budget alone.
    const SIZES: [usize; 4] = [1, 1, 3_000, 40_000];
    /// The view's budget in the store that keeps its view.
    const BUDGET: usize = 32_000;

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0..3usize, 0..3usize, any::<u8>(), 0..SIZES.len())
                .prop_map(|(from, to, cid, size)| Step::Send { from, to, cid, size: SIZES[size] }),
            3 => (
                0..3usize,
                0..2usize,
                0..(TAIL_CAP as u64 + 8),
                1..(TAIL_CAP + 8),
                prop_oneof![Just(usize::MAX), Just(1usize), 200..50_000usize],
            )
                .prop_map(|(user, device, back, limit, bytes)| Step::Sync {
                    user,
                    device,
                    back,
                    limit,
                    bytes,
                }),
            1 => (0..3usize, 0..2usize, 0..(TAIL_CAP as u64 + 8))
                .prop_map(|(user, device, back)| Step::Pending { user, device, back }),
            1 => (0..3usize, 0..3usize, any::<u8>())
                .prop_map(|(from, to, cid)| Step::FailedSend { from, to, cid }),
        ]
    }

    /// Runs one step; `forget` drops the view first.
    fn run(s: &mut Store, users: &[UserId], st: &Step, forget: bool) -> String {
        if forget {
            s.view.reset();
        }
        match *st {
            Step::Send {
                from,
                to,
                cid,
                size,
            } => {
                let text = format!("{cid:03}").repeat(size.div_ceil(3));
                format!(
                    "{:?}",
                    s.send(&msg(users[from], users[to], &cid.to_string(), &text))
                )
            }
            Step::Sync {
                user,
                device,
                back,
                limit,
                bytes,
            } => {
                let u = users[user];
                let at = s.last_seq(u).unwrap().saturating_sub(back);
                if forget {
                    s.view.reset();
                }
                let limit = PageLimit {
                    entries: limit,
                    bytes,
                };
                match s.sync(u, DEVICES[device], at, limit) {
                    // Contents by length and first bytes: short to print.
                    Ok(p) => format!(
                        "{:?} {} {}",
                        p.messages
                            .iter()
                            .map(|m| (m.msg_id, m.content.len(), m.content.get(..3)))
                            .collect::<Vec<_>>(),
                        p.next_seq,
                        p.more
                    ),
                    Err(e) => format!("{e:?}"),
                }
            }
            Step::Pending { user, device, back } => {
                let u = users[user];
                let at = s.last_seq(u).unwrap().saturating_sub(back);
                if forget {
                    s.view.reset();
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
            with.set_view_budget(BUDGET);
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
                check_accounting(&with.view, BUDGET);
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

/// The view's counters are what its tails hold, its bodies within
/// `budget`, and the list of held bodies compact.
fn check_accounting(v: &View, budget: usize) {
    let mut entries = 0;
    let mut bodies = 0;
    let mut bytes = 0;
    for mb in v.mailboxes.values() {
        entries += mb.tail.len();
        for (i, e) in mb.tail.iter().enumerate() {
            assert_eq!(e.seq, mb.base + 1 + i as u64, "a tail is contiguous");
            if let Some(b) = &e.body {
                bodies += 1;
                bytes += view::body_cost(b);
                assert_eq!(e.size, b.wire_len());
            }
        }
        assert_eq!(mb.tail.back().map_or(mb.base, |e| e.seq), mb.last_seq);
    }
    assert_eq!(
        (v.entries, v.bodies, v.bytes),
        (entries, bodies, bytes),
        "counters"
    );
    assert!(v.bytes <= budget, "{} bytes held, budget {budget}", v.bytes);
    assert!(v.held_len() <= 2 * v.bodies + 65, "{}", v.held_len());
}

/// Many large messages to users who never read them: the bodies the view
/// holds stay within its budget, and every message is still delivered
/// whole (read back from SQLite), a page at a time.
#[test]
fn large_bodies_stay_within_the_view_budget() {
    const BUDGET: usize = 1 << 20;
    let mut s = Store::memory().unwrap();
    s.set_view_budget(BUDGET);
    let a = s.user("alice", true).unwrap().unwrap();
    s.register_device(a, "phone").unwrap();
    let users: Vec<UserId> = (0..20)
        .map(|i| s.user(&format!("u{i}"), true).unwrap().unwrap())
        .collect();
    for &u in &users {
        s.register_device(u, "phone").unwrap();
    }
    let mut peak = 0;
    for i in 0..200usize {
        let text = format!("{i:04}").repeat(25_000); // 100 KB
        s.send(&msg(a, users[i % users.len()], &i.to_string(), &text))
            .unwrap();
        check_accounting(&s.view, BUDGET);
        peak = peak.max(s.view.bytes);
    }
    // The budget was used, not just left empty.
    assert!(peak > BUDGET / 2, "peak {peak}");
    // 20 MB sent; the view holds at most 1 MiB of it.
    for (n, &u) in users.iter().enumerate() {
        let mut at = 0;
        let mut got = Vec::new();
        loop {
            let limit = PageLimit {
                entries: 100,
                bytes: 250_000,
            };
            let p = s.sync(u, "phone", at, limit).unwrap();
            assert!(p.messages.len() <= 2, "{}", p.messages.len());
            got.extend(p.messages.iter().map(|m| m.content.clone()));
            at = p.next_seq;
            check_accounting(&s.view, BUDGET);
            if !p.more {
                break;
            }
        }
        let want: Vec<String> = (0..200)
            .filter(|i| i % users.len() == n)
            .map(|i| format!("{i:04}").repeat(25_000))
            .collect();
        assert_eq!(got, want, "user {n}");
    }
    // A body over the whole budget is not held at all.
    for cid in ["big1", "big2"] {
        s.send(&msg(a, users[0], cid, &"b".repeat(BUDGET + 1)))
            .unwrap();
        check_accounting(&s.view, BUDGET);
    }
    // Whatever the byte cap, a page has one message.
    let one = PageLimit {
        entries: 100,
        bytes: 1,
    };
    let before = s.last_seq(users[0]).unwrap() - 2;
    let p = s.sync(users[0], "phone", before, one).unwrap();
    assert_eq!((p.messages.len(), p.more), (1, true));
    assert_eq!(p.messages[0].client_msg_id.as_deref(), Some("big1"));
    let p = s.sync(users[0], "phone", p.next_seq, one).unwrap();
    assert_eq!((p.messages.len(), p.more), (1, false));
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

/// A version 3 store (before media) gets the media tables, keeps its
/// messages, and takes uploads.
#[test]
fn a_version_3_store_gets_the_media_tables() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = Connection::open(dir.path().join(DB_FILE)).unwrap();
        c.execute_batch(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
             CREATE TABLE devices (user_id INTEGER NOT NULL REFERENCES users(id),
                 device TEXT NOT NULL, is_primary INTEGER NOT NULL,
                 acked_seq INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (user_id, device)) WITHOUT ROWID;
             CREATE TABLE messages (msg_id INTEGER PRIMARY KEY AUTOINCREMENT,
                 from_user INTEGER NOT NULL REFERENCES users(id), from_device TEXT NOT NULL,
                 to_user INTEGER NOT NULL REFERENCES users(id), client_msg_id TEXT,
                 msg_type INTEGER NOT NULL, content TEXT NOT NULL, create_time INTEGER NOT NULL);
             CREATE INDEX messages_by_client_id ON messages (from_user, client_msg_id);
             CREATE TABLE mailbox (user_id INTEGER NOT NULL REFERENCES users(id),
                 seq INTEGER NOT NULL, msg_id INTEGER NOT NULL REFERENCES messages(msg_id),
                 origin_device TEXT, PRIMARY KEY (user_id, seq)) WITHOUT ROWID;
             INSERT INTO users (id, name) VALUES (1, 'alice'), (2, 'bob');
             INSERT INTO devices VALUES (2, 'phone', 1, 0);
             INSERT INTO messages VALUES (7, 1, 'phone', 2, 'c1', 1, 'hi', 1700000000);
             INSERT INTO mailbox VALUES (2, 1, 7, NULL);
             PRAGMA user_version = 3;",
        )
        .unwrap();
    }
    let mut s = Store::open(dir.path()).unwrap();
    assert_eq!(s.messages().unwrap().len(), 1, "kept");
    let part = Part {
        user: 1,
        kind: 3,
        client_id: "img",
        to: 2,
        total: Some(2),
        start: 0,
        data: b"ab",
        now: 1,
    };
    assert_eq!(
        s.put_part(&part, 4).unwrap(),
        PartOutcome::Whole(b"ab".to_vec())
    );
    drop(s);
    let c = Connection::open(dir.path().join(DB_FILE)).unwrap();
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    assert_eq!(v, 4);
}

/// Parts in any order, twice, overlapping, past the end; the cap on
/// unfinished uploads; expiry; the finished upload read back.
#[test]
fn uploads_merge_parts_by_client_id() {
    let mut s = Store::memory().unwrap();
    let a = s.user("alice", true).unwrap().unwrap();
    let b = s.user("bob", true).unwrap().unwrap();
    s.register_device(b, "phone").unwrap();
    let part = |id: &'static str, start: u64, data: &'static [u8], now: u64| Part {
        user: a,
        kind: 3,
        client_id: id,
        to: b,
        total: Some(6),
        start,
        data,
        now,
    };
    let partial = |have| PartOutcome::Partial { have, total: 6 };
    assert_eq!(s.put_part(&part("x", 4, b"ef", 10), 2).unwrap(), partial(2));
    assert_eq!(
        s.put_part(&part("x", 4, b"ef", 10), 2).unwrap(),
        partial(2),
        "a duplicate"
    );
    assert!(matches!(
        s.put_part(&part("x", 3, b"de", 10), 2).unwrap(),
        PartOutcome::Refused(why) if why.contains("overlaps")
    ));
    assert!(matches!(
        s.put_part(&part("x", 4, b"efg", 10), 2).unwrap(),
        PartOutcome::Refused(why) if why.contains("past the total")
    ));
    assert!(matches!(
        s.put_part(&Part { to: a, ..part("x", 0, b"ab", 10) }, 2).unwrap(),
        PartOutcome::Refused(why) if why.contains("another recipient")
    ));
    assert_eq!(s.put_part(&part("x", 0, b"ab", 10), 2).unwrap(), partial(4));
    // A second upload, then a third past the cap of 2.
    assert_eq!(s.put_part(&part("y", 0, b"ab", 10), 2).unwrap(), partial(2));
    assert!(matches!(
        s.put_part(&part("z", 0, b"ab", 10), 2).unwrap(),
        PartOutcome::Refused(why) if why.contains("cap")
    ));
    // The missing part makes x whole.
    let PartOutcome::Whole(whole) = s.put_part(&part("x", 2, b"cd", 11), 2).unwrap() else {
        panic!("not whole");
    };
    assert_eq!(whole, b"abcdef");
    let m = NewMessage {
        msg_type: 3,
        content: "<msg><img length=\"6\"/></msg>".into(),
        ..msg(a, b, "x", "")
    };
    let sent = s
        .finish_upload(a, 3, "x", &m, &whole, Some(b"thumb"))
        .unwrap()
        .unwrap();
    assert!(!sent.duplicate);
    let again = s
        .finish_upload(a, 3, "x", &m, &whole, None)
        .unwrap()
        .unwrap();
    assert_eq!((again.msg_id, again.duplicate), (sent.msg_id, true));
    assert_eq!(
        s.put_part(&part("x", 2, b"cd", 12), 2).unwrap(),
        PartOutcome::Done {
            msg_id: sent.msg_id,
            create_time: m.create_time
        },
        "a part after the end gets the message"
    );
    let media = s.media(sent.msg_id).unwrap().unwrap();
    assert_eq!(
        (media.data.as_slice(), media.thumb.as_deref()),
        (&b"abcdef"[..], Some(&b"thumb"[..]))
    );
    assert_eq!((media.from, media.to, media.msg_type), (a, b, 3));
    assert_eq!(s.sync(b, "phone", 0, 10).unwrap().messages.len(), 1);
    // y is the one unfinished upload; it expires, x (finished) stays.
    assert_eq!(s.open_uploads().unwrap(), 1);
    assert_eq!(
        s.expire_uploads(10).unwrap(),
        0,
        "started at 10, not before"
    );
    assert_eq!(s.expire_uploads(11).unwrap(), 1);
    assert_eq!(s.open_uploads().unwrap(), 0);
    assert!(s.media(sent.msg_id).unwrap().is_some());
    // Now z fits under the cap.
    assert_eq!(s.put_part(&part("z", 0, b"ab", 20), 2).unwrap(), partial(2));
    assert!(s.drop_upload(a, 3, "z").unwrap());
    assert_eq!(s.open_uploads().unwrap(), 0);
}

/// Voice: the length is known from the chunk with the end flag.
#[test]
fn a_voice_upload_ends_with_its_last_chunk() {
    let mut s = Store::memory().unwrap();
    let a = s.user("alice", true).unwrap().unwrap();
    let chunk = |start: u64, data: &'static [u8], end: bool| Part {
        user: a,
        kind: 34,
        client_id: "v",
        to: a,
        total: end.then_some(start + data.len() as u64),
        start,
        data,
        now: 1,
    };
    assert_eq!(
        s.put_part(&chunk(3, b"def", true), 4).unwrap(),
        PartOutcome::Partial { have: 3, total: 6 }
    );
    assert_eq!(
        s.put_part(&chunk(0, b"abc", false), 4).unwrap(),
        PartOutcome::Whole(b"abcdef".to_vec())
    );
}

/// Delivered when the recipient's device confirms, once per device; none
/// for a note to oneself or for the status messages themselves; read up
/// to a MsgId, delivered first when not yet.
#[test]
fn receipts_go_to_the_senders_mailbox() {
    let mut s = Store::memory().unwrap();
    s.set_receipts(true);
    let a = s.user("alice", true).unwrap().unwrap();
    let b = s.user("bob", true).unwrap().unwrap();
    s.register_device(a, "phone").unwrap();
    s.register_device(b, "phone").unwrap();
    s.register_device(b, "tablet").unwrap();
    let m1 = s.send(&msg(a, b, "1", "one")).unwrap().msg_id;
    let m2 = s.send(&msg(a, b, "2", "two")).unwrap().msg_id;
    s.send(&msg(b, b, "3", "note")).unwrap();
    assert!(s.take_wakes().is_empty());
    // bob's phone confirms m1: one receipt, alice to wake.
    s.confirm(b, "phone", 1).unwrap();
    assert_eq!(s.take_wakes(), [a]);
    // Again: nothing new. The tablet: its own receipt.
    s.confirm(b, "phone", 1).unwrap();
    assert!(s.take_wakes().is_empty());
    s.confirm(b, "tablet", 3).unwrap();
    let kinds = |id| -> Vec<(String, ReceiptKind)> {
        s.receipts(id)
            .unwrap()
            .into_iter()
            .map(|(d, k, _)| (d, k))
            .collect()
    };
    assert_eq!(
        kinds(m1),
        [
            ("phone".to_owned(), ReceiptKind::Delivered),
            ("tablet".to_owned(), ReceiptKind::Delivered)
        ]
    );
    // Read up to m2 from the phone: delivered first, then read.
    assert_eq!(s.report_read(b, "phone", a, m2, 1_700_000_000).unwrap(), 2);
    assert_eq!(
        s.report_read(b, "phone", a, m2, 1_700_000_000).unwrap(),
        0,
        "once"
    );
    let phone: Vec<ReceiptKind> = s
        .receipts(m2)
        .unwrap()
        .into_iter()
        .filter(|(d, _, _)| d == "phone")
        .map(|(_, k, _)| k)
        .collect();
    assert_eq!(phone, [ReceiptKind::Delivered, ReceiptKind::Read]);
    // alice's mailbox: her two sends (skipped for her phone) and the
    // status messages, in order; confirming them makes no receipts.
    let page = s.sync(a, "phone", 0, 100).unwrap();
    let statuses: Vec<&str> = page
        .messages
        .iter()
        .filter(|m| m.msg_type == crate::net::MSG_TYPE_STATUS)
        .map(|m| m.content.as_str())
        .collect();
    assert_eq!(statuses.len(), 6, "{statuses:?}");
    assert!(statuses[0].contains(&format!("kind=\"delivered\" msgid=\"{m1}\"")));
    assert!(statuses[5].contains(&format!("kind=\"read\" msgid=\"{m2}\"")));
    s.take_wakes();
    s.confirm(a, "phone", page.next_seq).unwrap();
    assert!(s.take_wakes().is_empty());
}
