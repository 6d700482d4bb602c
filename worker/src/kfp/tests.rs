use super::*;
use sluice_sdk::api::{InputArtifact, OutputArtifact, OutputParam};
use sluice_spec::kfp::{Io, Launch};

fn param(name: &str, ty: ParameterType) -> Io {
    Io {
        name: name.into(),
        ty: IoType::Parameter { ty },
    }
}

fn artifact(name: &str, title: &str, list: bool) -> Io {
    Io {
        name: name.into(),
        ty: IoType::Artifact {
            schema_title: title.into(),
            schema_version: "0.0.1".into(),
            list,
        },
    }
}

fn spec(command: &[&str], args: &[&str], values: Value) -> TaskSpec {
    let values: BTreeMap<String, Value> = serde_json::from_value(values).unwrap();
    TaskSpec {
        image: "python:3.11-slim".into(),
        input_artifacts: vec![
            InputArtifact {
                name: "data".into(),
                path: "/sluice/inputs/artifacts/data".into(),
                uri: "file:///a/data".into(),
                producer: "make".into(),
                metadata: Some(json!({"rows": 3})),
                digest: None,
                size: None,
            },
            InputArtifact {
                name: "models/10".into(),
                path: "/sluice/inputs/artifacts/models/10".into(),
                uri: "file:///a/m10".into(),
                producer: "train".into(),
                metadata: None,
                digest: None,
                size: None,
            },
            InputArtifact {
                name: "models/9".into(),
                path: "/sluice/inputs/artifacts/models/9".into(),
                uri: "file:///a/m9".into(),
                producer: "train".into(),
                metadata: None,
                digest: None,
                size: None,
            },
        ],
        output_params: vec![OutputParam {
            name: "n".into(),
            ty: sluice_spec::ParamType::Int,
            path: "/sluice/outputs/params/n".into(),
        }],
        output_artifacts: vec![OutputArtifact {
            name: "m".into(),
            path: "/sluice/outputs/artifacts/m".into(),
            kind: Some("system.Metrics".into()),
        }],
        kfp: Some(Task {
            launch: Launch {
                command: command.iter().map(|s| s.to_string()).collect(),
                args: args.iter().map(|s| s.to_string()).collect(),
                inputs: vec![
                    param("text", ParameterType::String),
                    param("count", ParameterType::NumberInteger),
                    param("opt", ParameterType::String),
                    param("status", ParameterType::TaskFinalStatus),
                    artifact("data", "system.Dataset", false),
                    artifact("models", "system.Model", true),
                ],
                outputs: vec![
                    param("n", ParameterType::NumberInteger),
                    artifact("m", "system.Metrics", false),
                ],
                importer: None,
            },
            values,
            job_name: "nightly".into(),
            job_id: "r1".into(),
            task_name: "exit-handler-1.notify".into(),
            task_id: "r1.exit-handler-1.notify.1".into(),
        }),
        ..TaskSpec::default()
    }
}

#[test]
fn placeholders_are_filled_as_kubeflows_launcher_fills_them() {
    let mut s = spec(
        &[
            "sh",
            "-c",
            r#"{"Concat": ["echo ", "{{$.inputs.parameters['text']}}", " > ", "{{$.outputs.parameters['n'].output_file}}"]}"#,
        ],
        &[
            r#"{"IfPresent": {"InputName": "opt", "Then": ["--opt", "{{$.inputs.parameters['opt']}}"], "Else": ["--none"]}}"#,
            r#"{"IfPresent": {"InputName": "data", "Then": ["--data={{$.inputs.artifacts['data'].path}}"]}}"#,
            "--count={{$.inputs.parameters['count']}}",
            "{{$.inputs.artifacts['data'].metadata}}",
            "{{$.outputs.artifacts['m'].uri}}",
            "{{$.pipeline_job_name}}/{{$.pipeline_task_name}}",
        ],
        json!({"text": "hi there", "count": 3.0}),
    );
    launch(&mut s).unwrap();
    assert_eq!(
        s.command.unwrap(),
        ["sh", "-c", "echo hi there > /sluice/outputs/params/n"]
    );
    assert_eq!(
        s.args.unwrap(),
        [
            "--none",
            "--data=/sluice/inputs/artifacts/data",
            "--count=3",
            r#"{"rows":3}"#,
            "/sluice/outputs/artifacts/m",
            "nightly/exit-handler-1.notify",
        ]
    );
}

