//! Steps in real containers (root): a `sluice server` and a `sluice worker` with the embedded
//! runtime as processes, images pulled from the local registry that `scripts/images` fills
//! (127.0.0.1:5000, or `SLUICE_TEST_REGISTRY`). Isolation, limits, endings and cleanup.

use crate::harness::*;
use sluice_sdk::api::{RunDetail, RunState, Stream, TaskInfo, TaskState};
use sluice_sdk::client::Client;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub fn registry() -> String {
    std::env::var("SLUICE_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".into())
}

/// A test image from the local registry, which must be serving it.
pub fn image(name: &str) -> String {
    let reg = registry();
    assert!(
        std::net::TcpStream::connect(&reg).is_ok(),
        "no registry on {reg}: run scripts/images first (scripts/test does)"
    );
    format!("{reg}/sluice/{name}:1")
}

/// A server and one worker with the embedded runtime, each a process of the real binary.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub client: Client,
    pub url: String,
    _server: Proc,
    pub worker: Option<Proc>,
    worker_args: Vec<String>,
}

impl Cluster {
    pub async fn start(worker_args: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let server = spawn_server(
            port,
            &dir.path().join("server"),
            &dir.path().join("server.log"),
        )
        .await;
        let url = format!("http://127.0.0.1:{port}");
        let mut c = Cluster {
            client: Client::new(&url, None),
            url,
            _server: server,
            worker: None,
            worker_args: worker_args.iter().map(|s| s.to_string()).collect(),
            dir,
        };
        c.start_worker();
        c
    }

    /// Inside the server's data directory, as `sluice up` lays it out, so that the server can
    /// serve the worker's artifacts.
    pub fn worker_dir(&self) -> PathBuf {
        self.dir.path().join("server/worker")
    }

    pub fn start_worker(&mut self) {
        let mut args = vec![
            "worker".to_string(),
            "--server".into(),
            self.url.clone(),
            "--data-dir".into(),
            self.worker_dir().to_string_lossy().into_owned(),
            "--capacity".into(),
            "4".into(),
        ];
        args.extend(self.worker_args.iter().cloned());
        let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        self.worker = Some(spawn(&args, &self.dir.path().join("worker.log")));
    }

    pub async fn run(&self, yaml: &str) -> RunDetail {
        let id = submit(&self.client, yaml).await;
        wait_run(&self.client, &id, Duration::from_secs(120)).await
    }

    pub async fn logs(&self, run: &str, task: &str) -> Vec<(Stream, String)> {
        let page = self.client.logs(run, task, 0, 10_000).await.unwrap();
        page.lines.into_iter().map(|l| (l.stream, l.line)).collect()
    }

    pub async fn stdout(&self, run: &str, task: &str) -> String {
        self.logs(run, task)
            .await
            .into_iter()
            .filter(|(s, _)| *s == Stream::Stdout)
            .map(|(_, l)| l + "\n")
            .collect()
    }

    pub fn worker_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("worker.log")).unwrap_or_default()
    }

    /// Directories, cgroups and mounts the worker's containers left behind.
    pub fn leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        let wd = self.worker_dir();
        for sub in ["containers", "tasks"] {
            for e in std::fs::read_dir(wd.join(sub))
                .into_iter()
                .flatten()
                .flatten()
            {
                // `.rootfs`, `.etc`, `.empty`: mount points all containers share, kept.
                if !e.file_name().to_string_lossy().starts_with('.') {
                    out.push(e.path().display().to_string());
                }
            }
        }
        let scope = sluice_worker::images::store::sha256_hex(
            std::fs::canonicalize(&wd)
                .unwrap()
                .to_string_lossy()
                .as_bytes(),
        );
        let scope = &scope["sha256:".len()..][..12];
        for ctl in ["memory", "cpu", "pids", "unified", ""] {
            let parent = Path::new("/sys/fs/cgroup")
                .join(ctl)
                .join("sluice")
                .join(scope);
            for e in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    out.push(e.path().display().to_string());
                }
            }
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let wd = wd.to_string_lossy().into_owned();
        out.extend(
            mounts
                .lines()
                .filter(|l| l.contains(&wd))
                .map(str::to_string),
        );
        out
    }
}

pub fn task<'a>(run: &'a RunDetail, name: &str) -> &'a TaskInfo {
    run.tasks.iter().find(|t| t.name == name).unwrap()
}

fn assert_succeeded(c: &Cluster, run: &RunDetail) {
    assert_eq!(
        run.summary.state,
        RunState::Succeeded,
        "run failed: {:?}\nworker log:\n{}",
        run.tasks
            .iter()
            .map(|t| (&t.name, t.state, &t.error))
            .collect::<Vec<_>>(),
        c.worker_log()
    );
}

