//! `sluice up`, `sluice server` and `sluice worker`.

use super::DEFAULT_ADDR;
use anyhow::Context;
use clap::{Args, ValueEnum};
use sluice_server::scheduler::SchedulerConfig;
use sluice_server::ServerConfig;
use sluice_spec::NetworkMode;
use sluice_worker::images::registry::Registries;
use sluice_worker::images::store::ImageStore;
use sluice_worker::network::{BridgeConfig, Bridges};
use sluice_worker::runtime::embedded::cgroups::Limits;
use sluice_worker::runtime::embedded::disk::DiskPolicy;
use sluice_worker::runtime::embedded::userns::{self, IdMap};
use sluice_worker::runtime::embedded::{EmbeddedConfig, EmbeddedRuntime, NetworkWiring};
use sluice_worker::runtime::fake::FakeRuntime;
use sluice_worker::runtime::ContainerRuntime;
use sluice_worker::WorkerConfig;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Which container runtime a worker uses.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug, Default)]
pub enum RuntimeKind {
    /// sluice's own, built in: overlay root, namespaces, cgroups (needs root).
    #[default]
    Embedded,
    /// Test double that starts no container (for sluice's own tests and control-plane benchmarks).
    #[value(hide = true)]
    Fake,
}

pub(super) fn parse_size(s: &str) -> Result<u64, String> {
    sluice_spec::parse_bytes(s).ok_or_else(|| format!("`{s}` is not a size such as 512Mi or 2Gi"))
}

fn parse_cores(s: &str) -> Result<u64, String> {
    sluice_spec::parse_cpu(s).ok_or_else(|| format!("`{s}` is not cores such as 2, 0.5 or 500m"))
}

/// Whether a worker's containers get a user namespace.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug, Default)]
pub enum UsernsMode {
    /// Where the kernel allows it (user namespaces on, Linux 5.19 or later); else off, said once.
    #[default]
    Auto,
    On,
    Off,
}

/// How a worker runs containers.
#[derive(Args, Clone)]
pub struct RuntimeOpts {
    #[arg(long, value_enum, default_value_t, hide = true)]
    runtime: RuntimeKind,
    #[command(flatten)]
    insecure: super::Insecure,
    /// Memory limit of steps that set none (default: no limit, as Docker has it).
    #[arg(long, env = "SLUICE_DEFAULT_MEMORY", value_parser = parse_size)]
    default_memory: Option<u64>,
    /// CPU limit of steps that set none, in cores (default: no limit).
    #[arg(long, env = "SLUICE_DEFAULT_CPU", value_parser = parse_cores)]
    default_cpu: Option<u64>,
    /// Most processes one step may have (contains fork bombs).
    #[arg(long, env = "SLUICE_PIDS_LIMIT", default_value_t = 4096)]
    pids_limit: u64,
    /// Keep each container's writes (its upper directory) after it ends, for debugging.
    #[arg(long)]
    keep_containers: bool,
    /// Disk a step may write (its writable layer and outputs) when it sets no `resources.disk`
    /// (default: no limit, as Docker has it).
    #[arg(long, env = "SLUICE_DEFAULT_DISK", value_parser = parse_size)]
    default_disk: Option<u64>,
    /// Free space kept on the worker's data filesystem: under it, the step using the most disk
    /// is stopped.
    #[arg(long, env = "SLUICE_DISK_RESERVE", default_value = "1Gi", value_parser = parse_size)]
    disk_reserve: u64,
    /// Let steps that say `seccomp: unconfined` run without Docker's default seccomp profile.
    #[arg(long, env = "SLUICE_ALLOW_UNCONFINED")]
    allow_unconfined: bool,
    /// How long a stored image tag is trusted before it is checked against its registry again
    /// (a moved tag is pulled, and results cached for the old image are not reused).
    #[arg(long, env = "SLUICE_TAG_TTL", default_value = "30s", value_parser = parse_duration)]
    tag_ttl: Duration,
    /// Bytes of each step attempt's log shipped as they come; past them the middle is dropped
    /// and the last lines kept, behind a marker line.
    #[arg(long, env = "SLUICE_LOG_LIMIT", default_value = "64Mi", value_parser = parse_size)]
    log_limit: u64,
    /// Run each step in a user namespace, its root mapped to unprivileged host ids (as Docker's
    /// userns-remap): `auto` where the kernel allows (the default), `on`, or `off`.
    #[arg(long, env = "SLUICE_USERNS", value_enum, default_value_t)]
    userns: UsernsMode,
    /// The network of steps that choose none: `bridge` (their run's network, out through NAT,
    /// as Docker's default; the default for a root worker) or `none` (loopback only; the
    /// default for a rootless one, which cannot make bridges).
    #[arg(long, env = "SLUICE_DEFAULT_NETWORK", value_parser = parse_default_network)]
    default_network: Option<NetworkMode>,
    /// The pool each run's network on this host is cut from, a /24 per run (each worker of a
    /// host claims its own /24s in it).
    #[arg(long, env = "SLUICE_BRIDGE_SUBNET", default_value = sluice_worker::network::DEFAULT_SUBNET)]
    bridge_subnet: sluice_worker::network::ipam::Net,
    /// A resolver bridged steps use (repeat for more); by default the host's, its loopback
    /// ones replaced by public resolvers as Docker does.
    #[arg(long = "dns", env = "SLUICE_DNS", value_delimiter = ',')]
    dns: Vec<std::net::IpAddr>,
    /// A JSON line per task the fake runtime ran (tests only).
    #[arg(long, hide = true)]
    fake_journal: Option<PathBuf>,
}

