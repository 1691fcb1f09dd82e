//! Connectivity checks an admin asks for and a worker runs: workers are
//! not servers, so the leader hands a probe out in the chosen worker's next
//! heartbeat reply and waits for the worker's ReportProbe. Leader-local and
//! short-lived: a probe lost with a leader change is simply asked again.

use dts_proto::pb;
use std::collections::BTreeMap;
use std::sync::Mutex;
use tokio::sync::oneshot;

struct Pending {
    worker: String,
    endpoint_json: String,
    handed_out: bool,
    reply: oneshot::Sender<pb::ProbeResult>,
}

#[derive(Default)]
pub struct Probes {
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    pending: BTreeMap<u64, Pending>,
}

/// A probe waiting for its result; dropping it withdraws the probe.
pub struct Ticket<'a> {
    probes: &'a Probes,
    pub id: u64,
    pub result: oneshot::Receiver<pb::ProbeResult>,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.probes.lock().pending.remove(&self.id);
    }
}

impl Probes {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a probe of `endpoint_json` for `worker`.
    pub fn submit(&self, worker: &str, endpoint_json: String) -> Ticket<'_> {
        let (reply, result) = oneshot::channel();
        let mut table = self.lock();
        table.next_id += 1;
        let id = table.next_id;
        table.pending.insert(
            id,
            Pending {
                worker: worker.to_string(),
                endpoint_json,
                handed_out: false,
                reply,
            },
        );
        Ticket {
            probes: self,
            id,
            result,
        }
    }

    /// The probes `worker` has not been handed yet (each once).
    pub fn hand_out(&self, worker: &str) -> Vec<pb::Probe> {
        let mut table = self.lock();
        table
            .pending
            .iter_mut()
            .filter(|(_, p)| p.worker == worker && !p.handed_out)
            .map(|(id, p)| {
                p.handed_out = true;
                pb::Probe {
                    id: *id,
                    endpoint_json: p.endpoint_json.clone(),
                }
            })
            .collect()
    }

    /// A worker's result; ignored unless that worker was handed the probe.
    pub fn complete(&self, result: pb::ProbeResult) {
        let mut table = self.lock();
        let ours = table
            .pending
            .get(&result.id)
            .is_some_and(|p| p.worker == result.worker_id && p.handed_out);
        if ours {
            if let Some(pending) = table.pending.remove(&result.id) {
                let _ = pending.reply.send(result);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_goes_once_to_its_worker_and_only_its_worker_completes_it() {
        let probes = Probes::default();
        let mut ticket = probes.submit("w1", "{}".into());
        assert!(probes.hand_out("w2").is_empty());
        let handed = probes.hand_out("w1");
        assert_eq!(handed.len(), 1);
        assert!(probes.hand_out("w1").is_empty(), "handed out once");
        probes.complete(pb::ProbeResult {
            id: ticket.id,
            worker_id: "w2".into(),
            items: Vec::new(),
        });
        assert!(ticket.result.try_recv().is_err(), "another worker's answer");
        probes.complete(pb::ProbeResult {
            id: ticket.id,
            worker_id: "w1".into(),
            items: vec![pb::ProbeItem::default()],
        });
        assert_eq!(
            ticket.result.try_recv().map(|r| r.items.len()).ok(),
            Some(1)
        );
        drop(ticket);
        assert!(probes.lock().pending.is_empty());
    }
}
