//! The coordinator cluster as real processes: elections, SIGKILL of the leader,
//! recovery from disk, membership changes, snapshots and log purging.

use dts_tests::{wait_for, TestCluster};
use std::time::{Duration, Instant};

use dts_tests::fixtures::control_plane_task as task_file;

#[tokio::test]
async fn leader_sigkill_elects_new_leader_keeps_tasks_and_restarted_node_catches_up(
) -> anyhow::Result<()> {
    let mut cluster = TestCluster::builder().coordinators(3).start().await?;
    let old_leader = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(
            cluster
                .create_task(&task_file(&format!("t{i}"), 1), false)
                .await?
                .id,
        );
    }

    cluster.coordinator(old_leader)?.process.kill();
    let killed_at = Instant::now();
    let new_leader = wait_for("a new leader", Duration::from_secs(15), || async {
        let status = cluster.cluster_status().await?;
        Ok((status.leader_id != 0 && status.leader_id != old_leader).then_some(status.leader_id))
    })
    .await?;
    println!(
        "new leader {new_leader} elected {:?} after SIGKILL of leader {old_leader}",
        killed_at.elapsed()
    );

    let tasks = cluster.tasks().await?;
    let mut ids: Vec<String> = tasks.iter().map(|t| t.id.clone()).collect();
    ids.sort();
    created.sort();
    assert_eq!(
        ids, created,
        "every task created before the kill is still there"
    );

    // More writes while the node is down, so it has something to catch up on.
    for i in 5..8 {
        cluster
            .create_task(&task_file(&format!("t{i}"), 1), false)
            .await?;
    }
    cluster.coordinator(old_leader)?.process.restart()?;
    let leader_log = cluster.node_status(new_leader).await?.last_log_index;
    let caught_up = wait_for(
        "the restarted node to catch up",
        Duration::from_secs(20),
        || async {
            let node = cluster.node_status(old_leader).await?;
            Ok((node.role == "follower" && node.last_applied_index >= leader_log).then_some(node))
        },
    )
    .await?;
    assert!(caught_up.last_applied_index >= leader_log);
    assert_eq!(cluster.tasks().await?.len(), 8);
    Ok(())
}

#[tokio::test]
async fn single_node_grows_to_three_through_dtsctl_and_shrinks_back() -> anyhow::Result<()> {
    let mut cluster = TestCluster::builder().coordinators(1).start().await?;
    cluster
        .create_task(&task_file("before-growth", 1), false)
        .await?;
    for id in [2u64, 3] {
        let port = dts_tests::ports::free_port()?;
        cluster.spawn_coordinator(id, port, vec!["--join".to_string()])?;
        let address = format!("127.0.0.1:{port}");
        let id_text = id.to_string();
        let out = cluster.dtsctl(&[
            "cluster",
            "add-coordinator",
            "--id",
            &id_text,
            "--address",
            &address,
        ])?;
        assert!(
            out.status.success(),
            "add-coordinator failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            cluster.logs()
        );
    }
    let status = cluster.cluster_status().await?;
    let voters: Vec<u64> = status
        .coordinators
        .iter()
        .filter(|c| c.voter)
        .map(|c| c.id)
        .collect();
    assert_eq!(voters, vec![1, 2, 3]);
    // The new members replicated the state.
    let leader_log = cluster.node_status(1).await?.last_log_index;
    for id in [2u64, 3] {
        let node_view = wait_for(
            "new member to apply the log",
            Duration::from_secs(10),
            || async {
                let node = cluster.node_status(id).await?;
                Ok((node.last_applied_index >= leader_log).then_some(node))
            },
        )
        .await?;
        assert_eq!(node_view.role, "follower");
    }

    let out = cluster.dtsctl(&["cluster", "remove-coordinator", "--id", "3"])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = cluster.cluster_status().await?;
    let members: Vec<u64> = status.coordinators.iter().map(|c| c.id).collect();
    assert_eq!(members, vec![1, 2]);
    assert_eq!(cluster.tasks().await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn snapshots_purge_the_log_and_a_lagging_node_recovers_from_one() -> anyhow::Result<()> {
    let mut cluster = TestCluster::builder()
        .coordinators(3)
        .snapshot_every_logs(20)
        .start()
        .await?;
    let leader = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let follower = cluster
        .coordinators
        .iter()
        .map(|c| c.id)
        .find(|id| *id != leader)
        .ok_or_else(|| anyhow::anyhow!("no follower"))?;
    cluster.coordinator(follower)?.process.kill();
    for i in 0..80 {
        cluster
            .create_task(&task_file(&format!("bulk-{i}"), 1), false)
            .await?;
    }
    let leader_view = wait_for(
        "the leader to snapshot and purge",
        Duration::from_secs(20),
        || async {
            let node = cluster.node_status(leader).await?;
            Ok((node.purged_index > 0 && node.snapshot_index >= 20).then_some(node))
        },
    )
    .await?;
    println!(
        "leader: last log {} snapshot {} purged {}",
        leader_view.last_log_index, leader_view.snapshot_index, leader_view.purged_index
    );

    // The follower missed purged entries: it can only catch up through a snapshot.
    cluster.coordinator(follower)?.process.restart()?;
    let target = leader_view.last_log_index;
    let node = wait_for(
        "the lagging node to install a snapshot",
        Duration::from_secs(20),
        || async {
            let node = cluster.node_status(follower).await?;
            Ok((node.last_applied_index >= target).then_some(node))
        },
    )
    .await?;
    assert!(
        node.snapshot_index > 0,
        "follower caught up without a snapshot: {node:?}"
    );

    // Everything survives a SIGKILL of the whole cluster.
    for c in cluster.coordinators.iter_mut() {
        c.process.kill();
    }
    for c in cluster.coordinators.iter_mut() {
        c.process.restart()?;
    }
    cluster.wait_for_leader(Duration::from_secs(20)).await?;
    assert_eq!(cluster.tasks().await?.len(), 80);
    Ok(())
}
