//! User namespaces: root in a container is an unprivileged user on the host, as Docker's
//! `userns-remap` and Kubernetes' `hostUsers: false` have it. The container's ids 0..count are
//! host ids `host..host+count`; the image's layers and the task's mounts are seen through
//! idmapped mounts (host id 0 shows as the container's 0), so the image's ownership is kept, the
//! task's outputs land on the host as before, and nothing is copied or chowned.
//!
//! The container is built by real root (mounts, pivot, masks, hostname, loopback), then enters
//! its user namespace just before it drops its capabilities: its mount, network and other
//! namespaces stay owned by the host's, so root inside holds no capability over them.

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use serde::{Deserialize, Serialize};
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The host ids a container's ids are mapped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    /// The host id of the container's root.
    pub host: u32,
    /// How many ids are mapped (the container's 0..count).
    pub count: u32,
}

impl IdMap {
    /// sluice's default range: 65536 ids from 0x70000000, far above the ranges `useradd` hands
    /// out in /etc/subuid (from 100000 up) and every real user's id.
    pub const DEFAULT: IdMap = IdMap {
        host: 0x7000_0000,
        count: 65536,
    };

    fn line(&self) -> String {
        format!("0 {} {}\n", self.host, self.count)
    }
}

/// Whether this kernel gives what the remapping needs: user namespaces, and overlayfs over
/// idmapped layers (Linux 5.19).
pub fn supported() -> Result<(), String> {
    let max = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .map_err(|e| format!("cannot read /proc/sys/user/max_user_namespaces: {e}"))?;
    if max.trim() == "0" {
        return Err("user namespaces are disabled (user.max_user_namespaces is 0)".into());
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) < (5, 19) {
        return Err(format!(
            "Linux {major}.{minor} has no overlayfs over idmapped layers (5.19 has)"
        ));
    }
    Ok(())
}

// The new mount API (Linux 5.12): not in nix.
const OPEN_TREE_CLONE: libc::c_uint = 1;
const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const AT_EMPTY_PATH: libc::c_uint = libc::AT_EMPTY_PATH as libc::c_uint;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn empty() -> CString {
    CString::default()
}

/// A detached copy of the mount tree at `source` (an `O_PATH` descriptor), its ids mapped through
/// `userns`. `Err` when the file system cannot be idmapped.
pub fn idmapped_clone(source: &OwnedFd, userns: &OwnedFd) -> Result<OwnedFd, Errno> {
    let tree = clone(source)?;
    let path = empty();
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: as above; `attr` outlives the call and its size is passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            path.as_ptr(),
            AT_EMPTY_PATH | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(tree)
}

/// A plain detached copy of the mount tree at `source` (for a file system that cannot be
/// idmapped).
pub fn clone(source: &OwnedFd) -> Result<OwnedFd, Errno> {
    let path = empty();
    // SAFETY: as in `idmapped_clone`.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            source.as_raw_fd(),
            path.as_ptr(),
            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE,
        )
    };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel just returned this descriptor to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Attaches the detached mount `tree` on the mount point `target` (an `O_PATH` descriptor).
pub fn attach(tree: &OwnedFd, target: &OwnedFd) -> Result<(), Errno> {
    let path = empty();
    // SAFETY: as above.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            path.as_ptr(),
            target.as_raw_fd(),
            path.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

fn pipe() -> Result<(std::fs::File, std::fs::File), String> {
    let (r, w) = nix::unistd::pipe().map_err(|e| format!("cannot make a pipe: {}", e.desc()))?;
    Ok((std::fs::File::from(r), std::fs::File::from(w)))
}

fn write_maps(pid: &str, map: &IdMap) -> std::io::Result<()> {
    std::fs::write(format!("/proc/{pid}/uid_map"), map.line())?;
    std::fs::write(format!("/proc/{pid}/gid_map"), map.line())
}

/// A user namespace with `map`, for idmapped mounts: a child makes it, this process (root)
/// writes its map and keeps a handle on it, and the child exits.
pub fn mapping(map: &IdMap) -> Result<OwnedFd, String> {
    let (mut made_r, mut made_w) = pipe()?;
    let (mut done_r, mut done_w) = pipe()?;
    // SAFETY: the container's first process is single-threaded; the child only makes syscalls.
    match unsafe { fork() }.map_err(|e| format!("cannot fork: {}", e.desc()))? {
        ForkResult::Child => {
            drop((made_r, done_w));
            let ok = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER).is_ok();
            // Its pid as the host's /proc (still this process's /proc) names it.
            let me = std::fs::read_link("/proc/self")
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let said = if ok { me } else { String::new() };
            let _ = made_w.write_all(said.as_bytes());
            drop(made_w);
            let mut b = [0u8; 1];
            let _ = done_r.read(&mut b);
            // SAFETY: leaving the forked child without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop((made_w, done_r));
            let mut pid = String::new();
            let _ = made_r.read_to_string(&mut pid);
            let result = (|| {
                if pid.is_empty() {
                    return Err("cannot make a user namespace".to_string());
                }
                write_maps(&pid, map)
                    .map_err(|e| format!("cannot map the user namespace's ids: {e}"))?;
                let ns = std::fs::File::open(format!("/proc/{pid}/ns/user"))
                    .map_err(|e| format!("cannot open the user namespace: {e}"))?;
                Ok(OwnedFd::from(ns))
            })();
            let _ = done_w.write_all(&[1]);
            drop(done_w);
            let _ = waitpid(child, None);
            result
        }
    }
}

