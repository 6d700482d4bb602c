//! Starting the server: open the store, take up active runs, serve the API.

use crate::api::{self, auth, App};
use crate::scheduler::{Scheduler, SchedulerConfig};
use crate::store::DynStore;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;

#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    /// Where state is kept: a `postgres://` URL, or SQLite under `data_dir` when unset.
    pub database: Option<String>,
    pub scheduler: SchedulerConfig,
    /// An admin token given at start (`--token`), kept in memory only.
    pub token: Option<String>,
    /// Serve beyond loopback with no credential required (`--insecure`).
    pub insecure: bool,
    /// Host names the server answers to besides `localhost` and IP addresses.
    pub allowed_hosts: Vec<String>,
    /// Serve over TLS with these PEM files (the login cookie is then `Secure`).
    pub tls: Option<crate::tls::TlsFiles>,
    /// What pipelines may ask of the hosts their steps run on.
    pub policy: crate::policy::Policy,
    /// With several servers over one PostgreSQL database, where the others reach this one when
    /// it schedules (default: its listening address).
    pub advertise_url: Option<String>,
    /// Keep artifacts in this object store (`s3://bucket/prefix?endpoint=…&region=…`) rather
    /// than on the workers' disks.
    pub artifacts: Option<String>,
    /// The largest upload a run's input artifact may be (bytes; 16 GiB when unset).
    pub max_upload: Option<u64>,
    /// How long an upload's body may send nothing before it is refused (60 s when unset), and
    /// how many uploads are taken at once (32 when unset; one more is a 503 to retry).
    pub upload_idle: Option<std::time::Duration>,
    pub uploads_at_once: Option<usize>,
}

