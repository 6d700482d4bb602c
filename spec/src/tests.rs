//! Parsing and validation of pipeline files, error by error.

use super::*;

const GOOD: &str = r#"
apiVersion: sluice/v1
kind: Pipeline
name: iris
description: train and evaluate
params:
  n_estimators: {type: int, default: 50}
  test_size: 0.25
  dataset: {type: string}
components:
  train:
    image: 127.0.0.1:5000/ml/sklearn:1
    inputs:
      params:
        n: {type: int}
        split: {type: float, default: 0.2}
      artifacts:
        data: {type: dataset}
    outputs:
      params:
        accuracy: float
      artifacts:
        model: {type: model}
    command: [python3, /app/train.py]
    args: ["--n={{inputs.params.n}}", "--data={{inputs.artifacts.data}}", "--out={{outputs.artifacts.model}}", "--acc={{outputs.params.accuracy}}"]
    resources: {cpu: 500m, memory: 1Gi}
steps:
  - name: prepare
    image: busybox
    script: |
      echo {{params.dataset}} > {{outputs.artifacts.data}}/name
    outputs:
      artifacts:
        data: {type: dataset}
  - name: train
    component: train
    params: {n: "{{params.n_estimators}}"}
    artifacts: {data: "{{steps.prepare.outputs.artifacts.data}}"}
  - name: report
    image: busybox
    command: [echo, "accuracy {{steps.train.outputs.params.accuracy}} on {{run.id}}"]
    dependsOn: [prepare]
"#;

fn errors(src: &str) -> Vec<String> {
    match load("p.yaml", src) {
        Ok(_) => Vec::new(),
        Err(d) => d
            .items
            .iter()
            .map(|i| format!("{}:{}: {}", i.line, i.col, i.message))
            .collect(),
    }
}

#[test]
fn a_full_pipeline_loads() {
    let p = load("p.yaml", GOOD).unwrap_or_else(|d| panic!("{}", d.render(GOOD)));
    assert_eq!(p.name, "iris");
    assert_eq!(p.params.len(), 3);
    assert_eq!(p.params[1].ty, ParamType::Float);
    let train = p.step("train").unwrap();
    let tpl = p.template_of(train).unwrap();
    assert_eq!(tpl.resources.cpu_millis, Some(500));
    assert_eq!(tpl.resources.memory_bytes, Some(1 << 30));
    assert_eq!(validate::dependencies(&p, train), vec!["prepare"]);
    let report = p.step("report").unwrap();
    assert_eq!(validate::dependencies(&p, report), vec!["prepare", "train"]);
}