#[tokio::test]
async fn a_three_step_pipeline_passes_a_parameter_and_an_artifact_in_real_containers() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let run = c
        .run(&format!(
            r#"
name: three-steps
params:
  greeting: {{type: string, default: hello}}
steps:
  - name: make
    image: {img}
    inputs: {{params: {{greeting: {{type: string}}}}}}
    params: {{greeting: "{{{{params.greeting}}}}"}}
    outputs:
      params: {{count: {{type: int}}}}
      artifacts: {{words: {{type: dataset}}}}
    script: |
      mkdir -p /sluice/outputs/artifacts/words
      for w in {{{{inputs.params.greeting}}}} from a container; do echo $w; done > /sluice/outputs/artifacts/words/list.txt
      wc -l < /sluice/outputs/artifacts/words/list.txt | tr -d ' ' > /sluice/outputs/params/count
      cat /etc/os-release
  - name: read
    image: {img}
    outputs: {{params: {{first: {{type: string}}}}}}
    script: |
      head -n1 {{{{steps.make.outputs.artifacts.words}}}}/list.txt > /sluice/outputs/params/first
      echo "count={{{{steps.make.outputs.params.count}}}}"
      touch {{{{steps.make.outputs.artifacts.words}}}}/tamper 2>&1 || echo "input is read-only"
  - name: report
    image: {img}
    command: [sh, -c]
    args: ["echo first={{{{steps.read.outputs.params.first}}}} host=$(hostname)"]
"#
        ))
        .await;
    assert_succeeded(&c, &run);
    let make = task(&run, "make");
    assert_eq!(make.outputs["count"], serde_json::json!(4));
    let words = &make.artifacts[0];
    assert_eq!(words.name, "words");
    assert!(words.size > 0 && words.sha256.len() == 64, "{words:?}");
    // The step saw the image's /etc/os-release, not the host's.
    let out = c.stdout(&run.summary.id, "make").await;
    assert!(out.contains("ID=busybox"), "{out}");
    let host = std::fs::read_to_string("/etc/os-release").unwrap();
    assert!(!host.contains("ID=busybox"));
    // The image's digest is recorded on each task.
    assert!(make
        .image_digest
        .as_deref()
        .unwrap_or("")
        .starts_with("sha256:"));
    let read = c.stdout(&run.summary.id, "read").await;
    assert!(
        read.contains("count=4") && read.contains("input is read-only"),
        "{read}"
    );
    assert_eq!(
        task(&run, "read").outputs["first"],
        serde_json::json!("hello")
    );
    let report = c.stdout(&run.summary.id, "report").await;
    assert_eq!(report.trim(), "first=hello host=report");
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
}

#[tokio::test]
async fn writes_outside_the_volumes_stay_in_the_container() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let marker = format!("sluice-escape-{}", std::process::id());
    let run = c
        .run(&format!(
            r#"
name: escape
steps:
  - name: write
    image: {img}
    script: |
      echo x > /etc/{marker}
      echo x > /tmp/{marker}
      echo x > /bin/{marker}
      rm -f /bin/ls
      ls /etc/{marker} && echo wrote
      mknod /tmp/disk b 8 0 || echo "no device nodes"
      echo 1 > /proc/sys/kernel/hostname || echo "proc read-only"
      cat /proc/self/status | grep CapBnd
  - name: after
    image: {img}
    dependsOn: [write]
    command: [sh, -c, "ls /bin/ls && ls /etc/{marker} || echo clean"]
"#
        ))
        .await;
    assert_succeeded(&c, &run);
    let out = c.stdout(&run.summary.id, "write").await;
    assert!(
        out.contains("wrote") && out.contains("no device nodes") && out.contains("proc read-only"),
        "{out}"
    );
    // Docker's bounding set less CAP_MKNOD: 0xa00425fb & !(1 << 27).
    assert!(out.contains("CapBnd:\t00000000a00425fb"), "{out}");
    for dir in ["/etc", "/tmp", "/bin"] {
        assert!(
            !Path::new(dir).join(&marker).exists(),
            "{dir}/{marker} reached the host"
        );
    }
    // The next container starts from the untouched image.
    let after = c.stdout(&run.summary.id, "after").await;
    assert!(
        after.contains("/bin/ls") && after.contains("clean"),
        "{after}"
    );
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
}

