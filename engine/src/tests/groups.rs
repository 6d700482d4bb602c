//! Groups: a sub-graph under one condition, loop or exit handler; nested loops; fan-in of a
//! group's outputs; restores of groups expanded at run time.

use super::*;

/// A sweep of groups: each config is prepared, trained and evaluated in its own copy of the
/// group, two copies at a time; `pick` reads every copy's accuracy and model.
const TUNE: &str = r#"
name: tune
params:
  configs: {type: list, default: [{lr: 0.1, seeds: [1, 2]}, {lr: 0.01, seeds: [3]}, {lr: 0.5, seeds: [4]}]}
steps:
  - name: data
    image: busybox
    command: [echo]
    outputs: {params: {rows: int}}
  - name: tune
    forEach: '{{params.configs}}'
    parallelism: 2
    steps:
      - name: train
        image: busybox
        forEach: '{{item.seeds}}'
        command: [echo, "lr={{loops.tune.item.lr}} seed={{item}} rows={{steps.data.outputs.params.rows}}"]
        outputs: {params: {loss: float}, artifacts: {model: {}}}
      - name: evaluate
        image: busybox
        command: [echo, "{{steps.train.outputs.params.loss}}", "{{item.lr}}"]
        outputs: {params: {acc: float}}
    outputs:
      params: {acc: "{{steps.evaluate.outputs.params.acc}}"}
      artifacts: {model: "{{steps.train.outputs.artifacts.model}}"}
  - name: pick
    image: busybox
    command: [echo, "{{steps.tune.outputs.params.acc}}"]
    artifacts: {models: "{{steps.tune.outputs.artifacts.model}}"}
"#;

fn state(run: &Run, name: &str) -> TaskState {
    run.tasks[idx_of(run, name)].state
}

#[test]
fn a_loop_over_a_group_runs_a_copy_of_its_steps_per_item_and_gathers_the_groups_outputs() {
    let mut run = start(TUNE, &[]);
    // One copy of the group per config, each with its own inner loop over that config's seeds.
    let names: Vec<&str> = run.plan.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "data",
            "tune",
            "pick",
            "tune[0]",
            "tune[0].train",
            "tune[0].evaluate",
            "tune[1]",
            "tune[1].train",
            "tune[1].evaluate",
            "tune[2]",
            "tune[2].train",
            "tune[2].evaluate",
            "tune[0].train[0]",
            "tune[0].train[1]",
            "tune[1].train[0]",
            "tune[2].train[0]"
        ]
    );
    assert_eq!(state(&run, "tune[0]"), TaskState::Pending);
    ok(&mut run, "data", &[("rows", "150")], 10);
    // Two copies run at a time; the third waits.
    assert_eq!(state(&run, "tune[0]"), TaskState::Running);
    assert_eq!(state(&run, "tune[1]"), TaskState::Running);
    assert_eq!(state(&run, "tune[2]"), TaskState::Pending);
    assert_eq!(state(&run, "tune[2].train[0]"), TaskState::Pending);
    // The inner loop reads both items; the step after it reads its copy's outputs.
    assert_eq!(
        command(&run, "tune[0].train[1]"),
        ["echo", "lr=0.1 seed=2 rows=150"]
    );
    ok_with(
        &mut run,
        "tune[0].train[0]",
        &[("loss", "0.5")],
        Some("model"),
        20,
    );
    ok_with(
        &mut run,
        "tune[0].train[1]",
        &[("loss", "0.4")],
        Some("model"),
        30,
    );
    assert_eq!(
        command(&run, "tune[0].evaluate"),
        ["echo", "[0.5,0.4]", "0.1"]
    );
    ok_with(
        &mut run,
        "tune[1].train[0]",
        &[("loss", "0.3")],
        Some("model"),
        40,
    );
    ok(&mut run, "tune[1].evaluate", &[("acc", "0.93")], 50);
    // A copy ended: the third starts.
    assert_eq!(state(&run, "tune[1]"), TaskState::Succeeded);
    assert_eq!(state(&run, "tune[2]"), TaskState::Running);
    assert_eq!(
        state(&run, "tune[2].train[0]"),
        TaskState::Ready,
        "{}",
        states(&run)
    );
    ok(&mut run, "tune[0].evaluate", &[("acc", "0.91")], 60);
    ok_with(
        &mut run,
        "tune[2].train[0]",
        &[("loss", "0.9")],
        Some("model"),
        70,
    );
    assert_eq!(state(&run, "tune"), TaskState::Pending);
    ok(&mut run, "tune[2].evaluate", &[("acc", "0.42")], 80);
    // Fan-in: the group's outputs in item order, its artifacts one directory per copy.
    let tune = &run.tasks[idx_of(&run, "tune")];
    assert_eq!(tune.state, TaskState::Succeeded);
    assert_eq!(
        tune.outputs.params["acc"],
        serde_json::json!([0.91, 0.93, 0.42])
    );
    assert_eq!(command(&run, "pick"), ["echo", "[0.91,0.93,0.42]"]);
    let pick = run.tasks[idx_of(&run, "pick")].spec.clone().unwrap();
    let mounted: Vec<(&str, &str)> = pick
        .input_artifacts
        .iter()
        .map(|a| (a.name.as_str(), a.uri.as_str()))
        .collect();
    assert_eq!(
        mounted,
        [
            ("models/0/0", "file:///a/tune[0].train[0]/model"),
            ("models/0/1", "file:///a/tune[0].train[1]/model"),
            ("models/1/0", "file:///a/tune[1].train[0]/model"),
            ("models/2/0", "file:///a/tune[2].train[0]/model"),
        ]
    );
}

