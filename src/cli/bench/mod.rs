//! `sluice bench …`: measurements against the project's targets, on this machine, now.

mod artifacts;
mod browser;
mod containers;
mod kfp;
mod kubeflow;
mod ui;

use clap::Subcommand;
use sluice_server::scheduler::{NewRun, Scheduler, SchedulerConfig};
use sluice_server::store::SqliteStore;
use sluice_worker::runtime::fake::FakeRuntime;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Subcommand)]
pub enum BenchCmd {
    /// The control plane: planning and persisting a large DAG, and task throughput through the
    /// server and a worker with the fake runtime (no containers).
    Scheduler {
        /// Tasks in the planned DAG.
        #[arg(long, default_value_t = 10_000)]
        dag_tasks: usize,
        /// Tasks in the fan-out run through server and worker.
        #[arg(long, default_value_t = 1_000)]
        fanout: usize,
        /// How many times each measurement is repeated (the median is reported).
        #[arg(long, default_value_t = 5)]
        repeat: usize,
        /// Tasks the worker runs at once.
        #[arg(long, default_value_t = 256)]
        capacity: u32,
        /// Also run the fan-out across two workers with the server's state in SQLite and in
        /// PostgreSQL (a throwaway cluster from Debian's `postgresql`, as root), and compare.
        #[arg(long)]
        postgres: bool,
    },
    /// Image pulls from a registry, next to `skopeo copy` + `umoci unpack` on the same image.
    Images {
        /// The image to pull (from a local registry, such as scripts/images serves).
        #[arg(long, default_value = "127.0.0.1:5000/sluice/busybox:1")]
        image: String,
        #[arg(long, default_value_t = 5)]
        repeat: usize,
    },
    /// Containers: start to exit of `true` with the embedded runtime next to runc and crun (when
    /// installed) on the same one-layer image, then a chain and a fan-out of container steps
    /// through a server and one worker. Needs root.
    Containers {
        /// A one-layer image with `true` (such as scripts/images serves).
        #[arg(long, default_value = "127.0.0.1:5000/sluice/busybox:1")]
        image: String,
        /// Containers started one after another, per runtime.
        #[arg(long, default_value_t = 100)]
        starts: usize,
        /// Steps in the chain.
        #[arg(long, default_value_t = 40)]
        chain: usize,
        /// Steps in the fan-out.
        #[arg(long, default_value_t = 1_000)]
        fanout: usize,
        /// Steps the worker runs at once.
        #[arg(long, default_value_t = 8)]
        capacity: u32,
        /// The size of the artifact handed from one step to the next (written, hashed,
        /// bind-mounted) on one worker.
        #[arg(long, default_value = "2Gi", value_parser = super::serve::parse_size)]
        handoff: u64,
        /// Runs of the chain and of the fan-out (the median is reported).
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
    /// Artifacts across workers through an S3 server (a throwaway Garage): a large artifact from
    /// its step exiting on one worker to the next step starting on another, next to a plain
    /// client's PUT and GET of the same size on the same server. Needs root, curl and Garage.
    Artifacts {
        /// A one-layer image with `dd` and `cat` (such as scripts/images serves).
        #[arg(long, default_value = "127.0.0.1:5000/sluice/busybox:1")]
        image: String,
        #[arg(long, default_value = "2Gi", value_parser = super::serve::parse_size)]
        size: u64,
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
    /// Kubeflow pipelines: importing a compiled PipelineSpec of many tasks, and the launcher's
    /// work per task (executor input, placeholders, executor output, metadata).
    Kfp {
        /// Tasks in the generated PipelineSpec (as kfp compiles a pipeline of lightweight components).
        #[arg(long, default_value_t = 1_000)]
        tasks: usize,
        #[arg(long, default_value_t = 20)]
        repeat: usize,
    },
    /// Kubeflow's `list_runs` through the v2beta1 API with many runs stored: p99 per kind of
    /// page (filters, sorts, a deep page), and through Kubeflow's own client.
    Kubeflow {
        #[arg(long, default_value_t = 100_000)]
        runs: usize,
        /// Requests per kind of page.
        #[arg(long, default_value_t = 200)]
        requests: usize,
    },
    /// The UI with many runs stored: server time per page of the run list (filtered, searched,
    /// sorted, deep); then in a real browser (chromium) the list's first paint, a 1,000-task
    /// graph, and a 100,000-line log's load and longest main-thread task.
    Ui {
        #[arg(long, default_value_t = 100_000)]
        runs: usize,
        /// Requests per kind of page.
        #[arg(long, default_value_t = 200)]
        requests: usize,
        /// Only the server's side (no browser).
        #[arg(long)]
        no_browser: bool,
        /// Lines in the log the browser opens.
        #[arg(long, default_value_t = 100_000)]
        log_lines: usize,
    },
}

pub async fn bench(cmd: BenchCmd) -> anyhow::Result<u8> {
    match cmd {
        BenchCmd::Scheduler {
            dag_tasks,
            fanout,
            repeat,
            capacity,
            postgres,
        } => scheduler(dag_tasks, fanout, repeat.max(1), capacity, postgres).await,
        BenchCmd::Images { image, repeat } => images(&image, repeat.max(1)).await,
        BenchCmd::Ui {
            runs,
            requests,
            no_browser,
            log_lines,
        } => ui::ui(runs.max(1), requests.max(1), !no_browser, log_lines.max(1)).await,
        BenchCmd::Artifacts {
            image,
            size,
            repeat,
        } => artifacts::artifacts(&image, size.max(1), repeat.max(1)).await,
        BenchCmd::Kfp { tasks, repeat } => kfp::kfp(tasks.max(1), repeat.max(1)),
        BenchCmd::Kubeflow { runs, requests } => {
            kubeflow::kubeflow(runs.max(1), requests.max(1)).await
        }
        BenchCmd::Containers {
            image,
            starts,
            chain,
            fanout,
            capacity,
            repeat,
            handoff,
        } => {
            containers::containers(containers::Opts {
                handoff_bytes: handoff,
                image,
                starts: starts.max(1),
                chain: chain.max(1),
                fanout,
                capacity,
                repeat: repeat.max(1),
            })
            .await
        }
    }
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// A layered DAG: each step waits for one or two steps of the layer before it.
fn dag_yaml(n: usize) -> String {
    let width = 100;
    let mut s = String::from("name: bench-dag\nsteps:\n");
    for i in 0..n {
        s.push_str(&format!(
            "  - name: t{i}\n    image: busybox\n    command: [\"true\"]\n"
        ));
        if i >= width {
            let a = i - width;
            let b = i - width + (i % width != width - 1) as usize;
            s.push_str(&format!("    dependsOn: [t{a}, t{b}]\n"));
        }
    }
    s
}

/// One root step and `n` steps after it, each running `true` in `image`.
pub(crate) fn fanout_yaml(n: usize, image: &str) -> String {
    let mut s = format!(
        "name: bench-fanout\nsteps:\n  - name: root\n    image: {image}\n    command: [\"true\"]\n"
    );
    for i in 0..n {
        s.push_str(&format!(
            "  - name: t{i}\n    image: {image}\n    command: [\"true\"]\n    dependsOn: [root]\n"
        ));
    }
    s
}

async fn scheduler(
    dag_tasks: usize,
    fanout: usize,
    repeat: usize,
    capacity: u32,
    postgres: bool,
) -> anyhow::Result<u8> {
    // 1. Plan and persist a large DAG.
    let yaml = dag_yaml(dag_tasks);
    let t = Instant::now();
    let pipeline = sluice_spec::load("bench.yaml", &yaml).map_err(|d| anyhow::anyhow!("{d}"))?;
    let parse_ms = t.elapsed().as_secs_f64() * 1e3;
    let digest = sluice_spec::digest(&yaml);
    let dir = tempfile::tempdir()?;
    let store: sluice_server::store::DynStore = Arc::new(SqliteStore::open(dir.path()).await?);
    let key = Arc::new(sluice_server::secrets::SecretBox::open_or_create(
        &dir.path().join("secrets.key"),
    )?);
    let sched = Scheduler::new(store.clone(), SchedulerConfig::default(), key).await?;
    let mut times = Vec::new();
    for _ in 0..repeat {
        let new = NewRun {
            name: None,
            pipeline: pipeline.clone(),
            yaml: yaml.clone(),
            digest: digest.clone(),
            pipeline_version_id: None,
            pipeline_version: None,
            params: Default::default(),
            inputs: Vec::new(),
            labels: Default::default(),
            cache: true,
            reuse: Default::default(),
            idempotency: None,
            experiment_id: sluice_server::store::DEFAULT_EXPERIMENT.into(),
            fired: None,
        };
        let t = Instant::now();
        let id = sched.create_run(new).await?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        sched.cancel_run(id.id()).await?;
        // What the server's background checkpointer does between commits.
        store.checkpoint().await?;
    }
    let plan_ms = median(times);
    println!("plan + persist a {dag_tasks}-task DAG: {plan_ms:.1} ms median of {repeat} (target <= 100 ms); parse + validate its YAML: {parse_ms:.1} ms");

    // 2. Fan-out through a real server and worker over HTTP, with the fake runtime.
    let dir = tempfile::tempdir()?;
    let cluster = Cluster::start(dir.path(), Arc::new(FakeRuntime::default()), capacity).await?;
    let url = cluster.url.clone();
    let _ = url;
    let yaml = fanout_yaml(fanout, "busybox");
    let mut rates = Vec::new();
    for _ in 0..repeat {
        let secs = cluster.run(&yaml).await?;
        rates.push((fanout + 1) as f64 / secs);
    }
    let rate = median(rates);
    println!("fan-out of {fanout} tasks through server + worker (fake runtime, capacity {capacity}): {rate:.0} tasks/s median of {repeat} (target >= 2000 tasks/s)");
    cluster.stop().await?;
    if postgres {
        let pg = sluice_server::store::ThrowawayPostgres::start().map_err(anyhow::Error::msg)?;
        let mut rates = Vec::new();
        for database in [None, Some(pg.url.clone())] {
            let dir = tempfile::tempdir()?;
            let cluster = Cluster::start_with(
                dir.path(),
                Arc::new(FakeRuntime::default()),
                capacity,
                ClusterOpts {
                    database,
                    workers: 2,
                    ..Default::default()
                },
            )
            .await?;
            let mut r = Vec::new();
            for _ in 0..repeat {
                r.push((fanout + 1) as f64 / cluster.run(&yaml).await?);
            }
            cluster.stop().await?;
            rates.push(median(r));
        }
        println!(
            "fan-out of {fanout} tasks across two workers (capacity {capacity} each): SQLite {:.0} tasks/s, PostgreSQL {:.0} tasks/s: {:.2}x (target >= 0.8x)",
            rates[0],
            rates[1],
            rates[1] / rates[0]
        );
    }
    Ok(0)
}

/// What a bench [`Cluster`] is made of besides its runtime.
#[derive(Default)]
pub(crate) struct ClusterOpts {
    /// A `postgres://` URL; SQLite under the cluster's directory when none.
    pub database: Option<String>,
    /// Workers, labelled `worker=0`, `worker=1`, …
    pub workers: usize,
    /// Keep artifacts in this object store.
    pub artifact_store: Option<Arc<sluice_sdk::artifacts::ObjectArtifacts>>,
}

/// A server and its workers in this process, on a loopback port.
pub(crate) struct Cluster {
    pub url: String,
    stop: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    workers: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Cluster {
    pub async fn start(
        dir: &std::path::Path,
        runtime: Arc<dyn sluice_worker::runtime::ContainerRuntime>,
        capacity: u32,
    ) -> anyhow::Result<Cluster> {
        let one = ClusterOpts {
            workers: 1,
            ..Default::default()
        };
        Cluster::start_with(dir, runtime, capacity, one).await
    }

    /// A server as `o` says, and its workers sharing `runtime` (each with its own data
    /// directory, so with its own artifacts).
    pub async fn start_with(
        dir: &std::path::Path,
        runtime: Arc<dyn sluice_worker::runtime::ContainerRuntime>,
        capacity: u32,
        o: ClusterOpts,
    ) -> anyhow::Result<Cluster> {
        let ClusterOpts {
            database,
            workers,
            artifact_store,
        } = o;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let cfg = sluice_server::ServerConfig {
            data_dir: dir.join("server"),
            database,
            scheduler: SchedulerConfig {
                artifact_store: artifact_store.clone(),
                ..Default::default()
            },
            token: None,
            ..Default::default()
        };
        let mut rx = stop_rx.clone();
        let server = tokio::spawn(sluice_server::serve(cfg, listener, async move {
            let _ = rx.wait_for(|s| *s).await;
        }));
        let workers = (0..workers)
            .map(|i| {
                let wcfg = sluice_worker::WorkerConfig {
                    server: url.clone(),
                    token: None,
                    name: format!("bench-{i}"),
                    capacity,
                    labels: [("worker".to_string(), i.to_string())].into(),
                    data_dir: dir.join(format!("worker-{i}")),
                    poll_wait: Duration::from_secs(5),
                    drain: Duration::from_secs(5),
                    log_policy: Default::default(),
                    ca_cert: None,
                    artifact_store: artifact_store.clone(),
                };
                let mut rx = stop_rx.clone();
                tokio::spawn(sluice_worker::run(wcfg, runtime.clone(), async move {
                    let _ = rx.wait_for(|s| *s).await;
                }))
            })
            .collect();
        Ok(Cluster {
            url,
            stop,
            server,
            workers,
        })
    }

    /// Runs an inline pipeline to its end, reusing cached results or not; returns the seconds from
    /// submit to finish.
    pub async fn run_with(&self, yaml: &str, cache: bool) -> anyhow::Result<f64> {
        let client = sluice_sdk::client::Client::new(&self.url, None);
        let req = sluice_sdk::api::CreateRun {
            yaml: Some(yaml.to_string()),
            cache: Some(cache),
            ..Default::default()
        };
        let t = Instant::now();
        let run = client.create_run(&req).await?;
        // A run served whole from the cache has ended by the time it is created.
        let state = match run.summary.state {
            s if s.is_terminal() => s,
            _ => super::runs::follow(&client, &run.summary.id, false).await?,
        };
        let secs = t.elapsed().as_secs_f64();
        anyhow::ensure!(
            state == sluice_sdk::api::RunState::Succeeded,
            "bench run ended {state}"
        );
        Ok(secs)
    }

    /// Runs an inline pipeline to its end with every step run afresh.
    pub async fn run(&self, yaml: &str) -> anyhow::Result<f64> {
        self.run_with(yaml, false).await
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        for w in self.workers {
            w.await??;
        }
        self.server.await??;
        Ok(())
    }
}

pub(crate) fn run_timed(cmd: &mut std::process::Command) -> anyhow::Result<f64> {
    let t = Instant::now();
    let out = cmd.output()?;
    anyhow::ensure!(
        out.status.success(),
        "{:?} failed: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(t.elapsed().as_secs_f64() * 1e3)
}

/// Pull + unpack of an image from a registry into an empty store, and a pull of the same image
/// under another name (layers already stored), next to `skopeo copy` + `umoci unpack` doing the same.
async fn images(image: &str, repeat: usize) -> anyhow::Result<u8> {
    use sluice_worker::images::registry::Registries;
    use sluice_worker::images::store::ImageStore;
    let parsed = sluice_worker::images::reference::parse(image).map_err(anyhow::Error::msg)?;
    let alias = format!("{}/{}-bench-alias:1", parsed.registry, parsed.repository);
    {
        // The alias shares every layer: pushing it costs the registry nothing.
        let dir = tempfile::tempdir()?;
        let regs = Registries::new(Arc::new(ImageStore::open(dir.path())?), vec![]);
        regs.pull(image).await?;
        regs.push(image, Some(&alias)).await?;
    }
    let loopback = parsed.registry.starts_with("127.") || parsed.registry.starts_with("localhost");
    let tls = format!("--src-tls-verify={}", !loopback);
    let (mut cold, mut warm, mut peer_cold, mut peer_warm) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..repeat {
        let dir = tempfile::tempdir()?;
        let regs = Registries::new(Arc::new(ImageStore::open(dir.path())?), vec![]);
        let t = Instant::now();
        regs.pull(image).await?;
        cold.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        regs.pull(&alias).await?;
        warm.push(t.elapsed().as_secs_f64() * 1e3);

        let peer = tempfile::tempdir()?;
        let layout = peer.path().join("layout");
        let copy = |src: &str, tag: &str| {
            let mut c = std::process::Command::new("skopeo");
            c.args([
                "copy",
                "--quiet",
                &tls,
                &format!("docker://{src}"),
                &format!("oci:{}:{tag}", layout.display()),
            ]);
            c
        };
        let unpack = |tag: &str, bundle: &str| {
            let mut c = std::process::Command::new("umoci");
            c.args([
                "unpack",
                "--image",
                &format!("{}:{tag}", layout.display()),
                &peer.path().join(bundle).display().to_string(),
            ]);
            c
        };
        peer_cold.push(run_timed(&mut copy(image, "a"))? + run_timed(&mut unpack("a", "a"))?);
        peer_warm.push(run_timed(&mut copy(&alias, "b"))? + run_timed(&mut unpack("b", "b"))?);
    }
    let (c, w, pc, pw) = (
        median(cold),
        median(warm),
        median(peer_cold),
        median(peer_warm),
    );
    println!("pull + unpack {image}: sluice {c:.0} ms, skopeo copy + umoci unpack {pc:.0} ms (ratio {:.2}), median of {repeat}", c / pc);
    println!("the same layers under another name: sluice {w:.0} ms, skopeo copy + umoci unpack {pw:.0} ms (ratio {:.2})", w / pw);
    Ok(0)
}
