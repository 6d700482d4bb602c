//! `sluice up`, `sluice server` and `sluice worker`.

use super::DEFAULT_ADDR;
use anyhow::Context;
use clap::{Args, ValueEnum};
use sluice_server::scheduler::SchedulerConfig;
use sluice_server::ServerConfig;
use sluice_worker::runtime::fake::FakeRuntime;
use sluice_worker::runtime::ContainerRuntime;
use sluice_worker::WorkerConfig;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Which container runtime a worker uses.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum RuntimeKind {
    /// Test double that starts no container (for sluice's own tests and control-plane benchmarks).
    #[value(hide = true)]
    Fake,
}

fn default_data_dir() -> PathBuf {
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/share/sluice"),
        None => PathBuf::from(".sluice"),
    }
}

pub fn default_worker_dir() -> PathBuf {
    default_data_dir().join("worker")
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    sluice_sdk::spec::parse_duration_ms(s)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{s}` is not a duration such as 30s or 2m"))
}

#[derive(Args, Clone)]
pub struct ServerOpts {
    /// Where the database (and, with `up`, the worker's files) live.
    #[arg(long, env = "SLUICE_DATA_DIR", default_value_os_t = default_data_dir())]
    data_dir: PathBuf,
    /// A lease not renewed by its worker within this time is taken back and its task runs elsewhere.
    #[arg(long, env = "SLUICE_LEASE_TTL", default_value = "30s", value_parser = parse_duration)]
    lease_ttl: Duration,
    /// How often workers renew their leases.
    #[arg(long, env = "SLUICE_HEARTBEAT", default_value = "1s", value_parser = parse_duration)]
    heartbeat: Duration,
    /// Require this bearer token on every API call.
    #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl ServerOpts {
    fn config(&self) -> ServerConfig {
        ServerConfig {
            data_dir: self.data_dir.clone(),
            scheduler: SchedulerConfig {
                lease_ttl_ms: self.lease_ttl.as_millis() as i64,
                heartbeat_interval_ms: self.heartbeat.as_millis() as u64,
                ..Default::default()
            },
            token: self.token.clone(),
        }
    }
}

#[derive(Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "SLUICE_ADDR", default_value = DEFAULT_ADDR)]
    addr: String,
    #[command(flatten)]
    opts: ServerOpts,
}

#[derive(Args)]
pub struct UpArgs {
    /// Address to listen on.
    #[arg(long, env = "SLUICE_ADDR", default_value = DEFAULT_ADDR)]
    addr: String,
    #[command(flatten)]
    opts: ServerOpts,
    /// How many tasks the built-in worker runs at once.
    #[arg(long, default_value_t = default_capacity())]
    capacity: u32,
    /// The built-in worker's container runtime.
    #[arg(long, value_enum, hide = true)]
    runtime: Option<RuntimeKind>,
}

#[derive(Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    conn: super::Conn,
    /// Where task scratch files and output artifacts live.
    #[arg(long, env = "SLUICE_WORKER_DIR", default_value_os_t = default_worker_dir())]
    data_dir: PathBuf,
    /// How many tasks run at once.
    #[arg(long, default_value_t = default_capacity())]
    capacity: u32,
    /// The worker's name (default: the host name).
    #[arg(long)]
    name: Option<String>,
    #[arg(long, value_enum, hide = true)]
    runtime: Option<RuntimeKind>,
    /// A JSON line per task the fake runtime ran (tests only).
    #[arg(long, hide = true)]
    fake_journal: Option<PathBuf>,
}

fn default_capacity() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32 * 2)
        .unwrap_or(4)
}

fn runtime(
    kind: Option<RuntimeKind>,
    journal: Option<PathBuf>,
) -> anyhow::Result<Arc<dyn ContainerRuntime>> {
    match kind {
        Some(RuntimeKind::Fake) => Ok(Arc::new(FakeRuntime::new(journal))),
        None => anyhow::bail!("this build of sluice has no container runtime yet; steps run only in real containers, so no worker can start"),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "worker".into())
}

async fn ctrl_c() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}

async fn listen(addr: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

pub async fn server(a: ServerArgs) -> anyhow::Result<u8> {
    let listener = listen(&a.addr).await?;
    println!("sluice server on http://{}", listener.local_addr()?);
    sluice_server::serve(a.opts.config(), listener, ctrl_c()).await?;
    Ok(0)
}

pub async fn up(a: UpArgs) -> anyhow::Result<u8> {
    let rt = match runtime(a.runtime, None) {
        Ok(rt) => Some(rt),
        Err(e) => {
            tracing::warn!("{e:#}; serving the API without a worker");
            None
        }
    };
    let listener = listen(&a.addr).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let cfg = a.opts.config();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut rx1 = stop_rx.clone();
    let server = tokio::spawn(sluice_server::serve(cfg.clone(), listener, async move {
        let _ = rx1.wait_for(|s| *s).await;
    }));
    let worker = rt.map(|rt| {
        let wcfg = WorkerConfig {
            server: url.clone(),
            token: cfg.token.clone(),
            name: hostname(),
            capacity: a.capacity,
            data_dir: cfg.data_dir.join("worker"),
            poll_wait: Duration::from_secs(20),
            drain: Duration::from_secs(10),
        };
        let mut rx2 = stop_rx.clone();
        tokio::spawn(sluice_worker::run(wcfg, rt, async move {
            let _ = rx2.wait_for(|s| *s).await;
        }))
    });
    println!("sluice is up on {url} (data in {})", cfg.data_dir.display());
    ctrl_c().await;
    let _ = stop_tx.send(true);
    if let Some(w) = worker {
        w.await??;
    }
    server.await??;
    Ok(0)
}

pub async fn worker(a: WorkerArgs) -> anyhow::Result<u8> {
    let rt = runtime(a.runtime, a.fake_journal)?;
    let cfg = WorkerConfig {
        server: a.conn.server,
        token: a.conn.token,
        name: a.name.unwrap_or_else(hostname),
        capacity: a.capacity,
        data_dir: a.data_dir,
        poll_wait: Duration::from_secs(20),
        drain: Duration::from_secs(10),
    };
    sluice_worker::run(cfg, rt, ctrl_c()).await?;
    Ok(0)
}
