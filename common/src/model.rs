//! Domain vocabulary shared by coordinator, worker and dtsctl.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Liveness of a worker as the replicated state records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    Online,
    /// Its lease expired; its tasks were (or will be) moved with a new epoch.
    Lost,
    /// Takes no new tasks; its tasks move elsewhere as soon as they fit.
    Draining,
}

/// What the user asked a task to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DesiredState {
    /// Created, never started.
    Created,
    Running,
    Paused,
    /// Ended by the user; it keeps its record until deleted.
    Stopped,
}

/// What a task is, as shown to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Created,
    /// Runnable but not placed: see the pending reason.
    Pending,
    /// Assigned; the worker has not reported yet under this epoch.
    Starting,
    Running,
    Paused,
    Stopped,
    /// The worker reported a fatal error; see the last error.
    Failed,
}

macro_rules! display_as_serde_name {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let name = serde_json::to_value(self)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                f.write_str(&name)
            }
        }
    )*};
}
display_as_serde_name!(WorkerState, DesiredState, TaskStatus);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_display_as_their_wire_names() {
        assert_eq!(WorkerState::Draining.to_string(), "draining");
        assert_eq!(DesiredState::Running.to_string(), "running");
        assert_eq!(TaskStatus::Pending.to_string(), "pending");
    }
}
