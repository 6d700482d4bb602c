//! Runs organised through the API (in-process server and worker, fake runtime): the run list
//! sorted, filtered by label, date and archive, paged in any order; labels checked; archive,
//! delete and clone; what a task shows of its kind, command and inputs; an artifact's lineage.

use crate::api::DIAMOND;
use crate::harness::*;
use serde_json::json;
use sluice_sdk::api::{CreateRun, ErrorCode, RunState};
use sluice_sdk::client::ClientError;
use std::time::Duration;

fn code(e: ClientError) -> (ErrorCode, String) {
    match e {
        ClientError::Api { error, .. } => (error.code, error.message),
        e => panic!("expected an API error, got {e}"),
    }
}

async fn names(env: &InProcess, q: &[(&str, &str)]) -> Vec<String> {
    let q: Vec<(&str, String)> = q.iter().map(|(k, v)| (*k, v.to_string())).collect();
    env.client
        .list_runs_where(&q)
        .await
        .unwrap()
        .runs
        .into_iter()
        .map(|r| r.name)
        .collect()
}

#[tokio::test]
async fn runs_are_sorted_filtered_paged_archived_deleted_and_cloned() {
    let env = InProcess::start().await;
    let mut ids = std::collections::BTreeMap::new();
    for (i, name) in ["r-3", "r-1", "r-5", "r-2", "r-4"].iter().enumerate() {
        let mut req = CreateRun {
            yaml: Some(DIAMOND.into()),
            name: Some(name.to_string()),
            ..Default::default()
        };
        if i % 2 == 0 {
            req.labels.insert("team".into(), "vision".into());
        }
        req.params.insert("seed".into(), json!(i));
        let id = env.client.create_run(&req).await.unwrap().summary.id;
        let done = wait_run(&env.client, &id, Duration::from_secs(20)).await;
        assert_eq!(done.summary.state, RunState::Succeeded);
        ids.insert(*name, id);
    }
    // Sorted by name, two at a time: every run once, in order.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut q = vec![
            ("sort", "name".to_string()),
            ("order", "asc".to_string()),
            ("page_size", "2".to_string()),
        ];
        if let Some(t) = &token {
            q.push(("page_token", t.clone()));
        }
        let page = env.client.list_runs_where(&q).await.unwrap();
        seen.extend(page.runs.into_iter().map(|r| r.name));
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(seen, ["r-1", "r-2", "r-3", "r-4", "r-5"]);
    assert_eq!(
        names(&env, &[("sort", "name")]).await,
        ["r-5", "r-4", "r-3", "r-2", "r-1"]
    );
    assert_eq!(names(&env, &[("sort", "duration")]).await.len(), 5);
    // By a parameter, and by a metric (the seed, and what step a made of it).
    assert_eq!(
        names(&env, &[("sort", "param:seed"), ("order", "asc")]).await,
        ["r-3", "r-1", "r-5", "r-2", "r-4"]
    );
    assert_eq!(
        names(&env, &[("sort", "metric:a.x")]).await,
        ["r-4", "r-2", "r-5", "r-1", "r-3"]
    );
    // Newest first by default.
    assert_eq!(names(&env, &[]).await, ["r-4", "r-2", "r-5", "r-1", "r-3"]);
    let mut vision = names(&env, &[("label", "team=vision")]).await;
    vision.sort();
    assert_eq!(vision, ["r-3", "r-4", "r-5"]);
    assert!(names(&env, &[("created_after", "2100-01-01")])
        .await
        .is_empty());
    assert_eq!(
        names(&env, &[("created_before", "2100-01-01T00:00:00Z")])
            .await
            .len(),
        5
    );
    // Each run's progress, parameters, labels and metrics come with the list.
    let list = env.client.list_runs_where(&[]).await.unwrap();
    let r4 = &list.runs[0];
    assert_eq!(r4.steps.map(|s| (s.done, s.total)), Some((4, 4)));
    assert_eq!(r4.params["seed"], json!(4));
    assert_eq!(r4.labels["team"], "vision");
    assert_eq!(r4.metrics["a.x"], json!(4), "{:?}", r4.metrics);
    // A query that does not make sense is refused, naming what is wrong.
    for (q, says) in [
        (("sort", "size"), "unknown sort `size`"),
        (("sort", "param:"), "unknown sort `param:`"),
        (("order", "up"), "unknown order `up`"),
        (("label", "team"), "`label` must be NAME=VALUE"),
        (("created_after", "yesterday"), "`created_after` must be"),
        (("archived", "maybe"), "`archived` must be"),
    ] {
        let e = env
            .client
            .list_runs_where(&[(q.0, q.1.to_string())])
            .await
            .unwrap_err();
        let (c, m) = code(e);
        assert_eq!(c, ErrorCode::InvalidQuery);
        assert!(m.contains(says), "{m}");
    }
    let e = env
        .client
        .list_runs_where(&[("sort", "name".into()), ("page_token", "nonsense".into())])
        .await
        .unwrap_err();
    assert!(code(e).1.contains("`page_token`"));

    // Archived runs leave the list, and come back.
    env.client.archive_run(&ids["r-1"], true).await.unwrap();
    assert!(!names(&env, &[]).await.contains(&"r-1".to_string()));
    assert_eq!(names(&env, &[("archived", "true")]).await, ["r-1"]);
    assert_eq!(names(&env, &[("archived", "all")]).await.len(), 5);
    let back = env.client.archive_run(&ids["r-1"], false).await.unwrap();
    assert!(!back.summary.archived);
    assert_eq!(names(&env, &[]).await.len(), 5);

    // Deleted: gone, its logs with it.
    env.client.delete_run(&ids["r-2"]).await.unwrap();
    let (c, _) = code(env.client.get_run(&ids["r-2"]).await.unwrap_err());
    assert_eq!(c, ErrorCode::NotFound);
    let (c, _) = code(env.client.logs(&ids["r-2"], "a", 0, 10).await.unwrap_err());
    assert_eq!(c, ErrorCode::NotFound);
    assert_eq!(names(&env, &[]).await.len(), 4);
    let (c, _) = code(env.client.delete_run(&ids["r-2"]).await.unwrap_err());
    assert_eq!(c, ErrorCode::NotFound);

    // A run that has not ended cannot be deleted.
    let slow = env
        .client
        .create_run(&CreateRun {
            yaml: Some("name: slow\nsteps:\n  - name: s\n    image: busybox\n    env: {FAKE_SLEEP_MS: \"60000\"}\n".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .summary
        .id;
    let (c, m) = code(env.client.delete_run(&slow).await.unwrap_err());
    assert_eq!(c, ErrorCode::RunActive, "{m}");
    env.client.cancel_run(&slow).await.unwrap();

    // Labels are checked at submit, naming the one at fault.
    let mut bad = CreateRun {
        yaml: Some(DIAMOND.into()),
        ..Default::default()
    };
    bad.labels.insert("-team".into(), "x".into());
    let (c, m) = code(env.client.create_run(&bad).await.unwrap_err());
    assert_eq!(c, ErrorCode::InvalidBody);
    assert!(m.contains("label name `-team`"), "{m}");

    // A clone runs the same file with new parameters.
    let old = env.client.get_run(&ids["r-3"]).await.unwrap();
    let mut req = CreateRun {
        clone_of: Some(ids["r-3"].clone()),
        name: Some("r-3-clone".into()),
        ..Default::default()
    };
    req.params.insert("seed".into(), json!(9));
    let clone = env.client.create_run(&req).await.unwrap();
    assert_eq!(clone.digest, old.digest);
    let clone = wait_run(&env.client, &clone.summary.id, Duration::from_secs(20)).await;
    assert_eq!(clone.summary.params["seed"], json!(9));
    // A run's own page counts its steps as the list does.
    assert_eq!(clone.summary.steps.map(|s| (s.done, s.total)), Some((4, 4)));
    assert_eq!(
        clone.tasks.iter().find(|t| t.name == "a").unwrap().outputs["x"],
        json!(9)
    );
    let both = CreateRun {
        clone_of: Some(ids["r-3"].clone()),
        yaml: Some(DIAMOND.into()),
        ..Default::default()
    };
    let (c, m) = code(env.client.create_run(&both).await.unwrap_err());
    assert_eq!(c, ErrorCode::InvalidBody);
    assert!(m.contains("give one of"), "{m}");
}

#[tokio::test]
async fn a_task_shows_its_kind_command_and_inputs_and_an_artifact_its_lineage() {
    let env = InProcess::start().await;
    let make = |name: &str| CreateRun {
        yaml: Some(DIAMOND.into()),
        name: Some(name.into()),
        ..Default::default()
    };
    let first = env
        .client
        .create_run(&make("one"))
        .await
        .unwrap()
        .summary
        .id;
    let first = wait_run(&env.client, &first, Duration::from_secs(20)).await;
    let task = |r: &sluice_sdk::api::RunDetail, n: &str| {
        r.tasks.iter().find(|t| t.name == n).unwrap().clone()
    };
    let d = task(&first, "d");
    assert_eq!(d.shape.kind, "step");
    let model = &task(&first, "c").artifacts[0];
    assert_eq!(
        d.command.as_deref().unwrap()[0],
        "cat",
        "the resolved command: {:?}",
        d.command
    );
    assert_eq!(d.input_artifacts.len(), 1, "{:?}", d.input_artifacts);
    assert_eq!(d.input_artifacts[0].producer, "c");
    assert_eq!(d.input_artifacts[0].uri, model.uri);
    // Made by c, read by d (reuse from the cache across runs is shown by the UI test over
    // real containers: the fake runtime reports no image digest, so nothing is cached).
    let l = env.client.lineage(&model.uri).await.unwrap();
    let uses = |v: &[sluice_sdk::api::ArtifactUse]| -> Vec<(String, String, String)> {
        v.iter()
            .map(|u| (u.run_name.clone(), u.task.clone(), u.name.clone()))
            .collect()
    };
    assert_eq!(
        uses(&l.producers),
        [("one".to_string(), "c".to_string(), "model".to_string())],
        "{l:?}"
    );
    assert_eq!(
        l.producers[0].digest.as_deref(),
        Some(model.digest.as_str())
    );
    assert_eq!(l.producers[0].size, Some(model.size));
    assert_eq!(
        uses(&l.consumers),
        [("one".to_string(), "d".to_string(), "c.model".to_string())]
    );
    for (uri, status) in [("", 400), ("file:///nowhere", 404)] {
        let r = reqwest::get(format!("{}/api/v1/lineage?uri={uri}", env.url))
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{uri}");
    }
}