#[tokio::test]
async fn a_memory_bomb_is_oom_killed_and_reported_so() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let run = c
        .run(&format!(
            r#"
name: membomb
steps:
  - name: bomb
    image: {img}
    resources: {{memory: 32Mi}}
    command: [dd, if=/dev/zero, of=/dev/null, bs=256M, count=1]
"#
        ))
        .await;
    assert_eq!(run.summary.state, RunState::Failed);
    let t = task(&run, "bomb");
    assert_eq!(t.exit_code, Some(137));
    let err = t.error.clone().unwrap_or_default();
    assert!(
        err.contains("out of memory") && err.contains("32 MiB"),
        "{err}"
    );
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
}

#[tokio::test]
async fn a_fork_bomb_is_held_by_the_pids_limit() {
    let c = Cluster::start(&["--pids-limit", "32"]).await;
    let img = image("busybox");
    // The bomb (a background loop starting processes that stay) runs until a fork fails; the
    // step's own shell samples how many processes the container has, with builtins only (it
    // cannot fork either while the bomb holds every PID).
    let run = c
        .run(&format!(
            r#"
name: forkbomb
steps:
  - name: bomb
    image: {img}
    script: |
      ( while true; do sleep 100 & done ) 2>/dev/null &
      max=0; i=0
      while [ $i -lt 400 ]; do
        n=0; for p in /proc/[0-9]*; do n=$((n+1)); done
        [ $n -gt $max ] && max=$n
        i=$((i+1))
      done
      echo "procs $max"
"#
        ))
        .await;
    let out = c.stdout(&run.summary.id, "bomb").await;
    let n: u32 = out
        .trim()
        .strip_prefix("procs ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out:?} {:?}", run.tasks[0]));
    // The bomb filled the container's PIDs budget, and no more.
    assert!((16..=32).contains(&n), "{n} processes at most");
    assert_eq!(run.summary.state, RunState::Succeeded);
    // Everything it started died with the container.
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
}

#[tokio::test]
async fn a_step_without_network_cannot_reach_the_hosts_loopback_services() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Counts connections, closing each at once.
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            if conn.is_ok() {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    let run = c
        .run(&format!(
            r#"
name: network
steps:
  - name: isolated
    image: {img}
    command: [sh, -c, "echo ping | nc -w 2 127.0.0.1 {port} && echo reached || echo unreachable; ip -o link | cut -d: -f2"]
  - name: host
    image: {img}
    dependsOn: [isolated]
    network: host
    command: [sh, -c, "echo ping | nc -w 2 127.0.0.1 {port} && echo reached || echo unreachable"]
"#
        ))
        .await;
    assert_succeeded(&c, &run);
    let isolated = c.stdout(&run.summary.id, "isolated").await;
    assert!(isolated.contains("unreachable"), "{isolated}");
    assert_eq!(
        isolated.lines().filter(|l| l.trim() == "lo").count(),
        1,
        "only loopback: {isolated}"
    );
    // The same step with host networking does reach it, so the first result is the namespace's doing.
    let host = c.stdout(&run.summary.id, "host").await;
    assert!(host.contains("reached"), "{host}");
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "only the host-network step connected"
    );
}

#[tokio::test]
async fn cancel_mid_step_kills_every_process_of_the_container() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let tag = 3_000_000 + std::process::id() % 100_000;
    let id = submit(
        &c.client,
        &format!(
            r#"
name: cancel
steps:
  - name: sleepy
    image: {img}
    script: |
      sleep {tag} &
      sleep {tag}
"#
        ),
    )
    .await;
    wait_until(
        &c.client,
        &id,
        Duration::from_secs(60),
        "the step to run",
        |d| d.tasks[0].state == TaskState::Running,
    )
    .await;
    let sleeping = || sleepers(tag);
    let start = Instant::now();
    while sleeping().len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the step's processes never showed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.client.cancel_run(&id).await.unwrap();
    let run = wait_run(&c.client, &id, Duration::from_secs(30)).await;
    assert_eq!(run.summary.state, RunState::Cancelled);
    assert_eq!(run.tasks[0].state, TaskState::Cancelled);
    assert!(sleeping().is_empty(), "still running: {:?}", sleeping());
    let start = Instant::now();
    while !c.leftovers().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            c.leftovers()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts a run of one step that sleeps (for a tag unique to this test process) and waits until
/// it sleeps; returns the run's id and the tag.
async fn sleeping_step(c: &Cluster, img: &str, name: &str, base: u32) -> (String, u32) {
    let tag = base + std::process::id() % 100_000;
    let yaml = format!(
        "name: {name}\nsteps:\n  - name: s\n    image: {img}\n    command: [sleep, \"{tag}\"]\n"
    );
    let id = submit(&c.client, &yaml).await;
    let start = Instant::now();
    while sleepers(tag).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the step never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (id, tag)
}

/// Host pids of processes running `sleep <tag>`.
fn sleepers(tag: u32) -> Vec<i32> {
    let want = format!("sleep\0{tag}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| c == want.as_bytes())
                .unwrap_or(false)
        })
        .collect()
}

