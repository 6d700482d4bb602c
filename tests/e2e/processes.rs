//! Failure of real processes: a worker killed with SIGKILL mid-task, a server killed and restarted
//! mid-run. Nothing may be lost and no task may run twice at once.

use crate::harness::*;
use sluice_sdk::api::{RunState, TaskState};
use sluice_sdk::client::Client;
use std::time::Duration;

#[tokio::test]
async fn a_worker_killed_mid_task_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let _server = spawn_server(
        port,
        &dir.path().join("server"),
        &dir.path().join("server.log"),
    )
    .await;
    let client = Client::new(&url, None);
    // Each attempt of `work` runs until its release file exists: the first never is released.
    let release = dir.path().join("release");
    let yaml = format!("name: long\nsteps:\n  - name: work\n    image: b\n    env: {{FAKE_WAIT_FILE: \"{}-{{{{task.attempt}}}}\", FAKE_OUT_n: \"{{{{task.attempt}}}}\"}}\n    outputs: {{params: {{n: int}}}}\n  - name: after\n    image: b\n    params: {{n: \"{{{{steps.work.outputs.params.n}}}}\"}}\n    env: {{FAKE_OUT_m: \"{{{{inputs.params.n}}}}\"}}\n    outputs: {{params: {{m: int}}}}\n", release.display());
    let yaml = yaml.as_str();
    std::fs::write(format!("{}-2", release.display()), "").unwrap();
    let (j1, j2) = (dir.path().join("w1.jsonl"), dir.path().join("w2.jsonl"));
    let mut w1 = spawn_fake_worker(&url, dir.path(), "w1");
    let id = submit(&client, yaml).await;
    let d = wait_until(
        &client,
        &id,
        Duration::from_secs(20),
        "work running on worker 1",
        |d| d.tasks[0].state == TaskState::Running,
    )
    .await;
    let first_worker = d.tasks[0].worker.clone().unwrap();
    w1.kill9();
    let _w2 = spawn_fake_worker(&url, dir.path(), "w2");
    let done = wait_run(&client, &id, Duration::from_secs(30)).await;
    assert_eq!(done.summary.state, RunState::Succeeded, "{:?}", done.error);
    assert_eq!(
        done.tasks[0].attempt, 2,
        "the task ran again after its lease expired"
    );
    assert_eq!(done.tasks[0].outputs["n"], serde_json::json!(2));
    assert_eq!(
        done.tasks[1].outputs["m"],
        serde_json::json!(2),
        "the downstream task saw the second attempt's output"
    );
    assert!(
        journal(&j1).is_empty(),
        "the killed worker (whose journal exists) completed nothing"
    );
    let second: Vec<_> = journal(&j2)
        .into_iter()
        .filter(|r| r["task"] == "work")
        .collect();
    assert_eq!(second.len(), 1, "exactly one more run of the task");
    assert_eq!(second[0]["attempt"], 2);
    let workers = client.list_workers().await.unwrap();
    assert!(workers.iter().any(|w| w.id == first_worker));
}

/// Runs `yaml` on a server and a worker (fake runtime), kills the server with SIGKILL once
/// `when` holds, starts it again on the same database, then makes the file `RELEASE` in `yaml`
/// names (steps waiting on it go on), and returns the client and the ended run, with what keeps
/// the server, the worker and their files alive. Leases are long enough that the restart never
/// lets one lapse.
async fn restart_server_mid_run(
    yaml: &str,
    what: &str,
    when: impl Fn(&sluice_sdk::api::RunDetail) -> bool,
) -> (Restarted, Client, String, sluice_sdk::api::RunDetail) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let data = dir.path().join("server");
    let log = dir.path().join("server.log");
    let mut server = spawn_server_ttl(port, &data, &log, "15s").await;
    let client = Client::new(&url, None);
    let w = spawn_fake_worker(&url, dir.path(), "w");
    let release = dir.path().join("release");
    let yaml = yaml.replace("RELEASE", &release.display().to_string());
    let id = submit(&client, &yaml).await;
    wait_until(&client, &id, Duration::from_secs(20), what, when).await;
    server.kill9();
    let server = spawn_server_ttl(port, &data, &log, "15s").await;
    std::fs::write(&release, "").unwrap();
    let done = wait_run(&client, &id, Duration::from_secs(30)).await;
    ((dir, server, w), client, id, done)
}

