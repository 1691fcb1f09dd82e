//! Telling a real difference from a change in flight. A task that follows
//! the binlog applies the source's changes some milliseconds after they
//! commit, so a row read on both sides at once may differ only because the
//! destination has not had its latest change yet. Every look here therefore
//! reads the source first, notes where the source's binlog is, waits until
//! the task has applied everything up to there, and only then reads the
//! destination: a row that differs then is behind by more than the task's
//! lag. A row that changes again in between may still differ, so a row is
//! read on the source once more after the destination (see `keys`).

use crate::endpoint::Database;
use crate::error::{Side, SyncError, SyncResult};
use crate::progress::Progress;
use crate::source::position::{self, BinlogPosition};
use crate::verify::difference::Difference;
use crate::verify::sides::{Range, TableSides};
use mysql_async::Value;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Looks a key must differ in to be reported (for a task that follows the
/// binlog; one look otherwise, as nothing is in flight).
pub const ROUNDS: u32 = 4;
/// How long a look waits for the task to apply what the source had. A task
/// that lags more than this leaves the keys unsettled, never reported.
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(30);
/// How often the wait looks at the task's progress.
const POLL: Duration = Duration::from_millis(10);

/// What a comparison found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Source rows compared.
    pub rows: u64,
    pub differences: Vec<Difference>,
    /// Keys that could not be compared because the task did not catch up.
    pub unsettled: u64,
}

pub struct Recheck<'a> {
    pub source: &'a Database,
    pub destination: &'a Database,
    pub progress: &'a Progress,
    /// The task applies the source's binlog (changes may be in flight).
    pub follows_binlog: bool,
    /// The destination is written too (a two-way pair): a row changed there
    /// is on its way back to the source, so a difference must outlast every
    /// look to be one.
    pub both_ways: bool,
    pub cancel: &'a CancellationToken,
}

impl Recheck<'_> {
    /// Compares the rows of `range`: by checksum, then, where the sums
    /// differ, row by row, then key by key until only real differences stay.
    pub async fn chunk(
        &self,
        sides: &TableSides,
        range: &Range,
        src: &mut mysql_async::Conn,
        dst: &mut mysql_async::Conn,
    ) -> SyncResult<Outcome> {
        // First both sides at once, without waiting: a table nobody writes
        // matches at once. (The position is read after the source's sum.)
        let (source_sum, destination_sum) = tokio::join!(
            sides.checksum(src, Side::Source, range),
            sides.checksum(dst, Side::Destination, range)
        );
        let (source_sum, destination_sum) = (source_sum?, destination_sum?);
        let at = self.mark(src).await?;
        if source_sum == destination_sum {
            return Ok(Outcome {
                rows: source_sum.0,
                ..Outcome::default()
            });
        }
        // A change in flight: look again once the task is past it.
        if self.follows_binlog && self.wait_past(at.as_ref()).await? {
            let source_sum = sides.checksum(src, Side::Source, range).await?;
            let at = self.mark(src).await?;
            let caught_up = self.wait_past(at.as_ref()).await?;
            let destination_sum = sides.checksum(dst, Side::Destination, range).await?;
            if caught_up && source_sum == destination_sum {
                return Ok(Outcome {
                    rows: source_sum.0,
                    ..Outcome::default()
                });
            }
        }
        let source_rows = sides.rows_in(src, Side::Source, range).await?;
        let at = self.mark(src).await?;
        // Not caught up: the keys that differ are rechecked all the same.
        self.wait_past(at.as_ref()).await?;
        let destination_rows = sides.rows_in(dst, Side::Destination, range).await?;
        let rows = source_rows.len() as u64;
        let keys = sides.differing(&source_rows, &destination_rows);
        if keys.is_empty() {
            return Ok(Outcome {
                rows,
                ..Outcome::default()
            });
        }
        let mut outcome = self.keys(sides, keys, src, dst).await?;
        outcome.rows = rows;
        Ok(outcome)
    }

    /// Of `keys`, the rows that really differ. Each look reads the source
    /// (S1), waits until the task is past it, reads the destination (D),
    /// then the source again (S2). The destination then shows the source as
    /// it was somewhere between the two source reads, so a row that is S1
    /// or S2 there is in step; one that is neither while S1 = S2 is behind
    /// for real. A row whose source changed in between is looked at again,
    /// up to [`ROUNDS`] times, then left unsettled rather than reported.
    pub async fn keys(
        &self,
        sides: &TableSides,
        mut keys: Vec<Vec<Value>>,
        src: &mut mysql_async::Conn,
        dst: &mut mysql_async::Conn,
    ) -> SyncResult<Outcome> {
        let rounds = if self.follows_binlog { ROUNDS } else { 1 };
        let mut outcome = Outcome::default();
        let mut pause = Duration::from_millis(50);
        for round in 0..rounds {
            if keys.is_empty() {
                break;
            }
            if self.cancel.is_cancelled() {
                return Err(SyncError::Stopped);
            }
            let before = sides.rows_with_keys(src, Side::Source, &keys).await?;
            let at = self.mark(src).await?;
            if !self.wait_past(at.as_ref()).await? {
                break;
            }
            let destination = sides.rows_with_keys(dst, Side::Destination, &keys).await?;
            let after = if self.follows_binlog {
                sides.rows_with_keys(src, Side::Source, &keys).await?
            } else {
                before.clone()
            };
            let mut moving = Vec::new();
            for key in keys {
                let bytes = sides.key_bytes(&key);
                let (s1, d, s2) = (
                    before.get(&bytes),
                    destination.get(&bytes),
                    after.get(&bytes),
                );
                if sides.in_step(s1, d) || sides.in_step(s2, d) {
                    continue;
                }
                let last = round + 1 == rounds;
                if sides.in_step(s1, s2) && (last || !self.both_ways) {
                    outcome.differences.push(sides.difference(
                        &key,
                        s2.map(Vec::as_slice),
                        d.map(Vec::as_slice),
                    ));
                } else {
                    moving.push(key);
                }
            }
            keys = moving;
            if !keys.is_empty() {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
        }
        outcome.unsettled = keys.len() as u64;
        Ok(outcome)
    }

    /// Waits, however long it takes, until the task has applied everything
    /// the source has logged by now.
    pub async fn wait_caught_up(&self, src: &mut mysql_async::Conn) -> SyncResult<()> {
        let at = self.mark(src).await?;
        self.wait_reached(at.as_ref(), None).await.map(|_| ())
    }

    /// Where the source's binlog is now, for a task that follows it.
    async fn mark(&self, src: &mut mysql_async::Conn) -> SyncResult<Option<BinlogPosition>> {
        if !self.follows_binlog {
            return Ok(None);
        }
        position::current(src).await.map(Some)
    }

    /// Waits until the task has applied everything up to `at`; false when
    /// it has not within [`CATCH_UP_DEADLINE`].
    async fn wait_past(&self, at: Option<&BinlogPosition>) -> SyncResult<bool> {
        self.wait_reached(at, Some(CATCH_UP_DEADLINE)).await
    }

    /// Waits until the task has applied everything up to `at` (at once
    /// without one); false when `within` passed first.
    async fn wait_reached(
        &self,
        at: Option<&BinlogPosition>,
        within: Option<Duration>,
    ) -> SyncResult<bool> {
        let Some(at) = at else {
            return Ok(true);
        };
        let deadline = within.map(|within| Instant::now() + within);
        while !self.progress.has_reached(at) {
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Ok(false);
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = self.cancel.cancelled() => return Err(SyncError::Stopped),
            }
        }
        Ok(true)
    }
}
