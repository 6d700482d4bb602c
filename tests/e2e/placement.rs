//! Where tasks go: a step's `nodeSelector` picks workers by their labels, a step asking for GPUs
//! goes only where that many are free, and a task no worker that is up can take says why. The
//! workers here speak the worker protocol directly, so what each is offered is seen exactly.

use crate::access::server;
use sluice_sdk::api::{
    CreateRun, ErrorCode, Lease, RegisterWorker, ReportEvent, TaskResult, TaskState, WorkerIdentity,
};
use sluice_sdk::client::{Client, ClientError};

async fn register(c: &Client, name: &str, labels: &[(&str, &str)], gpus: u32) -> WorkerIdentity {
    let req = RegisterWorker {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        gpus,
        ..RegisterWorker::new(name, 8, None)
    };
    let r = c.register_worker(&req).await.unwrap();
    WorkerIdentity {
        id: r.id,
        credential: r.credential,
    }
}

fn names(leases: &[Lease]) -> Vec<&str> {
    let mut n: Vec<&str> = leases.iter().map(|l| l.task.as_str()).collect();
    n.sort();
    n
}

fn succeeded(lease: &Lease) -> ReportEvent {
    ReportEvent::Finished {
        lease_id: lease.lease_id.clone(),
        ts_ms: sluice_sdk::api::now_ms(),
        result: TaskResult::succeeded(0, Default::default(), Vec::new()),
    }
}

async fn waiting(c: &Client, run: &str, task: &str) -> Option<String> {
    let d = c.get_run(run).await.unwrap();
    d.tasks
        .into_iter()
        .find(|t| t.name == task)
        .unwrap()
        .waiting
}

#[tokio::test]
async fn steps_go_only_to_workers_with_their_labels_and_free_gpus() {
    let (url, _dir) = server(Default::default()).await;
    let c = Client::new(&url, None);

    // A worker's labels and GPUs are checked when it registers.
    for (labels, gpus, want) in [
        (vec![("bad name", "x")], 0, "label name `bad name`"),
        (vec![("zone", "a\nb")], 0, "control characters"),
        (vec![], 5000, "`gpus` must be at most 1024"),
    ] {
        let req = RegisterWorker {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            gpus,
            ..RegisterWorker::new("w", 1, None)
        };
        match c.register_worker(&req).await {
            Err(ClientError::Api { status, error }) => {
                assert_eq!((status, error.code), (400, ErrorCode::InvalidBody));
                assert!(error.message.contains(want), "{}", error.message);
            }
            other => panic!("registered {labels:?} {gpus}: {other:?}"),
        }
    }

    let yaml = "name: placed\nsteps:\n  - {name: anywhere, image: busybox}\n  - {name: zoned, image: busybox, nodeSelector: {zone: b}}\n  - {name: train1, image: busybox, resources: {gpu: 1}}\n  - {name: train2, image: busybox, resources: {gpu: 1}}\n";
    let run = c
        .create_run(&CreateRun {
            yaml: Some(yaml.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let id = run.summary.id.as_str();
    assert_eq!(
        waiting(&c, id, "zoned").await.as_deref(),
        Some("no worker is up")
    );
    let plain = register(&c, "plain", &[], 0).await;
    // A worker with no labels and no GPU is offered only the step that asks for neither.
    let got = c.lease(&plain, 8, 500).await.unwrap().leases;
    assert_eq!(names(&got), ["anywhere"]);
    assert_eq!(
        waiting(&c, id, "zoned").await.as_deref(),
        Some("no worker that is up has the labels zone=b")
    );
    assert_eq!(
        waiting(&c, id, "train1").await.as_deref(),
        Some("no worker that is up has 1 GPU")
    );
    assert_eq!(waiting(&c, id, "anywhere").await, None);

    // A worker labelled zone=b with one GPU takes the zoned step and one GPU step, not both.
    let gpu = register(&c, "gpu", &[("zone", "b"), ("gpu", "a100")], 1).await;
    let got = c.lease(&gpu, 8, 500).await.unwrap().leases;
    let got_names = names(&got);
    assert_eq!(got_names.len(), 2, "{got_names:?}");
    assert_eq!(got_names[1], "zoned");
    let first = got.iter().find(|l| l.task.as_str() != "zoned").unwrap();
    let second = if first.task.as_str() == "train1" {
        "train2"
    } else {
        "train1"
    };
    assert_eq!(
        waiting(&c, id, second).await.as_deref(),
        Some("waiting for 1 free GPU: the workers that have them are using them")
    );
    assert!(c.lease(&plain, 8, 200).await.unwrap().leases.is_empty());

    // The workers as the API lists them: labels, GPUs in use, what each runs.
    let list = c.list_workers().await.unwrap();
    let w = list.iter().find(|w| w.name == "gpu").unwrap();
    assert!(w.alive);
    assert_eq!((w.gpus, w.gpus_in_use, w.active_leases), (1, 1, 2));
    assert_eq!(w.labels.get("zone").map(String::as_str), Some("b"));
    let mut running: Vec<&str> = w.tasks.iter().map(|t| t.task.as_str()).collect();
    running.sort();
    assert_eq!(running, [first.task.as_str(), "zoned"]);
    assert!(
        w.tasks
            .iter()
            .all(|t| t.run_id == id && t.run_name == run.summary.name),
        "{w:?}"
    );
    let p = list.iter().find(|w| w.name == "plain").unwrap();
    assert_eq!((p.gpus, p.gpus_in_use, p.active_leases), (0, 0, 1));

    // A lease request already waiting is answered once the GPU is free again.
    let poll = {
        let (c, gpu) = (c.clone(), gpu.clone());
        tokio::spawn(async move { c.lease(&gpu, 8, 20_000).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    c.report(&gpu, vec![succeeded(first)]).await.unwrap();
    let got = poll.await.unwrap().unwrap().leases;
    assert_eq!(names(&got), [second]);
    let d = c.get_run(id).await.unwrap();
    let t = d.tasks.iter().find(|t| t.name == second).unwrap();
    assert_eq!(t.state, TaskState::Leased);
    assert_eq!(t.worker.as_deref(), Some(gpu.id.as_str()));
    assert_eq!(t.waiting, None);
}
