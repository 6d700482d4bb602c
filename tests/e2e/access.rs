//! Who may do what: every route against every role, workers bound to their own leases and output
//! areas (the forged-report probe), host names (DNS rebinding), the UI's login cookie, serving
//! beyond loopback, admission at submit, and secrets that never come back out.

use crate::harness::*;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::Method;
use sluice_sdk::api::{
    CreateRun, CreateToken, RegisterWorker, ReportEvent, TaskResult, WorkerIdentity,
    WorkerRegistration,
};
use sluice_sdk::client::{Client, ClientError};
use std::collections::HashMap;
use std::time::Duration;

/// A server in this process with `cfg` (its data directory set here): its URL and directory.
pub(crate) async fn server(mut cfg: sluice_server::ServerConfig) -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    cfg.data_dir = dir.path().join("data");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(sluice_server::serve(cfg, listener, std::future::pending()));
    let c = Client::new(&url, None);
    while c.health().await.is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (url, dir)
}

pub(crate) const ADMIN: &str = "admin-secret-for-tests";

/// The admin's client, and a `submit` token limited to the pipeline `iris` with its client (a
/// CI job's).
pub(crate) async fn ci_token(url: &str) -> (Client, sluice_sdk::api::CreatedToken, Client) {
    let admin = Client::new(url, Some(ADMIN.into()));
    let ci = admin
        .create_token(&CreateToken {
            name: "ci".into(),
            role: "submit".into(),
            pipelines: Some(vec!["iris".into()]),
        })
        .await
        .unwrap();
    let ci_client = Client::new(url, Some(ci.token.clone()));
    (admin, ci, ci_client)
}

/// A run of a one-step pipeline named `name`.
pub(crate) fn run_of(name: &str) -> CreateRun {
    CreateRun {
        yaml: Some(format!(
            "name: {name}\nsteps:\n  - name: a\n    image: busybox\n    command: [\"true\"]\n"
        )),
        ..Default::default()
    }
}

