//! Steps that serve: the steps after a daemon start once it is up, with its address; it is
//! stopped when the other steps of its group or run have ended, and then has succeeded.

use super::*;

const SERVED: &str = r#"
name: served
steps:
  - name: prepare
    image: busybox
  - name: model
    image: busybox
    dependsOn: [prepare]
    daemon: {port: 8080}
  - name: ask
    image: busybox
    command: [wget, "http://{{steps.model.ip}}:8080/"]
  - name: other
    image: busybox
    dependsOn: [prepare]
"#;

fn stopped(run: &mut Run, n: &str, now: i64) -> Vec<Effect> {
    let i = run.task_index(n).unwrap();
    let l = run.tasks[i].lease.as_ref().unwrap().id.clone();
    let r = TaskResult {
        outcome: Outcome::Cancelled,
        exit_code: Some(137),
        error: Some("cancelled".into()),
        outputs: BTreeMap::new(),
        artifacts: vec![],
        cached_from: None,
    };
    run.finished(i, &l, r, now).unwrap()
}

fn up(run: &mut Run, n: &str, address: &str) {
    let i = run.task_index(n).unwrap();
    let l = run.tasks[i].lease.as_ref().unwrap().id.clone();
    run.serving_at(i, &l, address.into(), 100, 1000).unwrap();
}

#[test]
fn the_steps_after_a_daemon_start_once_it_serves_and_it_is_stopped_when_they_end() {
    use Ev::*;
    let mut run = start(SERVED, &[]);
    let model = run.task_index("model").unwrap();
    script(
        &mut run,
        &[
            Lease("prepare"),
            Ok("prepare", &[("NO_ARTIFACTS", "")]),
            Lease("model"),
            Start("model"),
        ],
    );
    // Running is not enough: the step after it waits until it is up.
    assert_eq!(
        states(&run),
        "prepare=succeeded model=running ask=pending other=ready"
    );
    assert!(!run.serving(model));
    up(&mut run, "model", "198.19.0.3");
    assert!(run.serving(model));
    assert_eq!(
        states(&run),
        "prepare=succeeded model=running ask=ready other=ready"
    );
    let ask = run.task_index("ask").unwrap();
    assert_eq!(
        run.tasks[ask].spec.as_ref().unwrap().command,
        Some(vec!["wget".into(), "http://198.19.0.3:8080/".into()])
    );
    assert_eq!(
        run.tasks[model].spec.as_ref().unwrap().network,
        Some(spec::NetworkMode::Bridge),
        "a daemon is bridged whatever the worker's default"
    );
    assert_eq!(
        run.tasks[model].spec.as_ref().unwrap().daemon,
        Some(spec::Daemon { port: Some(8080) })
    );
    // A step that talks to a daemon is never taken from the cache, nor is the daemon.
    assert_eq!(run.cache_key(ask), None);
    assert_eq!(run.cache_key(model), None);
    script(
        &mut run,
        &[Lease("ask"), Ok("ask", &[("NO_ARTIFACTS", "")])],
    );
    assert!(!run.cancel_requested(model), "`other` still runs");
    script(
        &mut run,
        &[Lease("other"), Ok("other", &[("NO_ARTIFACTS", "")])],
    );
    // Nothing is left to serve: its worker is told to stop it, and its stop is a success.
    assert!(run.cancel_requested(model));
    assert_eq!(run.state, RunState::Running);
    stopped(&mut run, "model", 200);
    assert_eq!(
        states(&run),
        "prepare=succeeded model=succeeded ask=succeeded other=succeeded"
    );
    assert_eq!(run.state, RunState::Succeeded);
    assert_eq!(run.tasks[model].address.as_deref(), Some("198.19.0.3"));
}

#[test]
fn a_daemon_that_fails_before_it_serves_skips_the_steps_after_it_and_fails_the_run() {
    use Ev::*;
    let mut run = start(SERVED, &[]);
    script(
        &mut run,
        &[
            Lease("prepare"),
            Ok("prepare", &[("NO_ARTIFACTS", "")]),
            Lease("model"),
            Fail("model"),
            Lease("other"),
            Ok("other", &[("NO_ARTIFACTS", "")]),
        ],
    );
    assert_eq!(
        states(&run),
        "prepare=succeeded model=failed ask=skipped other=succeeded"
    );
    assert_eq!(run.state, RunState::Failed);
}

/// SERVED with `prepare` done and `model` up.
fn serving() -> Run {
    use Ev::*;
    let mut run = start(SERVED, &[]);
    script(
        &mut run,
        &[
            Lease("prepare"),
            Ok("prepare", &[("NO_ARTIFACTS", "")]),
            Lease("model"),
        ],
    );
    up(&mut run, "model", "198.19.0.3");
    run
}

#[test]
fn a_cancel_cancels_a_daemon_and_a_lost_worker_of_a_stopping_one_ends_it() {
    use Ev::*;
    let mut run = serving();
    script(&mut run, &[Cancel]);
    stopped(&mut run, "model", 300);
    let model = run.task_index("model").unwrap();
    assert_eq!(run.tasks[model].state, TaskState::Cancelled);
    assert_eq!(run.state, RunState::Cancelled);

    // Told to stop, its worker vanishes: it is over all the same.
    let mut run = serving();
    script(
        &mut run,
        &[
            Lease("ask"),
            Ok("ask", &[("NO_ARTIFACTS", "")]),
            Lease("other"),
            Ok("other", &[("NO_ARTIFACTS", "")]),
            Expire("model"),
        ],
    );
    assert_eq!(run.tasks[model].state, TaskState::Succeeded);
    assert_eq!(run.state, RunState::Succeeded);
}

#[test]
fn a_daemon_in_a_group_is_stopped_when_the_groups_other_steps_end() {
    let src = r#"
name: g
steps:
  - name: eval
    steps:
      - {name: serve, image: x, daemon: true}
      - {name: probe, image: x, command: [nc, "{{steps.serve.ip}}", "80"]}
  - {name: after, image: x, dependsOn: [eval]}
"#;
    use Ev::*;
    let mut run = start(src, &[]);
    script(&mut run, &[Lease("eval.serve")]);
    up(&mut run, "eval.serve", "198.19.0.2");
    script(
        &mut run,
        &[
            Lease("eval.probe"),
            Ok("eval.probe", &[("NO_ARTIFACTS", "")]),
        ],
    );
    let serve = run.task_index("eval.serve").unwrap();
    assert!(run.cancel_requested(serve));
    assert_eq!(
        states(&run),
        "eval=running eval.serve=running eval.probe=succeeded after=pending"
    );
    stopped(&mut run, "eval.serve", 400);
    assert_eq!(
        states(&run),
        "eval=succeeded eval.serve=succeeded eval.probe=succeeded after=ready"
    );
}

#[test]
fn a_daemon_whose_steps_all_ended_before_it_started_never_does() {
    let src = "name: n\nsteps:\n  - {name: a, image: x}\n  - {name: s, image: x, daemon: true, dependsOn: [a]}\n  - {name: b, image: x}\n";
    use Ev::*;
    let mut run = start(src, &[]);
    script(
        &mut run,
        &[
            Lease("b"),
            Ok("b", &[("NO_ARTIFACTS", "")]),
            Lease("a"),
            Ok("a", &[("NO_ARTIFACTS", "")]),
        ],
    );
    assert_eq!(states(&run), "a=succeeded s=skipped b=succeeded");
    assert_eq!(run.state, RunState::Succeeded);
}