#[tokio::test]
async fn hundreds_of_steps_leave_no_mount_cgroup_or_directory_behind() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let mut yaml = String::from("name: many\nsteps:\n");
    for i in 0..200 {
        yaml.push_str(&format!(
            "  - name: s{i}\n    image: {img}\n    command: [sh, -c, \"echo {{{{task.name}}}} > /tmp/x\"]\n"
        ));
    }
    let run = c.run(&yaml).await;
    assert_succeeded(&c, &run);
    assert_eq!(run.tasks.len(), 200);
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
}

#[tokio::test]
async fn a_restarted_worker_cleans_up_what_a_crashed_one_left() {
    let mut c = Cluster::start(&[]).await;
    let img = image("busybox");
    let (id, tag) = sleeping_step(&c, &img, "crash", 4_000_000).await;
    c.worker.take().unwrap().kill9();
    // The container outlives its worker...
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sleepers(tag).len(), 1);
    assert!(!c.leftovers().is_empty());
    // ...until a worker starts on the same directory.
    c.start_worker();
    let start = Instant::now();
    while !sleepers(tag).is_empty() || !c.leftovers().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "left: {:?} {:?}",
            sleepers(tag),
            c.leftovers()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(c.worker_log().contains("left behind"), "{}", c.worker_log());
    c.client.cancel_run(&id).await.unwrap();
}

#[tokio::test]
async fn volumes_are_read_only_unless_writable_and_named_ones_outlive_runs() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("labels.csv"), "a,b\n").unwrap();
    let hp = host.path().display();
    let write = c
        .run(&format!(
            r#"
name: volumes
steps:
  - name: fill
    image: {img}
    volumes:
      - {{name: cache, path: /cache, writable: true}}
      - {{hostPath: {hp}, path: /data}}
    script: |
      cat /data/labels.csv
      echo nope > /data/new.csv || echo "data is read-only"
      echo kept > /cache/token
"#
        ))
        .await;
    assert_succeeded(&c, &write);
    let out = c.stdout(&write.summary.id, "fill").await;
    assert!(
        out.contains("a,b") && out.contains("data is read-only"),
        "{out}"
    );
    assert!(!host.path().join("new.csv").exists());
    let read = c
        .run(&format!(
            "name: volumes2\nsteps:\n  - name: use\n    image: {img}\n    volumes: [{{name: cache, path: /cache}}]\n    command: [cat, /cache/token]\n"
        ))
        .await;
    assert_succeeded(&c, &read);
    assert_eq!(c.stdout(&read.summary.id, "use").await.trim(), "kept");
}

#[tokio::test]
async fn a_missing_program_or_image_fails_the_step_with_a_clear_error() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let run = c
        .run(&format!(
            "name: bad\nsteps:\n  - name: noprog\n    image: {img}\n    command: [train-model]\n  - name: noimage\n    image: {}/sluice/absent:1\n    command: [true]\n",
            registry()
        ))
        .await;
    assert_eq!(run.summary.state, RunState::Failed);
    let e = task(&run, "noprog").error.clone().unwrap_or_default();
    assert!(e.contains("`train-model` not found in $PATH"), "{e}");
    let e = task(&run, "noimage").error.clone().unwrap_or_default();
    assert!(e.contains("sluice/absent:1"), "{e}");
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
}

