//! The bridge network, as Docker gives it: each run on a worker gets a Linux bridge and a /24
//! of the worker's pool, each bridged step a veth pair on it with an address, a default route
//! out through NAT, the host's resolvers and the run's steps by name.
//!
//! - Links and addresses go through netlink ([`netlink`]); the NAT and the walls between runs
//!   are one nftables table per worker, written at its start ([`nft`]); addresses are claimed in
//!   files shared by the host's workers ([`ipam`]).
//! - A container's veth pair goes with its network namespace, when its last process does; its
//!   address is given back when the runtime removes it. A run's bridge stays while its steps
//!   come and go, and is deleted once none has used it for [`BridgeConfig::linger`].
//! - A worker starts by sweeping what one before it in the same directory left (its links, its
//!   claims, its table), and takes everything away when it stops ([`Bridges::shutdown`]).
//!
//! Every name this worker gives starts with `sl` and its scope (four hex digits of its
//! directory's digest): bridges `slSCOPEbK` (K the /24's index), ports `slSCOPEvN`.

pub mod ipam;
pub mod netlink;
pub mod nft;

use crate::runtime::embedded::{Attachment, NetworkWiring};
use ipam::{Ipam, Net, Owner, Subnet};
use sluice_spec::NetworkMode;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The default pool: a /16 of 198.18.0.0/15, a range set aside (RFC 2544) that no site routes,
/// so a step's network never hides one of the host's.
pub const DEFAULT_SUBNET: &str = "198.19.0.0/16";

/// Where the host's workers keep their claims (a tmpfs: claims go at a reboot, as links do).
pub const STATE_ROOT: &str = "/run/sluice/net";

/// Docker's resolvers for a host whose own are all on its loopback (unreachable from a step).
const FALLBACK_DNS: [Ipv4Addr; 2] = [Ipv4Addr::new(8, 8, 8, 8), Ipv4Addr::new(8, 8, 4, 4)];

#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// The pool runs' /24s are cut from.
    pub subnet: Net,
    /// Resolvers steps use; empty: the host's, its loopback ones replaced.
    pub dns: Vec<IpAddr>,
    /// How long a run's bridge outlives its last step on this worker (its next step reuses it).
    pub linger: Duration,
    /// Where claims are kept.
    pub state_root: PathBuf,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            subnet: DEFAULT_SUBNET.parse().expect("the default subnet parses"),
            dns: Vec::new(),
            linger: Duration::from_secs(5),
            state_root: PathBuf::from(STATE_ROOT),
        }
    }
}

/// The bridge network of one worker: a [`NetworkWiring`] for `network: bridge`.
#[derive(Clone)]
pub struct Bridges(Arc<Shared>);

impl std::fmt::Debug for Bridges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridges")
            .field("scope", &self.0.scope)
            .field("subnet", &self.0.cfg.subnet)
            .finish()
    }
}

struct Shared {
    cfg: BridgeConfig,
    scope: String,
    ipam: Ipam,
    nl: rtnetlink::Handle,
    rt: tokio::runtime::Handle,
    resolv: String,
    /// Whether this worker turned the host's IPv4 forwarding on.
    forwarding_was_off: bool,
    /// The lock on its file under `workers/`, held while it runs.
    lock: Mutex<std::fs::File>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    runs: HashMap<String, RunNet>,
    members: HashMap<String, Member>,
    /// Names the next port (never reused while the worker lives).
    next_port: u64,
    /// Where the next /24 search starts (so a freed one is not taken back at once).
    next_subnet: u32,
    stopped: bool,
}

struct RunNet {
    subnet: Subnet,
    bridge: String,
    index: u32,
    users: usize,
    /// Changes at every use: a deletion scheduled before the last one is void.
    generation: u64,
    next_host: u8,
}

struct Member {
    run: String,
    host: u8,
    port: String,
}

