//! The CRDT store's database writes, on a thread of their own: the services' thread hands over rows
//! and goes on merging, and the writer commits everything that queued up meanwhile in one
//! redb transaction (group commit: one fsync for many sync messages). Changes from peers are handed
//! over without waiting (a crash before their commit loses them here, and they are pulled again from
//! a peer); a local write or an import waits for its commit, so what the API acknowledged is on
//! disk.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use redb::{Database, TableDefinition};

/// Jobs waiting for the writer, at most (beyond them, handing over waits: back-pressure).
pub(crate) const MAX_QUEUED: usize = 4096;
/// Rows one transaction takes at most.
const MAX_ROWS_PER_COMMIT: usize = 65_536;

/// Which table a row goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    Changes,
    Evidence,
    Seals,
}

/// One row to write.
pub(crate) struct Row {
    pub(crate) table: Table,
    pub(crate) key: Vec<u8>,
    pub(crate) value: Vec<u8>,
}

struct Job {
    rows: Vec<Row>,
    /// Told the outcome once the rows are committed.
    done: Option<SyncSender<Result<(), String>>>,
}

/// The tables, by [`Table`].
pub(crate) struct Tables {
    pub(crate) changes: TableDefinition<'static, &'static [u8], &'static [u8]>,
    pub(crate) evidence: TableDefinition<'static, &'static [u8], &'static [u8]>,
    pub(crate) seals: TableDefinition<'static, &'static [u8], &'static [u8]>,
}

/// The writer thread's handle.
pub(crate) struct Writer {
    jobs: Option<SyncSender<Job>>,
    commits: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer over `db`.
    pub(crate) fn start(db: Database, tables: Tables) -> std::io::Result<Self> {
        let (jobs, queue) = sync_channel(MAX_QUEUED);
        let commits = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicBool::new(false));
        let (c, f) = (commits.clone(), failed.clone());
        let thread = std::thread::Builder::new()
            .name("crdt-writer".into())
            .spawn(move || run(&db, &tables, &queue, &c, &f))?;
        Ok(Self {
            jobs: Some(jobs),
            commits,
            failed,
            thread: Some(thread),
        })
    }

    /// Hands `rows` over without waiting for their commit.
    pub(crate) fn write(&self, rows: Vec<Row>) -> Result<(), String> {
        if self.failed.load(Ordering::Relaxed) {
            return Err("an earlier commit failed".into());
        }
        self.send(Job { rows, done: None })
    }

    /// Hands `rows` over and waits until they are committed (with everything queued before).
    pub(crate) fn write_durably(&self, rows: Vec<Row>) -> Result<(), String> {
        let (done, outcome) = sync_channel(1);
        self.send(Job {
            rows,
            done: Some(done),
        })?;
        outcome
            .recv()
            .map_err(|_| "the writer stopped".to_owned())?
    }

    fn send(&self, job: Job) -> Result<(), String> {
        self.jobs
            .as_ref()
            .ok_or("the writer stopped")?
            .send(job)
            .map_err(|_| "the writer stopped".to_owned())
    }

    /// Transactions committed so far (each one fsync).
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

impl Drop for Writer {
    /// Commits what is queued, then stops the thread.
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(
    db: &Database,
    tables: &Tables,
    queue: &Receiver<Job>,
    commits: &AtomicU64,
    failed: &AtomicBool,
) {
    if let Err(e) = crate::sys::thread::run_in_background() {
        tracing::debug!("the CRDT writer keeps its priority: {e}");
    }
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        let mut rows = batch[0].rows.len();
        while rows < MAX_ROWS_PER_COMMIT {
            match queue.try_recv() {
                Ok(job) => {
                    rows += job.rows.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let outcome = commit(db, tables, &batch);
        match &outcome {
            Ok(()) => {
                commits.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::error!("CRDT store: commit failed: {e}");
                failed.store(true, Ordering::Relaxed);
            }
        }
        for job in batch {
            if let Some(done) = job.done {
                let _ = done.send(outcome.clone());
            }
        }
    }
}

fn commit(db: &Database, tables: &Tables, batch: &[Job]) -> Result<(), String> {
    let write = db.begin_write().map_err(|e| e.to_string())?;
    {
        let mut changes = write
            .open_table(tables.changes)
            .map_err(|e| e.to_string())?;
        let mut evidence = write
            .open_table(tables.evidence)
            .map_err(|e| e.to_string())?;
        let mut seals = write.open_table(tables.seals).map_err(|e| e.to_string())?;
        for row in batch.iter().flat_map(|j| &j.rows) {
            let table = match row.table {
                Table::Changes => &mut changes,
                Table::Evidence => &mut evidence,
                Table::Seals => &mut seals,
            };
            table
                .insert(row.key.as_slice(), row.value.as_slice())
                .map_err(|e| e.to_string())?;
        }
    }
    write.commit().map_err(|e| e.to_string())
}
