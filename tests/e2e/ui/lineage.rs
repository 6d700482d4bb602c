//! Where a step's inputs came from, in a real browser over real runs in real containers: an
//! upstream step, the cache, or the run itself; and an artifact's lineage across runs.

use super::workbench::click;
use super::Browser;
use crate::containers::{image, Cluster};
use serde_json::json;

/// A loop iteration's panel shows the item it ran with, its resolved command and every input
/// with the step it came from; an artifact's page shows who made it (and who reused it from the
/// cache) and who read it, across runs; a step served from the cache is marked on the graph; a run's own input
/// artifacts are listed in its header and their steps say they were given to the run.
#[tokio::test]
async fn inputs_show_their_source_and_an_artifact_its_lineage_across_runs() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let yaml = format!(
        r#"
name: ui-lineage
params:
  configs: {{type: list, default: [{{depth: 3, seed: 2}}, {{depth: 5, seed: 7}}]}}
steps:
  - name: data
    image: {img}
    outputs: {{artifacts: {{rows: {{type: dataset}}}}}}
    command: [sh, -c, "seq 1 10 > {{{{outputs.artifacts.rows}}}}"]
  - name: train
    image: {img}
    forEach: '{{{{params.configs}}}}'
    artifacts: {{rows: "{{{{steps.data.outputs.artifacts.rows}}}}"}}
    command: [sh, -c, "echo depth={{{{item.depth}}}} seed={{{{item.seed}}}} rows=$(wc -l < {{{{inputs.artifacts.rows}}}})"]
"#
    );
    let first = c.run(&yaml).await;
    assert_eq!(
        first.summary.state,
        sluice_sdk::api::RunState::Succeeded,
        "{:?}",
        first.tasks
    );
    let second = c.run(&yaml).await;
    assert_eq!(second.summary.state, sluice_sdk::api::RunState::Succeeded);
    let b = Browser::start().await;
    b.goto(&format!(
        "{}/runs/{}/tasks/train%5B1%5D",
        c.url, first.summary.id
    ))
    .await;
    let panel = b
        .wait(
            "the iteration's panel",
            "const i = document.getElementById('item'), c = document.getElementById('command'), r = document.querySelector('table.inputs tr[data-artifact=rows]');
             return i && c && r && {item: i.textContent, command: c.textContent, from: r.cells[2].textContent}",
        )
        .await;
    assert_eq!(panel["item"], json!("train: depth=5, seed=7"), "{panel}");
    assert!(
        panel["command"]
            .as_str()
            .unwrap()
            .contains("echo depth=5 seed=7"),
        "{panel}"
    );
    assert_eq!(panel["from"], json!("data"));
    b.screenshot_of("table.inputs", "inputs.png").await;
    click(
        &b,
        "table.inputs tr[data-artifact=rows] a[href^='/artifacts']",
    )
    .await;
    let lineage = b
        .wait(
            "the lineage",
            "const p = document.querySelectorAll('#producers tbody tr'), c = document.querySelectorAll('#consumers tbody tr');
             return p.length === 2 && c.length >= 2 && {
               producers: [...p].map(r => [r.dataset.run, r.cells[2].textContent, r.dataset.role]),
               consumers: [...c].map(r => [r.dataset.run, r.cells[2].textContent])}",
        )
        .await;
    let (a, z) = (first.summary.id.as_str(), second.summary.id.as_str());
    assert_eq!(
        lineage["producers"],
        json!([[a, "data", "made it"], [z, "data", "reused it (cache)"]]),
        "{lineage}"
    );
    let consumers: Vec<(String, String)> =
        serde_json::from_value(lineage["consumers"].clone()).unwrap();
    for t in ["train[0]", "train[1]"] {
        assert!(
            consumers.contains(&(a.to_string(), t.to_string())),
            "{lineage}"
        );
    }
    b.screenshot("lineage.png").await;
    // The second run's reused step is marked on its graph.
    b.goto(&format!("{}/runs/{z}", c.url)).await;
    b.wait(
        "the cached mark",
        "return document.querySelector('[data-task=data] .tag-cached')",
    )
    .await;
    // A run given an input artifact shows it in its header, and the step that reads it says
    // where it came from.
    let local = c.dir.path().join("given.csv");
    std::fs::write(&local, "1,2\n").unwrap();
    let up = c.client.upload_path(&local).await.unwrap();
    let given = c
        .client
        .create_run(&sluice_sdk::api::CreateRun {
            yaml: Some(format!(
                "name: ui-given\nartifacts: {{rows: {{}}}}\nsteps:\n  - name: read\n    image: {img}\n    inputs: {{artifacts: {{rows: {{}}}}}}\n    artifacts: {{rows: '{{{{artifacts.rows}}}}'}}\n    command: [cat, '{{{{inputs.artifacts.rows}}}}']\n"
            )),
            inputs: [("rows".to_string(), up.info.digest.clone())].into(),
            ..Default::default()
        })
        .await
        .unwrap();
    b.goto(&format!("{}/runs/{}/tasks/read", c.url, given.summary.id))
        .await;
    let shown = b
        .wait(
            "the run's inputs",
            "const i = document.getElementById('run-inputs'), r = document.querySelector('table.inputs tr[data-artifact=rows]');
             return i && r && {header: i.textContent, from: r.cells[2].textContent}",
        )
        .await;
    assert!(
        shown["header"]
            .as_str()
            .unwrap()
            .starts_with(&format!("rows (4 B, {}", &up.info.digest[..19])),
        "{shown}"
    );
    assert_eq!(shown["from"], json!("given to the run"));
    b.quit().await;
}