#[test]
fn the_executor_input_holds_values_artifacts_and_where_outputs_go() {
    let mut s = spec(
        &["run"],
        &["--executor_input", "{{$}}"],
        json!({"count": 2.0, "status": "failed"}),
    );
    launch(&mut s).unwrap();
    let input: Value = serde_json::from_str(&s.args.unwrap()[1]).unwrap();
    assert_eq!(input["inputs"]["parameterValues"]["count"], json!(2));
    let status = &input["inputs"]["parameterValues"]["status"];
    assert_eq!(status["state"], "FAILED");
    assert_eq!(status["pipelineTaskName"], "exit-handler-1");
    assert!(status["error"]["message"].is_string());
    let data = &input["inputs"]["artifacts"]["data"]["artifacts"][0];
    assert_eq!(data["uri"], "/sluice/inputs/artifacts/data");
    assert_eq!(data["metadata"]["rows"], 3);
    assert_eq!(data["type"]["schemaTitle"], "system.Dataset");
    // A collected list comes in iteration order.
    let models: Vec<&str> = input["inputs"]["artifacts"]["models"]["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["uri"].as_str().unwrap())
        .collect();
    assert_eq!(
        models,
        [
            "/sluice/inputs/artifacts/models/9",
            "/sluice/inputs/artifacts/models/10"
        ]
    );
    assert_eq!(
        input["outputs"]["outputFile"],
        "/sluice/outputs/params/executor_output.json"
    );
    assert_eq!(
        input["outputs"]["parameters"]["n"]["outputFile"],
        "/sluice/outputs/params/n"
    );
    assert_eq!(
        input["outputs"]["artifacts"]["m"]["artifacts"][0]["uri"],
        "/sluice/outputs/artifacts/m"
    );
}

#[test]
fn an_importer_copies_a_host_file_or_tree_without_following_links_out() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("tree/sub")).unwrap();
    std::fs::write(src.join("rows.csv"), "a\nb\n").unwrap();
    std::fs::write(src.join("tree/sub/x"), "x").unwrap();
    std::os::unix::fs::symlink("/etc/shadow", src.join("tree/secret")).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", src.join("link")).unwrap();
    let importer = |uri: &str| {
        let mut s = spec(&[], &[], json!({}));
        s.output_artifacts[0].name = "artifact".into();
        s.input_artifacts.clear();
        let k = s.kfp.as_mut().unwrap();
        k.launch.importer = Some(sluice_spec::kfp::Importer {
            uri: Some(uri.to_string()),
            uri_param: None,
            metadata: Some(json!({"source": "lab"})),
        });
        s
    };
    let out = |n: &str| {
        let d = dir.path().join("out").join(n);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let file = format!("file://{}/rows.csv", src.display());
    let r = import(&importer(&file), &out("1"));
    assert_eq!(
        r.outcome,
        sluice_spec::state::Outcome::Succeeded,
        "{:?}",
        r.error
    );
    assert_eq!(r.artifacts[0].size, 4);
    assert_eq!(r.artifacts[0].metadata, Some(json!({"source": "lab"})));
    let tree = format!("file://{}/tree", src.display());
    let r = import(&importer(&tree), &out("2"));
    assert_eq!(
        r.outcome,
        sluice_spec::state::Outcome::Succeeded,
        "{:?}",
        r.error
    );
    let copied = dir.path().join("out/2/artifact");
    assert_eq!(std::fs::read_to_string(copied.join("sub/x")).unwrap(), "x");
    // A link inside is copied as a link, never read through.
    assert_eq!(
        std::fs::read_link(copied.join("secret")).unwrap(),
        Path::new("/etc/shadow")
    );
    // A link as the import itself, a URI of another scheme, `..`: refused.
    for (uri, says) in [
        (format!("file://{}/link", src.display()), "link"),
        ("gs://bucket/x".to_string(), "gs://"),
        (
            format!("file://{}/../src/rows.csv", src.display()),
            "plain absolute",
        ),
    ] {
        let r = import(&importer(&uri), &out("3"));
        assert_eq!(r.outcome, sluice_spec::state::Outcome::Failed, "{uri}");
        assert!(
            r.error.as_deref().unwrap_or("").contains(says),
            "{uri}: {:?}",
            r.error
        );
    }
}