impl Bridges {
    /// Sets the worker's bridge network up: forwarding on, its nftables table written, and what a
    /// crashed worker of the same directory left swept away. Call within a tokio runtime.
    pub fn start(worker_dir: &std::path::Path, cfg: BridgeConfig) -> Result<Bridges, String> {
        let scope = scope_of(worker_dir);
        let ipam = Ipam::open(&cfg.state_root, cfg.subnet)?;
        let nl = netlink::connect()?;
        let rt = tokio::runtime::Handle::current();
        let forwarding_was_off = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .map(|v| v.trim() == "0")
            .unwrap_or(false);
        if forwarding_was_off {
            std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").map_err(|e| {
                format!("cannot turn on IPv4 forwarding, which the bridge network needs: {e}")
            })?;
            tracing::info!("turned the host's IPv4 forwarding on for the bridge network");
        }
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let lock = Mutex::new(hold(&cfg.state_root, &scope)?);
        let b = Bridges(Arc::new(Shared {
            lock,
            resolv: resolv_conf(&host_resolv, &cfg.dns),
            scope,
            ipam,
            nl,
            rt,
            forwarding_was_off,
            inner: Mutex::new(Inner::default()),
            cfg,
        }));
        let swept = b.sweep()?;
        if swept > 0 {
            tracing::warn!(
                links = swept,
                "removed the network a previous worker left behind"
            );
        }
        nft::install(&b.0.scope, b.0.cfg.subnet)?;
        tracing::info!(subnet = %b.0.cfg.subnet, scope = %b.0.scope, "bridge network ready");
        Ok(b)
    }

    /// Runs `f` on the worker's network state, from async code. The state's lock is taken on
    /// the blocking pool, never on a runtime thread: `attach` holds it while it waits on the
    /// runtime for netlink (a run's new bridge), so a runtime thread waiting for the lock could
    /// leave no thread to drive that netlink request, and the worker would hang.
    async fn with_inner<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Inner) -> T + Send + 'static,
    ) -> T {
        let b = self.clone();
        tokio::task::spawn_blocking(move || f(&mut b.0.inner.lock().unwrap()))
            .await
            .expect("the network state's lock is not poisoned")
    }

    /// The prefix of every link name this worker gives.
    pub fn prefix(&self) -> String {
        format!("sl{}", self.0.scope)
    }

    /// The worker's scope, which names its links and its nftables table.
    pub fn scope(&self) -> &str {
        &self.0.scope
    }

    fn block_on<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                tokio::task::block_in_place(|| self.0.rt.block_on(f))
            }
            _ => self.0.rt.block_on(f),
        }
    }

    /// Removes what workers of this host that are gone left: this worker's own earlier self
    /// (same directory) and any other that ended without taking its network away (killed, or
    /// its host's power cut short). A running worker holds the lock on its file under
    /// `workers/`, which the kernel lets go when its process ends however it ends; a file whose
    /// lock can be taken, and that does not say its worker cleaned up, marks one gone. The lock
    /// is held while sweeping, so a worker restarting meanwhile waits. Returns how many links
    /// it deleted.
    fn sweep(&self) -> Result<usize, String> {
        let mut deleted = self.sweep_scope(&self.0.scope)?;
        let dir = self.0.cfg.state_root.join("workers");
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let scope = e.file_name().to_string_lossy().into_owned();
            if scope == self.0.scope {
                continue;
            }
            let Some(mut held) = try_hold(&e.path()) else {
                continue;
            };
            if std::fs::read_to_string(e.path()).unwrap_or_default() == CLEAN {
                continue;
            }
            deleted += self.sweep_scope(&scope)?;
            if let Err(e) = nft::remove(&scope) {
                tracing::warn!("{e}");
            }
            mark(&mut held, CLEAN);
            tracing::warn!(worker = %scope, "removed the network of a worker that is gone");
        }
        Ok(deleted)
    }

    /// Deletes the links and claims of the worker of `scope`.
    fn sweep_scope(&self, scope: &str) -> Result<usize, String> {
        for (s, owner) in self.0.ipam.subnets() {
            if owner.scope == scope {
                self.0.ipam.release_subnet(s.index);
            }
        }
        let prefix = format!("sl{scope}");
        let nl = self.0.nl.clone();
        self.block_on(async move {
            let links = netlink::links_named(&nl, &prefix).await?;
            for l in &links {
                netlink::delete(&nl, l).await?;
            }
            Ok::<_, String>(links.len())
        })
    }

    /// Takes the worker's network away: its bridges, its claims, its table (and forwarding, if it
    /// turned that on and no other worker's bridge is left).
    pub async fn shutdown(&self) {
        let runs: Vec<RunNet> = self
            .with_inner(|inner| {
                inner.stopped = true;
                inner.members.clear();
                inner.runs.drain().map(|(_, r)| r).collect()
            })
            .await;
        for r in runs {
            if let Err(e) = netlink::delete(&self.0.nl, &r.bridge).await {
                tracing::warn!("{e}");
            }
            self.0.ipam.release_subnet(r.subnet.index);
        }
        let b = self.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Ok(n) = b.sweep() {
                if n > 0 {
                    tracing::debug!(links = n, "removed ports still there at shutdown");
                }
            }
            if let Err(e) = nft::remove(&b.0.scope) {
                tracing::warn!("{e}");
            }
            mark(&mut b.0.lock.lock().unwrap(), CLEAN);
            if b.0.forwarding_was_off && b.0.ipam.subnets().is_empty() {
                let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", "0");
            }
        })
        .await;
        tracing::info!("bridge network removed");
    }

    /// Deletes run `run`'s bridge if nothing used it since `generation`.
    async fn reap(&self, run: String, generation: u64) {
        let gone = self
            .with_inner(move |inner| match inner.runs.get(&run) {
                Some(r) if r.users == 0 && r.generation == generation => inner.runs.remove(&run),
                _ => None,
            })
            .await;
        if let Some(r) = gone {
            if let Err(e) = netlink::delete(&self.0.nl, &r.bridge).await {
                tracing::warn!("{e}");
            }
            self.0.ipam.release_subnet(r.subnet.index);
        }
    }

    /// The run's network on this worker, made if it has none: a /24 and its bridge.
    fn run_net(&self, inner: &mut Inner, run: &str) -> Result<(), String> {
        if inner.runs.contains_key(run) {
            return Ok(());
        }
        let owner = Owner {
            scope: self.0.scope.clone(),
            run: run.to_string(),
        };
        let subnet = self.0.ipam.claim_subnet(&owner, inner.next_subnet)?;
        inner.next_subnet = subnet.index + 1;
        let bridge = format!("{}b{:x}", self.prefix(), subnet.index);
        let nl = self.0.nl.clone();
        let (name, gw) = (bridge.clone(), subnet.gateway());
        let made = self.block_on(async move {
            // A link of that name is a leftover (the claim was free): replace it.
            netlink::delete(&nl, &name).await?;
            netlink::create_bridge(&nl, &name, gw, 24).await
        });
        let index = match made {
            Ok(i) => i,
            Err(e) => {
                self.0.ipam.release_subnet(subnet.index);
                return Err(e);
            }
        };
        inner.runs.insert(
            run.to_string(),
            RunNet {
                subnet,
                bridge,
                index,
                users: 0,
                generation: 0,
                next_host: 2,
            },
        );
        Ok(())
    }
}

