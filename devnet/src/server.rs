//! Serving a devnet: native gRPC (HTTP/2) and gRPC-Web (HTTP/1.1, for the TypeScript
//! `SuiGrpcClient`) on one port, plus a ready-made local instance for tests.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::client_config::ClientConfig;
use crate::error::DevnetError;
use crate::genesis::{self, GenesisConfig};
use crate::node::Devnet;
use crate::rpc::{
    LedgerServiceServer, Rpc, StateServiceServer, SubscriptionServiceServer,
    TransactionExecutionServiceServer,
};
use crate::trust::DevnetOptions;

/// Largest request or response message (checkpoints carry every object they touch).
const MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;

impl Devnet {
    /// Serves the devnet on `listener` until `shutdown` completes. `heartbeat`: seal an empty
    /// checkpoint after this long without one (`None`: never).
    pub async fn serve(
        self,
        listener: TcpListener,
        heartbeat: Option<Duration>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), DevnetError> {
        let node = self.node.clone();
        let devnet = self.clone();
        let heartbeat_task = heartbeat.map(|idle| tokio::spawn(self.clone().run_heartbeat(idle)));
        let rpc = Rpc::new(self.node.clone());
        // No Nagle: small gRPC responses must not wait for the peer's delayed ACK (~40 ms).
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let stopping = node.clone();
        let result = Server::builder()
            .accept_http1(true)
            .layer(tonic_web::GrpcWebLayer::new())
            .add_service(
                LedgerServiceServer::new(rpc.clone())
                    .max_decoding_message_size(MAX_MESSAGE_SIZE)
                    .max_encoding_message_size(MAX_MESSAGE_SIZE),
            )
            .add_service(
                StateServiceServer::new(rpc.clone())
                    .max_decoding_message_size(MAX_MESSAGE_SIZE)
                    .max_encoding_message_size(MAX_MESSAGE_SIZE),
            )
            .add_service(
                TransactionExecutionServiceServer::new(rpc.clone())
                    .max_decoding_message_size(MAX_MESSAGE_SIZE)
                    .max_encoding_message_size(MAX_MESSAGE_SIZE),
            )
            .add_service(
                SubscriptionServiceServer::new(rpc)
                    .max_decoding_message_size(MAX_MESSAGE_SIZE)
                    .max_encoding_message_size(MAX_MESSAGE_SIZE),
            )
            .serve_with_incoming_shutdown(incoming, async move {
                shutdown.await;
                // End open subscriptions so that the graceful shutdown can complete.
                stopping.stop();
            })
            .await
            .map_err(DevnetError::Serve);
        node.stop();
        if let Some(task) = heartbeat_task {
            task.abort();
        }
        devnet.flush().await;
        result
    }
}

/// A devnet served on `127.0.0.1:<ephemeral port>` inside the current tokio runtime, for tests
/// and local tooling. Dropping it stops the server.
pub struct LocalDevnet {
    pub addr: SocketAddr,
    pub config: ClientConfig,
    pub data_dir: PathBuf,
    pub devnet: Devnet,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), DevnetError>>>,
}

impl LocalDevnet {
    /// Initialises `data_dir` if it holds no chain yet (with `genesis`, or the default genesis
    /// with generated admin and faucet keys), then serves it on an ephemeral loopback port.
    /// `heartbeat` as for [`Devnet::serve`].
    pub async fn start(
        data_dir: &Path,
        genesis: Option<GenesisConfig>,
        heartbeat: Option<Duration>,
    ) -> Result<LocalDevnet, DevnetError> {
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::start_on(listen, data_dir, genesis, heartbeat).await
    }

    /// As [`LocalDevnet::start`], on `listen` (port 0 picks a free port). `client.json` is
    /// written with the bound address before this returns.
    pub async fn start_on(
        listen: SocketAddr,
        data_dir: &Path,
        genesis: Option<GenesisConfig>,
        heartbeat: Option<Duration>,
    ) -> Result<LocalDevnet, DevnetError> {
        Self::start_with(
            listen,
            data_dir,
            genesis,
            heartbeat,
            &DevnetOptions::default(),
        )
        .await
    }

    /// As [`LocalDevnet::start_on`], with node `options` (e.g.
    /// [`DevnetOptions::trust_dev_attestation_root`] for a dev enclave's registration).
    pub async fn start_with(
        listen: SocketAddr,
        data_dir: &Path,
        genesis: Option<GenesisConfig>,
        heartbeat: Option<Duration>,
        options: &DevnetOptions,
    ) -> Result<LocalDevnet, DevnetError> {
        let bind_error = |source| DevnetError::Bind {
            addr: listen.to_string(),
            source,
        };
        let listener = TcpListener::bind(listen).await.map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let rpc = format!("http://{addr}");
        if !crate::store::exists(data_dir) {
            genesis::init(data_dir, genesis, &rpc)?;
        }
        let devnet = Devnet::open_with(data_dir, options)?;
        let config = devnet.write_client_config(&rpc)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(devnet.clone().serve(listener, heartbeat, async move {
            let _ = stopped.await;
        }));
        Ok(LocalDevnet {
            addr,
            config,
            data_dir: data_dir.to_owned(),
            devnet,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) -> Result<(), DevnetError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task
                .await
                .unwrap_or_else(|e| Err(DevnetError::Task(format!("server: {e}")))),
            None => Ok(()),
        }
    }
}

impl Drop for LocalDevnet {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
