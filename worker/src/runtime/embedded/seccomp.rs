//! The system calls a container may make: Docker's default seccomp profile (as Docker 25 and
//! later ship it, without `io_uring`), applied to the container's first process just before it
//! execs the step. Anything not allowed fails with `EPERM`; `clone3` fails with `ENOSYS`, so that C
//! libraries fall back to `clone`, whose namespace flags are refused. Calls gated on a capability
//! are allowed only when the container holds it (it holds none of those by default but
//! `CAP_SYS_CHROOT`).
//!
//! The profile is compiled here to a classic BPF program that finds a system call by binary
//! search over ranges of numbers with the same verdict (as libseccomp's optimised filters do), so
//! that it is small (under 150 instructions on x86-64) and costs a handful of comparisons per call: a
//! linear chain of the same rules is six times longer and was measured to add 0.6 ms to every
//! container's start. A filter is for one architecture: a system call of another (32-bit i386 on
//! x86-64) kills the process, and x32 ones are refused.

use std::collections::BTreeMap;
use std::str::FromStr;
use syscalls::Sysno;

/// Allowed whatever the capabilities (Docker's unconditional list).
const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
    // Allowed on every kernel sluice supports (Docker: 4.8 and later).
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    // Architecture-specific ones; names another architecture lacks are skipped.
    "arch_prctl",
    "modify_ldt",
    "sync_file_range2",
    "riscv_flush_icache",
];