impl NetworkWiring for Bridges {
    fn wires(&self, mode: NetworkMode) -> bool {
        mode == NetworkMode::Bridge
    }

    fn attach(
        &self,
        container: &str,
        run: &str,
        hostname: &str,
        _: NetworkMode,
    ) -> Result<Attachment, String> {
        let mut inner = self.0.inner.lock().unwrap();
        if inner.stopped {
            return Err("the worker is stopping".into());
        }
        self.run_net(&mut inner, run)?;
        let port = format!("{}v{:x}", self.prefix(), inner.next_port);
        inner.next_port += 1;
        let r = inner.runs.get_mut(run).expect("made above");
        let host = self
            .0
            .ipam
            .claim_host(&r.subnet, container, hostname, r.next_host)?;
        r.next_host = if host >= 254 { 2 } else { host + 1 };
        r.users += 1;
        r.generation += 1;
        let address = r.subnet.host(host);
        let hosts = self
            .0
            .ipam
            .hosts(&r.subnet)
            .into_iter()
            .filter(|(a, _)| *a != address)
            .collect();
        inner.members.insert(
            container.to_string(),
            Member {
                run: run.to_string(),
                host,
                port,
            },
        );
        Ok(Attachment {
            address: Some((address, 24)),
            peers: hosts,
            resolv_conf: Some(self.0.resolv.clone()),
        })
    }

    fn wire(&self, container: &str, pid: i32, _: NetworkMode) -> Result<(), String> {
        let (port, bridge, address, gateway) = {
            let inner = self.0.inner.lock().unwrap();
            let m = inner
                .members
                .get(container)
                .ok_or("the container was not attached to a network")?;
            let r = &inner.runs[&m.run];
            (
                m.port.clone(),
                r.index,
                r.subnet.host(m.host),
                r.subnet.gateway(),
            )
        };
        let inside = netlink::connect_in(pid)?;
        let host = self.0.nl.clone();
        self.block_on(async move {
            let plug = netlink::Plug {
                veth: &port,
                bridge,
                address,
                prefix: 24,
                gateway,
            };
            netlink::plug(&host, &inside, pid, &plug).await
        })
    }

