//! The command line as CI uses it: validate, submit --wait, runs, logs; exit codes included.

use crate::harness::*;
use std::process::Command;

pub(crate) fn sluice(args: &[&str], server: &str) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("SLUICE_SERVER", server)
        .env_remove("SLUICE_TOKEN")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn validate_prints_every_error_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "name: x\nsteps:\n  - name: a\n    image: b\n    dependsOn: [zz]\n    command: [echo, '{{params.nope}}']\n").unwrap();
    let (code, _, err) = sluice(&["validate", bad.to_str().unwrap()], "http://127.0.0.1:9");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("bad.yaml:5:17: error: step `a` depends on unknown step `zz`"),
        "{err}"
    );
    assert!(
        err.contains("bad.yaml:6:21: error: unknown pipeline parameter `nope`"),
        "{err}"
    );
    assert!(err.contains("2 error(s)"), "{err}");
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, crate::api::DIAMOND).unwrap();
    let (code, out, _) = sluice(&["validate", good.to_str().unwrap()], "http://127.0.0.1:9");
    assert_eq!(code, 0);
    assert!(out.contains("ok (pipeline `diamond`, 4 step(s))"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_wait_follows_the_run_and_exits_with_its_outcome() {
    let env = InProcess::start().await;
    let url = env.url.clone();
    let file = env.dir.path().join("diamond.yaml");
    std::fs::write(&file, crate::api::DIAMOND).unwrap();
    let f = file.to_str().unwrap().to_string();
    let u = url.clone();
    let (code, out, err) =
        tokio::task::spawn_blocking(move || sluice(&["submit", &f, "--wait", "-p", "seed=9"], &u))
            .await
            .unwrap();
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("a | hello"),
        "logs are printed as they come: {out}"
    );
    assert!(
        out.contains(" d succeeded"),
        "task transitions are printed: {out}"
    );
    assert!(
        err.contains("succeeded") && err.contains("z=b9+c9"),
        "{err}"
    );

    let failing = env.dir.path().join("fail.yaml");
    std::fs::write(
        &failing,
        "name: f\nsteps:\n  - name: boom\n    image: b\n    env: {FAKE_EXIT: \"4\"}\n",
    )
    .unwrap();
    let f = failing.to_str().unwrap().to_string();
    let u = url.clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        sluice(&["submit", &f, "--wait", "--output", "json"], &u)
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "{err}");
    let detail: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(detail["state"], "failed");
    assert_eq!(detail["tasks"][0]["exit_code"], 4);

    let f = file.to_str().unwrap().to_string();
    let u = url.clone();
    let (code, _, err) =
        tokio::task::spawn_blocking(move || sluice(&["submit", &f, "-p", "seed=lots"], &u))
            .await
            .unwrap();
    assert_eq!(code, 2, "bad parameter values are invalid input: {err}");
    assert!(err.contains("parameter `seed` is int"), "{err}");

    let (code, _, err) =
        tokio::task::spawn_blocking(|| sluice(&["runs", "list"], "http://127.0.0.1:9"))
            .await
            .unwrap();
    assert_eq!(
        code, 3,
        "an unreachable server has its own exit code: {err}"
    );

    // `sluice runs list | head -0`: the reader is gone before anything is written. The command
    // ends quietly (by SIGPIPE, as Unix tools do), never with a panic about a broken pipe.
    let u = url.clone();
    let (status, err) = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(BIN)
            .args(["runs", "list"])
            .env("SLUICE_SERVER", &u)
            .env_remove("SLUICE_TOKEN")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert!(
        status.success() || status.signal() == Some(libc::SIGPIPE),
        "{status:?}: {err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );

    let u = url.clone();
    let (code, out, _) =
        tokio::task::spawn_blocking(move || sluice(&["runs", "list", "--output", "json"], &u))
            .await
            .unwrap();
    assert_eq!(code, 0);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    let runs = list["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    let ok_id = runs.iter().find(|r| r["state"] == "succeeded").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let u = url.clone();
    let id = ok_id.clone();
    let (code, out, _) = tokio::task::spawn_blocking(move || sluice(&["logs", &id, "a"], &u))
        .await
        .unwrap();
    assert_eq!((code, out.as_str()), (0, "hello\nfrom a\n"));
    let u = url.clone();
    let (code, out, _) = tokio::task::spawn_blocking(move || sluice(&["runs", "get", &ok_id], &u))
        .await
        .unwrap();
    assert_eq!(code, 0);
    assert!(
        out.contains("state     succeeded")
            && out.contains("ended by  tasks")
            && out.contains("z=b9+c9"),
        "{out}"
    );
}

#[tokio::test]
async fn tokens_and_secrets_are_managed_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, url) = server_in(dir.path()).await;
    let run = |args: &[&str], token: Option<&str>, stdin: Option<&str>| {
        let mut c = Command::new(BIN);
        c.args(args)
            .env("SLUICE_SERVER", &url)
            .env_remove("SLUICE_TOKEN")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(t) = token {
            c.env("SLUICE_TOKEN", t);
        }
        let mut child = c.spawn().unwrap();
        if let Some(s) = stdin {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The first token locks the loopback server; the secret is printed once, on stdout alone.
    let (code, admin, err) = run(&["tokens", "create", "ops", "--role", "admin"], None, None);
    assert_eq!(code, 0, "{err}");
    let admin = admin.trim().to_string();
    assert!(
        admin.starts_with("slc_") && err.contains("not shown again"),
        "{err}"
    );
    let (code, _, err) = run(&["tokens", "list"], None, None);
    assert_eq!(code, 2, "a locked server refuses: {err}");
    let (code, ci, _) = run(
        &[
            "tokens",
            "create",
            "ci",
            "--role",
            "submit",
            "--pipeline",
            "iris",
        ],
        Some(&admin),
        None,
    );
    assert_eq!(code, 0);
    let (code, list, _) = run(&["tokens", "list"], Some(&admin), None);
    assert_eq!(code, 0);
    assert!(
        list.contains("ops") && list.contains("ci") && list.contains("pipelines iris"),
        "{list}"
    );
    assert!(
        !list.contains(admin.as_str()) && !list.contains(ci.trim()),
        "{list}"
    );
    let (code, out, err) = run(&["tokens", "revoke", "ci"], Some(&admin), None);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("revoked "), "{out}");
    let (code, _, _) = run(&["runs", "list"], Some(ci.trim()), None);
    assert_eq!(code, 2, "a revoked token is refused");
    let (code, _, err) = run(
        &["tokens", "create", "x", "--role", "root"],
        Some(&admin),
        None,
    );
    assert_eq!(code, 2);
    assert!(err.contains("`role` must be one of"), "{err}");

    // A secret from standard input (its trailing newline dropped); listed by name and version.
    let (code, out, err) = run(
        &["secrets", "set", "hf-token"],
        Some(&admin),
        Some("v4lue\n"),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("version 1"), "{out}");
    let (code, out, _) = run(&["secrets", "set", "hf-token"], Some(&admin), Some("other"));
    assert_eq!(code, 0);
    assert!(out.contains("version 2"), "{out}");
    let (_, list, _) = run(&["secrets", "list", "--output", "json"], Some(&admin), None);
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["name"], "hf-token");
    assert_eq!(list[0]["version"], 2);
    assert!(!list.to_string().contains("other"));
    let (code, _, _) = run(&["secrets", "rm", "hf-token"], Some(&admin), None);
    assert_eq!(code, 0);
    let (code, _, err) = run(&["secrets", "rm", "hf-token"], Some(&admin), None);
    assert_eq!(code, 2);
    assert!(err.contains("no secret named `hf-token`"), "{err}");
    server.kill9();
}
