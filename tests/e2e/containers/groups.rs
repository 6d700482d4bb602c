//! Groups of steps in real containers: a loop over a sub-graph with a nested loop, fan-in of the
//! group's outputs to pick the best model, a conditional group with its own exit handler.

use super::*;

#[tokio::test]
async fn a_loop_over_a_group_trains_and_evaluates_each_config_and_the_best_is_deployed() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let run = c
        .run(&format!(
            r#"
name: tune
params:
  configs: {{type: list, default: [{{depth: 2, seeds: [1, 2]}}, {{depth: 7, seeds: [3]}}, {{depth: 4, seeds: [5]}}]}}
  threshold: {{type: int, default: 60}}
steps:
  - name: data
    image: {img}
    outputs: {{artifacts: {{rows: {{}}}}}}
    command: [sh, -c, "seq 1 10 > {{{{outputs.artifacts.rows}}}}"]
  - name: tune
    forEach: '{{{{params.configs}}}}'
    parallelism: 2
    steps:
      - name: train
        image: {img}
        forEach: '{{{{item.seeds}}}}'
        artifacts: {{rows: "{{{{steps.data.outputs.artifacts.rows}}}}"}}
        outputs: {{artifacts: {{model: {{}}}}}}
        command: [sh, -c, "echo depth={{{{loops.tune.item.depth}}}} seed={{{{item}}}} rows=$(wc -l < {{{{inputs.artifacts.rows}}}}) > {{{{outputs.artifacts.model}}}}"]
      - name: evaluate
        image: {img}
        artifacts: {{models: "{{{{steps.train.outputs.artifacts.model}}}}"}}
        outputs: {{params: {{score: {{type: int}}}}}}
        command: [sh, -c, "cat {{{{inputs.artifacts.models}}}}/*; echo $(( {{{{item.depth}}}} * 10 )) > {{{{outputs.params.score}}}}"]
    outputs:
      params: {{score: "{{{{steps.evaluate.outputs.params.score}}}}"}}
      artifacts: {{model: "{{{{steps.train.outputs.artifacts.model}}}}"}}
  - name: pick
    image: {img}
    artifacts: {{models: "{{{{steps.tune.outputs.artifacts.model}}}}"}}
    outputs: {{params: {{best: {{type: int}}}}}}
    command: [sh, -c, "echo '{{{{steps.tune.outputs.params.score}}}}' | tr -d '[]' | tr ',' '\n' | sort -n | tail -1 > {{{{outputs.params.best}}}}; cd {{{{inputs.artifacts.models}}}} && for m in */*; do echo $m $(cat $m); done"]
  - name: deploy
    when: '{{{{steps.pick.outputs.params.best}}}} >= {{{{params.threshold}}}}'
    steps:
      - name: push
        image: {img}
        command: [echo, "pushing {{{{steps.pick.outputs.params.best}}}}"]
    onExit:
      - name: report
        image: {img}
        command: [echo, "deploy {{{{group.status}}}}"]
  - name: archive
    when: '{{{{steps.pick.outputs.params.best}}}} < {{{{params.threshold}}}}'
    steps:
      - name: store
        image: {img}
        command: [echo, store]
"#
        ))
        .await;
    assert_succeeded(&c, &run);
    let id = &run.summary.id;
    // Fan-in: each copy's score in item order, and every model under its copy's and seed's index.
    assert_eq!(
        task(&run, "tune").outputs["score"],
        serde_json::json!([20, 70, 40])
    );
    assert_eq!(task(&run, "pick").outputs["best"], serde_json::json!(70));
    assert_eq!(
        c.stdout(id, "pick").await,
        "0/0 depth=2 seed=1 rows=10\n0/1 depth=2 seed=2 rows=10\n\
         1/0 depth=7 seed=3 rows=10\n2/0 depth=4 seed=5 rows=10\n"
    );
    // Inside a copy, a step reads its own copy's outputs (here the inner loop's gathered models).
    assert_eq!(
        c.stdout(id, "tune[0].evaluate").await,
        "depth=2 seed=1 rows=10\ndepth=2 seed=2 rows=10\n"
    );
    for name in ["tune[0]", "tune[1]", "tune[2]", "tune[1].train[0]"] {
        assert_eq!(task(&run, name).state, TaskState::Succeeded, "{name}");
    }
    // The conditional group ran with its exit handler; the other was skipped whole.
    assert_eq!(c.stdout(id, "deploy.push").await.trim(), "pushing 70");
    assert_eq!(
        c.stdout(id, "deploy.report").await.trim(),
        "deploy succeeded"
    );
    for name in ["archive", "archive.store"] {
        let t = task(&run, name);
        assert_eq!(t.state, TaskState::Skipped, "{name}");
        assert!(
            t.error.as_deref().unwrap_or("").contains("condition"),
            "{t:?}"
        );
    }
    // The graph: a copy is shown after its last steps, its first steps after what it waits for.
    assert_eq!(task(&run, "tune[0]").depends_on, ["tune[0].evaluate"]);
    assert_eq!(
        task(&run, "tune[0].train").depends_on,
        ["tune[0].train[0]", "tune[0].train[1]"]
    );
    assert_eq!(task(&run, "tune[0].train[0]").depends_on, ["data"]);
    assert_eq!(task(&run, "deploy").depends_on, ["deploy.report"]);
    assert_eq!(task(&run, "deploy.report").depends_on, ["deploy.push"]);
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
}
