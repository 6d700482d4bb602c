//! The REST API with an in-process server and worker (fake runtime).

use crate::harness::*;
use sluice_sdk::api::{CreateRun, EndReason, ErrorCode, RegisterWorker, RunState, TaskState};
use sluice_sdk::client::ClientError;
use std::time::Duration;

pub const DIAMOND: &str = r#"
name: diamond
description: parameters and an artifact through a diamond
params:
  seed: {type: int, default: 5}
steps:
  - name: a
    image: busybox
    env: {FAKE_OUT_x: "{{params.seed}}", FAKE_LOG: "hello|from a"}
    outputs: {params: {x: int}}
  - name: b
    image: busybox
    params: {x: "{{steps.a.outputs.params.x}}"}
    env: {FAKE_OUT_y: "b{{inputs.params.x}}", FAKE_IMAGE_DIGEST: "sha256:1111111111111111111111111111111111111111111111111111111111111111"}
    outputs: {params: {y: string}}
  - name: c
    image: busybox
    params: {x: "{{steps.a.outputs.params.x}}"}
    env: {FAKE_OUT_y: "c{{inputs.params.x}}", FAKE_ART_model: "weights"}
    outputs: {params: {y: string}, artifacts: {model: {type: model}}}
  - name: d
    image: busybox
    params:
      both: "{{steps.b.outputs.params.y}}+{{steps.c.outputs.params.y}}"
    command: [cat, "{{steps.c.outputs.artifacts.model}}"]
    env: {FAKE_OUT_z: "{{inputs.params.both}}"}
    outputs: {params: {z: string}}
"#;

#[tokio::test]
async fn a_diamond_passes_parameters_and_artifacts_end_to_end() {
    let env = InProcess::start().await;
    let req = CreateRun {
        yaml: Some(DIAMOND.into()),
        params: [("seed".to_string(), serde_json::json!("7"))].into(),
        ..Default::default()
    };
    let run = env.client.create_run(&req).await.unwrap();
    assert_eq!(run.tasks.len(), 4);
    assert_eq!(
        run.summary.params["seed"],
        serde_json::json!(7),
        "the string from the command line is stored as the declared int"
    );
    assert_eq!(run.summary.end_reason, None, "it runs");
    let done = wait_run(&env.client, &run.summary.id, Duration::from_secs(20)).await;
    assert_eq!(done.summary.state, RunState::Succeeded, "{:?}", done.error);
    assert_eq!(done.summary.end_reason, Some(EndReason::Tasks));
    let task = |n: &str| done.tasks.iter().find(|t| t.name == n).unwrap();
    assert_eq!(task("a").outputs["x"], serde_json::json!(7));
    assert_eq!(task("d").outputs["z"], serde_json::json!("b7+c7"));
    assert_eq!(task("d").inputs["both"], serde_json::json!("b7+c7"));
    assert_eq!(task("d").depends_on, vec!["b", "c"]);
    assert_eq!(
        task("b").image_digest.as_deref(),
        Some("sha256:1111111111111111111111111111111111111111111111111111111111111111"),
        "the image's resolved digest is recorded on the task"
    );
    assert_eq!(task("a").image_digest, None);
    let model = &task("c").artifacts[0];
    assert_eq!((model.name.as_str(), model.size), ("model", 7));
    assert_eq!(
        model.digest,
        format!("blake3:{}", blake3::hash(b"weights").to_hex())
    );
    for t in &done.tasks {
        assert_eq!(t.state, TaskState::Succeeded);
        assert_eq!(t.attempt, 1);
        assert!(t.started_at.is_some() && t.finished_at.is_some());
    }
    // d saw c's artifact at its mounted path, with every placeholder resolved.
    let d = env
        .runtime
        .records()
        .into_iter()
        .find(|r| r.task == "d")
        .unwrap();
    assert_eq!(
        d.command,
        Some(vec![
            "cat".to_string(),
            "/sluice/inputs/artifacts/c.model".to_string()
        ])
    );
    // a's log lines were shipped and stored.
    let page = env.client.logs(&run.summary.id, "a", 0, 100).await.unwrap();
    let lines: Vec<&str> = page.lines.iter().map(|l| l.line.as_str()).collect();
    assert_eq!(lines, ["hello", "from a"]);
    assert!(page.complete);
}