/// The server, the worker and their directory, kept until dropped.
type Restarted = (tempfile::TempDir, Proc, Proc);

#[tokio::test]
async fn a_restarted_server_picks_its_runs_up_again() {
    let yaml = "name: chain\nsteps:\n  - name: a\n    image: b\n    env: {FAKE_WAIT_FILE: RELEASE, FAKE_OUT_v: \"41\", FAKE_LOG: \"a says hi\"}\n    outputs: {params: {v: int}}\n  - name: b\n    image: b\n    params: {v: \"{{steps.a.outputs.params.v}}\"}\n    env: {FAKE_SLEEP_MS: \"500\", FAKE_OUT_w: \"{{inputs.params.v}}1\"}\n    outputs: {params: {w: int}}\n";
    let (_procs, client, id, done) = restart_server_mid_run(yaml, "a running", |d| {
        d.tasks[0].state == TaskState::Running
    })
    .await;
    assert_eq!(done.summary.state, RunState::Succeeded, "{:?}", done.error);
    assert_eq!(done.tasks[1].outputs["w"], serde_json::json!(411));
    assert_eq!(
        done.tasks.iter().map(|t| t.attempt).collect::<Vec<_>>(),
        [1, 1],
        "nothing ran twice: the worker kept its lease across the restart"
    );
    let lines = client.logs(&id, "a", 0, 10).await.unwrap().lines;
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].line, "a says hi");
}

#[tokio::test]
async fn a_restarted_server_takes_up_a_loop_over_a_group_in_the_middle() {
    // Two copies of a group; the second copy's steps start only after the first copy ends.
    let yaml = r#"
name: copies
steps:
  - name: split
    image: b
    env: {FAKE_OUT_parts: "[3, 4]"}
    outputs: {params: {parts: list}}
  - name: g
    forEach: '{{steps.split.outputs.params.parts}}'
    parallelism: 1
    steps:
      - name: work
        image: b
        env: {FAKE_WAIT_FILE: RELEASE, FAKE_OUT_n: "{{item}}0"}
        outputs: {params: {n: int}}
      - name: check
        image: b
        env: {FAKE_OUT_m: "{{steps.work.outputs.params.n}}1"}
        outputs: {params: {m: int}}
    outputs:
      params: {m: "{{steps.check.outputs.params.m}}"}
  - name: total
    image: b
    env: {FAKE_LOG: "{{steps.g.outputs.params.m}}"}
"#;
    let (_procs, client, id, done) = restart_server_mid_run(yaml, "the first copy running", |d| {
        d.tasks
            .iter()
            .any(|t| t.name == "g[0].work" && t.state == TaskState::Running)
    })
    .await;
    assert_eq!(done.summary.state, RunState::Succeeded, "{:?}", done.error);
    let task = |n: &str| done.tasks.iter().find(|t| t.name == n).unwrap();
    assert_eq!(task("g").outputs["m"], serde_json::json!([301, 401]));
    assert_eq!(task("g[1].check").state, TaskState::Succeeded);
    assert!(
        done.tasks.iter().all(|t| t.attempt <= 1),
        "nothing ran twice: {:?}",
        done.tasks
            .iter()
            .map(|t| (&t.name, t.attempt))
            .collect::<Vec<_>>()
    );
    let lines = client.logs(&id, "total", 0, 10).await.unwrap().lines;
    assert_eq!(lines[0].line, "[301,401]");
}

