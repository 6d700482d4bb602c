//! Control groups for containers, on cgroup v2 hosts and on v1 hosts (one hierarchy per
//! controller): create one group per container under a parent that belongs to this worker, set its
//! memory, CPU and PIDs limits, tell whether the kernel OOM-killed in it, kill everything in it and
//! remove it.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

const CPU_PERIOD_US: u64 = 100_000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: Option<u64>,
    /// Thousandths of a core.
    pub cpu_millis: Option<u64>,
    pub pids: Option<u64>,
}

#[derive(Debug, Clone)]
enum Layout {
    /// The unified hierarchy's mount point.
    V2(PathBuf),
    /// Mount points of the v1 hierarchies sluice uses.
    V1 {
        memory: Option<PathBuf>,
        cpu: Option<PathBuf>,
        pids: Option<PathBuf>,
    },
}

/// The host's cgroup layout and the parent path (relative to each hierarchy's root) under which
/// this worker's containers get their groups.
#[derive(Debug, Clone)]
pub struct Cgroups {
    layout: Layout,
    parent: PathBuf,
    /// A subtree this (ordinary) user was handed (relative to the hierarchy's root): groups are
    /// made and controllers handed down only below it, and a limit whose controller it lacks is
    /// not set (the runtime says which at start).
    delegated: Option<PathBuf>,
}

/// One container's groups (one directory on v2, one per controller on v1).
#[derive(Debug, Clone)]
pub struct Group {
    v2: bool,
    /// Each hierarchy's name, as a container sees it under its `/sys/fs/cgroup` (the mount
    /// point's own name on v1, such as `memory` or `cpu,cpuacct`; empty on v2), and the group's
    /// directory in it.
    dirs: Vec<(String, PathBuf)>,
    memory: Option<PathBuf>,
    /// Set only the limits whose controller the group has (a delegated group's).
    best_effort: bool,
}

fn write(path: &Path, value: &str) -> std::io::Result<()> {
    std::fs::write(path, value).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot write `{value}` to {}: {e}", path.display()),
        )
    })
}

impl Cgroups {
    /// Reads the host's cgroup mounts from `/proc/self/mountinfo`. A host whose unified hierarchy
    /// has the memory controller is treated as v2; otherwise the v1 hierarchies are used.
    pub fn detect(parent: &Path) -> std::io::Result<Cgroups> {
        let info = std::fs::read_to_string("/proc/self/mountinfo")?;
        let mut v2 = None;
        let (mut memory, mut cpu, mut pids) = (None, None, None);
        for line in info.lines() {
            // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let mount = left.split(' ').nth(4).unwrap_or("");
            let mut r = right.split(' ');
            let fstype = r.next().unwrap_or("");
            let super_opts = r.nth(1).unwrap_or("");
            match fstype {
                "cgroup2" if v2.is_none() => {
                    let controllers =
                        std::fs::read_to_string(Path::new(mount).join("cgroup.controllers"))
                            .unwrap_or_default();
                    if controllers.split_whitespace().any(|c| c == "memory") {
                        v2 = Some(PathBuf::from(mount));
                    }
                }
                "cgroup" => {
                    for opt in super_opts.split(',') {
                        let slot = match opt {
                            "memory" => &mut memory,
                            "cpu" => &mut cpu,
                            "pids" => &mut pids,
                            _ => continue,
                        };
                        slot.get_or_insert_with(|| PathBuf::from(mount));
                    }
                }
                _ => {}
            }
        }
        let layout = match v2 {
            Some(root) => Layout::V2(root),
            None if memory.is_some() || pids.is_some() => Layout::V1 { memory, cpu, pids },
            None => {
                return Err(std::io::Error::new(
                    ErrorKind::NotFound,
                    "no cgroup hierarchy with the memory or pids controller is mounted",
                ))
            }
        };
        Ok(Cgroups {
            layout,
            parent: parent.to_path_buf(),
            delegated: None,
        })
    }

