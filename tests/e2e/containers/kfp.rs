//! Kubeflow pipelines compiled by the kfp SDK, run unchanged in real containers: the corpus in
//! `pipelines/kfp/corpus/`, compiled by `scripts/test` (into `SLUICE_KFP_CORPUS`), each checked
//! against the outcome worked out by hand beside it (every task's state, outputs, attempts).
//! Images named as Kubeflow names them (`python:3.11-slim`) come from the local registry as a
//! mirror of Docker Hub.

use super::*;
use serde_json::Value;

fn corpus() -> PathBuf {
    let dir = PathBuf::from(
        std::env::var("SLUICE_KFP_CORPUS")
            .unwrap_or_else(|_| "/var/cache/sluice/kfp-corpus".into()),
    );
    assert!(
        dir.join("c01_hello.yaml").exists(),
        "no compiled kfp corpus in {}: run scripts/test (or python pipelines/kfp/compile.py DIR)",
        dir.display()
    );
    dir
}

fn mirror() -> String {
    format!("docker.io=http://{}", registry())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_kfp_corpus_runs_as_kubeflow_runs_it() {
    let dir = corpus();
    // What c26_importer imports: a file and a directory in the test's temporary directory, which
    // the test server's policy allows.
    let data = std::env::temp_dir().join("sluice-kfp-import");
    std::fs::create_dir_all(data.join("tree")).unwrap();
    std::fs::write(data.join("rows.csv"), "a,1\nb,2\nc,3\n").unwrap();
    std::fs::write(data.join("tree/a.txt"), "a").unwrap();
    std::fs::write(data.join("tree/b.txt"), "b").unwrap();
    let c = Cluster::start(&["--registry-mirror", &mirror()]).await;
    let mut started = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 25,
        "the corpus has {} pipelines",
        files.len()
    );
    for f in &files {
        let yaml = std::fs::read_to_string(f).unwrap();
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(f.with_extension("expected.json")).unwrap(),
        )
        .unwrap();
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        let req = sluice_sdk::api::CreateRun {
            yaml: Some(yaml),
            name: expected["run_name"].as_str().map(str::to_string),
            params: serde_json::from_value(
                expected
                    .get("params")
                    .cloned()
                    .unwrap_or(Value::Object(Default::default())),
            )
            .unwrap(),
            ..Default::default()
        };
        match (
            c.client.create_run(&req).await,
            expected["refused"].as_str(),
        ) {
            (Ok(run), None) => started.push((name, run.summary.id, expected)),
            (Err(e), Some(why)) => assert!(
                e.to_string().contains(why),
                "{name}: refused with `{e}`, expected it to say `{why}`"
            ),
            (Ok(_), Some(why)) => panic!("{name}: accepted, expected a refusal saying `{why}`"),
            (Err(e), None) => panic!("{name}: refused: {e}"),
        }
    }
    let mut failures = Vec::new();
    for (name, id, expected) in &started {
        let run = wait_run(&c.client, id, Duration::from_secs(300)).await;
        failures.extend(check(name, &run, expected));
    }
    assert!(
        failures.is_empty(),
        "{}\n--- worker log tail:\n{}",
        failures.join("\n"),
        tail(&c.worker_log())
    );
}

fn tail(s: &str) -> String {
    s.lines()
        .rev()
        .take(40)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n")
}

