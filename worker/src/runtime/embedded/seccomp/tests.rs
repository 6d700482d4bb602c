use super::bpf::*;
use super::profile::{CLONE_NAMESPACE_FLAGS, PERSONALITIES};
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
