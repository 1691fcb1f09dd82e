//! openraft's state machine: the [`ClusterState`] in memory, made durable by
//! snapshots in sled. After a restart the last snapshot is loaded and openraft
//! re-applies the committed log after it.

use crate::raft::store::{decode, encode, read_json, write_json, Store, KEY_CURRENT_SNAPSHOT};
use crate::raft::types::{
    Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::state::{ClusterState, CommandOutcome};
use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, ErrorSubject, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use std::sync::{Arc, RwLock, RwLockReadGuard};

/// What the state machine holds, and exactly what a snapshot contains.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StateMachineData {
    pub last_applied: Option<LogId>,
    pub last_membership: StoredMembership,
    pub state: ClusterState,
}

/// A snapshot as stored: its metadata and the encoded [`StateMachineData`].
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// Read access for the services; the state machine is the only writer.
#[derive(Clone, Default)]
pub struct SharedState(Arc<RwLock<StateMachineData>>);

impl SharedState {
    pub fn read(&self) -> RwLockReadGuard<'_, StateMachineData> {
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    fn replace(&self, data: StateMachineData) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = data;
    }
}

#[derive(Clone)]
pub struct StateMachine {
    store: Store,
    shared: SharedState,
}

impl StateMachine {
    /// Opens the state machine, loading the last snapshot if there is one.
    pub fn open(store: Store) -> Result<Self, StorageError> {
        let shared = SharedState::default();
        if let Some(snapshot) = read_json::<StoredSnapshot>(
            &store.snapshot,
            KEY_CURRENT_SNAPSHOT,
            ErrorSubject::Snapshot(None),
        )? {
            let data: StateMachineData = decode(&snapshot.data, ErrorSubject::Snapshot(None))?;
            shared.replace(data);
        }
        Ok(Self { store, shared })
    }

    pub fn shared(&self) -> SharedState {
        self.shared.clone()
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let (data, meta) = {
            let current = self.shared.read();
            let data = encode(&*current, ErrorSubject::StateMachine)?;
            let snapshot_id = match current.last_applied {
                Some(id) => format!(
                    "{}-{}-{}",
                    id.leader_id.term,
                    id.index,
                    dts_common::time::now_ms()
                ),
                None => format!("empty-{}", dts_common::time::now_ms()),
            };
            let meta = SnapshotMeta {
                last_log_id: current.last_applied,
                last_membership: current.last_membership.clone(),
                snapshot_id,
            };
            (data, meta)
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        };
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        write_json(
            &self.store,
            &self.store.snapshot,
            KEY_CURRENT_SNAPSHOT,
            &stored,
            subject,
        )
        .await?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let current = self.shared.read();
        Ok((current.last_applied, current.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandOutcome>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut guard = self.shared.0.write().unwrap_or_else(|p| p.into_inner());
        let mut outcomes = Vec::new();
        for entry in entries {
            guard.last_applied = Some(entry.log_id);
            let outcome = match entry.payload {
                EntryPayload::Blank => CommandOutcome::default(),
                EntryPayload::Normal(command) => guard.state.apply(command),
                EntryPayload::Membership(membership) => {
                    guard.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                    CommandOutcome::default()
                }
            };
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        let bytes = snapshot.into_inner();
        let data: StateMachineData = decode(&bytes, subject.clone())?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: bytes,
        };
        write_json(
            &self.store,
            &self.store.snapshot,
            KEY_CURRENT_SNAPSHOT,
            &stored,
            subject,
        )
        .await?;
        self.shared.replace(data);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let stored: Option<StoredSnapshot> = read_json(
            &self.store.snapshot,
            KEY_CURRENT_SNAPSHOT,
            ErrorSubject::Snapshot(None),
        )?;
        Ok(stored.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::log_store::LogStore;
    use openraft::testing::{StoreBuilder, Suite};

    struct SledBuilder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for SledBuilder {
        async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
            let dir = tempfile::tempdir().map_err(|e| openraft::StorageIOError::write(&e))?;
            let store = Store::open(dir.path()).map_err(|e| openraft::StorageIOError::write(&e))?;
            let sm = StateMachine::open(store.clone())?;
            Ok((dir, LogStore::new(store), sm))
        }
    }

    #[test]
    fn openraft_storage_suite_passes_on_sled() -> Result<(), StorageError> {
        Suite::test_all(SledBuilder)
    }
}