/// Each case: a YAML snippet and the errors it must produce, as `line:col: message fragment`.
#[test]
fn every_error_is_placed_and_explained() {
    let cases: &[(&str, &[&str])] = &[
        ("name: x\nsteps: [\n", &["invalid YAML"]),
        ("- a\n- b\n", &["1:1: the pipeline must be a mapping, found a list"]),
        ("name: x\nsteps:\n  - name: a\n    imgae: busybox\n", &[
            "3:5: step `a` needs either `component` or an `image`",
            "4:5: unknown field `imgae` in a step (did you mean `image`?)",
        ]),
        ("steps:\n  - name: a\n    image: b\n", &["1:1: the pipeline is missing the required field `name`"]),
        ("name: x\nsteps:\n  - name: a\n    image: b\n  - name: a\n    image: b\n", &["5:11: duplicate step name `a` (first used at line 3)"]),
        ("name: x\nsteps:\n  - name: a\n    image: b\n    dependsOn: [c]\n", &["5:17: step `a` depends on unknown step `c`"]),
        ("name: x\nsteps:\n  - name: a\n    image: b\n    dependsOn: [b]\n  - name: b\n    image: b\n    dependsOn: [a]\n", &["dependency cycle: a → b → a"]),
        ("name: x\nsteps:\n  - name: a\n    image: b\n    command: [echo, '{{params.nope}}']\n", &["5:21: unknown pipeline parameter `nope`"]),
        ("name: x\nsteps:\n  - name: a\n    image: b\n    command: [echo, '{{steps.z.outputs.params.v}}']\n", &["unknown step `z`"]),
        ("name: x\nsteps:\n  - name: a\n    image: b\n    command: '{{params.n}}'\n", &["5:14: `command` must be a list of strings"]),
        ("name: x\nparams:\n  n: {type: int, default: abc}\nsteps:\n  - name: a\n    image: b\n", &["3:27: default of parameter `n` does not match its type int"]),
        ("name: x\nparams:\n  n: {type: integr}\nsteps:\n  - name: a\n    image: b\n", &["3:13: unknown parameter type `integr`"]),
        ("name: x\nsteps:\n  - name: a\n    component: trian\ncomponents:\n  train: {image: b}\n", &["4:16: step `a` uses unknown component `trian` (did you mean `train`?)"]),
        ("name: x\nsteps:\n  - name: a\n    image: b\n    when: '{{params.x}} == 1'\n", &["5:11: unknown pipeline parameter `x`"]),
        ("name: x\nparams: {x: 1}\nsteps:\n  - name: a\n    image: b\n    when: '{{params.x}} = 1'\n", &["6:11: invalid condition `{{params.x}} = 1`: `=` is not an operator: compare with `==`"]),
        ("name: x\nsteps:\n  - name: a\n    image: b\n    outputs: {artifacts: {m: {}}}\n  - name: c\n    image: b\n    when: '{{steps.a.outputs.artifacts.m}}'\n", &["8:11: a condition can compare output parameters, not artifacts"]),
        ("name: x\nsteps:\n  - name: a\n    image: b\n    retry: {limit: 3, backoff: {initial: soon, factor: 0.5}}\n    timeout: 10 minutes\n", &["5:42: `initial` must be a duration such as 500ms, 10s or 2m, found `soon`", "5:56: `factor` must be a number of at least 1", "6:14: `timeout` must be a duration"]),
        ("name: x\nsteps:\n  - name: a\n    image: b\n    retry: -2\n", &["5:12: `retry` must be a number of retries or {limit, backoff}"]),
        ("name: x\nsteps:\n  - name: a\n    image: b\n    resources: {memory: lots}\n", &["5:25: `memory` must be a size"]),
        ("name: x\nsteps:\n  - name: a\n    image: b\n    forEach: 3\n    parallelism: 0\n", &["5:14: `forEach` takes a list", "6:18: `parallelism` must be a positive whole number"]),
        ("name: x\nsteps:\n  - name: a\n    image: b\n    command: [echo, '{{item}}']\n    parallelism: 2\n", &["5:21: `{{item}}` is defined only in a step with `forEach`", "6:18: `parallelism` limits a `forEach` loop"]),
        ("name: x\nsteps:\n  - name: a\n    image: b\n    outputs: {params: {n: int}}\n  - name: c\n    image: b\n    forEach: '{{steps.a.outputs.params.n}}'\n", &["8:14: `forEach` needs a list, but `{{steps.a.outputs.params.n}}` is int"]),
        ("name: x\nsteps:\n  - name: a\n    image: b\n    dependsOn: [n]\nonExit:\n  - name: n\n    image: b\n  - name: a\n    image: b\n", &["5:17: step `a` depends on unknown step `n`", "9:11: duplicate step name `a` (first used at line 3)"]),
        ("name: x\nname: y\nsteps: []\n", &["2:1: duplicate key `name`", "the pipeline has no steps"]),
    ];
    for (src, want) in cases {
        let got = errors(src);
        for w in *want {
            assert!(
                got.iter().any(|g| g.contains(w)),
                "for\n{src}\nwanted `{w}`, got {got:#?}"
            );
        }
        assert!(!got.is_empty(), "for\n{src}\nexpected errors");
    }
}

