//! The object store as the server holds a worker to it, speaking the worker protocol directly:
//! where artifacts go is told at registration (never the credentials), and a worker may name
//! only its task's own place in the store.

use crate::access::{finished, lease_one, server, MODEL};
use crate::harness::*;
use sluice_sdk::api::{CreateRun, RegisterWorker, WorkerIdentity};
use sluice_sdk::client::Client;
use std::time::Duration;

/// With an object store, a worker is told where artifacts go when it registers, and the
/// artifacts it reports must be at its task's own place there: another run's object, a key with
/// `..`, or a file on its disk fails the task, saying so; its own place is accepted.
#[tokio::test]
async fn with_an_object_store_a_worker_may_name_only_its_tasks_own_place_in_it() {
    let s3 = sluice_server::throwaway_s3::ThrowawayS3::start([127, 0, 0, 1].into())
        .expect("Garage (scripts/test installs it)");
    let mut cfg = sluice_server::ServerConfig::default();
    cfg.scheduler.artifact_store = Some(std::sync::Arc::new(s3.store("p")));
    let (url, _dir) = server(cfg).await;
    let c = Client::new(&url, None);
    let r = c
        .register_worker(&RegisterWorker::new("w", 1, None))
        .await
        .unwrap();
    assert_eq!(r.artifact_store.as_deref(), Some(s3.url("p").as_str()));
    assert!(
        !r.artifact_store.unwrap().contains(&s3.secret),
        "never the credentials"
    );
    let w = WorkerIdentity {
        id: r.id,
        credential: r.credential,
    };
    let req = CreateRun {
        yaml: Some(MODEL.into()),
        ..Default::default()
    };
    let other = "s3://sluice/p/another-run/train/1/model".to_string();
    for (uri, says) in [
        (
            Some(other),
            "not at the task's own place in the artifact store",
        ),
        (None, "not at the task's own place"),
        (Some("file:///etc".into()), "not at the task's own place"),
        (
            Some("s3://elsewhere/p/x".into()),
            "not at the task's own place",
        ),
    ] {
        let run = c.create_run(&req).await.unwrap();
        let lease = lease_one(&c, &w).await;
        // `None`: the right place with `..` after it.
        let uri = uri.unwrap_or(format!(
            "s3://sluice/p/{}/train/1/model/../x",
            run.summary.id
        ));
        c.report(&w, vec![finished(&lease, &uri, None)])
            .await
            .unwrap();
        let done = wait_run(&c, &run.summary.id, Duration::from_secs(10)).await;
        let err = done.tasks[0].error.clone().unwrap_or_default();
        assert_eq!(
            done.summary.state,
            sluice_sdk::api::RunState::Failed,
            "{uri}"
        );
        assert!(err.contains(says) && err.contains(&uri), "{uri}: {err}");
    }
    let run = c.create_run(&req).await.unwrap();
    let lease = lease_one(&c, &w).await;
    let uri = format!("s3://sluice/p/{}/train/1/model", run.summary.id);
    c.report(&w, vec![finished(&lease, &uri, None)])
        .await
        .unwrap();
    let done = wait_run(&c, &run.summary.id, Duration::from_secs(10)).await;
    assert_eq!(
        done.summary.state,
        sluice_sdk::api::RunState::Succeeded,
        "{done:?}"
    );
    assert_eq!(done.tasks[0].artifacts[0].uri, uri);
}
