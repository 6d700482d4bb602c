//! Workers on two "hosts": each a network namespace joined to this one by a veth pair, and a
//! mount namespace whose data directory is a tmpfs only it sees. They share nothing with the
//! server or each other but the network: they reach the server over their own link, with a
//! token, as workers on other machines do. (Artifacts do not cross: they stay on the worker that
//! made them; parameters cross through the server.)

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

impl Host {
    /// Host `name` at 198.18.K.(base+2), the server reached at 198.18.K.(base+1).
    fn start(name: &str, base: u8, port: u16, labels: &[&str], log: &std::path::Path) -> Host {
        let k = std::process::id() % 250 + 1;
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
             ip -n {ns} link set lo up"
        ));
        let dir = tempfile::tempdir().unwrap();
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
                &ns,
                "unshare",
                "--mount",
                "--propagation",
                "private",
            ])
            .args(["sh", "-c", &script, "sh"])
            .args(&args)
            .env("SLUICE_LOG", "info")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Host {
            ns,
            link,
            worker: Some(Proc(child)),
            _dir: dir,
        }
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
