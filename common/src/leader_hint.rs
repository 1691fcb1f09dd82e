//! The contract between a follower that refuses a leader-only call and the client
//! that retries it: UNAVAILABLE plus the leader's address in a metadata header.

use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

/// Metadata key carrying the current leader's gRPC address (`host:port`).
pub const LEADER_ADDRESS_HEADER: &str = "x-dts-leader";
/// Metadata key carrying the current leader's node id.
pub const LEADER_ID_HEADER: &str = "x-dts-leader-id";

/// The status a follower answers with. `leader` is `(id, address)` when known.
pub fn not_leader_status(leader: Option<(u64, &str)>) -> Status {
    let message = match leader {
        Some((id, addr)) => format!("not the leader; the leader is coordinator {id} at {addr}"),
        None => "no leader elected yet; retry shortly".to_string(),
    };
    let mut status = Status::unavailable(message);
    if let Some((id, addr)) = leader {
        if let Ok(v) = MetadataValue::try_from(addr) {
            status.metadata_mut().insert(LEADER_ADDRESS_HEADER, v);
        }
        if let Ok(v) = MetadataValue::try_from(id.to_string()) {
            status.metadata_mut().insert(LEADER_ID_HEADER, v);
        }
    }
    status
}

/// The leader address a refusing follower named, if any.
pub fn leader_hint(status: &Status) -> Option<String> {
    if status.code() != Code::Unavailable {
        return None;
    }
    status
        .metadata()
        .get(LEADER_ADDRESS_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hint_round_trips_through_status() {
        let status = not_leader_status(Some((3, "127.0.0.1:7003")));
        assert_eq!(leader_hint(&status).as_deref(), Some("127.0.0.1:7003"));
        assert_eq!(leader_hint(&not_leader_status(None)), None);
        assert_eq!(leader_hint(&Status::internal("x")), None);
    }
}
