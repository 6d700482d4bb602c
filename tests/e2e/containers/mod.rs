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
    pub server: Proc,
    pub worker: Option<Proc>,
    worker_args: Vec<String>,
    port: u16,
    lease_ttl: String,
    /// Added to the server's command line and, with `env`, to every process's environment.
    server_args: Vec<String>,
    env: Vec<(&'static str, String)>,
}

impl Cluster {
    pub async fn start(worker_args: &[&str]) -> Cluster {
        Cluster::start_with_ttl("2s", worker_args).await
    }

    /// A cluster whose server gives leases of `ttl`.
    pub async fn start_with_ttl(ttl: &str, worker_args: &[&str]) -> Cluster {
        Cluster::start_custom(ttl, worker_args, &[], Vec::new()).await
    }

    /// A cluster whose artifacts are kept in `s3` (a throwaway Garage).
    pub async fn start_with_store(s3: &sluice_server::throwaway_s3::ThrowawayS3) -> Cluster {
        let url = s3.url("cluster");
        Cluster::start_custom("2s", &[], &["--artifacts", &url], s3.env()).await
    }

    /// A cluster whose server gives leases of `ttl` and takes `server_args`, every process with
    /// `env` added to its environment.
    pub async fn start_custom(
        ttl: &str,
        worker_args: &[&str],
        server_args: &[&str],
        env: Vec<(&'static str, String)>,
    ) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let server = spawn_server_env(
            port,
            &dir.path().join("server"),
            &dir.path().join("server.log"),
            ttl,
            server_args,
            &env,
        )
        .await;
        let url = format!("http://127.0.0.1:{port}");
        let mut c = Cluster {
            client: Client::new(&url, None),
            url,
            server,
            worker: None,
            worker_args: worker_args.iter().map(|s| s.to_string()).collect(),
            dir,
            port,
            lease_ttl: ttl.to_string(),
            server_args: server_args.iter().map(|s| s.to_string()).collect(),
            env,
        };
        c.start_worker();
        c
    }

    /// Kills the server with SIGKILL and starts it again on the same port and database.
    pub async fn restart_server(&mut self) {
        self.server.kill9();
        let more: Vec<&str> = self.server_args.iter().map(String::as_str).collect();
        self.server = spawn_server_env(
            self.port,
            &self.dir.path().join("server"),
            &self.dir.path().join("server.log"),
            &self.lease_ttl,
            &more,
            &self.env,
        )
        .await;
    }

    /// Inside the server's data directory, as `sluice up` lays it out, so that the server can
    /// serve the worker's artifacts.
    pub fn worker_dir(&self) -> PathBuf {
        self.dir.path().join("server/worker")
    }

    pub fn start_worker(&mut self) {
        self.worker = Some(self.spawn_worker(&self.worker_dir(), "worker.log"));
    }

    /// Another worker process, with its own directory and log file.
    pub fn spawn_worker(&self, dir: &Path, log: &str) -> Proc {
        self.spawn_worker_with(dir, log, &[])
    }

    /// Another worker process, with its own directory, log file and options. `dir` is where its
    /// files go: `worker/` in the data directory it is given.
    pub fn spawn_worker_with(&self, dir: &Path, log: &str, more: &[&str]) -> Proc {
        assert!(dir.ends_with("worker"), "{}", dir.display());
        let mut args = vec![
            "worker".to_string(),
            "--server".into(),
            self.url.clone(),
            "--data-dir".into(),
            dir.parent().unwrap().to_string_lossy().into_owned(),
            "--capacity".into(),
            "4".into(),
        ];
        args.extend(self.worker_args.iter().cloned());
        args.extend(more.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        spawn_env(&args, &self.dir.path().join(log), &self.env)
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

/// A one-layer image with busybox and a marker file, pushed to the local registry under `name`.
async fn push_marked_busybox(name: &str, marker: &str, dir: &Path) {
    push_busybox_with(name, dir, &[], |b| {
        let mut h = tar::Header::new_gnu();
        h.set_path("marker").unwrap();
        h.set_size(marker.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, marker.as_bytes()).unwrap();
    })
    .await;
}

/// A one-layer image of busybox, less its top-level entries named in `without`, plus whatever
/// `extra` appends to its layer, pushed to the local registry under `name`.
pub async fn push_busybox_with(
    name: &str,
    dir: &Path,
    without: &[&str],
    extra: impl FnOnce(&mut tar::Builder<Vec<u8>>),
) {
    let store = std::sync::Arc::new(
        sluice_worker::images::store::ImageStore::open(&dir.join("store")).unwrap(),
    );
    let regs = sluice_worker::images::registry::Registries::new(store.clone(), vec![]);
    let rec = regs.ensure(&image("busybox")).await.unwrap();
    let layer = store.layer_path(&rec.layers[0]).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    for e in std::fs::read_dir(&layer).unwrap().flatten() {
        let n = e.file_name();
        if without.iter().any(|w| n == *w) {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            b.append_dir_all(&n, e.path()).unwrap();
        } else {
            b.append_path_with_name(e.path(), &n).unwrap();
        }
    }
    extra(&mut b);
    let tarball = dir.join(format!("{}.tar", name.replace(['/', ':'], "_")));
    std::fs::write(&tarball, b.into_inner().unwrap()).unwrap();
    sluice_worker::images::load::import(&store, &tarball, name).unwrap();
    regs.push(name, None).await.unwrap();
}

/// A symbolic link entry for [`push_busybox_with`].
pub fn tar_symlink(b: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    b.append_link(&mut h, path, target).unwrap();
}

mod caching;
mod claims;
mod control;
mod disk;
mod escapes;
mod failover;
mod groups;
mod inputs;
mod isolation;
mod kfp;
mod kfp_client;
mod lifecycle;
mod logs;
mod network;
mod objects;
mod placement;
mod rootless;
mod seccomp;
mod secrets;
mod wiring;