/// What differs between a run and its expected outcome.
fn check(name: &str, run: &RunDetail, expected: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let state = serde_json::to_value(run.summary.state).unwrap();
    if state != expected["state"] {
        out.push(format!(
            "{name}: run {} (expected {}): {:?}",
            state, expected["state"], run.error
        ));
    }
    if let Some(o) = expected.get("outputs").and_then(Value::as_object) {
        for (k, v) in o {
            if run.outputs.get(k) != Some(v) {
                out.push(format!(
                    "{name}: run output `{k}` is {:?} (expected {v})",
                    run.outputs.get(k)
                ));
            }
        }
    }
    if let Some(list) = expected.get("output_artifacts").and_then(Value::as_array) {
        let have: Vec<&str> = run
            .output_artifacts
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        let want: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
        if have != want {
            out.push(format!(
                "{name}: run output artifacts {have:?} (expected {want:?})"
            ));
        }
    }
    let want = expected["tasks"].as_object().unwrap();
    let have: Vec<&str> = run.tasks.iter().map(|t| t.name.as_str()).collect();
    for t in &have {
        if !want.contains_key(*t) {
            out.push(format!("{name}: task `{t}` was not expected"));
        }
    }
    for (task, w) in want {
        let Some(t) = run.tasks.iter().find(|t| &t.name == task) else {
            out.push(format!("{name}: no task `{task}` (it has {have:?})"));
            continue;
        };
        let state = serde_json::to_value(t.state).unwrap();
        let want_state = w
            .get("state")
            .cloned()
            .unwrap_or_else(|| "succeeded".into());
        if state != want_state {
            out.push(format!(
                "{name}: `{task}` {state} (expected {want_state}): {:?}",
                t.error
            ));
        }
        if let Some(o) = w.get("outputs").and_then(Value::as_object) {
            for (k, v) in o {
                if t.outputs.get(k) != Some(v) {
                    out.push(format!(
                        "{name}: `{task}` output `{k}` is {:?} (expected {v})",
                        t.outputs.get(k)
                    ));
                }
            }
        }
        if let Some(d) = w.get("display_name").and_then(Value::as_str) {
            if t.display_name.as_deref() != Some(d) {
                out.push(format!(
                    "{name}: `{task}` shown as {:?} (expected {d})",
                    t.display_name
                ));
            }
        }
        if let Some(kinds) = w.get("artifact_kinds").and_then(Value::as_object) {
            for (a, k) in kinds {
                let have = t
                    .artifacts
                    .iter()
                    .find(|r| &r.name == a)
                    .and_then(|r| r.kind.as_deref());
                if have != k.as_str() {
                    out.push(format!(
                        "{name}: `{task}` artifact `{a}` is of kind {have:?} (expected {k})"
                    ));
                }
            }
        }
        if let Some(a) = w.get("attempts").and_then(Value::as_u64) {
            if t.attempt as u64 != a {
                out.push(format!(
                    "{name}: `{task}` took {} attempt(s) (expected {a})",
                    t.attempt
                ));
            }
        }
        if let Some(code) = w.get("exit_code").and_then(Value::as_i64) {
            if t.exit_code.map(i64::from) != Some(code) {
                out.push(format!(
                    "{name}: `{task}` exited {:?} (expected {code})",
                    t.exit_code
                ));
            }
        }
        if let Some(c) = w.get("cached").and_then(Value::as_bool) {
            if t.cached_from.is_some() != c {
                out.push(format!(
                    "{name}: `{task}` cached_from {:?} (expected cached: {c})",
                    t.cached_from
                ));
            }
        }
        if let Some(s) = w.get("error_contains").and_then(Value::as_str) {
            if !t.error.as_deref().unwrap_or("").contains(s) {
                out.push(format!(
                    "{name}: `{task}` error {:?} does not say `{s}`",
                    t.error
                ));
            }
        }
        if let Some(r) = w.get("resources") {
            let got = serde_json::to_value(&t.resources).unwrap();
            for (k, v) in r.as_object().unwrap() {
                if got.get(k) != Some(v) {
                    out.push(format!(
                        "{name}: `{task}` resources {got} (expected {k}: {v})"
                    ));
                }
            }
        }
        if let Some(arts) = w.get("artifacts").and_then(Value::as_object) {
            for (a, meta) in arts {
                let rec = t.artifacts.iter().find(|r| &r.name == a);
                let m = rec.and_then(|r| r.metadata.as_ref());
                for (k, v) in meta.as_object().unwrap() {
                    if m.and_then(|m| m.get(k)) != Some(v) {
                        out.push(format!(
                            "{name}: `{task}` artifact `{a}` metadata {m:?} (expected {k}: {v})"
                        ));
                    }
                }
            }
        }
    }
    out
}

/// The demo as kfp lightweight components (`pipelines/kfp/iris.py`, compiled beside it), on the
/// scikit-learn image: it trains and evaluates, and its metrics come back as the metadata of
/// Kubeflow's Metrics and ClassificationMetrics artifacts.
#[tokio::test(flavor = "multi_thread")]
async fn the_iris_demo_written_with_kfp_trains_and_reports_its_metrics() {
    let yaml = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/kfp/iris.yaml"),
    )
    .unwrap();
    let c = Cluster::start(&["--registry-mirror", &mirror()]).await;
    let run = c.run(&yaml).await;
    assert_eq!(run.summary.state, RunState::Succeeded, "{:?}", run.error);
    let prepare = task(&run, "prepare");
    assert_eq!(prepare.outputs["Output"], 150);
    let data = prepare
        .artifacts
        .iter()
        .find(|a| a.name == "dataset")
        .unwrap();
    assert_eq!(data.metadata.as_ref().unwrap()["test_rows"], 45);
    let eval = task(&run, "evaluate");
    let accuracy = eval.outputs["Output"].as_f64().unwrap();
    assert!(accuracy > 0.9, "accuracy {accuracy}");
    // The pipeline returns the accuracy: the run's own output.
    assert_eq!(run.outputs["Output"].as_f64(), Some(accuracy));
    assert_eq!(prepare.display_name.as_deref(), Some("Prepare the data"));
    let metrics = eval.artifacts.iter().find(|a| a.name == "metrics").unwrap();
    assert_eq!(
        metrics.metadata.as_ref().unwrap()["accuracy"].as_f64(),
        Some(accuracy)
    );
    let confusion = eval
        .artifacts
        .iter()
        .find(|a| a.name == "confusion")
        .unwrap();
    let matrix = &confusion.metadata.as_ref().unwrap()["confusionMatrix"];
    let rows: u64 = matrix["rows"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r["row"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
        })
        .sum();
    assert_eq!(rows, 45, "{matrix}");
    assert!(c
        .stdout(&run.summary.id, "evaluate")
        .await
        .contains("accuracy"));
}
