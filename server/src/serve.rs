//! Starting the server: open the store, take up active runs, serve the API.

use crate::api::{self, App};
use crate::scheduler::{Scheduler, SchedulerConfig};
use crate::store::{DynStore, SqliteStore};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub scheduler: SchedulerConfig,
    pub token: Option<String>,
}

/// A server whose store is open and whose active runs are taken up: all that is left is to
/// serve. Whoever says the server is up should say so only once this exists.
pub struct Server {
    app: App,
    store: DynStore,
    data_dir: PathBuf,
}

impl Server {
    /// Opens the store and takes up every active run (a run that cannot be is failed, with
    /// the reason, rather than keeping the server from starting).
    pub async fn start(cfg: ServerConfig) -> anyhow::Result<Server> {
        let store: DynStore = Arc::new(SqliteStore::open(&cfg.data_dir).await?);
        let sched = Scheduler::new(store.clone(), cfg.scheduler.clone()).await?;
        let app = App {
            sched,
            token: cfg.token.map(Arc::from),
            artifacts: Arc::new(sluice_sdk::artifacts::LocalDir::new(
                std::fs::canonicalize(&cfg.data_dir).unwrap_or(cfg.data_dir.clone()),
            )),
            // A pipeline file at its size limit, escaped into JSON, with room to spare.
            max_body: 2 * cfg.scheduler.limits.yaml.max_bytes + (1 << 20),
        };
        Ok(Server {
            app,
            store,
            data_dir: cfg.data_dir,
        })
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let reaper = tokio::spawn(self.app.sched.clone().reap_loop());
        let checkpoints = tokio::spawn(crate::store::checkpoint_loop(
            self.store.clone(),
            std::time::Duration::from_secs(1),
        ));
        let addr = listener.local_addr()?;
        tracing::info!(%addr, data_dir = %self.data_dir.display(), "sluice server listening");
        let router = api::edges(api::router(self.app).merge(crate::ui::router()));
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await?;
        reaper.abort();
        checkpoints.abort();
        self.store.close().await;
        Ok(())
    }
}

/// Starts and serves until `shutdown` completes.
pub async fn serve(
    cfg: ServerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    Server::start(cfg).await?.serve(listener, shutdown).await
}