#[tokio::test]
async fn the_demo_pipeline_trains_and_evaluates_a_model_on_the_scikit_learn_image() {
    let c = Cluster::start(&[]).await;
    image("sklearn");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let yaml = std::fs::read_to_string(root.join("pipelines/demo/iris.yaml"))
        .unwrap()
        .replace("127.0.0.1:5000", &registry());
    let run = c.run(&yaml).await;
    assert_succeeded(&c, &run);
    assert_eq!(
        task(&run, "prepare").outputs["rows"],
        serde_json::json!(150)
    );
    let accuracy = task(&run, "evaluate").outputs["accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.85 && accuracy <= 1.0, "accuracy {accuracy}");
    let model = &task(&run, "train").artifacts[0];
    assert_eq!(model.name, "model");
    assert!(model.size > 10_000, "{model:?}");
    let metrics = &task(&run, "evaluate").artifacts[0];
    let path = metrics.uri.strip_prefix("file://").unwrap();
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    // The parameter is the metrics file's accuracy, to four places.
    assert!(
        (m["accuracy"].as_f64().unwrap() - accuracy).abs() < 1e-4,
        "{m}"
    );
    assert_eq!(m["confusion_matrix"].as_array().unwrap().len(), 3);
    let out = c.stdout(&run.summary.id, "evaluate").await;
    assert!(out.contains("accuracy:"), "{out}");
}

#[tokio::test]
async fn the_example_pipelines_run_in_real_containers() {
    let c = Cluster::start(&[]).await;
    image("busybox");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let yaml = std::fs::read_to_string(root.join("pipelines/examples/params-and-artifacts.yaml"))
        .unwrap()
        .replace("127.0.0.1:5000", &registry());
    let run = c.run(&yaml).await;
    assert_succeeded(&c, &run);
}

#[tokio::test]
async fn a_step_asking_for_a_gpu_on_a_host_without_one_fails_with_a_clear_error() {
    if Path::new("/dev/nvidia0").exists() {
        return; // this host has a GPU: scripts/gpu-check shows it at work instead
    }
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let run = c
        .run(&format!(
            "name: gpu\nsteps:\n  - name: train\n    image: {img}\n    resources: {{gpu: 1}}\n    command: [\"true\"]\n"
        ))
        .await;
    assert_eq!(run.summary.state, RunState::Failed);
    let e = task(&run, "train").error.clone().unwrap_or_default();
    assert!(
        e.contains("asks for 1 GPU(s)") && e.contains("no NVIDIA GPU"),
        "{e}"
    );
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
}

#[tokio::test]
async fn an_image_prune_keeps_the_layers_of_running_steps() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let (id, _) = sleeping_step(&c, &img, "prune", 5_000_000).await;
    let wd = c.worker_dir();
    let layers = || -> Vec<String> {
        std::fs::read_dir(wd.join("images/layers/sha256"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let before = layers();
    assert!(!before.is_empty());
    let image_cmd = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .arg("image")
            .args(args)
            .arg("--worker-dir")
            .arg(&wd)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    image_cmd(&["rm", &img]);
    image_cmd(&["prune"]);
    assert_eq!(layers(), before, "a running step's layer was pruned");
    c.client.cancel_run(&id).await.unwrap();
    wait_run(&c.client, &id, Duration::from_secs(30)).await;
    let start = Instant::now();
    while !c.leftovers().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            c.leftovers()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    image_cmd(&["prune"]);
    assert!(layers().is_empty(), "unused layers stay: {:?}", layers());
}

#[tokio::test]
async fn a_flaky_step_is_retried_and_a_slow_one_is_killed_at_its_timeout() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let tag = 6_000_000 + std::process::id() % 100_000;
    let run = c
        .run(&format!(
            r#"
name: retries
steps:
  - name: flaky
    image: {img}
    retry: {{limit: 3, backoff: {{initial: 200ms, factor: 2}}}}
    command: [sh, -c, "echo attempt {{{{task.attempt}}}}; test {{{{task.attempt}}}} -ge 3"]
  - name: after
    image: {img}
    command: [echo, "after the flaky one"]
    dependsOn: [flaky]
  - name: slow
    image: {img}
    timeout: 1s
    command: [sleep, "{tag}"]
"#
        ))
        .await;
    let flaky = task(&run, "flaky");
    assert_eq!(flaky.state, TaskState::Succeeded, "{flaky:?}");
    assert_eq!(flaky.attempt, 3);
    let history: Vec<(u32, TaskState)> = flaky
        .attempts
        .iter()
        .map(|a| (a.attempt, a.state))
        .collect();
    assert_eq!(
        history,
        [
            (1, TaskState::Failed),
            (2, TaskState::Failed),
            (3, TaskState::Succeeded)
        ]
    );
    // Each attempt keeps its own log.
    let logs = c
        .client
        .logs(&run.summary.id, "flaky", 0, 100)
        .await
        .unwrap();
    let lines: Vec<(u32, String)> = logs
        .lines
        .iter()
        .map(|l| (l.attempt, l.line.clone()))
        .collect();
    assert_eq!(
        lines,
        [
            (1, "attempt 1".to_string()),
            (2, "attempt 2".into()),
            (3, "attempt 3".into())
        ]
    );
    assert_eq!(task(&run, "after").state, TaskState::Succeeded);
    let slow = task(&run, "slow");
    assert_eq!(slow.state, TaskState::Failed);
    assert!(
        slow.error
            .as_deref()
            .unwrap_or("")
            .contains("timed out after 1s"),
        "{slow:?}"
    );
    assert!(sleepers(tag).is_empty());
    assert_eq!(run.summary.state, RunState::Failed);
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
}

#[tokio::test]
async fn a_condition_on_an_upstream_output_picks_the_branch_that_runs() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let run = c
        .run(&format!(
            r#"
name: branches
params:
  threshold: {{type: float, default: 0.9}}
steps:
  - name: evaluate
    image: {img}
    outputs: {{params: {{accuracy: {{type: float}}}}}}
    command: [sh, -c, "echo 0.93 > {{{{outputs.params.accuracy}}}}"]
  - name: deploy
    image: {img}
    when: '{{{{steps.evaluate.outputs.params.accuracy}}}} >= {{{{params.threshold}}}}'
    command: [echo, deploying]
  - name: retrain
    image: {img}
    when: '{{{{steps.evaluate.outputs.params.accuracy}}}} < {{{{params.threshold}}}}'
    command: [echo, retraining]
  - name: notify
    image: {img}
    dependsOn: [deploy, retrain]
    command: [echo, done]
"#
        ))
        .await;
    assert_succeeded(&c, &run);
    assert_eq!(task(&run, "deploy").state, TaskState::Succeeded);
    let retrain = task(&run, "retrain");
    assert_eq!(retrain.state, TaskState::Skipped);
    assert!(
        retrain.error.as_deref().unwrap().contains("is false"),
        "{retrain:?}"
    );
    assert_eq!(task(&run, "notify").state, TaskState::Succeeded);
    assert_eq!(
        c.stdout(&run.summary.id, "deploy").await.trim(),
        "deploying"
    );
}

#[tokio::test]
async fn exit_handlers_run_after_a_failure_and_after_a_cancel_and_see_the_outcome() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let pipeline = |cmd: &str| {
        format!(
            r#"
name: exit-handlers
steps:
  - name: train
    image: {img}
    command: [sh, -c, "{cmd}"]
  - name: eval
    image: {img}
    command: [echo, eval]
    dependsOn: [train]
onExit:
  - name: notify
    image: {img}
    command: [echo, "run {{{{run.status}}}}"]
"#
        )
    };
    let run = c.run(&pipeline("exit 3")).await;
    assert_eq!(run.summary.state, RunState::Failed);
    assert_eq!(task(&run, "eval").state, TaskState::Skipped);
    assert_eq!(task(&run, "notify").state, TaskState::Succeeded);
    assert_eq!(
        c.stdout(&run.summary.id, "notify").await.trim(),
        "run failed"
    );
    // Shown as coming after the step that ends the graph.
    assert_eq!(task(&run, "notify").depends_on, ["eval"]);

    let id = submit(&c.client, &pipeline("sleep 600")).await;
    wait_until(
        &c.client,
        &id,
        Duration::from_secs(60),
        "train to run",
        |d| d.tasks[0].state == TaskState::Running,
    )
    .await;
    c.client.cancel_run(&id).await.unwrap();
    let run = wait_run(&c.client, &id, Duration::from_secs(60)).await;
    assert_eq!(run.summary.state, RunState::Cancelled);
    assert_eq!(task(&run, "train").state, TaskState::Cancelled);
    assert_eq!(task(&run, "notify").state, TaskState::Succeeded);
    assert_eq!(c.stdout(&id, "notify").await.trim(), "run cancelled");
}

