//! `sluice bench kubeflow`: Kubeflow's `list_runs` through the v2beta1 API with many runs
//! stored: server time per page (the client's default page, newest first, an experiment's,
//! filtered by name, state or a substring, sorted by name, a deep page), and the same call made
//! by Kubeflow's own client (`kfp.Client.list_runs`) when its SDK is installed.

use super::ui::{serve, store_sweep, time_gets};
use sluice_server::store::{CatalogStore, ExperimentRow, SqliteStore, Store};
use std::time::Instant;

/// The target: p99 at or under this, in milliseconds.
const TARGET_MS: f64 = 50.0;

fn filter(key: &str, op: &str, value: &str) -> String {
    let f =
        serde_json::json!({"predicates": [{"key": key, "operation": op, "string_value": value}]});
    let mut s = String::new();
    for b in f.to_string().bytes() {
        if b.is_ascii_alphanumeric() {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

pub async fn kubeflow(runs: usize, requests: usize) -> anyhow::Result<u8> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("server");
    let t = Instant::now();
    let experiment = uuid::Uuid::now_v7().to_string();
    {
        let store = SqliteStore::open(&data).await?;
        store
            .create_experiment(&ExperimentRow {
                id: experiment.clone(),
                name: "sweep".into(),
                description: None,
                created_at: 0,
                archived: false,
            })
            .await?;
        store_sweep(&store, runs, Some((10, &experiment))).await?;
        store.close().await;
    }
    println!(
        "stored {runs} runs ({} in one experiment) in {:.1} s",
        runs.div_ceil(10),
        t.elapsed().as_secs_f64()
    );
    let (url, stop, server) = serve(data).await?;
    let http = sluice_sdk::client::http_client();
    let base = "/apis/v2beta1/runs?page_size=10";
    // A token deep in the list: the 50th page, newest first.
    let mut token = String::new();
    for _ in 0..50 {
        let v: serde_json::Value = http
            .get(format!(
                "{url}{base}&sort_by=created_at%20desc&page_token={token}"
            ))
            .send()
            .await?
            .json()
            .await?;
        token = v["next_page_token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
    }
    let cases = [
        ("the client's default", base.to_string()),
        ("newest first", format!("{base}&sort_by=created_at%20desc")),
        (
            "an experiment's",
            format!("{base}&sort_by=created_at%20desc&experiment_id={experiment}"),
        ),
        (
            "display_name EQUALS",
            format!(
                "{base}&filter={}",
                filter("display_name", "EQUALS", "train-099999")
            ),
        ),
        (
            "state EQUALS FAILED",
            format!(
                "{base}&sort_by=created_at%20desc&filter={}",
                filter("state", "EQUALS", "FAILED")
            ),
        ),
        (
            "name IS_SUBSTRING",
            format!(
                "{base}&filter={}",
                filter("display_name", "IS_SUBSTRING", "0999")
            ),
        ),
        (
            "sorted by display_name",
            format!("{base}&sort_by=display_name"),
        ),
        (
            "the 50th page",
            format!("{base}&sort_by=created_at%20desc&page_token={token}"),
        ),
    ];
    println!("GET {base}…, {requests} requests each, time to the full response on loopback (target: p99 <= {TARGET_MS} ms):");
    let mut worst: f64 = 0.0;
    for (what, path) in cases {
        worst = worst.max(time_gets(&http, &url, what, &path, requests).await?);
    }
    let client = kfp_client(&url, requests.min(100));
    let _ = stop.send(true);
    server.await??;
    match client {
        Ok(Some(p99)) => {
            println!("  kfp.Client.list_runs (the pinned kfp SDK, Python): p99 {p99:.2} ms");
        }
        Ok(None) => println!("  (the kfp SDK is not installed: scripts/test installs it)"),
        Err(e) => println!("  kfp.Client.list_runs failed: {e}"),
    }
    println!(
        "worst p99 through the API: {worst:.2} ms: {}",
        if worst <= TARGET_MS {
            "within the target"
        } else {
            "OVER the target"
        }
    );
    Ok(0)
}

/// `kfp.Client.list_runs(page_size=10, sort_by='created_at desc')` timed `n` times by Kubeflow's
/// own client: its p99 in milliseconds, or none without the SDK.
fn kfp_client(url: &str, n: usize) -> anyhow::Result<Option<f64>> {
    let python = std::env::var("SLUICE_KFP_PYTHON").unwrap_or_else(|_| {
        let v = std::fs::read_to_string("pipelines/images/python/kfp-version").unwrap_or_default();
        format!("/var/cache/sluice/kfp-venv-{}/bin/python", v.trim())
    });
    if !std::path::Path::new(&python).exists() {
        return Ok(None);
    }
    let script = format!(
        "import time, warnings\nwarnings.filterwarnings('ignore')\nimport kfp\nc = kfp.Client(host='{url}')\nts = []\nfor _ in range({n}):\n    t = time.perf_counter(); r = c.list_runs(page_size=10, sort_by='created_at desc'); ts.append((time.perf_counter() - t) * 1e3)\n    assert len(r.runs) == 10\nts.sort()\nprint(ts[min(len(ts) - 1, round((len(ts) - 1) * 0.99))])\n"
    );
    let out = std::process::Command::new(&python)
        .args(["-c", &script])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse().ok())
}
