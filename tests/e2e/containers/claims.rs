//! What "How a step runs" in the README says of a container, each observed from inside a step,
//! with the host (or a step set otherwise) as the control.

use super::*;
use std::os::unix::fs::PermissionsExt;

/// `KEY value` lines a step printed, as a map.
fn fields(out: &str) -> std::collections::HashMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

fn host_ns(ns: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{ns}"))
        .unwrap()
        .display()
        .to_string()
}

const NAMESPACES: [&str; 6] = ["ipc", "mnt", "net", "pid", "uts", "cgroup"];

#[tokio::test]
async fn root_in_a_step_is_an_unprivileged_user_on_the_host() {
    let img = image("busybox");
    // A host directory with a file that only the host's root may read (its owner is outside
    // the ids a container maps) and one the image's root owns as usual.
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("private");
    std::fs::write(&private, "host only\n").unwrap();
    std::os::unix::fs::chown(&private, Some(200_000), Some(200_000)).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(dir.path().join("shared"), "anyone\n").unwrap();
    let yaml = format!(
        r#"
name: userns
steps:
  - name: probe
    image: {img}
    volumes: [{{hostPath: {}, path: /data, writable: true}}]
    script: |
      echo "id $(id -u)"
      echo "uid_map $(tr -s ' ' < /proc/self/uid_map | sed 's/^ //')"
      echo "ns_user $(readlink /proc/self/ns/user)"
      if cat /data/private >/dev/null 2>&1; then echo "private read"; else echo "private refused"; fi
      echo "shared $(cat /data/shared)"
      echo written > /data/out
"#,
        dir.path().display()
    );
    // With user namespaces (the default where the kernel allows), and without as the control.
    for (args, mapped) in [(&[][..], true), (&["--userns", "off"][..], false)] {
        let c = Cluster::start(args).await;
        let run = c.run(&yaml).await;
        assert_succeeded(&c, &run);
        let out = fields(&c.stdout(&run.summary.id, "probe").await);
        assert_eq!(out["id"], "0", "root inside either way");
        assert_eq!(out["shared"], "anyone");
        if mapped {
            assert_eq!(out["uid_map"], "0 1879048192 65536");
            assert_ne!(out["ns_user"], host_ns("user"));
            assert_eq!(out["private"], "refused", "root inside is not root outside");
        } else {
            assert_eq!(out["uid_map"], "0 0 4294967295");
            assert_eq!(out["ns_user"], host_ns("user"));
            assert_eq!(out["private"], "read", "the control: host root reads it");
        }
        // What the step wrote through its volume is the host root's, as before.
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(dir.path().join("out")).unwrap().uid(), 0);
        std::fs::remove_file(dir.path().join("out")).unwrap();
    }
}