#[test]
fn type_mismatches_between_producer_and_consumer() {
    let src = r#"
name: x
params:
  flag: {type: bool, default: true}
components:
  use:
    image: b
    inputs:
      params:
        n: {type: int}
        f: {type: float}
      artifacts:
        m: {type: model}
steps:
  - name: a
    image: b
    outputs:
      params: {acc: float, label: string}
      artifacts: {d: {type: dataset}}
  - name: c
    component: use
    params:
      n: "{{steps.a.outputs.params.acc}}"
      f: "{{params.flag}}"
    artifacts:
      m: "{{steps.a.outputs.artifacts.d}}"
  - name: e
    component: use
    params:
      n: 3
      f: "{{steps.a.outputs.params.nope}}"
      extra: 1
    artifacts:
      m: "a literal"
"#;
    let got = errors(src);
    let want = [
        "23:10: type mismatch: input parameter `n` of step `c` is int, but `{{steps.a.outputs.params.acc}}` is float",
        "24:10: type mismatch: input parameter `f` of step `c` is float, but `{{params.flag}}` is bool",
        "26:10: type mismatch: input artifact `m` of step `c` is a model, but `a.d` is a dataset",
        "31:10: step `a` has no output param `nope` (it has: acc, label)",
        "32:14: step `e` has no input parameter `extra`",
        "34:10: input artifact `m` of step `e` must be exactly one",
    ];
    for w in want {
        assert!(
            got.iter().any(|g| g.contains(w)),
            "wanted `{w}`, got {got:#?}"
        );
    }
    assert_eq!(got.len(), want.len(), "{got:#?}");
}

#[test]
fn components_see_only_their_own_inputs() {
    let src = "name: x\ncomponents:\n  c:\n    image: b\n    command: ['{{params.p}}', '{{inputs.params.q}}']\nsteps:\n  - name: a\n    component: c\n";
    let got = errors(src);
    assert!(
        got.iter()
            .any(|g| g.contains("a component cannot refer to `{{params.p}}` directly")),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|g| g.contains("`{{inputs.params.q}}` names an input that is not declared")),
        "{got:#?}"
    );
}

#[test]
fn quantities_and_durations() {
    assert_eq!(parse::parse_cpu("2"), Some(2000));
    assert_eq!(parse::parse_cpu("0.5"), Some(500));
    assert_eq!(parse::parse_cpu("250m"), Some(250));
    assert_eq!(parse::parse_cpu("-1"), None);
    assert_eq!(parse::parse_bytes("512Mi"), Some(512 << 20));
    assert_eq!(parse::parse_bytes("1G"), Some(1_000_000_000));
    assert_eq!(parse::parse_bytes("x"), None);
    assert_eq!(parse::parse_duration_ms("1h30m"), Some(5_400_000));
    assert_eq!(parse::parse_duration_ms("250ms"), Some(250));
    assert_eq!(parse::parse_duration_ms("45"), Some(45_000));
    assert_eq!(parse::parse_duration_ms("soon"), None);
}

#[test]
fn exit_handlers_may_order_themselves_and_read_the_runs_status() {
    let src = "name: x\nsteps:\n  - name: a\n    image: b\n    outputs: {params: {v: int}}\nonExit:\n  - name: n\n    image: b\n    command: [echo, '{{run.status}} {{steps.a.outputs.params.v}}']\n  - name: m\n    image: b\n    dependsOn: [n]\n";
    let p = load("x.yaml", src).unwrap_or_else(|d| panic!("{}", d.render(src)));
    assert_eq!(p.on_exit.len(), 2);
    assert!(p.is_exit_handler(&p.on_exit[1]));
    assert_eq!(
        p.task_steps().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["a", "n", "m"]
    );
}

const GROUPS: &str = r#"
name: groups
params:
  configs: {type: list, default: [{lr: 0.1}]}
steps:
  - name: data
    image: busybox
    command: [echo]
    outputs: {artifacts: {rows: {type: dataset}}}
  - name: tune
    forEach: '{{params.configs}}'
    parallelism: 2
    steps:
      - name: train
        image: busybox
        forEach: [1, 2]
        command: [echo, "{{loops.tune.item.lr}} {{item}}"]
        artifacts: {rows: "{{steps.data.outputs.artifacts.rows}}"}
        outputs: {params: {loss: float}}
      - name: evaluate
        image: busybox
        command: [echo, "{{steps.train.outputs.params.loss}}"]
        outputs: {params: {acc: float}}
    onExit:
      - name: report
        image: busybox
        command: [echo, "{{group.status}}"]
    outputs:
      params: {acc: "{{steps.evaluate.outputs.params.acc}}"}
  - name: pick
    image: busybox
    params: {accs: "{{steps.tune.outputs.params.acc}}"}
    inputs: {params: {accs: list}}
    command: [echo, "{{inputs.params.accs}}"]
"#;

