//! `plan(state, expired) -> Plan`: which workers are lost and where each task
//! runs. No I/O; the driver turns a non-empty plan into one Raft command.
//!
//! Rules: a runnable task stays on a healthy owner; tasks of lost workers and
//! of draining workers (when they fit elsewhere) move with a new epoch; tasks
//! that are not runnable are unassigned; placement is best fit (the online
//! worker left with the fewest free DUs), oldest task first; a task that fits
//! nowhere waits with a reason.

use crate::state::{ClusterState, Placement, TaskRecord, WorkerId};
use dts_common::model::WorkerState;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub lost_workers: Vec<WorkerId>,
    pub placements: Vec<Placement>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.lost_workers.is_empty() && self.placements.is_empty()
    }
}

/// `expired`: workers whose lease the leader saw run out.
pub fn plan(state: &ClusterState, expired: &BTreeSet<WorkerId>) -> Plan {
    let lost_workers: Vec<WorkerId> = state
        .workers
        .values()
        .filter(|w| w.state != WorkerState::Lost && expired.contains(&w.id))
        .map(|w| w.id.clone())
        .collect();
    let effective_state = |id: &str| -> Option<WorkerState> {
        let worker = state.workers.get(id)?;
        Some(if lost_workers.iter().any(|l| l == id) {
            WorkerState::Lost
        } else {
            worker.state
        })
    };

    let mut tasks: Vec<&TaskRecord> = state.tasks.values().collect();
    tasks.sort_by_key(|t| (t.created_at_ms, t.id));

    // Pass 1: decide who stays where, so that freed capacity is known before placing.
    let mut free: BTreeMap<&str, u32> = state
        .workers
        .values()
        .filter(|w| effective_state(&w.id) != Some(WorkerState::Lost))
        .map(|w| (w.id.as_str(), w.du_total))
        .collect();
    let mut placements = Vec::new();
    let mut to_place: Vec<&TaskRecord> = Vec::new();
    let mut draining_candidates: Vec<&TaskRecord> = Vec::new();
    for task in &tasks {
        let owner = task.assigned_worker.as_deref();
        if !task.is_runnable() {
            if owner.is_some() || task.pending_reason.is_some() {
                placements.push(unassign(task, None));
            }
            continue;
        }
        if task.waits_for_link {
            let reason = format!(
                "waiting for its forward task {} to reach incremental sync",
                task.linked.map(|id| id.to_string()).unwrap_or_default()
            );
            if owner.is_some() || task.pending_reason.as_deref() != Some(&reason) {
                placements.push(unassign(task, Some(reason)));
            }
            continue;
        }
        match owner.map(|o| (o, effective_state(o))) {
            Some((owner, Some(WorkerState::Online))) => take(&mut free, owner, task.du()),
            Some((owner, Some(WorkerState::Draining))) => {
                take(&mut free, owner, task.du());
                draining_candidates.push(task);
            }
            // Lost or unknown owner, or never placed.
            _ => to_place.push(task),
        }
    }

    // Pass 2: place, oldest first; then move tasks off draining workers where they fit.
    for task in to_place {
        match best_fit(state, &free, task.du(), |s| s == WorkerState::Online) {
            Some(worker) => {
                take(&mut free, &worker, task.du());
                placements.push(assign(task, worker));
            }
            None => {
                let reason = pending_reason(state, &free, task.du());
                if task.assigned_worker.is_some() || task.pending_reason.as_deref() != Some(&reason)
                {
                    placements.push(unassign(task, Some(reason)));
                }
            }
        }
    }
    for task in draining_candidates {
        if let Some(worker) = best_fit(state, &free, task.du(), |s| s == WorkerState::Online) {
            if let Some(owner) = task.assigned_worker.as_deref() {
                give_back(&mut free, owner, task.du());
            }
            take(&mut free, &worker, task.du());
            placements.push(assign(task, worker));
        }
    }
    Plan {
        lost_workers,
        placements,
    }
}