#[tokio::test]
async fn a_step_has_its_own_namespaces_no_new_privileges_a_minimal_dev_and_sees_its_limits() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let probe = r#"
      echo "nnp $(grep NoNewPrivs /proc/self/status | cut -f2)"
      for ns in ipc mnt net pid uts cgroup; do echo "ns_$ns $(readlink /proc/self/ns/$ns)"; done
      echo "dev $(ls -A /dev | tr '\n' ' ')"
      echo "cgroup_path $(cut -d: -f3 /proc/self/cgroup | sort -u | tr '\n' ' ')"
      cg=/sys/fs/cgroup
      echo "pids_max $(cat $cg/pids.max 2>/dev/null || cat $cg/pids/pids.max)"
      echo "cpu_max $(cat $cg/cpu.max 2>/dev/null || echo $(cat $cg/cpu/cpu.cfs_quota_us) $(cat $cg/cpu/cpu.cfs_period_us))"
      echo "memory_max $(cat $cg/memory.max 2>/dev/null || cat $cg/memory/memory.limit_in_bytes)"
      echo x > $cg/pids/pids.max 2>/dev/null || echo x > $cg/pids.max 2>/dev/null || echo "cgroup_ro yes"
      echo "pid1 $(cat /proc/1/comm)"
    "#;
    let run = c
        .run(&format!(
            r#"
name: own
steps:
  - name: own
    image: {img}
    resources: {{cpu: 500m, memory: 64Mi}}
    script: |{probe}
  - name: hostnet
    image: {img}
    network: host
    script: |{probe}
"#
        ))
        .await;
    assert_succeeded(&c, &run);
    let own = fields(&c.stdout(&run.summary.id, "own").await);
    assert_eq!(own["nnp"], "1", "no-new-privileges");
    for ns in NAMESPACES {
        let inside = &own[&format!("ns_{ns}")];
        assert!(inside.starts_with(&format!("{ns}:[")), "{ns}: {inside}");
        assert_ne!(*inside, host_ns(ns), "the step has its own {ns} namespace");
    }
    // The control: with the host's network, the network namespace is the host's.
    let hostnet = fields(&c.stdout(&run.summary.id, "hostnet").await);
    assert_eq!(hostnet["ns_net"], host_ns("net"));
    assert_ne!(hostnet["ns_ipc"], host_ns("ipc"));
    // Exactly the minimal /dev.
    assert_eq!(
        own["dev"],
        "fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero"
    );
    // Its own cgroup, at the root of its cgroup namespace, with the step's limits and the
    // worker's default PIDs limit, read-only.
    assert_eq!(own["cgroup_path"], "/");
    assert_eq!(own["pids_max"], "4096");
    assert_eq!(own["cpu_max"], "50000 100000");
    assert_eq!(own["memory_max"], (64u64 << 20).to_string());
    assert_eq!(own["cgroup_ro"], "yes");
    // The step's program is the first process of its PID namespace (a shell running its script).
    assert_eq!(own["pid1"], "sh");
}

#[tokio::test]
async fn dockers_masked_paths_are_hidden_and_its_read_only_paths_cannot_be_written() {
    use sluice_worker::runtime::embedded::config::{MASKED_PATHS, READONLY_PATHS};
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let masked = MASKED_PATHS.join(" ");
    let readonly = READONLY_PATHS.join(" ");
    let run = c
        .run(&format!(
            r#"
name: masks
steps:
  - name: look
    image: {img}
    script: |
      for p in {masked}; do
        if [ -d $p ]; then echo "masked $p dir $(ls -A $p | wc -l)"
        elif [ -e $p ]; then echo "masked $p file $(cat $p 2>/dev/null | wc -c)"
        else echo "masked $p absent"; fi
      done
      for p in {readonly}; do
        if [ ! -e $p ]; then echo "ro $p absent"; continue; fi
        opts=$(awk -v p=$p '$5 == p {{print $6}}' /proc/self/mountinfo | tail -n1)
        echo "ro $p $opts"
      done
      echo c > /proc/sysrq-trigger 2>/dev/null && echo "sysrq written" || echo "sysrq refused"
"#
        ))
        .await;
    assert_succeeded(&c, &run);
    let out = c.stdout(&run.summary.id, "look").await;
    let mut hidden = 0;
    for p in MASKED_PATHS {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("masked {p} ")))
            .unwrap_or_else(|| panic!("{p}: {out}"));
        let host = Path::new(p);
        if !host.exists() {
            continue;
        }
        // What the host shows there is not empty, and the step sees nothing of it.
        if host.is_dir() {
            assert!(line.ends_with(" dir 0"), "{line}");
        } else {
            assert!(line.ends_with(" file 0"), "{line}");
        }
        hidden += 1;
    }
    assert!(
        hidden >= 5,
        "{hidden} masked paths exist on this host: {out}"
    );
    let host_timer_list = std::fs::read_to_string("/proc/timer_list").unwrap_or_default();
    assert!(
        !host_timer_list.is_empty(),
        "the control: the host's /proc/timer_list has content"
    );
    let mut protected = 0;
    for p in READONLY_PATHS {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("ro {p} ")))
            .unwrap_or_else(|| panic!("{p}: {out}"));
        if line.ends_with(" absent") {
            continue;
        }
        let opts = line.rsplit(' ').next().unwrap();
        assert!(
            opts.split(',').any(|o| o == "ro"),
            "{p} is not mounted read-only: {line}"
        );
        protected += 1;
    }
    assert!(protected >= 3, "{out}");
    assert!(out.contains("sysrq refused"), "{out}");
}

