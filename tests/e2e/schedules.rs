//! Experiments and schedules through sluice's own API (in-process server and worker, fake
//! runtime): a schedule's concurrency limit, pause and resume; experiments grouping runs, and
//! archiving one; what bad schedules and Kubeflow filters get.

use crate::harness::*;
use sluice_sdk::api::{CreateRun, CreateSchedule, ErrorCode, RunState, RunSummary};
use sluice_sdk::client::ClientError;
use std::time::{Duration, Instant};

/// One step that takes `ms`.
fn slow(ms: u64) -> String {
    format!("name: slow\nparams:\n  n: {{type: int, default: 1}}\nsteps:\n  - name: s\n    image: busybox\n    env: {{FAKE_SLEEP_MS: \"{ms}\"}}\n")
}

fn code(e: ClientError) -> (ErrorCode, String) {
    match e {
        ClientError::Api { error, .. } => (error.code, error.message),
        e => panic!("expected an API error, got {e}"),
    }
}

async fn fired(env: &InProcess, schedule: &str) -> Vec<RunSummary> {
    let mut runs = env
        .client
        .list_runs_where(&[
            ("schedule", schedule.to_string()),
            ("page_size", "1000".into()),
        ])
        .await
        .unwrap()
        .runs;
    runs.sort_by(|a, b| a.scheduled_at.cmp(&b.scheduled_at));
    runs
}