/// Runs SQL on a stopped server's database with Python's sqlite3 module.
fn sql(db: &std::path::Path, statement: &str) {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()",
            db.to_str().unwrap(),
            statement,
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_run_whose_rows_are_corrupt_is_failed_at_restart_and_the_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let data = dir.path().join("server");
    let log = dir.path().join("server.log");
    let mut server = spawn_server(port, &data, &log).await;
    let client = Client::new(&url, None);
    let _w = spawn_fake_worker(&url, dir.path(), "w");
    let release = dir.path().join("release");
    let yaml = |name: &str| {
        format!("name: {name}\nsteps:\n  - name: a\n    image: b\n    env: {{FAKE_WAIT_FILE: \"{}\"}}\n  - name: b\n    image: b\n    dependsOn: [a]\n", release.display())
    };
    let bad = submit(&client, &yaml("bad")).await;
    let good = submit(&client, &yaml("good")).await;
    for id in [&bad, &good] {
        wait_until(&client, id, Duration::from_secs(20), "a running", |d| {
            d.tasks[0].state == TaskState::Running
        })
        .await;
    }
    server.kill9();
    let db = data.join("sluice.db");
    sql(
        &db,
        &format!("UPDATE tasks SET attempt = 'one' WHERE run_id = '{bad}' AND idx = 0"),
    );
    sql(
        &db,
        &format!("UPDATE tasks SET state = 'bogus' WHERE run_id = '{bad}' AND idx = 1"),
    );
    let _server = spawn_server(port, &data, &log).await;
    std::fs::write(&release, "").unwrap();
    let done = wait_run(&client, &good, Duration::from_secs(30)).await;
    assert_eq!(done.summary.state, RunState::Succeeded, "{:?}", done.error);
    let runs = client.list_runs(None, None, 10, None).await.unwrap().runs;
    let failed = runs.iter().find(|r| r.id == bad).unwrap();
    assert_eq!(failed.state, RunState::Failed);
    assert_eq!(
        failed.end_reason,
        Some(sluice_sdk::api::EndReason::Unreadable)
    );
    // Reading it names what is wrong instead of failing the server.
    let e = client.get_run(&bad).await.unwrap_err().to_string();
    assert!(e.contains("corrupt") && e.contains("attempt"), "{e}");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("cannot be taken up again"), "{log}");
}

