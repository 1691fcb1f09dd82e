//! The on-disk layout: one sled database per coordinator with fixed key
//! spaces (trees) and a data-version header written on first open.

use crate::raft::types::StorageError;
use openraft::{ErrorSubject, ErrorVerb, StorageIOError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;

/// Bumped whenever the meaning of stored bytes changes.
pub const DATA_VERSION: u64 = 1;

const TREE_META: &str = "meta";
const TREE_LOGS: &str = "logs";
const TREE_SNAPSHOT: &str = "snapshot";

pub const KEY_DATA_VERSION: &[u8] = b"data_version";
pub const KEY_VOTE: &[u8] = b"vote";
pub const KEY_COMMITTED: &[u8] = b"committed";
pub const KEY_LAST_PURGED: &[u8] = b"last_purged";
pub const KEY_CURRENT_SNAPSHOT: &[u8] = b"current";

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open the raft store at {path}: {source}")]
    Sled { path: String, source: sled::Error },
    #[error("the raft store at {path} has data version {found}; this build reads version {DATA_VERSION}")]
    Version { path: String, found: u64 },
}

/// Handles to the key spaces; clones share the same database.
#[derive(Clone)]
pub struct Store {
    pub db: sled::Db,
    pub meta: sled::Tree,
    pub logs: sled::Tree,
    pub snapshot: sled::Tree,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Self, OpenError> {
        let path = dir.join("raft.sled");
        let sled_err = |source| OpenError::Sled {
            path: path.display().to_string(),
            source,
        };
        let db = sled::open(&path).map_err(sled_err)?;
        let meta = db.open_tree(TREE_META).map_err(sled_err)?;
        let logs = db.open_tree(TREE_LOGS).map_err(sled_err)?;
        let snapshot = db.open_tree(TREE_SNAPSHOT).map_err(sled_err)?;
        match meta.get(KEY_DATA_VERSION).map_err(sled_err)? {
            None => {
                meta.insert(KEY_DATA_VERSION, &DATA_VERSION.to_be_bytes())
                    .map_err(sled_err)?;
                db.flush().map_err(sled_err)?;
            }
            Some(bytes) => {
                let found = u64::from_be_bytes(bytes.as_ref().try_into().unwrap_or([0xff; 8]));
                if found != DATA_VERSION {
                    return Err(OpenError::Version {
                        path: path.display().to_string(),
                        found,
                    });
                }
            }
        }
        Ok(Self {
            db,
            meta,
            logs,
            snapshot,
        })
    }
}

/// Log keys are big-endian indexes so that sled's order is log order.
pub fn log_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

pub fn encode<T: Serialize>(
    value: &T,
    subject: ErrorSubject<u64>,
) -> Result<Vec<u8>, StorageError> {
    serde_json::to_vec(value).map_err(|e| StorageIOError::new(subject, ErrorVerb::Write, &e).into())
}

pub fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    subject: ErrorSubject<u64>,
) -> Result<T, StorageError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StorageIOError::new(subject, ErrorVerb::Read, &e).into())
}

pub fn io_err(subject: ErrorSubject<u64>, verb: ErrorVerb, e: &sled::Error) -> StorageError {
    StorageIOError::new(subject, verb, e).into()
}

/// Reads and decodes one key of a tree.
pub fn read_json<T: DeserializeOwned>(
    tree: &sled::Tree,
    key: &[u8],
    subject: ErrorSubject<u64>,
) -> Result<Option<T>, StorageError> {
    match tree
        .get(key)
        .map_err(|e| io_err(subject.clone(), ErrorVerb::Read, &e))?
    {
        None => Ok(None),
        Some(bytes) => decode(&bytes, subject).map(Some),
    }
}

/// Encodes, writes and flushes one key: Raft needs it durable before replying.
pub async fn write_json<T: Serialize>(
    store: &Store,
    tree: &sled::Tree,
    key: &[u8],
    value: &T,
    subject: ErrorSubject<u64>,
) -> Result<(), StorageError> {
    let bytes = encode(value, subject.clone())?;
    tree.insert(key, bytes)
        .map_err(|e| io_err(subject.clone(), ErrorVerb::Write, &e))?;
    store
        .db
        .flush_async()
        .await
        .map_err(|e| io_err(subject, ErrorVerb::Write, &e))?;
    Ok(())
}
