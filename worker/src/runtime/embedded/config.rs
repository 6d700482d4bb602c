//! The container a task runs in, described in full before anything starts: root filesystem
//! layers, bind mounts, process, namespaces, capabilities. Built here from the task's spec and its
//! image's config (pure, unit-tested); the helper process reads it back and carries it out.

use crate::images::store::RunConfig;
use serde::{Deserialize, Serialize};
use sluice_sdk::api::TaskSpec;
use sluice_spec::NetworkMode;
use std::path::{Path, PathBuf};

/// Docker's default capability set (`CAP_MKNOD` left out: containers get no device cgroup, so
/// they must not be able to make device nodes).
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Paths hidden from the container, as Docker hides them.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths the container may read but not write, as Docker has them.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerConfig {
    pub id: String,
    pub hostname: String,
    pub rootfs: Rootfs,
    pub mounts: Vec<BindMount>,
    pub process: Process,
    /// The network the container gets: `none` is a namespace of its own with loopback only,
    /// `host` the host's namespace, shared.
    pub network: NetworkMode,
    /// Hold the container after its namespaces exist until the worker has wired its network
    /// (see [`super::protocol`]).
    #[serde(default)]
    pub await_wiring: bool,
    /// The `cgroup.procs` files the container's first process writes itself into.
    pub cgroup_procs: Vec<PathBuf>,
    /// The container's own cgroup directories, shown read-only under `/sys/fs/cgroup` (in its
    /// own cgroup namespace), as Docker shows them: by hierarchy name on v1
    /// (`/sys/fs/cgroup/pids`), as `/sys/fs/cgroup` itself on v2 (an empty name). Tools that size
    /// themselves to their limits (joblib, the JVM) read them there.
    #[serde(default)]
    pub cgroup_views: Vec<(String, PathBuf)>,
    pub capabilities: Vec<String>,
    /// Apply Docker's default seccomp profile (see `seccomp`); false only for a step allowed to
    /// run unconfined.
    pub seccomp: bool,
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
    /// `/etc/hosts`, `/etc/hostname` and (with host networking) `/etc/resolv.conf`: written to a
    /// tmpfs inside the container's mount namespace and bind-mounted over the image's.
    pub etc: Vec<(String, String)>,
    /// Where that tmpfs is mounted (a directory shared by all containers, each seeing its own).
    pub etc_dir: PathBuf,
    /// Run in a user namespace with these host ids (see `userns`).
    #[serde(default)]
    pub userns: Option<super::userns::IdMap>,
    /// Made by an ordinary user: the helper first enters a user namespace mapping that user
    /// to root, and the container is built inside it (no cgroup, device nodes bound from the
    /// host, the overlay's xattrs in the `user.` namespace).
    #[serde(default)]
    pub rootless: Option<super::userns::Rootless>,
}

/// An overlay root filesystem: the image's layers read-only below, the task's writes above.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rootfs {
    /// The directory the lower layers are named relative to (it keeps the mount options short).
    pub layers_root: PathBuf,
    /// Layer directories, topmost first, relative to `layers_root` (or absolute).
    pub lower: Vec<String>,
    pub upper: PathBuf,
    pub work: PathBuf,
    /// Where the overlay is mounted: a directory every container of the worker shares, each
    /// mounting its own overlay there inside its own mount namespace.
    pub target: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BindMount {
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub target: String,
    pub readonly: bool,
    /// When set, `source` is what a step produced: it is opened beneath this directory with no
    /// link followed anywhere on the way, and mounted through that handle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beneath: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Process {
    pub args: Vec<String>,
    /// `KEY=value` pairs.
    pub env: Vec<String>,
    pub cwd: String,
    /// `user`, `uid`, `user:group` or `uid:gid`, resolved against the container's `/etc/passwd`.
    pub user: String,
}

/// The host side of what a task mounts, besides its image.
#[derive(Debug, Clone, Default)]
pub struct TaskMounts {
    pub params_dir: Option<PathBuf>,
    pub artifacts_dir: Option<PathBuf>,
    pub script: Option<PathBuf>,
    /// Input artifacts, in `spec.input_artifacts` order.
    pub inputs: Vec<PathBuf>,
    /// The directory input artifacts must be beneath (see [`BindMount::beneath`]).
    pub inputs_root: Option<PathBuf>,
    /// Volumes, devices and libraries the worker adds (named volumes, host paths, GPUs).
    pub extra: Vec<BindMount>,
    /// Environment the worker adds before the step's own (GPU paths).
    pub extra_env: Vec<(String, String)>,
}

/// The container's argv, following Kubernetes: `command` replaces the image's Entrypoint (and its
/// Cmd with it), `args` replaces the image's Cmd.
pub fn argv(spec: &TaskSpec, image: &RunConfig) -> Result<Vec<String>, String> {
    let argv: Vec<String> = match (&spec.command, &spec.args) {
        (Some(c), args) => c.iter().chain(args.iter().flatten()).cloned().collect(),
        (None, Some(a)) => image
            .entrypoint
            .iter()
            .flatten()
            .chain(a)
            .cloned()
            .collect(),
        (None, None) => image
            .entrypoint
            .iter()
            .flatten()
            .chain(image.cmd.iter().flatten())
            .cloned()
            .collect(),
    };
    if argv.is_empty() {
        return Err(format!(
            "nothing to run: the step sets no command and image `{}` has no Entrypoint or Cmd",
            spec.image
        ));
    }
    Ok(argv)
}

