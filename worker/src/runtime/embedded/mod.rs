//! sluice's own container runtime, built into the binary: each task runs in an OCI-style container
//! (overlay root over the image's layers, its own mount/PID/UTS/IPC/network namespaces, cgroup
//! limits, Docker's capability set) with no daemon and no external runtime.
//!
//! The worker (a tokio process) never forks to make a container: it writes the container's
//! [`config::ContainerConfig`] to a state directory and starts the sluice binary itself as a
//! single-threaded helper ([`shim`]), which forks the container's first process ([`init`]).
//! Mounts live only in the container's mount namespace, so they vanish with its last process;
//! what outlives a container (its cgroup and state directory) is removed when it ends, and by the
//! next worker on the same directory when a worker crashed.

pub mod cgroups;
pub mod config;
pub mod disk;
mod gpu;
mod init;
mod logs;
pub mod protocol;
pub mod seccomp;
pub mod shim;
mod user;
pub mod userns;

use super::{BoxFuture, ContainerRuntime, Exit, Io, RunRequest, RuntimeError, Started};
use crate::images::registry::Registries;
use crate::images::store::ImageStore;
use cgroups::{Cgroups, Group, Limits};
use config::{BindMount, TaskMounts};
use protocol::{FromShim, ToShim};
use sluice_spec::NetworkMode;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// How a worker's embedded runtime is set up.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// The worker's directory: container state goes under `containers/`, named volumes under
    /// `volumes/`.
    pub worker_dir: PathBuf,
    /// The sluice binary, started as each container's helper.
    pub helper: PathBuf,
    /// Limits for steps that set none (`pids` always applies).
    pub defaults: Limits,
    /// Keep each container's upper directory (its writes) after it ends, for debugging.
    pub keep: bool,
    /// How long a stored tag is trusted before it is checked against its registry again.
    pub tag_ttl: std::time::Duration,
    /// Steps may ask to run without the default seccomp profile (`seccomp: unconfined`).
    pub allow_unconfined: bool,
    /// Disk steps may use, and the free space the worker keeps.
    pub disk: disk::DiskPolicy,
    /// What wires a container's network from the host side, for the modes it handles (the
    /// bridge network, [`crate::network::Bridges`]; `none` and `host` need no wiring).
    pub wiring: Option<Arc<dyn NetworkWiring>>,
    /// The network of steps that choose none.
    pub default_network: NetworkMode,
    /// Run containers in a user namespace with these host ids (root inside is not root
    /// outside); `None` runs them as host root, as Docker does without `userns-remap`.
    pub userns: Option<userns::IdMap>,
}

/// Sets up a container's network from the host side, between its namespaces existing and its
/// program starting (a bridge: a veth pair, one end made in the container's namespace).
///
/// A wired container is attached when it is created (its address is known before its `/etc`
/// files are written), wired once its namespaces exist, and detached when it is removed.
pub trait NetworkWiring: Send + Sync + std::fmt::Debug {
    /// Whether containers with this network need wiring (it costs a round trip at start).
    fn wires(&self, mode: NetworkMode) -> bool;
    /// Reserves the container's place on run `run`'s network (`hostname`: the name other steps
    /// reach it by). Blocking.
    fn attach(
        &self,
        _container: &str,
        _run: &str,
        _hostname: &str,
        _mode: NetworkMode,
    ) -> Result<Attachment, String> {
        Ok(Attachment::default())
    }
    /// Wires the container whose first process is `pid` (its namespaces exist, its program has
    /// not started). Blocking. An error stops the container before it starts, with the message.
    fn wire(&self, container: &str, pid: i32, mode: NetworkMode) -> Result<(), String>;
    /// The container is gone: gives back what [`NetworkWiring::attach`] reserved.
    fn detach(&self, _container: &str) {}
}

/// A container's place on a network, known before it starts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attachment {
    /// Its address and prefix length.
    pub address: Option<(std::net::Ipv4Addr, u8)>,
    /// The other steps of its run it can reach, by host name (its `/etc/hosts`).
    pub peers: Vec<(std::net::Ipv4Addr, String)>,
    /// Its `/etc/resolv.conf`.
    pub resolv_conf: Option<String>,
}

