//! The gRPC contract shared by coordinators, workers and dtsctl.

/// Generated protobuf and tonic types of package `dts.v1`. Wire types stay here;
/// domain code converts at the edge (see `dts_common::pb_ext`).
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("dts.v1");
}

/// Encoded file descriptor set, for gRPC reflection and tooling.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("dts_descriptor");