#[test]
fn a_failure_in_one_copy_fails_the_loop_and_copies_not_started_never_start() {
    let mut run = start(TUNE, &[]);
    ok(&mut run, "data", &[("rows", "1")], 10);
    let t = idx_of(&run, "tune[1].train[0]");
    lease_at(&mut run, t, 20);
    fail(&mut run, t, 30, Outcome::Failed);
    // Its copy ends failed once nothing in it runs; the loop fails; the copy held back by
    // `parallelism` is skipped with everything in it; the first copy keeps running.
    assert_eq!(state(&run, "tune[1].evaluate"), TaskState::Skipped);
    assert_eq!(state(&run, "tune[1]"), TaskState::Failed);
    assert_eq!(state(&run, "tune"), TaskState::Failed);
    assert_eq!(state(&run, "tune[2]"), TaskState::Skipped);
    assert_eq!(state(&run, "tune[2].train[0]"), TaskState::Skipped);
    assert_eq!(state(&run, "pick"), TaskState::Skipped);
    assert_eq!(state(&run, "tune[0]"), TaskState::Running);
    assert_eq!(run.state, RunState::Running);
    ok_with(
        &mut run,
        "tune[0].train[0]",
        &[("loss", "1")],
        Some("model"),
        40,
    );
    ok_with(
        &mut run,
        "tune[0].train[1]",
        &[("loss", "1")],
        Some("model"),
        50,
    );
    ok(&mut run, "tune[0].evaluate", &[("acc", "0.5")], 60);
    assert_eq!(state(&run, "tune[0]"), TaskState::Succeeded);
    assert_eq!(run.state, RunState::Failed);
    assert!(
        run.error
            .as_deref()
            .unwrap_or_default()
            .contains("tune[1].train[0]"),
        "{:?}",
        run.error
    );
}

const BRANCHES: &str = r#"
name: branches
params:
  threshold: {type: float, default: 0.9}
steps:
  - name: evaluate
    image: busybox
    command: [echo]
    outputs: {params: {acc: float}}
  - name: deploy
    when: '{{steps.evaluate.outputs.params.acc}} >= {{params.threshold}}'
    steps:
      - name: push
        image: busybox
        command: [echo, push]
      - name: announce
        image: busybox
        command: [echo, "pushed {{steps.evaluate.outputs.params.acc}}"]
        dependsOn: [push]
    onExit:
      - name: report
        image: busybox
        command: [echo, "deploy {{group.status}}"]
  - name: retrain
    when: '{{steps.evaluate.outputs.params.acc}} < {{params.threshold}}'
    steps:
      - name: more-data
        image: busybox
        command: [echo]
  - name: notify
    image: busybox
    command: [echo, done]
    dependsOn: [deploy, retrain]
"#;

