//! Lifecycles: cancel, cleanup after many steps and after a crash, prunes, volumes, the demo.

use super::*;

#[tokio::test]
async fn cancel_mid_step_kills_every_process_of_the_container() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let tag = 3_000_000 + std::process::id() % 100_000;
    let id = submit(
        &c.client,
        &format!(
            r#"
name: cancel
steps:
  - name: sleepy
    image: {img}
    script: |
      sleep {tag} &
      sleep {tag}
"#
        ),
    )
    .await;
    wait_until(
        &c.client,
        &id,
        Duration::from_secs(60),
        "the step to run",
        |d| d.tasks[0].state == TaskState::Running,
    )
    .await;
    let sleeping = || sleepers(tag);
    let start = Instant::now();
    while sleeping().len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the step's processes never showed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.client.cancel_run(&id).await.unwrap();
    let run = wait_run(&c.client, &id, Duration::from_secs(30)).await;
    assert_eq!(run.summary.state, RunState::Cancelled);
    assert_eq!(run.tasks[0].state, TaskState::Cancelled);
    assert!(sleeping().is_empty(), "still running: {:?}", sleeping());
    let start = Instant::now();
    while !c.leftovers().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            c.leftovers()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn hundreds_of_steps_leave_no_mount_cgroup_or_directory_behind() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let mut yaml = String::from("name: many\nsteps:\n");
    for i in 0..200 {
        yaml.push_str(&format!(
            "  - name: s{i}\n    image: {img}\n    command: [sh, -c, \"echo {{{{task.name}}}} > /tmp/x\"]\n"
        ));
    }
    let run = c.run(&yaml).await;
    assert_succeeded(&c, &run);
    assert_eq!(run.tasks.len(), 200);
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
}

#[tokio::test]
async fn a_killed_workers_containers_die_with_it_and_the_next_worker_cleans_up() {
    let mut c = Cluster::start(&[]).await;
    let img = image("busybox");
    let (id, tag) = sleeping_step(&c, &img, "crash", 4_000_000).await;
    c.worker.take().unwrap().kill9();
    // The container dies with its worker (its helper sees the worker's end of their socket close)...
    let start = Instant::now();
    while !sleepers(tag).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the step outlived its worker"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...and what it left on disk (its cgroup, its state) goes when a worker starts there again.
    assert!(!c.leftovers().is_empty());
    c.start_worker();
    let start = Instant::now();
    while !c.leftovers().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "left: {:?}",
            c.leftovers()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(c.worker_log().contains("left behind"), "{}", c.worker_log());
    c.client.cancel_run(&id).await.unwrap();
}

#[tokio::test]
async fn volumes_are_read_only_unless_writable_and_named_ones_outlive_runs() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("labels.csv"), "a,b\n").unwrap();
    let hp = host.path().display();
    let write = c
        .run(&format!(
            r#"
name: volumes
steps:
  - name: fill
    image: {img}
    volumes:
      - {{name: cache, path: /cache, writable: true}}
      - {{hostPath: {hp}, path: /data}}
    script: |
      cat /data/labels.csv
      echo nope > /data/new.csv || echo "data is read-only"
      echo kept > /cache/token
"#
        ))
        .await;
    assert_succeeded(&c, &write);
    let out = c.stdout(&write.summary.id, "fill").await;
    assert!(
        out.contains("a,b") && out.contains("data is read-only"),
        "{out}"
    );
    assert!(!host.path().join("new.csv").exists());
    let read = c
        .run(&format!(
            "name: volumes2\nsteps:\n  - name: use\n    image: {img}\n    volumes: [{{name: cache, path: /cache}}]\n    command: [cat, /cache/token]\n"
        ))
        .await;
    assert_succeeded(&c, &read);
    assert_eq!(c.stdout(&read.summary.id, "use").await.trim(), "kept");
}

