//! The keys the apply lanes committed, handed to incremental verification:
//! each lane adds the keys of a transaction once it is committed, and the
//! verifier takes them once they are old enough to be settled. Bounded: past
//! [`CAPACITY`] waiting keys, new ones are counted and dropped (verification
//! samples what it cannot keep up with; a full pass sees everything).

use crate::source::catalog::TableName;
use mysql_async::Value;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Keys waiting at most.
pub const CAPACITY: usize = 100_000;

/// A row the task changed: its source table and its key (as the apply
/// stage's values have it, which is how verification reads keys).
pub type ChangedRow = (Arc<TableName>, Vec<Value>);

#[derive(Debug, Default)]
pub struct ChangedKeys {
    waiting: Mutex<VecDeque<(Instant, Vec<ChangedRow>)>>,
    held: AtomicU64,
    dropped: AtomicU64,
}

impl ChangedKeys {
    /// Whether there is room for more (checked before collecting any).
    pub fn has_room(&self) -> bool {
        self.held.load(Ordering::Relaxed) < CAPACITY as u64
    }

    /// A lane committed the changes of `rows`.
    pub fn committed(&self, rows: Vec<ChangedRow>) {
        if rows.is_empty() {
            return;
        }
        let n = rows.len() as u64;
        if self.held.load(Ordering::Relaxed) + n > CAPACITY as u64 {
            self.dropped.fetch_add(n, Ordering::Relaxed);
            return;
        }
        self.held.fetch_add(n, Ordering::Relaxed);
        self.lock().push_back((Instant::now(), rows));
    }

    /// The rows committed at least `age` ago, oldest first.
    pub fn take_older_than(&self, age: Duration) -> Vec<ChangedRow> {
        let mut waiting = self.lock();
        let mut taken = Vec::new();
        while waiting.front().is_some_and(|(at, _)| at.elapsed() >= age) {
            if let Some((_, rows)) = waiting.pop_front() {
                taken.extend(rows);
            }
        }
        self.held.fetch_sub(taken.len() as u64, Ordering::Relaxed);
        taken
    }

    /// Rows dropped for want of room since the last call.
    pub fn take_dropped(&self) -> u64 {
        self.dropped.swap(0, Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(Instant, Vec<ChangedRow>)>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64) -> ChangedRow {
        let table = Arc::new(TableName {
            db: "shop".into(),
            name: "orders".into(),
        });
        (table, vec![Value::Int(id)])
    }

    #[test]
    fn rows_are_taken_once_old_enough_and_dropped_past_capacity() {
        let keys = ChangedKeys::default();
        keys.committed(vec![row(1), row(2)]);
        assert!(keys.take_older_than(Duration::from_secs(60)).is_empty());
        assert_eq!(keys.take_older_than(Duration::ZERO).len(), 2);
        assert!(keys.take_older_than(Duration::ZERO).is_empty());
        keys.committed((0..CAPACITY as i64).map(row).collect());
        assert!(!keys.has_room());
        keys.committed(vec![row(-1)]);
        assert_eq!(keys.take_dropped(), 1);
        assert_eq!(keys.take_older_than(Duration::ZERO).len(), CAPACITY);
        assert!(keys.has_room());
    }
}
