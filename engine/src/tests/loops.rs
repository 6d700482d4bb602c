//! Loops: fan-out within parallelism, fan-in, upstream lists, grids, restores.

use super::*;
use sluice_spec::ids::LeaseId;

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
    // An empty loop still waits for what it waits for.
    assert_eq!(run.tasks[idx_of(&run, "train")].state, TaskState::Pending);
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
    let restored = restored(&run);

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
    let lease = LeaseId::new(format!("l{}", run.tasks[s].attempt));
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
