//! Retries: backoff, limits, never after a cancel.

use super::*;

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