/// sluice's data directory: the server's database and files at its top, a worker's files
/// (images, containers, task scratch, artifacts) in its `worker/`. Every command that takes
/// `--data-dir` means this one directory.
pub fn default_data_dir() -> PathBuf {
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/share/sluice"),
        None => PathBuf::from(".sluice"),
    }
}

/// Where a worker keeps its files within sluice's data directory.
pub fn worker_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("worker")
}

/// `NAME=VALUE`, a label as [`sluice_spec::labels::label_problem`] allows it.
pub(super) fn parse_label(s: &str) -> Result<(String, String), String> {
    let Some((k, v)) = s.split_once('=') else {
        return Err(format!("label `{s}` must be NAME=VALUE"));
    };
    match sluice_spec::labels::label_problem(k, v) {
        Some(why) => Err(why),
        None => Ok((k.to_string(), v.to_string())),
    }
}

pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    sluice_spec::parse_duration_ms(s)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{s}` is not a duration such as 30s or 2m"))
}

#[derive(Args, Clone)]
pub struct ServerOpts {
    /// Where the database (and, with `up`, the worker's files) live.
    #[arg(long, env = "SLUICE_DATA_DIR", default_value_os_t = default_data_dir())]
    data_dir: PathBuf,
    /// Keep state in this PostgreSQL database (`postgres://USER:PASSWORD@HOST/DB`, or
    /// `postgres:///DB?host=/run/postgresql` over a unix socket) instead of SQLite under the data
    /// directory. The data directory still holds the secrets key.
    #[arg(long, env = "SLUICE_DATABASE", hide_env_values = true)]
    database: Option<String>,
    /// With several servers over one PostgreSQL database: the URL the others reach this one at
    /// when it schedules (default: the address it listens on).
    #[arg(long, env = "SLUICE_ADVERTISE_URL")]
    advertise_url: Option<String>,
    /// Keep artifacts in an S3-compatible object store, `s3://BUCKET/PREFIX`, with options
    /// `?endpoint=http://HOST:PORT&region=R&path_style=true` as needed. Credentials are read as
    /// the AWS SDKs read them (AWS_ACCESS_KEY_ID…, AWS_PROFILE and ~/.aws), by the server and by
    /// each worker for itself; workers are told the URL when they register.
    #[arg(long, env = "SLUICE_ARTIFACTS")]
    artifacts: Option<String>,
    /// A lease not renewed by its worker within this time lapses: the worker stops the task.
    #[arg(long, env = "SLUICE_LEASE_TTL", default_value = "30s", value_parser = parse_duration)]
    lease_ttl: Duration,
    /// How long after a lease lapsed its task may run elsewhere (the time its worker has to stop
    /// it, so that it never runs twice at once).
    #[arg(long, env = "SLUICE_KILL_GRACE", default_value = "10s", value_parser = parse_duration)]
    kill_grace: Duration,
    /// How often workers renew their leases.
    #[arg(long, env = "SLUICE_HEARTBEAT", default_value = "1s", value_parser = parse_duration)]
    heartbeat: Duration,
    /// An admin token, kept in memory only: with it (or with tokens made by `sluice tokens
    /// create`) every API call needs a token.
    #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Serve beyond loopback with no authentication (refused otherwise).
    #[arg(long, env = "SLUICE_INSECURE")]
    insecure: bool,
    /// A host name the server answers to (besides localhost and IP addresses), as browsers
    /// name it; `*` for any. Other names are refused (DNS rebinding).
    #[arg(
        long = "allowed-host",
        env = "SLUICE_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    allowed_hosts: Vec<String>,
    #[command(flatten)]
    policy: PolicyOpts,
    /// Serve over TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "SLUICE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "SLUICE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Largest pipeline file accepted (request bodies may be about twice this).
    #[arg(long, env = "SLUICE_MAX_PIPELINE_SIZE", default_value = "4Mi", value_parser = parse_size)]
    max_pipeline_size: u64,
    /// Largest input artifact a run may be given (`sluice submit --input`): a file, or a
    /// directory's tar stream.
    #[arg(long, env = "SLUICE_MAX_UPLOAD", default_value = "16Gi", value_parser = parse_size)]
    max_upload: u64,
    /// Most tasks one run may plan, every loop expanded.
    #[arg(long, env = "SLUICE_MAX_TASKS", default_value_t = sluice_spec::Limits::default().max_tasks)]
    max_tasks: usize,
    /// Most items one loop may have.
    #[arg(long, env = "SLUICE_MAX_LOOP_ITEMS", default_value_t = sluice_spec::Limits::default().max_loop_items)]
    max_loop_items: usize,
}

