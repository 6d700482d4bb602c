//! Control flow in real containers: retries, timeouts, conditions, exit handlers, loops, reruns.

use super::*;

#[tokio::test]
async fn a_flaky_step_is_retried_and_a_slow_one_is_killed_at_its_timeout() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let tag = 6_000_000 + std::process::id() % 100_000;
    let run = c
        .run(&format!(
            r#"
name: retries
steps:
  - name: flaky
    image: {img}
    retry: {{limit: 3, backoff: {{initial: 200ms, factor: 2}}}}
    command: [sh, -c, "echo attempt {{{{task.attempt}}}}; test {{{{task.attempt}}}} -ge 3"]
  - name: after
    image: {img}
    command: [echo, "after the flaky one"]
    dependsOn: [flaky]
  - name: slow
    image: {img}
    timeout: 1s
    command: [sleep, "{tag}"]
"#
        ))
        .await;
    let flaky = task(&run, "flaky");
    assert_eq!(flaky.state, TaskState::Succeeded, "{flaky:?}");
    assert_eq!(flaky.attempt, 3);
    let history: Vec<(u32, TaskState)> = flaky
        .attempts
        .iter()
        .map(|a| (a.attempt, a.state))
        .collect();
    assert_eq!(
        history,
        [
            (1, TaskState::Failed),
            (2, TaskState::Failed),
            (3, TaskState::Succeeded)
        ]
    );
    // Each attempt keeps its own log.
    let logs = c
        .client
        .logs(&run.summary.id, "flaky", 0, 100)
        .await
        .unwrap();
    let lines: Vec<(u32, String)> = logs
        .lines
        .iter()
        .map(|l| (l.attempt, l.line.clone()))
        .collect();
    assert_eq!(
        lines,
        [
            (1, "attempt 1".to_string()),
            (2, "attempt 2".into()),
            (3, "attempt 3".into())
        ]
    );
    assert_eq!(task(&run, "after").state, TaskState::Succeeded);
    let slow = task(&run, "slow");
    assert_eq!(slow.state, TaskState::Failed);
    assert!(
        slow.error
            .as_deref()
            .unwrap_or("")
            .contains("timed out after 1s"),
        "{slow:?}"
    );
    assert!(sleepers(tag).is_empty());
    assert_eq!(run.summary.state, RunState::Failed);
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
}

#[tokio::test]
async fn a_condition_on_an_upstream_output_picks_the_branch_that_runs() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let run = c
        .run(&format!(
            r#"
name: branches
params:
  threshold: {{type: float, default: 0.9}}
steps:
  - name: evaluate
    image: {img}
    outputs: {{params: {{accuracy: {{type: float}}}}}}
    command: [sh, -c, "echo 0.93 > {{{{outputs.params.accuracy}}}}"]
  - name: deploy
    image: {img}
    when: '{{{{steps.evaluate.outputs.params.accuracy}}}} >= {{{{params.threshold}}}}'
    command: [echo, deploying]
  - name: retrain
    image: {img}
    when: '{{{{steps.evaluate.outputs.params.accuracy}}}} < {{{{params.threshold}}}}'
    command: [echo, retraining]
  - name: notify
    image: {img}
    dependsOn: [deploy, retrain]
    command: [echo, done]
"#
        ))
        .await;
    assert_succeeded(&c, &run);
    assert_eq!(task(&run, "deploy").state, TaskState::Succeeded);
    let retrain = task(&run, "retrain");
    assert_eq!(retrain.state, TaskState::Skipped);
    assert!(
        retrain.error.as_deref().unwrap().contains("is false"),
        "{retrain:?}"
    );
    assert_eq!(task(&run, "notify").state, TaskState::Succeeded);
    assert_eq!(
        c.stdout(&run.summary.id, "deploy").await.trim(),
        "deploying"
    );
}

