//! Scheduling on real processes: DU capacity, waiting tasks, lost workers,
//! epochs as fencing tokens, draining, and a frozen worker coming back.

use dts_common::tls::Role;
use dts_proto::pb;
use dts_proto::pb::worker_control_client::WorkerControlClient;
use dts_tests::{wait_for, TestCluster};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

use dts_tests::fixtures::control_plane_task as task_file;

/// DU in use per worker, from the tasks' assignments.
async fn du_by_worker(cluster: &TestCluster) -> anyhow::Result<BTreeMap<String, u32>> {
    let mut used = BTreeMap::new();
    for task in cluster.tasks().await? {
        if !task.worker_id.is_empty() {
            *used.entry(task.worker_id.clone()).or_insert(0) += task.du;
        }
    }
    Ok(used)
}

#[tokio::test]
async fn tasks_fit_capacity_and_a_big_task_waits_until_a_worker_can_take_it() -> anyhow::Result<()>
{
    let mut cluster = TestCluster::builder()
        .coordinators(1)
        .worker(4)
        .worker(2)
        .start()
        .await?;
    let mut small = Vec::new();
    for i in 0..3 {
        small.push(
            cluster
                .create_task(&task_file(&format!("small-{i}"), 2), true)
                .await?
                .id,
        );
    }
    for id in &small {
        cluster
            .wait_for_task_running(id, Duration::from_secs(15))
            .await?;
    }
    let capacity: BTreeMap<String, u32> = cluster
        .workers
        .iter()
        .map(|w| (w.id.clone(), w.du))
        .collect();
    for (worker, used) in du_by_worker(&cluster).await? {
        assert!(
            used <= capacity[&worker],
            "{worker} runs {used} DU of {}",
            capacity[&worker]
        );
    }

    let big = cluster.create_task(&task_file("big", 5), true).await?.id;
    let waiting = wait_for(
        "the big task to wait with a reason",
        Duration::from_secs(10),
        || async {
            let task = cluster.task(&big).await?;
            Ok((task.status == "pending" && !task.pending_reason.is_empty()).then_some(task))
        },
    )
    .await?;
    assert!(
        waiting.pending_reason.contains("5 free DU"),
        "{}",
        waiting.pending_reason
    );
    assert!(waiting.worker_id.is_empty());
    // It is visible through dtsctl too.
    let out = cluster.dtsctl(&["task", "list"])?;
    assert!(String::from_utf8_lossy(&out.stdout).contains("waiting for a worker with 5 free DU"));

    let big_worker = cluster.add_worker(6)?;
    let running = cluster
        .wait_for_task_running(&big, Duration::from_secs(15))
        .await?;
    assert_eq!(running.worker_id, big_worker);
    assert_eq!(running.epoch, 1);
    assert!(running.pending_reason.is_empty());
    Ok(())
}

#[tokio::test]
async fn sigkill_of_a_worker_moves_its_tasks_with_a_higher_epoch() -> anyhow::Result<()> {
    let mut cluster = TestCluster::builder()
        .coordinators(3)
        .worker(4)
        .worker(4)
        .start()
        .await?;
    let task = cluster.create_task(&task_file("moving", 2), true).await?.id;
    let before = cluster
        .wait_for_task_running(&task, Duration::from_secs(15))
        .await?;
    let victim = before.worker_id.clone();

    cluster.worker(&victim)?.process.kill();
    let killed_at = Instant::now();
    let after = cluster
        .wait_for_task_moved(&task, &victim, Duration::from_secs(20))
        .await?;
    println!(
        "task moved {} -> {} in {:?} (lease 3 s)",
        victim,
        after.worker_id,
        killed_at.elapsed()
    );
    assert_eq!(after.epoch, before.epoch + 1);
    let status = cluster.cluster_status().await?;
    let lost = status.workers.iter().find(|w| w.id == victim);
    assert_eq!(lost.map(|w| w.state.as_str()), Some("lost"));
    Ok(())
}