#[tokio::test]
async fn the_demo_pipeline_trains_and_evaluates_a_model_on_the_scikit_learn_image() {
    let c = Cluster::start(&[]).await;
    image("sklearn");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let yaml = std::fs::read_to_string(root.join("pipelines/demo/iris.yaml"))
        .unwrap()
        .replace("127.0.0.1:5000", &registry());
    let run = c.run(&yaml).await;
    assert_succeeded(&c, &run);
    assert_eq!(
        task(&run, "prepare").outputs["rows"],
        serde_json::json!(150)
    );
    let accuracy = task(&run, "evaluate").outputs["accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.85 && accuracy <= 1.0, "accuracy {accuracy}");
    let model = &task(&run, "train").artifacts[0];
    assert_eq!(model.name, "model");
    assert!(model.size > 10_000, "{model:?}");
    let metrics = &task(&run, "evaluate").artifacts[0];
    let path = metrics.uri.strip_prefix("file://").unwrap();
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    // The parameter is the metrics file's accuracy, to four places.
    assert!(
        (m["accuracy"].as_f64().unwrap() - accuracy).abs() < 1e-4,
        "{m}"
    );
    assert_eq!(m["confusion_matrix"].as_array().unwrap().len(), 3);
    let out = c.stdout(&run.summary.id, "evaluate").await;
    assert!(out.contains("accuracy:"), "{out}");
}

#[tokio::test]
async fn the_example_pipelines_run_in_real_containers() {
    let c = Cluster::start(&[]).await;
    image("busybox");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "{files:?}");
    for file in files {
        let yaml = std::fs::read_to_string(&file)
            .unwrap()
            .replace("127.0.0.1:5000", &registry());
        let run = c.run(&yaml).await;
        assert_succeeded(&c, &run);
        eprintln!("{}: {} tasks succeeded", file.display(), run.tasks.len());
    }
}

#[tokio::test]
async fn an_image_prune_keeps_the_layers_of_running_steps() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let (id, _) = sleeping_step(&c, &img, "prune", 5_000_000).await;
    let wd = c.worker_dir();
    let layers = || -> Vec<String> {
        std::fs::read_dir(wd.join("images/layers/sha256"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let before = layers();
    assert!(!before.is_empty());
    let image_cmd = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .arg("image")
            .args(args)
            .arg("--data-dir")
            .arg(wd.parent().unwrap())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    image_cmd(&["rm", &img]);
    image_cmd(&["prune"]);
    assert_eq!(layers(), before, "a running step's layer was pruned");
    c.client.cancel_run(&id).await.unwrap();
    wait_run(&c.client, &id, Duration::from_secs(30)).await;
    let start = Instant::now();
    while !c.leftovers().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            c.leftovers()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    image_cmd(&["prune"]);
    assert!(layers().is_empty(), "unused layers stay: {:?}", layers());
}

/// A registry on loopback that accepts connections and never answers; counts them.
fn silent_registry() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(conn);
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn a_registry_that_never_answers_is_covered_by_the_steps_timeout_and_by_cancel() {
    let c = Cluster::start(&[]).await;
    let (reg, accepted) = silent_registry();
    let run = c
        .run(&format!(
            "name: stuck-pull\nsteps:\n  - name: pull\n    image: {reg}/sluice/never:1\n    timeout: 2s\n    command: [\"true\"]\n"
        ))
        .await;
    assert_eq!(run.summary.state, RunState::Failed);
    let e = task(&run, "pull").error.clone().unwrap_or_default();
    assert!(
        e.contains(&format!(
            "timed out after 2s while pulling image `{reg}/sluice/never:1`"
        )),
        "{e}"
    );
    assert!(accepted.load(std::sync::atomic::Ordering::SeqCst) > 0);

    // Without a timeout, a cancel stops the pull.
    let before = accepted.load(std::sync::atomic::Ordering::SeqCst);
    let id = submit(
        &c.client,
        &format!("name: stuck-pull-2\nsteps:\n  - name: pull\n    image: {reg}/sluice/never:2\n    command: [\"true\"]\n"),
    )
    .await;
    let start = Instant::now();
    while accepted.load(std::sync::atomic::Ordering::SeqCst) == before {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the pull never began"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.client.cancel_run(&id).await.unwrap();
    let run = wait_run(&c.client, &id, Duration::from_secs(20)).await;
    assert_eq!(run.summary.state, RunState::Cancelled);
    let e = task(&run, "pull").error.clone().unwrap_or_default();
    assert!(e.contains("cancelled while pulling image"), "{e}");
}
