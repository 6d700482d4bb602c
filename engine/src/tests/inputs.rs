//! The run's own input artifacts (`{{artifacts.NAME}}`): bound to a step's input, or named
//! directly by an inline step; their digest keys the cache as an upstream output's does.

use super::*;

const WITH_INPUTS: &str = r#"
name: with-inputs
artifacts:
  dataset: {type: dataset}
  config: {}
components:
  train:
    image: busybox
    inputs: {artifacts: {data: {type: dataset}}}
    command: [ls, "{{inputs.artifacts.data}}"]
steps:
  - name: train
    component: train
    artifacts: {data: "{{artifacts.dataset}}"}
  - name: show
    image: busybox
    command: [cat, "{{artifacts.config}}", "{{artifacts.dataset}}/x"]
"#;

fn given(name: &str, hex: char) -> ArtifactRecord {
    ArtifactRecord {
        name: name.into(),
        uri: format!("file:///data/uploads/blake3-{name}"),
        size: 3,
        digest: format!("blake3:{}", hex.to_string().repeat(64)),
        metadata: None,
        kind: None,
    }
}

fn start_with(inputs: Vec<ArtifactRecord>) -> Run {
    let p =
        spec::load("t.yaml", WITH_INPUTS).unwrap_or_else(|d| panic!("{}", d.render(WITH_INPUTS)));
    let params = resolve_params(&p, &Params::new()).unwrap();
    Run::start(
        "r".into(),
        "r".into(),
        Arc::new(p),
        params,
        inputs,
        Default::default(),
        0,
    )
    .unwrap()
    .0
}

#[test]
fn the_runs_inputs_are_mounted_where_steps_name_them() {
    let run = start_with(vec![given("dataset", 'a'), given("config", 'b')]);
    let train = run.tasks[idx_of(&run, "train")].spec.clone().unwrap();
    assert_eq!(train.input_artifacts.len(), 1);
    let a = &train.input_artifacts[0];
    assert_eq!(
        (
            a.name.as_str(),
            a.path.as_str(),
            a.uri.as_str(),
            a.producer.as_str()
        ),
        (
            "data",
            "/sluice/inputs/artifacts/data",
            "file:///data/uploads/blake3-dataset",
            ""
        )
    );
    assert_eq!(
        a.digest.as_deref(),
        Some(&*format!("blake3:{}", "a".repeat(64)))
    );
    assert_eq!(
        command(&run, "train"),
        ["ls", "/sluice/inputs/artifacts/data"]
    );
    let show = run.tasks[idx_of(&run, "show")].spec.clone().unwrap();
    assert_eq!(
        command(&run, "show"),
        [
            "cat",
            "/sluice/inputs/artifacts/run-inputs/config",
            "/sluice/inputs/artifacts/run-inputs/dataset/x"
        ]
    );
    let mounted: Vec<&str> = show
        .input_artifacts
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(mounted, ["run-inputs/config", "run-inputs/dataset"]);
    // Restored after a restart, it resolves the same.
    let again = restored(&run);
    assert_eq!(again.inputs, run.inputs);
}

#[test]
fn an_input_the_run_was_not_given_fails_the_step_that_needs_it() {
    let run = start_with(vec![given("config", 'b')]);
    let t = &run.tasks[idx_of(&run, "train")];
    assert_eq!(t.state, TaskState::Failed);
    assert!(
        t.error
            .as_deref()
            .is_some_and(|e| e.contains("no input artifact `dataset`")),
        "{:?}",
        t.error
    );
}

#[test]
fn another_input_content_is_another_cache_key() {
    let a = start_with(vec![given("dataset", 'a'), given("config", 'b')]);
    let b = start_with(vec![given("dataset", 'c'), given("config", 'b')]);
    let key = |r: &Run| r.cache_key(idx_of(r, "train")).unwrap().0;
    assert_ne!(key(&a), key(&b));
    assert_eq!(
        key(&a),
        key(&start_with(vec![
            given("dataset", 'a'),
            given("config", 'b')
        ]))
    );
}
