//! Leader-local soft state: when each worker was last heard from and what it
//! said it runs. Never replicated: a new leader starts over and gives every
//! worker a full lease before declaring it lost.

use crate::state::{WorkerId, WorkerRecord};
use dts_common::model::WorkerState;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningTask {
    pub task_id: String,
    pub epoch: u64,
    pub phase: String,
}

#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    running: Vec<RunningTask>,
}

#[derive(Default)]
struct Inner {
    /// The term in which this node leads, if it does.
    leader_term: Option<u64>,
    seen: HashMap<WorkerId, Seen>,
}

#[derive(Default)]
pub struct Liveness {
    inner: Mutex<Inner>,
}

impl Liveness {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Called on every driver tick. A new term of leadership forgets what an
    /// earlier term saw, so every worker starts with a full lease.
    pub fn observe_leadership(&self, leading_term: Option<u64>) {
        let mut inner = self.lock();
        if inner.leader_term != leading_term {
            inner.leader_term = leading_term;
            inner.seen.clear();
        }
    }

    pub fn heartbeat(&self, worker: &str, running: Vec<RunningTask>) {
        self.lock().seen.insert(
            worker.to_string(),
            Seen {
                at: Instant::now(),
                running,
            },
        );
    }

    /// Online or draining workers not heard from within `lease`. A worker this
    /// leader has not heard from at all starts its lease now.
    pub fn expired(
        &self,
        workers: &BTreeMap<WorkerId, WorkerRecord>,
        lease: Duration,
    ) -> BTreeSet<WorkerId> {
        let now = Instant::now();
        let mut inner = self.lock();
        let mut expired = BTreeSet::new();
        for worker in workers.values().filter(|w| w.state != WorkerState::Lost) {
            let seen = inner.seen.entry(worker.id.clone()).or_insert_with(|| Seen {
                at: now,
                running: Vec::new(),
            });
            if now.duration_since(seen.at) > lease {
                expired.insert(worker.id.clone());
            }
        }
        expired
    }

    /// Time since the worker was last heard from, and what it runs.
    pub fn last_seen(&self, worker: &str) -> Option<(Duration, Vec<RunningTask>)> {
        self.lock()
            .seen
            .get(worker)
            .map(|s| (Instant::now().duration_since(s.at), s.running.clone()))
    }
}
