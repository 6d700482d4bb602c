//! `sluice up` run by an ordinary user, with no root anywhere: steps in rootless containers.
//! `scripts/test` makes the user `sluice-rootless` with a range in /etc/subuid and /etc/subgid
//! (as `useradd` gives one); `nobody` has none.

use super::*;
use std::os::unix::fs::PermissionsExt;

const USER: &str = "sluice-rootless";

/// `sluice up` as `user`, its data in a directory of that user's: the client and the process.
async fn up_as(user: &str, dir: &Path) -> (Client, Proc) {
    up_in(user, dir, None).await
}

/// The same, started inside cgroup `cgroup` (root moves it there, then drops to the user).
async fn up_in(user: &str, dir: &Path, cgroup: Option<&Path>) -> (Client, Proc) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.join(user);
    std::fs::create_dir_all(&data).unwrap();
    let gid = id_of(user, "-g");
    let owner = std::process::Command::new("chown")
        .args([&format!("{user}:{gid}"), data.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(owner.success());
    let port = free_port();
    let log = std::fs::File::create(dir.join(format!("{user}.log"))).unwrap();
    let mut cmd = match cgroup {
        None => std::process::Command::new("setpriv"),
        Some(cg) => {
            let mut c = std::process::Command::new("sh");
            c.arg("-c")
                .arg("echo $$ > \"$0/cgroup.procs\" && exec setpriv \"$@\"")
                .arg(cg);
            c
        }
    };
    let child = cmd
        .args(["--reuid", user, "--regid", &gid, "--clear-groups", "--"])
        .arg(BIN)
        .args([
            "up",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--capacity",
            "4",
        ])
        .arg("--data-dir")
        .arg(&data)
        .env("HOME", &data)
        .env_remove("SLUICE_TOKEN")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let client = Client::new(&format!("http://127.0.0.1:{port}"), None);
    let start = Instant::now();
    while client.health().await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "sluice up as {user} did not start: {}",
            std::fs::read_to_string(dir.join(format!("{user}.log"))).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (client, Proc(child))
}

fn id_of(user: &str, which: &str) -> String {
    let out = std::process::Command::new("id")
        .args([which, user])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "no user {user}: scripts/test makes it (useradd --no-create-home {user})"
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

async fn stdout(c: &Client, run: &str, task: &str) -> String {
    let page = c.logs(run, task, 0, 1000).await.unwrap();
    page.lines.into_iter().map(|l| l.line + "\n").collect()
}

#[tokio::test]
async fn an_ordinary_user_runs_the_demo_in_rootless_containers() {
    let uid = id_of(USER, "-u");
    let subuid = std::fs::read_to_string("/etc/subuid").unwrap_or_default();
    let range = subuid
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{USER}:")))
        .unwrap_or_else(|| panic!("{USER} has no range in /etc/subuid: scripts/test gives it one"))
        .split(':')
        .next()
        .unwrap()
        .to_string();
    let busybox = image("busybox");
    let configured = image("configured");
    image("sklearn");
    let dir = tempfile::tempdir().unwrap();
    let (c, mut up) = up_as(USER, dir.path()).await;

    // The demo, end to end: the server, the worker and every step as that user.
    let yaml = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/demo/iris.yaml"),
    )
    .unwrap()
    .replace("127.0.0.1:5000", &registry());
    let demo = submit(&c, &yaml).await;
    let demo = wait_run(&c, &demo, Duration::from_secs(300)).await;
    assert_eq!(demo.summary.state, RunState::Succeeded, "{:?}", demo.tasks);
    let accuracy = task(&demo, "evaluate").outputs["accuracy"]
        .as_f64()
        .unwrap();
    assert!(accuracy > 0.85, "accuracy {accuracy}");

    // Root inside is that user outside; the image's other users are its subordinate ids.
    let probe = format!(
        "name: who\nsteps:\n  - name: root\n    image: {busybox}\n    script: |\n      tr -s ' ' < /proc/self/uid_map\n      id -u\n  - name: user\n    image: {configured}\n    command: [id, -u]\n"
    );
    let id = submit(&c, &probe).await;
    let run = wait_run(&c, &id, Duration::from_secs(60)).await;
    assert_eq!(run.summary.state, RunState::Succeeded, "{:?}", run.tasks);
    let root = stdout(&c, &id, "root").await;
    assert!(root.contains(&format!(" 0 {uid} 1")), "{root}");
    assert!(root.contains(&format!(" 1 {range} ")), "{root}");
    assert!(root.ends_with("0\n"), "{root}");
    assert_eq!(stdout(&c, &id, "user").await.trim(), "1000");
    // Nothing it made belongs to root.
    let out = std::process::Command::new("find")
        .arg(dir.path().join(USER))
        .args(["-uid", "0", "-print", "-quit"])
        .output()
        .unwrap();
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    up.kill9();
}

#[tokio::test]
async fn a_user_without_subordinate_ids_runs_steps_as_root_only_and_says_so() {
    let busybox = image("busybox");
    let configured = image("configured");
    let dir = tempfile::tempdir().unwrap();
    let (c, mut up) = up_as("nobody", dir.path()).await;
    let yaml = format!(
        "name: nobody\nsteps:\n  - name: root\n    image: {busybox}\n    script: tr -s ' ' < /proc/self/uid_map\n  - name: user\n    image: {configured}\n    command: [id, -u]\n"
    );
    let id = submit(&c, &yaml).await;
    let run = wait_run(&c, &id, Duration::from_secs(60)).await;
    assert_eq!(stdout(&c, &id, "root").await.trim(), "0 65534 1");
    let user = task(&run, "user");
    assert_eq!(user.state, TaskState::Failed);
    let e = user.error.clone().unwrap_or_default();
    assert!(
        e.contains("maps container ids 0 to 0 only") && e.contains("/etc/subuid"),
        "{e}"
    );
    let log = std::fs::read_to_string(dir.path().join("nobody.log")).unwrap();
    assert!(log.contains("without memory, CPU or PIDs limits"), "{log}");
    up.kill9();
}

/// The cgroup v2 hierarchy's mount point.
fn v2_mount() -> PathBuf {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .filter_map(|l| l.split_once(" - "))
        .find(|(_, right)| right.starts_with("cgroup2 "))
        .and_then(|(left, _)| left.split(' ').nth(4).map(PathBuf::from))
        .expect("a cgroup2 mount")
}

#[tokio::test]
async fn a_rootless_worker_puts_its_steps_in_the_cgroup_it_was_delegated() {
    let busybox = image("busybox");
    // Delegated as systemd delegates a user's service: a group of its own, chowned to it.
    let deleg = v2_mount().join(format!("sluice-test-delegated-{}", std::process::id()));
    std::fs::create_dir(&deleg).unwrap();
    for f in [
        "",
        "cgroup.procs",
        "cgroup.subtree_control",
        "cgroup.threads",
    ] {
        let ok = std::process::Command::new("chown")
            .args([USER, deleg.join(f).to_str().unwrap()])
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let dir = tempfile::tempdir().unwrap();
    let (c, mut up) = up_in(USER, dir.path(), Some(&deleg)).await;
    let yaml = format!(
        "name: held\nsteps:\n  - name: wait\n    image: {busybox}\n    script: |\n      echo started\n      sleep 3\n"
    );
    let id = submit(&c, &yaml).await;
    // While the step runs, its processes are in a group under the delegated one.
    let start = Instant::now();
    let held = loop {
        let found: Vec<PathBuf> = std::fs::read_dir(deleg.join("sluice"))
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|scope| {
                std::fs::read_dir(scope.path())
                    .into_iter()
                    .flatten()
                    .flatten()
            })
            .map(|g| g.path())
            .filter(|g| {
                std::fs::read_to_string(g.join("cgroup.procs")).is_ok_and(|p| !p.trim().is_empty())
            })
            .collect();
        if let Some(g) = found.into_iter().next() {
            break g;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no step group under {}",
            deleg.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let run = wait_run(&c, &id, Duration::from_secs(60)).await;
    assert_eq!(run.summary.state, RunState::Succeeded, "{:?}", run.tasks);
    assert!(!held.exists(), "the step's group is removed when it ends");
    // The worker itself moved into a leaf of its own, and said which limits it cannot hold.
    let me = std::fs::read_to_string(deleg.join("sluice-worker/cgroup.procs")).unwrap();
    assert!(!me.trim().is_empty());
    let log = std::fs::read_to_string(dir.path().join(format!("{USER}.log"))).unwrap();
    let lacking = ["memory", "cpu", "pids"]
        .into_iter()
        .filter(|c| {
            !std::fs::read_to_string(deleg.join("cgroup.subtree_control"))
                .unwrap_or_default()
                .split_whitespace()
                .any(|h| h == *c)
        })
        .collect::<Vec<_>>();
    if lacking.is_empty() {
        assert!(
            log.contains("steps get their limits in the cgroup"),
            "{log}"
        );
    } else {
        assert!(
            log.contains(&format!("has no {} controller", lacking.join(", "))),
            "{log}"
        );
    }
    up.kill9();
    // The groups go with their processes, deepest first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("find \"$0\" -depth -type d -exec rmdir {} +")
        .arg(&deleg)
        .output()
        .unwrap();
    assert!(!deleg.exists(), "{}", String::from_utf8_lossy(&out.stderr));
}