/// What pipelines may ask of the hosts their steps run on (the admission policy). By default a
/// step may mount no host path, not share the host's network and not run unconfined.
#[derive(Args, Clone)]
pub struct PolicyOpts {
    /// A host directory steps may mount (`hostPath:` at or under it); repeat for more.
    #[arg(
        long = "allow-host-path",
        env = "SLUICE_ALLOW_HOST_PATHS",
        value_delimiter = ','
    )]
    host_paths: Vec<PathBuf>,
    /// Let steps share the host's network (`network: host`).
    #[arg(long, env = "SLUICE_ALLOW_HOST_NETWORK")]
    allow_host_network: bool,
    /// The only registries images may come from (host[:port], `docker.io` for Docker Hub).
    #[arg(
        long = "allow-registry",
        env = "SLUICE_ALLOW_REGISTRIES",
        value_delimiter = ','
    )]
    allowed_registries: Vec<String>,
    /// The only named volumes steps may mount.
    #[arg(
        long = "allow-volume",
        env = "SLUICE_ALLOW_VOLUMES",
        value_delimiter = ','
    )]
    allowed_volumes: Vec<String>,
    /// Most CPU one step may ask for, in cores.
    #[arg(long, env = "SLUICE_MAX_STEP_CPU", value_parser = parse_cores)]
    max_step_cpu: Option<u64>,
    /// Most memory one step may ask for.
    #[arg(long, env = "SLUICE_MAX_STEP_MEMORY", value_parser = parse_size)]
    max_step_memory: Option<u64>,
    /// Most disk one step may ask for.
    #[arg(long, env = "SLUICE_MAX_STEP_DISK", value_parser = parse_size)]
    max_step_disk: Option<u64>,
    /// Most GPUs one step may ask for.
    #[arg(long, env = "SLUICE_MAX_STEP_GPU")]
    max_step_gpu: Option<u32>,
}

