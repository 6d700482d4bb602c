//! Hostile input against a real server process and the real CLI: files built to exhaust memory
//! or the stack, and malformed requests. Each gets a clear 4xx (or exit 2) naming what is wrong,
//! and the server stays up and small.

use crate::harness::*;
use sluice_sdk::client::Client;
use std::time::Duration;

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
    let (server, base) = server_in(dir.path()).await;
    let client = Client::new(&base, None);
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

/// A raw request to a server: the status, the headers and the body as JSON (Null if none).
async fn raw(req: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// A JSON `POST` that announces a body of `len` bytes and sends none of it: the answer's status
/// and JSON body.
fn announce_body(base: &str, path: &str, len: usize) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let host = base.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(host).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        conn,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or_default())
}

#[tokio::test]
async fn malformed_requests_get_an_error_that_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, base) = server_in(dir.path()).await;
    let api = format!("{base}/api/v1");
    let http = reqwest::Client::new();
    let yaml = "name: p\nsteps:\n  - name: a\n    image: b\n    command: [echo]\n";
    let code = |b: &serde_json::Value| b["error"]["code"].as_str().unwrap_or("").to_string();
    let message = |b: &serde_json::Value| b["error"]["message"].as_str().unwrap_or("").to_string();

    // A misspelt field is refused by name instead of running with defaults.
    let (s, _, b) = raw(http
        .post(format!("{api}/runs"))
        .json(&serde_json::json!({"yaml": yaml, "parms": {"lr": 1}})))
    .await;
    assert_eq!((s, code(&b).as_str()), (400, "invalid_body"), "{b}");
    assert!(message(&b).contains("unknown field `parms`"), "{b}");
    let (s, _, b) = raw(http.get(format!("{api}/runs?stat=failed"))).await;
    assert_eq!(s, 400, "{b}");
    assert!(message(&b).contains("unknown field `stat`"), "{b}");
    // A token in the query is taken only where a browser cannot send a header (event streams,
    // downloads): elsewhere it is refused, saying so, rather than leaking into logs unnoticed.
    let (s, _, b) = raw(http.get(format!("{api}/runs?state=failed&access_token=x"))).await;
    assert_eq!((s, code(&b).as_str()), (400, "invalid_query"), "{b}");
    assert!(message(&b).contains("`access_token`"), "{b}");
    let (s, _, b) = raw(http.get(format!(
        "{api}/runs/no-such-run/tasks/t/artifacts/a?access_token=x"
    )))
    .await;
    assert_eq!(
        (s, code(&b).as_str()),
        (404, "not_found"),
        "a download takes the browser's token: {b}"
    );

    // Names hold printable text only.
    for bad in ["a\0b", "two\nlines", " "] {
        let (s, _, b) = raw(http
            .post(format!("{api}/runs"))
            .json(&serde_json::json!({"yaml": yaml, "name": bad})))
        .await;
        assert_eq!(s, 400, "{bad:?}: {b}");
        assert!(message(&b).contains("`name`"), "{b}");
    }

    // A wrong method and an over-long target get JSON bodies too.
    let (s, h, b) = raw(http.delete(format!("{api}/runs"))).await;
    assert_eq!((s, code(&b).as_str()), (405, "method_not_allowed"), "{b}");
    assert!(h.get("allow").is_some());
    let (s, _, b) = raw(http.put(format!("{base}/runs"))).await;
    assert_eq!(
        (s, code(&b).as_str()),
        (405, "method_not_allowed"),
        "the UI's paths too: {b}"
    );
    let (s, _, b) = raw(http.get(format!("{api}/runs?q={}", "x".repeat(10_000)))).await;
    assert_eq!((s, code(&b).as_str()), (414, "uri_too_long"), "{b}");
    assert!(message(&b).contains("over the limit of 8192"), "{b}");

    // A body far over the limit is a 413 naming the limit, not a 400: answered from its
    // announced length, before the 50 MB are read (the server then closes the connection, so
    // the request is written by hand and only its head is sent).
    for path in ["/runs", "/pipelines"] {
        let (s, b) = announce_body(&base, &format!("/api/v1{path}"), 50 << 20);
        assert_eq!(
            (s, code(&b).as_str()),
            (413, "body_too_large"),
            "{path}: {b}"
        );
        assert!(message(&b).contains("limit of 9437184 bytes"), "{b}");
    }

    let runs = Client::new(&base, None)
        .list_runs(None, None, 10, None)
        .await
        .unwrap();
    assert!(runs.runs.is_empty(), "nothing was created: {:?}", runs.runs);
}