#[tokio::test]
async fn the_images_entrypoint_cmd_workdir_user_and_env_apply_and_command_and_args_override_them() {
    let c = Cluster::start(&[]).await;
    let img = image("configured");
    let run = c
        .run(&format!(
            r#"
name: configured
steps:
  - name: as-built
    image: {img}
  - name: args
    image: {img}
    args: ["echo args $(pwd) $(id -un)"]
  - name: command
    image: {img}
    command: [id, -u]
  - name: both
    image: {img}
    workingDir: /tmp
    command: [sh, -c]
    args: ["echo both $(pwd) $GREETING"]
    env: {{GREETING: bonjour}}
"#
        ))
        .await;
    assert_succeeded(&c, &run);
    let out = |t: &'static str| c.stdout(&run.summary.id, t);
    // Entrypoint + Cmd, in WorkingDir (made if missing), as User (by name, from the image's
    // /etc/passwd, with its home), with the image's Env.
    assert_eq!(
        out("as-built").await,
        "from-cmd /work trainer 1000:1000 /home/trainer hello\n"
    );
    // `args` replace Cmd and keep the Entrypoint; `command` replaces both.
    assert_eq!(out("args").await, "args /work trainer\n");
    assert_eq!(out("command").await, "1000\n");
    // The step's own working directory and environment win over the image's.
    assert_eq!(out("both").await, "both /tmp bonjour\n");
}

#[tokio::test]
async fn an_artifact_reaches_its_consumer_as_a_read_only_mount_of_the_same_file() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let run = c
        .run(&format!(
            r#"
name: nocopy
steps:
  - name: make
    image: {img}
    outputs: {{artifacts: {{data: {{}}}}}}
    script: |
      seq 100000 > {{{{outputs.artifacts.data}}}}
      echo "inode $(stat -c %i {{{{outputs.artifacts.data}}}})"
  - name: use
    image: {img}
    script: |
      f={{{{steps.make.outputs.artifacts.data}}}}
      echo "inode $(stat -c %i $f)"
      echo "mount $(awk -v p=$f '$5 == p {{print $6}}' /proc/self/mountinfo)"
      echo "path $f"
"#
        ))
        .await;
    assert_succeeded(&c, &run);
    let made = fields(&c.stdout(&run.summary.id, "make").await);
    let used = fields(&c.stdout(&run.summary.id, "use").await);
    // The consumer sees the very file the producer wrote (no copy was made)...
    assert_eq!(made["inode"], used["inode"]);
    // ...through a bind mount of its own, read-only.
    let opts = &used["mount"];
    assert!(opts.split(',').any(|o| o == "ro"), "{used:?}");
    assert!(
        used["path"].starts_with("/sluice/inputs/artifacts/"),
        "{used:?}"
    );
    // On the host, that file is the producer's output, and nothing else holds a copy.
    let uri = &task(&run, "make").artifacts[0].uri;
    let host = PathBuf::from(uri.strip_prefix("file://").unwrap());
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(&host).unwrap().ino().to_string(),
        made["inode"]
    );
}

#[tokio::test]
async fn a_writable_host_path_volume_takes_the_steps_writes() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let host = tempfile::tempdir().unwrap();
    let hp = host.path().display();
    let run = c
        .run(&format!(
            "name: rw\nsteps:\n  - name: write\n    image: {img}\n    volumes: [{{hostPath: {hp}, path: /data, writable: true}}]\n    script: echo written > /data/out.txt\n"
        ))
        .await;
    assert_succeeded(&c, &run);
    assert_eq!(
        std::fs::read_to_string(host.path().join("out.txt")).unwrap(),
        "written\n"
    );
}