/// A server with an admin token, and a token of each role made through the API.
pub(crate) async fn server_with_roles() -> (String, tempfile::TempDir, HashMap<&'static str, String>)
{
    let (url, dir) = server(sluice_server::ServerConfig {
        token: Some(ADMIN.into()),
        ..Default::default()
    })
    .await;
    let admin = Client::new(&url, Some(ADMIN.into()));
    let mut tokens = HashMap::new();
    for role in ["admin", "submit", "read", "worker"] {
        let made = admin
            .create_token(&CreateToken {
                name: format!("{role}-token"),
                role: role.into(),
                pipelines: None,
            })
            .await
            .unwrap();
        assert!(made.token.starts_with("slc_"));
        tokens.insert(role, made.token);
    }
    (url, dir, tokens)
}

fn status_of(r: &Result<reqwest::Response, reqwest::Error>) -> u16 {
    r.as_ref().map(|r| r.status().as_u16()).unwrap_or(0)
}

#[tokio::test]
async fn every_route_takes_exactly_the_roles_it_declares() {
    let (url, _dir, tokens) = server_with_roles().await;
    let http = sluice_sdk::client::http_client();
    let routes = sluice_server::api::routes();
    assert!(routes.len() >= 30, "{}", routes.len());
    // A worker registered with the worker token, for the routes only a worker may call.
    let reg: WorkerRegistration = Client::new(&url, Some(tokens["worker"].clone()))
        .register_worker(&RegisterWorker::new("w", 1, Some("/var/lib/w")))
        .await
        .unwrap();
    let mut checked = 0;
    for (method, path, route) in routes {
        let concrete = path
            .replace("{id}", reg.id.as_str())
            .replace("{name}", "x")
            .replace("{version}", "1")
            .replace("{task}", "t");
        let target = format!("{url}/api/v1{concrete}");
        let send = |token: Option<&str>| {
            let mut r = http
                .request(method.clone(), &target)
                .timeout(Duration::from_secs(10));
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            if method == Method::POST || method == Method::PUT {
                r = r.json(&serde_json::json!({}));
            }
            r.send()
        };
        use sluice_server::api::auth::{Access, Role};
        // With no credential: refused unless the route is open to anyone.
        let anon = status_of(&send(None).await);
        match route.access {
            Access::Open => assert!(anon != 401 && anon != 403, "{method} {path}: {anon}"),
            _ => assert_eq!(anon, 401, "{method} {path} with no token"),
        }
        for role in Role::ALL {
            let s = status_of(&send(Some(&tokens[role.as_str()])).await);
            let admitted = route.access.admits(role);
            assert!(s != 0, "{method} {path}: no answer");
            if admitted {
                assert!(
                    s != 401 && s != 403,
                    "{method} {path} refused role {}: {s}",
                    role.as_str()
                );
            } else if route.access == Access::WorkerSelf {
                assert_eq!(s, 401, "{method} {path} with a {} token", role.as_str());
            } else {
                assert_eq!(s, 403, "{method} {path} let role {} in", role.as_str());
            }
        }
        if route.access == Access::WorkerSelf {
            let s = status_of(&send(Some(&reg.credential)).await);
            assert!(
                s != 401 && s != 403,
                "{method} {path} refused its worker: {s}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 30);
    // The API document says the same roles the table enforces.
    let doc: serde_json::Value = http
        .get(format!("{url}/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["paths"]["/tokens"]["post"]["x-roles"],
        serde_json::json!(["admin"])
    );
    assert_eq!(
        doc["paths"]["/runs"]["get"]["x-roles"],
        serde_json::json!(["admin", "submit", "read"])
    );
}

#[tokio::test]
async fn a_revoked_token_stops_working_and_a_submit_token_runs_only_its_pipelines() {
    let (url, _dir, tokens) = server_with_roles().await;
    let (admin, ci, ci_client) = ci_token(&url).await;
    ci_client.create_run(&run_of("iris")).await.unwrap();
    match ci_client.create_run(&run_of("other")).await {
        Err(ClientError::Api { status: 403, error }) => {
            assert!(error.message.contains("`iris`") && error.message.contains("`other`"))
        }
        other => panic!("expected 403, got {:?}", other.map(|r| r.summary.id)),
    }
    // Another's run of another pipeline cannot be cancelled with it either.
    let theirs = admin.create_run(&run_of("other")).await.unwrap();
    assert!(matches!(
        ci_client.cancel_run(&theirs.summary.id).await,
        Err(ClientError::Api { status: 403, .. })
    ));
    // Tokens are listed without their secrets; a revoked one is refused at once.
    let listed = serde_json::to_string(&admin.list_tokens().await.unwrap()).unwrap();
    for t in tokens.values().chain([&ci.token]) {
        assert!(!listed.contains(t.as_str()));
    }
    admin.revoke_token("ci").await.unwrap();
    assert!(matches!(
        ci_client.list_runs(None, None, 1, None).await,
        Err(ClientError::Api { status: 401, .. })
    ));
    // Tokens are kept as hashes: the database holds no secret.
    let db = std::fs::read(_dir.path().join("data/sluice.db")).unwrap();
    let wal = std::fs::read(_dir.path().join("data/sluice.db-wal")).unwrap_or_default();
    for t in tokens.values().chain([&ci.token]) {
        let needle = t.as_bytes();
        assert!(!db.windows(needle.len()).any(|w| w == needle));
        assert!(!wal.windows(needle.len()).any(|w| w == needle));
    }
}

/// A pipeline whose one step makes a model.
pub(crate) const MODEL: &str = "name: forged\nsteps:\n  - name: train\n    image: busybox\n    command: [\"true\"]\n    outputs:\n      artifacts: {model: {type: model}}\n";

pub(crate) fn finished(
    lease: &sluice_sdk::api::Lease,
    uri: &str,
    cached_from: Option<&str>,
) -> ReportEvent {
    ReportEvent::Finished {
        lease_id: lease.lease_id.clone(),
        ts_ms: sluice_sdk::api::now_ms(),
        result: TaskResult {
            cached_from: cached_from.map(|r| r.into()),
            ..TaskResult::succeeded(
                0,
                Default::default(),
                vec![sluice_sdk::api::ArtifactRecord {
                    name: "model".into(),
                    uri: uri.into(),
                    size: 4,
                    digest: format!("blake3:{}", "00".repeat(32)),
                    metadata: None,
                    kind: None,
                }],
            )
        },
    }
}

pub(crate) async fn lease_one(c: &Client, w: &WorkerIdentity) -> sluice_sdk::api::Lease {
    for _ in 0..50 {
        let mut got = c.lease(w, 1, 2000).await.unwrap().leases;
        if let Some(l) = got.pop() {
            return l;
        }
    }
    panic!("no lease");
}

#[tokio::test]
async fn a_forged_report_is_refused_and_nothing_of_it_reaches_the_cache() {
    let (url, _dir) = server(Default::default()).await;
    let c = Client::new(&url, None);
    let reg = |name: &'static str, root: &'static str| {
        let c = c.clone();
        async move {
            let r = c
                .register_worker(&RegisterWorker::new(name, 1, Some(root)))
                .await
                .unwrap();
            WorkerIdentity {
                id: r.id,
                credential: r.credential,
            }
        }
    };
    let a = reg("a", "/var/lib/a/artifacts").await;
    let b = reg("b", "/var/lib/b/artifacts").await;
    let req = CreateRun {
        yaml: Some(MODEL.into()),
        ..Default::default()
    };
    let submit = || c.create_run(&req);
    let run1 = submit().await.unwrap();
    let lease = lease_one(&c, &a).await;
    assert_eq!(lease.run_id.as_str(), run1.summary.id);

    // Worker b reports and renews a's lease: refused, and the task goes on as a's.
    let forged = finished(&lease, "file:///etc", None);
    let r = c.report(&b, vec![forged.clone()]).await.unwrap();
    assert_eq!(r.lost, vec![lease.lease_id.clone()]);
    let hb = c.heartbeat(&b, vec![lease.lease_id.clone()]).await.unwrap();
    assert_eq!(hb.lost, vec![lease.lease_id.clone()]);
    let t = &c.get_run(&run1.summary.id).await.unwrap().tasks[0];
    assert_eq!(t.state, sluice_sdk::api::TaskState::Leased, "{t:?}");
    assert_eq!(t.worker.as_deref(), Some(a.id.as_str()));
    // Nor can b pass for a with its own credential.
    let posing = WorkerIdentity {
        id: a.id.clone(),
        credential: b.credential.clone(),
    };
    match c.report(&posing, vec![forged.clone()]).await {
        Err(ClientError::Api { status: 401, .. }) => {}
        other => panic!("expected 401, got {other:?}"),
    }

    // a itself names an artifact outside its task's output area: the task fails, saying so.
    let r = c.report(&a, vec![forged]).await.unwrap();
    assert!(r.lost.is_empty());
    let run1 = wait_run(&c, &run1.summary.id, Duration::from_secs(10)).await;
    assert_eq!(run1.summary.state, sluice_sdk::api::RunState::Failed);
    let err = run1.tasks[0].error.clone().unwrap_or_default();
    assert!(
        err.contains("file:///etc") && err.contains("outside the task's own output area"),
        "{err}"
    );
    assert!(run1.tasks[0].artifacts.is_empty());

    // Nothing of it was cached: the next run's lease offers no kept result.
    let run2 = submit().await.unwrap();
    let lease2 = lease_one(&c, &a).await;
    assert!(lease2.cached.is_none());
    // Its own area is accepted.
    let own = format!(
        "file:///var/lib/a/artifacts/{}/train/{}/model",
        run2.summary.id, lease2.attempt
    );
    let started = ReportEvent::Started {
        lease_id: lease2.lease_id.clone(),
        ts_ms: sluice_sdk::api::now_ms(),
        image_digest: Some(format!("sha256:{}", "ab".repeat(32))),
    };
    c.report(&a, vec![started, finished(&lease2, &own, None)])
        .await
        .unwrap();
    let run2 = wait_run(&c, &run2.summary.id, Duration::from_secs(10)).await;
    assert_eq!(
        run2.summary.state,
        sluice_sdk::api::RunState::Succeeded,
        "{run2:?}"
    );

    // A third run is offered run 2's result; a reuse report must be that one.
    let run3 = submit().await.unwrap();
    let lease3 = lease_one(&c, &b).await;
    let offered = lease3.cached.clone().expect("run 2's result is offered");
    assert_eq!(offered.run_id.as_str(), run2.summary.id);
    let swapped = finished(&lease3, "file:///etc/shadow", Some(&run2.summary.id));
    c.report(&b, vec![swapped]).await.unwrap();
    let run3 = wait_run(&c, &run3.summary.id, Duration::from_secs(10)).await;
    assert_eq!(run3.summary.state, sluice_sdk::api::RunState::Failed);
    assert!(run3.tasks[0]
        .error
        .as_deref()
        .unwrap_or("")
        .contains("not the ones that run kept"));
}

/// A daemon's address comes from its worker and goes into the commands of the steps after it:
/// only an IPv4 address is taken; anything else leaves the daemon not serving, and the step
/// after it waiting.
#[tokio::test]
async fn a_daemons_address_that_is_not_an_ipv4_address_is_refused() {
    let (url, _dir) = server(Default::default()).await;
    let c = Client::new(&url, None);
    let r = c
        .register_worker(&RegisterWorker::new("w", 1, None))
        .await
        .unwrap();
    let w = WorkerIdentity {
        id: r.id,
        credential: r.credential,
    };
    let yaml = "name: served\nsteps:\n  - {name: web, image: busybox, daemon: true}\n  - {name: ask, image: busybox, command: [wget, 'http://{{steps.web.ip}}/']}\n";
    let run = c
        .create_run(&CreateRun {
            yaml: Some(yaml.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let lease = lease_one(&c, &w).await;
    assert_eq!(lease.task.as_str(), "web");
    let serving = |address: &str| ReportEvent::Serving {
        lease_id: lease.lease_id.clone(),
        ts_ms: sluice_sdk::api::now_ms(),
        address: address.into(),
    };
    c.report(&w, vec![serving("198.19.0.2; rm -rf /")])
        .await
        .unwrap();
    let d = c.get_run(&run.summary.id).await.unwrap();
    assert!(!d.tasks[0].serving && d.tasks[0].address.is_none(), "{d:?}");
    assert_eq!(d.tasks[1].state, sluice_sdk::api::TaskState::Pending);
    // An address is taken, and the step after it is resolved with it.
    c.report(&w, vec![serving("198.19.0.2")]).await.unwrap();
    let d = c.get_run(&run.summary.id).await.unwrap();
    assert!(d.tasks[0].serving, "{d:?}");
    assert_eq!(d.tasks[1].state, sluice_sdk::api::TaskState::Ready);
    assert_eq!(
        d.tasks[1].command,
        Some(vec!["wget".to_string(), "http://198.19.0.2/".to_string()])
    );
}

#[tokio::test]
async fn a_host_name_the_server_does_not_answer_to_is_refused() {
    let (url, _dir) = server(sluice_server::ServerConfig {
        allowed_hosts: vec!["sluice.test".into()],
        ..Default::default()
    })
    .await;
    let port = url.rsplit(':').next().unwrap();
    let http = sluice_sdk::client::http_client();
    let get = |host: String, path: &'static str| {
        let http = http.clone();
        let url = format!("{url}{path}");
        async move {
            let r = http.get(url).header("host", host).send().await.unwrap();
            let s = r.status().as_u16();
            (s, r.text().await.unwrap_or_default())
        }
    };
    // A page on a rebinding domain reaches the loopback server under its own name: refused,
    // the UI and the API alike.
    for path in ["/", "/api/v1/runs", "/api/v1/health"] {
        let (s, body) = get(format!("rebind.evil.example:{port}"), path).await;
        assert_eq!(s, 403, "{path}: {body}");
        assert!(body.contains("host_not_allowed"), "{body}");
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        format!("sluice.test:{port}"),
    ] {
        assert_eq!(get(host.clone(), "/api/v1/runs").await.0, 200, "{host}");
    }
}

#[tokio::test]
async fn the_ui_logs_in_with_a_cookie_scripts_cannot_read_and_other_sites_cannot_use() {
    let (url, _dir, tokens) = server_with_roles().await;
    let host = url.trim_start_matches("http://").to_string();
    let http = reqwest::Client::new();
    let login = |token: &str, origin: Option<&str>| {
        let mut r = http
            .post(format!("{url}/api/v1/login"))
            .json(&serde_json::json!({ "token": token }));
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send()
    };
    assert_eq!(login("wrong", None).await.unwrap().status(), 401);
    // Another site's page cannot log the browser in.
    let r = login(&tokens["admin"], Some("http://evil.example"))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = login(&tokens["admin"], Some(&format!("http://{host}")))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    for attr in ["sluice_token=", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    let cookie = set.split(';').next().unwrap().to_string();
    let with_cookie = |m: Method, path: &str, origin: Option<&str>| {
        let mut h = HeaderMap::new();
        h.insert("cookie", HeaderValue::from_str(&cookie).unwrap());
        if let Some(o) = origin {
            h.insert("origin", HeaderValue::from_str(o).unwrap());
        }
        http.request(m, format!("{url}/api/v1{path}"))
            .headers(h)
            .json(&serde_json::json!({}))
            .send()
    };
    // Reads work with the cookie, the event stream too (a browser's EventSource sends it).
    let r = with_cookie(Method::GET, "/whoami", None).await.unwrap();
    assert_eq!(r.status(), 200);
    let me: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (me["role"].as_str(), me["auth_required"].as_bool()),
        (Some("admin"), Some(true))
    );
    let r = with_cookie(Method::GET, "/events", None).await.unwrap();
    assert_eq!(r.status(), 200);
    drop(r);
    // A change sent with the cookie from another origin, or with none named, is refused.
    for origin in [None, Some("http://evil.example")] {
        let r = with_cookie(Method::POST, "/runs", origin).await.unwrap();
        assert_eq!(r.status(), 403, "{origin:?}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "cross_origin");
    }
    // From the server's own pages it goes through (to the body's own check).
    let own = format!("http://{host}");
    let r = with_cookie(Method::POST, "/runs", Some(&own))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Logging out clears the cookie.
    let r = http
        .post(format!("{url}/api/v1/logout"))
        .send()
        .await
        .unwrap();
    let cleared = r.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
}

#[tokio::test]
async fn admission_refuses_at_submit_naming_the_rule_and_the_step() {
    let (url, _dir) = server(sluice_server::ServerConfig {
        policy: sluice_server::policy::Policy {
            host_paths: vec!["/srv/datasets".into()],
            max_memory_bytes: Some(1 << 30),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let c = Client::new(&url, None);
    let yaml = "name: greedy
steps:
  - name: fine
    image: busybox
    volumes: [{hostPath: /srv/datasets/iris, path: /data}]
    command: [\"true\"]
  - name: steal
    image: busybox
    volumes: [{hostPath: /, path: /host, writable: true}]
    command: [\"true\"]
  - name: sniff
    image: busybox
    network: host
    resources: {memory: 2Gi}
    command: [\"true\"]
";
    for upload in [false, true] {
        let r = match upload {
            false => c
                .create_run(&CreateRun {
                    yaml: Some(yaml.into()),
                    ..Default::default()
                })
                .await
                .map(|_| ()),
            true => c.upload_pipeline(yaml, None).await.map(|_| ()),
        };
        let Err(ClientError::Api { status, error }) = r else {
            panic!("admitted: {r:?}")
        };
        assert_eq!((status, error.code.as_str()), (403, "policy_denied"));
        let m = &error.message;
        for want in [
            "step `steal` (line 9)",
            "host path `/`",
            "[rule hostPath]",
            "step `sniff`",
            "[rule hostNetwork]",
            "[rule resources]",
        ] {
            assert!(m.contains(want), "{want} not in {m}");
        }
        assert!(!m.contains("step `fine`"), "{m}");
        let rules: Vec<_> = error
            .details
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["rule"].as_str().unwrap().to_string(),
                    d["step"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(rules.len(), 3, "{rules:?}");
    }
    // Nothing was kept.
    assert!(c
        .list_runs(None, None, 10, None)
        .await
        .unwrap()
        .runs
        .is_empty());
    assert!(c.list_pipelines().await.unwrap().pipelines.is_empty());
}

#[tokio::test]
async fn serving_beyond_loopback_needs_a_token_or_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let addr = format!("0.0.0.0:{port}");
    let run = |args: &[&str]| {
        std::process::Command::new(BIN)
            .args(args)
            .env_remove("SLUICE_TOKEN")
            .output()
            .unwrap()
    };
    let out = run(&[
        "server",
        "--addr",
        &addr,
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to serve")
            && err.contains("sluice tokens create")
            && err.contains("--insecure"),
        "{err}"
    );
    // The first admin token, made in the data directory with no server running.
    let out = run(&[
        "tokens",
        "create",
        "ops",
        "--role",
        "admin",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("slc_"), "{token}");
    let mut server = spawn(
        &[
            "server",
            "--addr",
            &addr,
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &dir.path().join("server.log"),
    );
    let url = format!("http://127.0.0.1:{port}");
    let anon = Client::new(&url, None);
    let start = std::time::Instant::now();
    while anon.health().await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(matches!(
        anon.list_runs(None, None, 1, None).await,
        Err(ClientError::Api { status: 401, .. })
    ));
    let ops = Client::new(&url, Some(token));
    assert!(ops.list_runs(None, None, 1, None).await.is_ok());
    server.kill9();
}

#[tokio::test]
async fn over_tls_clients_and_workers_verify_the_server_and_the_cookie_is_secure() {
    let dir = tempfile::tempdir().unwrap();
    // A private certificate authority and a certificate it signed for 127.0.0.1.
    let p = |f: &str| dir.path().join(f).to_str().unwrap().to_string();
    let (cert, key, ca) = (
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("ca.pem"),
    );
    std::fs::write(
        dir.path().join("ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    for args in [
        format!("req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=test-ca -keyout {} -out {}", p("ca.key"), p("ca.pem")),
        format!("req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost -keyout {} -out {}", p("key.pem"), p("leaf.csr")),
        format!("x509 -req -in {} -CA {} -CAkey {} -CAcreateserial -days 2 -extfile {} -out {}", p("leaf.csr"), p("ca.pem"), p("ca.key"), p("ext"), p("cert.pem")),
    ] {
        let out = std::process::Command::new("openssl")
            .args(args.split(' '))
            .output()
            .unwrap();
        assert!(out.status.success(), "{args}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = spawn(
        &[
            "server",
            "--addr",
            &addr,
            "--data-dir",
            dir.path().join("data").to_str().unwrap(),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--token",
            ADMIN,
        ],
        &dir.path().join("server.log"),
    );
    let url = format!("https://{addr}");
    let c = Client::trusting(&url, Some(ADMIN.into()), Some(&ca)).unwrap();
    let start = std::time::Instant::now();
    while let Err(e) = c.health().await {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the server did not start: {e}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A client that does not trust the certificate, or speaks plain HTTP, gets nowhere.
    let untrusting = Client::new(&url, Some(ADMIN.into()));
    let e = untrusting.health().await.unwrap_err().to_string();
    assert!(
        e.contains("certificate") || e.contains("Certificate"),
        "{e}"
    );
    assert!(Client::new(&format!("http://{addr}"), None)
        .health()
        .await
        .is_err());
    // A worker reaches it over TLS and runs a task.
    let worker_token = c
        .create_token(&CreateToken {
            name: "w".into(),
            role: "worker".into(),
            pipelines: None,
        })
        .await
        .unwrap()
        .token;
    let mut worker = spawn(
        &[
            "worker",
            "--server",
            &url,
            "--ca-cert",
            ca.to_str().unwrap(),
            "--token",
            &worker_token,
            "--runtime",
            "fake",
            "--data-dir",
            dir.path().join("w").to_str().unwrap(),
        ],
        &dir.path().join("worker.log"),
    );
    let id = submit(
        &c,
        "name: tls\nsteps:\n  - name: a\n    image: busybox\n    command: [\"true\"]\n",
    )
    .await;
    let run = wait_run(&c, &id, Duration::from_secs(30)).await;
    assert_eq!(run.summary.state, sluice_sdk::api::RunState::Succeeded);
    // The login cookie is Secure over TLS.
    let http = sluice_sdk::client::http_client_trusting(&ca).unwrap();
    let r = http
        .post(format!("{url}/api/v1/login"))
        .json(&serde_json::json!({ "token": ADMIN }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("; Secure"));
    worker.kill9();
    server.kill9();
}

#[tokio::test]
async fn an_open_loopback_server_is_locked_by_its_first_token() {
    let (url, _dir) = server(Default::default()).await;
    let anon = Client::new(&url, None);
    assert!(anon.list_runs(None, None, 1, None).await.is_ok());
    let me = anon.whoami().await.unwrap();
    assert_eq!((me.role.as_str(), me.auth_required), ("admin", false));
    let made = anon
        .create_token(&CreateToken {
            name: "first".into(),
            role: "admin".into(),
            pipelines: None,
        })
        .await
        .unwrap();
    assert!(matches!(
        anon.list_runs(None, None, 1, None).await,
        Err(ClientError::Api { status: 401, .. })
    ));
    let admin = Client::new(&url, Some(made.token));
    assert!(admin.whoami().await.unwrap().auth_required);
}
