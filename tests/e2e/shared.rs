//! Several servers over one PostgreSQL database: one schedules (it holds the lock), the others
//! send the API on to it; killed with SIGKILL mid-run, another takes over within seconds, and
//! nothing is lost or run twice.

use crate::harness::*;
use crate::pg::Postgres;
use sluice_sdk::api::{RunState, TaskState};
use sluice_sdk::client::Client;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_the_scheduling_server_is_killed_another_takes_over_and_nothing_is_lost_or_run_twice()
{
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = ["--database", pg.url.as_str()];
    let (pa, pb) = (free_port(), free_port());
    let mut a = spawn_server_with(pa, &d.join("a"), &d.join("a.log"), "10s", &db).await;
    // The servers of one deployment share the key secrets are sealed under.
    std::fs::create_dir_all(d.join("b")).unwrap();
    std::fs::copy(d.join("a/secrets.key"), d.join("b/secrets.key")).unwrap();
    let _b = spawn_server_with(pb, &d.join("b"), &d.join("b.log"), "10s", &db).await;
    let (url_a, url_b) = (
        format!("http://127.0.0.1:{pa}"),
        format!("http://127.0.0.1:{pb}"),
    );
    let (ca, cb) = (Client::new(&url_a, None), Client::new(&url_b, None));
    // B sends the API on to A, which schedules.
    let via = reqwest::get(format!("{url_b}/api/v1/runs")).await.unwrap();
    assert_eq!(via.status(), 200);
    assert_eq!(
        via.headers().get("via").map(|v| v.to_str().unwrap()),
        Some("1.1 sluice")
    );
    // Kubeflow's API too: runs listed through B are A's, in Kubeflow's shape.
    let kf = reqwest::get(format!("{url_b}/apis/v2beta1/runs"))
        .await
        .unwrap();
    assert_eq!(kf.status(), 200);
    assert!(kf.headers().get("via").is_some());
    let body: serde_json::Value = kf.json().await.unwrap();
    assert!(body["runs"].is_array(), "{body}");
    let journal_path = d.join("w.jsonl");
    let _w = spawn_worker(&url_b, &d.join("w"), &journal_path, &d.join("w.log"));
    let mut ids = Vec::new();
    for k in 0..12 {
        let yaml = format!(
            "name: ha-{k}\nsteps:\n  - {{name: a, image: b, env: {{FAKE_SLEEP_MS: \"400\"}}}}\n  - {{name: b, image: b, dependsOn: [a], env: {{FAKE_SLEEP_MS: \"400\"}}}}\n  - {{name: c, image: b, dependsOn: [b]}}\n"
        );
        ids.push(submit(&cb, &yaml).await);
    }
    wait_until(
        &cb,
        &ids[0],
        Duration::from_secs(30),
        "a step running",
        |r| r.tasks.iter().any(|t| t.state == TaskState::Running),
    )
    .await;
    assert_eq!(
        ca.list_runs(None, None, 100, None)
            .await
            .unwrap()
            .runs
            .len(),
        12,
        "A answers for itself"
    );
    a.kill9();
    let killed = Instant::now();
    // B takes over: its own answers, no longer sent on.
    loop {
        if let Ok(r) = reqwest::get(format!("{url_b}/api/v1/runs")).await {
            if r.status() == 200 && r.headers().get("via").is_none() {
                break;
            }
        }
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "B never took over"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = killed.elapsed();
    eprintln!("B took over {} ms after A was killed", took.as_millis());
    // A run submitted after the takeover runs too.
    ids.push(submit(&cb, "name: after\nsteps:\n  - {name: a, image: b}\n").await);
    for id in &ids {
        let done = wait_run(&cb, id, Duration::from_secs(60)).await;
        assert_eq!(done.summary.state, RunState::Succeeded, "{done:?}");
        assert!(
            done.tasks.iter().all(|t| t.attempt == 1),
            "nothing ran twice: {done:?}"
        );
    }
    let listed = cb.list_runs(None, None, 100, None).await.unwrap().runs;
    assert_eq!(listed.len(), 13, "nothing lost, nothing made twice");
    // Each task ran once, as the worker's journal says.
    let mut ran: Vec<(String, String)> = journal(&journal_path)
        .into_iter()
        .map(|r| {
            (
                r["run_id"].as_str().unwrap().into(),
                r["task"].as_str().unwrap().into(),
            )
        })
        .collect();
    let total = ran.len();
    ran.sort();
    ran.dedup();
    assert_eq!((total, ran.len()), (12 * 3 + 1, 12 * 3 + 1));
}
