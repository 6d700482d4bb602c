//! `sluice bench kfp`: importing a large compiled Kubeflow pipeline, and the launcher's work per
//! task, each the median of repeated runs on this machine.

use std::fmt::Write;
use std::time::Instant;

/// A PipelineSpec as kfp 2 compiles a chain of `tasks` lightweight components (one component
/// each, every task reading its predecessor's output), with kfp's own launcher command.
pub fn generate(tasks: usize) -> String {
    let mut s = String::from("components:\n");
    for i in 0..tasks {
        let _ = write!(
            s,
            "  comp-step-{i}:\n    executorLabel: exec-step-{i}\n    inputDefinitions:\n      parameters:\n        x:\n          parameterType: NUMBER_INTEGER\n    outputDefinitions:\n      parameters:\n        Output:\n          parameterType: NUMBER_INTEGER\n"
        );
    }
    s.push_str("deploymentSpec:\n  executors:\n");
    for i in 0..tasks {
        let _ = write!(
            s,
            "    exec-step-{i}:\n      container:\n        args:\n        - --executor_input\n        - '{{{{$}}}}'\n        - --function_to_execute\n        - step\n        command:\n        - sh\n        - -c\n        - \"\\nif ! [ -x \\\"$(command -v pip)\\\" ]; then\\n    python3 -m ensurepip\\nfi\\n\\nPIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip install --quiet 'kfp==2.14.3' '--no-deps' && \\\"$0\\\" \\\"$@\\\"\\n\"\n        - sh\n        - -ec\n        - 'program_path=$(mktemp -d)\n\n          printf \"%s\" \"$0\" > \"$program_path/ephemeral_component.py\"\n\n          _KFP_RUNTIME=true python3 -m kfp.dsl.executor_main --component_module_path \"$program_path/ephemeral_component.py\" \"$@\"\n\n          '\n        - \"\\nimport kfp\\nfrom kfp import dsl\\n\\ndef step(x: int) -> int:\\n    return x + 1\\n\\n\"\n        image: python:3.11-slim\n"
        );
    }
    s.push_str("pipelineInfo:\n  name: bench\nroot:\n  dag:\n    tasks:\n");
    for i in 0..tasks {
        let _ = write!(s, "      step-{i}:\n        cachingOptions:\n          enableCache: true\n        componentRef:\n          name: comp-step-{i}\n");
        if i == 0 {
            s.push_str("        inputs:\n          parameters:\n            x:\n              componentInputParameter: start\n");
        } else {
            let _ = write!(s, "        dependentTasks:\n        - step-{p}\n        inputs:\n          parameters:\n            x:\n              taskOutputParameter:\n                outputParameterKey: Output\n                producerTask: step-{p}\n", p = i - 1);
        }
        let _ = write!(s, "        taskInfo:\n          name: step-{i}\n");
    }
    s.push_str("  inputDefinitions:\n    parameters:\n      start:\n        defaultValue: 1.0\n        isOptional: true\n        parameterType: NUMBER_INTEGER\nschemaVersion: 2.1.0\nsdkVersion: kfp-2.14.3\n");
    s
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn kfp(tasks: usize, repeat: usize) -> anyhow::Result<u8> {
    let text = generate(tasks);
    let limits = sluice_spec::Limits {
        yaml: sluice_spec::yaml::YamlLimits {
            max_bytes: text.len().max(4 << 20),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut times = Vec::new();
    for _ in 0..repeat {
        let t = Instant::now();
        let p = sluice_spec::load_with("bench.yaml", &text, &limits)
            .map_err(|d| anyhow::anyhow!("{}", d.render(&text)))?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(p.steps.len() == tasks, "imported {} steps", p.steps.len());
    }
    println!(
        "import a {tasks}-task kfp PipelineSpec ({} KiB): {:.1} ms (median of {repeat})",
        text.len() >> 10,
        median(times)
    );

    // The launcher's work for one task: fill its placeholders and executor input, then read
    // an executor output and a metrics artifact's metadata back.
    let dir = tempfile::tempdir()?;
    let (params, arts) = (dir.path().join("p"), dir.path().join("a"));
    std::fs::create_dir_all(&params)?;
    std::fs::create_dir_all(&arts)?;
    let spec = launch_spec();
    let mut times = Vec::new();
    for _ in 0..repeat.max(200) {
        let t = Instant::now();
        let mut s = spec.clone();
        sluice_worker::kfp::launch(&mut s).map_err(anyhow::Error::msg)?;
        std::fs::write(
            params.join(sluice_spec::kfp::EXECUTOR_OUTPUT),
            r#"{"parameterValues": {"Output": 2.0}, "artifacts": {"m": {"artifacts": [{"name": "m", "uri": "/x", "metadata": {"accuracy": 0.9}}]}}}"#,
        )?;
        let mut values = Default::default();
        let meta = sluice_worker::kfp::outputs(&s, &params, &arts, &mut values)
            .map_err(anyhow::Error::msg)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(meta.len() == 1, "metadata not read");
        let _ = std::fs::remove_file(arts.join("m"));
    }
    println!(
        "launcher work per task (executor input, placeholders, executor output, metadata): {:.3} ms (median of {})",
        median(times),
        repeat.max(200)
    );
    Ok(0)
}

fn launch_spec() -> sluice_sdk::api::TaskSpec {
    use sluice_spec::kfp::{Io, IoType, Launch, Task};
    let text = generate(1);
    let p = sluice_spec::load("bench.yaml", &text).expect("the generated file loads");
    let launch = p.components[0]
        .template
        .kfp
        .as_deref()
        .cloned()
        .unwrap_or_default();
    sluice_sdk::api::TaskSpec {
        image: "python:3.11-slim".into(),
        output_artifacts: vec![sluice_sdk::api::OutputArtifact {
            name: "m".into(),
            path: "/sluice/outputs/artifacts/m".into(),
            kind: Some("system.Metrics".into()),
        }],
        kfp: Some(Task {
            launch: Launch {
                outputs: launch
                    .outputs
                    .iter()
                    .cloned()
                    .chain([Io {
                        name: "m".into(),
                        ty: IoType::Artifact {
                            schema_title: "system.Metrics".into(),
                            schema_version: "0.0.1".into(),
                            list: false,
                        },
                    }])
                    .collect(),
                ..launch
            },
            values: [("x".to_string(), serde_json::json!(1))].into(),
            job_name: "bench".into(),
            job_id: "r".into(),
            task_name: "step-0".into(),
            task_id: "r.step-0.1".into(),
        }),
        ..Default::default()
    }
}
