//! Workers with labels, as separate processes with real containers: a step pinned by its
//! `nodeSelector` runs on the worker that has the labels, the others wherever there is room,
//! and `sluice workers list` shows each worker with what it offers.

use super::*;

#[tokio::test]
async fn a_step_pinned_by_its_node_selector_runs_on_the_worker_with_those_labels() {
    let c = Cluster::start(&[]).await;
    let zoned_dir = c.dir.path().join("zoned/worker");
    let _zoned = c.spawn_worker_with(
        &zoned_dir,
        "zoned.log",
        &[
            "--name", "zoned", "--label", "zone=b", "--label", "disk=ssd",
        ],
    );
    // Both workers are up before the run is submitted, so either could take any step.
    let start = Instant::now();
    let zoned_id = loop {
        let list = c.client.list_workers().await.unwrap();
        if let Some(w) = list.iter().find(|w| w.name == "zoned" && w.alive) {
            assert_eq!(w.labels.len(), 2, "{w:?}");
            break w.id.clone();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{list:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let img = image("busybox");
    let steps: String = (0..4)
        .map(|i| {
            format!(
                "  - {{name: pinned{i}, image: {img}, nodeSelector: {{zone: b}}, command: [hostname]}}\n  - {{name: free{i}, image: {img}, command: [hostname]}}\n"
            )
        })
        .collect();
    let run = c.run(&format!("name: placed\nsteps:\n{steps}")).await;
    assert_succeeded(&c, &run);
    for i in 0..4 {
        let t = task(&run, &format!("pinned{i}"));
        assert_eq!(t.worker.as_deref(), Some(zoned_id.as_str()), "{t:?}");
        assert_eq!(t.node_selector.get("zone").map(String::as_str), Some("b"));
    }

    let (code, out, err) = crate::cli::sluice(&["workers", "list"], &c.url);
    assert_eq!(code, 0, "{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("zoned "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("disk=ssd,zone=b") && line.contains(" up "),
        "{line}"
    );
    assert_eq!(out.lines().count(), 3, "a heading and two workers: {out}");
    let (code, out, _) = crate::cli::sluice(&["workers", "list", "--output", "json"], &c.url);
    assert_eq!(code, 0);
    let list: Vec<sluice_sdk::api::WorkerInfo> = serde_json::from_str(&out).unwrap();
    assert!(
        list.iter().all(|w| w.alive && w.tasks.is_empty()),
        "{list:?}"
    );
}

/// The workers page shows each worker that is up with its labels, slots and GPUs in use, and the
/// tasks it runs (each a link to the task); a task no worker can take says why in its panel.
#[tokio::test]
async fn the_workers_page_shows_what_each_worker_offers_and_runs_and_a_task_says_why_it_waits() {
    let c = Cluster::start(&["--name", "trainer", "--label", "zone=b"]).await;
    let img = image("busybox");
    let yaml = format!(
        "name: held\nsteps:\n  - {{name: hold, image: {img}, nodeSelector: {{zone: b}}, command: [sleep, '60']}}\n  - {{name: big, image: {img}, resources: {{gpu: 2}}, command: [true]}}\n"
    );
    let id = submit(&c.client, &yaml).await;
    wait_until(
        &c.client,
        &id,
        Duration::from_secs(60),
        "hold to run",
        |d| task(d, "hold").state == TaskState::Running,
    )
    .await;
    let b = crate::ui::Browser::start().await;
    b.goto(&format!("{}/workers", c.url)).await;
    let row = b
        .wait(
            "the worker's row with its task",
            "const r = document.querySelector('#workers tr[data-worker=trainer]');
             return r && r.querySelector('.running a') && [...r.cells].map(c => c.textContent)",
        )
        .await;
    let row: Vec<String> = serde_json::from_value(row).unwrap();
    assert_eq!(
        row[..5],
        ["trainer", "up", "1 / 4", "none", "zone=b"],
        "{row:?}"
    );
    assert!(row[5].ends_with("/ hold"), "{row:?}");
    // The running task is a link to its panel.
    b.js("document.querySelector('#workers .running a').click()")
        .await;
    b.wait(
        "the task's panel",
        "return location.pathname.endsWith('/tasks/hold') && document.querySelector('.panel-head h2')?.textContent.startsWith('hold')",
    )
    .await;
    b.goto(&format!("{}/runs/{id}/tasks/big", c.url)).await;
    let says = b
        .wait(
            "why big waits",
            "const s = document.getElementById('waiting'); return s && s.textContent",
        )
        .await;
    assert_eq!(
        says,
        serde_json::json!("no worker that is up has 2 GPUs (workers)")
    );
    b.quit().await;
    c.client.cancel_run(&id).await.unwrap();
    let r = wait_run(&c.client, &id, Duration::from_secs(60)).await;
    assert_eq!(r.summary.state, RunState::Cancelled, "{r:#?}");
}
