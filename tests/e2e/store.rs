//! The store's contract, checked the same way against both backends: SQLite in a temporary
//! directory and PostgreSQL in a throwaway cluster. What one keeps, the other keeps; what one
//! refuses or orders, the other does alike.

use crate::pg::Postgres;
use sluice_sdk::api::{Labels, RunState, Stream, TaskShape, TaskState};
use sluice_server::store::{
    CacheEntry, DynStore, IdempotencyKey, LogCursor, LogRow, NewWorker, RunFilter, RunRow, RunSort,
    StoreError, TaskRow, TaskStatic, TokenRow, WriteBatch,
};
use std::sync::Arc;

pub(crate) fn run(id: &str, name: &str, created_at: i64, params: serde_json::Value) -> RunRow {
    RunRow {
        id: id.into(),
        name: name.into(),
        pipeline_name: "p".into(),
        pipeline_version_id: None,
        pipeline_version: None,
        digest: "sha256:src".into(),
        params: serde_json::from_value(params).unwrap(),
        state: RunState::Running,
        error: None,
        end_reason: None,
        created_at,
        finished_at: None,
        cache: true,
        outputs: Default::default(),
        inputs: Vec::new(),
        labels: Labels::new(),
        archived: false,
        metrics: Default::default(),
        steps: None,
        experiment_id: sluice_server::store::DEFAULT_EXPERIMENT.into(),
        schedule_id: None,
        scheduled_at: None,
    }
}

fn task(run: &str, idx: usize, name: &str, state: TaskState) -> TaskRow {
    let mut t = sluice_engine::Task::new();
    t.state = state;
    TaskRow {
        run_id: Arc::from(run),
        idx,
        stat: Arc::new(TaskStatic::new(
            name.into(),
            "busybox".into(),
            Vec::new(),
            None,
            TaskShape::default(),
        )),
        task: t,
    }
}

fn log(run: &str, attempt: u32, seq: u64, line: &str) -> LogRow {
    LogRow {
        run_id: run.into(),
        task_idx: 0,
        attempt,
        seq,
        ts: 1_000 + seq as i64,
        stream: Stream::Stdout,
        line: line.into(),
    }
}

