//! The worker ↔ helper handshake a bridged network is wired in: a container whose network the
//! worker wires is held after its namespaces exist, wired from the host, and only then started;
//! a wiring that fails stops it before its program runs. Driven through the embedded runtime in
//! this process, with a wiring of the test's own.

use super::image;
use crate::harness::BIN;
use sluice_sdk::api::{Stream, TaskSpec};
use sluice_spec::NetworkMode;
use sluice_worker::images::registry::Registries;
use sluice_worker::images::store::ImageStore;
use sluice_worker::runtime::embedded::{EmbeddedConfig, EmbeddedRuntime, NetworkWiring};
use sluice_worker::runtime::{ContainerRuntime, Io, LogSink, RunRequest};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Records the network namespace of each container it wires, as the host sees it; fails when
/// told to.
#[derive(Debug, Default)]
struct Recorder {
    seen: Mutex<Vec<(String, String)>>,
    fail: bool,
}

impl NetworkWiring for Recorder {
    fn wires(&self, mode: NetworkMode) -> bool {
        mode == NetworkMode::None
    }

    fn wire(&self, container: &str, pid: i32, _: NetworkMode) -> Result<(), String> {
        let ns = std::fs::read_link(format!("/proc/{pid}/ns/net")).map_err(|e| e.to_string())?;
        self.seen
            .lock()
            .unwrap()
            .push((container.to_string(), ns.to_string_lossy().into_owned()));
        match self.fail {
            true => Err("no address left in 198.18.0.0/24".into()),
            false => Ok(()),
        }
    }
}

async fn runtime(dir: &std::path::Path, wiring: Arc<Recorder>) -> EmbeddedRuntime {
    let store = Arc::new(ImageStore::open(&dir.join("images")).unwrap());
    let registries = Arc::new(Registries::new(store.clone(), vec![]));
    EmbeddedRuntime::new(
        EmbeddedConfig {
            worker_dir: dir.to_path_buf(),
            helper: PathBuf::from(BIN),
            defaults: Default::default(),
            keep: false,
            tag_ttl: std::time::Duration::from_secs(60),
            allow_unconfined: false,
            disk: Default::default(),
            wiring: Some(wiring),
            default_network: sluice_spec::NetworkMode::None,
            userns: None,
        },
        store,
        registries,
    )
    .unwrap()
}

async fn run(rt: &EmbeddedRuntime, lease: &str, command: &str) -> (i32, String, bool) {
    let spec = TaskSpec {
        image: image("busybox"),
        command: Some(vec!["sh".into(), "-c".into(), command.into()]),
        hostname: "wired".into(),
        ..Default::default()
    };
    rt.prepare(&spec).await.unwrap();
    let (logs, mut rx) = LogSink::channel();
    let (started, started_rx) = tokio::sync::oneshot::channel();
    let (_stop, stop) = tokio::sync::watch::channel(None);
    let req = RunRequest {
        lease_id: lease.into(),
        run_id: "wiring".into(),
        task: "t".into(),
        attempt: 1,
        spec,
        params_dir: PathBuf::new(),
        artifacts_dir: PathBuf::new(),
        script: None,
        inputs: vec![],
        artifacts_root: PathBuf::new(),
        secret_files: Vec::new(),
    };
    let exit = rt
        .run(
            req,
            Io {
                logs,
                started,
                stop,
            },
        )
        .await;
    let mut out = String::new();
    while let Ok((s, l)) = rx.try_recv() {
        if s == Stream::Stdout {
            out += &l;
        }
    }
    match exit {
        Ok(e) => (e.code, out, started_rx.await.is_ok()),
        Err(e) => (-1, e.to_string(), started_rx.await.is_ok()),
    }
}

#[tokio::test]
async fn a_container_is_wired_in_its_own_namespaces_before_its_program_starts() {
    let dir = tempfile::tempdir().unwrap();
    let wiring = Arc::new(Recorder::default());
    let rt = runtime(dir.path(), wiring.clone()).await;
    let (code, out, started) = run(&rt, "wired-1", "readlink /proc/self/ns/net").await;
    assert_eq!(code, 0, "{out}");
    assert!(started);
    let seen = wiring.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "wired once: {seen:?}");
    // What the wiring saw is the container's own network namespace, not the host's.
    assert_eq!(seen[0].1, out.trim(), "{seen:?}");
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_ne!(seen[0].1, host.to_string_lossy());
}

#[tokio::test]
async fn a_wiring_that_fails_stops_the_container_before_its_program_runs() {
    let dir = tempfile::tempdir().unwrap();
    let wiring = Arc::new(Recorder {
        fail: true,
        ..Default::default()
    });
    let rt = runtime(dir.path(), wiring.clone()).await;
    let (code, out, started) = run(&rt, "wired-2", "echo ran").await;
    assert!(!started, "the program must not start");
    assert_eq!(code, -1, "{out}");
    assert!(out.contains("no address left in 198.18.0.0/24"), "{out}");
    assert!(!out.contains("ran\n"), "{out}");
    assert_eq!(wiring.seen.lock().unwrap().len(), 1);
}
