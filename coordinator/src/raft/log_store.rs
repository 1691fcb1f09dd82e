//! openraft's log storage on sled: entries keyed by big-endian index, vote,
//! committed id and last purged id in the meta key space.

use crate::raft::store::{
    decode, encode, io_err, log_key, read_json, write_json, Store, KEY_COMMITTED, KEY_LAST_PURGED,
    KEY_VOTE,
};
use crate::raft::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, RaftLogId, RaftLogReader};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

#[derive(Clone)]
pub struct LogStore {
    store: Store,
}

impl LogStore {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    fn last_purged(&self) -> Result<Option<LogId>, StorageError> {
        read_json(&self.store.meta, KEY_LAST_PURGED, ErrorSubject::Store)
    }

    async fn flush(&self, subject: ErrorSubject<u64>) -> Result<(), StorageError> {
        self.store
            .db
            .flush_async()
            .await
            .map(|_| ())
            .map_err(|e| io_err(subject, ErrorVerb::Write, &e))
    }
}

fn bound_to_key(bound: Bound<&u64>) -> Bound<[u8; 8]> {
    match bound {
        Bound::Included(i) => Bound::Included(log_key(*i)),
        Bound::Excluded(i) => Bound::Excluded(log_key(*i)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let keys = (
            bound_to_key(range.start_bound()),
            bound_to_key(range.end_bound()),
        );
        let mut entries = Vec::new();
        for item in self.store.logs.range(keys) {
            let (_, bytes) = item.map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, &e))?;
            entries.push(decode(&bytes, ErrorSubject::Logs)?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id = self.last_purged()?;
        let last = self
            .store
            .logs
            .last()
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, &e))?;
        let last_log_id = match last {
            Some((_, bytes)) => Some(*decode::<Entry>(&bytes, ErrorSubject::Logs)?.get_log_id()),
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        write_json(
            &self.store,
            &self.store.meta,
            KEY_VOTE,
            vote,
            ErrorSubject::Vote,
        )
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        read_json(&self.store.meta, KEY_VOTE, ErrorSubject::Vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not flushed on its own: losing it only delays re-applying, never breaks safety.
        let bytes = encode(&committed, ErrorSubject::Store)?;
        self.store
            .meta
            .insert(KEY_COMMITTED, bytes)
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, &e))?;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(
            read_json::<Option<LogId>>(&self.store.meta, KEY_COMMITTED, ErrorSubject::Store)?
                .flatten(),
        )
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut batch = sled::Batch::default();
        for entry in entries {
            let bytes = encode(&entry, ErrorSubject::Logs)?;
            batch.insert(&log_key(entry.get_log_id().index), bytes);
        }
        self.store
            .logs
            .apply_batch(batch)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, &e))?;
        let flushed = self.store.db.flush_async().await;
        match flushed {
            Ok(_) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(io_err(ErrorSubject::Logs, ErrorVerb::Write, &e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.remove_range(log_key(log_id.index).., ErrorSubject::Logs)?;
        self.flush(ErrorSubject::Logs).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Record the purge point first: a crash in between leaves extra entries, never a gap.
        write_json(
            &self.store,
            &self.store.meta,
            KEY_LAST_PURGED,
            &log_id,
            ErrorSubject::Store,
        )
        .await?;
        self.remove_range(..=log_key(log_id.index), ErrorSubject::Logs)?;
        self.flush(ErrorSubject::Logs).await
    }
}

impl LogStore {
    fn remove_range<R: RangeBounds<[u8; 8]>>(
        &self,
        range: R,
        subject: ErrorSubject<u64>,
    ) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for item in self.store.logs.range(range) {
            let (key, _) = item.map_err(|e| io_err(subject.clone(), ErrorVerb::Read, &e))?;
            batch.remove(key);
        }
        self.store
            .logs
            .apply_batch(batch)
            .map_err(|e| io_err(subject, ErrorVerb::Delete, &e))
    }
}