/// The container's environment: a default `PATH` and `PYTHONUNBUFFERED=1` (so that a Python
/// step's output reaches its log as it is written, in the order it was written, not when its
/// buffer fills or it exits), the image's, `HOSTNAME`, what the worker adds (search paths like
/// `PATH` are appended to), then the step's own, each later one replacing an earlier one of the
/// same name.
pub fn env(spec: &TaskSpec, image: &RunConfig, extra: &[(String, String)]) -> Vec<String> {
    fn set(out: &mut Vec<(String, String)>, k: &str, v: &str) {
        match out.iter_mut().find(|(n, _)| n == k) {
            Some(e) => e.1 = v.to_string(),
            None => out.push((k.to_string(), v.to_string())),
        }
    }
    let mut out: Vec<(String, String)> = Vec::new();
    set(&mut out, "PATH", DEFAULT_PATH);
    set(&mut out, "PYTHONUNBUFFERED", "1");
    for kv in &image.env {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        set(&mut out, k, v);
    }
    set(&mut out, "HOSTNAME", &spec.hostname);
    for (k, v) in extra {
        let joined = match out.iter().find(|(n, _)| n == k) {
            Some((_, old)) if k.ends_with("PATH") && !old.is_empty() => format!("{old}:{v}"),
            _ => v.clone(),
        };
        set(&mut out, k, &joined);
    }
    for e in &spec.env {
        set(&mut out, &e.name, &e.value);
    }
    out.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// Everything about one task's container. `layers` are the image's layer directories, bottom
/// first, as the image store lists them; `state` is the container's own scratch directory (its
/// parent holds the directories all containers share: `.rootfs`, `.etc`, `.empty`). The caller
/// sets the network, `resolv.conf` and cgroups afterwards.
pub fn build(
    id: &str,
    spec: &TaskSpec,
    image: &RunConfig,
    layers: &[PathBuf],
    state: &Path,
    mounts: &TaskMounts,
) -> Result<ContainerConfig, String> {
    let layers_root = common_parent(layers).unwrap_or_else(|| PathBuf::from("/"));
    let mut lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|l| {
            l.strip_prefix(&layers_root)
                .unwrap_or(l)
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let shared = state.parent().unwrap_or(state);
    if lower.is_empty() {
        lower.push(shared.join(".empty").to_string_lossy().into_owned());
    }
    let mut binds = Vec::new();
    let mut bind = |source: &Path, target: &str, readonly: bool, beneath: Option<&PathBuf>| {
        binds.push(BindMount {
            source: source.to_path_buf(),
            target: target.to_string(),
            readonly,
            beneath: beneath.cloned(),
        })
    };
    use sluice_spec::paths;
    if let Some(p) = &mounts.params_dir {
        bind(p, paths::OUTPUT_PARAMS, false, None);
    }
    if let Some(p) = &mounts.artifacts_dir {
        bind(p, paths::OUTPUT_ARTIFACTS, false, None);
    }
    if let Some(p) = &mounts.script {
        bind(p, paths::SCRIPT, true, None);
    }
    for (host, art) in mounts.inputs.iter().zip(&spec.input_artifacts) {
        bind(host, &art.path, true, mounts.inputs_root.as_ref());
    }
    binds.extend(mounts.extra.iter().cloned());
    for b in &binds {
        if !b.target.starts_with('/') || b.target.split('/').any(|c| c == "..") {
            return Err(format!(
                "mount target `{}` must be an absolute path without `..`",
                b.target
            ));
        }
    }
    let cwd = spec
        .working_dir
        .clone()
        .or_else(|| image.working_dir.clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    Ok(ContainerConfig {
        id: id.to_string(),
        hostname: spec.hostname.clone(),
        rootfs: Rootfs {
            layers_root,
            lower,
            upper: state.join("upper"),
            work: state.join("work"),
            target: shared.join(".rootfs"),
        },
        mounts: binds,
        process: Process {
            args: argv(spec, image)?,
            env: env(spec, image, &mounts.extra_env),
            cwd,
            user: image
                .user
                .clone()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| "0".into()),
        },
        network: NetworkMode::None,
        await_wiring: false,
        cgroup_procs: Vec::new(),
        cgroup_views: Vec::new(),
        capabilities: DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect(),
        seccomp: !spec.seccomp_unconfined,
        masked_paths: MASKED_PATHS.iter().map(|p| p.to_string()).collect(),
        readonly_paths: READONLY_PATHS.iter().map(|p| p.to_string()).collect(),
        etc: vec![
            ("hostname".into(), format!("{}\n", spec.hostname)),
            (
                "hosts".into(),
                format!(
                    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{}\n",
                    spec.hostname
                ),
            ),
        ],
        etc_dir: shared.join(".etc"),
        userns: None,
        rootless: None,
    })
}

/// A container attached to a network: `/etc/hosts` with its address under its name and the
/// run's other steps under theirs, and the network's `/etc/resolv.conf`.
pub fn attach(cfg: &mut ContainerConfig, hostname: &str, a: &super::Attachment) {
    let mut hosts =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    match a.address {
        Some((ip, _)) => hosts.push_str(&format!("{ip}\t{hostname}\n")),
        None => hosts.push_str(&format!("127.0.1.1\t{hostname}\n")),
    }
    for (ip, name) in &a.peers {
        hosts.push_str(&format!("{ip}\t{name}\n"));
    }
    cfg.etc.retain(|(n, _)| n != "hosts" && n != "resolv.conf");
    cfg.etc.push(("hosts".into(), hosts));
    if let Some(r) = &a.resolv_conf {
        cfg.etc.push(("resolv.conf".into(), r.clone()));
    }
}

/// The directory all layers share (they all live in one image store), so that the overlay's
/// options name each layer by a short relative path.
fn common_parent(layers: &[PathBuf]) -> Option<PathBuf> {
    let first = layers.first()?.parent()?.parent()?.to_path_buf();
    layers
        .iter()
        .all(|l| l.starts_with(&first))
        .then_some(first)
}

#[cfg(test)]
mod tests;