    /// For an ordinary user: the cgroup v2 group this process runs in, when that user owns it
    /// (a delegated subtree, as `systemd-run --user -p Delegate=yes` gives one). The worker moves
    /// itself into a leaf of it (`sluice-worker`: v2 hands controllers down only from a group
    /// holding no process) and makes its containers' groups under `sluice/SCOPE` there.
    pub fn delegated(scope: &Path) -> std::io::Result<Option<Cgroups>> {
        use std::os::unix::fs::MetadataExt;
        let info = std::fs::read_to_string("/proc/self/mountinfo")?;
        let Some(mount) = info
            .lines()
            .filter_map(|l| l.split_once(" - "))
            .find(|(_, right)| right.starts_with("cgroup2 "))
            .and_then(|(left, _)| left.split(' ').nth(4).map(PathBuf::from))
        else {
            return Ok(None);
        };
        let own = std::fs::read_to_string("/proc/self/cgroup")?;
        let Some(rel) = own.lines().find_map(|l| l.strip_prefix("0::")) else {
            return Ok(None);
        };
        let rel = PathBuf::from(rel.trim().trim_start_matches('/'));
        let dir = mount.join(&rel);
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        let owned = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.uid() == me);
        if rel.as_os_str().is_empty()
            || !["", "cgroup.procs", "cgroup.subtree_control"]
                .iter()
                .all(|f| owned(&dir.join(f)))
        {
            return Ok(None);
        }
        let leaf = dir.join("sluice-worker");
        mkdir(&leaf)?;
        write(&leaf.join("cgroup.procs"), &std::process::id().to_string())?;
        // Fails while other processes share the group (a login session's): then no limits.
        let _ = enable_controllers(&dir);
        Ok(Some(Cgroups {
            layout: Layout::V2(mount),
            parent: rel.join("sluice").join(scope),
            delegated: Some(rel),
        }))
    }

    /// The delegated group's directory, where there is one.
    pub fn delegated_dir(&self) -> Option<PathBuf> {
        match (&self.layout, &self.delegated) {
            (Layout::V2(root), Some(rel)) => Some(root.join(rel)),
            _ => None,
        }
    }

    /// Of memory, cpu and pids, the controllers the delegated group does not hand down (its
    /// steps run without those limits).
    pub fn lacking(&self) -> Vec<&'static str> {
        let Some(dir) = self.delegated_dir() else {
            return Vec::new();
        };
        let have = std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
        ["memory", "cpu", "pids"]
            .into_iter()
            .filter(|c| !have.split_whitespace().any(|h| h == *c))
            .collect()
    }

    pub fn version(&self) -> u8 {
        match self.layout {
            Layout::V2(_) => 2,
            Layout::V1 { .. } => 1,
        }
    }

    fn roots(&self) -> Vec<(&'static str, PathBuf)> {
        match &self.layout {
            Layout::V2(root) => vec![("unified", root.clone())],
            Layout::V1 { memory, cpu, pids } => [("memory", memory), ("cpu", cpu), ("pids", pids)]
                .into_iter()
                .filter_map(|(n, p)| p.clone().map(|p| (n, p)))
                .collect(),
        }
    }

    /// Every directory container `id`'s group may have (nothing is created here): what to clean
    /// up after a crash.
    pub fn group(&self, id: &str) -> Group {
        let v2 = matches!(self.layout, Layout::V2(_));
        let mut dirs = Vec::new();
        let mut memory = None;
        for (name, root) in self.roots() {
            let dir = root.join(&self.parent).join(id);
            if name == "memory" || v2 {
                memory = Some(dir.clone());
            }
            let seen_as = match v2 {
                true => String::new(),
                false => root
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            };
            dirs.push((seen_as, dir));
        }
        Group {
            v2,
            dirs,
            memory,
            best_effort: false,
        }
    }

    /// Creates container `id`'s group with its limits.
    pub fn create(&self, id: &str, limits: &Limits) -> std::io::Result<Group> {
        if let Layout::V2(root) = &self.layout {
            // Each level above the container must hand the controllers down (below the
            // delegated group only, for an ordinary user, and as far as it can).
            let start = self.delegated.clone().unwrap_or_default();
            let mut dir = root.join(&start);
            let below = self.parent.strip_prefix(&start).unwrap_or(&self.parent);
            let hand_down = |d: &Path| match enable_controllers(d) {
                Err(_) if self.delegated.is_some() => Ok(()),
                r => r,
            };
            for part in below.components() {
                hand_down(&dir)?;
                dir.push(part);
                mkdir(&dir)?;
            }
            hand_down(&dir)?;
        }
        let mut group = self.group(id);
        group.best_effort = self.delegated.is_some();
        if !group.v2 {
            // Joining a v1 hierarchy is the costliest part of starting a process there: join only
            // those with a limit to enforce (pids always, to hold fork bombs and find every process).
            let roots = self.roots();
            group.dirs.retain(|(_, d)| {
                roots.iter().any(|(name, root)| {
                    d.starts_with(root)
                        && match *name {
                            "memory" => limits.memory_bytes.is_some(),
                            "cpu" => limits.cpu_millis.is_some(),
                            _ => true,
                        }
                })
            });
            if limits.memory_bytes.is_none() {
                group.memory = None;
            }
        }
        for (_, dir) in &group.dirs {
            std::fs::create_dir_all(dir).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot create cgroup {}: {e}", dir.display()),
                )
            })?;
        }
        if let Err(e) = group.limit(limits) {
            group.remove();
            return Err(e);
        }
        Ok(group)
    }

    /// Groups left under this worker's parent (by a worker that crashed), by container id.
    pub fn leftovers(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for (_, root) in self.roots() {
            for e in std::fs::read_dir(root.join(&self.parent))
                .into_iter()
                .flatten()
                .flatten()
            {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    let id = e.file_name().to_string_lossy().into_owned();
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
            }
        }
        ids
    }
}

