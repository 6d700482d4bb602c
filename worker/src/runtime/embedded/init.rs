//! The container's first process, between fork and exec: joins its cgroups, enters its own
//! namespaces, builds the root filesystem (overlay, /proc, a minimal /dev, /sys, bind mounts),
//! pivots into it, hides and write-protects what Docker hides, sets hostname, loopback, user and
//! capabilities, and execs the step. Runs only in the helper's forked child, never in the worker.

use super::config::{BindMount, ContainerConfig};
use super::userns;
use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{chdir, pivot_root, sethostname, Gid, Uid};
use sluice_sdk::beneath::{self, Dir, Kind};
use sluice_spec::NetworkMode;
use std::ffi::CString;
use std::io::ErrorKind;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Why the container could not start, and the exit code that says so (126: found but cannot run,
/// 127: not found, as shells have it).
pub struct InitError {
    pub code: i32,
    pub message: String,
}

fn fail(what: impl std::fmt::Display) -> impl FnOnce(nix::Error) -> InitError {
    move |e| InitError {
        code: 1,
        message: format!("{what}: {}", e.desc()),
    }
}

fn io_fail(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> InitError {
    move |e| InitError {
        code: 1,
        message: format!("{what}: {e}"),
    }
}

const NONE: Option<&str> = None;

/// How a container waits, after its namespaces exist, for its network to be wired: it writes a
/// byte to `ready`, then goes on once `go` carries one (its end of file means stop).
pub struct Hold {
    pub ready: OwnedFd,
    pub go: OwnedFd,
}

/// Sets the container up and execs its process; returns only on failure.
pub fn run(cfg: &ContainerConfig, hold: Option<Hold>) -> InitError {
    match setup(cfg, hold) {
        Ok((path, argv, env)) => {
            let e = nix::unistd::execve(&path, &argv, &env).unwrap_err();
            InitError {
                code: if e == nix::Error::ENOENT { 127 } else { 126 },
                message: format!("cannot exec `{}`: {}", cfg.process.args[0], e.desc()),
            }
        }
        Err(e) => e,
    }
}

type Exec = (CString, Vec<CString>, Vec<CString>);

fn setup(cfg: &ContainerConfig, hold: Option<Hold>) -> Result<Exec, InitError> {
    // Compiled first, applied last (just before exec): a profile that cannot be built stops
    // the container before anything is set up.
    let filter = match cfg.seccomp {
        true => Some(
            super::seccomp::filter(&cfg.capabilities).map_err(|m| InitError {
                code: 1,
                message: m,
            })?,
        ),
        false => None,
    };
    // The container's stdin is empty; fd 0 of the helper is its control socket.
    let null = std::fs::File::open("/dev/null").map_err(io_fail("cannot open /dev/null"))?;
    nix::unistd::dup2_stdin(&null).map_err(fail("cannot redirect stdin"))?;
    drop(null);
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(fail("cannot set the parent-death signal"))?;
    for procs in &cfg.cgroup_procs {
        std::fs::write(procs, "0")
            .map_err(io_fail(format!("cannot join cgroup {}", procs.display())))?;
    }
    // A cgroup namespace rooted at the group just joined: the container sees its own group as `/`.
    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWCGROUP;
    match cfg.network {
        NetworkMode::None | NetworkMode::Bridge => flags |= CloneFlags::CLONE_NEWNET,
        NetworkMode::Host => {}
    }
    unshare(flags).map_err(fail("cannot create the container's namespaces"))?;
    if let Some(h) = hold {
        use std::io::{Read, Write};
        let mut go = [0u8; 1];
        let told = std::fs::File::from(h.ready).write_all(&[1]).is_ok()
            && matches!(std::fs::File::from(h.go).read(&mut go), Ok(1));
        if !told {
            return Err(InitError {
                code: 1,
                message: "stopped before it started: its network could not be wired".into(),
            });
        }
    }
    nix::sys::stat::umask(Mode::empty());
    mount(NONE, "/", NONE, MsFlags::MS_REC | MsFlags::MS_PRIVATE, NONE)
        .map_err(fail("cannot make the mount namespace private"))?;
    // The mapping the image's layers and the task's mounts are seen through, where the
    // container gets a user namespace.
    let mapping = cfg
        .userns
        .as_ref()
        .map(userns::mapping)
        .transpose()
        .map_err(|m| InitError {
            code: 1,
            message: m,
        })?;
    mount_rootfs(cfg, mapping.as_ref())?;
    // Every mount point is resolved inside the root filesystem (the image's links are read as the
    // container would read them) and mounted through its handle, so nothing lands on the host.
    let root = Dir::open(&cfg.rootfs.target).map_err(|e| InitError {
        code: 1,
        message: format!("cannot open the root filesystem: {e}"),
    })?;
    etc_files(cfg, &root)?;
    mount_kernel_fs(&root, cfg.rootless.is_some())?;
    mount_cgroups(cfg, &root)?;
    mount_dev(&root, cfg.rootless.is_some())?;
    for b in &cfg.mounts {
        bind(&root, b, mapping.as_ref())?;
    }
    drop(root);
    drop(mapping);
    enter(&cfg.rootfs.target)?;
    for p in &cfg.masked_paths {
        mask(p)?;
    }
    for p in &cfg.readonly_paths {
        readonly(p)?;
    }
    nix::sys::stat::umask(Mode::from_bits_truncate(0o022));
    sethostname(&cfg.hostname).map_err(fail("cannot set the hostname"))?;
    if cfg.network != NetworkMode::Host {
        loopback_up()?;
    }
    // Last of all that needs the host's root: from here on root is root of its own user
    // namespace only.
    if let Some(map) = &cfg.userns {
        userns::enter(map).map_err(|m| InitError {
            code: 1,
            message: m,
        })?;
    }
    let user = super::user::resolve(&cfg.process.user).map_err(|m| InitError {
        code: 1,
        message: m,
    })?;
    let mut env = cfg.process.env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    let cwd = &cfg.process.cwd;
    if let Err(e) = std::fs::create_dir_all(cwd) {
        return Err(io_fail(format!("cannot create working directory {cwd}"))(e));
    }
    chdir(cwd.as_str()).map_err(fail(format!("cannot enter working directory {cwd}")))?;
    drop_privileges(cfg, &user)?;
    let path = find_program(&cfg.process.args[0], &env)?;
    let cstr = |s: &str| {
        CString::new(s).map_err(|_| InitError {
            code: 1,
            message: format!("`{s}` contains a NUL byte"),
        })
    };
    let argv = cfg
        .process
        .args
        .iter()
        .map(|a| cstr(a))
        .collect::<Result<Vec<_>, _>>()?;
    let envp = env.iter().map(|a| cstr(a)).collect::<Result<Vec<_>, _>>()?;
    let path = cstr(&path)?;
    if let Some(f) = &filter {
        super::seccomp::apply(f).map_err(|m| InitError {
            code: 1,
            message: m,
        })?;
    }
    Ok((path, argv, envp))
}

fn mount_rootfs(cfg: &ContainerConfig, mapping: Option<&OwnedFd>) -> Result<(), InitError> {
    let r = &cfg.rootfs;
    // Layers are named relative to their common directory, which keeps the options under a page.
    chdir(&r.layers_root).map_err(fail(format!("cannot enter {}", r.layers_root.display())))?;
    let lower = match (mapping, &cfg.userns) {
        (Some(ns), Some(map)) => idmapped_layers(r, ns, map)?,
        _ => r.lower.join(":"),
    };
    // In an ordinary user's namespace overlayfs keeps its whiteouts and opaque marks in
    // `user.` extended attributes.
    let opts = format!(
        "lowerdir={lower},upperdir={},workdir={}{}",
        r.upper.display(),
        r.work.display(),
        if cfg.rootless.is_some() {
            ",userxattr"
        } else {
            ""
        }
    );
    // `volatile` (Linux 5.10): the writable layer is thrown away with the container, so its
    // unmount need not sync the filesystem under it, which would write out everything else
    // dirty there too (a 2 GB output just written took 0.9 s to the step's end). An older kernel
    // refuses the option, and mounts without it.
    let mount_with = |opts: &str| {
        mount(
            Some("overlay"),
            &r.target,
            Some("overlay"),
            MsFlags::empty(),
            Some(opts),
        )
    };
    match mount_with(&format!("{opts},volatile")) {
        Err(nix::Error::EINVAL) => mount_with(&opts),
        r => r,
    }
    .map_err(fail(format!(
        "cannot mount the overlay root filesystem at {}",
        r.target.display()
    )))?;
    chdir("/").map_err(fail("cannot leave the layers directory"))
}

/// Each layer seen through the container's id mapping, attached in this mount namespace under
/// the container's state directory; the upper directory's top owned by the container's root
/// (what the step writes lands there as the host ids it runs as). Returns the `lowerdir` list.
fn idmapped_layers(
    r: &super::config::Rootfs,
    ns: &OwnedFd,
    map: &userns::IdMap,
) -> Result<String, InitError> {
    let state = r.upper.parent().unwrap_or(Path::new("/"));
    let staged = state.join("lower");
    let mut names = Vec::new();
    // Opened from the layers' directory (the working directory here), named relative to the
    // state directory, where the overlay is mounted from: its options stay under a page.
    for (i, layer) in r.lower.iter().enumerate() {
        let src = nix::fcntl::open(
            layer.as_str(),
            OFlag::O_PATH | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(fail(format!("cannot open layer {layer}")))?;
        let tree = userns::idmapped_clone(&src, ns)
            .map_err(fail(format!("cannot map the ids of layer {layer}")))?;
        let at = staged.join(i.to_string());
        std::fs::create_dir_all(&at).map_err(io_fail(format!("cannot create {}", at.display())))?;
        let point = nix::fcntl::open(&at, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(fail(format!("cannot open {}", at.display())))?;
        userns::attach(&tree, &point).map_err(fail(format!("cannot attach layer {layer}")))?;
        names.push(format!("lower/{i}"));
    }
    chdir(state).map_err(fail(format!("cannot enter {}", state.display())))?;
    nix::unistd::chown(
        &r.upper,
        Some(Uid::from_raw(map.host)),
        Some(Gid::from_raw(map.host)),
    )
    .map_err(fail(
        "cannot hand the upper directory to the container's root",
    ))?;
    Ok(names.join(":"))
}

/// Writes `/etc/hosts` and friends to a tmpfs of this mount namespace and binds them over the
/// image's, so that nothing about them touches the disk.
fn etc_files(cfg: &ContainerConfig, root: &Dir) -> Result<(), InitError> {
    let dir = &cfg.etc_dir;
    mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("size=64k,mode=755"),
    )
    .map_err(fail("cannot mount a tmpfs for /etc files"))?;
    for (name, text) in &cfg.etc {
        let source = dir.join(name);
        std::fs::write(&source, text).map_err(io_fail(format!("cannot write /etc/{name}")))?;
        std::fs::set_permissions(&source, std::fs::Permissions::from_mode(0o644))
            .map_err(io_fail(format!("cannot write /etc/{name}")))?;
        bind(
            root,
            &BindMount {
                source,
                target: format!("/etc/{name}"),
                readonly: false,
                beneath: None,
            },
            None,
        )?;
    }
    Ok(())
}

/// The path that reaches what `fd` names, for mount(2).
fn proc_fd(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// The mount point `target` inside the root filesystem, made if missing.
fn mount_point(root: &Dir, target: &str, dir: bool) -> Result<OwnedFd, InitError> {
    root.make_in_root(target, dir).map_err(|e| InitError {
        code: 1,
        message: format!("cannot make the mount point {target}: {e}"),
    })
}

fn mount_kernel_fs(root: &Dir, rootless: bool) -> Result<(), InitError> {
    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let proc_dir = mount_point(root, "/proc", true)?;
    mount(
        Some("proc"),
        proc_fd(&proc_dir).as_str(),
        Some("proc"),
        nosuid,
        NONE,
    )
    .map_err(fail("cannot mount /proc"))?;
    let sys = mount_point(root, "/sys", true)?;
    let mounted = mount(
        Some("sysfs"),
        proc_fd(&sys).as_str(),
        Some("sysfs"),
        nosuid | MsFlags::MS_RDONLY,
        NONE,
    );
    match mounted {
        // Rootless on the host's network: sysfs belongs to the host's network namespace, so
        // the host's /sys is bound instead, read-only (as rootless Podman does).
        Err(nix::Error::EPERM) if rootless => {
            let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
            mount(Some("/sys"), proc_fd(&sys).as_str(), NONE, flags, NONE)
                .map_err(fail("cannot mount /sys"))?;
            let sys = mount_point(root, "/sys", true)?;
            mount(
                NONE,
                proc_fd(&sys).as_str(),
                NONE,
                flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | nosuid,
                NONE,
            )
            .map_err(fail("cannot make /sys read-only"))
        }
        r => r.map_err(fail("cannot mount /sys")),
    }
}

/// The container's own cgroup directories, read-only, under `/sys/fs/cgroup`.
fn mount_cgroups(cfg: &ContainerConfig, root: &Dir) -> Result<(), InitError> {
    const BASE: &str = "/sys/fs/cgroup";
    let view = |name: &str, dir: &Path| BindMount {
        source: dir.to_path_buf(),
        target: match name {
            "" => BASE.to_string(),
            n => format!("{BASE}/{n}"),
        },
        readonly: true,
        beneath: None,
    };
    match cfg.cgroup_views.as_slice() {
        [] => Ok(()),
        // v2: the group is the whole of /sys/fs/cgroup.
        [(name, dir)] if name.is_empty() => bind(root, &view(name, dir), None),
        views => {
            // v1: a tmpfs with one directory per hierarchy, made read-only once filled.
            let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            let base = mount_point(root, BASE, true)?;
            mount(
                Some("tmpfs"),
                proc_fd(&base).as_str(),
                Some("tmpfs"),
                nosuid,
                Some("size=64k,mode=755"),
            )
            .map_err(fail("cannot mount /sys/fs/cgroup"))?;
            for (name, dir) in views {
                bind(root, &view(name, dir), None)?;
            }
            let base = mount_point(root, BASE, true)?;
            mount(
                NONE,
                proc_fd(&base).as_str(),
                NONE,
                nosuid | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                NONE,
            )
            .map_err(fail("cannot make /sys/fs/cgroup read-only"))
        }
    }
}

/// A tmpfs /dev with the usual character devices, ptys, shared memory and message queues.
fn mount_dev(root: &Dir, rootless: bool) -> Result<(), InitError> {
    let point = mount_point(root, "/dev", true)?;
    mount(
        Some("tmpfs"),
        proc_fd(&point).as_str(),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )
    .map_err(fail("cannot mount /dev"))?;
    // Looked up again, the path now reaches the new tmpfs.
    let dev = mount_point(root, "/dev", true)?;
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        if rootless {
            // Only root may make device nodes: the host's are bound instead.
            bind(
                root,
                &BindMount {
                    source: Path::new("/dev").join(name),
                    target: format!("/dev/{name}"),
                    readonly: false,
                    beneath: None,
                },
                None,
            )?;
            continue;
        }
        nix::sys::stat::mknodat(
            &dev,
            name,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(major, minor),
        )
        .map_err(fail(format!("cannot create /dev/{name}")))?;
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        nix::unistd::symlinkat(to, &dev, link)
            .map_err(fail(format!("cannot create /dev/{link}")))?;
    }
    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    for (dir, fstype, flags, opts) in [
        (
            "pts",
            "devpts",
            nosuid,
            "newinstance,ptmxmode=0666,mode=0620",
        ),
        (
            "shm",
            "tmpfs",
            nosuid | MsFlags::MS_NODEV,
            "mode=1777,size=65536k",
        ),
        ("mqueue", "mqueue", nosuid | MsFlags::MS_NODEV, ""),
    ] {
        let p = mount_point(root, &format!("/dev/{dir}"), true)?;
        mount(
            Some(fstype),
            proc_fd(&p).as_str(),
            Some(fstype),
            flags,
            Some(opts),
        )
        .map_err(fail(format!("cannot mount /dev/{dir}")))?;
    }
    Ok(())
}

/// Bind-mounts `b.source` at `b.target` in the root filesystem. A step's output (`b.beneath`)
/// is opened beneath its directory with no link followed, and mounted through that handle.
fn bind(root: &Dir, b: &BindMount, mapping: Option<&OwnedFd>) -> Result<(), InitError> {
    let cannot = |why: String| InitError {
        code: 1,
        message: format!("cannot mount {} at {}: {why}", b.source.display(), b.target),
    };
    let (source, kind) = match &b.beneath {
        Some(top) => {
            let rel = beneath::strip_root(&b.source, top)
                .ok_or_else(|| cannot(format!("it is not inside {}", top.display())))?;
            Dir::open(top)
                .and_then(|d| d.handle(rel))
                .map_err(|e| cannot(e.to_string()))?
        }
        None => {
            let fd = nix::fcntl::open(&b.source, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
                .map_err(|e| cannot(e.desc().to_string()))?;
            let st = nix::sys::stat::fstat(&fd).map_err(|e| cannot(e.desc().to_string()))?;
            let kind = match st.st_mode & SFlag::S_IFMT.bits() {
                m if m == SFlag::S_IFDIR.bits() => Kind::Dir,
                _ => Kind::File,
            };
            (fd, kind)
        }
    };
    let is_dir = match kind {
        Kind::Dir => true,
        Kind::File => false,
        Kind::Link => return Err(cannot("it is a symbolic link".into())),
        Kind::Special => return Err(cannot("it is a FIFO, socket or device".into())),
    };
    // The mount point is made in the overlay's upper layer (or on /dev's tmpfs).
    let target = mount_point(root, &b.target, is_dir)?;
    let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
    let what = || format!("cannot mount {} at {}", b.source.display(), b.target);
    match mapping {
        // Seen through the container's id mapping (a file system that cannot be idmapped is
        // mounted as it is: its files show as owned by nobody).
        Some(ns) => {
            let tree = match userns::idmapped_clone(&source, ns) {
                Ok(t) => t,
                Err(_) => userns::clone(&source).map_err(fail(what()))?,
            };
            userns::attach(&tree, &target).map_err(fail(what()))?;
        }
        None => mount(
            Some(proc_fd(&source).as_str()),
            proc_fd(&target).as_str(),
            NONE,
            flags,
            NONE,
        )
        .map_err(fail(what()))?,
    }
    if b.readonly {
        // Looked up again, the path reaches the new mount.
        let target = mount_point(root, &b.target, is_dir)?;
        mount(
            NONE,
            proc_fd(&target).as_str(),
            NONE,
            flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID,
            NONE,
        )
        .map_err(fail(format!("cannot make {} read-only", b.target)))?;
    }
    Ok(())
}

/// Makes `root` the container's `/` and lets go of the host's tree.
fn enter(root: &Path) -> Result<(), InitError> {
    chdir(root).map_err(fail("cannot enter the root filesystem"))?;
    pivot_root(".", ".").map_err(fail("cannot pivot into the root filesystem"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(fail("cannot detach the host's root"))?;
    chdir("/").map_err(fail("cannot enter /"))
}

fn mask(path: &str) -> Result<(), InitError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_fail(format!("cannot mask {path}"))(e)),
    };
    let r = if meta.is_dir() {
        mount(Some("tmpfs"), path, Some("tmpfs"), MsFlags::MS_RDONLY, NONE)
    } else {
        mount(Some("/dev/null"), path, NONE, MsFlags::MS_BIND, NONE)
    };
    r.map_err(fail(format!("cannot mask {path}")))
}

fn readonly(path: &str) -> Result<(), InitError> {
    if !Path::new(path).exists() {
        return Ok(());
    }
    let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
    mount(Some(path), path, NONE, flags, NONE).map_err(fail(format!("cannot protect {path}")))?;
    mount(
        NONE,
        path,
        NONE,
        flags
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC,
        NONE,
    )
    .map_err(fail(format!("cannot make {path} read-only")))
}

/// Brings the private network namespace's loopback interface up.
fn loopback_up() -> Result<(), InitError> {
    // SAFETY: plain socket and ioctl calls on a zeroed `ifreq` that outlives them.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io_fail("cannot open a socket to configure loopback")(
                std::io::Error::last_os_error(),
            ));
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let mut r = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req);
        if r == 0 {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            r = libc::ioctl(fd, libc::SIOCSIFFLAGS, &req);
        }
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if r != 0 {
            return Err(io_fail("cannot bring loopback up")(err));
        }
    }
    Ok(())
}