pub struct EmbeddedRuntime {
    cfg: EmbeddedConfig,
    store: Arc<ImageStore>,
    registries: Arc<Registries>,
    /// None for a rootless worker, which has no cgroup of its own to give containers.
    cgroups: Option<Cgroups>,
    /// Run by an ordinary user: each container in a user namespace of that user's.
    rootless: Option<userns::Rootless>,
    gpus: gpu::Gpus,
    disk: Arc<disk::DiskWatch>,
}

fn failed(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Failed(e.to_string())
}

/// Where a worker's containers keep their state.
pub fn containers_dir(worker_dir: &Path) -> PathBuf {
    worker_dir.join("containers")
}

/// The image layers used by containers that exist now under `worker_dir` (running, or left by a
/// crashed worker): an image prune must keep them.
pub fn layers_in_use(worker_dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(containers_dir(worker_dir))
        .into_iter()
        .flatten()
        .flatten()
    {
        let Ok(bytes) = std::fs::read(e.path().join("config.json")) else {
            continue;
        };
        if let Ok(c) = serde_json::from_slice::<config::ContainerConfig>(&bytes) {
            for l in c.rootfs.lower {
                if let Some(hex) = Path::new(&l).file_name() {
                    out.push(format!("sha256:{}", hex.to_string_lossy()));
                }
            }
        }
    }
    out
}

impl EmbeddedRuntime {
    /// Sets the runtime up on this host and removes whatever a crashed predecessor left in the
    /// same worker directory.
    pub fn new(
        cfg: EmbeddedConfig,
        store: Arc<ImageStore>,
        registries: Arc<Registries>,
    ) -> Result<EmbeddedRuntime, RuntimeError> {
        let mut cfg = cfg;
        let rootless = (!nix::unistd::geteuid().is_root()).then(userns::Rootless::detect);
        if let Some(r) = &rootless {
            match r.sub {
                Some((u, g, n)) => tracing::info!(uid = r.uid, subuid = u, subgid = g, count = n, "rootless: containers map this user to root and its subordinate ids to the rest"),
                None => tracing::warn!(uid = r.uid, "rootless: this user has no range in /etc/subuid and /etc/subgid (or no newuidmap): containers map it to root and nothing else, so steps run as root only"),
            }
            // The container's user namespace is this user's own: nothing to remap.
            cfg.userns = None;
            userns::rootless_supported().map_err(|e| {
                failed(format!(
                    "rootless containers cannot run here: {e} (run sluice as root, or `sluice up --no-worker` to serve the API and UI only)"
                ))
            })?;
        }
        if cfg.userns.is_some() {
            userns::supported().map_err(|e| {
                failed(format!(
                    "containers cannot run in user namespaces here: {e} (start the worker with --userns=off)"
                ))
            })?;
        }
        let dir = containers_dir(&cfg.worker_dir);
        // What all containers share: their overlays' and /etc files' mount points (each
        // container mounts there in its own namespace) and an empty layer for images with none.
        for d in [".rootfs", ".etc", ".empty"] {
            std::fs::create_dir_all(dir.join(d))
                .map_err(|e| failed(format!("cannot create {}: {e}", dir.join(d).display())))?;
        }
        // Each worker directory gets its own cgroup parent, so that workers sharing a host never
        // touch each other's containers.
        let canonical = std::fs::canonicalize(&cfg.worker_dir).unwrap_or(cfg.worker_dir.clone());
        let digest = crate::images::store::sha256_hex(canonical.to_string_lossy().as_bytes());
        let scope = &digest.trim_start_matches("sha256:")[..12];
        let cgroups = match rootless.is_some() {
            false => Some(
                Cgroups::detect(&Path::new("sluice").join(scope))
                    .map_err(|e| failed(format!("cannot use this host's cgroups: {e}")))?,
            ),
            true => match Cgroups::delegated(Path::new(scope)) {
                Ok(Some(c)) => {
                    let lacking = c.lacking();
                    let dir = c.delegated_dir().unwrap_or_default();
                    if lacking.is_empty() {
                        tracing::info!(cgroup = %dir.display(), "rootless: steps get their limits in the cgroup this user was delegated");
                    } else {
                        tracing::warn!(cgroup = %dir.display(), "rootless: the cgroup this user was delegated has no {} controller: steps run without those limits", lacking.join(", "));
                    }
                    Some(c)
                }
                Ok(None) | Err(_) => {
                    tracing::warn!(
                        "rootless: steps run without memory, CPU or PIDs limits (this user has no cgroup of its own to give them: start the worker in a delegated cgroup v2 group, as `systemd-run --user -p Delegate=yes` makes, or as root)"
                    );
                    None
                }
            },
        };
        let disk = disk::DiskWatch::start(cfg.disk, &cfg.worker_dir);
        let rt = EmbeddedRuntime {
            cfg,
            store,
            registries,
            cgroups,
            rootless,
            gpus: gpu::Gpus::detect(),
            disk,
        };
        let cleaned = rt.clean_leftovers();
        if cleaned > 0 {
            tracing::warn!(
                containers = cleaned,
                "removed containers a previous worker left behind"
            );
        }
        tracing::info!(
            cgroup_version = rt.cgroups.as_ref().map_or(0, |c| c.version()),
            rootless = rt.rootless.is_some(),
            gpus = rt.gpus.count(),
            "embedded container runtime ready"
        );
        Ok(rt)
    }