#[test]
fn sluice_up_says_it_is_up_only_when_it_serves() {
    let dir = tempfile::tempdir().unwrap();
    // A database file that is not one.
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("sluice.db"), vec![0x42u8; 8192]).unwrap();
    let port = free_port();
    let mut child = std::process::Command::new(BIN)
        .args(["up", "--no-worker", "--addr", &format!("127.0.0.1:{port}")])
        .args(["--data-dir", data.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // It must give up by itself; one still running after a while says it is up with nothing behind it.
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "sluice up kept running: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(!stdout.contains("is up"), "{stdout}");
    assert!(stderr.contains("cannot start the server"), "{stderr}");
}

#[tokio::test]
async fn after_a_full_disk_is_freed_the_server_recovers_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(&dir.path().join("disk"), "24m");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let data = dir.path().join("disk/server");
    let _server = spawn_server(port, &data, &dir.path().join("server.log")).await;
    let client = Client::new(&url, None);
    // A worker keeps writing too: starts, logs, results, heartbeats.
    let _w = spawn_fake_worker(&url, dir.path(), "w");
    let yaml = "name: small\nsteps:\n  - name: a\n    image: b\n    env: {FAKE_LOG: \"one|two|three\", FAKE_SLEEP_MS: \"200\"}\n  - name: b\n    image: b\n    dependsOn: [a]\n";
    let first = submit(&client, yaml).await;
    wait_run(&client, &first, Duration::from_secs(20)).await;
    let busy = submit(&client, yaml).await;
    let filler = disk.fill();
    // Writes fail while the disk is full (a 5xx naming the cause), and reads still answer.
    let mut refused = None;
    for _ in 0..50 {
        let req = sluice_sdk::api::CreateRun {
            yaml: Some(yaml.into()),
            ..Default::default()
        };
        match client.create_run(&req).await {
            Ok(_) => continue,
            Err(e) => {
                refused = Some(e.to_string());
                break;
            }
        }
    }
    let refused = refused.expect("a write failed on the full disk");
    assert!(
        refused.contains("the server's disk is full") && refused.contains("storage_full"),
        "{refused}"
    );
    client.list_runs(None, None, 10, None).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    std::fs::remove_file(&filler).unwrap();
    // Freed: writes succeed again, without a restart, and runs go to their end.
    let start = std::time::Instant::now();
    let again = loop {
        let req = sluice_sdk::api::CreateRun {
            yaml: Some(yaml.into()),
            ..Default::default()
        };
        match client.create_run(&req).await {
            Ok(r) => break r.summary.id,
            Err(e) => assert!(
                start.elapsed() < Duration::from_secs(15),
                "still failing after the disk was freed: {e}\n{}",
                std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default()
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let done = wait_run(&client, &again, Duration::from_secs(30)).await;
    assert_eq!(done.summary.state, RunState::Succeeded, "{:?}", done.tasks);
    let lines = client.logs(&again, "a", 0, 10).await.unwrap().lines;
    assert_eq!(lines.len(), 3);
    // The run that was going when the disk filled ends too (in one state or another).
    wait_run(&client, &busy, Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hundred_runs_from_sixteen_clients_survive_a_server_kill_each_made_once_and_run_once_at_a_time(
) {
    three_hundred_runs_across_a_server_kill(None).await;
}

/// The same, with the server's state in PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_postgres_three_hundred_runs_survive_a_server_kill_each_made_once_and_run_once_at_a_time(
) {
    let pg = crate::pg::Postgres::start();
    three_hundred_runs_across_a_server_kill(Some(&pg.url)).await;
}

async fn three_hundred_runs_across_a_server_kill(database: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let data = dir.path().join("server");
    let log = dir.path().join("server.log");
    let server = std::sync::Arc::new(tokio::sync::Mutex::new(
        spawn_server_on(port, &data, &log, database).await,
    ));
    let journals: Vec<_> = (0..2)
        .map(|i| dir.path().join(format!("w{i}.jsonl")))
        .collect();
    let _workers: Vec<Proc> = (0..2)
        .map(|i| {
            spawn_worker(
                &url,
                &dir.path().join(format!("w{i}")),
                &journals[i],
                &dir.path().join(format!("w{i}.log")),
            )
        })
        .collect();
    const CLIENTS: usize = 16;
    const RUNS: usize = 300;
    let submitted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let url = url.clone();
        let submitted = submitted.clone();
        clients.push(tokio::spawn(async move {
            let client = Client::new(&url, None);
            let mut ids = Vec::new();
            for k in (c..RUNS).step_by(CLIENTS) {
                let yaml = format!(
                    "name: load-{k}\nsteps:\n  - name: a\n    image: b\n    env: {{FAKE_SLEEP_MS: \"{}\"}}\n  - name: b\n    image: b\n    dependsOn: [a]\n",
                    50 + (k % 5) * 50
                );
                let req = sluice_sdk::api::CreateRun {
                    yaml: Some(yaml),
                    ..Default::default()
                };
                let run = client
                    .create_run_retrying(&req, Duration::from_secs(60))
                    .await
                    .unwrap_or_else(|e| panic!("run {k} was not accepted: {e}"));
                submitted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                ids.push((k, run.summary.id));
            }
            ids
        }));
    }
    // A third of the way in, the server is killed and started again on the same database.
    while submitted.load(std::sync::atomic::Ordering::SeqCst) < RUNS / 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.lock().await.kill9();
    tokio::time::sleep(Duration::from_millis(300)).await;
    *server.lock().await = spawn_server_on(port, &data, &log, database).await;
    let mut ids = Vec::new();
    for c in clients {
        ids.extend(c.await.unwrap());
    }
    assert_eq!(ids.len(), RUNS);
    let distinct: std::collections::BTreeSet<_> = ids.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(distinct.len(), RUNS, "every submission has its own run");
    // Nothing lost, nothing made twice: the server holds exactly these runs, and each ends.
    let client = Client::new(&url, None);
    let mut stored = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_runs(None, None, 1000, token.as_deref())
            .await
            .unwrap();
        stored.extend(page.runs.into_iter().map(|r| r.id));
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    let stored: std::collections::BTreeSet<_> = stored.into_iter().collect();
    assert_eq!(
        stored, distinct,
        "the server holds exactly the runs submitted"
    );
    for (k, id) in &ids {
        let done = wait_run(&client, id, Duration::from_secs(120)).await;
        assert_eq!(
            done.summary.state,
            RunState::Succeeded,
            "run {k}: {:?}",
            done.error
        );
        assert_eq!(
            done.summary.name,
            format!("load-{k}-{}", &id[id.len() - 6..])
        );
    }
    // Nothing ran twice at once: the attempts of each task never overlap.
    let mut by_task: std::collections::HashMap<(String, String), Vec<(i64, i64)>> =
        Default::default();
    for j in &journals {
        for r in journal(j) {
            by_task
                .entry((
                    r["run_id"].as_str().unwrap().into(),
                    r["task"].as_str().unwrap().into(),
                ))
                .or_default()
                .push((
                    r["started_ms"].as_i64().unwrap(),
                    r["ended_ms"].as_i64().unwrap(),
                ));
        }
    }
    assert_eq!(by_task.len(), RUNS * 2, "every task ran");
    for (task, mut spans) in by_task {
        spans.sort();
        for w in spans.windows(2) {
            assert!(w[0].1 <= w[1].0, "{task:?} ran twice at once: {spans:?}");
        }
    }
}