impl PolicyOpts {
    fn policy(&self, unconfined: bool) -> anyhow::Result<sluice_server::policy::Policy> {
        for p in &self.host_paths {
            anyhow::ensure!(
                sluice_sdk::beneath::plain_absolute(p),
                "--allow-host-path {}: give an absolute path with no `.` or `..`",
                p.display()
            );
        }
        Ok(sluice_server::policy::Policy {
            host_paths: self.host_paths.clone(),
            host_network: self.allow_host_network,
            unconfined,
            registries: (!self.allowed_registries.is_empty())
                .then(|| self.allowed_registries.clone()),
            volumes: (!self.allowed_volumes.is_empty()).then(|| self.allowed_volumes.clone()),
            max_cpu_millis: self.max_step_cpu,
            max_memory_bytes: self.max_step_memory,
            max_disk_bytes: self.max_step_disk,
            max_gpu: self.max_step_gpu,
        })
    }
}

impl ServerOpts {
    /// `tag_ttl`: how long the digest a worker found for an image tag is trusted to serve cached
    /// results without asking a worker. `unconfined`: pipelines may ask for `seccomp: unconfined`.
    fn config(&self, tag_ttl: Duration, unconfined: bool) -> anyhow::Result<ServerConfig> {
        Ok(ServerConfig {
            data_dir: self.data_dir.clone(),
            database: self.database.clone(),
            advertise_url: self.advertise_url.clone(),
            artifacts: self.artifacts.clone(),
            max_upload: Some(self.max_upload),
            upload_idle: None,
            uploads_at_once: None,
            scheduler: SchedulerConfig {
                lease_ttl_ms: self.lease_ttl.as_millis() as i64,
                kill_grace_ms: self.kill_grace.as_millis() as i64,
                heartbeat_interval_ms: self.heartbeat.as_millis() as u64,
                tag_ttl_ms: tag_ttl.as_millis() as i64,
                limits: sluice_spec::Limits {
                    yaml: sluice_spec::yaml::YamlLimits {
                        max_bytes: self.max_pipeline_size.min(usize::MAX as u64) as usize,
                        ..Default::default()
                    },
                    max_tasks: self.max_tasks,
                    max_loop_items: self.max_loop_items,
                },
                ..Default::default()
            },
            token: self.token.clone(),
            insecure: self.insecure,
            allowed_hosts: self.allowed_hosts.clone(),
            tls: match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Some(sluice_server::tls::TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                _ => None,
            },
            policy: self.policy.policy(unconfined)?,
        })
    }
}

#[derive(Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "SLUICE_ADDR", default_value = DEFAULT_ADDR)]
    addr: String,
    /// How long the image digest a worker found for a tag is trusted to serve cached results
    /// without asking a worker.
    #[arg(long, env = "SLUICE_TAG_TTL", default_value = "30s", value_parser = parse_duration)]
    tag_ttl: Duration,
    /// Admit pipelines whose steps say `seccomp: unconfined` (their workers must allow it too).
    #[arg(long, env = "SLUICE_ALLOW_UNCONFINED")]
    allow_unconfined: bool,
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
    /// Serve the API only, with no built-in worker (workers join with `sluice worker`).
    #[arg(long)]
    no_worker: bool,
    /// A label of the built-in worker, `NAME=VALUE`, for steps' `nodeSelector` (repeatable).
    #[arg(short = 'l', long = "label", value_name = "NAME=VALUE", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    #[command(flatten)]
    rt: RuntimeOpts,
}

#[derive(Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    conn: super::Conn,
    /// sluice's data directory: the worker keeps its images, task scratch files and output
    /// artifacts in its `worker/` (as `sluice up` does).
    #[arg(long, env = "SLUICE_DATA_DIR", default_value_os_t = default_data_dir())]
    data_dir: PathBuf,
    /// How many tasks run at once.
    #[arg(long, default_value_t = default_capacity())]
    capacity: u32,
    /// The worker's name (default: the host name).
    #[arg(long)]
    name: Option<String>,
    /// A label, `NAME=VALUE` (`gpu=a100`, `zone=b`): steps whose `nodeSelector` names it run
    /// only on workers that have it (repeatable).
    #[arg(short = 'l', long = "label", value_name = "NAME=VALUE", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    #[command(flatten)]
    rt: RuntimeOpts,
}

fn default_capacity() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32 * 2)
        .unwrap_or(4)
}

