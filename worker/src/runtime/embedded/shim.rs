//! The helper process the worker starts (the sluice binary itself, hidden subcommand) for each
//! container. It is single-threaded, so forking it is safe where forking the worker's tokio process
//! is not. It enters a new PID namespace, forks the container's first process (see [`super::init`]),
//! waits for it and tells the worker what happened, one line at a time on its fd 0 (a socket):
//!
//! - `pid N`: the container's first process, as the host numbers it;
//! - `started`: the step's program was exec'd;
//! - `error CODE MESSAGE`: the container could not start;
//! - `exit CODE`: it ended (128 + signal when killed).

use super::config::ContainerConfig;
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
    let say = |ctl: &mut std::fs::File, line: String| {
        let _ = ctl.write_all(format!("{}\n", line.replace('\n', " ")).as_bytes());
    };
    let cfg: ContainerConfig = match std::fs::read(state.join("config.json"))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            say(
                &mut ctl,
                format!("error 1 cannot read the container's config: {e}"),
            );
            return 1;
        }
    };
    let (err_r, err_w) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => {
            say(
                &mut ctl,
                format!("error 1 cannot create a pipe: {}", e.desc()),
            );
            return 1;
        }
    };
    if let Err(e) = unshare(CloneFlags::CLONE_NEWPID) {
        say(
            &mut ctl,
            format!("error 1 cannot create a PID namespace: {}", e.desc()),
        );
        return 1;
    }
    // SAFETY: this process is single-threaded (the helper starts no threads), so the child may do
    // anything the parent could.
    match unsafe { fork() } {
        Err(e) => {
            say(&mut ctl, format!("error 1 cannot fork: {}", e.desc()));
            1
        }
        Ok(ForkResult::Child) => {
            drop(err_r);
            let e = super::init::run(&cfg);
            let mut w = std::fs::File::from(err_w);
            let _ = w.write_all(format!("{} {}", e.code, e.message).as_bytes());
            // SAFETY: leaving the forked child without running the parent's exit handlers.
            unsafe { libc::_exit(e.code) }
        }
        Ok(ForkResult::Parent { child }) => {
            drop(err_w);
            say(&mut ctl, format!("pid {child}"));
            // The pipe closes on exec (success) or carries the reason it failed.
            let mut msg = String::new();
            let _ = std::fs::File::from(err_r).read_to_string(&mut msg);
            if msg.is_empty() {
                say(&mut ctl, "started".into());
            } else {
                say(&mut ctl, format!("error {msg}"));
            }
            let code = loop {
                match waitpid(child, None) {
                    Ok(WaitStatus::Exited(_, c)) => break c,
                    Ok(WaitStatus::Signaled(_, s, _)) => break 128 + s as i32,
                    Ok(_) => continue,
                    Err(nix::Error::EINTR) => continue,
                    Err(_) => break 255,
                }
            };
            say(&mut ctl, format!("exit {code}"));
            code
        }
    }
}
