//! Failover under fire: real coordinators, workers and MariaDB servers, a
//! source load that keeps writing throughout, and processes killed, links
//! partitioned and the destination restarted in the middle of the work.
//! Every test ends with "destination equals source": row counts and ordered
//! row hashes match, and the counters sum to the committed transactions
//! (nothing lost, nothing applied twice; strict apply mode raised nothing).

use dts_tests::compare::assert_same_rows;
use dts_tests::converge::{assert_healthy, assert_load_converged, wait_caught_up};
use dts_tests::fixtures::sync_task;
use dts_tests::load::{Load, LOAD_SCHEMA};
use dts_tests::proxy::FaultProxy;
use dts_tests::{wait_for, MariaDb, TestCluster};
use dts_worker::error::SyncError;
use dts_worker::meta::Meta;
use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(120);

/// Source and destination servers, the load's schema on the source.
async fn servers(seed_rows: u64) -> anyhow::Result<(MariaDb, MariaDb)> {
    let source = MariaDb::start(1).await?;
    let destination = MariaDb::start(2).await?;
    source.exec(LOAD_SCHEMA).await?;
    if seed_rows > 0 {
        source
            .exec(&format!(
                "USE load_db; INSERT INTO items SELECT seq, seq % 13, CONCAT('seed-', seq), seq / 7, \
                 NOW(6) FROM seq_1_to_{seed_rows}"
            ))
            .await?;
    }
    Ok((source, destination))
}

fn load_task(name: &str, source: &MariaDb, destination: &MariaDb, du: u32, extra: &str) -> String {
    sync_task(
        name,
        source.port,
        destination.port,
        &["schema", "full", "incremental"],
        &format!("[[objects]]\ndatabase = \"load_db\"\n{extra}"),
        du,
    )
}

/// Waits until the load has committed `more` transactions beyond now.
async fn more_load(load: &Load, more: u64) -> anyhow::Result<()> {
    load.wait_for_more(more, TIMEOUT).await
}

/// Stops the load, waits for the destination to apply all of it, and checks
/// the task is healthy and the tables converged.
async fn finish(
    cluster: &TestCluster,
    task: &str,
    load: Load,
    source: &MariaDb,
    destination: &MariaDb,
) -> anyhow::Result<u64> {
    let lanes = cluster.task(task).await?.du;
    let committed = load.stop().await?;
    println!("{committed} source transactions during the test");
    wait_caught_up(source, destination, lanes, TIMEOUT)
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}\n{}", cluster.logs()))?;
    assert_healthy(cluster, task).await?;
    assert_load_converged(source, destination, committed).await?;
    Ok(committed)
}