#[tokio::test]
async fn exit_handlers_run_after_a_failure_and_after_a_cancel_and_see_the_outcome() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let pipeline = |cmd: &str| {
        format!(
            r#"
name: exit-handlers
steps:
  - name: train
    image: {img}
    command: [sh, -c, "{cmd}"]
  - name: eval
    image: {img}
    command: [echo, eval]
    dependsOn: [train]
onExit:
  - name: notify
    image: {img}
    command: [echo, "run {{{{run.status}}}}"]
"#
        )
    };
    let run = c.run(&pipeline("exit 3")).await;
    assert_eq!(run.summary.state, RunState::Failed);
    assert_eq!(task(&run, "eval").state, TaskState::Skipped);
    assert_eq!(task(&run, "notify").state, TaskState::Succeeded);
    assert_eq!(
        c.stdout(&run.summary.id, "notify").await.trim(),
        "run failed"
    );
    // Shown as coming after the step that ends the graph.
    assert_eq!(task(&run, "notify").depends_on, ["eval"]);

    let id = submit(&c.client, &pipeline("sleep 600")).await;
    wait_until(
        &c.client,
        &id,
        Duration::from_secs(60),
        "train to run",
        |d| d.tasks[0].state == TaskState::Running,
    )
    .await;
    c.client.cancel_run(&id).await.unwrap();
    let run = wait_run(&c.client, &id, Duration::from_secs(60)).await;
    assert_eq!(run.summary.state, RunState::Cancelled);
    assert_eq!(task(&run, "train").state, TaskState::Cancelled);
    assert_eq!(task(&run, "notify").state, TaskState::Succeeded);
    assert_eq!(c.stdout(&id, "notify").await.trim(), "run cancelled");
}

#[tokio::test]
async fn rerun_from_failure_reuses_what_succeeded_and_runs_the_rest() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let flag = c.dir.path().join("flag");
    let yaml = format!(
        r#"
name: rerun
steps:
  - name: prepare
    image: {img}
    cache: false
    outputs: {{params: {{rows: {{type: int}}}}}}
    command: [sh, -c, "echo 150 > {{{{outputs.params.rows}}}}"]
  - name: train
    image: {img}
    cache: false
    volumes: [{{hostPath: {dir}, path: /ctl}}]
    command: [sh, -c, "test -e /ctl/flag && echo trained on {{{{steps.prepare.outputs.params.rows}}}}"]
  - name: report
    image: {img}
    command: [echo, report]
    dependsOn: [train]
onExit:
  - name: notify
    image: {img}
    command: [echo, "run {{{{run.status}}}}"]
"#,
        dir = c.dir.path().display()
    );
    let first = c.run(&yaml).await;
    assert_eq!(first.summary.state, RunState::Failed);
    assert_eq!(task(&first, "train").state, TaskState::Failed);
    assert_eq!(task(&first, "report").state, TaskState::Skipped);
    // Fix what failed, then rerun from the failure: `prepare` (never cached) is reused anyway.
    std::fs::write(&flag, "").unwrap();
    let d = c.client.rerun(&first.summary.id).await.unwrap();
    let second = wait_run(&c.client, &d.summary.id, Duration::from_secs(60)).await;
    assert_succeeded(&c, &second);
    let prepare = task(&second, "prepare");
    assert_eq!(
        prepare.cached_from.as_deref(),
        Some(first.summary.id.as_str())
    );
    assert!(c.logs(&second.summary.id, "prepare").await.is_empty());
    assert_eq!(task(&second, "train").cached_from, None);
    assert_eq!(
        c.stdout(&second.summary.id, "train").await.trim(),
        "trained on 150"
    );
    assert_eq!(second.summary.name, format!("{}-rerun", first.summary.name));
    // The exit handler succeeded the first time too, but runs again: it reports on this run.
    assert_eq!(
        c.stdout(&first.summary.id, "notify").await.trim(),
        "run failed"
    );
    assert_eq!(task(&second, "notify").cached_from, None);
    assert_eq!(
        c.stdout(&second.summary.id, "notify").await.trim(),
        "run succeeded"
    );
    // An active run cannot be rerun.
    let id = submit(
        &c.client,
        &format!(
            "name: busy\nsteps:\n  - name: s\n    image: {img}\n    command: [sleep, \"30\"]\n"
        ),
    )
    .await;
    let e = c.client.rerun(&id).await.unwrap_err();
    assert_eq!(e.code(), Some(&sluice_sdk::api::ErrorCode::RunActive));
    c.client.cancel_run(&id).await.unwrap();
}