    /// Kills and removes every container of this worker directory that is not running under this
    /// process: left there by a worker that crashed. Returns how many it removed.
    fn clean_leftovers(&self) -> usize {
        let mut ids: Vec<String> = std::fs::read_dir(containers_dir(&self.cfg.worker_dir))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        for id in self.cgroups.iter().flat_map(|c| c.leftovers()) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        for id in &ids {
            if let Some(c) = &self.cgroups {
                let group = c.group(id);
                group.kill_all();
                group.remove();
            }
            let _ = std::fs::remove_dir_all(containers_dir(&self.cfg.worker_dir).join(id));
        }
        ids.len()
    }

    /// Lays out a container's state directory, cgroup and config; nothing runs yet.
    fn create(
        &self,
        id: &str,
        req: &RunRequest,
        gpus: Option<gpu::GpuLease>,
    ) -> Result<Container, RuntimeError> {
        let state = containers_dir(&self.cfg.worker_dir).join(id);
        let mut c = Container {
            state: state.clone(),
            group: None,
            keep: self.cfg.keep,
            _gpus: gpus,
            network: None,
            address: None,
        };
        if req.spec.seccomp_unconfined && !self.cfg.allow_unconfined {
            return Err(failed(
                "the step asks for `seccomp: unconfined`, which this worker does not allow (an operator can allow it with `--allow-unconfined`)",
            ));
        }
        let full = crate::images::reference::parse(&req.spec.image)
            .map_err(failed)?
            .to_string();
        let image = self.store.get(&full).map_err(failed)?.ok_or_else(|| {
            failed(format!(
                "image `{}` is not in the worker's store",
                req.spec.image
            ))
        })?;
        let layers = image
            .layers
            .iter()
            .map(|d| self.store.layer_path(d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(failed)?;
        for d in ["upper", "work"] {
            std::fs::create_dir_all(state.join(d))
                .map_err(|e| failed(format!("cannot create {}: {e}", state.join(d).display())))?;
        }
        let mut mounts = TaskMounts {
            params_dir: req.spec.writes_params().then(|| req.params_dir.clone()),
            artifacts_dir: (!req.spec.output_artifacts.is_empty())
                .then(|| req.artifacts_dir.clone()),
            script: req.script.clone(),
            inputs: req.inputs.clone(),
            inputs_root: Some(req.artifacts_root.clone()),
            ..Default::default()
        };
        for v in &req.spec.volumes {
            mounts.extra.push(self.volume(v)?);
        }
        for (host, target) in &req.secret_files {
            mounts.extra.push(BindMount {
                source: host.clone(),
                target: target.clone(),
                readonly: true,
                beneath: None,
            });
        }
        if let Some(lease) = &c._gpus {
            let (binds, env) = self.gpus.mounts(lease);
            mounts.extra.extend(binds);
            mounts.extra_env.extend(env);
        }
        let mut cfg = config::build(id, &req.spec, &image.config, &layers, &state, &mounts)
            .map_err(failed)?;
        let network = self.network_of(&req.spec);
        cfg.network = network;
        // The host's network is owned by the host's user namespace: a step sharing it (or a
        // GPU's devices) runs as host root, as Kubernetes refuses `hostUsers: false` beside
        // `hostNetwork`.
        cfg.userns = self
            .cfg
            .userns
            .filter(|_| network != NetworkMode::Host && req.spec.resources.gpu == 0);
        let wiring = self.cfg.wiring.as_ref().filter(|w| w.wires(network));
        cfg.await_wiring = wiring.is_some();
        match (network, wiring) {
            (NetworkMode::Host, _) => {
                if let Ok(r) = std::fs::read_to_string("/etc/resolv.conf") {
                    cfg.etc.push(("resolv.conf".into(), r));
                }
            }
            (NetworkMode::Bridge, None) => {
                return Err(failed(
                    "the step asks for `network: bridge`, and this worker has no bridge network (it was started with --default-network none)",
                ))
            }
            (_, Some(w)) => {
                let a = w
                    .attach(id, &req.run_id, &req.spec.hostname, network)
                    .map_err(|e| failed(format!("cannot attach the container to its network: {e}")))?;
                c.network = Some((w.clone(), id.to_string()));
                c.address = a.address.map(|(ip, _)| ip);
                config::attach(&mut cfg, &req.spec.hostname, &a);
            }
            (NetworkMode::None, None) => {}
        }
        let d = self.cfg.defaults;
        let limits = Limits {
            memory_bytes: req.spec.resources.memory_bytes.or(d.memory_bytes),
            cpu_millis: req.spec.resources.cpu_millis.or(d.cpu_millis),
            pids: d.pids,
        };
        if let Some(cgroups) = &self.cgroups {
            let group = cgroups
                .create(id, &limits)
                .map_err(|e| failed(format!("cannot create the container's cgroup: {e}")))?;
            cfg.cgroup_procs = group.procs_files();
            cfg.cgroup_views = group.views();
            c.group = Some(group);
        }
        cfg.rootless = self.rootless;
        let json = serde_json::to_vec_pretty(&cfg).map_err(failed)?;
        // Readable by root only: its environment may hold secrets.
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(state.join("config.json"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, &json))
            .map_err(|e| failed(format!("cannot write the container's config: {e}")))?;
        Ok(c)
    }

    /// The network a step gets: its own choice (or its pipeline's), else this worker's default.
    fn network_of(&self, spec: &sluice_sdk::api::TaskSpec) -> NetworkMode {
        spec.network.unwrap_or(self.cfg.default_network)
    }

    /// Wires a held container's network through the configured wiring (off the async threads).
    async fn wire(&self, id: &str, pid: i32, mode: NetworkMode) -> Result<(), String> {
        let Some(w) = self.cfg.wiring.clone() else {
            return Err("the container waits to be wired, but this worker wires nothing".into());
        };
        let id = id.to_string();
        tokio::task::spawn_blocking(move || w.wire(&id, pid, mode))
            .await
            .map_err(|e| format!("wiring the network failed: {e}"))?
    }

    /// A volume the step asks for: a host path, or a named volume kept under the worker's
    /// directory (made on first use, shared by every run on this worker).
    fn volume(&self, v: &sluice_sdk::api::VolumeMount) -> Result<BindMount, RuntimeError> {
        let source = match (&v.host_path, &v.name) {
            (Some(p), _) => {
                let p = PathBuf::from(p);
                if !p.exists() {
                    return Err(failed(format!(
                        "volume at {}: host path {} does not exist on this worker",
                        v.path,
                        p.display()
                    )));
                }
                p
            }
            (None, Some(name)) => {
                let p = self.cfg.worker_dir.join("volumes").join(name);
                std::fs::create_dir_all(&p)
                    .map_err(|e| failed(format!("cannot create volume `{name}`: {e}")))?;
                p
            }
            (None, None) => {
                return Err(failed(format!(
                    "volume at {} names neither a host path nor a volume",
                    v.path
                )))
            }
        };
        Ok(BindMount {
            source,
            target: v.path.clone(),
            readonly: !v.writable,
            beneath: None,
        })
    }
}

/// A created container: removing it kills what is left of it and deletes its cgroup and state.
struct Container {
    state: PathBuf,
    group: Option<Group>,
    keep: bool,
    /// GPUs held until the container is gone.
    _gpus: Option<gpu::GpuLease>,
    /// The network it is attached to, and its id there.
    network: Option<(Arc<dyn NetworkWiring>, String)>,
    /// Its address there.
    address: Option<std::net::Ipv4Addr>,
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Some(g) = &self.group {
            g.kill_all();
            g.remove();
        }
        if let Some((w, id)) = self.network.take() {
            w.detach(&id);
        }
        if self.keep {
            // Keep the writes for a look, drop what cannot be looked at.
            let _ = std::fs::remove_dir_all(self.state.join("work"));
            let _ = std::fs::rename(&self.state, self.state.with_extension("kept"));
        } else {
            let _ = std::fs::remove_dir_all(&self.state);
        }
    }
}

impl ContainerRuntime for EmbeddedRuntime {
    fn name(&self) -> &'static str {
        "embedded"
    }