async fn count(server: &MariaDb, sql: &str) -> u64 {
    server
        .query_value(sql)
        .await
        .ok()
        .flatten()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The highest epoch that has committed an apply transaction on the destination
/// (checkpoints commit in the same transaction as the rows they cover).
async fn applying_epoch(destination: &MariaDb) -> u64 {
    count(
        destination,
        "SELECT MAX(epoch) FROM dts_meta.checkpoints WHERE lane >= 1",
    )
    .await
}

#[tokio::test]
async fn worker_sigkill_mid_full_sync_under_load_resumes_from_its_chunks() -> anyhow::Result<()> {
    let (source, destination) = servers(200_000).await?;
    let mut cluster = TestCluster::builder()
        .coordinators(1)
        .worker(1)
        .worker(1)
        .start()
        .await?;
    let load = Load::start(&source, 1).await?;
    let task = cluster
        .create_task(&load_task("mid-full", &source, &destination, 1, ""), true)
        .await?
        .id;
    let chunks_done = "SELECT COUNT(*) FROM dts_meta.chunks WHERE done = 1";
    wait_for("a few chunks copied", TIMEOUT, || async {
        Ok((count(&destination, chunks_done).await >= 3).then_some(()))
    })
    .await?;
    let owner = cluster.task(&task).await?;
    cluster.worker(&owner.worker_id)?.process.kill();
    let done_at_kill = count(&destination, chunks_done).await;
    // Plans are stored a batch at a time while the copy runs: the kill may
    // cut the plan short too, so the whole count is read at the end.
    let planned_at_kill = count(&destination, "SELECT COUNT(*) FROM dts_meta.chunks").await;
    println!(
        "killed {} with {done_at_kill}/{planned_at_kill} chunks done",
        owner.worker_id
    );
    assert!(
        done_at_kill < planned_at_kill,
        "the copy finished before the kill; the test needs a bigger table"
    );
    let moved = cluster
        .wait_for_task_moved(&task, &owner.worker_id, Duration::from_secs(30))
        .await?;
    assert_eq!(moved.epoch, owner.epoch + 1);
    cluster
        .wait_for_task_phase(&task, "incremental", TIMEOUT)
        .await?;
    // The chunks the first owner committed stayed its own: none was copied again.
    let by_first_owner = count(
        &destination,
        &format!(
            "SELECT COUNT(*) FROM dts_meta.chunks WHERE done = 1 AND epoch = {}",
            owner.epoch
        ),
    )
    .await;
    assert!(
        by_first_owner >= done_at_kill,
        "done chunks were copied again: {by_first_owner} < {done_at_kill}"
    );
    let total = count(&destination, "SELECT COUNT(*) FROM dts_meta.chunks").await;
    assert_eq!(count(&destination, chunks_done).await, total);
    more_load(&load, 200).await?;
    finish(&cluster, &task, load, &source, &destination).await?;
    Ok(())
}

#[tokio::test]
async fn worker_sigkill_mid_incremental_hands_over_and_applies_again_within_seconds(
) -> anyhow::Result<()> {
    let (source, destination) = servers(0).await?;
    // Default lease and heartbeat (3 s, 500 ms): the figure printed is the one
    // a user gets out of the box.
    let mut cluster = TestCluster::builder()
        .coordinators(1)
        .worker(2)
        .worker(2)
        .start()
        .await?;
    let task = cluster
        .create_task(
            &load_task("mid-incremental", &source, &destination, 2, ""),
            true,
        )
        .await?
        .id;
    let load = Load::start(&source, 2).await?;
    let first = cluster
        .wait_for_task_phase(&task, "incremental", TIMEOUT)
        .await?;
    more_load(&load, 200).await?;
    wait_for("the first owner applying", TIMEOUT, || async {
        Ok((applying_epoch(&destination).await == first.epoch).then_some(()))
    })
    .await?;

    let killed_at = Instant::now();
    cluster.worker(&first.worker_id)?.process.kill();
    let moved = cluster
        .wait_for_task_moved(&task, &first.worker_id, Duration::from_secs(30))
        .await?;
    let reassigned = killed_at.elapsed();
    assert_eq!(moved.epoch, first.epoch + 1);
    wait_for("the new owner's first applied change", TIMEOUT, || async {
        Ok((applying_epoch(&destination).await >= moved.epoch).then_some(()))
    })
    .await?;
    let applying_again = killed_at.elapsed();
    println!(
        "worker failover: SIGKILL of {} -> task running on {} after {:.2} s -> first change \
         applied by it after {:.2} s (goal: under 5 s)",
        first.worker_id,
        moved.worker_id,
        reassigned.as_secs_f64(),
        applying_again.as_secs_f64()
    );
    more_load(&load, 200).await?;
    finish(&cluster, &task, load, &source, &destination).await?;
    // The task (2 DU) applied through two lanes, each with its own checkpoint.
    let lanes = count(
        &destination,
        "SELECT COUNT(*) FROM dts_meta.checkpoints WHERE lane >= 1",
    )
    .await;
    assert_eq!(lanes, 2);
    Ok(())
}

/// The replay after a crash between two lanes' commits, made to happen: a
/// row lock held on the destination stops the lane that must insert row 7
/// while the other lane commits the batch, and the worker is SIGKILLed
/// then. The new owner replays the batch from the stopped lane's checkpoint;
/// routing must send every transaction to the lane it went to before, or a
/// row comes twice (strict apply fails the task) or never.
#[tokio::test]
async fn a_crash_between_two_lanes_commits_replays_the_batch_and_applies_nothing_twice(
) -> anyhow::Result<()> {
    let source = MariaDb::start(1).await?;
    let destination = MariaDb::start(2).await?;
    source
        .exec("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20))")
        .await?;
    let mut cluster = TestCluster::builder()
        .coordinators(1)
        .worker(2)
        .worker(2)
        .start()
        .await?;
    let spec = sync_task(
        "split-commit",
        source.port,
        destination.port,
        &["schema", "full", "incremental"],
        "[[objects]]\ndatabase = \"app\"",
        2,
    );
    let task = cluster.create_task(&spec, true).await?.id;
    let first = cluster
        .wait_for_task_phase(&task, "incremental", TIMEOUT)
        .await?;
    // A first change through, so that both lanes have a checkpoint.
    source.exec("INSERT INTO app.t VALUES (0, 'first')").await?;
    wait_caught_up(&source, &destination, 2, TIMEOUT).await?;

    // Row 7, inserted and not committed on the destination, makes the lane
    // inserting it wait for this transaction.
    let mut blocker = destination.conn().await?;
    blocker
        .query_drop("START TRANSACTION; INSERT INTO app.t VALUES (7, 'blocker')")
        .await?;
    let inserts: Vec<String> = (1..=200)
        .map(|id| format!("INSERT INTO app.t VALUES ({id}, 'row-{id}')"))
        .collect();
    source.exec(&inserts.join("; ")).await?;
    // Lanes also differ for a moment between two commits; with a lane
    // waiting for the lock they stay so: the batch cannot end.
    let split = wait_for(
        "one lane to commit past the stopped one",
        TIMEOUT,
        || async {
            let waiting = count(
                &destination,
                "SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'",
            )
            .await;
            let positions = count(
                &destination,
                "SELECT COUNT(DISTINCT position) FROM dts_meta.checkpoints WHERE lane >= 1",
            )
            .await;
            let routing = destination
                .query_value(
                    "SELECT GROUP_CONCAT(DISTINCT JSON_VALUE(position, '$.routing')) \
                 FROM dts_meta.checkpoints WHERE lane >= 1",
                )
                .await?;
            Ok((waiting == 1 && positions == 2).then_some(routing))
        },
    )
    .await?;
    assert_eq!(
        split.as_deref(),
        Some("3"),
        "checkpoints record the group routing"
    );
    let applied_before = count(&destination, "SELECT COUNT(*) FROM app.t WHERE id > 0").await;
    assert!(
        applied_before > 0 && applied_before < 200,
        "one lane's share is in, the other's is not: {applied_before} rows"
    );

    cluster.worker(&first.worker_id)?.process.kill();
    blocker.query_drop("ROLLBACK").await?;
    drop(blocker);
    let moved = cluster
        .wait_for_task_moved(&task, &first.worker_id, TIMEOUT)
        .await?;
    assert_eq!(moved.epoch, first.epoch + 1);
    source
        .exec("INSERT INTO app.t VALUES (201, 'after the crash')")
        .await?;
    wait_caught_up(&source, &destination, 2, TIMEOUT)
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}\n{}", cluster.logs()))?;
    assert_healthy(&cluster, &task).await?;
    assert_same_rows(&source, &destination, &[("app", "t")]).await?;
    Ok(())
}

