//! Block files written on a thread of their own: writing a 1 MiB block and syncing it takes
//! 2-3 ms, and done on the services' thread it stalled every transfer that thread was serving
//! (a fetch's parts waited behind each block written, its round trips jumped from 0.3 ms to 5-7
//! ms). The services' thread hands a block over and goes on; before the index names a block (a
//! file's `add`) or reads one, it waits for the writes queued so far ([`BlockWriter::flush`]), so
//! a block the index holds is on disk, synced, as before.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use std::io::Write;

/// Blocks waiting for the writer, at most (1 MiB each; beyond them, handing over waits).
pub(crate) const MAX_QUEUED: usize = 8;

enum Job {
    /// Writes the file unless it exists.
    Write(PathBuf, Vec<u8>),
    /// Answers with the first error since the last flush, once the writes before it are done.
    Flush(SyncSender<Result<(), String>>),
}

/// The writer thread's handle.
pub(crate) struct BlockWriter {
    jobs: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
    /// Writes handed over since the last flush.
    unflushed: usize,
}

impl BlockWriter {
    /// Starts the thread; if it cannot be started, blocks are written on the caller's thread.
    pub(crate) fn spawn() -> Self {
        let (jobs, queue) = sync_channel(MAX_QUEUED);
        let thread = std::thread::Builder::new()
            .name("blob-writer".into())
            .spawn(move || run(queue));
        match thread {
            Ok(thread) => Self {
                jobs: Some(jobs),
                thread: Some(thread),
                unflushed: 0,
            },
            Err(e) => {
                tracing::warn!("blobs: no writer thread ({e}): blocks are written inline");
                Self {
                    jobs: None,
                    thread: None,
                    unflushed: 0,
                }
            }
        }
    }

    /// Writes `bytes` to `path` (synced, renamed into place) unless the file exists; an error
    /// shows at the next [`Self::flush`] when the thread writes it.
    pub(crate) fn write(&mut self, path: PathBuf, bytes: Vec<u8>) -> std::io::Result<()> {
        match &self.jobs {
            Some(jobs) => {
                jobs.send(Job::Write(path, bytes))
                    .map_err(|_| std::io::Error::other("the blob writer thread stopped"))?;
                self.unflushed += 1;
                Ok(())
            }
            None => write_unless_exists(&path, &bytes),
        }
    }

    /// Waits until every block handed over is on disk; the first error writing one since the last
    /// flush.
    pub(crate) fn flush(&mut self) -> std::io::Result<()> {
        if self.unflushed == 0 {
            return Ok(());
        }
        self.unflushed = 0;
        let Some(jobs) = &self.jobs else {
            return Ok(());
        };
        let (reply, answer) = sync_channel(1);
        if jobs.send(Job::Flush(reply)).is_err() {
            return Err(std::io::Error::other("the blob writer thread stopped"));
        }
        match answer.recv() {
            Ok(result) => result.map_err(std::io::Error::other),
            Err(_) => Err(std::io::Error::other("the blob writer thread stopped")),
        }
    }
}

impl Drop for BlockWriter {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has written what is queued.
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Writes `bytes` to `path` so that a crash leaves the old file or the new one.
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("partial");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

fn write_unless_exists(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    write_atomically(path, bytes)
}

fn run(queue: Receiver<Job>) {
    let mut first_error: Option<String> = None;
    while let Ok(job) = queue.recv() {
        match job {
            Job::Write(path, bytes) => {
                if let Err(e) = write_unless_exists(&path, &bytes)
                    && first_error.is_none()
                {
                    first_error = Some(format!("writing {}: {e}", path.display()));
                }
            }
            Job::Flush(reply) => {
                let _ = reply.send(first_error.take().map_or(Ok(()), Err));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flush_waits_for_the_writes_and_reports_their_first_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = BlockWriter::spawn();
        for i in 0..(MAX_QUEUED * 3) {
            writer
                .write(dir.path().join(format!("b{i}")), vec![i as u8; 1000])
                .unwrap();
        }
        writer.flush().unwrap();
        for i in 0..(MAX_QUEUED * 3) {
            assert_eq!(
                std::fs::read(dir.path().join(format!("b{i}"))).unwrap(),
                vec![i as u8; 1000]
            );
        }
        // A folder that does not exist: the write fails on the thread, the flush says so once.
        writer.write(dir.path().join("missing/b"), vec![1]).unwrap();
        let error = writer.flush().unwrap_err().to_string();
        assert!(error.contains("missing/b"), "{error}");
        writer.write(dir.path().join("ok"), vec![2]).unwrap();
        writer.flush().unwrap();
    }
}
