//! Persistence after each checkpoint: one log record appended and synced (the default), with a
//! snapshot written in the background every so many records or bytes of log; or, for the
//! benchmark's baseline, the whole snapshot rewritten after every checkpoint.

use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock};

use tokio::task::JoinHandle;

use crate::error::DevnetError;
use crate::journal::{self, LogRecordRef, LogWriter};
use crate::state::Ledger;
use crate::store;

/// How a node persists its chain after each checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Persistence {
    /// Append one record per checkpoint to the log (`chain.<generation>.log`, `fdatasync`ed
    /// before the checkpoint is announced); snapshot as `LogPolicy` says. The default.
    Log(LogPolicy),
    /// Rewrite the whole snapshot (`chain.bcs`) after every checkpoint: the strategy before
    /// the log, O(chain size) per checkpoint. Kept as the benchmark's baseline.
    FullSnapshot,
    /// Write nothing after this point: the chain grows in memory only (benchmarks building a
    /// large chain quickly). Switching back to another mode writes a snapshot first.
    Off,
}

impl Default for Persistence {
    fn default() -> Persistence {
        Persistence::Log(LogPolicy::default())
    }
}

/// When the log is folded into a new snapshot: after `snapshot_records` records or
/// `snapshot_bytes` bytes of log, whichever comes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogPolicy {
    /// Records (checkpoints) between snapshots.
    pub snapshot_records: u64,
    /// Bytes of log between snapshots.
    pub snapshot_bytes: u64,
}

impl Default for LogPolicy {
    /// 10,000 records (about 28 hours of idle 10 s heartbeats) or 64 MiB.
    fn default() -> LogPolicy {
        LogPolicy {
            snapshot_records: 10_000,
            snapshot_bytes: 64 << 20,
        }
    }
}

/// The persistence state of a node; used under the node's execution lock only.
pub(crate) struct Persister {
    data_dir: PathBuf,
    mode: Persistence,
    /// The log generation being appended to (log mode), unless an append holds it.
    writer: Option<LogWriter>,
    /// The append in flight. Kept here, not only awaited, so that when a caller gives up
    /// waiting (a cancelled request) the next checkpoint waits for it first: records stay in
    /// order and the writer comes back.
    pending: Option<JoinHandle<(LogWriter, Result<(), DevnetError>)>>,
    /// The next generation number to create.
    next_generation: u64,
    /// Log records and bytes since the last snapshot.
    records: u64,
    bytes: u64,
    /// A snapshot being written in the background.
    snapshot: Option<JoinHandle<Result<(), DevnetError>>>,
}

fn read(ledger: &RwLock<Ledger>) -> std::sync::RwLockReadGuard<'_, Ledger> {
    ledger.read().unwrap_or_else(PoisonError::into_inner)
}

async fn blocking<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> Result<T, DevnetError> + Send + 'static,
) -> Result<T, DevnetError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(DevnetError::Task(format!("{what}: {e}"))))
}

impl Persister {
    /// Log-mode persistence continuing the log `recovered` ends with (cutting off a torn tail),
    /// or starting one.
    pub(crate) fn open(
        data_dir: &Path,
        recovered: &store::Recovered,
    ) -> Result<Persister, DevnetError> {
        let (writer, next_generation) = match &recovered.newest {
            Some((generation, good_len)) if *good_len >= journal::LOG_MAGIC.len() as u64 => (
                LogWriter::reopen(generation, *good_len)?,
                generation.number + 1,
            ),
            // A generation whose header was cut off by a crash: start it again.
            Some((generation, _)) => (
                LogWriter::create(data_dir, generation.number)?,
                generation.number + 1,
            ),
            None => (LogWriter::create(data_dir, 1)?, 2),
        };
        Ok(Persister {
            data_dir: data_dir.to_owned(),
            mode: Persistence::default(),
            writer: Some(writer),
            pending: None,
            next_generation,
            records: recovered.log_records,
            bytes: recovered.log_bytes,
            snapshot: None,
        })
    }

    /// Persists checkpoint `seq`, just sealed. Failures are logged and the chain goes on in
    /// memory; in log mode a failed append is followed by a full snapshot so that the files
    /// hold the whole chain again.
    pub(crate) async fn after_checkpoint(&mut self, ledger: &RwLock<Ledger>, seq: u64) {
        let result = match self.mode {
            Persistence::Off => Ok(()),
            Persistence::FullSnapshot => self.full_snapshot(ledger).await,
            Persistence::Log(policy) => self.append(ledger, seq, policy).await,
        };
        if let Err(e) = result {
            tracing::error!(error = %e, checkpoint = seq, "cannot persist the checkpoint; the chain goes on in memory");
        }
    }

    async fn full_snapshot(&mut self, ledger: &RwLock<Ledger>) -> Result<(), DevnetError> {
        let bytes = store::encode(&read(ledger))?;
        let dir = self.data_dir.clone();
        blocking("persist", move || store::save(&dir, &bytes)).await
    }