async fn report(
    cluster: &TestCluster,
    worker: &str,
    task: &str,
    epoch: u64,
) -> Result<(), tonic::Status> {
    // Each claimant speaks with its own worker certificate (a certificate
    // may not speak for a worker another one registered): what is tested
    // here is the epoch fence behind that check.
    let internal = |e: anyhow::Error| tonic::Status::internal(e.to_string());
    let known = cluster.workers.iter().any(|w| w.id == worker);
    if let (Some(pki), false) = (cluster.pki(), known) {
        pki.issue(worker, Role::Worker).map_err(internal)?;
    }
    let client = cluster.client_as(worker).map_err(internal)?;
    let request = pb::ProgressReport {
        worker_id: worker.to_string(),
        task_id: task.to_string(),
        epoch,
        phase: "incremental".to_string(),
        ..Default::default()
    };
    client
        .call(|ch: Channel| {
            let request = request.clone();
            async move { WorkerControlClient::new(ch).report_progress(request).await }
        })
        .await
        .map(|_| ())
}

#[tokio::test]
async fn reports_with_a_stale_epoch_are_rejected() -> anyhow::Result<()> {
    let mut cluster = TestCluster::builder()
        .coordinators(1)
        .worker(2)
        .worker(2)
        .start()
        .await?;
    let task = cluster.create_task(&task_file("fenced", 2), true).await?.id;
    let first = cluster
        .wait_for_task_running(&task, Duration::from_secs(15))
        .await?;
    assert_eq!(first.epoch, 1);

    // The owner under the current epoch is accepted.
    report(&cluster, &first.worker_id, &task, first.epoch).await?;
    // An epoch that never was, and another worker claiming the current one, are not.
    for (worker, epoch) in [(first.worker_id.as_str(), 0), ("intruder", first.epoch)] {
        let err = report(&cluster, worker, &task, epoch).await.err();
        let err = err.ok_or_else(|| anyhow::anyhow!("report ({worker}, {epoch}) was accepted"))?;
        assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
        assert!(err.message().contains("stale report"), "{}", err.message());
    }

    // After a reassignment the old owner's epoch is stale.
    let old_owner = first.worker_id.clone();
    cluster.worker(&old_owner)?.process.kill();
    let moved = cluster
        .wait_for_task_moved(&task, &old_owner, Duration::from_secs(20))
        .await?;
    assert_eq!(moved.epoch, 2);
    let err = report(&cluster, &old_owner, &task, first.epoch).await.err();
    let err = err.ok_or_else(|| anyhow::anyhow!("stale report after reassignment was accepted"))?;
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("epoch 2"), "{}", err.message());
    // And the stale report changed nothing.
    let now = cluster.task(&task).await?;
    assert_eq!((now.worker_id, now.epoch), (moved.worker_id, 2));
    Ok(())
}

#[tokio::test]
async fn a_frozen_worker_is_fenced_off_and_never_runs_the_moved_task_again() -> anyhow::Result<()> {
    let mut cluster = TestCluster::builder()
        .coordinators(1)
        .worker(2)
        .worker(2)
        .start()
        .await?;
    let task = cluster.create_task(&task_file("frozen", 2), true).await?.id;
    let first = cluster
        .wait_for_task_running(&task, Duration::from_secs(15))
        .await?;
    let frozen = first.worker_id.clone();

    cluster.worker(&frozen)?.process.freeze();
    let moved = cluster
        .wait_for_task_moved(&task, &frozen, Duration::from_secs(20))
        .await?;
    assert_eq!(moved.epoch, first.epoch + 1);

    cluster.worker(&frozen)?.process.thaw();
    // It comes back online, without the task: it fenced itself when it woke up
    // past its lease, and its new assignments do not include the task.
    let back = wait_for(
        "the frozen worker back online and idle",
        Duration::from_secs(20),
        || async {
            let status = cluster.cluster_status().await?;
            let w = status.workers.into_iter().find(|w| w.id == frozen);
            Ok(w.filter(|w| {
                w.state == "online" && w.last_heartbeat_ms_ago.is_some_and(|ms| ms < 1000)
            }))
        },
    )
    .await?;
    assert!(
        back.running_tasks.is_empty(),
        "frozen worker still runs {:?}",
        back.running_tasks
    );
    assert!(back.assigned_tasks.is_empty());
    let log = cluster.worker(&frozen)?.process.log_text();
    assert!(
        log.contains("stopping all tasks") || log.contains("no longer assigned here"),
        "the frozen worker never stopped its task:\n{log}"
    );
    // The task still runs exactly once, on the new owner (whose heartbeat lists
    // it one beat after its first report).
    let runners = wait_for(
        "the new owner to list the task",
        Duration::from_secs(5),
        || async {
            let status = cluster.cluster_status().await?;
            let runners: Vec<String> = status
                .workers
                .iter()
                .filter(|w| w.running_tasks.contains(&task))
                .map(|w| w.id.clone())
                .collect();
            Ok(runners.contains(&moved.worker_id).then_some(runners))
        },
    )
    .await?;
    assert_eq!(runners, vec![moved.worker_id.clone()]);
    Ok(())
}