#[tokio::test]
async fn stored_pipelines_are_versioned_and_runnable() {
    let env = InProcess::start().await;
    let v1 = env.client.upload_pipeline(DIAMOND, None).await.unwrap();
    assert_eq!((v1.version, v1.created), (1, true));
    let again = env.client.upload_pipeline(DIAMOND, None).await.unwrap();
    assert_eq!(
        (again.version, again.created),
        (1, false),
        "the same bytes are the same version"
    );
    let changed = DIAMOND.replace("default: 5", "default: 6");
    let v2 = env.client.upload_pipeline(&changed, None).await.unwrap();
    assert_eq!(v2.version, 2);
    let versions = env.client.pipeline_versions("diamond").await.unwrap();
    assert_eq!(
        versions
            .versions
            .iter()
            .map(|v| v.version)
            .collect::<Vec<_>>(),
        [2, 1]
    );
    assert_eq!(versions.versions[1].yaml, DIAMOND, "kept verbatim");

    let run = env
        .client
        .create_run(&CreateRun {
            pipeline: Some("diamond".into()),
            version: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(run.summary.pipeline_version, Some(1));
    let done = wait_run(&env.client, &run.summary.id, Duration::from_secs(20)).await;
    assert_eq!(done.tasks[3].outputs["z"], serde_json::json!("b5+c5"));
    let latest = env
        .client
        .create_run(&CreateRun {
            pipeline: Some("diamond".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let done = wait_run(&env.client, &latest.summary.id, Duration::from_secs(20)).await;
    assert_eq!(done.tasks[3].outputs["z"], serde_json::json!("b6+c6"));

    let failed = wait_run(
        &env.client,
        &env.client
            .create_run(&CreateRun {
                yaml: Some(
                    DIAMOND.replace("FAKE_OUT_x: \"{{params.seed}}\", ", "FAKE_EXIT: \"3\", "),
                ),
                ..Default::default()
            })
            .await
            .unwrap()
            .summary
            .id,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(failed.summary.state, RunState::Failed);
    assert_eq!(
        failed.error.as_deref(),
        Some("step `a` failed: exited with code 3")
    );
    assert!(failed.tasks[1..]
        .iter()
        .all(|t| t.state == TaskState::Skipped));

    let list = env
        .client
        .list_runs(None, Some("diamond"), 2, None)
        .await
        .unwrap();
    assert_eq!(list.runs.len(), 2);
    let token = list.next_page_token.clone().expect("a second page");
    let rest = env
        .client
        .list_runs(None, Some("diamond"), 2, Some(&token))
        .await
        .unwrap();
    assert_eq!(rest.runs.len(), 1);
    assert!(rest.next_page_token.is_none());
    let failed_only = env
        .client
        .list_runs(Some("failed"), None, 10, None)
        .await
        .unwrap();
    assert_eq!(failed_only.runs.len(), 1);
}

#[tokio::test]
async fn bad_input_gets_a_coded_4xx_and_leaves_nothing_behind() {
    let env = InProcess::start().await;
    let api_err = |r: Result<_, ClientError>| match r {
        Err(ClientError::Api { status, error }) => (status, error),
        Ok(_) => panic!("expected an API error"),
        Err(e) => panic!("expected an API error, got {e}"),
    };
    // Invalid YAML: every diagnostic, with its place.
    let (status, e) = api_err(
        env.client
            .upload_pipeline(
                "name: x\nsteps:\n  - name: a\n    imgae: b\n  - name: a\n    image: b\n",
                Some("p.yaml"),
            )
            .await
            .map(|_| ()),
    );
    assert_eq!((status, e.code.as_str()), (422, "invalid_pipeline"));
    let items = e.details.unwrap()["items"].as_array().unwrap().clone();
    assert!(items.len() >= 2, "{items:?}");
    assert!(items.iter().any(|i| i["line"] == 4
        && i["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `image`")));
    assert!(e.message.contains("p.yaml:4:5"), "{}", e.message);
    let (status, e) = api_err(
        env.client
            .create_run(&CreateRun {
                yaml: Some("steps: [".into()),
                ..Default::default()
            })
            .await
            .map(|_| ()),
    );
    assert_eq!((status, e.code.as_str()), (422, "invalid_pipeline"));
    // Bad parameter values.
    let bad = CreateRun {
        yaml: Some(DIAMOND.into()),
        params: [
            ("seed".to_string(), serde_json::json!("many")),
            ("nope".to_string(), serde_json::json!(1)),
        ]
        .into(),
        ..Default::default()
    };
    let (status, e) = api_err(env.client.create_run(&bad).await.map(|_| ()));
    assert_eq!((status, e.code.as_str()), (422, "invalid_params"));
    assert!(
        e.message.contains("unknown parameter `nope`")
            && e.message.contains("parameter `seed` is int"),
        "{}",
        e.message
    );
    // Ambiguous or empty requests, unknown things.
    let (status, e) = api_err(
        env.client
            .create_run(&CreateRun::default())
            .await
            .map(|_| ()),
    );
    assert_eq!((status, e.code.as_str()), (400, "invalid_body"));
    let (status, e) = api_err(
        env.client
            .create_run(&CreateRun {
                pipeline: Some("ghost".into()),
                ..Default::default()
            })
            .await
            .map(|_| ()),
    );
    assert_eq!((status, e.code.as_str()), (404, "not_found"));
    let (status, e) = api_err(env.client.get_run("no-such-run").await.map(|_| ()));
    assert_eq!((status, e.code.as_str()), (404, "not_found"));
    let (status, e) = api_err(
        env.client
            .list_runs(Some("sleepy"), None, 10, None)
            .await
            .map(|_| ()),
    );
    assert_eq!((status, e.code.as_str()), (400, "invalid_query"));
    let (status, e) = api_err(
        env.client
            .lease(
                &sluice_sdk::api::WorkerIdentity {
                    id: "not-a-worker".into(),
                    credential: "slw_x".into(),
                },
                1,
                0,
            )
            .await
            .map(|_| ()),
    );
    assert_eq!((status, e.code.as_str()), (404, "unknown_worker"));

    // Malformed JSON bodies, sent raw.
    let http = reqwest::Client::new();
    for (body, ctype) in [
        ("{\"yaml\": 3}", "application/json"),
        ("not json", "application/json"),
        ("{\"yaml\": \"x\"}", "text/plain"),
    ] {
        let r = http
            .post(format!("{}/api/v1/runs", env.url))
            .header("content-type", ctype)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{body}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "invalid_body", "{body}: {v}");
    }
    let r = http
        .get(format!("{}/api/v1/nowhere", env.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);

    // Nothing was stored.
    assert!(env
        .client
        .list_runs(None, None, 10, None)
        .await
        .unwrap()
        .runs
        .is_empty());
    assert!(env
        .client
        .list_pipelines()
        .await
        .unwrap()
        .pipelines
        .is_empty());
}

#[tokio::test]
async fn cancel_stops_running_tasks_and_skips_the_rest() {
    let env = InProcess::start().await;
    let yaml = "name: slow\nsteps:\n  - name: a\n    image: b\n    env: {FAKE_SLEEP_MS: \"30000\"}\n  - name: b\n    image: b\n    dependsOn: [a]\n";
    let id = submit(&env.client, yaml).await;
    wait_until(
        &env.client,
        &id,
        Duration::from_secs(10),
        "a running",
        |d| d.tasks[0].state == TaskState::Running,
    )
    .await;
    let c = env.client.cancel_run(&id).await.unwrap();
    assert_eq!(c.summary.state, RunState::Cancelling);
    assert_eq!(c.summary.end_reason, Some(EndReason::Cancelled));
    let done = wait_run(&env.client, &id, Duration::from_secs(10)).await;
    assert_eq!(done.summary.state, RunState::Cancelled);
    assert_eq!(done.summary.end_reason, Some(EndReason::Cancelled));
    assert_eq!(done.tasks[0].state, TaskState::Cancelled);
    assert_eq!(done.tasks[1].state, TaskState::Cancelled);
    assert!(
        !env.runtime.records()[0].completed,
        "the running task was stopped, not left to finish"
    );
    let again = env.client.cancel_run(&id).await;
    assert!(matches!(again, Err(ClientError::Api { status: 409, .. })));
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_nothing_else() {
    let env = InProcess::start().await;
    let doc: serde_json::Value = reqwest::get(format!("{}/api/v1/openapi.json", env.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
    let paths = doc["paths"].as_object().expect("paths");
    let documented: std::collections::BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .filter(|m| ["get", "post", "put", "patch", "delete"].contains(&m.as_str()))
                .map(move |m| (m.to_uppercase(), p.clone()))
        })
        .collect();
    // The routes as the router is built from them.
    let served: std::collections::BTreeSet<(String, String)> = sluice_server::api::routes()
        .into_iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert!(served.len() >= 20, "{served:?}");
    assert_eq!(
        served.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "served but not documented"
    );
    assert_eq!(
        documented.difference(&served).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented but not served"
    );
    // And each documented route answers as a route (not the API's 404 for unknown endpoints).
    let http = reqwest::Client::new();
    for (m, p) in &served {
        let path = p
            .replace("{name}", "x")
            .replace("{version}", "1")
            .replace("{id}", "x")
            .replace("{task}", "x");
        let method = reqwest::Method::from_bytes(m.as_bytes()).unwrap();
        let r = http
            .request(method, format!("{}/api/v1{path}", env.url))
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        // An event stream answers and goes on: its first bytes are enough.
        let body: serde_json::Value =
            match tokio::time::timeout(std::time::Duration::from_secs(2), r.text()).await {
                Ok(Ok(text)) => serde_json::from_str(&text).unwrap_or_default(),
                _ => serde_json::Value::Null,
            };
        assert_ne!(
            body["error"]["message"],
            serde_json::json!("no such API endpoint"),
            "{m} {p}"
        );
    }
}

#[tokio::test]
async fn logs_and_events_stream_live_while_a_task_runs() {
    let env = InProcess::start().await;
    // The step runs until the test has seen its first line.
    let release = env.dir.path().join("release");
    let yaml = format!("name: live\nsteps:\n  - name: a\n    image: b\n    env: {{FAKE_LOG: \"one|two\", FAKE_WAIT_FILE: \"{}\"}}\n", release.display());
    let id = submit(&env.client, &yaml).await;
    let mut events = env.client.run_events(&id).await.unwrap();
    let mut logs = env.client.follow_logs(&id, "a").await.unwrap();
    let mut seen = Vec::new();
    while let Some(ev) = logs.next::<sluice_sdk::api::RunEvent>().await {
        if let sluice_sdk::api::RunEvent::Log(l) = ev.unwrap() {
            // Lines arrive before the task has finished.
            if seen.is_empty() {
                let d = env.client.get_run(&id).await.unwrap();
                assert!(
                    !d.tasks[0].state.is_terminal(),
                    "the first line came only after the task ended"
                );
                std::fs::write(&release, "").unwrap();
            }
            seen.push(l.line);
        }
    }
    assert_eq!(
        seen,
        ["one", "two"],
        "the follow stream ends when the task does"
    );
    let mut kinds = Vec::new();
    while let Some(ev) = events.next::<sluice_sdk::api::RunEvent>().await {
        match ev.unwrap() {
            sluice_sdk::api::RunEvent::Task { state, .. } => kinds.push(format!("task:{state}")),
            sluice_sdk::api::RunEvent::Log(l) => kinds.push(format!("log:{}", l.line)),
            sluice_sdk::api::RunEvent::Run { state, .. } => kinds.push(format!("run:{state}")),
        }
    }
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("run:succeeded"),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"log:one".to_string()) && kinds.contains(&"task:succeeded".to_string()),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn a_server_token_is_required_when_set() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let cfg = sluice_server::ServerConfig {
        data_dir: dir.path().to_path_buf(),
        scheduler: Default::default(),
        token: Some("s3cret+/=&".into()),
        ..Default::default()
    };
    tokio::spawn(sluice_server::serve(cfg, listener, std::future::pending()));
    let anon = sluice_sdk::client::Client::new(&url, None);
    while anon.health().await.is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    match anon.list_runs(None, None, 10, None).await {
        Err(ClientError::Api { status: 401, error }) => {
            assert_eq!(error.code, ErrorCode::Unauthorized)
        }
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    let wrong = sluice_sdk::client::Client::new(&url, Some("nope".into()));
    assert!(matches!(
        wrong
            .register_worker(&RegisterWorker::new("w", 1, None))
            .await,
        Err(ClientError::Api { status: 401, .. })
    ));
    let ok = sluice_sdk::client::Client::new(&url, Some("s3cret+/=&".into()));
    assert!(ok
        .list_runs(None, None, 10, None)
        .await
        .unwrap()
        .runs
        .is_empty());
    // A browser's token comes in the query, percent-encoded, on the downloads and event streams
    // it opens without headers; on other routes a query token is refused.
    let http = sluice_sdk::client::http_client();
    let status = |q: &'static str| {
        let http = http.clone();
        let url = format!("{url}/api/v1/{q}");
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };
    let download = "runs/none/tasks/t/artifacts/a";
    assert_eq!(
        status("runs/none/tasks/t/artifacts/a?access_token=s3cret%2B%2F%3D%26").await,
        404
    );
    assert_eq!(
        status("runs/none/tasks/t/artifacts/a?path=x&access_token=s3cret%2B%2F%3D%26").await,
        404
    );
    assert_eq!(
        status("runs/none/tasks/t/artifacts/a?access_token=s3cret").await,
        401
    );
    assert_eq!(status(download).await, 401);
    assert_eq!(
        status("runs?state=failed&access_token=s3cret%2B%2F%3D%26").await,
        400
    );
}

#[tokio::test]
async fn runs_are_found_by_any_part_of_their_name_ignoring_case() {
    let env = InProcess::start().await;
    let yaml = "name: search\nsteps:\n  - name: a\n    image: busybox\n";
    for name in ["alpha-Train-1", "beta-train-2", "gamma"] {
        let req = sluice_sdk::api::CreateRun {
            yaml: Some(yaml.into()),
            name: Some(name.into()),
            ..Default::default()
        };
        env.client.create_run(&req).await.unwrap();
    }
    let http = sluice_sdk::client::http_client();
    let names = |q: &'static str| {
        let http = http.clone();
        let url = format!("{}/api/v1/runs?q={q}", env.url);
        async move {
            let v: serde_json::Value = http.get(url).send().await.unwrap().json().await.unwrap();
            let mut n: Vec<String> = v["runs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["name"].as_str().unwrap().to_string())
                .collect();
            n.sort();
            n
        }
    };
    // Three letters or more go through the trigram index, shorter ones through a scan: the
    // answers agree.
    assert_eq!(names("train").await, ["alpha-Train-1", "beta-train-2"]);
    assert_eq!(names("TRAIN-2").await, ["beta-train-2"]);
    assert_eq!(names("mm").await, ["gamma"]);
    assert_eq!(names("a-").await, ["alpha-Train-1", "beta-train-2"]);
    assert!(names("zzz").await.is_empty());
}