#[tokio::test]
async fn leader_sigkill_mid_sync_keeps_the_sync_going_and_reports_reach_the_new_leader(
) -> anyhow::Result<()> {
    let (source, destination) = servers(0).await?;
    let mut cluster = TestCluster::builder()
        .coordinators(3)
        .worker(2)
        .worker(2)
        .start()
        .await?;
    let task = cluster
        .create_task(
            &load_task("leader-kill", &source, &destination, 2, ""),
            true,
        )
        .await?
        .id;
    let load = Load::start(&source, 3).await?;
    let before = cluster
        .wait_for_task_phase(&task, "incremental", TIMEOUT)
        .await?;
    more_load(&load, 200).await?;

    let old_leader = cluster.cluster_status().await?.leader_id;
    let killed_at = Instant::now();
    cluster.coordinator(old_leader)?.process.kill();
    let new_leader = wait_for("a new leader", Duration::from_secs(30), || async {
        let status = cluster.cluster_status().await?;
        let leader = status
            .coordinators
            .iter()
            .find(|c| c.role == "leader" && c.id == status.leader_id && c.id != old_leader);
        Ok(leader.map(|c| c.id))
    })
    .await?;
    println!(
        "coordinator failover: no leader for {:.2} s after SIGKILL of leader {old_leader}; \
         coordinator {new_leader} leads",
        killed_at.elapsed().as_secs_f64()
    );
    // The worker's progress reports reach the new leader: the applied count
    // it holds moves on.
    let seen = cluster
        .task(&task)
        .await?
        .checkpoint
        .map(|c| c.rows_applied)
        .unwrap_or(0);
    more_load(&load, 100).await?;
    wait_for(
        "a progress report accepted by the new leader",
        TIMEOUT,
        || async {
            let now = cluster.task(&task).await?;
            let applied = now.checkpoint.map(|c| c.rows_applied).unwrap_or(0);
            Ok((applied > seen).then_some(()))
        },
    )
    .await?;
    cluster.coordinator(old_leader)?.process.restart()?;
    let finished = finish(&cluster, &task, load, &source, &destination).await?;
    // The sync went on where it was: no reassignment, no new epoch.
    let after = cluster.task(&task).await?;
    assert_eq!(
        (after.worker_id.as_str(), after.epoch),
        (before.worker_id.as_str(), before.epoch),
        "the leader change moved the task"
    );
    println!("{finished} transactions applied across the leader change");
    Ok(())
}