    async fn append(
        &mut self,
        ledger: &RwLock<Ledger>,
        seq: u64,
        policy: LogPolicy,
    ) -> Result<(), DevnetError> {
        if let Err(e) = self.settle_append().await {
            tracing::error!(error = %e, "an earlier append to the checkpoint log failed; writing a snapshot instead");
        }
        let Some(mut writer) = self.writer.take() else {
            // An earlier failure left no log to append to: write everything.
            return self.snapshot_now(ledger).await;
        };
        let framed = {
            let ledger = read(ledger);
            let checkpoint = ledger.checkpoint(seq).ok_or_else(|| {
                DevnetError::Task(format!("checkpoint {seq} vanished before it was logged"))
            })?;
            let record = LogRecordRef {
                transaction: ledger.transaction_in(seq),
                checkpoint,
            };
            journal::frame(&bcs::to_bytes(&record)?)?
        };
        self.records += 1;
        self.bytes += framed.len() as u64;
        self.pending = Some(tokio::task::spawn_blocking(move || {
            let result = writer.append(&framed);
            (writer, result)
        }));
        if let Err(e) = self.settle_append().await {
            tracing::error!(error = %e, checkpoint = seq, "cannot append to the checkpoint log; writing a snapshot instead");
            return self.snapshot_now(ledger).await;
        }
        if self.records >= policy.snapshot_records || self.bytes >= policy.snapshot_bytes {
            self.start_snapshot(ledger).await?;
        }
        Ok(())
    }

    /// Waits for the append in flight, if any, and takes its writer back; `Err` if it failed
    /// (the writer is then dropped, and the caller writes a snapshot).
    async fn settle_append(&mut self) -> Result<(), DevnetError> {
        let Some(task) = self.pending.as_mut() else {
            return Ok(());
        };
        let joined = task.await;
        self.pending = None;
        match joined {
            Ok((writer, Ok(()))) => {
                self.writer = Some(writer);
                Ok(())
            }
            Ok((_, Err(e))) => Err(e),
            Err(e) => Err(DevnetError::Task(format!("log append: {e}"))),
        }
    }

    /// Reaps a finished background snapshot, logging its failure.
    async fn reap(&mut self, wait: bool) {
        let Some(task) = self.snapshot.take_if(|t| wait || t.is_finished()) else {
            return;
        };
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "background snapshot failed; the log since the previous snapshot is kept");
            }
            Err(e) => tracing::error!(error = %e, "background snapshot task failed"),
        }
    }

    /// Starts a new log generation and writes a snapshot of everything before it in the
    /// background; the older generations are deleted once the snapshot is durable. Only the
    /// cheap part runs here: the snapshot view shares the ledger's history.
    async fn start_snapshot(&mut self, ledger: &RwLock<Ledger>) -> Result<(), DevnetError> {
        self.settle_append().await?;
        self.reap(false).await;
        if self.snapshot.is_some() {
            // The previous one is still being written; try again at the next record.
            return Ok(());
        }
        let view = read(ledger).snapshot_view();
        let dir = self.data_dir.clone();
        let number = self.next_generation;
        let writer = blocking("log rotation", move || LogWriter::create(&dir, number)).await?;
        self.writer = Some(writer);
        self.next_generation += 1;
        self.records = 0;
        self.bytes = 0;
        let dir = self.data_dir.clone();
        self.snapshot = Some(tokio::task::spawn_blocking(move || {
            let tip = view.tip();
            store::save(&dir, &store::encode_view(&view)?)?;
            journal::remove_before(&dir, number)?;
            tracing::debug!(
                checkpoint = tip,
                "snapshot written, older log generations removed"
            );
            Ok(())
        }));
        Ok(())
    }

    /// Writes a snapshot of the whole chain now and deletes every log generation; in log mode
    /// a new generation follows. Crash-safe: the snapshot is durable before any log goes.
    async fn snapshot_now(&mut self, ledger: &RwLock<Ledger>) -> Result<(), DevnetError> {
        // A failed append is why we may be here; the snapshot covers its record either way.
        let _ = self.settle_append().await;
        self.reap(true).await;
        self.writer = None;
        let view = read(ledger).snapshot_view();
        let dir = self.data_dir.clone();
        let number = self.next_generation;
        let log = matches!(self.mode, Persistence::Log(_));
        let writer = blocking("snapshot", move || {
            store::save(&dir, &store::encode_view(&view)?)?;
            journal::remove_before(&dir, number)?;
            if log {
                LogWriter::create(&dir, number).map(Some)
            } else {
                Ok(None)
            }
        })
        .await?;
        self.next_generation += 1;
        self.writer = writer;
        self.records = 0;
        self.bytes = 0;
        Ok(())
    }

    /// Switches to `mode`. Unless it is [`Persistence::Off`], the whole chain is written first,
    /// so the data directory holds it whatever happened before.
    pub(crate) async fn set_mode(
        &mut self,
        ledger: &RwLock<Ledger>,
        mode: Persistence,
    ) -> Result<(), DevnetError> {
        self.mode = mode;
        match mode {
            Persistence::Off => {
                self.flush().await;
                Ok(())
            }
            _ => self.snapshot_now(ledger).await,
        }
    }

    /// Waits for a snapshot being written in the background.
    pub(crate) async fn flush(&mut self) {
        if let Err(e) = self.settle_append().await {
            tracing::error!(error = %e, "an append to the checkpoint log failed; the next checkpoint writes a snapshot");
        }
        self.reap(true).await;
    }

    /// Log records and bytes since the last snapshot.
    #[cfg(test)]
    pub(crate) fn log_size(&self) -> (u64, u64) {
        (self.records, self.bytes)
    }
}
