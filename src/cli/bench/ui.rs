//! `sluice bench ui`: the run list the UI pages through, with many runs stored: server time per
//! page (first page, a state filter, a pipeline filter, a name search, a deep page), and the page
//! itself; then, in a real browser (`browser.rs`), the list's first paint, a 1,000-task graph and
//! a 100,000-line log.

use super::median;
use sluice_sdk::api::RunState;
use sluice_server::store::{RunStore, SqliteStore, Store, WriteBatch};
use std::time::{Duration, Instant};

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

pub async fn ui(
    runs: usize,
    requests: usize,
    in_browser: bool,
    log_lines: usize,
) -> anyhow::Result<u8> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("server");
    let t = Instant::now();
    let seeded;
    {
        let store = SqliteStore::open(&data).await?;
        let digest = store_sweep(&store, runs, None).await?;
        let graph =
            super::browser::seeded_run("graph-1000", &digest, &super::browser::layered_tasks(), 0);
        let log = super::browser::seeded_run(
            "log",
            &digest,
            &[("s0000".to_string(), Vec::new())],
            log_lines,
        );
        seeded = (graph.new_runs[0].id.clone(), log.new_runs[0].id.clone());
        store.apply(&graph).await?;
        store.apply(&log).await?;
        store.close().await;
    }
    println!("stored {runs} runs in {:.1} s", t.elapsed().as_secs_f64());

    let (url, stop, server) = serve(data).await?;
    let http = sluice_sdk::client::http_client();
    // A token deep in the list: the 50th page.
    let mut token = None;
    for _ in 0..50 {
        let mut u = format!("{url}/api/v1/runs?page_size=50");
        if let Some(t) = &token {
            u.push_str(&format!("&page_token={t}"));
        }
        let v: serde_json::Value = http.get(u).send().await?.json().await?;
        token = v["next_page_token"].as_str().map(str::to_string);
    }
    let deep = format!(
        "/api/v1/runs?page_size=50&page_token={}",
        token.unwrap_or_default()
    );
    let cases = [
        ("first page", "/api/v1/runs?page_size=50".to_string()),
        (
            "state=failed",
            "/api/v1/runs?page_size=50&state=failed".into(),
        ),
        (
            "pipeline filter",
            "/api/v1/runs?page_size=50&pipeline=pipeline-7".into(),
        ),
        (
            "name search",
            "/api/v1/runs?page_size=50&q=train-0999".into(),
        ),
        (
            "rare name search",
            "/api/v1/runs?page_size=50&q=train-000042".into(),
        ),
        ("50th page", deep),
        (
            "sorted by name",
            "/api/v1/runs?page_size=50&sort=name&order=asc".into(),
        ),
        (
            "by duration",
            "/api/v1/runs?page_size=50&sort=duration".into(),
        ),
        (
            "by a metric",
            "/api/v1/runs?page_size=50&sort=metric:evaluate.accuracy".into(),
        ),
        (
            "a date range",
            "/api/v1/runs?page_size=50&created_after=2020-01-01&created_before=2100-01-01".into(),
        ),
        ("the page (HTML)", "/runs".into()),
    ];
    println!("GET, {requests} requests each, time to the full response on loopback (target: p99 <= 50 ms):");
    for (what, path) in cases {
        time_gets(&http, &url, what, &path, requests).await?;
    }
    let browser = if in_browser {
        super::browser::measure(&url, &seeded.0, &seeded.1, runs, log_lines).await
    } else {
        Ok(())
    };
    let _ = stop.send(true);
    server.await??;
    browser?;
    Ok(0)
}

/// Stores `runs` ended runs as a sweep has them (parameters, a metric, 20 pipelines, four
/// states), in batches; with `experiment`, every `n`th goes into that experiment. Returns the
/// digest of the pipeline file they ran.
pub(super) async fn store_sweep(
    store: &SqliteStore,
    runs: usize,
    experiment: Option<(usize, &str)>,
) -> anyhow::Result<String> {
    let digest = "sha256:".to_string() + &"0".repeat(64);
    let yaml = "name: bench\nsteps:\n  - name: a\n    image: busybox\n".to_string();
    let base = sluice_sdk::api::now_ms() - runs as i64 * 1000;
    let states = [
        RunState::Succeeded,
        RunState::Failed,
        RunState::Succeeded,
        RunState::Cancelled,
    ];
    let mut made = 0;
    while made < runs {
        let mut batch = WriteBatch::default();
        batch.sources.push((digest.clone(), yaml.clone()));
        for i in made..(made + 10_000).min(runs) {
            let created = base + i as i64 * 1000;
            let mut run = super::browser::ended_run(
                uuid::Uuid::now_v7().to_string(),
                &format!("train-{i:06}"),
                &format!("pipeline-{}", i % 20),
                &digest,
                states[i % states.len()],
                (created, created + 500),
            );
            // Parameters and metrics as a sweep has them: the list shows and sorts by them.
            run.params
                .insert("lr".into(), serde_json::json!(0.001 * (i % 100) as f64));
            run.metrics.insert(
                "evaluate.accuracy".into(),
                serde_json::json!(((i * 7919) % 1000) as f64 / 1000.0),
            );
            if let Some((every, id)) = experiment {
                if i % every == 0 {
                    run.experiment_id = id.to_string();
                }
            }
            batch.new_runs.push(run);
        }
        made += batch.new_runs.len();
        store.apply(&batch).await?;
    }
    Ok(digest)
}

/// A server on a free port of loopback over the data directory `data`: its URL, what stops it,
/// and its task.
pub(super) async fn serve(
    data: std::path::PathBuf,
) -> anyhow::Result<(
    String,
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, rx) = tokio::sync::watch::channel(false);
    let mut rx2 = rx.clone();
    let cfg = sluice_server::ServerConfig {
        data_dir: data,
        scheduler: Default::default(),
        token: None,
        ..Default::default()
    };
    let server = tokio::spawn(sluice_server::serve(cfg, listener, async move {
        let _ = rx2.wait_for(|s| *s).await;
    }));
    let http = sluice_sdk::client::http_client();
    for _ in 0..100 {
        if http
            .get(format!("{url}/api/v1/health"))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((url, stop, server))
}

/// GETs `path` `requests` times, one after another, and prints the median and the 99th
/// percentile of the time to the full response. Returns the 99th percentile, in milliseconds.
pub(super) async fn time_gets(
    http: &reqwest::Client,
    url: &str,
    what: &str,
    path: &str,
    requests: usize,
) -> anyhow::Result<f64> {
    let mut times = Vec::new();
    for _ in 0..requests {
        let t = Instant::now();
        let r = http.get(format!("{url}{path}")).send().await?;
        anyhow::ensure!(r.status().is_success(), "{path}: {}", r.status());
        let _ = r.bytes().await?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let p99 = percentile(times.clone(), 0.99);
    println!(
        "  {what:<24} median {:6.2} ms   p99 {p99:6.2} ms",
        median(times)
    );
    Ok(p99)
}