#[tokio::test]
async fn drain_moves_tasks_off_and_pause_resume_stop_follow_the_user() -> anyhow::Result<()> {
    let mut cluster = TestCluster::builder()
        .coordinators(1)
        .worker(4)
        .start()
        .await?;
    let task = cluster
        .create_task(&task_file("lifecycle", 2), true)
        .await?
        .id;
    let first = cluster
        .wait_for_task_running(&task, Duration::from_secs(15))
        .await?;
    let second_worker = cluster.add_worker(4)?;
    cluster
        .wait_for_workers_online(Duration::from_secs(15))
        .await?;

    let out = cluster.dtsctl(&["worker", "drain", &first.worker_id])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let moved = wait_for(
        "the task to leave the draining worker",
        Duration::from_secs(15),
        || async {
            let t = cluster.task(&task).await?;
            Ok((t.status == "running" && t.worker_id == second_worker).then_some(t))
        },
    )
    .await?;
    assert_eq!(moved.epoch, first.epoch + 1);
    let status = cluster.cluster_status().await?;
    let drained = status.workers.iter().find(|w| w.id == first.worker_id);
    assert_eq!(
        drained.map(|w| (w.state.as_str(), w.du_used)),
        Some(("draining", 0))
    );

    let paused = cluster.pause_task(&task, Duration::from_secs(10)).await?;
    assert_eq!(paused.status, "paused");
    let err = cluster
        .control_task(&task, pb::TaskAction::Pause)
        .await
        .err();
    assert!(err.is_some_and(|e| e.to_string().contains("only a started task")));

    cluster.control_task(&task, pb::TaskAction::Resume).await?;
    let resumed = cluster
        .wait_for_task_running(&task, Duration::from_secs(10))
        .await?;
    assert_eq!(
        resumed.epoch,
        moved.epoch + 1,
        "every new assignment bumps the epoch"
    );

    let stopped = cluster.control_task(&task, pb::TaskAction::Stop).await?;
    assert_eq!(stopped.status, "stopped");
    assert!(stopped.worker_id.is_empty() || cluster.task(&task).await?.status == "stopped");
    Ok(())
}

/// A worker hears of a new task from its watch on the leader, not at its next
/// heartbeat: with beats 10 s apart, a task created just after another
/// started still starts within a few seconds.
#[tokio::test]
async fn a_new_task_reaches_its_worker_without_waiting_for_a_heartbeat() -> anyhow::Result<()> {
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker_lease_ms(30_000, 10_000)
        .worker(4)
        .start()
        .await?;
    // Whatever beats registration brought are spent on the first task: the
    // next regular beat is about 10 s after it started.
    let first = cluster.create_task(&task_file("first", 1), true).await?.id;
    cluster
        .wait_for_task_running(&first, Duration::from_secs(15))
        .await?;
    let second = cluster.create_task(&task_file("second", 1), true).await?.id;
    let started = Instant::now();
    cluster
        .wait_for_task_running(&second, Duration::from_secs(5))
        .await?;
    println!(
        "second task running {:?} after it was created",
        started.elapsed()
    );
    Ok(())
}
