//! Engine transitions, table-driven: each case is a pipeline, a script of events and the states expected.

use super::*;
use crate::task::{ArtifactRecord, TaskResult};
use sluice_spec as spec;
use sluice_spec::ids::LeaseId;
use sluice_spec::state::{EndReason, Outcome};
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
    Run::start(
        "r1".into(),
        "my-run".into(),
        Arc::new(p),
        params,
        Vec::new(),
        Default::default(),
        0,
    )
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
        let lease = |run: &Run, n: &str| {
            LeaseId::new(format!(
                "{n}-{}",
                run.tasks[run.task_index(n).unwrap()].attempt
            ))
        };
        match *ev {
            Ev::Lease(n) => {
                let id = LeaseId::new(format!("{n}-{}", run.tasks[idx(n)].attempt + 1));
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
                        digest: "blake3:x".into(),
                        metadata: None,
                        kind: None,
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
        run.finished(0, &"L1".into(), ok.clone(), 210),
        Err(Refused::LeaseLost),
        "the first worker's late result is refused"
    );
    assert_eq!(
        run.heartbeat(0, &"L1".into(), 210, 100),
        Err(Refused::LeaseLost)
    );
    assert!(run.finished(0, &"L2".into(), ok, 220).is_ok());
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
    assert_eq!(run.expired_leases(100, 0), vec![0]);
    run.heartbeat(0, &"L".into(), 90, 100).unwrap();
    assert!(run.expired_leases(150, 0).is_empty());
    assert_eq!(run.expired_leases(190, 0), vec![0]);
}

#[test]
fn a_lapsed_lease_is_taken_back_only_after_the_kill_grace() {
    let mut run = start(DIAMOND, &[]);
    run.lease(0, "L".into(), "w".into(), 0, 100);
    // Lapsed at 100; its worker stops the task by itself then, and has 50 more to have done it.
    assert!(run.expired_leases(100, 50).is_empty());
    assert!(run.expired_leases(149, 50).is_empty());
    assert_eq!(run.expired_leases(150, 50), vec![0]);
    // Within the grace the lease still stands: a late heartbeat renews it (nothing else holds it).
    run.heartbeat(0, &"L".into(), 120, 100).unwrap();
    assert!(run.expired_leases(200, 50).is_empty());
    assert_eq!(run.expired_leases(270, 50), vec![0]);
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

fn fail(run: &mut Run, i: usize, now: i64, outcome: Outcome) -> Vec<Effect> {
    let lease = LeaseId::new(format!("l{}", run.tasks[i].attempt));
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
    let id = LeaseId::new(format!("l{}", run.tasks[i].attempt + 1));
    assert!(run.lease(i, id, "w".into(), now, 1000).0);
}

fn ok(run: &mut Run, name: &str, outputs: &[(&str, &str)], now: i64) {
    ok_with(run, name, outputs, None, now)
}

/// Task `name` is leased and succeeds with these outputs and, if named, one artifact.
fn ok_with(run: &mut Run, name: &str, outputs: &[(&str, &str)], artifact: Option<&str>, now: i64) {
    let i = run.task_index(name).unwrap();
    lease_at(run, i, now);
    let lease = LeaseId::new(format!("l{}", run.tasks[i].attempt));
    let artifacts = artifact
        .map(|a| ArtifactRecord {
            name: a.into(),
            uri: format!("file:///a/{name}/{a}"),
            size: 1,
            digest: "blake3:x".into(),
            metadata: None,
            kind: None,
        })
        .into_iter()
        .collect();
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
            artifacts,
            cached_from: None,
        },
        now,
    )
    .unwrap();
}

/// The run as a restarted server rebuilds it from what was stored; it must be the same.
fn restored(run: &Run) -> Run {
    let r = Run::restore(Restored {
        id: run.id.clone(),
        name: run.name.clone(),
        pipeline: run.pipeline.clone(),
        params: run.params.clone(),
        inputs: run.inputs.clone(),
        state: run.state,
        error: run.error.clone(),
        end_reason: run.end_reason,
        created_at: run.created_at,
        finished_at: run.finished_at,
        tasks: run.tasks.clone(),
        names: run.plan.tasks.iter().map(|t| t.name.clone()).collect(),
        cache: true,
        limits: run.limits,
    })
    .unwrap();
    assert_eq!(r.plan, run.plan);
    assert_eq!(r.tasks, run.tasks);
    assert_eq!(r.end_reason, run.end_reason);
    r
}

fn command(run: &Run, name: &str) -> Vec<String> {
    command_of(run, idx_of(run, name)).to_vec()
}

fn idx_of(run: &Run, name: &str) -> usize {
    run.plan.tasks.iter().position(|p| p.name == name).unwrap()
}

mod caching;
mod conditions;
mod daemons;
mod exit_handlers;
mod groups;
mod inputs;
mod limits;
mod loops;
mod retries;