fn parse_default_network(s: &str) -> Result<NetworkMode, String> {
    match s.parse::<NetworkMode>()? {
        NetworkMode::Host => Err("a worker cannot put every step on the host's network: a step asks for `network: host` itself, where the server allows it".into()),
        m => Ok(m),
    }
}

/// A worker's container runtime, and its bridge network (to take down when the worker stops).
type Runtime = (Arc<dyn ContainerRuntime>, Option<Bridges>);

/// The bridge network of a root worker whose steps may use it.
fn bridges(o: &RuntimeOpts, worker_dir: &Path) -> anyhow::Result<(NetworkMode, Option<Bridges>)> {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    let root = unsafe { libc::geteuid() } == 0;
    let default = o.default_network.unwrap_or(match root {
        true => NetworkMode::Bridge,
        false => NetworkMode::None,
    });
    if !root {
        if default == NetworkMode::Bridge {
            anyhow::bail!("a rootless worker cannot make bridges: start it with --default-network none, or as root");
        }
        return Ok((default, None));
    }
    std::fs::create_dir_all(worker_dir)
        .with_context(|| format!("cannot create {}", worker_dir.display()))?;
    let cfg = BridgeConfig {
        subnet: o.bridge_subnet,
        dns: o.dns.clone(),
        ..Default::default()
    };
    match Bridges::start(worker_dir, cfg) {
        Ok(b) => Ok((default, Some(b))),
        Err(e) if default == NetworkMode::None => {
            tracing::warn!("steps cannot ask for `network: bridge` here: {e}");
            Ok((default, None))
        }
        Err(e) => Err(anyhow::anyhow!(e).context("cannot set up the bridge network")),
    }
}