fn caching_pipeline(img: &str) -> String {
    format!(
        r#"
name: cached
params:
  n: {{type: int, default: 3}}
steps:
  - name: make
    image: {img}
    outputs: {{artifacts: {{data: {{}}}}, params: {{count: {{type: int}}}}}}
    command: [sh, -c, "seq {{{{params.n}}}} > {{{{outputs.artifacts.data}}}}; echo {{{{params.n}}}} > {{{{outputs.params.count}}}}; echo made"]
  - name: use
    image: {img}
    command: [sh, -c, "wc -l < {{{{steps.make.outputs.artifacts.data}}}}"]
  - name: fresh
    image: {img}
    cache: false
    command: [echo, fresh]
"#
    )
}

#[tokio::test]
async fn a_second_submit_is_served_from_the_cache_and_any_change_is_a_miss() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let yaml = caching_pipeline(&img);
    let first = c.run(&yaml).await;
    assert_succeeded(&c, &first);
    assert!(first.tasks.iter().all(|t| t.cached_from.is_none()));

    // The same again: every cacheable step reuses the first run's result; no container starts.
    let second = c.run(&yaml).await;
    assert_succeeded(&c, &second);
    for name in ["make", "use"] {
        let t = task(&second, name);
        assert_eq!(
            t.cached_from.as_deref(),
            Some(first.summary.id.as_str()),
            "{name}"
        );
        assert!(
            c.logs(&second.summary.id, name).await.is_empty(),
            "{name} ran"
        );
    }
    assert_eq!(task(&second, "make").outputs["count"], serde_json::json!(3));
    assert_eq!(
        task(&second, "make").artifacts,
        task(&first, "make").artifacts
    );
    // Opted out: it runs every time.
    assert_eq!(task(&second, "fresh").cached_from, None);
    assert_eq!(c.stdout(&second.summary.id, "fresh").await.trim(), "fresh");

    // Another parameter value: a miss for what it changes.
    let req = sluice_sdk::api::CreateRun {
        yaml: Some(yaml.clone()),
        params: [("n".to_string(), serde_json::json!(4))].into(),
        ..Default::default()
    };
    let id = c.client.create_run(&req).await.unwrap().summary.id;
    let third = wait_run(&c.client, &id, Duration::from_secs(60)).await;
    assert_eq!(task(&third, "make").cached_from, None);
    assert_eq!(c.stdout(&id, "use").await.trim(), "4");

    // A run that asks for no cache runs everything.
    let req = sluice_sdk::api::CreateRun {
        yaml: Some(yaml.clone()),
        cache: Some(false),
        ..Default::default()
    };
    let id = c.client.create_run(&req).await.unwrap().summary.id;
    let nocache = wait_run(&c.client, &id, Duration::from_secs(60)).await;
    assert!(nocache.tasks.iter().all(|t| t.cached_from.is_none()));

    // The cached artifact was deleted: the producer runs again.
    for run in [&first, &nocache] {
        let uri = &task(run, "make").artifacts[0].uri;
        std::fs::remove_file(uri.strip_prefix("file://").unwrap()).unwrap();
    }
    let fourth = c.run(&yaml).await;
    assert_succeeded(&c, &fourth);
    assert_eq!(task(&fourth, "make").cached_from, None);
    assert_eq!(c.stdout(&fourth.summary.id, "make").await.trim(), "made");
}

