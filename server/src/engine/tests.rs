//! Engine transitions, table-driven: each case is a pipeline, a script of events and the states expected.

use super::*;
use sluice_sdk::api::{ArtifactRecord, Outcome, TaskResult};
use sluice_sdk::spec;
use std::collections::BTreeMap;

const DIAMOND: &str = r#"
name: diamond
params:
  seed: {type: int, default: 5}
steps:
  - name: a
    image: busybox
    command: [echo, "{{params.seed}}"]
    outputs: {params: {x: int}, artifacts: {data: {}}}
  - name: b
    image: busybox
    params: {x: "{{steps.a.outputs.params.x}}"}
    command: [echo, "b{{inputs.params.x}}"]
    outputs: {params: {y: string}}
  - name: c
    image: busybox
    command: [cat, "{{steps.a.outputs.artifacts.data}}/f"]
    outputs: {params: {y: string}}
  - name: d
    image: busybox
    params:
      both: "{{steps.b.outputs.params.y}}+{{steps.c.outputs.params.y}}"
    command: [echo, "{{inputs.params.both}}", "{{run.name}}", "{{task.attempt}}"]
"#;

fn start(src: &str, params: &[(&str, serde_json::Value)]) -> Run {
    let p = spec::load("t.yaml", src).unwrap_or_else(|d| panic!("{}", d.render(src)));
    let given: Params = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let params = resolve_params(&p, &given).unwrap();
    Run::start("r1".into(), "my-run".into(), Arc::new(p), params, 0)
        .unwrap()
        .0
}