/// Allowed only to a container that holds the capability.
const BY_CAPABILITY: &[(&str, &[&str])] = &[
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "init_module", "finit_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &["kcmp", "pidfd_getfd", "process_madvise"],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "CAP_SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// `clone` flags that make namespaces: refused without `CAP_SYS_ADMIN`.
const CLONE_NAMESPACE_FLAGS: u32 = 0x7E02_0000;
/// `AF_VSOCK`: the one socket family refused.
const AF_VSOCK: u32 = 40;
/// The `personality` values allowed: Linux, with address randomisation off, and the query.
const PERSONALITIES: &[u32] = &[0x0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff];

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

// Classic BPF, as seccomp runs it.
const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JSET: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
/// Offsets in `struct seccomp_data`: the number, the architecture, the first argument's low word.
const NR: u32 = 0;
const ARCH: u32 = 4;
const ARG0_LOW: u32 = 16;
const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;
const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

fn op(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

fn ret(k: u32) -> libc::sock_filter {
    op(RET, 0, 0, k)
}

/// The instructions that decide a call of one verdict (the number already matched).
fn leaf(v: Verdict) -> Vec<libc::sock_filter> {
    match v {
        Verdict::Allow => vec![ret(ALLOW)],
        Verdict::Deny => vec![ret(EPERM)],
        Verdict::NoSys => vec![ret(ENOSYS)],
        Verdict::NotVsock => vec![
            op(LD_W_ABS, 0, 0, ARG0_LOW),
            op(JEQ, 0, 1, AF_VSOCK),
            ret(EPERM),
            ret(ALLOW),
        ],
        Verdict::Personality => {
            let n = PERSONALITIES.len();
            let mut out = vec![op(LD_W_ABS, 0, 0, ARG0_LOW)];
            for (i, p) in PERSONALITIES.iter().enumerate() {
                // On a match, over the remaining tests and the refusal to the allow.
                out.push(op(JEQ, (n - i) as u8, 0, *p));
            }
            out.push(ret(EPERM));
            out.push(ret(ALLOW));
            out
        }
        Verdict::NoNamespaces => vec![
            op(LD_W_ABS, 0, 0, ARG0_LOW),
            op(JSET, 1, 0, CLONE_NAMESPACE_FLAGS),
            ret(ALLOW),
            ret(EPERM),
        ],
    }
}

/// Ranges of numbers `[from, next from)` with one verdict, covering every number: a verdict
/// that looks at arguments gets a range of its own.
fn ranges(verdicts: &BTreeMap<u32, Verdict>) -> Vec<(u32, Verdict)> {
    let mut out: Vec<(u32, Verdict)> = Vec::new();
    let push = |out: &mut Vec<(u32, Verdict)>, from: u32, v: Verdict| {
        let plain = matches!(v, Verdict::Allow | Verdict::Deny | Verdict::NoSys);
        if plain && out.last().is_some_and(|&(_, last)| last == v) {
            return; // the previous range goes on
        }
        out.push((from, v));
    };
    let mut next = 0u32;
    for (&n, &v) in verdicts {
        if n > next {
            push(&mut out, next, Verdict::Deny);
        }
        push(&mut out, n, v);
        next = n + 1;
    }
    push(&mut out, next, Verdict::Deny);
    out
}

/// A binary search over `ranges` (each starting where it says, ending where the next starts).
fn search(ranges: &[(u32, Verdict)]) -> Vec<libc::sock_filter> {
    if ranges.len() == 1 {
        return leaf(ranges[0].1);
    }
    let mid = ranges.len() / 2;
    let lower = search(&ranges[..mid]);
    let upper = search(&ranges[mid..]);
    let mut out = Vec::with_capacity(lower.len() + upper.len() + 2);
    match u8::try_from(lower.len()) {
        // At or above the middle range's start: over the lower half.
        Ok(skip) => out.push(op(JGE, skip, 0, ranges[mid].0)),
        Err(_) => {
            out.push(op(JGE, 1, 0, ranges[mid].0));
            out.push(op(JA, 0, 0, lower.len() as u32));
        }
    }
    out.extend(lower);
    out.extend(upper);
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a filter as the kernel would, for one call.
    fn run(prog: &[libc::sock_filter], arch: u32, nr: u32, arg0: u64) -> u32 {
        let data = |off: u32| match off {
            NR => nr,
            ARCH => arch,
            ARG0_LOW => arg0 as u32,
            other => panic!("loads offset {other}"),
        };
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = prog[pc];
            pc += 1;
            match i.code {
                LD_W_ABS => acc = data(i.k),
                JEQ => pc += if acc == i.k { i.jt } else { i.jf } as usize,
                JGE => pc += if acc >= i.k { i.jt } else { i.jf } as usize,
                JSET => pc += if acc & i.k != 0 { i.jt } else { i.jf } as usize,
                JA => pc += i.k as usize,
                RET => return i.k,
                other => panic!("unexpected instruction {other:#x}"),
            }
        }
    }

    fn docker() -> Vec<String> {
        crate::runtime::embedded::config::DEFAULT_CAPABILITIES
            .iter()
            .map(|c| c.to_string())
            .collect()
    }

    #[test]
    fn every_name_of_this_architecture_resolves() {
        // The names x86-64 and aarch64 both have must all be known here: a misspelt one would
        // be skipped silently.
        for name in [
            "read",
            "write",
            "openat",
            "execve",
            "futex",
            "rseq",
            "statx",
            "pidfd_open",
            "close_range",
            "epoll_pwait2",
            "landlock_create_ruleset",
            "socket",
            "personality",
            "clone",
            "clone3",
            "unshare",
            "mount",
            "keyctl",
            "io_uring_setup",
            "bpf",
            "perf_event_open",
        ] {
            assert!(sysno(name).is_some(), "{name}");
        }
        let known = ALLOWED.iter().filter(|n| sysno(n).is_some()).count();
        assert!(known > 280, "only {known} names resolve");
        for refused in [
            "keyctl",
            "add_key",
            "request_key",
            "io_uring_setup",
            "io_uring_enter",
            "unshare",
            "mount",
            "setns",
            "bpf",
            "perf_event_open",
            "init_module",
            "kexec_load",
            "reboot",
            "swapon",
            "userfaultfd",
            "acct",
            "clock_settime",
            "open_by_handle_at",
        ] {
            assert!(!ALLOWED.contains(&refused), "{refused}");
        }
    }

    #[test]
    fn the_filter_answers_every_call_as_the_profile_says() {
        let arch = audit_arch().unwrap();
        for caps in [docker(), vec!["CAP_SYS_ADMIN".to_string()], Vec::new()] {
            let model = verdicts(&caps);
            let prog = filter(&caps).unwrap();
            assert!(prog.len() < 400, "{} instructions", prog.len());
            let mut numbers: Vec<u32> = (0..1024).collect();
            numbers.extend([0x4000_0000, 0x4000_0001, u32::MAX]);
            for nr in numbers {
                let want = |arg0: u64| match model.get(&nr).copied().unwrap_or(Verdict::Deny) {
                    Verdict::Allow => ALLOW,
                    Verdict::Deny => EPERM,
                    Verdict::NoSys => ENOSYS,
                    Verdict::NotVsock => {
                        if arg0 == 40 {
                            EPERM
                        } else {
                            ALLOW
                        }
                    }
                    Verdict::Personality => {
                        if PERSONALITIES.contains(&(arg0 as u32)) {
                            ALLOW
                        } else {
                            EPERM
                        }
                    }
                    Verdict::NoNamespaces => {
                        if arg0 as u32 & CLONE_NAMESPACE_FLAGS != 0 {
                            EPERM
                        } else {
                            ALLOW
                        }
                    }
                };
                for arg0 in [
                    0u64,
                    8,
                    17,
                    40,
                    0x2_0008,
                    0x1000_0011,
                    0x4000_0011,
                    0xffff_ffff,
                ] {
                    assert_eq!(
                        run(&prog, arch, nr, arg0),
                        want(arg0),
                        "call {nr} with {arg0:#x}"
                    );
                }
            }
            // Another architecture's calls kill the process.
            assert_eq!(run(&prog, 0x4000_0003, 0, 0), KILL);
        }
    }

    #[test]
    fn what_docker_refuses_is_refused_and_the_rest_is_not() {
        let prog = filter(&docker()).unwrap();
        let arch = audit_arch().unwrap();
        let call = |name: &str, arg0: u64| run(&prog, arch, sysno(name).unwrap(), arg0);
        for name in [
            "read", "write", "openat", "execve", "futex", "chroot", "ptrace",
        ] {
            assert_eq!(call(name, 0), ALLOW, "{name}");
        }
        for name in [
            "keyctl",
            "add_key",
            "unshare",
            "mount",
            "setns",
            "bpf",
            "io_uring_setup",
            "perf_event_open",
            "reboot",
            "init_module",
            "kexec_load",
            "swapon",
            "userfaultfd",
        ] {
            assert_eq!(call(name, 0), EPERM, "{name}");
        }
        assert_eq!(call("clone3", 0), ENOSYS);
        assert_eq!(call("clone", 17), ALLOW, "a thread or a fork");
        assert_eq!(call("clone", 0x1000_0011), EPERM, "a new user namespace");
        assert_eq!(call("socket", 2), ALLOW);
        assert_eq!(call("socket", 40), EPERM);
        assert_eq!(call("personality", 0xffff_ffff), ALLOW);
        assert_eq!(call("personality", 0x40_0000), EPERM);
    }
}