/// A one-layer image with busybox and a marker file, pushed to the local registry under `name`.
async fn push_marked_busybox(name: &str, marker: &str, dir: &Path) {
    let store = std::sync::Arc::new(
        sluice_worker::images::store::ImageStore::open(&dir.join("store")).unwrap(),
    );
    let regs = sluice_worker::images::registry::Registries::new(store.clone(), vec![]);
    let rec = regs.ensure(&image("busybox")).await.unwrap();
    let layer = store.layer_path(&rec.layers[0]).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", &layer).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_path("marker").unwrap();
    h.set_size(marker.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, marker.as_bytes()).unwrap();
    let tarball = dir.join(format!("{marker}.tar"));
    std::fs::write(&tarball, b.into_inner().unwrap()).unwrap();
    sluice_worker::images::load::import(&store, &tarball, name).unwrap();
    regs.push(name, None).await.unwrap();
}

#[tokio::test]
async fn a_tag_that_moved_to_another_image_is_a_cache_miss() {
    // Trust a tag for no time at all, on the server and the worker alike.
    std::env::set_var("SLUICE_TAG_TTL", "0s");
    let c = Cluster::start(&[]).await;
    let name = format!("{}/sluice/cachetest-{}:1", registry(), std::process::id());
    push_marked_busybox(&name, "first", c.dir.path()).await;
    let yaml = format!("name: moved\nsteps:\n  - name: read\n    image: {name}\n    outputs: {{params: {{m: {{type: string}}}}}}\n    command: [sh, -c, \"cat /marker > {{{{outputs.params.m}}}}\"]\n");
    let one = c.run(&yaml).await;
    assert_succeeded(&c, &one);
    let two = c.run(&yaml).await;
    assert_eq!(
        task(&two, "read").cached_from.as_deref(),
        Some(one.summary.id.as_str())
    );
    push_marked_busybox(&name, "second", c.dir.path()).await;
    let three = c.run(&yaml).await;
    assert_succeeded(&c, &three);
    let t = task(&three, "read");
    assert_eq!(t.cached_from, None);
    assert_eq!(t.outputs["m"], serde_json::json!("second"));
    assert_ne!(t.image_digest, task(&one, "read").image_digest);
}

