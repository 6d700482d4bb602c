//! Experiments, schedules and pipelines' housekeeping in the store, checked the same way against
//! SQLite and PostgreSQL: one SQL text serves both, so both must keep and refuse alike.

use crate::pg::Postgres;
use crate::store::run;
use sluice_server::store::{
    DynStore, ExperimentRow, Fired, ScheduleRow, StoreError, WriteBatch, DEFAULT_EXPERIMENT,
};

fn schedule(id: &str, name: &str, experiment: &str, digest: &str) -> ScheduleRow {
    ScheduleRow {
        id: id.into(),
        name: name.into(),
        description: None,
        experiment_id: experiment.into(),
        pipeline_id: None,
        pipeline_version_id: None,
        digest: Some(digest.into()),
        params: [("n".to_string(), serde_json::json!(2))].into(),
        labels: [("team".to_string(), "vision".to_string())].into(),
        cron: None,
        timezone: None,
        interval_s: Some(60),
        start_at: None,
        end_at: None,
        catchup: true,
        max_concurrency: 2,
        enabled: true,
        cache: true,
        created_at: 1_000,
        updated_at: 1_000,
        last_fired_at: None,
        next_at: Some(61_000),
        resumed_at: None,
        last_error: None,
    }
}

async fn contract(s: DynStore) {
    // Default is there from the start.
    let d = s.get_experiment("Default").await.unwrap().unwrap();
    assert_eq!(d.id, DEFAULT_EXPERIMENT);
    let e = ExperimentRow {
        id: "e1".into(),
        name: "tuning".into(),
        description: Some("sweeps".into()),
        created_at: 5,
        archived: false,
    };
    assert!(s.create_experiment(&e).await.unwrap());
    let same_name = ExperimentRow {
        id: "e2".into(),
        ..e.clone()
    };
    assert!(
        !s.create_experiment(&same_name).await.unwrap(),
        "a name taken"
    );
    assert_eq!(s.get_experiment("e1").await.unwrap(), Some(e.clone()));
    assert_eq!(s.get_experiment("tuning").await.unwrap(), Some(e.clone()));
    assert_eq!(s.list_experiments(None).await.unwrap().len(), 2);

    // A schedule, with the file it runs kept beside it.
    let digest = "sha256:sched";
    let sc = schedule("s1", "nightly", "e1", digest);
    s.create_schedule(&sc, Some((digest, "name: p\n")))
        .await
        .unwrap();
    assert_eq!(
        s.source(digest).await.unwrap().as_deref(),
        Some("name: p\n")
    );
    assert_eq!(s.get_schedule("nightly").await.unwrap(), Some(sc.clone()));
    let twin = schedule("s2", "nightly", "e1", digest);
    s.create_schedule(&twin, None).await.unwrap();
    assert!(matches!(
        s.get_schedule("nightly").await,
        Err(StoreError::Ambiguous(_))
    ));
    assert_eq!(s.get_schedule("s2").await.unwrap().unwrap().id, "s2");
    assert!(s.delete_schedule("s2").await.unwrap());
    assert!(s.due_schedules(60_999).await.unwrap().is_empty());
    assert_eq!(s.due_schedules(61_000).await.unwrap(), vec![sc.clone()]);

    // A firing is written with its run; the same due time cannot fire twice.
    let mut b = WriteBatch::default();
    b.sources.push((digest.into(), "name: p\n".into()));
    let mut r = run("r1", "nightly-1", 61_100, serde_json::json!({}));
    r.digest = digest.into();
    r.experiment_id = "e1".into();
    r.schedule_id = Some("s1".into());
    r.scheduled_at = Some(61_000);
    b.new_runs.push(r.clone());
    b.fired.push(Fired {
        schedule_id: "s1".into(),
        at: 61_000,
        next_at: Some(121_000),
    });
    s.apply(&b).await.unwrap();
    let after = s.get_schedule("s1").await.unwrap().unwrap();
    assert_eq!(
        (after.last_fired_at, after.next_at),
        (Some(61_000), Some(121_000))
    );
    let stored = s.get_run("r1").await.unwrap().unwrap().row;
    assert_eq!(
        (
            stored.schedule_id.as_deref(),
            stored.scheduled_at,
            stored.experiment_id.as_str()
        ),
        (Some("s1"), Some(61_000), "e1")
    );
    let mut again = WriteBatch::default();
    let mut r2 = r.clone();
    r2.id = "r2".into();
    again.new_runs.push(r2);
    assert!(s.apply(&again).await.is_err(), "a due time fired twice");
    assert!(
        s.get_run("r2").await.unwrap().is_none(),
        "nothing of it was kept"
    );

    // Runs by experiment and by schedule.
    let f = |experiment: Option<&str>, schedule: Option<&str>| sluice_server::store::RunFilter {
        experiment: experiment.map(str::to_string),
        schedule: schedule.map(str::to_string),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(s.list_runs(&f(Some("e1"), None)).await.unwrap().len(), 1);
    assert_eq!(
        s.list_runs(&f(Some(DEFAULT_EXPERIMENT), None))
            .await
            .unwrap()
            .len(),
        0
    );
    assert_eq!(s.list_runs(&f(None, Some("s1"))).await.unwrap().len(), 1);

    // Kubeflow's filters, as the store's conditions, evaluated alike by both.
    use sluice_server::store::{Cmp, Operand, Predicate, RunField, RunFilter};
    let mut b = WriteBatch::default();
    b.sources.push(("sha256:src".into(), "name: p\n".into()));
    for (id, name, at, state) in [
        ("k1", "Train_50%", 80_000, sluice_sdk::api::RunState::Failed),
        (
            "k2",
            "train-b",
            81_000,
            sluice_sdk::api::RunState::Succeeded,
        ),
        ("k3", "eval", 82_000, sluice_sdk::api::RunState::Succeeded),
    ] {
        let mut r = run(id, name, at, serde_json::json!({}));
        r.state = state;
        b.new_runs.push(r);
    }
    s.apply(&b).await.unwrap();
    assert!(s.set_archived("k3", true).await.unwrap());
    let matching = |preds: Vec<Predicate>| {
        let s = s.clone();
        async move {
            let mut ids: Vec<String> = s
                .list_runs(&RunFilter {
                    predicates: preds,
                    limit: 100,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .filter(|id| id.starts_with('k'))
                .collect();
            ids.sort();
            ids
        }
    };
    let p = |field, cmp, value| Predicate { field, cmp, value };
    assert_eq!(
        matching(vec![p(
            RunField::Name,
            Cmp::Contains,
            Operand::Text("TRAIN".into())
        )])
        .await,
        ["k1", "k2"]
    );
    // `%` and `_` stand for themselves.
    assert_eq!(
        matching(vec![p(
            RunField::Name,
            Cmp::Contains,
            Operand::Text("n_50%".into())
        )])
        .await,
        ["k1"]
    );
    assert_eq!(
        matching(vec![p(
            RunField::Name,
            Cmp::Contains,
            Operand::Text("n_5%0".into())
        )])
        .await,
        Vec::<String>::new()
    );
    assert_eq!(
        matching(vec![p(
            RunField::State,
            Cmp::In,
            Operand::Texts(vec!["failed".into(), "cancelled".into()])
        )])
        .await,
        ["k1"]
    );
    assert_eq!(
        matching(vec![
            p(RunField::CreatedAt, Cmp::Gt, Operand::Int(80_000)),
            p(RunField::Archived, Cmp::Eq, Operand::Bool(false)),
        ])
        .await,
        ["k2"]
    );
    assert_eq!(
        matching(vec![p(
            RunField::Name,
            Cmp::Ne,
            Operand::Text("eval".into())
        )])
        .await,
        ["k1", "k2"]
    );
    assert_eq!(
        matching(vec![p(RunField::Id, Cmp::In, Operand::Texts(Vec::new()))]).await,
        Vec::<String>::new()
    );

    // Paused, then resumed from 200 s: due times before it are passed over. Moving a paused
    // schedule on leaves it paused, with no next due time.
    assert!(s
        .set_schedule_enabled("s1", false, None, 150_000)
        .await
        .unwrap());
    s.set_next_due("s1", Some(181_000)).await.unwrap();
    let paused = s.get_schedule("s1").await.unwrap().unwrap();
    assert_eq!((paused.enabled, paused.next_at), (false, None));
    assert!(s.due_schedules(i64::MAX).await.unwrap().is_empty());
    assert!(s
        .set_schedule_enabled("s1", true, Some(241_000), 200_000)
        .await
        .unwrap());
    let resumed = s.get_schedule("s1").await.unwrap().unwrap();
    assert_eq!(
        (resumed.resumed_at, resumed.next_at),
        (Some(200_000), Some(241_000))
    );
    // Resumed again while running: when it was resumed stays.
    s.set_schedule_enabled("s1", true, Some(241_000), 210_000)
        .await
        .unwrap();
    assert_eq!(
        s.get_schedule("s1").await.unwrap().unwrap().resumed_at,
        Some(200_000)
    );
    s.schedule_failed("s1", 241_000, Some(301_000), "its pipeline no longer loads")
        .await
        .unwrap();
    let failed = s.get_schedule("s1").await.unwrap().unwrap();
    assert_eq!(
        failed.last_error.as_deref(),
        Some("its pipeline no longer loads")
    );
    assert_eq!(failed.next_at, Some(301_000));

    // Archiving an experiment archives its runs and pauses its schedules.
    let holds = s.experiment_holds("e1").await.unwrap();
    assert_eq!((holds.runs, holds.schedules), (1, 1));
    assert!(s.set_experiment_archived("e1", true).await.unwrap());
    assert!(s.get_run("r1").await.unwrap().unwrap().row.archived);
    assert!(!s.get_schedule("s1").await.unwrap().unwrap().enabled);
    assert_eq!(s.list_experiments(Some(true)).await.unwrap().len(), 1);
    assert!(!s.set_experiment_archived("none", true).await.unwrap());

    // Pipelines: a version named, deleted (its runs keep their file), then the pipeline.
    let v1 = s
        .put_pipeline_version("p", None, "name: p\n", "sha256:src", 1)
        .await
        .unwrap();
    let v2 = s
        .put_pipeline_version("p", None, "name: p\n# 2\n", "sha256:src2", 2)
        .await
        .unwrap();
    s.set_version_name(&v2.id, "second").await.unwrap();
    assert_eq!(
        s.version_name(&v2.id).await.unwrap().as_deref(),
        Some("second")
    );
    assert_eq!(s.version_name(&v1.id).await.unwrap(), None);
    let mut b = WriteBatch::default();
    let mut rv = run("r3", "of-v1", 70_000, serde_json::json!({}));
    rv.pipeline_version_id = Some(v1.id.clone());
    b.new_runs.push(rv);
    s.apply(&b).await.unwrap();
    let mut by_version = schedule("s3", "versioned", DEFAULT_EXPERIMENT, digest);
    by_version.pipeline_id = Some(v2.pipeline_id.clone());
    by_version.pipeline_version_id = Some(v2.id.clone());
    by_version.digest = None;
    s.create_schedule(&by_version, None).await.unwrap();
    assert_eq!(
        s.schedules_using(&v2.pipeline_id, Some(&v2.id))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.schedules_using(&v2.pipeline_id, Some(&v1.id))
            .await
            .unwrap(),
        0
    );
    assert_eq!(s.schedules_using(&v2.pipeline_id, None).await.unwrap(), 1);
    assert!(
        !s.delete_pipeline(&v1.pipeline_id).await.unwrap(),
        "it has versions"
    );
    assert!(s.delete_version(&v1.id).await.unwrap());
    let kept = s.get_run("r3").await.unwrap().unwrap().row;
    assert_eq!(kept.pipeline_version_id, None);
    assert_eq!(kept.digest, "sha256:src");
    assert!(s.delete_schedule("s3").await.unwrap());
    assert!(s.delete_version(&v2.id).await.unwrap());
    assert!(s.delete_pipeline(&v1.pipeline_id).await.unwrap());
    assert!(s.get_pipeline("p").await.unwrap().is_none());

    // An experiment that holds nothing is forgotten.
    assert!(s.delete_schedule("s1").await.unwrap());
    assert!(s.delete_run("r1").await.unwrap());
    assert!(s.delete_experiment("e1").await.unwrap());
    assert!(s.get_experiment("e1").await.unwrap().is_none());
    s.close().await;
}

#[tokio::test]
async fn sqlite_keeps_the_catalogs_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(sluice_server::store::open(None, dir.path()).await.unwrap()).await;
}

#[tokio::test]
async fn postgres_keeps_the_catalogs_contract() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    contract(
        sluice_server::store::open(Some(&pg.url), dir.path())
            .await
            .unwrap(),
    )
    .await;
}
