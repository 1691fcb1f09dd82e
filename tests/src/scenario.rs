//! The set-up most end-to-end tests of the binlog path share: a source
//! seeded with some SQL, an empty destination, a one-coordinator cluster
//! with one worker, and a schema + full + incremental task of one database,
//! waited for until it applies the binlog.

use crate::fixtures::sync_task;
use crate::{MariaDb, TestCluster};
use std::time::Duration;

/// How long the task may take to reach incremental.
const READY: Duration = Duration::from_secs(120);

pub struct IncrementalSync {
    pub source: MariaDb,
    pub destination: MariaDb,
    pub cluster: TestCluster,
    pub task: String,
}

impl IncrementalSync {
    /// `seed` runs on the source first; the task (named `database`) syncs
    /// `database` with `du` lanes on a worker of as many DUs.
    pub async fn start(seed: &str, database: &str, du: u32) -> anyhow::Result<Self> {
        let objects = format!("[[objects]]\ndatabase = \"{database}\"");
        Self::start_with_objects(seed, database, &objects, du).await
    }

    /// Like [`IncrementalSync::start`], selecting `objects` (the task
    /// file's `[[objects]]` entries).
    pub async fn start_with_objects(
        seed: &str,
        database: &str,
        objects: &str,
        du: u32,
    ) -> anyhow::Result<Self> {
        let source = MariaDb::start(1).await?;
        let destination = MariaDb::start(2).await?;
        source.exec(seed).await?;
        let cluster = TestCluster::builder()
            .coordinators(1)
            .worker(du)
            .start()
            .await?;
        let spec = sync_task(
            database,
            source.port,
            destination.port,
            &["schema", "full", "incremental"],
            objects,
            du,
        );
        let task = cluster.run_task_until(&spec, "incremental", READY).await?;
        Ok(Self {
            source,
            destination,
            cluster,
            task,
        })
    }
}
