//! Hostile input against a real server process and the real CLI: files built to exhaust memory
//! or the stack, and malformed requests. Each gets a clear 4xx (or exit 2) naming what is wrong,
//! and the server stays up and small.

use crate::harness::*;
use sluice_sdk::client::Client;
use std::time::Duration;

/// Peak resident memory of a process, in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    kb / 1024
}

/// A pipeline file `depth` block lists deep, on one line (two bytes a level).
pub fn deep_yaml(depth: usize) -> String {
    format!(
        "name: deep\nsteps:\n  - name: a\n    image: b\n    command:\n      {}x\n",
        "- ".repeat(depth)
    )
}

/// Nine levels of ten aliases: 10^9 nodes from about 640 bytes.
pub fn alias_bomb() -> String {
    let mut s =
        String::from("name: laughs\nx0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let p = i - 1;
        s.push_str(&format!(
            "x{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    s.push_str("steps:\n  - name: a\n    image: b\n    command: [echo]\n");
    s
}

/// A loop over a 100 x 100 x 100 grid: a million tasks from a kilobyte.
pub fn grid_bomb() -> String {
    let axis = format!(
        "[{}]",
        (0..100)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    format!(
        "name: grid\nsteps:\n  - name: train\n    image: b\n    forEach: {{a: {axis}, b: {axis}, c: {axis}}}\n    command: [echo]\n"
    )
}

#[tokio::test]
async fn yaml_bombs_get_a_4xx_naming_the_limit_and_the_server_stays_up_and_small() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = spawn_server(
        port,
        &dir.path().join("data"),
        &dir.path().join("server.log"),
    )
    .await;
    let client = Client::new(&format!("http://127.0.0.1:{port}"), None);
    let cond_bomb = format!(
        "name: c\nsteps:\n  - name: a\n    image: b\n    when: '{}1{}'\n    command: [echo]\n",
        "(".repeat(50_000),
        ")".repeat(50_000)
    );
    let cases = [
        (deep_yaml(6000), 422, "nest deeper than 64 levels"),
        (
            alias_bomb(),
            422,
            "more than 1000000 nodes through its aliases",
        ),
        (
            grid_bomb(),
            422,
            "grid of 1000000 items, over the limit of 10000 items per loop",
        ),
        (cond_bomb, 422, "over the limit of 512"),
        (
            "x: y\n".repeat(1 << 20),
            422,
            "over the limit of 4194304 bytes",
        ),
    ];
    for (yaml, status, want) in cases {
        let req = sluice_sdk::api::CreateRun {
            yaml: Some(yaml),
            ..Default::default()
        };
        let err = client.create_run(&req).await.unwrap_err();
        match &err {
            sluice_sdk::client::ClientError::Api { status: s, error } => {
                assert_eq!(*s, status, "{want}: {error:?}");
                assert!(error.message.contains(want), "{want}: {}", error.message);
            }
            other => panic!("{want}: {other}"),
        }
        client.health().await.expect("the server is still up");
    }
    let rss = peak_rss_mib(server.0.id());
    assert!(rss < 400, "the server peaked at {rss} MiB");
    let runs = client.list_runs(None, None, 10, None).await.unwrap().runs;
    assert!(runs.is_empty(), "no run was half-written: {runs:?}");
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[test]
fn validate_refuses_bombs_with_exit_2_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    for (name, yaml, want) in [
        ("deep.yaml", deep_yaml(6000), "nest deeper than 64 levels"),
        ("laughs.yaml", alias_bomb(), "through its aliases"),
        (
            "grid.yaml",
            grid_bomb(),
            "over the limit of 10000 items per loop",
        ),
        (
            "big.yaml",
            "x: y\n".repeat(1 << 20),
            "over the limit of 4194304 bytes",
        ),
    ] {
        let f = dir.path().join(name);
        std::fs::write(&f, yaml).unwrap();
        let out = std::process::Command::new(BIN)
            .args(["validate", f.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(want), "{name}: {err}");
    }
}
