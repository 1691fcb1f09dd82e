//! Binds the gRPC port and runs a coordinator until told to stop.

use crate::auth::AuthLayer;
use crate::config::CoordinatorConfig;
use crate::node::{Coordinator, StartError};
use crate::scheduler::driver;
use crate::service::admin::AdminService;
use crate::service::raft::RaftServer;
use crate::service::worker::WorkerService;
use dts_common::tls::Transport;
use dts_proto::pb::admin_server::AdminServer;
use dts_proto::pb::raft_server::RaftServer as RaftGrpcServer;
use dts_proto::pb::worker_control_server::WorkerControlServer;
use std::future::Future;
use tracing::{info, warn};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("grpc reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error(transparent)]
    Tls(#[from] dts_common::tls::TlsError),
}

/// Snapshots carry the whole state in one message.
const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

pub async fn serve(
    config: CoordinatorConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    // Bind first: a port clash should fail before Raft starts talking to peers.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            address: config.listen.to_string(),
            source,
        })?;
    let node = Coordinator::start(config).await?;
    info!(node_id = node.id, address = %node.address, transport = ?node.transport, "coordinator started");
    if !node.transport.is_tls() {
        warn!("--insecure: plaintext gRPC, and anyone who reaches this port is an admin");
    }
    if node.keyring.is_none() {
        warn!("no secrets key ring: database passwords are stored as given");
    }
    let scheduler = tokio::spawn(driver::run(node.clone()));
    let alerts = tokio::spawn(crate::alerts::run(node.clone()));
    let metrics = node
        .config
        .metrics_listen
        .map(|_| tokio::spawn(crate::metrics::run(node.clone())));
    // grpc.health.v1 and server reflection, for load balancers and grpcurl.
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<AdminServer<AdminService>>().await;
    health
        .set_serving::<WorkerControlServer<WorkerService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(dts_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;

    let router = tonic::transport::Server::builder()
        .layer(AuthLayer {
            enforce: node.transport.is_tls(),
        })
        .add_service(health_service)
        .add_service(reflection)
        .add_service(
            AdminServer::new(AdminService { node: node.clone() })
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(WorkerControlServer::new(WorkerService {
            node: node.clone(),
        }))
        .add_service(
            RaftGrpcServer::new(RaftServer { node: node.clone() })
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        );
    let result = match &node.transport {
        Transport::Tls(material) => {
            let incoming = dts_common::tls::acceptor::incoming(listener, material.server_config()?);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        Transport::Insecure => {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
    };
    scheduler.abort();
    alerts.abort();
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    let _ = node.raft.shutdown().await;
    info!(node_id = node.id, "coordinator stopped");
    result.map_err(ServeError::from)
}
