//! Exit handlers, and runs that outlive their timeout.

use super::*;

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
    // Told what the run ends as: failed (Argo's `{{workflow.status}}` past a deadline says so).
    assert_eq!(command(&run, "notify"), ["echo", "run failed"]);
    ok(&mut run, "notify", &[], 60_020);
    ok(&mut run, "cleanup", &[], 60_030);
    assert_eq!(run.state, RunState::Failed);
    assert_eq!(run.error.as_deref(), Some("the run timed out after 1m"));
    assert!(!run.deadline_passed(70_000));
}

#[test]
fn a_restored_run_knows_it_timed_out_from_its_end_reason_not_its_error() {
    let src = WITH_EXIT.replace("name: with-exit\n", "name: with-exit\ntimeout: 1m\n");
    let mut run = start(&src, &[]);
    let t = idx_of(&run, "train");
    lease_at(&mut run, t, 0);
    run.time_out(60_000);
    assert_eq!(run.end_reason, Some(EndReason::TimedOut));
    // Whatever its error says, a restarted server knows the run timed out: it still ends failed.
    run.error = Some("stopped".into());
    let mut run = restored(&run);
    fail(&mut run, t, 60_010, Outcome::Cancelled);
    ok(&mut run, "notify", &[], 60_020);
    ok(&mut run, "cleanup", &[], 60_030);
    assert_eq!(run.state, RunState::Failed);
    assert_eq!(run.end_reason, Some(EndReason::TimedOut));

    // A cancel is a cancel, even if its message looks like a timeout's.
    let mut run = start(&src, &[]);
    lease_at(&mut run, t, 0);
    run.cancel(10);
    run.error = Some("the run timed out after 1m".into());
    let mut run = restored(&run);
    fail(&mut run, t, 20, Outcome::Cancelled);
    ok(&mut run, "notify", &[], 30);
    ok(&mut run, "cleanup", &[], 40);
    assert_eq!(run.state, RunState::Cancelled);
    assert_eq!(run.end_reason, Some(EndReason::Cancelled));
}