fn runtime(o: &RuntimeOpts, worker_dir: &Path) -> anyhow::Result<Runtime> {
    match o.runtime {
        RuntimeKind::Fake => Ok((Arc::new(FakeRuntime::new(o.fake_journal.clone())), None)),
        RuntimeKind::Embedded => {
            let (default_network, bridges) = bridges(o, worker_dir)?;
            let store = Arc::new(
                ImageStore::open(&worker_dir.join("images"))
                    .context("cannot open the worker's image store")?,
            );
            let registries = Arc::new(
                Registries::new(store.clone(), o.insecure.registries.clone())
                    .with_mirrors(o.insecure.mirrors.clone()),
            );
            let cfg = EmbeddedConfig {
                worker_dir: worker_dir.to_path_buf(),
                helper: std::env::current_exe().context("cannot find the sluice binary")?,
                defaults: Limits {
                    memory_bytes: o.default_memory,
                    cpu_millis: o.default_cpu,
                    pids: Some(o.pids_limit),
                },
                keep: o.keep_containers,
                tag_ttl: o.tag_ttl,
                allow_unconfined: o.allow_unconfined,
                disk: DiskPolicy {
                    default_limit: o.default_disk,
                    reserve: o.disk_reserve,
                    ..Default::default()
                },
                wiring: bridges
                    .clone()
                    .map(|b| Arc::new(b) as Arc<dyn NetworkWiring>),
                default_network,
                userns: match o.userns {
                    UsernsMode::Off => None,
                    UsernsMode::On => Some(IdMap::DEFAULT),
                    UsernsMode::Auto => match userns::supported() {
                        Ok(()) => Some(IdMap::DEFAULT),
                        Err(e) => {
                            tracing::warn!("steps run as host root, without a user namespace: {e}");
                            None
                        }
                    },
                },
            };
            Ok((
                Arc::new(
                    EmbeddedRuntime::new(cfg, store, registries)
                        .context("cannot start the embedded container runtime")?,
                ),
                bridges,
            ))
        }
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
    let cfg = a.opts.config(a.tag_ttl, a.allow_unconfined)?;
    if cfg
        .database
        .as_deref()
        .is_some_and(sluice_server::store::is_postgres)
    {
        // One of several servers over the database: it schedules once it holds the lock.
        let scheme = if cfg.tls.is_some() { "https" } else { "http" };
        println!("sluice server on {scheme}://{}", listener.local_addr()?);
        sluice_server::serve(cfg, listener, ctrl_c()).await?;
        return Ok(0);
    }
    let server = sluice_server::Server::start(cfg)
        .await
        .context("cannot start the server")?;
    server.check_exposure(listener.local_addr()?)?;
    println!(
        "sluice server on {}://{}",
        server.scheme(),
        listener.local_addr()?
    );
    server.serve(listener, ctrl_c()).await?;
    Ok(0)
}

pub async fn up(a: UpArgs) -> anyhow::Result<u8> {
    let rt = match a.no_worker {
        true => None,
        false => Some(runtime(&a.rt, &worker_dir(&a.opts.data_dir))?),
    };
    let listener = listen(&a.addr).await?;
    let cfg = a.opts.config(a.rt.tag_ttl, a.rt.allow_unconfined)?;
    if cfg.database.is_some() {
        anyhow::bail!("`sluice up` keeps its state in SQLite under --data-dir; with a --database, run `sluice server --database …` (as many as you like) and `sluice worker`");
    }
    // Nothing is said to be up before the store is open and the active runs are taken up.
    let ready = sluice_server::Server::start(cfg.clone())
        .await
        .context("cannot start the server")?;
    ready.check_exposure(listener.local_addr()?)?;
    let worker_token = ready.worker_token();
    let url = format!("{}://{}", ready.scheme(), listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut rx1 = stop_rx.clone();
    let mut server = tokio::spawn(ready.serve(listener, async move {
        let _ = rx1.wait_for(|s| *s).await;
    }));
    let (rt, bridges) = match rt {
        Some((rt, b)) => (Some(rt), b),
        None => (None, None),
    };
    let worker = rt.map(|rt| {
        let wcfg = WorkerConfig {
            server: url.clone(),
            token: Some(worker_token),
            name: hostname(),
            capacity: a.capacity,
            labels: a.labels.iter().cloned().collect(),
            data_dir: worker_dir(&cfg.data_dir),
            poll_wait: Duration::from_secs(20),
            drain: Duration::from_secs(10),
            log_policy: sluice_worker::LogPolicy {
                limit_bytes: a.rt.log_limit,
            },
            // Over TLS the built-in worker trusts the server's own certificate.
            ca_cert: cfg.tls.as_ref().map(|t| t.cert.clone()),
            artifact_store: None,
        };
        let mut rx2 = stop_rx.clone();
        tokio::spawn(sluice_worker::run(wcfg, rt, async move {
            let _ = rx2.wait_for(|s| *s).await;
        }))
    });
    println!("sluice is up on {url} (data in {})", cfg.data_dir.display());
    // Until asked to stop, or until the server fails (then nothing is up: say so and exit).
    let failed = tokio::select! {
        _ = ctrl_c() => None,
        r = &mut server => Some(match r {
            Ok(Ok(())) => anyhow::anyhow!("the server stopped"),
            Ok(Err(e)) => e,
            Err(e) => anyhow::anyhow!("the server crashed: {e}"),
        }),
    };
    let _ = stop_tx.send(true);
    if let Some(w) = worker {
        w.await??;
    }
    if let Some(b) = bridges {
        b.shutdown().await;
    }
    if let Some(e) = failed {
        return Err(e.context("sluice is down"));
    }
    server.await??;
    Ok(0)
}

pub async fn worker(a: WorkerArgs) -> anyhow::Result<u8> {
    let dir = worker_dir(&a.data_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (rt, bridges) = runtime(&a.rt, &dir)?;
    let cfg = WorkerConfig {
        server: a.conn.server,
        token: a.conn.token,
        name: a.name.unwrap_or_else(hostname),
        capacity: a.capacity,
        labels: a.labels.into_iter().collect(),
        data_dir: dir,
        poll_wait: Duration::from_secs(20),
        drain: Duration::from_secs(10),
        log_policy: sluice_worker::LogPolicy {
            limit_bytes: a.rt.log_limit,
        },
        ca_cert: a.conn.ca_cert,
        artifact_store: None,
    };
    let ran = sluice_worker::run(cfg, rt, ctrl_c()).await;
    if let Some(b) = bridges {
        b.shutdown().await;
    }
    ran?;
    Ok(0)
}