fn best_fit(
    state: &ClusterState,
    free: &BTreeMap<&str, u32>,
    du: u32,
    eligible: impl Fn(WorkerState) -> bool,
) -> Option<WorkerId> {
    free.iter()
        .filter(|(id, &f)| f >= du && state.workers.get(**id).is_some_and(|w| eligible(w.state)))
        .min_by_key(|(id, &f)| (f - du, **id))
        .map(|(id, _)| (*id).to_string())
}

fn pending_reason(state: &ClusterState, free: &BTreeMap<&str, u32>, du: u32) -> String {
    let online: Vec<u32> = free
        .iter()
        .filter(|(id, _)| {
            state
                .workers
                .get(**id)
                .is_some_and(|w| w.state == WorkerState::Online)
        })
        .map(|(_, f)| *f)
        .collect();
    match online.iter().max() {
        None => format!("waiting for a worker with {du} free DU: no worker is online"),
        Some(largest) => format!(
            "waiting for a worker with {du} free DU: the largest free capacity is {largest} DU on {} online worker(s)",
            online.len()
        ),
    }
}

fn take(free: &mut BTreeMap<&str, u32>, worker: &str, du: u32) {
    if let Some(f) = free.get_mut(worker) {
        *f = f.saturating_sub(du);
    }
}

fn give_back(free: &mut BTreeMap<&str, u32>, worker: &str, du: u32) {
    if let Some(f) = free.get_mut(worker) {
        *f += du;
    }
}

fn assign(task: &TaskRecord, worker: WorkerId) -> Placement {
    Placement {
        task_id: task.id,
        from_epoch: task.epoch,
        worker: Some(worker),
        new_epoch: task.epoch + 1,
        pending_reason: None,
    }
}