    fn detach(&self, container: &str) {
        let mut inner = self.0.inner.lock().unwrap();
        let Some(m) = inner.members.remove(container) else {
            return;
        };
        let Some(r) = inner.runs.get_mut(&m.run) else {
            return;
        };
        // The pair itself goes with the container's namespace.
        self.0.ipam.release_host(&r.subnet, m.host);
        r.users -= 1;
        r.generation += 1;
        if r.users == 0 {
            let (b, run, generation, linger) =
                (self.clone(), m.run, r.generation, self.0.cfg.linger);
            self.0.rt.spawn(async move {
                tokio::time::sleep(linger).await;
                b.reap(run, generation).await;
            });
        }
    }
}

/// The scope of the worker of directory `worker_dir`: four hex digits of its path's digest,
/// which start its links' names (`slSCOPE…`) and name its nftables table.
pub fn scope_of(worker_dir: &std::path::Path) -> String {
    let canonical = std::fs::canonicalize(worker_dir).unwrap_or(worker_dir.to_path_buf());
    let digest = crate::images::store::sha256_hex(canonical.to_string_lossy().as_bytes());
    digest.trim_start_matches("sha256:")[..4].to_string()
}

/// What a worker's file under `workers/` says once nothing of its network is left.
const CLEAN: &str = "clean\n";

/// Takes the lock on the file of the worker of `scope` (waiting a while for a worker sweeping
/// it), and says it runs. Held for as long as the returned file is open.
fn hold(root: &std::path::Path, scope: &str) -> Result<std::fs::File, String> {
    use std::os::fd::AsRawFd;
    let dir = root.join("workers");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(scope);
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // A worker sweeping this one's leftovers holds it a moment; a running worker of the same
    // directory holds it for good.
    let start = std::time::Instant::now();
    // SAFETY: flock(2) on a descriptor this function owns.
    while unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        if start.elapsed() > Duration::from_secs(10) {
            return Err(format!(
                "{} is held: another worker runs with this directory",
                path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    mark(&mut f, &format!("running {}\n", std::process::id()));
    Ok(f)
}

/// The lock on a worker's file, if no running worker holds it.
fn try_hold(path: &std::path::Path) -> Option<std::fs::File> {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .ok()?;
    // SAFETY: flock(2) on a descriptor this function owns.
    (unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0).then_some(f)
}

/// Replaces what a held worker file says.
fn mark(f: &mut std::fs::File, what: &str) {
    use std::io::{Seek, Write};
    let _ = f.set_len(0);
    let _ = f.rewind();
    let _ = f.write_all(what.as_bytes());
}

/// A step's `/etc/resolv.conf`: the host's, as Docker makes it. Its loopback resolvers (a
/// local cache such as systemd-resolved) cannot be reached from a step's namespace and are
/// dropped; if none is left, Google's public resolvers stand in, as Docker's do. Resolvers the
/// operator gives (`--dns`) replace the host's.
pub fn resolv_conf(host: &str, dns: &[IpAddr]) -> String {
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let usable = words
                .next()
                .and_then(|a| a.parse::<IpAddr>().ok())
                .is_some_and(|a| !a.is_loopback());
            if !dns.is_empty() || !usable {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    let given: Vec<IpAddr> = match (dns.is_empty(), servers) {
        (false, _) => dns.to_vec(),
        (true, 0) => FALLBACK_DNS.iter().map(|a| IpAddr::V4(*a)).collect(),
        (true, _) => Vec::new(),
    };
    for a in given {
        out.push_str(&format!("nameserver {a}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_workers_file_is_locked_and_a_gone_ones_is_not() {
        let root = tempfile::tempdir().unwrap();
        let mut held = hold(root.path(), "ab12").unwrap();
        let path = root.path().join("workers/ab12");
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("running "));
        assert!(
            try_hold(&path).is_none(),
            "a running worker's file is taken"
        );
        mark(&mut held, CLEAN);
        drop(held);
        assert!(
            try_hold(&path).is_some(),
            "a gone worker's file can be taken"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), CLEAN);
    }

    #[test]
    fn loopback_resolvers_are_replaced_as_docker_does() {
        let host = "# made by resolvconf\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch corp.example\n";
        let r = resolv_conf(host, &[]);
        assert_eq!(
            r,
            "# made by resolvconf\noptions edns0 trust-ad\nsearch corp.example\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        let host = "nameserver ::1\nnameserver 10.255.255.53\n";
        assert_eq!(resolv_conf(host, &[]), "nameserver 10.255.255.53\n");
        let given = ["198.18.0.53".parse().unwrap()];
        assert_eq!(
            resolv_conf("nameserver 10.255.255.53\nsearch x\n", &given),
            "search x\nnameserver 198.18.0.53\n"
        );
        assert_eq!(
            resolv_conf("", &[]),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
    }
}
