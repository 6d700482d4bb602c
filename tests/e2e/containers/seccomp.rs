//! Docker's default seccomp profile, probed from inside a container: a Python step makes each
//! system call Docker refuses (through `ctypes`, with harmless arguments) and reports the error
//! it got. The same probe in a step allowed to run unconfined shows the refusals are the filter's.

use super::*;

/// x86-64 system call numbers, and arguments that do nothing harmful if the call is allowed.
const PROBE: &str = r#"
import ctypes, json, os, platform, sys, threading
assert platform.machine() == "x86_64", platform.machine()
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def call(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return 0 if r >= 0 else ctypes.get_errno()
key = ("sluice-probe-%s" % sys.argv[2]).encode()
refused = {
    "keyctl": lambda: call(250, 0, -1, 0),
    "add_key": lambda: libc.syscall(ctypes.c_long(248), b"user", key, b"x", ctypes.c_long(1), ctypes.c_long(-4)) and ctypes.get_errno(),
    "request_key": lambda: call(249, 0, 0, 0, 0),
    "unshare_user": lambda: call(272, 0x10000000),
    "unshare_mount": lambda: call(272, 0x00020000),
    "setns": lambda: call(308, -1, 0),
    "mount": lambda: call(165, 0, 0, 0, 0, 0),
    "umount2": lambda: call(166, 0, 0),
    "pivot_root": lambda: call(155, 0, 0),
    "io_uring_setup": lambda: call(425, 1, 0),
    "io_uring_enter": lambda: call(426, -1, 0, 0, 0, 0, 0),
    "io_uring_register": lambda: call(427, -1, 0, 0, 0),
    "bpf": lambda: call(321, 0, 0, 0),
    "perf_event_open": lambda: call(298, 0, 0, -1, -1, 0),
    "clone_newuser": lambda: call(56, 0x10000000 | 17, 0, 0, 0, 0),
    "clone_newnet": lambda: call(56, 0x40000000 | 17, 0, 0, 0, 0),
    "personality_odd": lambda: call(135, 0x0400000),
    "socket_vsock": lambda: call(41, 40, 1, 0),
    "kexec_load": lambda: call(246, 0, 0, 0, 0),
    "init_module": lambda: call(175, 0, 0, 0),
    "finit_module": lambda: call(313, -1, 0, 0),
    "delete_module": lambda: call(176, 0, 0),
    "reboot": lambda: call(169, 0, 0, 0, 0),
    "swapon": lambda: call(167, 0, 0),
    "swapoff": lambda: call(168, 0),
    "acct": lambda: call(163, 0),
    "settimeofday": lambda: call(164, 0, 0),
    "clock_settime": lambda: call(227, 0, 0),
    "userfaultfd": lambda: call(323, 0),
    "syslog": lambda: call(103, 3, 0, 0),
    "open_by_handle_at": lambda: call(304, -1, 0, 0),
    "lookup_dcookie": lambda: call(212, 0, 0, 0),
    "quotactl": lambda: call(179, 0, 0, 0, 0),
    "fsopen": lambda: call(430, 0, 0),
    "fsmount": lambda: call(432, -1, 0, 0),
    "open_tree": lambda: call(428, -1, 0, 0),
    "move_mount": lambda: call(429, -1, 0, -1, 0, 0),
    "fspick": lambda: call(433, -1, 0, 0),
    "mount_setattr": lambda: call(442, -1, 0, 0, 0, 0),
    "mbind": lambda: call(237, 0, 0, 0, 0, 0, 0),
    "set_mempolicy": lambda: call(238, 0, 0, 0),
    "get_mempolicy": lambda: call(239, 0, 0, 0, 0, 0),
    "vhangup": lambda: call(153),
    "iopl": lambda: call(172, 0),
    "ioperm": lambda: call(173, 0, 0, 0),
    "kcmp": lambda: call(312, 0, 0, 0, 0, 0),
    "pidfd_getfd": lambda: call(438, -1, 0, 0),
    "process_madvise": lambda: call(440, -1, 0, 0, 0, 0),
    "sethostname": lambda: call(170, 0, 0),
    "setdomainname": lambda: call(171, 0, 0),
    "uselib": lambda: call(134, 0),
    "nfsservctl": lambda: call(180, 0, 0, 0),
}
harmless = {
    "clone3": lambda: call(435, 0, 0),
    "io_uring_setup": lambda: call(425, 1, 0),
    "personality_odd": lambda: call(135, 0xffffffff),
    "socket_vsock": lambda: call(41, 40, 1, 0),
    "keyctl": lambda: call(250, 0, -1, 0),
}
def thread_ok():
    out = []
    t = threading.Thread(target=lambda: out.append(1)); t.start(); t.join()
    return out == [1]
mode = sys.argv[1]
probes = refused if mode == "confined" else harmless
result = {name: f() for name, f in probes.items()}
result["clone3"] = call(435, 0, 0)
result["getpid"] = call(39)
result["socket_inet"] = call(41, 2, 1, 0)
result["personality_query"] = call(135, 0xffffffff)
result["threads"] = thread_ok()
print(json.dumps(result, sort_keys=True))
"#;

const EPERM: i64 = 1;
const ENOSYS: i64 = 38;

fn probe_step(name: &str, img: &str, mode: &str, unconfined: bool) -> String {
    let seccomp = if unconfined {
        "\n    seccomp: unconfined"
    } else {
        ""
    };
    let script = PROBE.replace('\n', "\n      ");
    format!(
        "  - name: {name}\n    image: {img}{seccomp}\n    script: |\n      cat > /tmp/probe.py <<'EOF'{script}\n      EOF\n      python3 /tmp/probe.py {mode} {pid}\n",
        pid = std::process::id()
    )
}

async fn results(c: &Cluster, run: &RunDetail, t: &str) -> serde_json::Value {
    let out = c.stdout(&run.summary.id, t).await;
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{t}: {e}: {out}"))
}

#[tokio::test]
async fn every_system_call_family_docker_refuses_is_refused_and_threads_still_work() {
    let c = Cluster::start(&["--allow-unconfined"]).await;
    let img = image("sklearn");
    let yaml = format!(
        "name: seccomp\nsteps:\n{}{}",
        probe_step("confined", &img, "confined", false),
        probe_step("open", &img, "open", true)
    );
    let run = c.run(&yaml).await;
    assert_succeeded(&c, &run);
    let got = results(&c, &run, "confined").await;
    let mut contained = 0;
    for (name, errno) in got.as_object().unwrap() {
        match name.as_str() {
            "getpid" | "socket_inet" | "personality_query" => {
                assert_eq!(errno, &serde_json::json!(0), "{name} is allowed")
            }
            "threads" => assert_eq!(errno, &serde_json::json!(true), "threads start"),
            "clone3" => assert_eq!(errno, &serde_json::json!(ENOSYS), "clone3 says ENOSYS"),
            _ => {
                assert_eq!(errno, &serde_json::json!(EPERM), "{name}: {got}");
                contained += 1;
            }
        }
    }
    assert!(contained >= 50, "{contained} probes");
    // The key it tried to add never reached this host's keyrings.
    let keys = std::fs::read_to_string("/proc/keys").unwrap_or_default();
    assert!(
        !keys.contains(&format!("sluice-probe-{}", std::process::id())),
        "{keys}"
    );

    // Unconfined, the same calls get past the filter (to fail, harmlessly, on their arguments).
    let open = results(&c, &run, "open").await;
    for name in [
        "io_uring_setup",
        "socket_vsock",
        "keyctl",
        "clone3",
        "personality_odd",
    ] {
        let e = open[name].as_i64().unwrap();
        assert!(
            e != EPERM && e != ENOSYS,
            "{name} unconfined gave {e}: {open}"
        );
    }
    assert_eq!(open["threads"], serde_json::json!(true));
}

#[tokio::test]
async fn an_unconfined_step_runs_only_where_the_worker_allows_it() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let run = c
        .run(&format!(
            "name: unconfined\nsteps:\n  - name: open\n    image: {img}\n    seccomp: unconfined\n    command: [\"true\"]\n"
        ))
        .await;
    assert_eq!(run.summary.state, RunState::Failed);
    let e = task(&run, "open").error.clone().unwrap_or_default();
    assert!(
        e.contains("`seccomp: unconfined`") && e.contains("--allow-unconfined"),
        "{e}"
    );
}