#[test]
fn groups_nest_steps_under_qualified_names_and_expose_bound_outputs() {
    let p = load("p.yaml", GROUPS).unwrap_or_else(|d| panic!("{}", d.render(GROUPS)));
    let names: Vec<&str> = p.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "data",
            "tune",
            "tune.train",
            "tune.evaluate",
            "tune.report",
            "pick"
        ]
    );
    let tune = p.step("tune").unwrap();
    let g = tune.group().unwrap();
    assert_eq!((g.steps.len(), g.on_exit.len()), (2, 1));
    assert!(p.step("tune.report").unwrap().handler);
    assert_eq!(p.step("tune.train").unwrap().parent, Some(1));
    // A group waits for what its steps read outside it; a step waits for its own group's steps.
    assert_eq!(dependencies(&p, tune), ["data"]);
    assert_eq!(
        dependencies(&p, p.step("tune.evaluate").unwrap()),
        ["tune.train"]
    );
    assert_eq!(dependencies(&p, p.step("pick").unwrap()), ["tune"]);
    // Tasks name their step: copies and iterations by index.
    assert_eq!(
        p.step_of_task("tune[1].train[0]").unwrap().name,
        "tune.train"
    );
    assert!(p.is_handler_task("tune[0].report"));
    assert!(!p.is_handler_task("tune[0].evaluate"));
}

#[test]
fn group_mistakes_are_placed_and_explained() {
    let bad = r#"
name: bad
steps:
  - name: g
    image: busybox
    retry: 2
    steps:
      - name: a
        image: busybox
        command: [echo, "{{group.status}} {{loops.g.item}}"]
        outputs: {params: {x: int}}
      - name: b
        image: busybox
        command: [echo, "{{steps.g.outputs.params.y}}"]
    outputs:
      params: {y: "{{steps.a.outputs.params.x}}", z: "{{steps.nope.outputs.params.x}}", w: "{{steps.a.outputs.params.q}}"}
  - name: outside
    image: busybox
    command: [echo, "{{steps.a.outputs.params.x}}"]
    onExit: []
  - name: empty
    steps: []
  - name: h
    steps:
      - {name: x, image: busybox}
    onExit:
      - name: nested
        steps:
          - {name: y, image: busybox}
"#;
    let e = errors(bad);
    let want = [
        "5:5: step `g` is a group (it has `steps`) and so cannot set `image`",
        "6:5: step `g` is a group (it has `steps`) and so cannot set `retry`",
        "10:25: `{{group.status}}` is defined only in a group's exit handlers",
        "10:25: `{{loops.g.item}}` is defined only in the steps of a loop named `g`",
        "14:25: step `g.b` is inside group `g` and cannot wait for it or read its outputs",
        "16:54: output `z` of group `g` names `nope`, which is not one of its steps (it has: a, b)",
        "16:92: step `g.a` has no output param `q` (it has: x)",
        "19:21: reference to unknown step `a` (`a` is a step of group `g`, seen only inside it",
        "20:13: step `outside` has `onExit` but no `steps`",
        "22:12: step `empty` is a group with no steps",
        "27:15: exit handler `nested` cannot be a group",
    ];
    for w in want {
        assert!(
            e.iter().any(|x| x.starts_with(w)),
            "missing {w:?} in {e:#?}"
        );
    }
}

#[test]
fn networks_are_chosen_by_the_step_or_the_pipeline_and_unknown_ones_are_named() {
    let p = load(
        "p.yaml",
        "name: n\nnetwork: none\nsteps:\n  - {name: a, image: x}\n  - {name: b, image: x, network: bridge}\n  - {name: c, image: x, network: host}\n",
    )
    .unwrap();
    assert_eq!(p.network, Some(NetworkMode::None));
    let nets: Vec<_> = p
        .steps
        .iter()
        .map(|s| p.template_of(s).unwrap().network)
        .collect();
    assert_eq!(
        nets,
        [None, Some(NetworkMode::Bridge), Some(NetworkMode::Host)]
    );
    let plain = load("p.yaml", "name: n\nsteps:\n  - {name: a, image: x}\n").unwrap();
    assert_eq!(plain.network, None);
    let e = errors("name: n\nsteps:\n  - {name: a, image: x, network: bridged}\n");
    assert_eq!(
        e,
        ["3:34: `network` must be `none` (loopback only), `bridge` (the run's network, out through NAT) or `host` (the host's), found `bridged`"]
    );
}