async fn ids(s: &DynStore, f: RunFilter) -> Vec<String> {
    s.list_runs(&RunFilter { limit: 100, ..f })
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

/// Everything the store promises, on one backend.
async fn contract(s: DynStore) {
    // Runs, with tasks written short when new and whole once they change.
    let mut b = WriteBatch::default();
    b.sources.push(("sha256:src".into(), "name: p\n".into()));
    let mut r1 = run("r1", "Train Iris", 10, serde_json::json!({"lr": 0.1}));
    r1.labels.insert("branch".into(), "main".into());
    let r2 = run("r2", "evaluate", 20, serde_json::json!({"lr": 0.5}));
    let r3 = run("r3", "50%_off", 30, serde_json::json!({}));
    b.new_runs = vec![r1.clone(), r2.clone(), r3.clone()];
    b.tasks = vec![
        task("r1", 0, "train", TaskState::Pending),
        task("r1", 1, "eval", TaskState::Pending),
        task("r2", 0, "eval", TaskState::Pending),
    ];
    b.idempotency.push(IdempotencyKey {
        key: "k1".into(),
        request: "d".into(),
        run_id: "r1".into(),
        created_at: 10,
    });
    s.apply(&b).await.unwrap();
    // The same batch's key again: the write of a run is all or nothing.
    let again = WriteBatch {
        new_runs: vec![r1.clone()],
        ..Default::default()
    };
    assert!(s.apply(&again).await.is_err(), "a run id is kept once");
    assert_eq!(s.get_run("r1").await.unwrap().unwrap().tasks.len(), 2);

    // r1's train succeeds with an artifact and output; its log arrives twice (a resend).
    let mut t = task("r1", 0, "train", TaskState::Succeeded);
    t.task.attempt = 1;
    t.task.exit_code = Some(0);
    t.task.started_at = Some(11);
    t.task.finished_at = Some(15);
    t.task.outputs.params = serde_json::from_value(serde_json::json!({"acc": 0.9})).unwrap();
    t.task
        .outputs
        .artifacts
        .push(sluice_engine::ArtifactRecord {
            name: "model".into(),
            uri: "file:///w/r1/train/1/model".into(),
            size: 42,
            digest: format!("blake3:{}", "ab".repeat(32)),
            metadata: Some(serde_json::json!({"rows": 3})),
            kind: Some("model".into()),
        });
    let mut done = r1.clone();
    done.state = RunState::Succeeded;
    done.finished_at = Some(16);
    done.metrics = serde_json::from_value(serde_json::json!({"train.acc": 0.9})).unwrap();
    let logs = vec![
        log("r1", 1, 1, "one"),
        log("r1", 1, 2, "two"),
        log("r1", 2, 1, "again"),
    ];
    let b = WriteBatch {
        runs: vec![done],
        tasks: vec![t.clone(), t.clone()],
        logs: logs.clone(),
        cache: vec![CacheEntry {
            key: "key".into(),
            image_digest: "sha256:img".into(),
            run_id: "r1".into(),
            task: "train".into(),
            outputs: [("acc".to_string(), "0.9".to_string())].into(),
            artifacts: t.task.outputs.artifacts.clone(),
            created_at: 15,
        }],
        workers_seen: vec![],
        ..Default::default()
    };
    s.apply(&b).await.unwrap();
    s.apply(&WriteBatch {
        logs,
        ..Default::default()
    })
    .await
    .unwrap();
    let got = s.get_run("r1").await.unwrap().unwrap();
    assert_eq!(got.row.state, RunState::Succeeded);
    assert_eq!(
        got.row.labels.get("branch").map(String::as_str),
        Some("main")
    );
    assert_eq!(got.tasks[0].task.state, TaskState::Succeeded);
    assert_eq!(got.tasks[0].task.exit_code, Some(0));
    assert_eq!(
        got.tasks[0].task.outputs.artifacts,
        t.task.outputs.artifacts
    );
    assert_eq!(got.tasks[1].task.state, TaskState::Pending);
    let page = s
        .read_logs("r1", 0, "train", LogCursor::default(), 2)
        .await
        .unwrap();
    let lines: Vec<&str> = page.iter().map(|(_, l)| l.line.as_str()).collect();
    assert_eq!(lines, ["one", "two"]);
    let rest = s.read_logs("r1", 0, "train", page[1].0, 10).await.unwrap();
    assert_eq!(rest.len(), 1, "a resent line is kept once");
    assert_eq!((rest[0].1.attempt, rest[0].1.line.as_str()), (2, "again"));

    // The cache: by key, newest, for any digest or one.
    let hit = s.cached("key", None, 0).await.unwrap().unwrap();
    assert_eq!((hit.run_id.as_str(), hit.artifacts.len()), ("r1", 1));
    assert!(s
        .cached("key", Some("sha256:other"), 0)
        .await
        .unwrap()
        .is_none());
    assert!(s.cached("key", None, 16).await.unwrap().is_none());
    assert!(s
        .cached("key", Some("sha256:img"), 15)
        .await
        .unwrap()
        .is_some());

    // Idempotency keys.
    assert_eq!(
        s.idempotency_key("k1").await.unwrap().map(|k| k.run_id),
        Some("r1".into())
    );
    assert_eq!(s.forget_idempotency_keys(11).await.unwrap(), 1);
    assert!(s.idempotency_key("k1").await.unwrap().is_none());

    // The run list: filters, search, sorts, pages, progress.
    let all = RunFilter::default();
    assert_eq!(ids(&s, all.clone()).await, ["r1", "r2", "r3"]);
    let desc = RunFilter {
        descending: true,
        ..all.clone()
    };
    assert_eq!(ids(&s, desc.clone()).await, ["r3", "r2", "r1"]);
    let page = RunFilter {
        before: Some("r3".into()),
        limit: 1,
        ..desc.clone()
    };
    assert_eq!(s.list_runs(&page).await.unwrap()[0].id, "r2");
    let search = |q: &str| RunFilter {
        search: Some(q.into()),
        ..all.clone()
    };
    assert_eq!(ids(&s, search("IRIS")).await, ["r1"], "case-insensitive");
    assert_eq!(ids(&s, search("al")).await, ["r2"], "two characters");
    assert_eq!(
        ids(&s, search("%_")).await,
        ["r3"],
        "wildcards stand for themselves"
    );
    assert!(ids(&s, search("x%")).await.is_empty());
    let state = RunFilter {
        state: Some(RunState::Running),
        ..all.clone()
    };
    assert_eq!(ids(&s, state).await, ["r2", "r3"]);
    let label = RunFilter {
        label: Some(("branch".into(), "main".into())),
        ..all.clone()
    };
    assert_eq!(ids(&s, label).await, ["r1"]);
    let by_name = RunFilter {
        sort: RunSort::Name,
        ..all.clone()
    };
    assert_eq!(ids(&s, by_name).await, ["r3", "r1", "r2"], "byte order");
    let by_param = RunFilter {
        sort: RunSort::Param("lr".into()),
        descending: true,
        ..all.clone()
    };
    assert_eq!(
        ids(&s, by_param).await,
        ["r2", "r1", "r3"],
        "runs without it last"
    );
    let by_duration = RunFilter {
        sort: RunSort::Duration,
        ..all.clone()
    };
    assert_eq!(
        ids(&s, by_duration).await[0],
        "r1",
        "running runs sort longest"
    );
    let listed = s
        .list_runs(&RunFilter {
            limit: 10,
            ..all.clone()
        })
        .await
        .unwrap();
    let progress = listed[0].steps.unwrap();
    assert_eq!((progress.done, progress.total), (1, 2));
    let mut counts = s.count_runs_by_state().await.unwrap();
    counts.sort_by_key(|(st, _)| st.as_str());
    assert_eq!(counts, [(RunState::Running, 2), (RunState::Succeeded, 1)]);
    let mut active = s.active_run_ids().await.unwrap();
    active.sort();
    assert_eq!(active, ["r2", "r3"]);

    // Lineage: who made an artifact, who read it.
    let mut reader = task("r2", 0, "eval", TaskState::Succeeded);
    reader.task.finished_at = Some(25);
    reader.task.spec = Some(sluice_engine::task::TaskSpec {
        input_artifacts: vec![sluice_engine::task::InputArtifact {
            name: "model".into(),
            path: "/in/model".into(),
            uri: "file:///w/r1/train/1/model".into(),
            producer: "train".into(),
            metadata: None,
            digest: None,
            size: None,
        }],
        ..Default::default()
    });
    s.apply(&WriteBatch {
        tasks: vec![reader],
        ..Default::default()
    })
    .await
    .unwrap();
    let (made, read) = s.lineage("file:///w/r1/train/1/model", 10).await.unwrap();
    assert_eq!(
        (made.len(), made[0].run.as_str(), made[0].size),
        (1, "r1", Some(42))
    );
    assert_eq!(
        (read.len(), read[0].run.as_str(), read[0].size),
        (1, "r2", None)
    );

    // Archive, unarchive, delete (with everything of the run).
    assert!(s.set_archived("r2", true).await.unwrap());
    let archived = RunFilter {
        archived: Some(true),
        ..all.clone()
    };
    assert_eq!(ids(&s, archived).await, ["r2"]);
    assert!(!s.set_archived("nope", true).await.unwrap());
    s.fail_run("r3", "unreadable rows", 40).await.unwrap();
    let r3 = s.get_run("r3").await.unwrap().unwrap().row;
    assert_eq!(
        (r3.state, r3.error.as_deref()),
        (RunState::Failed, Some("unreadable rows"))
    );
    assert!(s.delete_run("r1").await.unwrap());
    assert!(s.get_run("r1").await.unwrap().is_none());
    assert!(s.cached("key", None, 0).await.unwrap().is_none());
    assert!(s
        .read_logs("r1", 0, "train", LogCursor::default(), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(!s.delete_run("r1").await.unwrap());

    // Pipelines: the same bytes are the same version; new bytes the next.
    let v1 = s
        .put_pipeline_version("iris", Some("d"), "name: iris\n", "sha256:v1", 100)
        .await
        .unwrap();
    let same = s
        .put_pipeline_version("iris", Some("d"), "name: iris\n", "sha256:v1", 101)
        .await
        .unwrap();
    assert!(v1.created && !same.created);
    assert_eq!((v1.version, same.id.as_str()), (1, v1.id.as_str()));
    let v2 = s
        .put_pipeline_version("iris", None, "name: iris # 2\n", "sha256:v2", 102)
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    let p = s.get_pipeline("iris").await.unwrap().unwrap();
    assert_eq!((p.latest_version, p.description), (2, None));
    assert_eq!(s.get_pipeline(&p.id).await.unwrap().unwrap().name, "iris");
    assert_eq!(s.list_pipelines().await.unwrap().len(), 1);
    let versions: Vec<u32> = s
        .list_versions(&p.id)
        .await
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(versions, [2, 1]);
    assert_eq!(
        s.get_version(&p.id, Some(1)).await.unwrap().unwrap().yaml,
        "name: iris\n"
    );
    assert_eq!(
        s.get_version(&p.id, None).await.unwrap().unwrap().version,
        2
    );
    assert_eq!(
        s.source("sha256:v2").await.unwrap().as_deref(),
        Some("name: iris # 2\n")
    );

    // Tokens: by hash, revoked by id or by a name only one live token has.
    let token = |id: &str, name: &str| TokenRow {
        id: id.into(),
        name: name.into(),
        role: "submit".into(),
        pipelines: Some(vec!["iris".into()]),
        created_at: 1,
        revoked_at: None,
    };
    s.create_token(&token("t1", "ci"), "h1").await.unwrap();
    s.create_token(&token("t2", "ci"), "h2").await.unwrap();
    assert!(
        s.create_token(&token("t3", "x"), "h1").await.is_err(),
        "a hash is kept once"
    );
    assert_eq!(
        s.token_by_hash("h1").await.unwrap().unwrap().pipelines,
        Some(vec!["iris".to_string()])
    );
    assert!(matches!(
        s.revoke_token("ci", 5).await,
        Err(StoreError::Ambiguous(_))
    ));
    assert_eq!(s.revoke_token("t1", 5).await.unwrap().len(), 1);
    assert!(s.token_by_hash("h1").await.unwrap().is_none());
    assert_eq!(s.live_tokens().await.unwrap(), 1);
    assert_eq!(s.revoke_token("ci", 6).await.unwrap()[0].id, "t2");
    assert_eq!(s.list_tokens().await.unwrap().len(), 2);

    // Secrets: each change a new version, sealed with it.
    let seal = |v: u32| (vec![v as u8; 12], vec![7u8; 20]);
    assert_eq!(s.put_secret("pw", &seal, 1).await.unwrap(), 1);
    assert_eq!(s.put_secret("pw", &seal, 2).await.unwrap(), 2);
    let kept = s.get_secret("pw").await.unwrap().unwrap();
    assert_eq!(
        (kept.version, kept.nonce[0], kept.ciphertext.len()),
        (2, 2, 20)
    );
    assert_eq!(s.list_secrets().await.unwrap(), [("pw".to_string(), 2, 2)]);
    assert!(s.delete_secret("pw").await.unwrap());
    assert!(!s.delete_secret("pw").await.unwrap());

    // Workers, with their labels and GPUs, seen as they report.
    let labels: Labels = [("zone".to_string(), "b".to_string())].into();
    s.register_worker(
        &NewWorker {
            id: "w1",
            name: "gpu-box",
            capacity: 8,
            credential_hash: "cafe",
            artifact_root: Some("/var/lib/w"),
            labels: &labels,
            gpus: 2,
        },
        50,
    )
    .await
    .unwrap();
    s.apply(&WriteBatch {
        workers_seen: vec![("w1".into(), 60)],
        ..Default::default()
    })
    .await
    .unwrap();
    let w = s.get_worker("w1").await.unwrap().unwrap();
    assert_eq!((w.capacity, w.gpus, w.last_seen_at), (8, 2, 60));
    assert_eq!(w.labels, labels);
    assert_eq!(w.credential_hash.as_deref(), Some("cafe"));
    assert_eq!(s.list_workers().await.unwrap().len(), 1);
    s.ping().await.unwrap();
    s.close().await;
}

#[tokio::test]
async fn sqlite_keeps_the_stores_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(sluice_server::store::open(None, dir.path()).await.unwrap()).await;
}

#[tokio::test]
async fn postgres_keeps_the_stores_contract() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    contract(
        sluice_server::store::open(Some(&pg.url), dir.path())
            .await
            .unwrap(),
    )
    .await;
    // Opened again: its migrations are already applied.
    let again = sluice_server::store::open(Some(&pg.url), dir.path())
        .await
        .unwrap();
    again.ping().await.unwrap();
}

#[tokio::test]
async fn a_database_url_sluice_does_not_speak_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let e = sluice_server::store::open(Some("mysql://db/sluice"), dir.path())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("`mysql`") && e.contains("PostgreSQL"), "{e}");
}
