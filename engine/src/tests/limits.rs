//! Limits on what one run may plan: loop items, grids and the run's tasks, static or expanded
//! while it runs. Passing one is an error naming the limit and the loop, never an allocation.

use super::*;

fn plan_error(src: &str) -> String {
    let p = spec::load("t.yaml", src).unwrap_or_else(|d| panic!("{}", d.render(src)));
    let params = resolve_params(&p, &Params::new()).unwrap();
    match Run::start(
        "r".into(),
        "r".into(),
        Arc::new(p),
        params,
        Vec::new(),
        Limits::default(),
        0,
    ) {
        Ok(_) => panic!("planned"),
        Err(e) => e,
    }
}

fn axis(n: usize) -> String {
    format!(
        "[{}]",
        (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
    )
}

#[test]
fn a_grid_past_the_loop_limit_is_refused_before_it_is_built() {
    // 100 x 100 x 100: a million items from a kilobyte.
    let src = format!(
        "name: g\nsteps:\n  - name: train\n    image: b\n    forEach: {{a: {0}, b: {0}, c: {0}}}\n    command: [echo]\n",
        axis(100)
    );
    let e = plan_error(&src);
    assert_eq!(
        e,
        "loop `train` (line 3) is a grid of 1000000 items, over the limit of 10000 items per loop"
    );
}

#[test]
fn a_literal_list_past_the_loop_limit_is_refused() {
    let src = format!(
        "name: l\nsteps:\n  - name: each\n    image: b\n    forEach: {}\n    command: [echo]\n",
        axis(10_001)
    );
    assert!(plan_error(&src).contains("has 10001 items, over the limit of 10000 items per loop"));
}

#[test]
fn nested_loops_past_the_task_limit_are_refused() {
    // Each loop is within its limit; together they would plan 100 x 100 x 100 steps.
    let src = format!(
        r#"
name: nest
steps:
  - name: outer
    forEach: {0}
    steps:
      - name: middle
        forEach: {0}
        steps:
          - name: inner
            image: b
            forEach: {0}
            command: [echo]
"#,
        axis(100)
    );
    let e = plan_error(&src);
    assert!(
        e.contains("takes the run past the limit of 50000 tasks"),
        "{e}"
    );
}

#[test]
fn a_loop_over_an_upstream_list_past_the_limit_fails_that_loop_and_plans_nothing_of_it() {
    let src = r#"
name: up
steps:
  - name: split
    image: b
    outputs: {params: {parts: list}}
  - name: work
    image: b
    forEach: '{{steps.split.outputs.params.parts}}'
    command: [echo, "{{item}}"]
  - name: after
    image: b
    dependsOn: [work]
    command: [echo]
"#;
    let mut run = start(src, &[]);
    let planned = run.plan.tasks.len();
    let parts = serde_json::to_string(&(0..20_000).collect::<Vec<_>>()).unwrap();
    ok(&mut run, "split", &[("parts", &parts)], 10);
    let work = &run.tasks[idx_of(&run, "work")];
    assert_eq!(work.state, TaskState::Failed);
    assert_eq!(
        work.error.as_deref(),
        Some("loop `work` (line 7) has 20000 items, over the limit of 10000 items per loop")
    );
    assert_eq!(run.plan.tasks.len(), planned, "no iteration was kept");
    assert_eq!(run.tasks.len(), planned);
    assert_eq!(run.tasks[idx_of(&run, "after")].state, TaskState::Skipped);
    assert_eq!(run.state, RunState::Failed);
}

#[test]
fn an_expansion_that_fails_midway_leaves_no_task_behind() {
    // A loop of groups whose copies each hold a loop: the copies fit, their loops do not.
    let src = r#"
name: mid
steps:
  - name: split
    image: b
    outputs: {params: {parts: list}}
  - name: g
    forEach: '{{steps.split.outputs.params.parts}}'
    steps:
      - name: fan
        image: b
        forEach: '{{item}}'
        command: [echo]
"#;
    let mut run = start(src, &[]);
    let planned = run.plan.tasks.len();
    let parts = serde_json::to_string(&vec![(0..9_000).collect::<Vec<_>>(); 9]).unwrap();
    ok(&mut run, "split", &[("parts", &parts)], 10);
    let g = &run.tasks[idx_of(&run, "g")];
    assert_eq!(g.state, TaskState::Failed);
    assert!(
        g.error
            .as_deref()
            .unwrap_or("")
            .contains("past the limit of 50000 tasks"),
        "{:?}",
        g.error
    );
    assert_eq!(run.plan.tasks.len(), planned);
    assert_eq!(run.plan.index.len(), planned);
    assert!(run
        .plan
        .tasks
        .iter()
        .all(|t| t.members.iter().flatten().all(|&m| m < planned)));
}
