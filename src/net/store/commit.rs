//! Group commit: the writer thread in front of the store ([`Committer`]),
//! batches of operations each in its own savepoint, one commit (one fsync)
//! per batch, and the checkpoint thread.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::{Store, StoreError};

/// Savepoint of one operation inside a batch.
const OP_SAVEPOINT: &str = "SAVEPOINT batch_op";
const OP_RELEASE: &str = "RELEASE batch_op";
const OP_ROLLBACK: &str = "ROLLBACK TO batch_op";

/// Most operations in one batch (bounds the wait of the last caller).
pub const MAX_BATCH: usize = 1024;

impl Store {
    /// Runs `f` in a savepoint of its own: its changes stay when it
    /// returns `Ok`, and are rolled back when it fails or panics. The
    /// outer `Err`: the savepoint itself failed, so the enclosing
    /// transaction must not be committed.
    pub(super) fn in_savepoint<T>(
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
            self.view.reset();
            self.exec_cached(OP_ROLLBACK, "rolling back a failed operation")?;
        }
        self.exec_cached(OP_RELEASE, "releasing an operation's savepoint")?;
        Ok(r)
    }

    /// [`Store::in_savepoint`] on its own (its own transaction).
    pub(super) fn alone<T>(
        &mut self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let r = self.in_savepoint(f);
        if r.is_err() {
            self.view.reset();
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
            self.view.reset();
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

    pub(super) fn submit<T, F>(&self, f: F) -> Result<oneshot::Receiver<Result<T, StoreError>>, F>
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