#[tokio::test]
async fn rerun_from_failure_reuses_what_succeeded_and_runs_the_rest() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let flag = c.dir.path().join("flag");
    let yaml = format!(
        r#"
name: rerun
steps:
  - name: prepare
    image: {img}
    cache: false
    outputs: {{params: {{rows: {{type: int}}}}}}
    command: [sh, -c, "echo 150 > {{{{outputs.params.rows}}}}"]
  - name: train
    image: {img}
    cache: false
    volumes: [{{hostPath: {dir}, path: /ctl}}]
    command: [sh, -c, "test -e /ctl/flag && echo trained on {{{{steps.prepare.outputs.params.rows}}}}"]
  - name: report
    image: {img}
    command: [echo, report]
    dependsOn: [train]
"#,
        dir = c.dir.path().display()
    );
    let first = c.run(&yaml).await;
    assert_eq!(first.summary.state, RunState::Failed);
    assert_eq!(task(&first, "train").state, TaskState::Failed);
    assert_eq!(task(&first, "report").state, TaskState::Skipped);
    // Fix what failed, then rerun from the failure: `prepare` (never cached) is reused anyway.
    std::fs::write(&flag, "").unwrap();
    let d = c.client.rerun(&first.summary.id).await.unwrap();
    let second = wait_run(&c.client, &d.summary.id, Duration::from_secs(60)).await;
    assert_succeeded(&c, &second);
    let prepare = task(&second, "prepare");
    assert_eq!(
        prepare.cached_from.as_deref(),
        Some(first.summary.id.as_str())
    );
    assert!(c.logs(&second.summary.id, "prepare").await.is_empty());
    assert_eq!(task(&second, "train").cached_from, None);
    assert_eq!(
        c.stdout(&second.summary.id, "train").await.trim(),
        "trained on 150"
    );
    assert_eq!(second.summary.name, format!("{}-rerun", first.summary.name));
    // An active run cannot be rerun.
    let id = submit(
        &c.client,
        &format!(
            "name: busy\nsteps:\n  - name: s\n    image: {img}\n    command: [sleep, \"30\"]\n"
        ),
    )
    .await;
    let e = c.client.rerun(&id).await.unwrap_err();
    assert_eq!(e.code(), Some("run_active"));
    c.client.cancel_run(&id).await.unwrap();
}

#[tokio::test]
async fn a_loop_over_hyperparameters_fans_in_to_pick_the_best() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let run = c
        .run(&format!(
            r#"
name: sweep
params:
  rates: {{type: list, default: [1, 5, 3]}}
steps:
  - name: train
    image: {img}
    forEach: '{{{{params.rates}}}}'
    parallelism: 2
    outputs: {{params: {{score: {{type: int}}}}, artifacts: {{model: {{}}}}}}
    command: [sh, -c, "echo $(( {{{{item}}}} * 10 )) > {{{{outputs.params.score}}}}; echo model-{{{{item}}}} > {{{{outputs.artifacts.model}}}}"]
  - name: best
    image: {img}
    outputs: {{params: {{top: {{type: int}}}}}}
    command: [sh, -c, "echo '{{{{steps.train.outputs.params.score}}}}' | tr -d '[]' | tr ',' '\n' | sort -n | tail -1 > {{{{outputs.params.top}}}}; cd {{{{steps.train.outputs.artifacts.model}}}} && for k in *; do echo $k $(cat $k); done"]
"#
        ))
        .await;
    assert_succeeded(&c, &run);
    assert_eq!(
        task(&run, "train").outputs["score"],
        serde_json::json!([10, 50, 30])
    );
    for k in 0..3 {
        assert_eq!(
            task(&run, &format!("train[{k}]")).state,
            TaskState::Succeeded
        );
    }
    assert_eq!(task(&run, "best").outputs["top"], serde_json::json!(50));
    // Each iteration's artifact, mounted read-only at its index.
    assert_eq!(
        c.stdout(&run.summary.id, "best").await,
        "0 model-1\n1 model-5\n2 model-3\n"
    );
    let names: Vec<&str> = task(&run, "train")
        .artifacts
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(names, ["model[0]", "model[1]", "model[2]"]);
    // The graph shows the fan-out and the fan-in.
    assert_eq!(
        task(&run, "train").depends_on,
        ["train[0]", "train[1]", "train[2]"]
    );
}

#[tokio::test]
async fn a_loop_runs_once_per_item_an_upstream_step_output() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let run = c
        .run(&format!(
            r#"
name: shards
steps:
  - name: split
    image: {img}
    outputs: {{params: {{shards: {{type: list}}}}}}
    command: [sh, -c, "echo '[\"a\", \"bb\", \"ccc\"]' > {{{{outputs.params.shards}}}}"]
  - name: count
    image: {img}
    forEach: '{{{{steps.split.outputs.params.shards}}}}'
    outputs: {{params: {{len: {{type: int}}}}}}
    command: [sh, -c, "printf %s {{{{item}}}} | wc -c > {{{{outputs.params.len}}}}"]
  - name: total
    image: {img}
    command: [echo, "{{{{steps.count.outputs.params.len}}}}"]
"#
        ))
        .await;
    assert_succeeded(&c, &run);
    assert_eq!(
        task(&run, "count").outputs["len"],
        serde_json::json!([1, 2, 3])
    );
    assert_eq!(c.stdout(&run.summary.id, "total").await.trim(), "[1,2,3]");
    assert_eq!(
        task(&run, "count").depends_on,
        ["count[0]", "count[1]", "count[2]"]
    );
}