/// Moves this process into a new user namespace while a helper forked first, still outside it,
/// maps it: `map` runs in the helper with this process's pid (as the helper's `/proc` names it)
/// once the namespace exists, and says whether it mapped it.
fn unshare_mapped_by(map: impl FnOnce(&str) -> bool) -> Result<(), String> {
    let (mut go_r, mut go_w) = pipe()?;
    // SAFETY: the helper process is single-threaded; the child only reads, maps and exits.
    match unsafe { fork() }.map_err(|e| format!("cannot fork: {}", e.desc()))? {
        ForkResult::Child => {
            drop(go_w);
            let mut b = [0u8; 1];
            let told = matches!(go_r.read(&mut b), Ok(1));
            let ok = told && map(&nix::unistd::getppid().to_string());
            // SAFETY: leaving the forked child without running the parent's destructors.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        ForkResult::Parent { child } => {
            drop(go_r);
            let made = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER);
            let _ = go_w.write_all(if made.is_ok() { &[1] } else { &[] });
            drop(go_w);
            let status = waitpid(child, None);
            made.map_err(|e| format!("cannot make a user namespace: {}", e.desc()))?;
            match status {
                Ok(WaitStatus::Exited(_, 0)) => Ok(()),
                _ => Err("cannot map the user namespace's ids".into()),
            }
        }
    }
}

/// Moves this process into a user namespace of its own with `map`, as its root. Call it last,
/// before dropping capabilities: this process keeps no capability over anything the host's
/// user namespace owns.
pub fn enter(map: &IdMap) -> Result<(), String> {
    unshare_mapped_by(|parent| write_maps(parent, map).is_ok())?;
    let root = (nix::unistd::Gid::from_raw(0), nix::unistd::Uid::from_raw(0));
    nix::unistd::setresgid(root.0, root.0, root.0)
        .map_err(|e| format!("cannot become root in the user namespace: {}", e.desc()))?;
    nix::unistd::setresuid(root.1, root.1, root.1)
        .map_err(|e| format!("cannot become root in the user namespace: {}", e.desc()))
}

/// Whether an ordinary user can make containers here: user namespaces on, and overlayfs
/// mountable inside one (Linux 5.11).
pub fn rootless_supported() -> Result<(), String> {
    let max = std::fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap_or_default();
    if max.trim() == "0" {
        return Err("user namespaces are disabled (user.max_user_namespaces is 0)".into());
    }
    if std::fs::read_to_string("/proc/sys/kernel/unprivileged_userns_clone")
        .is_ok_and(|v| v.trim() == "0")
    {
        return Err("this kernel lets only root make user namespaces (kernel.unprivileged_userns_clone is 0)".into());
    }
    Ok(())
}

/// How an ordinary user's containers map ids: that user is root inside; with a range of its own
/// in /etc/subuid and /etc/subgid (and `newuidmap`/`newgidmap`, from the `uidmap` package), the
/// container's ids 1.. are that range, so images with other users work too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rootless {
    pub uid: u32,
    pub gid: u32,
    /// The user's subordinate ids: (first uid, first gid, how many).
    pub sub: Option<(u32, u32, u32)>,
}

/// The first range of `/etc/subuid` (or `subgid`) for this user (by name or by number).
fn subordinate(file: &str, name: &str, id: u32) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.trim().split(':');
        let (who, start, count) = (f.next()?, f.next()?, f.next()?);
        if who != name && who.parse::<u32>().ok() != Some(id) {
            return None;
        }
        Some((start.parse().ok()?, count.parse().ok()?))
    })
}

fn tool(name: &str) -> bool {
    ["/usr/bin", "/bin", "/usr/local/bin"]
        .iter()
        .any(|d| std::path::Path::new(d).join(name).exists())
}

impl Rootless {
    /// This process's user, and its subordinate ids where it has them and the tools to map them.
    pub fn detect() -> Rootless {
        let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
        let name = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_default();
        let sub = match (
            subordinate("/etc/subuid", &name, uid.as_raw()),
            subordinate("/etc/subgid", &name, uid.as_raw()),
        ) {
            (Some((su, cu)), Some((sg, cg))) if tool("newuidmap") && tool("newgidmap") => {
                Some((su, sg, cu.min(cg).min(65535)))
            }
            _ => None,
        };
        Rootless {
            uid: uid.as_raw(),
            gid: gid.as_raw(),
            sub: sub.filter(|s| s.2 > 0),
        }
    }

    /// The highest container id mapped.
    pub fn max_id(&self) -> u32 {
        self.sub.map_or(0, |s| s.2)
    }
}

/// Moves this process (an ordinary user's) into a user namespace of its own in which that user
/// is root. With subordinate ids a helper forked first, still outside, maps them with the
/// set-uid `newuidmap`/`newgidmap`; without, the process maps only its own ids itself (giving up
/// `setgroups`, as `unshare --map-root-user` does).
pub fn enter_rootless(r: &Rootless) -> Result<(), String> {
    let Some((su, sg, count)) = r.sub else {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)
            .map_err(|e| format!("cannot make a user namespace: {}", e.desc()))?;
        let w = |f: &str, v: String| {
            std::fs::write(format!("/proc/self/{f}"), v)
                .map_err(|e| format!("cannot write {f}: {e}"))
        };
        w("setgroups", "deny".into())?;
        w("uid_map", format!("0 {} 1\n", r.uid))?;
        return w("gid_map", format!("0 {} 1\n", r.gid));
    };
    let map = |parent: &str, tool: &str, own: u32, first: u32| {
        std::process::Command::new(tool)
            .args([parent, "0", &own.to_string(), "1", "1"])
            .args([first.to_string(), count.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    };
    unshare_mapped_by(|parent| {
        map(parent, "newuidmap", r.uid, su) && map(parent, "newgidmap", r.gid, sg)
    })
    .map_err(|e| {
        format!(
            "{e}: newuidmap/newgidmap could not map user {}'s subordinate ids ({su}/{sg}, {count})",
            r.uid
        )
    })
}
