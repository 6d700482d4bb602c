//! Workers on two "hosts": each a network namespace joined to this one by a veth pair, and a
//! mount namespace whose data directory is a tmpfs only it sees. They share nothing with the
//! server or each other but the network: they reach the server over their own link, with a
//! token, as workers on other machines do. Parameters cross through the server; artifacts cross
//! through an S3 server (Garage) when the server keeps them there, and otherwise stay on the
//! worker that made them.

use crate::harness::*;
use sluice_sdk::api::{RunState, TaskState};
use sluice_sdk::client::Client;
use std::process::Command;
use std::time::{Duration, Instant};

const TOKEN: &str = "two-hosts-admin-token";

fn sh(script: &str) {
    let out = Command::new("sh").args(["-c", script]).output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A host: its network namespace, the host's end of its link, and the worker in it.
struct Host {
    ns: String,
    link: String,
    worker: Option<Proc>,
    _dir: tempfile::TempDir,
}

/// The third octet of this test process's addresses, 198.18.K.0/24.
fn octet() -> u32 {
    std::process::id() % 250 + 1
}

impl Host {
    /// Host `name` at 198.18.K.(base+2), the server reached at 198.18.K.(base+1).
    fn start(name: &str, base: u8, port: u16, labels: &[&str], log: &std::path::Path) -> Host {
        let mut h = Host::net(name, base);
        h.spawn_worker(name, base, port, labels, log, &[]);
        h
    }

    /// Host `name`'s network namespace and link, with its data directory: no worker yet. Its
    /// default route is its link, so that it reaches every address of this host.
    fn net(name: &str, base: u8) -> Host {
        let k = octet();
        let ns = format!("slthost{k}{name}");
        let link = format!("slth{k}{name}");
        let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        let _ = Command::new("ip").args(["link", "del", &link]).status();
        let (server, me) = (
            format!("198.18.{k}.{}", base + 1),
            format!("198.18.{k}.{}", base + 2),
        );
        sh(&format!(
            "ip netns add {ns} && ip link add {link} type veth peer name eth0 netns {ns} && \
             ip addr add {server}/30 dev {link} && ip link set {link} up && \
             ip -n {ns} addr add {me}/30 dev eth0 && ip -n {ns} link set eth0 up && \
             ip -n {ns} link set lo up && ip -n {ns} route add default via {server}"
        ));
        Host {
            ns,
            link,
            worker: None,
            _dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Starts the host's worker, with `env` added to its environment.
    fn spawn_worker(
        &mut self,
        name: &str,
        base: u8,
        port: u16,
        labels: &[&str],
        log: &std::path::Path,
        env: &[(&str, String)],
    ) {
        let (ns, dir) = (&self.ns, &self._dir);
        let server = format!("198.18.{}.{}", octet(), base + 1);
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let d = data.display();
        let mut args = vec![
            "worker".to_string(),
            "--server".into(),
            format!("http://{server}:{port}"),
            "--token".into(),
            TOKEN.into(),
            "--runtime".into(),
            "fake".into(),
            "--data-dir".into(),
            d.to_string(),
            "--name".into(),
            format!("host-{name}"),
            "--capacity".into(),
            "4".into(),
        ];
        for l in labels {
            args.push("--label".into());
            args.push(l.to_string());
        }
        // ip netns exec, unshare and sh each exec the next: the process is the worker.
        let script = format!("mount -t tmpfs sluice-{name} {d} && exec {BIN} \"$@\"");
        let out = std::fs::File::create(log).unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns.as_str(),
                "unshare",
                "--mount",
                "--propagation",
                "private",
            ])
            .args(["sh", "-c", &script, "sh"])
            .args(&args)
            .env("SLUICE_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        self.worker = Some(Proc(child));
    }

    /// The names under a directory of the worker's data directory, as its mount namespace
    /// sees it (nothing outside it does).
    fn ls(&self, under: &str) -> Vec<String> {
        // The worker is the process in the namespace running sluice (`ip netns exec` may have
        // forked on the way).
        let pids = Command::new("ip")
            .args(["netns", "pids", &self.ns])
            .output()
            .unwrap();
        let pid = String::from_utf8_lossy(&pids.stdout)
            .lines()
            .find(|p| {
                std::fs::read_link(format!("/proc/{p}/exe"))
                    .is_ok_and(|e| e.file_name() == std::path::Path::new(BIN).file_name())
            })
            .expect("the worker runs in the namespace")
            .to_string();
        let dir = self._dir.path().join("data").join(under);
        let out = Command::new("nsenter")
            .args(["-t", &pid, "-m", "--", "ls", "-A"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ls {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.worker.take();
        let _ = Command::new("ip")
            .args(["link", "del", &self.link])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

#[tokio::test]
async fn steps_pinned_to_two_hosts_run_there_and_a_step_whose_host_dies_runs_on_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // Beyond loopback, with a token, as a server for other machines is run.
    let _server = spawn(
        &[
            "server",
            "--addr",
            &format!("0.0.0.0:{port}"),
            "--token",
            TOKEN,
            "--data-dir",
            dir.path().join("server").to_str().unwrap(),
            "--lease-ttl",
            "2s",
            "--heartbeat",
            "300ms",
            "--kill-grace",
            "1s",
        ],
        &dir.path().join("server.log"),
    );
    let client = Client::new(&format!("http://127.0.0.1:{port}"), Some(TOKEN.into()));
    let start = Instant::now();
    while client.health().await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut a = Host::start(
        "a",
        8,
        port,
        &["host=a", "pool=x"],
        &dir.path().join("a.log"),
    );
    let mut b = Host::start(
        "b",
        12,
        port,
        &["host=b", "pool=x"],
        &dir.path().join("b.log"),
    );
    let ids = loop {
        let list = client.list_workers().await.unwrap();
        let id = |n: &str| {
            list.iter()
                .find(|w| w.name == n && w.alive)
                .map(|w| w.id.clone())
        };
        if let (Some(a), Some(b)) = (id("host-a"), id("host-b")) {
            break (a, b);
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{list:?}; see {}",
            dir.path().display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let release = dir.path().join("release");
    // Attempt 2 of `either` finds its file; attempt 1 never does.
    std::fs::write(format!("{}-2", release.display()), "").unwrap();
    let yaml = format!(
        "name: two-hosts\nsteps:\n  - name: on-a\n    image: b\n    nodeSelector: {{host: a}}\n    env: {{FAKE_OUT_n: \"41\"}}\n    outputs: {{params: {{n: int}}}}\n  - name: on-b\n    image: b\n    nodeSelector: {{host: b}}\n    params: {{n: \"{{{{steps.on-a.outputs.params.n}}}}\"}}\n    env: {{FAKE_OUT_m: \"{{{{inputs.params.n}}}}1\"}}\n    outputs: {{params: {{m: int}}}}\n  - name: either\n    image: b\n    nodeSelector: {{pool: x}}\n    dependsOn: [on-b]\n    env: {{FAKE_WAIT_FILE: \"{}-{{{{task.attempt}}}}\"}}\n",
        release.display()
    );
    let id = submit(&client, &yaml).await;
    let d = wait_until(
        &client,
        &id,
        Duration::from_secs(30),
        "either running",
        |d| {
            d.tasks
                .iter()
                .any(|t| t.name == "either" && t.state == TaskState::Running)
        },
    )
    .await;
    let task = |d: &sluice_sdk::api::RunDetail, n: &str| {
        d.tasks.iter().find(|t| t.name == n).unwrap().clone()
    };
    assert_eq!(task(&d, "on-a").worker.as_deref(), Some(ids.0.as_str()));
    assert_eq!(task(&d, "on-b").worker.as_deref(), Some(ids.1.as_str()));
    assert_eq!(task(&d, "on-b").outputs["m"], serde_json::json!(411));
    // The host running `either` dies.
    let first = task(&d, "either").worker.unwrap();
    let (dead, other) = if first == ids.0 {
        (&mut a, &ids.1)
    } else {
        (&mut b, &ids.0)
    };
    dead.worker.take().unwrap().kill9();
    let done = wait_run(&client, &id, Duration::from_secs(60)).await;
    assert_eq!(done.summary.state, RunState::Succeeded, "{done:?}");
    let either = task(&done, "either");
    assert_eq!(either.attempt, 2, "{either:?}");
    assert_eq!(
        either
            .attempts
            .iter()
            .map(|a| a.worker.clone())
            .collect::<Vec<_>>(),
        [Some(first.clone()), Some(other.clone())],
        "attempt 1 on the host that died, attempt 2 on the other"
    );
}

/// The server keeps artifacts in S3 (Garage, listening where both hosts reach it). An artifact
/// made on host a crosses to a step pinned to host b through the store, verified and cached
/// there; a step after it on host a reads its producer's own copy and downloads nothing; the
/// server serves what b made from the store, which is the only place it can read it from; and a
/// second run reuses the first one's results from the store, whichever host made them.
#[tokio::test]
async fn artifacts_cross_hosts_through_s3_and_a_consumer_on_its_producers_host_downloads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut a = Host::net("sa", 16);
    let mut b = Host::net("sb", 20);
    let s3 = sluice_server::throwaway_s3::ThrowawayS3::start("0.0.0.0".parse().unwrap())
        .expect("Garage starts (scripts/test installs it)");
    // Both hosts reach this host's end of host a's link.
    let at = format!("198.18.{}.17", octet());
    let s3_port = s3.endpoint.rsplit(':').next().unwrap();
    let url = format!(
        "s3://{}/runs?endpoint=http://{at}:{s3_port}&region={}",
        s3.bucket, s3.region
    );
    let (addr, data) = (format!("0.0.0.0:{port}"), dir.path().join("server"));
    let server_args = [
        "server",
        "--addr",
        &addr,
        "--token",
        TOKEN,
        "--artifacts",
        &url,
        "--data-dir",
        data.to_str().unwrap(),
    ];
    let log = dir.path().join("server.log");
    let _server = spawn_env(&server_args, &log, &s3.env());
    let client = Client::new(&format!("http://127.0.0.1:{port}"), Some(TOKEN.into()));
    let start = Instant::now();
    while client.health().await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the server did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let env = s3.env();
    a.spawn_worker("sa", 16, port, &["host=a"], &dir.path().join("a.log"), &env);
    b.spawn_worker("sb", 20, port, &["host=b"], &dir.path().join("b.log"), &env);
    while client
        .list_workers()
        .await
        .unwrap()
        .iter()
        .filter(|w| w.alive)
        .count()
        < 2
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the workers did not register; see {}",
            dir.path().display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let digest = format!("sha256:{}", "5".repeat(64));
    let yaml = format!(
        "name: through-s3\nsteps:\n  - name: make\n    image: b\n    nodeSelector: {{host: a}}\n    env: {{FAKE_ART_data: \"made on a\", FAKE_IMAGE_DIGEST: \"{digest}\"}}\n    outputs: {{artifacts: {{data: {{type: dataset}}}}}}\n  - name: far\n    image: b\n    nodeSelector: {{host: b}}\n    inputs: {{artifacts: {{data: {{type: dataset}}}}}}\n    artifacts: {{data: \"{{{{steps.make.outputs.artifacts.data}}}}\"}}\n    env: {{FAKE_COPY_copy: data, FAKE_IMAGE_DIGEST: \"{digest}\"}}\n    outputs: {{artifacts: {{copy: {{type: dataset}}}}}}\n  - name: near\n    image: b\n    nodeSelector: {{host: a}}\n    inputs: {{artifacts: {{data: {{type: dataset}}}}}}\n    artifacts: {{data: \"{{{{steps.make.outputs.artifacts.data}}}}\"}}\n    env: {{FAKE_COPY_again: data}}\n    outputs: {{artifacts: {{again: {{type: dataset}}}}}}\n"
    );
    let id = submit(&client, &yaml).await;
    let done = wait_run(&client, &id, Duration::from_secs(60)).await;
    assert_eq!(
        done.summary.state,
        RunState::Succeeded,
        "{done:?}\n{}",
        std::fs::read_to_string(dir.path().join("b.log")).unwrap_or_default()
    );
    let task = |d: &sluice_sdk::api::RunDetail, n: &str| {
        d.tasks.iter().find(|t| t.name == n).unwrap().clone()
    };
    let made = task(&done, "make").artifacts[0].clone();
    assert_eq!(
        made.uri,
        format!("s3://sluice/runs/{id}/make/1/data"),
        "recorded at its place in the store"
    );
    assert!(made.digest.starts_with("blake3:"), "{made:?}");
    // Host b fetched it into its cache, by digest; host a, where it was made, fetched nothing.
    let hex = made.digest.trim_start_matches("blake3:");
    assert_eq!(
        b.ls("worker/artifacts/.cache"),
        [format!("blake3-{hex}")],
        "{}",
        std::fs::read_to_string(dir.path().join("b.log")).unwrap_or_default()
    );
    assert_eq!(a.ls("worker/artifacts/.cache"), Vec::<String>::new());
    // What b made is served by the server from the store (it cannot see either host's disk).
    let http = reqwest::Client::new();
    let get = |task: &str, name: &str| {
        let url = format!("http://127.0.0.1:{port}/api/v1/runs/{id}/tasks/{task}/artifacts/{name}");
        let req = http.get(url).bearer_auth(TOKEN);
        async move {
            let r = req.send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            r.text().await.unwrap()
        }
    };
    assert_eq!(get("far", "copy").await, "made on a");
    assert_eq!(get("near", "again").await, "made on a");
    // The same pipeline again: `make` and `far` are served from the first run's results (their
    // artifacts still in the store), which no worker is needed for.
    let id2 = submit(&client, &yaml).await;
    let again = wait_run(&client, &id2, Duration::from_secs(60)).await;
    assert_eq!(again.summary.state, RunState::Succeeded, "{again:?}");
    for t in ["make", "far"] {
        assert_eq!(
            task(&again, t).cached_from.as_deref(),
            Some(id.as_str()),
            "{t}: {:?}",
            task(&again, t)
        );
    }
    // A result whose object was deleted is not reused: the step runs again.
    let store = s3.store("runs");
    store.delete(&made.uri).await.unwrap();
    let id3 = submit(&client, &yaml).await;
    let third = wait_run(&client, &id3, Duration::from_secs(60)).await;
    assert_eq!(third.summary.state, RunState::Succeeded, "{third:?}");
    assert_eq!(task(&third, "make").cached_from, None);
    assert_eq!(
        task(&third, "make").worker.as_deref(),
        task(&done, "make").worker.as_deref()
    );

    // An object changed in the store after its producer recorded it: the step on the other host
    // that would read it fails, naming the digest, and runs nothing.
    let gate = dir.path().join("gate");
    let yaml = format!(
        "name: tampered\nsteps:\n  - name: make\n    image: b\n    nodeSelector: {{host: a}}\n    env: {{FAKE_ART_data: \"version 2\"}}\n    outputs: {{artifacts: {{data: {{type: dataset}}}}}}\n  - name: gate\n    image: b\n    nodeSelector: {{host: a}}\n    dependsOn: [make]\n    env: {{FAKE_WAIT_FILE: \"{}\"}}\n  - name: far\n    image: b\n    nodeSelector: {{host: b}}\n    dependsOn: [gate]\n    inputs: {{artifacts: {{data: {{type: dataset}}}}}}\n    artifacts: {{data: \"{{{{steps.make.outputs.artifacts.data}}}}\"}}\n    env: {{FAKE_COPY_copy: data}}\n    outputs: {{artifacts: {{copy: {{type: dataset}}}}}}\n",
        gate.display()
    );
    let id4 = submit(&client, &yaml).await;
    wait_until(
        &client,
        &id4,
        Duration::from_secs(30),
        "gate running",
        |d| task(d, "gate").state == TaskState::Running,
    )
    .await;
    let key = object_store::path::Path::from(format!("runs/{id4}/make/1/data"));
    object_store::ObjectStoreExt::put(&**store.store(), &key, "version 3".into())
        .await
        .unwrap();
    std::fs::write(&gate, "").unwrap();
    let fourth = wait_run(&client, &id4, Duration::from_secs(60)).await;
    assert_eq!(fourth.summary.state, RunState::Failed);
    let far = task(&fourth, "far");
    let err = far.error.clone().unwrap_or_default();
    assert!(
        err.contains("input artifact `data` from step `make`")
            && err.contains(&task(&fourth, "make").artifacts[0].digest)
            && err.contains("read from the store has digest"),
        "{err}"
    );
    assert_eq!(far.exit_code, None, "no container ran");
    assert_eq!(
        b.ls("worker/artifacts/.cache").len(),
        1,
        "nothing of it kept"
    );
}