#[tokio::test]
async fn a_schedule_keeps_to_its_concurrency_limit_and_pauses_and_resumes() {
    let env = InProcess::start().await;
    let s = env
        .client
        .create_schedule(&CreateSchedule {
            name: "every-second".into(),
            yaml: Some(slow(2500)),
            interval_seconds: Some(1),
            max_concurrency: Some(1),
            catchup: Some(false),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(s.enabled && s.next_at.is_some(), "{s:?}");
    // Due every second, each run 2.5 s long, one at a time: no two overlap.
    tokio::time::sleep(Duration::from_millis(7500)).await;
    let runs = fired(&env, &s.id).await;
    assert!((2..=4).contains(&runs.len()), "{runs:#?}");
    for w in runs.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let done = a.finished_at.as_deref().expect("an earlier run has ended");
        assert!(
            b.created_at.as_str() >= done,
            "{} started at {} before {} ended at {done}",
            b.name,
            b.created_at,
            a.name
        );
        assert!(
            a.scheduled_at < b.scheduled_at,
            "a due time fired twice: {runs:#?}"
        );
    }
    // Paused, it fires nothing and has no next due time.
    let paused = env
        .client
        .set_schedule_enabled(&s.name, false)
        .await
        .unwrap();
    assert!(!paused.enabled && paused.next_at.is_none(), "{paused:?}");
    let before = fired(&env, &s.id).await.len();
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(fired(&env, &s.id).await.len(), before);
    // Resumed, it fires from now on, passing over what it was paused for.
    let resumed = env.client.set_schedule_enabled(&s.id, true).await.unwrap();
    assert!(resumed.enabled && resumed.next_at.is_some());
    let start = Instant::now();
    while fired(&env, &s.id).await.len() == before {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no run after resuming"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = fired(&env, &s.id).await;
    assert_eq!(all.len(), before + 1, "{all:#?}");
    assert!(all
        .iter()
        .all(|r| r.labels.is_empty() && r.experiment_id == all[0].experiment_id));
    env.client.delete_schedule(&s.id).await.unwrap();
    assert_eq!(
        code(env.client.get_schedule(&s.id).await.unwrap_err()).0,
        ErrorCode::NotFound
    );
    // The runs it fired stay.
    assert_eq!(fired(&env, &s.id).await.len(), all.len());
}

#[tokio::test]
async fn experiments_group_runs_and_archiving_one_archives_its_runs_and_pauses_its_schedules() {
    let env = InProcess::start().await;
    let c = &env.client;
    let e = c
        .create_experiment("tuning", Some("lr sweeps"))
        .await
        .unwrap();
    assert_eq!(
        code(c.create_experiment("tuning", None).await.unwrap_err()).0,
        ErrorCode::Conflict
    );
    let submit = |exp: Option<&str>| {
        let req = CreateRun {
            yaml: Some(slow(10)),
            experiment: exp.map(str::to_string),
            ..Default::default()
        };
        async move { c.create_run(&req).await }
    };
    let inside = submit(Some("tuning")).await.unwrap();
    let outside = submit(None).await.unwrap();
    assert_eq!(inside.summary.experiment_id, e.id);
    let default = c.get_experiment("Default").await.unwrap();
    assert_eq!(outside.summary.experiment_id, default.id);
    for id in [&inside.summary.id, &outside.summary.id] {
        assert_eq!(
            wait_run(c, id, Duration::from_secs(20)).await.summary.state,
            RunState::Succeeded
        );
    }
    let listed = c
        .list_runs_where(&[("experiment", "tuning".into())])
        .await
        .unwrap()
        .runs;
    assert_eq!(
        listed.iter().map(|r| &r.id).collect::<Vec<_>>(),
        vec![&inside.summary.id]
    );
    let s = c
        .create_schedule(&CreateSchedule {
            name: "hourly".into(),
            yaml: Some(slow(10)),
            cron: Some("0 * * * *".into()),
            timezone: Some("Asia/Kolkata".into()),
            experiment: Some(e.id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    // 30 minutes past a UTC hour: Kolkata is 5:30 ahead.
    let next = s.next_at.clone().unwrap();
    assert!(next.contains(":30:00"), "{next}");

    let archived = c.archive_experiment("tuning", true).await.unwrap();
    assert!(archived.archived);
    assert!(
        c.get_run(&inside.summary.id)
            .await
            .unwrap()
            .summary
            .archived
    );
    assert!(
        !c.get_run(&outside.summary.id)
            .await
            .unwrap()
            .summary
            .archived
    );
    assert!(!c.get_schedule("hourly").await.unwrap().enabled);
    let (code_, msg) = code(submit(Some("tuning")).await.unwrap_err());
    assert_eq!(code_, ErrorCode::InvalidBody);
    assert!(msg.contains("archived"), "{msg}");
    let (code_, msg) = code(c.set_schedule_enabled("hourly", true).await.unwrap_err());
    assert_eq!(code_, ErrorCode::InvalidBody, "{msg}");
    // An experiment holding runs or schedules is not deleted; Default never is.
    c.archive_experiment("tuning", false).await.unwrap();
    let (code_, msg) = code(c.delete_experiment("tuning").await.unwrap_err());
    assert_eq!(code_, ErrorCode::Conflict);
    assert!(msg.contains("1 run(s) and 1 schedule(s)"), "{msg}");
    c.delete_run(&inside.summary.id).await.unwrap();
    c.delete_schedule(&s.id).await.unwrap();
    c.delete_experiment("tuning").await.unwrap();
    assert_eq!(
        code(c.delete_experiment("Default").await.unwrap_err()).0,
        ErrorCode::InvalidBody
    );
    assert_eq!(
        code(c.archive_experiment("Default", true).await.unwrap_err()).0,
        ErrorCode::InvalidBody
    );
}

#[tokio::test]
async fn a_bad_schedule_is_refused_naming_what_is_wrong() {
    let env = InProcess::start().await;
    let base = CreateSchedule {
        name: "bad".into(),
        yaml: Some(slow(10)),
        interval_seconds: Some(60),
        ..Default::default()
    };
    let cases: Vec<(CreateSchedule, ErrorCode, &str)> = vec![
        (
            CreateSchedule {
                interval_seconds: None,
                cron: Some("0 25 * * *".into()),
                ..base.clone()
            },
            ErrorCode::InvalidBody,
            "0 25 * * *",
        ),
        (
            CreateSchedule {
                interval_seconds: None,
                cron: Some("0 * * * *".into()),
                timezone: Some("Europe/Atlantis".into()),
                ..base.clone()
            },
            ErrorCode::InvalidBody,
            "Europe/Atlantis",
        ),
        (
            CreateSchedule {
                cron: Some("0 * * * *".into()),
                ..base.clone()
            },
            ErrorCode::InvalidBody,
            "not both",
        ),
        (
            CreateSchedule {
                interval_seconds: None,
                ..base.clone()
            },
            ErrorCode::InvalidBody,
            "cron expression or an interval",
        ),
        (
            CreateSchedule {
                interval_seconds: Some(0),
                ..base.clone()
            },
            ErrorCode::InvalidBody,
            "interval",
        ),
        (
            CreateSchedule {
                max_concurrency: Some(0),
                ..base.clone()
            },
            ErrorCode::InvalidBody,
            "max_concurrency",
        ),
        (
            CreateSchedule {
                start_at: Some("2027-01-02T00:00:00Z".into()),
                end_at: Some("2027-01-01T00:00:00Z".into()),
                ..base.clone()
            },
            ErrorCode::InvalidBody,
            "end_at",
        ),
        (
            CreateSchedule {
                start_at: Some("tomorrow".into()),
                ..base.clone()
            },
            ErrorCode::InvalidBody,
            "start_at",
        ),
        (
            CreateSchedule {
                params: [("nope".to_string(), serde_json::json!(1))].into(),
                ..base.clone()
            },
            ErrorCode::InvalidParams,
            "nope",
        ),
        (
            CreateSchedule {
                yaml: None,
                pipeline: Some("no-such-pipeline".into()),
                ..base.clone()
            },
            ErrorCode::NotFound,
            "no-such-pipeline",
        ),
        (
            CreateSchedule {
                experiment: Some("no-such-experiment".into()),
                ..base.clone()
            },
            ErrorCode::NotFound,
            "no-such-experiment",
        ),
    ];
    for (req, want, says) in cases {
        let (got, msg) = code(env.client.create_schedule(&req).await.unwrap_err());
        assert_eq!(got, want, "{msg}");
        assert!(msg.contains(says), "`{msg}` does not say `{says}`");
    }
    assert!(env
        .client
        .list_schedules(None)
        .await
        .unwrap()
        .schedules
        .is_empty());
}

#[tokio::test]
async fn kubeflows_api_names_a_filter_it_cannot_evaluate_and_an_endpoint_it_does_not_serve() {
    let env = InProcess::start().await;
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        let (path, query) = path.split_once("?filter=").unwrap_or((&path, ""));
        let mut url = reqwest::Url::parse(&format!("{}/apis/v2beta1{path}", env.url)).unwrap();
        if !query.is_empty() {
            url.query_pairs_mut().append_pair("filter", query);
        }
        async move {
            let r = http.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let filter = |key: &str, op: &str, value: &str| {
        let f = serde_json::json!({"predicates": [{"key": key, "operation": op, "string_value": value}]});
        format!("/runs?filter={f}")
    };
    let (status, body) = get(filter("pod_name", "EQUALS", "x")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], 3);
    assert!(
        body["message"].as_str().unwrap().contains("pod_name"),
        "{body}"
    );
    let (status, body) = get(filter("display_name", "GREATER_THAN", "x")).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = get("/runs?filter={not json".into()).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("JSON"), "{body}");
    let (status, body) = get("/runs?page_token=bogus".into()).await;
    assert_eq!(status, 400, "{body}");
    // A filter it can evaluate: by name, exactly.
    env.client
        .create_run(&CreateRun {
            yaml: Some(slow(10)),
            name: Some("wanted".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let (status, body) = get(filter("display_name", "EQUALS", "wanted")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["runs"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["runs"][0]["display_name"], "wanted");
    // A pipeline upload past the server's body limit: 413 in Kubeflow's shape, whether its
    // length is announced or it streams.
    let big = format!(
        "--b\r\nContent-Disposition: form-data; name=\"uploadfile\"; filename=\"p.yaml\"\r\n\r\n{}\r\n--b--\r\n",
        "#".repeat(16 << 20)
    );
    let upload = format!("{}/apis/v2beta1/pipelines/upload?name=big", env.url);
    let announced = http
        .post(&upload)
        .header("content-type", "multipart/form-data; boundary=b")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .as_bytes()
        .chunks(1 << 20)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let streamed = http
        .post(&upload)
        .header("content-type", "multipart/form-data; boundary=b")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    for r in [announced, streamed] {
        assert_eq!(r.status(), 413);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["code"], 3, "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("limit"),
            "{body}"
        );
    }
    let (status, body) = get("/artifacts".into()).await;
    assert_eq!(status, 501, "{body}");
    assert_eq!(body["code"], 12);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("GET /apis/v2beta1/artifacts"),
        "{body}"
    );
}

/// A submit token limited to some pipelines touches only their schedules, and no experiment
/// (which holds runs of every pipeline), through sluice's API and Kubeflow's.
#[tokio::test]
async fn a_token_limited_to_pipelines_touches_only_their_schedules_and_no_experiment() {
    use crate::access::{ci_token, run_of as run, server_with_roles};
    let (url, _dir, _tokens) = server_with_roles().await;
    let (admin, ci, ci_client) = ci_token(&url).await;
    // Another pipeline's schedule is not made, paused, resumed or deleted with it, nor an
    // experiment archived or deleted; its own pipeline's schedule it may pause.
    let every = |yaml: String| sluice_sdk::api::CreateSchedule {
        name: "hourly".into(),
        yaml: Some(yaml),
        interval_seconds: Some(3600),
        ..Default::default()
    };
    let theirs = admin
        .create_schedule(&every(run("other").yaml.unwrap()))
        .await
        .unwrap();
    let mine = ci_client
        .create_schedule(&every(run("iris").yaml.unwrap()))
        .await
        .unwrap();
    assert!(matches!(
        ci_client
            .create_schedule(&every(run("other").yaml.unwrap()))
            .await,
        Err(ClientError::Api { status: 403, .. })
    ));
    for r in [
        ci_client
            .set_schedule_enabled(&theirs.id, false)
            .await
            .map(|_| ()),
        ci_client.delete_schedule(&theirs.id).await,
    ] {
        assert!(
            matches!(r, Err(ClientError::Api { status: 403, .. })),
            "{r:?}"
        );
    }
    ci_client
        .set_schedule_enabled(&mine.id, false)
        .await
        .unwrap();
    admin.create_experiment("shared", None).await.unwrap();
    for r in [
        ci_client
            .archive_experiment("shared", true)
            .await
            .map(|_| ()),
        ci_client.delete_experiment("shared").await,
    ] {
        match r {
            Err(ClientError::Api { status: 403, error }) => {
                assert!(
                    error.message.contains("limited to some pipelines"),
                    "{}",
                    error.message
                )
            }
            other => panic!("expected 403, got {other:?}"),
        }
    }
    // Through Kubeflow's API alike.
    let http = reqwest::Client::new();
    let r = http
        .delete(format!("{url}/apis/v2beta1/recurringruns/{}", theirs.id))
        .bearer_auth(&ci.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], 7, "{body}");
    admin.get_schedule(&theirs.id).await.unwrap();
}
