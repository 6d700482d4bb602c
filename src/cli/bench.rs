//! `sluice bench …`: measurements against the project's targets, on this machine, now.

use clap::Subcommand;
use sluice_server::scheduler::{NewRun, Scheduler, SchedulerConfig};
use sluice_server::store::Store;
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
    },
}

pub async fn bench(cmd: BenchCmd) -> anyhow::Result<u8> {
    match cmd {
        BenchCmd::Scheduler {
            dag_tasks,
            fanout,
            repeat,
            capacity,
        } => scheduler(dag_tasks, fanout, repeat.max(1), capacity).await,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
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

fn fanout_yaml(n: usize) -> String {
    let mut s = String::from("name: bench-fanout\nsteps:\n  - name: root\n    image: busybox\n");
    for i in 0..n {
        s.push_str(&format!(
            "  - name: t{i}\n    image: busybox\n    dependsOn: [root]\n"
        ));
    }
    s
}

async fn scheduler(
    dag_tasks: usize,
    fanout: usize,
    repeat: usize,
    capacity: u32,
) -> anyhow::Result<u8> {
    // 1. Plan and persist a large DAG.
    let yaml = dag_yaml(dag_tasks);
    let t = Instant::now();
    let pipeline =
        sluice_sdk::spec::load("bench.yaml", &yaml).map_err(|d| anyhow::anyhow!("{d}"))?;
    let parse_ms = t.elapsed().as_secs_f64() * 1e3;
    let digest = sluice_sdk::spec::digest(&yaml);
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path()).await?;
    let sched = Scheduler::new(store.clone(), SchedulerConfig::default()).await?;
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
        };
        let t = Instant::now();
        let id = sched.create_run(new).await?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        sched.cancel_run(&id).await?;
        // What the server's background checkpointer does between commits.
        store.checkpoint().await?;
    }
    let plan_ms = median(times);
    println!("plan + persist a {dag_tasks}-task DAG: {plan_ms:.1} ms median of {repeat} (target <= 100 ms); parse + validate its YAML: {parse_ms:.1} ms");

    // 2. Fan-out through a real server and worker over HTTP, with the fake runtime.
    let dir = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let cfg = sluice_server::ServerConfig {
        data_dir: dir.path().join("server"),
        scheduler: SchedulerConfig::default(),
        token: None,
    };
    let mut rx = stop_rx.clone();
    let server = tokio::spawn(sluice_server::serve(cfg, listener, async move {
        let _ = rx.wait_for(|s| *s).await;
    }));
    let wcfg = sluice_worker::WorkerConfig {
        server: url.clone(),
        token: None,
        name: "bench".into(),
        capacity,
        data_dir: dir.path().join("worker"),
        poll_wait: Duration::from_secs(5),
        drain: Duration::from_secs(5),
    };
    let mut rx = stop_rx.clone();
    let worker = tokio::spawn(sluice_worker::run(
        wcfg,
        Arc::new(FakeRuntime::default()),
        async move {
            let _ = rx.wait_for(|s| *s).await;
        },
    ));
    let client = sluice_sdk::client::Client::new(&url, None);
    let yaml = fanout_yaml(fanout);
    let mut rates = Vec::new();
    for _ in 0..repeat {
        let req = sluice_sdk::api::CreateRun {
            yaml: Some(yaml.clone()),
            ..Default::default()
        };
        let t = Instant::now();
        let run = client.create_run(&req).await?;
        let state = super::runs::follow(&client, &run.summary.id, false).await?;
        let secs = t.elapsed().as_secs_f64();
        anyhow::ensure!(
            state == sluice_sdk::api::RunState::Succeeded,
            "bench run ended {state}"
        );
        rates.push((fanout + 1) as f64 / secs);
    }
    let rate = median(rates);
    println!("fan-out of {fanout} tasks through server + worker (fake runtime, capacity {capacity}): {rate:.0} tasks/s median of {repeat} (target >= 2000 tasks/s)");
    let _ = stop_tx.send(true);
    worker.await??;
    server.await??;
    Ok(0)
}