/// A server whose store is open and whose active runs are taken up: all that is left is to
/// serve. Whoever says the server is up should say so only once this exists.
pub struct Server {
    app: App,
    store: DynStore,
    data_dir: PathBuf,
    insecure: bool,
    hosts: api::auth::HostPolicy,
    worker_token: String,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Server {
    /// Opens the store and takes up every active run (a run that cannot be is failed, with
    /// the reason, rather than keeping the server from starting).
    pub async fn start(mut cfg: ServerConfig) -> anyhow::Result<Server> {
        if let Some(url) = &cfg.artifacts {
            let store = sluice_sdk::artifacts::ObjectArtifacts::from_url(url)?;
            store.check().await?;
            cfg.scheduler.artifact_store = Some(Arc::new(store));
        }
        // The data directory holds the secrets key whichever database keeps the state.
        std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create data directory {}: {e}",
                cfg.data_dir.display()
            )
        })?;
        let store: DynStore = crate::store::open(cfg.database.as_deref(), &cfg.data_dir).await?;
        api::uploads::sweep(&cfg.data_dir);
        let secrets = Arc::new(crate::secrets::SecretBox::open_or_create(
            &cfg.data_dir.join("secrets.key"),
        )?);
        let sched = Scheduler::new(store.clone(), cfg.scheduler.clone(), secrets.clone()).await?;
        // The built-in worker's token (`sluice up`): in memory only, gone with the process.
        let worker_token = auth::new_secret("slc_");
        let mut given = HashMap::new();
        given.insert(
            auth::hash(&worker_token),
            auth::Caller::Token {
                id: "built-in".into(),
                name: "built-in worker".into(),
                role: auth::Role::Worker,
                pipelines: None,
            },
        );
        if let Some(t) = cfg.token.as_deref().filter(|t| !t.is_empty()) {
            given.insert(
                auth::hash(t),
                auth::Caller::Token {
                    id: "given".into(),
                    name: "--token".into(),
                    role: auth::Role::Admin,
                    pipelines: None,
                },
            );
        }
        let tls = cfg.tls.as_ref().map(crate::tls::acceptor).transpose()?;
        let required =
            cfg.token.as_deref().is_some_and(|t| !t.is_empty()) || store.live_tokens().await? > 0;
        let app = App {
            sched,
            auth: Arc::new(auth::Auth::new(required, given, cfg.tls.is_some())),
            secrets,
            policy: Arc::new(cfg.policy),
            artifacts: Arc::new(sluice_sdk::artifacts::Artifacts {
                local: sluice_sdk::artifacts::LocalDir::new(
                    std::fs::canonicalize(&cfg.data_dir).unwrap_or(cfg.data_dir.clone()),
                ),
                object: cfg.scheduler.artifact_store.clone(),
            }),
            // A pipeline file at its size limit, escaped into JSON, with room to spare.
            max_body: 2 * cfg.scheduler.limits.yaml.max_bytes + (1 << 20),
            max_upload: cfg.max_upload.unwrap_or(api::uploads::DEFAULT_MAX_UPLOAD),
            uploads: Arc::new(api::uploads::Limits::new(
                cfg.upload_idle,
                cfg.uploads_at_once,
            )),
        };
        Ok(Server {
            app,
            store,
            data_dir: cfg.data_dir,
            insecure: cfg.insecure,
            hosts: auth::HostPolicy {
                allowed: cfg.allowed_hosts,
            },
            worker_token,
            tls,
        })
    }

    /// `https` when the server speaks TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// A `worker` token for a worker in this process (`sluice up`'s), valid while it runs.
    pub fn worker_token(&self) -> String {
        self.worker_token.clone()
    }

    /// Whether callers need a credential.
    pub fn auth_required(&self) -> bool {
        self.app.auth.required()
    }

    /// Refuses to serve beyond loopback with no credential required, unless told to.
    pub fn check_exposure(&self, addr: std::net::SocketAddr) -> anyhow::Result<()> {
        check_exposure(
            addr,
            self.app.auth.required(),
            self.insecure,
            &self.data_dir,
        )
    }

    /// The API and the UI, before the edges every answer goes through ([`api::edges`]).
    pub(crate) fn router(&self) -> axum::Router {
        api::router(self.app.clone()).merge(crate::ui::router())
    }

    /// Starts what runs beside the API (taking back expired leases, checkpoints); it stops when
    /// the returned guard is dropped.
    pub(crate) fn background(&self) -> Background {
        Background(vec![
            tokio::spawn(self.app.sched.clone().reap_loop()),
            tokio::spawn(self.app.sched.clone().schedule_loop()),
            tokio::spawn(crate::store::checkpoint_loop(
                self.store.clone(),
                std::time::Duration::from_secs(1),
            )),
        ])
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let background = self.background();
        let addr = listener.local_addr()?;
        self.check_exposure(addr)?;
        tracing::info!(%addr, data_dir = %self.data_dir.display(), "sluice server listening");
        let router = api::edges(self.router(), self.hosts.clone());
        serve_router(listener, self.tls.clone(), router, shutdown).await?;
        drop(background);
        self.store.close().await;
        Ok(())
    }
}

/// Tasks that stop when this is dropped.
pub(crate) struct Background(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Background {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Refuses to serve on `addr` beyond loopback with no credential required, unless `insecure`.
pub(crate) fn check_exposure(
    addr: std::net::SocketAddr,
    required: bool,
    insecure: bool,
    data_dir: &std::path::Path,
) -> anyhow::Result<()> {
    if addr.ip().is_loopback() || required || insecure {
        return Ok(());
    }
    anyhow::bail!(
        "refusing to serve on {addr} (beyond this machine) with no authentication: make \
         an admin token first (`sluice tokens create NAME --role admin --data-dir {}`), or \
         give one with --token/SLUICE_TOKEN, or pass --insecure to serve without",
        data_dir.display()
    )
}

/// Serves `router` on `listener`, over TLS with `tls`, until `shutdown` completes.
pub(crate) async fn serve_router(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    match tls {
        Some(acceptor) => crate::tls::serve(listener, acceptor, router, shutdown).await?,
        None => {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await?
        }
    }
    Ok(())
}

/// Starts and serves until `shutdown` completes: alone on its database, or, over PostgreSQL,
/// as one of several servers of which one schedules ([`crate::shared`]).
pub async fn serve(
    cfg: ServerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    match cfg.database.as_deref() {
        Some(url) if crate::store::is_postgres(url) => {
            let url = url.to_string();
            crate::shared::serve(cfg, &url, listener, shutdown).await
        }
        _ => Server::start(cfg).await?.serve(listener, shutdown).await,
    }
}
