//! Conditions: branches, joins, conditions on upstream outputs.

use super::*;

const BRANCHES: &str = r#"
name: branches
params:
  model: {type: string, default: rf}
  threshold: {type: float, default: 0.8}
steps:
  - name: train
    image: busybox
    command: [echo]
    outputs: {params: {acc: float}}
  - name: rf
    image: busybox
    command: [echo, rf]
    when: '{{params.model}} == rf'
    outputs: {params: {score: float}}
  - name: svm
    image: busybox
    command: [echo, svm]
    when: '{{params.model}} == svm'
    outputs: {params: {score: float}}
  - name: report
    image: busybox
    command: [echo, report]
    dependsOn: [rf, svm]
  - name: after-svm
    image: busybox
    command: [echo]
    dependsOn: [svm]
  - name: deploy
    image: busybox
    command: [echo, deploy]
    when: '{{steps.train.outputs.params.acc}} >= {{params.threshold}} and {{steps.svm.outputs.params.score}} > 0'
"#;

#[test]
fn conditions_pick_a_branch_and_what_joins_the_branches_runs_after_the_one_taken() {
    let mut run = start(BRANCHES, &[]);
    // `train` and `rf` are ready; `svm` is skipped at once, and so is what waits only for it.
    assert_eq!(
        states(&run),
        "train=ready rf=ready svm=skipped report=pending after-svm=skipped deploy=pending"
    );
    let svm = &run.tasks[run.task_index("svm").unwrap()];
    assert_eq!(
        svm.error.as_deref(),
        Some("condition `{{params.model}} == svm` is false")
    );
    assert!(svm.condition_false);
    let after = &run.tasks[run.task_index("after-svm").unwrap()];
    assert_eq!(
        after.error.as_deref(),
        Some("every step it waits for was skipped (svm)")
    );
    ok(&mut run, "rf", &[("score", "0.9")], 10);
    // `report` waits for rf and svm: rf ran, so it runs.
    assert_eq!(
        run.tasks[run.task_index("report").unwrap()].state,
        TaskState::Ready
    );
    // `deploy`'s condition names svm's output, and svm was skipped: not met.
    ok(&mut run, "train", &[("acc", "0.95")], 20);
    let deploy = &run.tasks[run.task_index("deploy").unwrap()];
    assert_eq!(deploy.state, TaskState::Skipped);
    assert!(deploy
        .error
        .as_deref()
        .unwrap()
        .contains("names step `svm`, which was skipped"));
    ok(&mut run, "report", &[], 30);
    // Skipped branches do not fail the run.
    assert_eq!(run.state, RunState::Succeeded);
}

#[test]
fn conditions_read_upstream_outputs_and_parameters_given_at_submit() {
    let src = BRANCHES.replace(" and {{steps.svm.outputs.params.score}} > 0", "");
    let mut run = start(
        &src,
        &[
            ("model", serde_json::json!("svm")),
            ("threshold", serde_json::json!(0.9)),
        ],
    );
    assert_eq!(
        states(&run),
        "train=ready rf=skipped svm=ready report=pending after-svm=pending deploy=pending"
    );
    ok(&mut run, "train", &[("acc", "0.85")], 10);
    // 0.85 < 0.9: not deployed.
    assert_eq!(
        run.tasks[run.task_index("deploy").unwrap()].state,
        TaskState::Skipped
    );
    let mut run = start(&src, &[("model", serde_json::json!("svm"))]);
    ok(&mut run, "train", &[("acc", "0.85")], 10);
    assert_eq!(
        run.tasks[run.task_index("deploy").unwrap()].state,
        TaskState::Ready
    );
}

#[test]
fn a_failure_still_skips_what_waits_for_it_even_beside_a_condition() {
    let mut run = start(BRANCHES, &[]);
    let rf = run.task_index("rf").unwrap();
    lease_at(&mut run, rf, 0);
    fail(&mut run, rf, 10, Outcome::Failed);
    let report = &run.tasks[run.task_index("report").unwrap()];
    assert_eq!(report.state, TaskState::Skipped);
    assert_eq!(report.error.as_deref(), Some("upstream step `rf` failed"));
    assert!(!report.condition_false);
}