fn drop_privileges(cfg: &ContainerConfig, user: &super::user::User) -> Result<(), InitError> {
    use caps::{CapSet, Capability};
    let keep: caps::CapsHashSet = cfg
        .capabilities
        .iter()
        .filter_map(|c| c.parse::<Capability>().ok())
        .collect();
    let capfail = |what: &'static str| {
        move |e: caps::errors::CapsError| InitError {
            code: 1,
            message: format!("{what}: {e}"),
        }
    };
    for cap in caps::all() {
        if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap).map_err(capfail("cannot drop a capability"))?;
        }
    }
    if let Some(r) = &cfg.rootless {
        if user.uid > r.max_id() || user.gid > r.max_id() {
            return Err(InitError {
                code: 1,
                message: format!(
                    "this rootless worker maps container ids 0 to {} only, so the step cannot run as user {}:{} (give the worker's user a range in /etc/subuid and /etc/subgid, or run it as root)",
                    r.max_id(),
                    user.uid,
                    user.gid
                ),
            });
        }
    }
    // A rootless user namespace that maps one id gave up `setgroups` to map its group.
    if cfg.rootless.is_none_or(|r| r.sub.is_some()) {
        nix::unistd::setgroups(
            &user
                .groups
                .iter()
                .map(|g| Gid::from_raw(*g))
                .collect::<Vec<_>>(),
        )
        .map_err(fail("cannot set supplementary groups"))?;
    }
    nix::unistd::setgid(Gid::from_raw(user.gid))
        .map_err(fail(format!("cannot set gid {}", user.gid)))?;
    nix::unistd::setuid(Uid::from_raw(user.uid))
        .map_err(fail(format!("cannot set uid {}", user.uid)))?;
    if user.uid == 0 {
        caps::set(None, CapSet::Effective, &keep).map_err(capfail("cannot set capabilities"))?;
        caps::set(None, CapSet::Permitted, &keep).map_err(capfail("cannot set capabilities"))?;
    }
    // Nothing is inherited across exec beyond what the rules above give (as Docker has it now).
    caps::clear(None, CapSet::Inheritable)
        .map_err(capfail("cannot clear inheritable capabilities"))?;
    caps::clear(None, CapSet::Ambient).map_err(capfail("cannot clear ambient capabilities"))?;
    nix::sys::prctl::set_no_new_privs().map_err(fail("cannot set no_new_privs"))
}

/// Finds the program as `execvp` would, but in the container's `PATH`.
fn find_program(name: &str, env: &[String]) -> Result<String, InitError> {
    if name.contains('/') {
        return Ok(name.to_string());
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(super::config::DEFAULT_PATH);
    let mut found_unrunnable = None;
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = format!("{}/{name}", dir.trim_end_matches('/'));
        if let Ok(meta) = std::fs::metadata(&candidate) {
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
            found_unrunnable.get_or_insert(candidate);
        }
    }
    Err(match found_unrunnable {
        Some(c) => InitError {
            code: 126,
            message: format!("`{c}` is not an executable file"),
        },
        None => InitError {
            code: 127,
            message: format!("executable `{name}` not found in $PATH ({path})"),
        },
    })
}