#[test]
fn unknown_placeholders_and_missing_values_fail_the_launch_by_name() {
    let mut s = spec(&["x"], &["{{$.inputs.parameters['opt']}}"], json!({}));
    assert!(launch(&mut s).unwrap_err().contains("`opt` has no value"));
    let mut s = spec(&["x"], &["{{$.nope}}"], json!({}));
    assert!(launch(&mut s).unwrap_err().contains("{{$.nope}}"));
    let mut s = spec(&["x"], &[r#"{"Concat": 3}"#], json!({}));
    assert!(launch(&mut s).is_err());
}

#[test]
fn executor_output_values_and_metadata_are_read_typed() {
    let dir = tempfile::tempdir().unwrap();
    let (params, arts) = (dir.path().join("p"), dir.path().join("a"));
    std::fs::create_dir_all(&params).unwrap();
    std::fs::create_dir_all(&arts).unwrap();
    std::fs::write(
        params.join(EXECUTOR_OUTPUT),
        r#"{"parameterValues": {"n": 7.0}, "artifacts": {"m": {"artifacts": [{"name": "m", "uri": "/x", "metadata": {"accuracy": 0.9}}]}}}"#,
    )
    .unwrap();
    let s = spec(&[], &[], json!({}));
    let mut values = BTreeMap::new();
    let meta = outputs(&s, &params, &arts, &mut values).unwrap();
    assert_eq!(values["n"], "7");
    assert_eq!(meta["m"], json!({"accuracy": 0.9}));
    // The metrics artifact was metadata only: it is recorded, empty.
    assert_eq!(std::fs::metadata(arts.join("m")).unwrap().len(), 0);

    std::fs::write(
        params.join(EXECUTOR_OUTPUT),
        r#"{"parameterValues": {"zz": 1}}"#,
    )
    .unwrap();
    let err = outputs(&s, &params, &arts, &mut BTreeMap::new()).unwrap_err();
    assert!(err.contains("`zz`"), "{err}");
    std::fs::write(params.join(EXECUTOR_OUTPUT), "not json").unwrap();
    assert!(outputs(&s, &params, &arts, &mut BTreeMap::new()).is_err());
    // An executor output's values and metadata are held to a parameter's size.
    let big = "x".repeat(300 * 1024);
    std::fs::write(
        params.join(EXECUTOR_OUTPUT),
        format!(r#"{{"parameterValues": {{"n": "{big}"}}}}"#),
    )
    .unwrap();
    let err = outputs(&s, &params, &arts, &mut BTreeMap::new()).unwrap_err();
    assert!(err.contains("output parameter `n`"), "{err}");
    std::fs::write(
        params.join(EXECUTOR_OUTPUT),
        format!(r#"{{"artifacts": {{"m": {{"artifacts": [{{"metadata": {{"k": "{big}"}}}}]}}}}}}"#),
    )
    .unwrap();
    let err = outputs(&s, &params, &arts, &mut BTreeMap::new()).unwrap_err();
    assert!(err.contains("metadata of output artifact `m`"), "{err}");
}