#[tokio::test]
async fn a_worker_partitioned_from_the_coordinators_stops_and_its_old_epoch_is_refused(
) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let (source, destination) = servers(0).await?;
    let mut cluster = TestCluster::builder().coordinators(1).start().await?;
    // worker-1 reaches the coordinator only through the proxy; it still
    // reaches both databases directly.
    let link = FaultProxy::start(&cluster.coordinator_list())?;
    let partitioned = cluster.add_worker_through(2, &link.address())?;
    cluster
        .wait_for_workers_online(Duration::from_secs(20))
        .await?;
    let task = cluster
        .create_task(&load_task("partition", &source, &destination, 2, ""), true)
        .await?
        .id;
    let load = Load::start(&source, 4).await?;
    let first = cluster
        .wait_for_task_phase(&task, "incremental", TIMEOUT)
        .await?;
    assert_eq!(first.worker_id, partitioned);
    cluster.add_worker(2)?;
    cluster
        .wait_for_workers_online(Duration::from_secs(20))
        .await?;
    more_load(&load, 200).await?;

    println!("[{:.1}s] blackholed", t0.elapsed().as_secs_f64());
    link.blackhole();
    let moved = cluster
        .wait_for_task_moved(&task, &partitioned, Duration::from_secs(30))
        .await?;
    assert_eq!(moved.epoch, first.epoch + 1);
    println!("[{:.1}s] moved", t0.elapsed().as_secs_f64());
    wait_for(
        "the partitioned worker to stop by itself",
        TIMEOUT,
        || async {
            let log = cluster.worker_log(&partitioned);
            Ok(log
                .contains("coordinators unreachable for longer than the lease; stopping all tasks")
                .then_some(()))
        },
    )
    .await?;
    println!("[{:.1}s] old worker stopped", t0.elapsed().as_secs_f64());
    wait_for("the new owner applying", TIMEOUT, || async {
        Ok((applying_epoch(&destination).await >= moved.epoch).then_some(()))
    })
    .await?;

    // A write under the old epoch, through the very fence every apply
    // transaction starts with, is refused by the destination.
    let mut conn = destination.conn().await?;
    let mut tx = conn.start_transaction(Default::default()).await?;
    let refused = Meta::new("dts_meta", &task, first.epoch, source.server_id)
        .check_owner(&mut tx)
        .await;
    drop(tx);
    match refused {
        Err(e @ SyncError::Fenced { mine, current }) => {
            assert_eq!((mine, current), (first.epoch, moved.epoch));
            println!("the destination refused epoch {mine}: {e}");
        }
        other => anyhow::bail!("a write with the old epoch was not refused: {other:?}"),
    }

    // Healed, the old worker comes back (a fresh heartbeat) without the task.
    println!("[{:.1}s] heal", t0.elapsed().as_secs_f64());
    link.heal();
    let back =
        wait_for("the partitioned worker back online", TIMEOUT, || async {
            let status = cluster.cluster_status().await?;
            let w = status.workers.into_iter().find(|w| w.id == partitioned);
            Ok(w.filter(|w| {
                w.state == "online" && w.last_heartbeat_ms_ago.is_some_and(|ms| ms < 1000)
            }))
        })
        .await?;
    assert!(
        !back.running_tasks.contains(&task) && !back.assigned_tasks.contains(&task),
        "the partitioned worker runs the task again: {back:?}"
    );
    more_load(&load, 200).await?;
    finish(&cluster, &task, load, &source, &destination).await?;
    let task_now = cluster.task(&task).await?;
    assert_eq!(task_now.epoch, moved.epoch);
    Ok(())
}

