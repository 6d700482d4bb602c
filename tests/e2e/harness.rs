//! Starting servers and workers for tests, and waiting on runs.

use sluice_sdk::api::{RunDetail, RunState};
use sluice_sdk::client::Client;
use sluice_server::scheduler::SchedulerConfig;
use sluice_worker::runtime::fake::FakeRuntime;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub const BIN: &str = env!("CARGO_BIN_EXE_sluice");

/// A server and a worker running inside the test process.
pub struct InProcess {
    pub client: Client,
    pub url: String,
    pub runtime: Arc<FakeRuntime>,
    pub dir: tempfile::TempDir,
    stop: watch::Sender<bool>,
}

impl InProcess {
    pub async fn start() -> InProcess {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, rx) = watch::channel(false);
        let cfg = sluice_server::ServerConfig {
            data_dir: dir.path().join("server"),
            scheduler: SchedulerConfig::default(),
            token: None,
            ..Default::default()
        };
        let mut r = rx.clone();
        tokio::spawn(sluice_server::serve(cfg, listener, async move {
            let _ = r.wait_for(|s| *s).await;
        }));
        let runtime = Arc::new(FakeRuntime::default());
        let wcfg = sluice_worker::WorkerConfig {
            server: url.clone(),
            token: None,
            name: "test".into(),
            capacity: 8,
            labels: Default::default(),
            data_dir: dir.path().join("worker"),
            poll_wait: Duration::from_secs(5),
            drain: Duration::from_secs(1),
            log_policy: Default::default(),
            ca_cert: None,
            artifact_store: None,
        };
        let mut r = rx.clone();
        let rt: Arc<dyn sluice_worker::runtime::ContainerRuntime> = runtime.clone();
        tokio::spawn(sluice_worker::run(wcfg, rt, async move {
            let _ = r.wait_for(|s| *s).await;
        }));
        let client = Client::new(&url, None);
        InProcess {
            client,
            url,
            runtime,
            dir,
            stop,
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Polls a run until it ends.
pub async fn wait_run(client: &Client, id: &str, timeout: Duration) -> RunDetail {
    let start = Instant::now();
    loop {
        if let Ok(d) = client.get_run(id).await {
            if d.summary.state.is_terminal() {
                return d;
            }
        }
        assert!(
            start.elapsed() < timeout,
            "run {id} did not end within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls until `check` holds for the run.
pub async fn wait_until(
    client: &Client,
    id: &str,
    timeout: Duration,
    what: &str,
    check: impl Fn(&RunDetail) -> bool,
) -> RunDetail {
    let start = Instant::now();
    loop {
        if let Ok(d) = client.get_run(id).await {
            if check(&d) {
                return d;
            }
            assert!(
                d.summary.state == RunState::Running || d.summary.state == RunState::Cancelling,
                "run ended ({}) before {what}",
                d.summary.state
            );
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Proc {
    pub fn kill9(&mut self) {
        let _ = self.0.kill(); // SIGKILL
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn spawn(args: &[&str], log: &Path) -> Proc {
    spawn_env(args, log, &[])
}

/// `sluice ARGS`, with `env` added to its environment.
pub fn spawn_env(args: &[&str], log: &Path, env: &[(&str, String)]) -> Proc {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let child = Command::new(BIN)
        .args(args)
        .env("SLUICE_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    Proc(child)
}

/// Starts `sluice server` on `port` with short leases, and waits until it answers.
pub async fn spawn_server(port: u16, data: &Path, log: &Path) -> Proc {
    spawn_server_ttl(port, data, log, "2s").await
}

/// Starts `sluice server` on `port` with leases of `ttl`, and waits until it answers.
pub async fn spawn_server_ttl(port: u16, data: &Path, log: &Path, ttl: &str) -> Proc {
    spawn_server_with(port, data, log, ttl, &[]).await
}

/// Starts `sluice server` on `port` with short leases and its state in `database` (a
/// `postgres://` URL; SQLite under `data` when none), and waits until it answers.
pub async fn spawn_server_on(port: u16, data: &Path, log: &Path, database: Option<&str>) -> Proc {
    match database {
        Some(url) => spawn_server_with(port, data, log, "2s", &["--database", url]).await,
        None => spawn_server(port, data, log).await,
    }
}

/// Starts `sluice server` on `port` with leases of `ttl` and `more` options, and waits until it
/// answers.
pub async fn spawn_server_with(
    port: u16,
    data: &Path,
    log: &Path,
    ttl: &str,
    more: &[&str],
) -> Proc {
    spawn_server_env(port, data, log, ttl, more, &[]).await
}

/// [`spawn_server_with`], with `env` added to the server's environment.
pub async fn spawn_server_env(
    port: u16,
    data: &Path,
    log: &Path,
    ttl: &str,
    more: &[&str],
    env: &[(&str, String)],
) -> Proc {
    let addr = format!("127.0.0.1:{port}");
    // Tests mount their own temporary directories and some share the host's network: the
    // server's admission policy allows what they need (the policy's own tests start servers
    // without these).
    let tmp = std::env::temp_dir();
    let p = spawn_env(
        &[
            "server",
            "--addr",
            &addr,
            "--allow-host-path",
            tmp.to_str().unwrap(),
            "--allow-host-network",
            "--allow-unconfined",
            "--data-dir",
            data.to_str().unwrap(),
            "--lease-ttl",
            ttl,
            "--heartbeat",
            "300ms",
            "--kill-grace",
            "1s",
        ]
        .into_iter()
        .chain(more.iter().copied())
        .collect::<Vec<_>>(),
        log,
        env,
    );
    let client = Client::new(&format!("http://{addr}"), None);
    let start = Instant::now();
    while client.health().await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "server did not start; see {}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    p
}

pub fn spawn_worker(url: &str, dir: &Path, journal: &Path, log: &Path) -> Proc {
    spawn(
        &[
            "worker",
            "--server",
            url,
            "--runtime",
            "fake",
            "--data-dir",
            dir.to_str().unwrap(),
            "--fake-journal",
            journal.to_str().unwrap(),
            "--capacity",
            "4",
        ],
        log,
    )
}

/// The records of a fake worker's journal, which must exist (the worker makes it as it starts).
pub fn journal(path: &PathBuf) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no journal at {}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("journal line {l:?}: {e}")))
        .collect()
}

/// Starts a run of an inline pipeline file; returns its id.
pub async fn submit(client: &Client, yaml: &str) -> String {
    let req = sluice_sdk::api::CreateRun {
        yaml: Some(yaml.into()),
        ..Default::default()
    };
    client.create_run(&req).await.unwrap().summary.id
}

/// A tmpfs of `size` mounted at `dir` (unmounted when dropped): a small disk that fills.
pub struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    pub fn mount(dir: &std::path::Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mounting a tmpfs needs root");
        SmallDisk(dir.to_path_buf())
    }

    /// Fills what is left with one file; returns its path.
    pub fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let p = self.0.join("filler");
        let mut f = std::fs::File::create(&p).unwrap();
        let block = vec![0u8; 1 << 16];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
        p
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Peak resident memory of a process, in MiB.
pub fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap()
        / 1024
}

/// A worker process with the fake runtime, its directory, journal (`NAME.jsonl`) and log
/// (`NAME.log`) under `dir`.
pub fn spawn_fake_worker(url: &str, dir: &Path, name: &str) -> Proc {
    spawn_worker(
        url,
        &dir.join(name),
        &dir.join(format!("{name}.jsonl")),
        &dir.join(format!("{name}.log")),
    )
}

/// A `sluice server` process on a free port with its data in `dir`: the process and its base URL.
pub async fn server_in(dir: &Path) -> (Proc, String) {
    let port = free_port();
    let p = spawn_server(port, &dir.join("data"), &dir.join("server.log")).await;
    (p, format!("http://127.0.0.1:{port}"))
}

/// The real `sluice` binary as a CI job runs it, against the server at `url`: its exit code,
/// stdout and stderr. Run without blocking, so that a server in this process keeps serving.
pub async fn cli(url: &str, args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(BIN)
        .args(args)
        .env("SLUICE_SERVER", url)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `sluice up` (a server and its built-in worker) over `data` on a free port, once it answers,
/// and its URL.
pub async fn spawn_up(data: &Path, log: &Path) -> (Proc, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let up = spawn(
        &["up", "--addr", &addr, "--data-dir", data.to_str().unwrap()],
        log,
    );
    let url = format!("http://{addr}");
    let client = Client::new(&url, None);
    let start = std::time::Instant::now();
    while client.health().await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "sluice up did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (up, url)
}
