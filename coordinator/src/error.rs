//! The coordinator's error type and its one mapping to gRPC status codes.

use dts_common::leader_hint::not_leader_status;
use dts_common::SpecError;
use tonic::metadata::MetadataValue;
use tonic::Status;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid task spec: {0}")]
    InvalidSpec(#[from] SpecError),
    #[error("invalid argument `{field}`: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    #[error("{kind} `{id}` not found")]
    NotFound { kind: &'static str, id: String },
    #[error("task id prefix `{0}` matches more than one task; give more characters")]
    AmbiguousTask(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error(
        "stale report for task {task_id}: it carries epoch {reported} from worker {worker_id}, \
         but the task is at epoch {current} on {owner}; stop this task"
    )]
    StaleEpoch {
        task_id: String,
        worker_id: String,
        reported: u64,
        current: u64,
        owner: String,
    },
    /// This node is not the leader; `leader` is `(id, address)` when known.
    #[error("not the leader")]
    NotLeader { leader: Option<(u64, String)> },
    #[error("raft: {0}")]
    Raft(String),
    #[error("{0}")]
    Unavailable(String),
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        match &err {
            Error::InvalidSpec(spec) => {
                let mut status = Status::invalid_argument(err.to_string());
                if let Ok(v) = MetadataValue::try_from(spec.field.as_str()) {
                    status.metadata_mut().insert("x-dts-field", v);
                }
                status
            }
            Error::InvalidArgument { .. } => Status::invalid_argument(err.to_string()),
            Error::NotFound { .. } => Status::not_found(err.to_string()),
            Error::AmbiguousTask(_) => Status::invalid_argument(err.to_string()),
            Error::FailedPrecondition(_) | Error::StaleEpoch { .. } => {
                Status::failed_precondition(err.to_string())
            }
            Error::NotLeader { leader } => {
                not_leader_status(leader.as_ref().map(|(id, a)| (*id, a.as_str())))
            }
            Error::Raft(_) => Status::internal(err.to_string()),
            Error::Unavailable(_) => Status::unavailable(err.to_string()),
        }
    }
}