#[tokio::test]
async fn a_frozen_owner_with_an_open_transaction_does_not_hold_up_the_new_owner(
) -> anyhow::Result<()> {
    let (source, destination) = servers(0).await?;
    let mut cluster = TestCluster::builder()
        .coordinators(1)
        .worker(2)
        .worker(2)
        .start()
        .await?;
    let task = cluster
        .create_task(
            &load_task("frozen-owner", &source, &destination, 2, ""),
            true,
        )
        .await?
        .id;
    let load = Load::start(&source, 7).await?;
    let first = cluster
        .wait_for_task_phase(&task, "incremental", TIMEOUT)
        .await?;
    more_load(&load, 300).await?;
    // Freeze it inside an apply transaction, which holds the fence row's
    // shared lock that the new owner's claim needs: hold the counter rows on
    // the destination so its next transaction stops there, freeze it, then
    // let go (the frozen process never commits nor rolls back).
    let mut blocker = destination.conn().await?;
    let mut attempts = 0;
    loop {
        blocker.query_drop("BEGIN").await?;
        // The lanes hold counter rows too: a deadlock victim tries again.
        match blocker
            .query_drop("SELECT * FROM load_db.counters FOR UPDATE")
            .await
        {
            Ok(()) => break,
            Err(e) if attempts < 20 => {
                attempts += 1;
                println!("holding the counter rows: {e}; again");
                blocker.query_drop("ROLLBACK").await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    wait_for("the owner waiting on the held rows", TIMEOUT, || async {
        let waiting = count(
            &destination,
            // A row-by-row UPDATE, or the folded batch's upsert.
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
             WHERE INFO LIKE 'UPDATE `load_db`.`counters`%' \
             OR INFO LIKE 'INSERT INTO `load_db`.`counters`%'",
        )
        .await;
        Ok((waiting > 0).then_some(()))
    })
    .await?;
    cluster.worker(&first.worker_id)?.process.freeze();
    blocker.query_drop("COMMIT").await?;
    let moved = cluster
        .wait_for_task_moved(&task, &first.worker_id, Duration::from_secs(30))
        .await?;
    wait_for(
        "the new owner applying while the old one is still frozen",
        TIMEOUT,
        || async { Ok((applying_epoch(&destination).await >= moved.epoch).then_some(())) },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{}", cluster.logs()))?;
    let killed = cluster
        .worker_log(&moved.worker_id)
        .lines()
        .filter(|l| l.contains("holding the owner row"))
        .count();
    println!("the new owner killed {killed} session(s) of the frozen owner to take over");
    cluster.worker(&first.worker_id)?.process.thaw();
    more_load(&load, 200).await?;
    finish(&cluster, &task, load, &source, &destination).await?;
    Ok(())
}

#[tokio::test]
async fn destination_restart_is_retried_and_a_destination_left_down_fails_the_task_clearly(
) -> anyhow::Result<()> {
    let (source, mut destination) = servers(0).await?;
    // One retry-window minute lasts a second here: connect_minutes = 10 is a
    // 10 s window for unreachable servers, other_minutes = 5 a 5 s one.
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(2)
        .worker_args(&["--retry-minute-ms", "1000"])
        .start()
        .await?;
    let retry = "[retry]\nconnect_minutes = 10\nother_minutes = 5";
    let task = cluster
        .create_task(
            &load_task("dest-restart", &source, &destination, 2, retry),
            true,
        )
        .await?
        .id;
    let load = Load::start(&source, 5).await?;
    cluster
        .wait_for_task_phase(&task, "incremental", TIMEOUT)
        .await?;
    more_load(&load, 200).await?;

    // Down for a moment: the task retries and recovers.
    destination.kill();
    let retrying = wait_for("the task to report the outage", TIMEOUT, || async {
        let t = cluster.task(&task).await?;
        anyhow::ensure!(
            t.status != "failed",
            "failed instead of retrying: {}",
            t.last_error
        );
        Ok((!t.last_error.is_empty()).then_some(t.last_error))
    })
    .await?;
    println!("while the destination is down: {retrying}");
    destination.restart().await?;
    wait_for("the task to recover", TIMEOUT, || async {
        let t = cluster.task(&task).await?;
        anyhow::ensure!(
            t.status != "failed",
            "failed instead of retrying: {}",
            t.last_error
        );
        Ok(t.last_error.is_empty().then_some(()))
    })
    .await?;
    more_load(&load, 200).await?;
    wait_caught_up(&source, &destination, 2, TIMEOUT).await?;

    // Down for longer than the window: the task fails with the last error.
    destination.kill();
    let down_at = Instant::now();
    let failed = cluster
        .wait_for_task_status(&task, "failed", Duration::from_secs(60))
        .await?;
    println!(
        "destination left down: task failed after {:.1} s with: {}",
        down_at.elapsed().as_secs_f64(),
        failed.last_error
    );
    assert!(
        failed.last_error.contains("destination") && failed.last_error.contains("unreachable"),
        "unclear error: {}",
        failed.last_error
    );
    assert!(
        down_at.elapsed() >= Duration::from_secs(10),
        "failed before its retry window ran out"
    );

    // Nothing was lost: back up and resumed, the task converges.
    destination.restart().await?;
    cluster
        .control_task(&task, dts_proto::pb::TaskAction::Start)
        .await?;
    cluster
        .wait_for_task_phase(&task, "incremental", TIMEOUT)
        .await?;
    more_load(&load, 100).await?;
    finish(&cluster, &task, load, &source, &destination).await?;
    Ok(())
}

/// The source's address moves to another server, as in a failover to a
/// replica. Binlog positions mean nothing in another server's binlog (the
/// harness servers even share file names), so the task fails naming both
/// servers instead of reading the new one from the old server's position.
#[tokio::test]
async fn a_source_replaced_behind_its_address_fails_the_task_instead_of_reading_another_binlog(
) -> anyhow::Result<()> {
    let old = MariaDb::start(1).await?;
    let destination = MariaDb::start(2).await?;
    let new = MariaDb::start(3).await?;
    let schema = "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20)); \
                  INSERT INTO app.t VALUES (1, 'one'), (2, 'two')";
    old.exec(schema).await?;
    // The new server has the data, and a change the old one never had.
    new.exec(&format!(
        "{schema}; INSERT INTO app.t VALUES (50, 'only on new')"
    ))
    .await?;
    let address = FaultProxy::start(&format!("127.0.0.1:{}", old.port))?;
    let address_port: u16 = address
        .address()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no port in {}", address.address()))?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(2)
        .start()
        .await?;
    let spec = sync_task(
        "moved-source",
        address_port,
        destination.port,
        &["schema", "full", "incremental"],
        "[[objects]]\ndatabase = \"app\"",
        1,
    );
    let task = cluster
        .run_task_until(&spec, "incremental", TIMEOUT)
        .await?;
    old.exec("INSERT INTO app.t VALUES (3, 'three')").await?;
    wait_caught_up(&old, &destination, 1, TIMEOUT).await?;

    // The address goes dark, then answers from the other server.
    address.cut();
    wait_for("the worker to lose the source", TIMEOUT, || async {
        let t = cluster.task(&task).await?;
        Ok((!t.last_error.is_empty()).then_some(()))
    })
    .await?;
    address.retarget(&format!("127.0.0.1:{}", new.port))?;
    address.heal();
    let failed = cluster
        .wait_for_task_status(&task, "failed", TIMEOUT)
        .await?;
    assert!(
        failed
            .last_error
            .contains("is now the server with server_id 3, not server_id 1"),
        "unclear error: {}",
        failed.last_error
    );
    // Nothing of the new server's binlog was applied.
    assert_same_rows(&old, &destination, &[("app", "t")]).await?;
    Ok(())
}

/// xorshift64*: a seeded, printed random schedule that a failing run can replay
/// with `DTS_CHAOS_SEED`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug)]
enum Victim {
    Worker(String),
    Coordinator(u64),
}

impl Victim {
    fn process<'a>(
        &self,
        cluster: &'a mut TestCluster,
    ) -> anyhow::Result<&'a mut dts_tests::process::Process> {
        Ok(match self {
            Victim::Worker(id) => &mut cluster.worker(id)?.process,
            Victim::Coordinator(id) => &mut cluster.coordinator(*id)?.process,
        })
    }
}

#[tokio::test]
async fn chaos_of_random_sigkills_under_load_loses_and_repeats_nothing() -> anyhow::Result<()> {
    chaos("transaction").await
}

/// The same chaos with row changes spread over the lanes by key (the load's
/// transactions all touch the hot counter rows, which pins those to lanes
/// while the items spread).
#[tokio::test]
async fn chaos_with_row_level_apply_loses_and_repeats_nothing() -> anyhow::Result<()> {
    chaos("row").await
}

async fn chaos(apply_consistency: &str) -> anyhow::Result<()> {
    let seed = std::env::var("DTS_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| dts_common::time::now_ms().unsigned_abs() | 1);
    println!("chaos seed {seed} (replay with DTS_CHAOS_SEED={seed})");
    let mut rng = Rng(seed);
    let (source, destination) = servers(20_000).await?;
    let mut cluster = TestCluster::builder()
        .coordinators(3)
        .worker(2)
        .worker(2)
        .worker(2)
        .start()
        .await?;
    let task = cluster
        .create_task(
            &format!(
                "apply_consistency = \"{apply_consistency}\"\n{}",
                load_task("chaos", &source, &destination, 2, "")
            ),
            true,
        )
        .await?
        .id;
    let load = Load::start(&source, 6).await?;
    cluster.wait_for_task_running(&task, TIMEOUT).await?;

    for round in 1..=10 {
        // Let the load run a random while between faults.
        tokio::time::sleep(Duration::from_millis(1500 + rng.below(3000))).await;
        let owner = cluster.task(&task).await?.worker_id;
        let victim = match rng.below(10) {
            0..=4 if !owner.is_empty() => Victim::Worker(owner),
            0..=6 => Victim::Worker(format!("worker-{}", 1 + rng.below(3))),
            _ => Victim::Coordinator(1 + rng.below(3)),
        };
        println!(
            "round {round}: SIGKILL {victim:?} ({} transactions so far)",
            load.committed()
        );
        victim.process(&mut cluster)?.kill();
        // Back before its lease runs out (the same worker resumes its own
        // epoch) or after (the task has moved on under a new epoch).
        tokio::time::sleep(Duration::from_millis(300 + rng.below(5000))).await;
        victim.process(&mut cluster)?.restart()?;
        // Whole again before the next fault, so no fault ever takes out a
        // majority of the coordinators.
        wait_for("every coordinator and worker back", TIMEOUT, || async {
            let status = cluster.cluster_status().await?;
            let coordinators_up = status.coordinators.len() == 3
                && status
                    .coordinators
                    .iter()
                    .all(|c| c.role == "leader" || c.role == "follower");
            let workers_up =
                status.workers.len() == 3 && status.workers.iter().all(|w| w.state == "online");
            Ok((coordinators_up && workers_up).then_some(()))
        })
        .await?;
    }
    let settled = cluster.wait_for_task_running(&task, TIMEOUT).await?;
    println!(
        "after the chaos: task on {} with epoch {}",
        settled.worker_id, settled.epoch
    );
    more_load(&load, 100).await?;
    finish(&cluster, &task, load, &source, &destination).await?;
    Ok(())
}