    fn gpus(&self) -> u32 {
        self.gpus.count() as u32
    }

    fn prepare<'a>(
        &'a self,
        spec: &'a sluice_sdk::api::TaskSpec,
    ) -> BoxFuture<'a, Result<Option<String>, RuntimeError>> {
        Box::pin(async move {
            let rec = self
                .registries
                .ensure_fresh(&spec.image, self.cfg.tag_ttl)
                .await
                .map_err(failed)?;
            Ok(Some(rec.digest))
        })
    }

    fn run(&self, req: RunRequest, mut io: Io) -> BoxFuture<'_, Result<Exit, RuntimeError>> {
        Box::pin(async move {
            let id = container_id(&req.lease_id);
            let gpus = match req.spec.resources.gpu {
                0 => None,
                n => Some(tokio::select! {
                    g = self.gpus.acquire(n) => g.map_err(failed)?,
                    r = io.stop.wait_for(|s| s.is_some()) => {
                        let stopped = r.ok().and_then(|s| *s);
                        return Ok(Exit { code: 137, oom_killed: false, stopped, evicted: None });
                    }
                }),
            };
            let t0 = std::time::Instant::now();
            // Directories, cgroup files and the config are blocking file-system work.
            let container = blocking(|| self.create(&id, &req, gpus))?;
            let created = t0.elapsed();
            // What it writes: its writable layer and its outputs.
            let watched = self.disk.watch(
                &id,
                vec![
                    container.state.join("upper"),
                    req.artifacts_dir.clone(),
                    req.params_dir.clone(),
                ],
                req.spec.resources.disk_bytes,
            );
            let (ours, theirs) = std::os::unix::net::UnixStream::pair()
                .map_err(|e| failed(format!("cannot create the helper's socket: {e}")))?;
            ours.set_nonblocking(true).map_err(failed)?;
            let mut helper = tokio::process::Command::new(&self.cfg.helper)
                .arg(shim::SUBCOMMAND)
                .arg(&container.state)
                .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .env_clear()
                .spawn()
                .map_err(|e| {
                    failed(format!(
                        "cannot start the container helper {}: {e}",
                        self.cfg.helper.display()
                    ))
                })?;
            let pumps = [tokio::spawn(logs::pump(
                helper.stdout.take(),
                helper.stderr.take(),
                io.logs.clone(),
            ))];
            let ctl = tokio::net::UnixStream::from_std(ours).map_err(failed)?;
            let (ctl_r, mut ctl_w) = ctl.into_split();
            let mut lines = tokio::io::BufReader::new(ctl_r).lines();
            let mut started = Some(io.started);
            let (mut pid, mut code, mut error, mut stopped) = (None, None, None, None);
            let mut evicted: Option<String> = None;
            let mut started_at = std::time::Duration::ZERO;
            let mut to_wire = None;
            loop {
                // A held container is wired outside the select (whose state must not be held
                // across an await).
                if let Some(p) = to_wire.take() {
                    let answer = match self.wire(&id, p, self.network_of(&req.spec)).await {
                        Ok(()) => ToShim::Proceed,
                        Err(e) => {
                            error = Some(e);
                            ToShim::Abort
                        }
                    };
                    let _ = ctl_w.write_all(&protocol::encode(&answer)).await;
                }
                tokio::select! {
                    line = lines.next_line() => {
                        let Ok(Some(line)) = line else { break };
                        let Ok(msg) = serde_json::from_str::<FromShim>(&line) else {
                            tracing::warn!(%line, "the container helper said something unknown");
                            continue;
                        };
                        match msg {
                            FromShim::Created { pid: p } => pid = Some(p),
                            FromShim::Wire { pid: p } => to_wire = Some(p),
                            FromShim::Started => {
                                if let Some(s) = started.take() { let _ = s.send(Started { address: container.address }); }
                                started_at = t0.elapsed();
                            }
                            FromShim::Failed { message, .. } => {
                                // The wiring's own reason, when it stopped the container, is the one that counts.
                                error.get_or_insert(message);
                            }
                            FromShim::Exited { code: c } => code = Some(c),
                        }
                    }
                    r = io.stop.wait_for(|s| s.is_some()), if stopped.is_none() && evicted.is_none() => {
                        stopped = r.ok().and_then(|s| *s);
                        kill(pid, &mut helper, &container);
                    }
                    why = watched.evicted(), if stopped.is_none() && evicted.is_none() => {
                        tracing::warn!(reason = %why, "stopping the container");
                        evicted = Some(why);
                        kill(pid, &mut helper, &container);
                    }
                }
            }
            self.disk.unwatch(&id);
            let status = helper.wait().await;
            let exited = t0.elapsed();
            for p in pumps {
                let _ = p.await;
            }
            let oom_killed = container
                .group
                .as_ref()
                .map(|g| g.oom_killed())
                .unwrap_or(false);
            // Removing the cgroup may wait for the kernel to let go of it: off the async threads.
            let _ = tokio::task::spawn_blocking(move || drop(container)).await;
            tracing::debug!(
                create_ms = created.as_secs_f64() * 1e3,
                started_ms = started_at.as_secs_f64() * 1e3,
                exited_ms = exited.as_secs_f64() * 1e3,
                cleaned_ms = t0.elapsed().as_secs_f64() * 1e3,
                "container timings"
            );
            if let (Some(e), None, None) = (&error, stopped, &evicted) {
                return Err(failed(format!("container did not start: {e}")));
            }
            let code = match (code, status) {
                (Some(c), _) => c,
                (None, Ok(s)) => s.code().unwrap_or(137),
                (None, Err(e)) => return Err(failed(format!("lost the container helper: {e}"))),
            };
            Ok(Exit {
                code,
                oom_killed: oom_killed && code != 0,
                stopped,
                evicted,
            })
        })
    }
}

/// Kills every process of a container: its PID namespace's first process (which takes the
/// others with it), or its helper if that has not started it yet, and whatever is left in its
/// cgroup.
fn kill(pid: Option<i32>, helper: &mut tokio::process::Child, container: &Container) {
    match pid {
        // SAFETY: kill(2) has no memory-safety preconditions.
        Some(p) => unsafe {
            libc::kill(p, libc::SIGKILL);
        },
        None => {
            let _ = helper.start_kill();
        }
    }
    if let Some(g) = &container.group {
        g.kill_all();
    }
}

/// Runs blocking work where the async runtime allows it without stalling other tasks.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// A container's id: its lease, which is unique, restricted to characters safe in paths.
fn container_id(lease: &str) -> String {
    lease
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
