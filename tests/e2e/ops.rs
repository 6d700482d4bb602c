//! What operators rely on: Prometheus metrics that count what happened and show what is, the
//! liveness and readiness probes, JSON logs, and a backup taken while the server runs that a
//! server then serves.

use crate::access::server;
use crate::harness::*;
use sluice_sdk::api::{
    ArtifactRecord, CreateRun, Lease, RegisterWorker, ReportEvent, RunState, TaskResult,
    WorkerIdentity,
};
use sluice_sdk::client::Client;
use std::time::Duration;

const ADMIN: &str = "admin-secret-for-ops";

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn get(url: &str, token: Option<&str>) -> (u16, String, String) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let ctype = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (r.status().as_u16(), ctype, r.text().await.unwrap())
}

async fn lease(c: &Client, w: &WorkerIdentity) -> Lease {
    crate::access::lease_one(c, w).await
}

fn started(l: &Lease) -> ReportEvent {
    ReportEvent::Started {
        lease_id: l.lease_id.clone(),
        ts_ms: sluice_sdk::api::now_ms(),
        image_digest: None,
    }
}

#[tokio::test]
async fn metrics_count_what_ran_and_show_what_is_and_the_probes_answer_without_a_token() {
    let (url, _dir) = server(sluice_server::ServerConfig {
        token: Some(ADMIN.into()),
        scheduler: sluice_server::scheduler::SchedulerConfig {
            lease_ttl_ms: 400,
            kill_grace_ms: 100,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let c = Client::new(&url, Some(ADMIN.into()));
    let r = c
        .register_worker(&RegisterWorker::new("w", 4, Some("/var/lib/w")))
        .await
        .unwrap();
    let w = WorkerIdentity {
        id: r.id,
        credential: r.credential,
    };
    let run = c
        .create_run(&CreateRun {
            yaml: Some("name: counted\nsteps:\n  - {name: a, image: busybox, outputs: {artifacts: {model: {}}}}\n  - {name: b, image: busybox, dependsOn: [a]}\n".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let id = run.summary.id.clone();
    // a: started, then succeeded with a 1234-byte artifact.
    let a = lease(&c, &w).await;
    let done = ReportEvent::Finished {
        lease_id: a.lease_id.clone(),
        ts_ms: sluice_sdk::api::now_ms(),
        result: TaskResult::succeeded(
            0,
            Default::default(),
            vec![ArtifactRecord {
                name: "model".into(),
                uri: format!("file:///var/lib/w/{id}/a/1/model"),
                size: 1234,
                digest: format!("blake3:{}", "00".repeat(32)),
                metadata: None,
                kind: None,
            }],
        ),
    };
    c.report(&w, vec![started(&a), done]).await.unwrap();
    // b: leased, never renewed (its lease expires and it is handed out again), then failed.
    let b1 = lease(&c, &w).await;
    assert_eq!(b1.task.as_str(), "b");
    let b2 = lease(&c, &w).await;
    assert_eq!((b2.task.as_str(), b2.attempt), ("b", 2));
    let failed = ReportEvent::Finished {
        lease_id: b2.lease_id.clone(),
        ts_ms: sluice_sdk::api::now_ms(),
        result: TaskResult::failed("exited with code 3"),
    };
    c.report(&w, vec![started(&b2), failed]).await.unwrap();
    let d = wait_run(&c, &id, Duration::from_secs(10)).await;
    assert_eq!(d.summary.state, RunState::Failed);

    // Beyond the API's credential check: no token, no metrics; the probes need none.
    let (status, _, _) = get(&format!("{url}/metrics"), None).await;
    assert_eq!(status, 401);
    for probe in ["/livez", "/readyz", "/api/v1/livez", "/api/v1/readyz"] {
        let (status, _, body) = get(&format!("{url}{probe}"), None).await;
        assert_eq!(
            (status, body.as_str()),
            (200, r#"{"status":"ok"}"#),
            "{probe}"
        );
    }
    for path in ["/metrics", "/api/v1/metrics"] {
        let (status, ctype, text) = get(&format!("{url}{path}"), Some(ADMIN)).await;
        assert_eq!(status, 200, "{text}");
        assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        for (series, want) in [
            ("sluice_runs_created_total", 1.0),
            (r#"sluice_runs{state="failed"}"#, 1.0),
            (r#"sluice_runs{state="running"}"#, 0.0),
            (r#"sluice_task_attempts_total{outcome="succeeded"}"#, 1.0),
            (r#"sluice_task_attempts_total{outcome="failed"}"#, 1.0),
            ("sluice_lease_expiries_total", 1.0),
            ("sluice_step_start_latency_seconds_count", 2.0),
            (
                r#"sluice_step_duration_seconds_count{outcome="succeeded"}"#,
                1.0,
            ),
            ("sluice_artifact_bytes_total", 1234.0),
            (r#"sluice_workers{state="up"}"#, 1.0),
            (r#"sluice_workers{state="gone"}"#, 0.0),
            ("sluice_queue_depth", 0.0),
            ("sluice_leases", 0.0),
        ] {
            assert_eq!(metric(&text, series), Some(want), "{series} in\n{text}");
        }
    }
}

/// `sluice server --log-format json` writes one JSON object a line.
#[tokio::test]
async fn the_server_logs_json_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = dir.path().join("server.log");
    let addr = format!("127.0.0.1:{port}");
    let data = dir.path().join("data");
    let _p = spawn(
        &[
            "server",
            "--log-format",
            "json",
            "--addr",
            &addr,
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &log,
    );
    let c = Client::new(&format!("http://{addr}"), None);
    let start = std::time::Instant::now();
    while c.health().await.is_err() {
        assert!(start.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    submit(&c, "name: logged\nsteps:\n  - {name: a, image: busybox}\n").await;
    let start = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap();
        // Every line but the banner on standard output (the same file here) is JSON.
        let lines: Vec<serde_json::Value> = text
            .lines()
            .filter(|l| !l.starts_with("sluice server on "))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect();
        if let Some(l) = lines
            .iter()
            .find(|l| l["fields"]["message"] == "run created")
        {
            assert_eq!(l["level"], "INFO", "{l}");
            assert!(l["fields"]["run"].is_string(), "{l}");
            assert!(l["timestamp"].is_string(), "{l}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `sluice backup DIR` copies a running server's database and secrets key; a server started on
/// the copy has the runs, the pipelines and the secrets. A backup never overwrites.
#[tokio::test]
async fn a_backup_taken_while_the_server_runs_is_served_whole() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let _server = spawn_server(port, &data, &dir.path().join("server.log")).await;
    let url = format!("http://127.0.0.1:{port}");
    let c = Client::new(&url, None);
    let mut ids = Vec::new();
    for i in 0..5 {
        let yaml = format!("name: kept-{i}\nsteps:\n  - {{name: a, image: busybox}}\n");
        ids.push(submit(&c, &yaml).await);
    }
    c.set_secret("db-password", "hunter2").await.unwrap();
    let dest = dir.path().join("backup");
    let (code, out, err) = crate::cli::sluice(
        &[
            "backup",
            dest.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &url,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("backed up"), "{out}");
    use std::os::unix::fs::PermissionsExt;
    let key = std::fs::metadata(dest.join("secrets.key")).unwrap();
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::read(dest.join("secrets.key")).unwrap(),
        std::fs::read(data.join("secrets.key")).unwrap()
    );
    // Again into the same place: refused, and the backup is untouched.
    let (code, _, err) = crate::cli::sluice(
        &[
            "backup",
            dest.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &url,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("exists"), "{err}");

    let port2 = free_port();
    let _copy = spawn_server(port2, &dest, &dir.path().join("copy.log")).await;
    let c2 = Client::new(&format!("http://127.0.0.1:{port2}"), None);
    for id in &ids {
        let d = c2.get_run(id).await.unwrap();
        assert!(d.summary.name.starts_with("kept-"), "{d:?}");
    }
    let secrets = c2.list_secrets().await.unwrap();
    assert!(
        secrets.iter().any(|s| s.name == "db-password"),
        "{secrets:?}"
    );
}
