//! The single SQLite writer.
//!
//! SQLite allows one writer at a time, so every write goes to one thread that owns the
//! write connection. It drains whatever writes are queued and runs them in one transaction
//! (group commit: one fsync for many requests), each inside its own savepoint so that one
//! write failing rolls back only itself. A caller hears back only after the commit.

use std::sync::mpsc;
use std::thread;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::{Result, StoreError};

/// How many queued writes one transaction takes at most.
const MAX_BATCH: usize = 512;

trait Job: Send {
    /// Runs the write inside its savepoint.
    fn run(&mut self, conn: &Connection);
    /// Reports the outcome once the transaction is over.
    fn finish(self: Box<Self>, commit: Result<()>);
}

struct Pending<T, F> {
    work: Option<F>,
    outcome: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) {
        let Some(work) = self.work.take() else { return };
        let outcome = match conn.execute_batch("SAVEPOINT job") {
            Err(e) => Err(StoreError::from(e)),
            Ok(()) => {
                let outcome = work(conn);
                let end = if outcome.is_err() {
                    "ROLLBACK TO job; RELEASE job"
                } else {
                    "RELEASE job"
                };
                match conn.execute_batch(end) {
                    Ok(()) => outcome,
                    Err(e) => Err(StoreError::from(e)),
                }
            }
        };
        self.outcome = Some(outcome);
    }

    fn finish(self: Box<Self>, commit: Result<()>) {
        let result = match (self.outcome, commit) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(_)), Err(e)) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (None, Err(e)) => Err(e),
            (None, Ok(())) => Err(StoreError::Database("write was not run".into())),
        };
        // The caller may have gone away (request cancelled); the write stands regardless.
        let _ = self.reply.send(result);
    }
}

/// Handle to the writer thread. Cloning shares the thread.
#[derive(Clone)]
pub(crate) struct Writer {
    queue: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the writer thread on `conn`. The thread ends when every handle is dropped.
    pub(crate) fn start(conn: Connection) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel::<Box<dyn Job>>();
        thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, jobs))?;
        Ok(Writer { queue })
    }

    /// Runs `work` in the next group transaction and returns its result after commit.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Pending {
            work: Some(work),
            outcome: None,
            reply,
        };
        self.queue
            .send(Box::new(job))
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

fn run(conn: Connection, jobs: mpsc::Receiver<Box<dyn Job>>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let commit = match conn.execute_batch("BEGIN IMMEDIATE") {
            Err(e) => Err(StoreError::from(e)),
            Ok(()) => {
                for job in batch.iter_mut() {
                    job.run(&conn);
                }
                conn.execute_batch("COMMIT").map_err(|e| {
                    let _ = conn.execute_batch("ROLLBACK");
                    StoreError::from(e)
                })
            }
        };
        if let Err(e) = &commit {
            tracing::error!(error = %e, writes = batch.len(), "group commit failed");
        }
        for job in batch {
            job.finish(match &commit {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::Database(e.to_string())),
            });
        }
    }
}
