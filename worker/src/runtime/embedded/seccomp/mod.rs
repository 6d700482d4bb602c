//! The system calls a container may make: Docker's default seccomp profile (as Docker 25 and
//! later ship it, without `io_uring`), applied to the container's first process just before it
//! execs the step. Anything not allowed fails with `EPERM`; `clone3` fails with `ENOSYS`, so that C
//! libraries fall back to `clone`, whose namespace flags are refused. Calls gated on a capability
//! are allowed only when the container holds it (it holds none of those by default but
//! `CAP_SYS_CHROOT`).
//!
//! The profile (`profile`) is compiled (`bpf`) to a classic BPF program that finds a system call by binary
//! search over ranges of numbers with the same verdict (as libseccomp's optimised filters do), so
//! that it is small (under 150 instructions on x86-64) and costs a handful of comparisons per call: a
//! linear chain of the same rules is six times longer and was measured to add 0.6 ms to every
//! container's start. A filter is for one architecture: a system call of another (32-bit i386 on
//! x86-64) kills the process, and x32 ones are refused.

mod bpf;
mod profile;
#[cfg(test)]
mod tests;

use bpf::{op, ranges, ret, search, ARCH, JEQ, KILL, LD_W_ABS, NR};
use profile::{ALLOWED, BY_CAPABILITY};
use std::collections::BTreeMap;
use std::str::FromStr;
use syscalls::Sysno;

/// What the filter answers a system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// `EPERM`.
    Deny,
    /// `ENOSYS`.
    NoSys,
    /// Allowed unless its first argument is `AF_VSOCK` (`socket`).
    NotVsock,
    /// Allowed for the `personality` values Docker allows.
    Personality,
    /// Allowed unless it asks for new namespaces (`clone`).
    NoNamespaces,
}

fn sysno(name: &str) -> Option<u32> {
    Sysno::from_str(name).ok().map(|s| s.id() as u32)
}

/// The verdict for every system call this architecture has a number for (the rest are denied),
/// for a container holding `capabilities`.
pub fn verdicts(capabilities: &[String]) -> BTreeMap<u32, Verdict> {
    let held = |cap: &str| capabilities.iter().any(|c| c == cap);
    let mut out = BTreeMap::new();
    for name in ALLOWED {
        if let Some(n) = sysno(name) {
            out.insert(n, Verdict::Allow);
        }
    }
    for (cap, names) in BY_CAPABILITY {
        if held(cap) {
            for n in names.iter().filter_map(|n| sysno(n)) {
                out.insert(n, Verdict::Allow);
            }
        }
    }
    let admin = held("CAP_SYS_ADMIN");
    for (name, v) in [
        ("socket", Verdict::NotVsock),
        ("personality", Verdict::Personality),
        (
            "clone",
            if admin {
                Verdict::Allow
            } else {
                Verdict::NoNamespaces
            },
        ),
        (
            "clone3",
            if admin {
                Verdict::Allow
            } else {
                Verdict::NoSys
            },
        ),
    ] {
        if let Some(n) = sysno(name) {
            out.insert(n, v);
        }
    }
    out
}

/// The audit architecture of the running one (`AUDIT_ARCH_*`).
fn audit_arch() -> Result<u32, String> {
    const LE64: u32 = 0x8000_0000 | 0x4000_0000;
    match std::env::consts::ARCH {
        "x86_64" => Ok(LE64 | 62),
        "aarch64" => Ok(LE64 | 183),
        "riscv64" => Ok(LE64 | 243),
        other => Err(format!(
            "no seccomp profile for this architecture ({other})"
        )),
    }
}

/// The filter for a container holding `capabilities`.
pub fn filter(capabilities: &[String]) -> Result<Vec<libc::sock_filter>, String> {
    let arch = audit_arch()?;
    let mut prog = vec![
        op(LD_W_ABS, 0, 0, ARCH),
        op(JEQ, 1, 0, arch),
        ret(KILL),
        op(LD_W_ABS, 0, 0, NR),
    ];
    prog.extend(search(&ranges(&verdicts(capabilities))));
    if prog.len() > u16::MAX as usize {
        return Err("the seccomp filter is too long".into());
    }
    Ok(prog)
}

/// Applies a filter to this process (and so to everything it execs and starts). Needs
/// no-new-privileges set first.
pub fn apply(prog: &[libc::sock_filter]) -> Result<(), String> {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `fprog` points at `prog`, which outlives the call; the kernel copies the program.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &fprog as *const libc::sock_fprog,
        )
    };
    if r != 0 {
        return Err(format!(
            "cannot apply the seccomp filter: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}