#[test]
fn a_condition_on_a_group_runs_or_skips_all_its_steps_and_the_join_runs_after_the_branch_taken() {
    let mut run = start(BRANCHES, &[]);
    ok(&mut run, "evaluate", &[("acc", "0.95")], 10);
    assert_eq!(state(&run, "deploy"), TaskState::Running);
    assert_eq!(state(&run, "deploy.push"), TaskState::Ready);
    assert_eq!(state(&run, "deploy.announce"), TaskState::Pending);
    // The other branch is skipped whole, visibly, and the join waits only for the branch taken.
    assert_eq!(state(&run, "retrain"), TaskState::Skipped);
    assert_eq!(state(&run, "retrain.more-data"), TaskState::Skipped);
    let skipped = &run.tasks[idx_of(&run, "retrain.more-data")];
    assert!(skipped.condition_false);
    assert!(
        skipped.error.as_deref().unwrap().contains("condition"),
        "{:?}",
        skipped.error
    );
    assert_eq!(state(&run, "notify"), TaskState::Pending);
    ok(&mut run, "deploy.push", &[], 20);
    assert_eq!(command(&run, "deploy.announce"), ["echo", "pushed 0.95"]);
    // The group's exit handler waits for its steps, and the group for its handler.
    assert_eq!(state(&run, "deploy.report"), TaskState::Pending);
    ok(&mut run, "deploy.announce", &[], 30);
    assert_eq!(command(&run, "deploy.report"), ["echo", "deploy succeeded"]);
    assert_eq!(state(&run, "deploy"), TaskState::Running);
    ok(&mut run, "deploy.report", &[], 40);
    assert_eq!(state(&run, "deploy"), TaskState::Succeeded);
    ok(&mut run, "notify", &[], 50);
    assert_eq!(run.state, RunState::Succeeded);

    // The other branch: the skipped group's exit handler never runs.
    let mut run = start(BRANCHES, &[]);
    ok(&mut run, "evaluate", &[("acc", "0.5")], 10);
    assert_eq!(state(&run, "deploy.report"), TaskState::Skipped);
    assert_eq!(state(&run, "retrain.more-data"), TaskState::Ready);
    ok(&mut run, "retrain.more-data", &[], 20);
    assert_eq!(state(&run, "retrain"), TaskState::Succeeded);
    assert_eq!(state(&run, "notify"), TaskState::Ready);
}

#[test]
fn a_groups_exit_handler_runs_after_a_failure_or_a_cancel_and_reads_the_groups_status() {
    let mut run = start(BRANCHES, &[]);
    ok(&mut run, "evaluate", &[("acc", "0.95")], 10);
    let push = idx_of(&run, "deploy.push");
    lease_at(&mut run, push, 20);
    fail(&mut run, push, 30, Outcome::Failed);
    assert_eq!(state(&run, "deploy.announce"), TaskState::Skipped);
    assert_eq!(command(&run, "deploy.report"), ["echo", "deploy failed"]);
    assert_eq!(state(&run, "deploy"), TaskState::Running);
    ok(&mut run, "deploy.report", &[], 40);
    let deploy = &run.tasks[idx_of(&run, "deploy")];
    assert_eq!(deploy.state, TaskState::Failed);
    assert_eq!(
        deploy.error.as_deref(),
        Some("step `deploy.push` failed: boom")
    );
    assert_eq!(state(&run, "notify"), TaskState::Skipped);
    assert_eq!(run.state, RunState::Failed);

    // Cancelled while the group runs: its step is killed, then its exit handler still runs.
    let mut run = start(BRANCHES, &[]);
    ok(&mut run, "evaluate", &[("acc", "0.95")], 10);
    let push = idx_of(&run, "deploy.push");
    lease_at(&mut run, push, 20);
    run.cancel(30);
    assert!(run.cancel_requested(push));
    assert_eq!(state(&run, "deploy.report"), TaskState::Pending);
    fail(&mut run, push, 40, Outcome::Cancelled);
    assert_eq!(state(&run, "deploy.announce"), TaskState::Cancelled);
    assert_eq!(command(&run, "deploy.report"), ["echo", "deploy cancelled"]);
    ok(&mut run, "deploy.report", &[], 50);
    assert_eq!(state(&run, "deploy"), TaskState::Cancelled);
    assert_eq!(run.state, RunState::Cancelled);
}

const SHARDED: &str = r#"
name: sharded
steps:
  - name: split
    image: busybox
    command: [echo]
    outputs: {params: {shards: list}}
  - name: shard
    forEach: '{{steps.split.outputs.params.shards}}'
    steps:
      - name: fetch
        image: busybox
        command: [echo, "{{item}}"]
        outputs: {params: {parts: list}}
      - name: part
        image: busybox
        forEach: '{{steps.fetch.outputs.params.parts}}'
        command: [echo, "{{loops.shard.item}}/{{item}}"]
        outputs: {params: {n: int}}
    outputs:
      params: {n: "{{steps.part.outputs.params.n}}"}
  - name: total
    image: busybox
    command: [echo, "{{steps.shard.outputs.params.n}}"]
"#;

