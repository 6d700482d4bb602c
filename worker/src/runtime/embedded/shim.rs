//! The helper process the worker starts (the sluice binary itself, hidden subcommand) for each
//! container. It is single-threaded, so forking it is safe where forking the worker's tokio process
//! is not. It enters a new PID namespace, forks the container's first process (see [`super::init`]),
//! waits for it and tells the worker what happened in typed messages on its fd 0, a socket (see
//! [`super::protocol`]). A container whose network must be wired from the host is held after its
//! namespaces exist until the worker answers [`ToShim::Proceed`].
//!
//! The container dies with its worker: the helper watches that socket while it waits, and when
//! the worker's end closes (the worker exited or was killed) it kills the container's first
//! process, which takes the whole PID namespace down. The first process itself dies with the
//! helper (its parent-death signal), should the helper be killed.

use super::config::ContainerConfig;
use super::protocol::{self, FromShim, ToShim};
use nix::sched::{unshare, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::path::Path;

/// The hidden subcommand that runs the helper.
pub const SUBCOMMAND: &str = "__container-shim";

/// Runs the helper for the container whose `config.json` is in `state`; returns its exit code.
pub fn main(state: &Path) -> i32 {
    // SAFETY: the worker hands the helper its control socket as fd 0; nothing else owns it.
    let mut ctl = unsafe { std::fs::File::from_raw_fd(0) };
    let say = |ctl: &mut std::fs::File, msg: FromShim| {
        let _ = protocol::send(ctl, &msg);
    };
    let error = |message: String| FromShim::Failed { code: 1, message };
    let cfg: ContainerConfig = match std::fs::read(state.join("config.json"))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            say(
                &mut ctl,
                error(format!("cannot read the container's config: {e}")),
            );
            return 1;
        }
    };
    let (err_r, err_w) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => {
            say(
                &mut ctl,
                error(format!("cannot create a pipe: {}", e.desc())),
            );
            return 1;
        }
    };
    // The child says its namespaces exist on `ready`, and goes on when `go` carries a byte (its
    // end of file means stop): only when its network is to be wired.
    let wiring = match cfg.await_wiring {
        false => None,
        true => match (pipe(), pipe()) {
            (Ok(ready), Ok(go)) => Some((ready, go)),
            (Err(e), _) | (_, Err(e)) => {
                say(
                    &mut ctl,
                    error(format!("cannot create a pipe: {}", e.desc())),
                );
                return 1;
            }
        },
    };
    // Rootless: every namespace below is made inside the user's own user namespace.
    if let Some(r) = &cfg.rootless {
        if let Err(e) = super::userns::enter_rootless(r) {
            say(&mut ctl, error(e));
            return 1;
        }
    }
    if let Err(e) = unshare(CloneFlags::CLONE_NEWPID) {
        say(
            &mut ctl,
            error(format!("cannot create a PID namespace: {}", e.desc())),
        );
        return 1;
    }
    // SAFETY: this process is single-threaded (the helper starts no threads), so the child may do
    // anything the parent could.
    match unsafe { fork() } {
        Err(e) => {
            say(&mut ctl, error(format!("cannot fork: {}", e.desc())));
            1
        }
        Ok(ForkResult::Child) => {
            drop(err_r);
            let hold = wiring.map(|((ready_r, ready_w), (go_r, go_w))| {
                drop((ready_r, go_w));
                super::init::Hold {
                    ready: ready_w,
                    go: go_r,
                }
            });
            let e = super::init::run(&cfg, hold);
            let mut w = std::fs::File::from(err_w);
            let _ = w.write_all(format!("{} {}", e.code, e.message).as_bytes());
            // SAFETY: leaving the forked child without running the parent's exit handlers.
            unsafe { libc::_exit(e.code) }
        }
        Ok(ForkResult::Parent { child }) => {
            drop(err_w);
            say(
                &mut ctl,
                FromShim::Created {
                    pid: child.as_raw(),
                },
            );
            if let Some(((ready_r, ready_w), (go_r, go_w))) = wiring {
                drop((ready_w, go_r));
                // The child's namespaces exist once it writes (nothing comes if it failed first:
                // its reason follows on the error pipe).
                let mut b = [0u8; 1];
                if matches!(std::fs::File::from(ready_r).read(&mut b), Ok(1)) {
                    say(
                        &mut ctl,
                        FromShim::Wire {
                            pid: child.as_raw(),
                        },
                    );
                    let answer = protocol::recv::<ToShim>(&mut std::io::BufReader::new(&ctl));
                    if answer == Some(ToShim::Proceed) {
                        let _ = std::fs::File::from(go_w).write_all(&[1]);
                    } else {
                        // Aborted, or the worker is gone: the child stops at its end of file.
                        drop(go_w);
                    }
                }
            }
            // The pipe closes on exec (success) or carries the reason it failed.
            let mut msg = String::new();
            let _ = std::fs::File::from(err_r).read_to_string(&mut msg);
            if msg.is_empty() {
                say(&mut ctl, FromShim::Started);
            } else {
                let (code, message) = msg.split_once(' ').unwrap_or(("1", &msg));
                say(
                    &mut ctl,
                    FromShim::Failed {
                        code: code.parse().unwrap_or(1),
                        message: message.to_string(),
                    },
                );
            }
            let code = wait_watching(child, &ctl);
            say(&mut ctl, FromShim::Exited { code });
            code
        }
    }
}

fn pipe() -> nix::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
}

/// Waits for the container's first process to end, killing it if the worker's end of `ctl`
/// closes first. Returns its exit code (128 + signal when killed).
fn wait_watching(child: nix::unistd::Pid, ctl: &std::fs::File) -> i32 {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use nix::sys::wait::WaitPidFlag;
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};
    // A pidfd turns readable when the child ends (Linux 5.3); without one, look every 100 ms.
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, child.as_raw(), 0) };
    // SAFETY: a non-negative return is a new fd that nothing else owns.
    let pidfd = (raw >= 0).then(|| unsafe { OwnedFd::from_raw_fd(raw as i32) });
    let mut killed = false;
    loop {
        match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, c)) => return c,
            Ok(WaitStatus::Signaled(_, s, _)) => return 128 + s as i32,
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(_) => return 255,
        }
        let mut fds = vec![PollFd::new(ctl.as_fd(), PollFlags::POLLIN)];
        if let Some(p) = &pidfd {
            fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
        }
        let timeout = match (&pidfd, killed) {
            (Some(_), false) => PollTimeout::NONE,
            _ => PollTimeout::from(100u16),
        };
        if killed {
            // Only the child's end matters now.
            fds.remove(0);
        }
        let _ = poll(&mut fds, timeout);
        if !killed {
            let gone = fds[0].revents().is_some_and(|r| {
                r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR)
                    || (r.contains(PollFlags::POLLIN) && peer_closed(ctl))
            });
            if gone {
                // The worker is gone: so is its container.
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                killed = true;
            }
        }
    }
}

/// Whether the worker closed its end of the socket (a read would return end of file).
fn peer_closed(ctl: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    let mut b = [0u8; 1];
    // SAFETY: a one-byte buffer that outlives the call; MSG_PEEK leaves data where it is.
    let n = unsafe {
        libc::recv(
            ctl.as_raw_fd(),
            b.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n == 0
}