fn unassign(task: &TaskRecord, pending_reason: Option<String>) -> Placement {
    Placement {
        task_id: task.id,
        from_epoch: task.epoch,
        worker: None,
        new_epoch: task.epoch,
        pending_reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::task;
    use crate::state::{Command, WorkerRecord};
    use dts_common::model::DesiredState;
    use uuid::Uuid;

    fn worker(id: &str, du: u32, state: WorkerState) -> WorkerRecord {
        WorkerRecord {
            id: id.into(),
            address: id.into(),
            du_total: du,
            state,
            registered_at_ms: 0,
            changed_at_ms: 0,
            certificate: String::new(),
        }
    }

    fn cluster(workers: &[(&str, u32)], tasks: &[u32]) -> ClusterState {
        let mut state = ClusterState::default();
        for (id, du) in workers {
            state
                .workers
                .insert(id.to_string(), worker(id, *du, WorkerState::Online));
        }
        for (i, du) in tasks.iter().enumerate() {
            let t = task(i as u128 + 1, *du, DesiredState::Running);
            state.tasks.insert(t.id, t);
        }
        state
    }

    /// Applies plans until the scheduler is satisfied, checking invariants.
    fn settle(state: &mut ClusterState, expired: &BTreeSet<WorkerId>) {
        for _ in 0..5 {
            let plan = plan(state, expired);
            if plan.is_empty() {
                check_invariants(state);
                return;
            }
            let outcome = state.apply(Command::ApplyPlan {
                lost_workers: plan.lost_workers,
                placements: plan.placements,
                at_ms: 0,
            });
            assert_eq!(outcome.stale_placements, 0);
        }
        panic!("scheduler did not settle: {:?}", plan(state, expired));
    }

    fn check_invariants(state: &ClusterState) {
        for (worker, used) in state.du_used() {
            let w = &state.workers[worker];
            assert!(
                used <= w.du_total,
                "worker {worker} over capacity: {used} > {}",
                w.du_total
            );
            assert_ne!(w.state, WorkerState::Lost, "task on lost worker {worker}");
        }
        for t in state.tasks.values() {
            if t.is_runnable() {
                assert!(
                    t.assigned_worker.is_some() != t.pending_reason.is_some(),
                    "runnable task must be placed xor pending: {t:?}"
                );
            } else {
                assert!(
                    t.assigned_worker.is_none(),
                    "non-runnable task placed: {t:?}"
                );
            }
        }
    }

    fn owner(state: &ClusterState, n: u128) -> Option<&str> {
        state.tasks[&Uuid::from_u128(n)].assigned_worker.as_deref()
    }

    #[test]
    fn places_within_capacity_and_waits_with_reason() {
        let mut state = cluster(&[("w4", 4), ("w2", 2)], &[2, 2, 2, 5]);
        settle(&mut state, &BTreeSet::new());
        let placed: Vec<_> = (1..=3).map(|n| owner(&state, n)).collect();
        assert!(placed.iter().all(Option::is_some), "{placed:?}");
        let big = &state.tasks[&Uuid::from_u128(4)];
        assert_eq!(big.assigned_worker, None);
        let reason = big.pending_reason.clone().unwrap_or_default();
        assert!(reason.contains("5 free DU"), "{reason}");

        state
            .workers
            .insert("w6".into(), worker("w6", 6, WorkerState::Online));
        settle(&mut state, &BTreeSet::new());
        assert_eq!(owner(&state, 4), Some("w6"));
        assert_eq!(state.tasks[&Uuid::from_u128(4)].epoch, 1);
    }

    #[test]
    fn a_reverse_task_waits_for_its_forward_task_and_the_pair_lives_as_one() {
        use crate::state::{Checkpoint, ProgressReport};
        let mut state = cluster(&[("w", 8)], &[2, 2]);
        let (forward, reverse) = (Uuid::from_u128(1), Uuid::from_u128(2));
        for (id, other) in [(forward, reverse), (reverse, forward)] {
            if let Some(task) = state.tasks.get_mut(&id) {
                task.linked = Some(other);
            }
        }
        if let Some(task) = state.tasks.get_mut(&reverse) {
            task.waits_for_link = true;
        }
        settle(&mut state, &BTreeSet::new());
        assert!(state.tasks[&forward].assigned_worker.is_some());
        assert_eq!(state.tasks[&reverse].assigned_worker, None);
        assert!(state.tasks[&reverse]
            .pending_reason
            .as_deref()
            .is_some_and(|r| r.contains("reach incremental sync")));
        // The forward task reports incremental: the reverse one is placed.
        let epoch = state.tasks[&forward].epoch;
        let report = |phase: &str| ProgressReport {
            task_id: forward,
            worker_id: "w".into(),
            epoch,
            phase: phase.into(),
            checkpoint: Some(Checkpoint::default()),
            error: None,
            fatal: false,
        };
        let full = report("full");
        state.apply(Command::Reports {
            reports: vec![full],
            at_ms: 1,
        });
        assert!(state.tasks[&reverse].waits_for_link);
        let incremental = report("incremental");
        state.apply(Command::Reports {
            reports: vec![incremental],
            at_ms: 2,
        });
        settle(&mut state, &BTreeSet::new());
        assert!(state.tasks[&reverse].assigned_worker.is_some());
        // Pausing either pauses both; deleting either deletes both.
        state.apply(Command::SetDesired {
            task_id: reverse,
            desired: DesiredState::Paused,
            at_ms: 3,
            acknowledge: Vec::new(),
        });
        assert_eq!(state.tasks[&forward].desired, DesiredState::Paused);
        state.apply(Command::DeleteTask { task_id: forward });
        assert!(state.tasks.is_empty());
    }

    #[test]
    fn best_fit_prefers_the_tightest_worker() {
        let mut state = cluster(&[("big", 8), ("small", 3)], &[3]);
        settle(&mut state, &BTreeSet::new());
        assert_eq!(owner(&state, 1), Some("small"));
    }

    #[test]
    fn expired_worker_loses_tasks_with_new_epoch() {
        let mut state = cluster(&[("a", 4), ("b", 4)], &[2, 2]);
        settle(&mut state, &BTreeSet::new());
        let victim = owner(&state, 1).map(str::to_string).unwrap_or_default();
        let epochs_before: Vec<u64> = state.tasks.values().map(|t| t.epoch).collect();
        let expired: BTreeSet<_> = [victim.clone()].into();
        settle(&mut state, &expired);
        assert_eq!(state.workers[&victim].state, WorkerState::Lost);
        for (t, before) in state.tasks.values().zip(epochs_before) {
            assert_ne!(t.assigned_worker.as_deref(), Some(victim.as_str()));
            assert!(t.epoch >= before);
        }
        assert_eq!(state.tasks[&Uuid::from_u128(1)].epoch, 2);
    }

    #[test]
    fn lost_worker_tasks_wait_when_nothing_fits() {
        let mut state = cluster(&[("a", 2)], &[2]);
        settle(&mut state, &BTreeSet::new());
        settle(&mut state, &["a".to_string()].into());
        let t = &state.tasks[&Uuid::from_u128(1)];
        assert_eq!(t.assigned_worker, None);
        assert!(t
            .pending_reason
            .as_deref()
            .unwrap_or_default()
            .contains("no worker is online"));
    }

    #[test]
    fn draining_moves_tasks_only_where_they_fit() {
        let mut state = cluster(&[("a", 4)], &[2, 2]);
        settle(&mut state, &BTreeSet::new());
        state.apply(Command::DrainWorker {
            id: "a".into(),
            at_ms: 0,
        });
        settle(&mut state, &BTreeSet::new());
        assert_eq!(owner(&state, 1), Some("a"), "nowhere to go: stays");
        state
            .workers
            .insert("b".into(), worker("b", 2, WorkerState::Online));
        settle(&mut state, &BTreeSet::new());
        assert_eq!(owner(&state, 1), Some("b"));
        assert_eq!(owner(&state, 2), Some("a"), "b is full");
        state
            .workers
            .insert("c".into(), worker("c", 2, WorkerState::Online));
        settle(&mut state, &BTreeSet::new());
        assert_eq!(owner(&state, 2), Some("c"));
    }

    #[test]
    fn paused_and_failed_tasks_are_unassigned() {
        let mut state = cluster(&[("a", 4)], &[1, 1]);
        settle(&mut state, &BTreeSet::new());
        state.apply(Command::SetDesired {
            task_id: Uuid::from_u128(1),
            desired: DesiredState::Paused,
            at_ms: 0,
            acknowledge: Vec::new(),
        });
        if let Some(t) = state.tasks.get_mut(&Uuid::from_u128(2)) {
            t.failed = true;
        }
        settle(&mut state, &BTreeSet::new());
        assert_eq!(owner(&state, 1), None);
        assert_eq!(owner(&state, 2), None);
    }

    #[test]
    fn exhaustive_small_clusters_keep_invariants() {
        // Every combination of up to 3 workers (0..=4 DU) and 3 tasks (1..=3 DU),
        // then each worker expiring in turn.
        let capacities = [0u32, 1, 2, 4];
        for a in capacities {
            for b in capacities {
                for c in capacities {
                    for t1 in 1..=3 {
                        for t2 in 1..=3 {
                            let mut state = cluster(&[("a", a), ("b", b), ("c", c)], &[t1, t2, 2]);
                            settle(&mut state, &BTreeSet::new());
                            let total: u32 = state.du_used().values().sum();
                            let placed_du: u32 = state
                                .tasks
                                .values()
                                .filter(|t| t.assigned_worker.is_some())
                                .map(TaskRecord::du)
                                .sum();
                            assert_eq!(total, placed_du);
                            for dead in ["a", "b", "c"] {
                                let mut after = state.clone();
                                settle(&mut after, &[dead.to_string()].into());
                            }
                        }
                    }
                }
            }
        }
    }
}