#[test]
fn loops_over_upstream_outputs_nest_inside_groups_and_survive_a_restore() {
    let mut run = start(SHARDED, &[]);
    assert_eq!(states(&run), "split=ready shard=pending total=pending");
    ok(&mut run, "split", &[("shards", r#"["a", "b"]"#)], 10);
    assert_eq!(state(&run, "shard[0].fetch"), TaskState::Ready);
    assert_eq!(command(&run, "shard[1].fetch"), ["echo", "b"]);
    ok(&mut run, "shard[0].fetch", &[("parts", "[1, 2]")], 20);
    assert_eq!(command(&run, "shard[0].part[1]"), ["echo", "a/2"]);
    ok(&mut run, "shard[0].part[0]", &[("n", "5")], 30);

    let mut run = restored(&run);
    ok(&mut run, "shard[0].part[1]", &[("n", "6")], 40);
    assert_eq!(state(&run, "shard[0]"), TaskState::Succeeded);
    ok(&mut run, "shard[1].fetch", &[("parts", "[]")], 50);
    assert_eq!(state(&run, "shard[1]"), TaskState::Succeeded);
    assert_eq!(command(&run, "total"), ["echo", "[[5,6],[]]"]);
}

#[test]
fn a_group_waits_for_what_its_steps_read_outside_it() {
    let src = r#"
name: outer
steps:
  - name: g
    steps:
      - name: first
        image: busybox
        command: [echo]
      - name: uses-late
        image: busybox
        command: [echo, "{{steps.late.outputs.params.v}}"]
  - name: late
    image: busybox
    command: [echo]
    outputs: {params: {v: string}}
"#;
    let mut run = start(src, &[]);
    // `g` waits for `late`, because one of its steps reads it; none of its steps starts before.
    assert_eq!(
        states(&run),
        "g=pending g.first=pending g.uses-late=pending late=ready"
    );
    ok(&mut run, "late", &[("v", "x")], 10);
    assert_eq!(state(&run, "g"), TaskState::Running);
    assert_eq!(state(&run, "g.first"), TaskState::Ready);
    assert_eq!(command(&run, "g.uses-late"), ["echo", "x"]);
}

#[test]
fn a_condition_on_the_item_is_decided_for_each_iteration() {
    let src = r#"
name: filter
steps:
  - name: fit
    image: busybox
    forEach: [1, 5, 3]
    when: '{{item}} >= 3'
    command: [echo, "{{item}}"]
    outputs: {params: {score: int}}
  - name: after
    image: busybox
    command: [echo, "{{steps.fit.outputs.params.score}}"]
"#;
    let mut run = start(src, &[]);
    assert_eq!(
        states(&run),
        "fit=pending after=pending fit[0]=skipped fit[1]=ready fit[2]=ready"
    );
    assert!(run.tasks[idx_of(&run, "fit[0]")].condition_false);
    ok(&mut run, "fit[1]", &[("score", "50")], 10);
    ok(&mut run, "fit[2]", &[("score", "30")], 20);
    // A skipped item gathers as null, keeping the others at their index.
    assert_eq!(command(&run, "after"), ["echo", "[null,50,30]"]);
}

const GUARDED: &str = r#"
name: guarded
timeout: 10s
steps:
  - name: g
    steps:
      - name: fetch
        image: busybox
        command: [echo, "attempt {{task.attempt}}"]
        retry: {limit: 1, backoff: {initial: 1s}}
      - name: use
        image: busybox
        command: [echo]
        dependsOn: [fetch]
    onExit:
      - name: tidy
        image: busybox
        command: [echo, "{{group.status}}"]
"#;

#[test]
fn a_group_waits_for_retries_in_it_and_a_run_timeout_still_runs_its_exit_handler() {
    let mut run = start(GUARDED, &[]);
    let fetch = idx_of(&run, "g.fetch");
    lease_at(&mut run, fetch, 0);
    fail(&mut run, fetch, 100, Outcome::Failed);
    // Waiting to retry: the group and its exit handler wait too.
    assert_eq!(state(&run, "g.fetch"), TaskState::Pending);
    assert_eq!(state(&run, "g"), TaskState::Running);
    assert_eq!(state(&run, "g.tidy"), TaskState::Pending);
    run.retry_due(fetch, 1100);
    assert_eq!(command(&run, "g.fetch"), ["echo", "attempt 2"]);
    ok(&mut run, "g.fetch", &[], 1200);
    let usage = idx_of(&run, "g.use");
    lease_at(&mut run, usage, 1300);
    // The run's timeout: the running step is told to stop, and once it has, the group's exit
    // handler runs; the run fails as timed out.
    assert!(run.deadline_passed(10_000));
    run.time_out(10_000);
    assert!(run.cancel_requested(usage));
    assert_eq!(state(&run, "g.tidy"), TaskState::Pending);
    fail(&mut run, usage, 10_100, Outcome::Cancelled);
    assert_eq!(command(&run, "g.tidy"), ["echo", "cancelled"]);
    ok(&mut run, "g.tidy", &[], 10_200);
    assert_eq!(state(&run, "g"), TaskState::Cancelled);
    assert_eq!(run.state, RunState::Failed);
    assert_eq!(run.error.as_deref(), Some("the run timed out after 10s"));
}