#[tokio::test]
async fn an_idempotency_key_makes_a_retried_submit_create_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, base) = server_in(dir.path()).await;
    let api = format!("{base}/api/v1");
    let http = reqwest::Client::new();
    let body = serde_json::json!({"yaml": "name: p\nsteps:\n  - name: a\n    image: b\n    command: [echo]\n"});
    let post = |key: &str, body: &serde_json::Value| {
        http.post(format!("{api}/runs"))
            .header("Idempotency-Key", key)
            .json(body)
    };
    let (s1, h1, b1) = raw(post("key-1", &body)).await;
    let (s2, h2, b2) = raw(post("key-1", &body)).await;
    assert_eq!((s1, s2), (201, 201), "{b1} {b2}");
    assert_eq!(b1["id"], b2["id"], "the same run");
    assert!(h1.get("idempotent-replayed").is_none());
    assert_eq!(h2.get("idempotent-replayed").unwrap(), "true");
    // The same key for another request is refused; another key makes another run.
    let other = serde_json::json!({"yaml": body["yaml"], "name": "other"});
    let (s, _, b) = raw(post("key-1", &other)).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (422, Some("idempotency_key_reused")),
        "{b}"
    );
    let (s, _, b3) = raw(post("key-2", &body)).await;
    assert_eq!(s, 201);
    assert_ne!(b3["id"], b1["id"]);
    for bad in ["", "with space", &"k".repeat(256)] {
        let (s, _, b) = raw(post(bad, &body)).await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (400, Some("invalid_idempotency_key")),
            "{bad:?}"
        );
    }
    let runs = Client::new(&base, None)
        .list_runs(None, None, 10, None)
        .await
        .unwrap();
    assert_eq!(runs.runs.len(), 2);
}

/// Uploads hold a blocking thread each while their bodies arrive: a client that opens many and
/// sends nothing gets a 503 past the server's limit, and each stalled one is given up (408) and
/// its place freed, with nothing kept.
#[tokio::test]
async fn stalled_uploads_are_bounded_and_given_up() {
    let (url, dir) = crate::access::server(sluice_server::ServerConfig {
        upload_idle: Some(Duration::from_millis(800)),
        uploads_at_once: Some(2),
        ..Default::default()
    })
    .await;
    let http = reqwest::Client::new();
    let digest = format!("blake3:{}", blake3::hash(b"never sent").to_hex());
    let put = || http.put(format!("{url}/api/v1/uploads/{digest}"));
    let mut held = Vec::new();
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
        tx.send(Ok(b"n".to_vec())).await.unwrap();
        let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async {
            rx.recv().await.map(|item| (item, rx))
        }));
        // A byte, and then nothing: the sender is held open.
        held.push(tx);
        stalled.push(tokio::spawn(put().body(body).send()));
    }
    // Both places taken: a third upload is told to come back.
    // (A probe whose content is not its digest's: until both places are taken it gets a 400.)
    let other = format!("blake3:{}", blake3::hash(b"other").to_hex());
    let start = std::time::Instant::now();
    let busy = loop {
        let r = http
            .put(format!("{url}/api/v1/uploads/{other}"))
            .body(b"x".to_vec())
            .send()
            .await
            .unwrap();
        if r.status() == 503 {
            break r.text().await.unwrap();
        }
        assert_eq!(r.status(), 400);
        assert!(start.elapsed() < Duration::from_secs(10), "never busy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(busy.contains("taking 2 uploads at once already"), "{busy}");
    // The CLI's client, told so, sends it again until a place is free.
    let local = dir.path().join("rows.csv");
    std::fs::write(&local, "1,2\n").unwrap();
    let client = Client::new(&url, None);
    let patient = tokio::spawn(async move { client.upload_path(&local).await });
    // The stalled ones are given up, saying why.
    for s in stalled {
        let r = s.await.unwrap().unwrap();
        assert_eq!(r.status(), 408);
        let body = r.text().await.unwrap();
        assert!(body.contains("the upload sent nothing for 800ms"), "{body}");
    }
    drop(held);
    let up = patient.await.unwrap().unwrap();
    assert!(up.sent && up.info.size == 4, "{up:?}");
    // Their places are free again, and nothing of them was kept.
    let r = put().body(b"never sent".to_vec()).send().await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let left: Vec<_> = std::fs::read_dir(dir.path().join("data/worker/artifacts/uploads"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
}