#[derive(Clone, Copy, Debug)]
enum Ev<'a> {
    Lease(&'a str),
    Start(&'a str),
    Ok(&'a str, &'a [(&'a str, &'a str)]),
    Fail(&'a str),
    Expire(&'a str),
    Cancel,
}

/// Applies events in order, then checks every task's state and the run's.
fn script(run: &mut Run, events: &[Ev]) {
    let mut now = 0;
    for ev in events {
        now += 10;
        let idx = |n: &str| run.task_index(n).unwrap();
        let lease =
            |run: &Run, n: &str| format!("{n}-{}", run.tasks[run.task_index(n).unwrap()].attempt);
        match *ev {
            Ev::Lease(n) => {
                let id = format!("{n}-{}", run.tasks[idx(n)].attempt + 1);
                assert!(run.lease(idx(n), id, "w1".into(), now, 1000).0, "lease {n}");
            }
            Ev::Start(n) => {
                let l = lease(run, n);
                run.started(idx(n), &l, now, 1000, None).unwrap();
            }
            Ev::Ok(n, outs) => {
                let l = lease(run, n);
                let mut outputs: BTreeMap<String, String> = outs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                let artifacts = match outputs.remove("NO_ARTIFACTS") {
                    Some(_) => vec![],
                    None => vec![ArtifactRecord {
                        name: "data".into(),
                        uri: format!("file:///a/{n}"),
                        size: 1,
                        sha256: "x".into(),
                    }],
                };
                run.finished(
                    idx(n),
                    &l,
                    TaskResult {
                        outcome: Outcome::Succeeded,
                        exit_code: Some(0),
                        error: None,
                        outputs,
                        artifacts,
                        cached_from: None,
                    },
                    now,
                )
                .unwrap();
            }
            Ev::Fail(n) => {
                let l = lease(run, n);
                run.finished(
                    idx(n),
                    &l,
                    TaskResult {
                        outcome: Outcome::Failed,
                        exit_code: Some(3),
                        error: None,
                        outputs: BTreeMap::new(),
                        artifacts: vec![],
                        cached_from: None,
                    },
                    now,
                )
                .unwrap();
            }
            Ev::Expire(n) => {
                run.lease_expired(idx(n), now);
            }
            Ev::Cancel => {
                run.cancel(now);
            }
        }
    }
}

fn states(run: &Run) -> String {
    run.tasks
        .iter()
        .zip(&run.plan.tasks)
        .map(|(t, p)| format!("{}={}", p.name, t.state))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn transitions_table() {
    use Ev::*;
    let cases: &[(&str, &[Ev], &str, RunState)] = &[
        (
            "fresh",
            &[],
            "a=ready b=pending c=pending d=pending",
            RunState::Running,
        ),
        (
            "leased then running",
            &[Lease("a"), Start("a")],
            "a=running b=pending c=pending d=pending",
            RunState::Running,
        ),
        (
            "a done readies b and c",
            &[Lease("a"), Ok("a", &[("x", "7\n")])],
            "a=succeeded b=ready c=ready d=pending",
            RunState::Running,
        ),
        (
            "all succeed",
            &[
                Lease("a"),
                Ok("a", &[("x", "7")]),
                Lease("b"),
                Lease("c"),
                Ok("c", &[("y", "C")]),
                Ok("b", &[("y", "B")]),
                Lease("d"),
                Ok("d", &[]),
            ],
            "a=succeeded b=succeeded c=succeeded d=succeeded",
            RunState::Succeeded,
        ),
        (
            "failure skips dependents",
            &[Lease("a"), Fail("a")],
            "a=failed b=skipped c=skipped d=skipped",
            RunState::Failed,
        ),
        (
            "one branch fails, the other finishes",
            &[
                Lease("a"),
                Ok("a", &[("x", "1")]),
                Lease("b"),
                Lease("c"),
                Fail("b"),
            ],
            "a=succeeded b=failed c=leased d=skipped",
            RunState::Running,
        ),
        (
            "missing output fails the task",
            &[Lease("a"), Ok("a", &[])],
            "a=failed b=skipped c=skipped d=skipped",
            RunState::Failed,
        ),
        (
            "missing artifact fails the task",
            &[Lease("a"), Ok("a", &[("x", "1"), ("NO_ARTIFACTS", "")])],
            "a=failed b=skipped c=skipped d=skipped",
            RunState::Failed,
        ),
        (
            "ill-typed output fails the task",
            &[Lease("a"), Ok("a", &[("x", "seven")])],
            "a=failed b=skipped c=skipped d=skipped",
            RunState::Failed,
        ),
        (
            "expired lease makes the task ready again",
            &[Lease("a"), Start("a"), Expire("a")],
            "a=ready b=pending c=pending d=pending",
            RunState::Running,
        ),
        (
            "second attempt can finish",
            &[Lease("a"), Expire("a"), Lease("a"), Ok("a", &[("x", "1")])],
            "a=succeeded b=ready c=ready d=pending",
            RunState::Running,
        ),
        (
            "cancel before anything runs",
            &[Cancel],
            "a=cancelled b=cancelled c=cancelled d=cancelled",
            RunState::Cancelled,
        ),
        (
            "cancel while running waits for the worker",
            &[Lease("a"), Start("a"), Cancel],
            "a=running b=cancelled c=cancelled d=cancelled",
            RunState::Cancelling,
        ),
        (
            "cancelled task whose worker vanished",
            &[Lease("a"), Cancel, Expire("a")],
            "a=cancelled b=cancelled c=cancelled d=cancelled",
            RunState::Cancelled,
        ),
    ];
    for (name, events, want, want_run) in cases {
        let mut run = start(DIAMOND, &[]);
        script(&mut run, events);
        assert_eq!(states(&run), *want, "case `{name}`");
        assert_eq!(run.state, *want_run, "case `{name}`");
    }
}

#[test]
fn parameters_and_artifacts_resolve_downstream() {
    use Ev::*;
    let mut run = start(DIAMOND, &[("seed", serde_json::json!(9))]);
    assert_eq!(
        run.tasks[0].spec.as_ref().unwrap().command,
        Some(vec!["echo".into(), "9".into()])
    );
    script(
        &mut run,
        &[Lease("a"), Ok("a", &[("x", "7")]), Lease("b"), Lease("c")],
    );
    let b = run.tasks[1].spec.as_ref().unwrap();
    assert_eq!(b.command, Some(vec!["echo".into(), "b7".into()]));
    assert_eq!(run.tasks[1].inputs["x"], serde_json::json!(7));
    let c = run.tasks[2].spec.as_ref().unwrap();
    assert_eq!(
        c.command,
        Some(vec![
            "cat".into(),
            "/sluice/inputs/artifacts/a.data/f".into()
        ])
    );
    assert_eq!(c.input_artifacts[0].uri, "file:///a/a");
    assert_eq!(c.input_artifacts[0].path, "/sluice/inputs/artifacts/a.data");
    script(&mut run, &[Ok("b", &[("y", "B")]), Ok("c", &[("y", "C")])]);
    let d = run.tasks[3].spec.as_ref().unwrap();
    assert_eq!(
        d.command,
        Some(vec![
            "echo".into(),
            "B+C".into(),
            "my-run".into(),
            "1".into()
        ])
    );
}

#[test]
fn stale_leases_are_refused() {
    let mut run = start(DIAMOND, &[]);
    assert!(run.lease(0, "L1".into(), "w1".into(), 0, 100).0);
    assert!(
        !run.lease(0, "L2".into(), "w2".into(), 0, 100).0,
        "a leased task cannot be leased twice"
    );
    run.lease_expired(0, 200);
    assert!(run.lease(0, "L2".into(), "w2".into(), 200, 100).0);
    let ok = TaskResult {
        outcome: Outcome::Succeeded,
        exit_code: Some(0),
        error: None,
        outputs: [("x".to_string(), "1".to_string())].into(),
        artifacts: vec![],
        cached_from: None,
    };
    assert_eq!(
        run.finished(0, "L1", ok.clone(), 210),
        Err(Refused::LeaseLost),
        "the first worker's late result is refused"
    );
    assert_eq!(run.heartbeat(0, "L1", 210, 100), Err(Refused::LeaseLost));
    assert!(run.finished(0, "L2", ok, 220).is_ok());
    assert_eq!(run.tasks[0].attempt, 2);
}

#[test]
fn a_retaken_task_is_resolved_for_its_new_attempt() {
    let src =
        "name: x\nsteps:\n  - name: a\n    image: b\n    command: [echo, '{{task.attempt}}']\n";
    let mut run = start(src, &[]);
    assert_eq!(command_of(&run, 0)[1], "1");
    run.lease(0, "L1".into(), "w1".into(), 0, 100);
    run.lease_expired(0, 200);
    assert_eq!(run.tasks[0].state, TaskState::Ready);
    assert_eq!(command_of(&run, 0)[1], "2");
    assert!(run.tasks[0]
        .error
        .as_deref()
        .unwrap()
        .contains("attempt 1 lost"));
}

#[test]
fn heartbeats_push_expiry_out() {
    let mut run = start(DIAMOND, &[]);
    run.lease(0, "L".into(), "w".into(), 0, 100);
    assert_eq!(run.expired_leases(100), vec![0]);
    run.heartbeat(0, "L", 90, 100).unwrap();
    assert!(run.expired_leases(150).is_empty());
    assert_eq!(run.expired_leases(190), vec![0]);
}

#[test]
fn parameter_values_are_checked() {
    let p = spec::load("t.yaml", DIAMOND).unwrap();
    let bad: Params = [
        ("seed".to_string(), serde_json::json!("many")),
        ("nope".to_string(), serde_json::json!(1)),
    ]
    .into();
    let errs = resolve_params(&p, &bad).unwrap_err();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs.iter().any(|e| e.contains("unknown parameter `nope`")));
    assert!(errs.iter().any(|e| e.contains("parameter `seed` is int")));
    let src = "name: x\nparams:\n  need: {type: string}\nsteps:\n  - name: a\n    image: b\n";
    let p = spec::load("t.yaml", src).unwrap();
    assert!(resolve_params(&p, &Params::new()).unwrap_err()[0]
        .contains("`need` (string) has no default"));
}

#[test]
fn a_large_fan_out_plans_linearly() {
    let mut src = String::from("name: wide\nsteps:\n  - name: root\n    image: b\n");
    for i in 0..2000 {
        src.push_str(&format!(
            "  - name: t{i}\n    image: b\n    dependsOn: [root]\n"
        ));
    }
    let run = start(&src, &[]);
    assert_eq!(run.tasks.len(), 2001);
    assert_eq!(run.plan.tasks[0].dependents.len(), 2000);
}

fn command_of(run: &Run, i: usize) -> &[String] {
    run.tasks[i]
        .spec
        .as_ref()
        .and_then(|s| s.command.as_deref())
        .unwrap_or_default()
}

const FLAKY: &str = r#"
name: flaky
steps:
  - name: a
    image: busybox
    command: [echo, "attempt {{task.attempt}}"]
    retry: {limit: 2, backoff: {initial: 1s, factor: 3, max: 2s}}
    timeout: 90s
  - name: b
    image: busybox
    command: [echo, b]
    dependsOn: [a]
"#;

fn fail(run: &mut Run, i: usize, now: i64, outcome: Outcome) -> Vec<Effect> {
    let lease = format!("l{}", run.tasks[i].attempt);
    run.finished(
        i,
        &lease,
        TaskResult {
            outcome,
            exit_code: Some(1),
            error: Some("boom".into()),
            outputs: BTreeMap::new(),
            artifacts: vec![],
            cached_from: None,
        },
        now,
    )
    .unwrap()
}

fn lease_at(run: &mut Run, i: usize, now: i64) {
    let id = format!("l{}", run.tasks[i].attempt + 1);
    assert!(run.lease(i, id, "w".into(), now, 1000).0);
}

#[test]
fn failed_attempts_are_retried_with_growing_capped_backoff_until_the_limit() {
    let mut run = start(FLAKY, &[]);
    assert_eq!(run.tasks[0].spec.as_ref().unwrap().timeout_ms, Some(90_000));
    // Attempt 1 fails at t=100: retried after 1s, as a pending task, dependents untouched.
    lease_at(&mut run, 0, 0);
    fail(&mut run, 0, 100, Outcome::Failed);
    assert_eq!(run.tasks[0].state, TaskState::Pending);
    assert_eq!(run.tasks[0].retry_at, Some(1100));
    assert_eq!(
        run.tasks[0].error.as_deref(),
        Some("attempt 1 failed: boom; retrying in 1s")
    );
    assert_eq!(run.tasks[1].state, TaskState::Pending);
    assert_eq!(run.state, RunState::Running);
    assert!(run.due_retries(1099).is_empty());
    assert_eq!(run.due_retries(1100), [0]);
    run.retry_due(0, 1100);
    assert_eq!(run.tasks[0].state, TaskState::Ready);
    // Resolved afresh: the placeholder sees the new attempt.
    assert_eq!(
        run.tasks[0]
            .spec
            .as_ref()
            .unwrap()
            .command
            .as_ref()
            .unwrap()[1],
        "attempt 2"
    );
    // Attempt 2 fails: 1s × 3 = 3s, capped at 2s.
    lease_at(&mut run, 0, 1200);
    fail(&mut run, 0, 1300, Outcome::Failed);
    assert_eq!(run.tasks[0].retry_at, Some(3300));
    run.retry_due(0, 3300);
    // Attempt 3 is the last (limit 2): its failure ends the task and skips its dependent.
    lease_at(&mut run, 0, 3400);
    fail(&mut run, 0, 3500, Outcome::Failed);
    assert_eq!(run.tasks[0].state, TaskState::Failed);
    assert_eq!(run.tasks[1].state, TaskState::Skipped);
    assert_eq!(run.state, RunState::Failed);
    let history: Vec<(u32, TaskState)> = run.tasks[0]
        .attempts
        .iter()
        .map(|a| (a.attempt, a.state))
        .collect();
    assert_eq!(
        history,
        [
            (1, TaskState::Failed),
            (2, TaskState::Failed),
            (3, TaskState::Failed)
        ]
    );
}

#[test]
fn a_retry_that_succeeds_lets_the_run_go_on() {
    let mut run = start(FLAKY, &[]);
    lease_at(&mut run, 0, 0);
    fail(&mut run, 0, 10, Outcome::Failed);
    run.retry_due(0, 1010);
    lease_at(&mut run, 0, 1020);
    fail(&mut run, 0, 1030, Outcome::Succeeded);
    assert_eq!(run.tasks[0].state, TaskState::Succeeded);
    assert_eq!(run.tasks[0].error, None);
    assert_eq!(run.tasks[1].state, TaskState::Ready);
    assert_eq!(run.tasks[0].attempts.len(), 2);
}

#[test]
fn cancelled_attempts_are_never_retried_and_cancel_stops_a_waiting_retry() {
    let mut run = start(FLAKY, &[]);
    lease_at(&mut run, 0, 0);
    fail(&mut run, 0, 10, Outcome::Cancelled);
    assert_eq!(run.tasks[0].state, TaskState::Cancelled);

    let mut run = start(FLAKY, &[]);
    lease_at(&mut run, 0, 0);
    fail(&mut run, 0, 10, Outcome::Failed);
    assert_eq!(run.tasks[0].state, TaskState::Pending);
    run.cancel(20);
    assert_eq!(run.tasks[0].state, TaskState::Cancelled);
    assert_eq!(run.tasks[0].retry_at, None);
    assert!(run.due_retries(10_000).is_empty());
    assert_eq!(run.state, RunState::Cancelled);
    // A retry that comes due after the cancel does nothing.
    assert!(run.retry_due(0, 10_000).is_empty());
}

#[test]
fn steps_without_retry_fail_at_once() {
    let mut run = start(DIAMOND, &[]);
    lease_at(&mut run, 0, 0);
    fail(&mut run, 0, 10, Outcome::Failed);
    assert_eq!(run.tasks[0].state, TaskState::Failed);
    assert_eq!(run.tasks[0].spec.as_ref().unwrap().timeout_ms, None);
}

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

fn ok(run: &mut Run, name: &str, outputs: &[(&str, &str)], now: i64) {
    let i = run.task_index(name).unwrap();
    lease_at(run, i, now);
    let lease = format!("l{}", run.tasks[i].attempt);
    run.finished(
        i,
        &lease,
        TaskResult {
            outcome: Outcome::Succeeded,
            exit_code: Some(0),
            error: None,
            outputs: outputs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            artifacts: vec![],
            cached_from: None,
        },
        now,
    )
    .unwrap();
}

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

const WITH_EXIT: &str = r#"
name: with-exit
steps:
  - name: train
    image: busybox
    command: [echo]
  - name: eval
    image: busybox
    command: [echo]
    dependsOn: [train]
onExit:
  - name: notify
    image: busybox
    command: [echo, "run {{run.status}}"]
  - name: cleanup
    image: busybox
    command: [echo, cleanup]
    dependsOn: [notify]
"#;

fn command(run: &Run, name: &str) -> Vec<String> {
    let t = &run.tasks[run.plan.tasks.iter().position(|p| p.name == name).unwrap()];
    t.spec.as_ref().unwrap().command.clone().unwrap()
}

fn idx_of(run: &Run, name: &str) -> usize {
    run.plan.tasks.iter().position(|p| p.name == name).unwrap()
}

#[test]
fn exit_handlers_run_after_everything_else_whatever_the_outcome() {
    // Success: the handlers wait for every step, then run in their own order.
    let mut run = start(WITH_EXIT, &[]);
    assert_eq!(
        states(&run),
        "train=ready eval=pending notify=pending cleanup=pending"
    );
    ok(&mut run, "train", &[], 10);
    ok(&mut run, "eval", &[], 20);
    assert_eq!(
        states(&run),
        "train=succeeded eval=succeeded notify=ready cleanup=pending"
    );
    assert_eq!(command(&run, "notify"), ["echo", "run succeeded"]);
    assert_eq!(run.state, RunState::Running);
    let n = idx_of(&run, "notify");
    lease_at(&mut run, n, 30);
    fail(&mut run, n, 40, Outcome::Succeeded);
    ok(&mut run, "cleanup", &[], 50);
    assert_eq!(run.state, RunState::Succeeded);

    // Failure: the failed step's dependents are skipped, the handlers still run and see `failed`.
    let mut run = start(WITH_EXIT, &[]);
    let t = idx_of(&run, "train");
    lease_at(&mut run, t, 0);
    fail(&mut run, t, 10, Outcome::Failed);
    assert_eq!(
        states(&run),
        "train=failed eval=skipped notify=ready cleanup=pending"
    );
    assert_eq!(command(&run, "notify"), ["echo", "run failed"]);
    assert_eq!(run.state, RunState::Running);
}

#[test]
fn exit_handlers_run_after_a_cancel_and_the_run_ends_cancelled() {
    let mut run = start(WITH_EXIT, &[]);
    let t = idx_of(&run, "train");
    lease_at(&mut run, t, 0);
    run.cancel(10);
    // The running step is asked to stop; handlers wait for it to end.
    assert_eq!(
        states(&run),
        "train=leased eval=cancelled notify=pending cleanup=pending"
    );
    fail(&mut run, t, 20, Outcome::Cancelled);
    assert_eq!(
        states(&run),
        "train=cancelled eval=cancelled notify=ready cleanup=pending"
    );
    assert_eq!(command(&run, "notify"), ["echo", "run cancelled"]);
    assert_eq!(run.state, RunState::Cancelling);
    ok(&mut run, "notify", &[], 30);
    ok(&mut run, "cleanup", &[], 40);
    assert_eq!(run.state, RunState::Cancelled);
}

#[test]
fn a_run_past_its_timeout_is_stopped_and_fails_and_its_exit_handlers_run() {
    let src = WITH_EXIT.replace("name: with-exit\n", "name: with-exit\ntimeout: 1m\n");
    let mut run = start(&src, &[]);
    let t = idx_of(&run, "train");
    lease_at(&mut run, t, 0);
    assert!(!run.deadline_passed(59_999));
    assert!(run.deadline_passed(60_000));
    run.time_out(60_000);
    assert!(run.cancel_requested(t));
    assert_eq!(run.state, RunState::Cancelling);
    fail(&mut run, t, 60_010, Outcome::Cancelled);
    assert_eq!(command(&run, "notify"), ["echo", "run cancelled"]);
    ok(&mut run, "notify", &[], 60_020);
    ok(&mut run, "cleanup", &[], 60_030);
    assert_eq!(run.state, RunState::Failed);
    assert_eq!(run.error.as_deref(), Some("the run timed out after 1m"));
    assert!(!run.deadline_passed(70_000));
}

#[test]
fn cache_keys_cover_what_decides_a_result_and_nothing_else() {
    let key = |src: &str, params: &[(&str, serde_json::Value)]| {
        let run = start(src, params);
        run.cache_key(0).map(|(k, _)| k)
    };
    let a = key(DIAMOND, &[]);
    assert!(a.is_some());
    // Same inputs, another run: the same key.
    assert_eq!(key(DIAMOND, &[]), a);
    // Another parameter value: another key.
    assert_ne!(key(DIAMOND, &[("seed", serde_json::json!(6))]), a);
    // Another image reference: another key.
    assert_ne!(
        key(
            &DIAMOND.replacen("image: busybox", "image: busybox:2", 1),
            &[]
        ),
        a
    );
    // Opting out, or reading volumes or the host's network: no key.
    let off = DIAMOND.replacen(
        "    image: busybox\n",
        "    image: busybox\n    cache: false\n",
        1,
    );
    assert_eq!(key(&off, &[]), None);
    let vol = DIAMOND.replacen(
        "    image: busybox\n",
        "    image: busybox\n    volumes: [{name: data, path: /data}]\n",
        1,
    );
    assert_eq!(key(&vol, &[]), None);
    let aged = DIAMOND.replacen(
        "    image: busybox\n",
        "    image: busybox\n    cache: {maxAge: 1h}\n",
        1,
    );
    assert_eq!(start(&aged, &[]).cache_key(0).unwrap().1, Some(3600));
}

#[test]
fn input_artifacts_enter_the_key_by_content() {
    let mut one = start(DIAMOND, &[]);
    let mut two = start(DIAMOND, &[]);
    let a = one.task_index("a").unwrap();
    for (run, sha) in [(&mut one, "aaa"), (&mut two, "bbb")] {
        lease_at(run, a, 0);
        let lease = format!("l{}", run.tasks[a].attempt);
        run.finished(
            a,
            &lease,
            TaskResult {
                outcome: Outcome::Succeeded,
                exit_code: Some(0),
                error: None,
                outputs: [("x".to_string(), "1".to_string())].into(),
                artifacts: vec![ArtifactRecord {
                    name: "data".into(),
                    uri: "file:///a/data".into(),
                    size: 1,
                    sha256: sha.into(),
                }],
                cached_from: None,
            },
            10,
        )
        .unwrap();
    }
    let c = one.task_index("c").unwrap();
    assert_ne!(one.cache_key(c), two.cache_key(c));
    // `b` reads only a's parameter, the same in both: the same key.
    let b = one.task_index("b").unwrap();
    assert_eq!(one.cache_key(b), two.cache_key(b));
}

const SWEEP: &str = r#"
name: sweep
params:
  rates: {type: list, default: [0.1, 0.01, 0.001]}
steps:
  - name: prep
    image: busybox
    command: [echo]
  - name: train
    image: busybox
    forEach: '{{params.rates}}'
    parallelism: 2
    params: {lr: "{{item}}"}
    inputs: {params: {lr: {type: float}}}
    command: [echo, "lr={{inputs.params.lr}}"]
    outputs: {params: {acc: float}}
    dependsOn: [prep]
  - name: best
    image: busybox
    command: [echo, "{{steps.train.outputs.params.acc}}"]
  - name: grid
    image: busybox
    forEach: [{depth: 2}, {depth: 4}]
    command: [echo, "depth={{item.depth}}"]
"#;

#[test]
fn a_loop_fans_out_per_item_within_its_parallelism_and_gathers_outputs_in_item_order() {
    let mut run = start(SWEEP, &[]);
    assert_eq!(
        states(&run),
        "prep=ready train=pending best=pending grid=pending train[0]=pending train[1]=pending \
         train[2]=pending grid[0]=ready grid[1]=ready"
    );
    assert_eq!(command(&run, "grid[1]"), ["echo", "depth=4"]);
    ok(&mut run, "prep", &[], 10);
    // Two at a time.
    assert_eq!(run.tasks[idx_of(&run, "train[0]")].state, TaskState::Ready);
    assert_eq!(run.tasks[idx_of(&run, "train[1]")].state, TaskState::Ready);
    assert_eq!(
        run.tasks[idx_of(&run, "train[2]")].state,
        TaskState::Pending
    );
    assert_eq!(command(&run, "train[1]"), ["echo", "lr=0.01"]);
    ok(&mut run, "train[1]", &[("acc", "0.9")], 20);
    assert_eq!(run.tasks[idx_of(&run, "train[2]")].state, TaskState::Ready);
    ok(&mut run, "train[2]", &[("acc", "0.7")], 30);
    assert_eq!(run.tasks[idx_of(&run, "train")].state, TaskState::Pending);
    ok(&mut run, "train[0]", &[("acc", "0.8")], 40);
    // All done: the loop succeeds with its outputs gathered, and what follows it sees the list.
    let train = &run.tasks[idx_of(&run, "train")];
    assert_eq!(train.state, TaskState::Succeeded);
    assert_eq!(
        train.outputs.params["acc"],
        serde_json::json!([0.8, 0.9, 0.7])
    );
    assert_eq!(command(&run, "best"), ["echo", "[0.8,0.9,0.7]"]);
}

#[test]
fn a_failed_iteration_fails_its_loop_and_an_empty_loop_succeeds_at_once() {
    let mut run = start(SWEEP, &[]);
    ok(&mut run, "prep", &[], 10);
    let t0 = idx_of(&run, "train[0]");
    lease_at(&mut run, t0, 20);
    fail(&mut run, t0, 30, Outcome::Failed);
    let train = &run.tasks[idx_of(&run, "train")];
    assert_eq!(train.state, TaskState::Failed);
    assert_eq!(train.error.as_deref(), Some("iteration `train[0]` failed"));
    // The one held back by parallelism never starts; `best` is skipped.
    assert_eq!(
        run.tasks[idx_of(&run, "train[2]")].state,
        TaskState::Skipped
    );
    assert_eq!(run.tasks[idx_of(&run, "best")].state, TaskState::Skipped);

    let mut run = start(SWEEP, &[("rates", serde_json::json!([]))]);
    ok(&mut run, "prep", &[], 10);
    let train = &run.tasks[idx_of(&run, "train")];
    assert_eq!(train.state, TaskState::Succeeded);
    assert_eq!(train.outputs.params["acc"], serde_json::json!([]));
    assert_eq!(run.tasks[idx_of(&run, "best")].state, TaskState::Ready);
}

const SHARDS: &str = r#"
name: shards
steps:
  - name: split
    image: busybox
    command: [echo]
    outputs: {params: {shards: list}}
  - name: work
    image: busybox
    forEach: '{{steps.split.outputs.params.shards}}'
    command: [echo, "shard {{item}}"]
    outputs: {params: {n: int}}
  - name: total
    image: busybox
    command: [echo, "{{steps.work.outputs.params.n}}"]
"#;

#[test]
fn a_loop_over_an_upstream_output_expands_when_the_output_is_known_and_survives_a_restore() {
    let mut run = start(SHARDS, &[]);
    assert_eq!(states(&run), "split=ready work=pending total=pending");
    ok(&mut run, "split", &[("shards", r#"["a", "b"]"#)], 10);
    assert_eq!(
        states(&run),
        "split=succeeded work=pending total=pending work[0]=ready work[1]=ready"
    );
    assert_eq!(command(&run, "work[1]"), ["echo", "shard b"]);
    ok(&mut run, "work[0]", &[("n", "3")], 20);

    // A restarted server plans the same tasks again from what was stored.
    let restored = Run::restore(Restored {
        id: run.id.clone(),
        name: run.name.clone(),
        pipeline: run.pipeline.clone(),
        params: run.params.clone(),
        state: run.state,
        error: run.error.clone(),
        created_at: run.created_at,
        finished_at: run.finished_at,
        tasks: run.tasks.clone(),
        names: run.plan.tasks.iter().map(|t| t.name.clone()).collect(),
        cache: true,
    })
    .unwrap();
    assert_eq!(restored.plan, run.plan);
    assert_eq!(restored.tasks, run.tasks);

    let mut run = restored;
    ok(&mut run, "work[1]", &[("n", "4")], 30);
    assert_eq!(
        run.tasks[idx_of(&run, "work")].outputs.params["n"],
        serde_json::json!([3, 4])
    );
    assert_eq!(command(&run, "total"), ["echo", "[3,4]"]);

    // An empty list: the loop succeeds at once, with nothing gathered.
    let mut run = start(SHARDS, &[]);
    let s = idx_of(&run, "split");
    lease_at(&mut run, s, 0);
    let lease = format!("l{}", run.tasks[s].attempt);
    let empty = TaskResult {
        outcome: Outcome::Succeeded,
        exit_code: Some(0),
        error: None,
        outputs: [("shards".to_string(), "[]".to_string())].into(),
        artifacts: vec![],
        cached_from: None,
    };
    run.finished(s, &lease, empty, 10).unwrap();
    assert_eq!(run.tasks[idx_of(&run, "work")].state, TaskState::Succeeded);
    assert_eq!(run.tasks[idx_of(&run, "total")].state, TaskState::Ready);
}

#[test]
fn a_grid_loop_runs_every_combination_as_nested_loops_would() {
    let src = "name: grid\nsteps:\n  - name: fit\n    image: busybox\n    forEach: {lr: [0.1, 0.01], depth: [2, 4, 8]}\n    command: [echo, '{{item.lr}} {{item.depth}}']\n";
    let run = start(src, &[]);
    let cmds: Vec<String> = (0..6)
        .map(|k| command(&run, &format!("fit[{k}]"))[1].clone())
        .collect();
    // serde_json keeps object keys sorted: `depth` varies slowest.
    assert_eq!(
        cmds,
        ["0.1 2", "0.01 2", "0.1 4", "0.01 4", "0.1 8", "0.01 8"]
    );
}