fn mkdir(dir: &Path) -> std::io::Result<()> {
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() != ErrorKind::AlreadyExists => Err(std::io::Error::new(
            e.kind(),
            format!("cannot create cgroup {}: {e}", dir.display()),
        )),
        _ => Ok(()),
    }
}

fn enable_controllers(dir: &Path) -> std::io::Result<()> {
    let available = std::fs::read_to_string(dir.join("cgroup.controllers"))?;
    let enabled = std::fs::read_to_string(dir.join("cgroup.subtree_control"))?;
    let want: Vec<String> = ["memory", "cpu", "pids"]
        .into_iter()
        .filter(|c| available.split_whitespace().any(|a| a == *c))
        .filter(|c| !enabled.split_whitespace().any(|a| a == *c))
        .map(|c| format!("+{c}"))
        .collect();
    if want.is_empty() {
        return Ok(());
    }
    write(&dir.join("cgroup.subtree_control"), &want.join(" "))
}

impl Group {
    /// Where a container sees this group under its `/sys/fs/cgroup`: each hierarchy's name and
    /// the group's directory in it (one, with an empty name, on v2).
    pub fn views(&self) -> Vec<(String, PathBuf)> {
        self.dirs.clone()
    }

    /// The `cgroup.procs` files a process writes itself into to join this group.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .map(|(_, d)| d.join("cgroup.procs"))
            .collect()
    }

    fn file(&self, name: &str) -> Option<PathBuf> {
        self.dirs
            .iter()
            .map(|(_, d)| d.join(name))
            .find(|p| p.exists())
    }

    fn limit(&self, l: &Limits) -> std::io::Result<()> {
        if let Some(bytes) = l.memory_bytes {
            if self.v2 {
                self.set("memory.max", &bytes.to_string())?;
                // No swapping past the limit: a step over its memory is killed, not slowed.
                self.set_if_present("memory.swap.max", "0")?;
            } else {
                self.set("memory.limit_in_bytes", &bytes.to_string())?;
                self.set_if_present("memory.memsw.limit_in_bytes", &bytes.to_string())?;
                self.set_if_present("memory.swappiness", "0")?;
            }
        }
        if let Some(m) = l.cpu_millis {
            let quota = (m * CPU_PERIOD_US / 1000).max(1000);
            if self.v2 {
                self.set("cpu.max", &format!("{quota} {CPU_PERIOD_US}"))?;
            } else {
                self.set("cpu.cfs_period_us", &CPU_PERIOD_US.to_string())?;
                self.set("cpu.cfs_quota_us", &quota.to_string())?;
            }
        }
        if let Some(p) = l.pids {
            self.set("pids.max", &p.to_string())?;
        }
        Ok(())
    }

    fn set(&self, name: &str, value: &str) -> std::io::Result<()> {
        match self.file(name) {
            Some(p) => write(&p, value),
            None if self.best_effort => Ok(()),
            None => Err(std::io::Error::new(
                ErrorKind::NotFound,
                format!("this host's cgroups have no `{name}` (is the controller enabled?)"),
            )),
        }
    }

    fn set_if_present(&self, name: &str, value: &str) -> std::io::Result<()> {
        match self.file(name) {
            Some(p) => write(&p, value),
            None => Ok(()),
        }
    }

    /// Whether the kernel killed a process of this group for exceeding its memory limit.
    pub fn oom_killed(&self) -> bool {
        let Some(dir) = &self.memory else {
            return false;
        };
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        std::fs::read_to_string(dir.join(file))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix("oom_kill "))
            .any(|n| n.trim().parse::<u64>().unwrap_or(0) > 0)
    }

    /// The processes in the group (host pids).
    pub fn pids(&self) -> Vec<i32> {
        let mut out = Vec::new();
        for f in self.procs_files() {
            for l in std::fs::read_to_string(f).unwrap_or_default().lines() {
                if let Ok(p) = l.trim().parse::<i32>() {
                    if !out.contains(&p) {
                        out.push(p);
                    }
                }
            }
        }
        out
    }

    /// Kills every process in the group and waits (briefly) until it is empty.
    pub fn kill_all(&self) {
        if self.v2 {
            if let Some(k) = self.file("cgroup.kill") {
                let _ = std::fs::write(k, "1");
            }
        }
        for _ in 0..200 {
            let pids = self.pids();
            if pids.is_empty() {
                return;
            }
            for p in pids {
                // SAFETY: kill(2) has no memory-safety preconditions.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Removes the group's directories (a group is removable once its processes have exited).
    pub fn remove(&self) {
        for (_, dir) in &self.dirs {
            for attempt in 0..100 {
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == ErrorKind::NotFound => break,
                    Err(e) => {
                        if attempt == 99 {
                            tracing::warn!(cgroup = %dir.display(), error = %e, "cannot remove cgroup");
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where this host mounts its cgroup v2 hierarchy.
    fn v2_mount() -> PathBuf {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        info.lines()
            .filter_map(|l| l.split_once(" - "))
            .find(|(_, right)| right.starts_with("cgroup2 "))
            .and_then(|(left, _)| left.split(' ').nth(4).map(PathBuf::from))
            .expect("this test needs a cgroup2 mount (this host's unified hierarchy)")
    }

    /// The v2 code path on this host's real cgroup2 hierarchy (which holds no controllers here:
    /// the v1 hierarchies have them, and every container test runs on those): a group is made,
    /// joined, killed through `cgroup.kill`, removed; a limit it cannot hold is an error that names
    /// the file, and one it can hold is written.
    #[test]
    fn the_v2_path_makes_joins_kills_and_removes_a_group_on_a_real_cgroup2_hierarchy() {
        // SAFETY: geteuid has no preconditions.
        assert!(
            unsafe { libc::geteuid() } == 0,
            "this test needs root, as scripts/test runs it"
        );
        let root = v2_mount();
        let parent = PathBuf::from(format!("sluice-test/{}", std::process::id()));
        let cg = Cgroups {
            layout: Layout::V2(root.clone()),
            parent: parent.clone(),
            delegated: None,
        };
        assert_eq!(cg.version(), 2);
        let g = cg.create("c1", &Limits::default()).unwrap();
        let dir = root.join(&parent).join("c1");
        assert!(dir.join("cgroup.procs").exists());
        let mut child = std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .unwrap();
        std::fs::write(dir.join("cgroup.procs"), child.id().to_string()).unwrap();
        assert_eq!(g.pids(), [child.id() as i32]);
        g.kill_all();
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
        assert!(g.pids().is_empty());
        g.remove();
        assert!(!dir.exists());
        let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap();
        let limits = Limits {
            pids: Some(64),
            ..Default::default()
        };
        match controllers.split_whitespace().any(|c| c == "pids") {
            true => {
                let g = cg.create("c2", &limits).unwrap();
                assert_eq!(
                    std::fs::read_to_string(root.join(&parent).join("c2/pids.max")).unwrap(),
                    "64\n"
                );
                g.remove();
            }
            false => {
                let e = cg.create("c2", &limits).unwrap_err().to_string();
                assert!(e.contains("`pids.max`"), "{e}");
                assert!(
                    !root.join(&parent).join("c2").exists(),
                    "a failed group is removed"
                );
            }
        }
        let _ = std::fs::remove_dir(root.join(&parent));
        let _ = std::fs::remove_dir(root.join("sluice-test"));
    }
}