#[test]
fn daemon_steps_serve_and_later_steps_wait_for_them_by_address() {
    let p = load(
        "p.yaml",
        r#"name: n
steps:
  - {name: serve, image: x, daemon: true}
  - {name: model, image: x, daemon: {port: 8080}}
  - name: ask
    image: x
    command: [wget, 'http://{{steps.model.ip}}:8080/']
"#,
    )
    .unwrap();
    let daemon = |i: usize| p.control(&p.steps[i]).daemon.map(|d| d.value);
    assert_eq!(daemon(0), Some(Daemon { port: None }));
    assert_eq!(daemon(1), Some(Daemon { port: Some(8080) }));
    assert_eq!(daemon(2), None);
    // Naming a step's address makes the step wait for it.
    assert_eq!(dependencies(&p, &p.steps[2]), ["model"]);

    let e = errors(
        r#"name: n
network: none
steps:
  - {name: a, image: x, daemon: {port: 70000}}
  - {name: b, image: x, daemon: yes}
  - {name: c, image: x, daemon: true}
  - {name: d, image: x, daemon: true, network: bridge, forEach: [1, 2]}
  - {name: e, image: x, daemon: true, network: bridge, outputs: {params: {o: int}}}
  - {name: f, image: x, command: ['{{steps.e.ip}} {{steps.g.ip}} {{steps.nope.ip}}']}
  - {name: g, image: x, network: bridge}
  - name: grp
    daemon: true
    steps: [{name: h, image: x}]
"#,
    );
    assert_eq!(
        e,
        [
            "4:40: `port` must be a TCP port (1 to 65535), found an integer",
            "5:33: `daemon` must be true, false or {port: N} (the TCP port it serves on, which the steps after it wait for), found a string",
            "6:33: daemon step `c` serves on its run's network and needs `network: bridge`, not `none`",
            "7:33: step `d` cannot both loop (`forEach`) and serve (`daemon`)",
            "8:33: daemon step `e` cannot have outputs: it is stopped when the steps after it are done, not finished",
            "9:35: `{{steps.g.ip}}`: step `g` does not serve, and only a step with `daemon: true` has an address others reach while it runs",
            "9:35: reference to unknown step `nope`",
            "12:5: step `grp` is a group (it has `steps`) and so cannot set `daemon`; a group may set name, description, dependsOn, steps, onExit, outputs, when, forEach, parallelism",
        ]
    );
}

#[test]
fn pipeline_input_artifacts_are_declared_bound_and_checked() {
    let ok = r#"
name: p
artifacts:
  dataset: {type: dataset, description: training rows}
  config:
steps:
  - name: a
    image: busybox
    inputs: {artifacts: {rows: {type: dataset}}}
    artifacts: {rows: "{{artifacts.dataset}}"}
    command: [cat, "{{inputs.artifacts.rows}}", "{{artifacts.config}}"]
"#;
    let p = crate::load("p.yaml", ok).unwrap_or_else(|d| panic!("{}", d.render(ok)));
    assert_eq!(p.artifacts.len(), 2);
    assert_eq!(p.artifacts[0].kind.as_deref(), Some("dataset"));
    let bad = r#"
name: p
artifacts:
  dataset: {type: dataset}
  Bad.Name: {}
components:
  c:
    image: busybox
    command: [cat, "{{artifacts.dataset}}"]
steps:
  - name: a
    image: busybox
    inputs: {params: {x: string}, artifacts: {m: {type: model}, n: {}}}
    artifacts: {m: "{{artifacts.dataset}}", n: "{{artifacts.datset}}"}
    params: {x: "{{artifacts.dataset}}"}
  - name: b
    component: c
"#;
    let e = errors(bad).join("\n");
    for want in [
        "invalid artifact name `Bad.Name`",
        "a component cannot refer to `{{artifacts.dataset}}` directly",
        "input artifact `m` of step `a` is a model, but the pipeline's input artifact `dataset` is a dataset",
        "`{{artifacts.datset}}` names no input artifact of the pipeline (did you mean `dataset`?)",
        "`{{artifacts.dataset}}` is an artifact, not a value",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
}