#[tokio::test]
async fn a_loop_over_hyperparameters_fans_in_to_pick_the_best() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let run = c
        .run(&format!(
            r#"
name: sweep
params:
  rates: {{type: list, default: [1, 5, 3]}}
steps:
  - name: train
    image: {img}
    forEach: '{{{{params.rates}}}}'
    parallelism: 2
    outputs: {{params: {{score: {{type: int}}}}, artifacts: {{model: {{}}}}}}
    command: [sh, -c, "echo $(( {{{{item}}}} * 10 )) > {{{{outputs.params.score}}}}; echo model-{{{{item}}}} > {{{{outputs.artifacts.model}}}}"]
  - name: best
    image: {img}
    outputs: {{params: {{top: {{type: int}}}}}}
    command: [sh, -c, "echo '{{{{steps.train.outputs.params.score}}}}' | tr -d '[]' | tr ',' '\n' | sort -n | tail -1 > {{{{outputs.params.top}}}}; cd {{{{steps.train.outputs.artifacts.model}}}} && for k in *; do echo $k $(cat $k); done"]
"#
        ))
        .await;
    assert_succeeded(&c, &run);
    assert_eq!(
        task(&run, "train").outputs["score"],
        serde_json::json!([10, 50, 30])
    );
    for k in 0..3 {
        assert_eq!(
            task(&run, &format!("train[{k}]")).state,
            TaskState::Succeeded
        );
    }
    assert_eq!(task(&run, "best").outputs["top"], serde_json::json!(50));
    // Each iteration's artifact, mounted read-only at its index.
    assert_eq!(
        c.stdout(&run.summary.id, "best").await,
        "0 model-1\n1 model-5\n2 model-3\n"
    );
    let names: Vec<&str> = task(&run, "train")
        .artifacts
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(names, ["model[0]", "model[1]", "model[2]"]);
    // The graph shows the fan-out and the fan-in.
    assert_eq!(
        task(&run, "train").depends_on,
        ["train[0]", "train[1]", "train[2]"]
    );
}

#[tokio::test]
async fn a_loop_runs_once_per_item_an_upstream_step_output() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let run = c
        .run(&format!(
            r#"
name: shards
steps:
  - name: split
    image: {img}
    outputs: {{params: {{shards: {{type: list}}}}}}
    command: [sh, -c, "echo '[\"a\", \"bb\", \"ccc\"]' > {{{{outputs.params.shards}}}}"]
  - name: count
    image: {img}
    forEach: '{{{{steps.split.outputs.params.shards}}}}'
    outputs: {{params: {{len: {{type: int}}}}}}
    command: [sh, -c, "printf %s {{{{item}}}} | wc -c > {{{{outputs.params.len}}}}"]
  - name: total
    image: {img}
    command: [echo, "{{{{steps.count.outputs.params.len}}}}"]
"#
        ))
        .await;
    assert_succeeded(&c, &run);
    assert_eq!(
        task(&run, "count").outputs["len"],
        serde_json::json!([1, 2, 3])
    );
    assert_eq!(c.stdout(&run.summary.id, "total").await.trim(), "[1,2,3]");
    assert_eq!(
        task(&run, "count").depends_on,
        ["count[0]", "count[1]", "count[2]"]
    );
}
