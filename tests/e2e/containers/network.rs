//! The bridge network, in real containers: out through NAT to a host made here as a network
//! namespace (the only way to it), not into the host's loopback services or another run, and
//! nothing left behind — after 200 steps, after a SIGKILL and the next start, after a stop.
//! Addresses: the worker's default pool (198.19.0.0/16) and, for the outside host,
//! 198.18.K.0/30; both in the benchmarking range.

use super::*;
use std::process::Command;

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A host outside: a network namespace joined to this one by a veth pair, with an HTTP server
/// and no route but to its own /30, so that it can answer only what the host masquerades.
struct Outside {
    ns: String,
    link: String,
    addr: String,
    /// The host's end, which masqueraded traffic comes from.
    host_addr: String,
    port: u16,
    server: std::process::Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Outside {
    fn start() -> Outside {
        let k = std::process::id() % 250 + 1;
        let ns = format!("sltout{k}");
        let link = format!("sltout{k}h");
        let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        let _ = Command::new("ip").args(["link", "del", &link]).status();
        sh(&format!(
            "ip netns add {ns} && ip link add {link} type veth peer name eth0 netns {ns} && \
             ip addr add 198.18.{k}.1/30 dev {link} && ip link set {link} up && \
             ip -n {ns} addr add 198.18.{k}.2/30 dev eth0 && ip -n {ns} link set eth0 up && \
             ip -n {ns} link set lo up"
        ));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("data.txt"), "rows from outside\n").unwrap();
        let log = dir.path().join("http.log");
        let port = 8000 + (k as u16);
        let server = Command::new("ip")
            .args(["netns", "exec", &ns, "python3", "-m", "http.server"])
            .arg(port.to_string())
            .args(["--bind", &format!("198.18.{k}.2"), "--directory"])
            .arg(dir.path())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::options().append(true).open(&log).unwrap())
            .spawn()
            .unwrap();
        let o = Outside {
            ns,
            link,
            addr: format!("198.18.{k}.2"),
            host_addr: format!("198.18.{k}.1"),
            port,
            server,
            log,
            _dir: dir,
        };
        // Up once the host reaches it directly.
        let start = Instant::now();
        while std::net::TcpStream::connect((o.addr.as_str(), o.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "outside server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        o
    }

    /// The clients the server logged.
    fn seen(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = Command::new("ip")
            .args(["link", "del", &self.link])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// An HTTP GET with busybox's `nc`, printing the body's marker or why not.
fn fetch(addr: &str, port: u16, path: &str, tag: &str) -> String {
    format!(
        "if printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {addr} {port} > /tmp/got 2>&1 && grep -q . /tmp/got; then echo \"{tag}: reached\"; cat /tmp/got | tail -1; else echo \"{tag}: unreachable\"; fi"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn bridged_steps_reach_the_outside_through_nat_and_nothing_on_the_host() {
    let c = Cluster::start(&[]).await;
    let out = Outside::start();
    // A service on every host address, and the registry and the API on the host's loopback.
    let any = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let any_port = any.local_addr().unwrap().port();
    let api_port: u16 = c.url.rsplit(':').next().unwrap().parse().unwrap();
    let yaml = format!(
        r#"apiVersion: sluice/v1
kind: Pipeline
name: bridged
steps:
  - name: fetch
    image: {img}
    script: |
      cat /etc/resolv.conf; cat /etc/hosts; ip -4 -o addr show eth0; ip route
      {outside}
      gw=$(ip route | awk '/default/{{print $3}}')
      {gateway}
      {loopback_api}
      {loopback_registry}
  - name: offline
    image: {img}
    network: none
    script: |
      ip -o link | cut -d: -f2 | tr -d ' ' | tr '\n' ' '; echo
      {outside}
"#,
        img = image("busybox"),
        outside = fetch(&out.addr, out.port, "/data.txt", "outside"),
        gateway = fetch("$gw", any_port, "/", "gateway"),
        loopback_api = fetch("127.0.0.1", api_port, "/v1/health", "api"),
        loopback_registry = fetch("127.0.0.1", 5000, "/v2/", "registry"),
    );
    let run = c.run(&yaml).await;
    assert_eq!(run.summary.state, RunState::Succeeded, "{run:#?}");
    let fetch_log = c.stdout(&run.summary.id, "fetch").await;
    assert!(
        fetch_log.contains("outside: reached\nrows from outside"),
        "{fetch_log}"
    );
    for tag in ["gateway", "api", "registry"] {
        assert!(
            fetch_log.contains(&format!("{tag}: unreachable")),
            "{tag}: {fetch_log}"
        );
    }
    // Its own address under its name, a default route, the host's resolvers.
    assert!(fetch_log.contains("\tfetch\n"), "{fetch_log}");
    assert!(fetch_log.contains("inet 198.19."), "{fetch_log}");
    assert!(fetch_log.contains("default via 198.19."), "{fetch_log}");
    assert!(fetch_log.contains("nameserver"), "{fetch_log}");
    // The outside host saw the host's address (masqueraded), never the step's own.
    let seen = out.seen();
    assert!(seen.contains(&format!("{} - - ", out.host_addr)), "{seen}");
    assert!(!seen.contains("198.19."), "{seen}");
    let offline = c.stdout(&run.summary.id, "offline").await;
    assert!(
        offline.starts_with("lo \n"),
        "a `none` step has loopback only: {offline}"
    );
    assert!(offline.contains("outside: unreachable"), "{offline}");
    drop(any);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runs_steps_reach_each_other_and_not_another_runs() {
    let c = Cluster::start(&[]).await;
    let server = |name: &str| {
        format!(
            r#"apiVersion: sluice/v1
kind: Pipeline
name: {name}
steps:
  - name: serve
    image: {img}
    script: |
      echo "at $(ip -4 -o addr show eth0 | awk '{{print $4}}' | cut -d/ -f1)"
      for i in 1 2; do echo "hello from {name}" | nc -l -p 8080 -w 5; done
      echo served
  - name: peer
    image: {img}
    script: |
      sleep 1
      me=$(ip -4 -o addr show eth0 | awk '{{print $4}}' | cut -d/ -f1)
      net=${{me%.*}}
      for h in 2 3; do [ "$net.$h" = "$me" ] || nc -w 3 "$net.$h" 8080 </dev/null; done
"#,
            img = image("busybox"),
        )
    };
    let a = submit(&c.client, &server("run-a")).await;
    // Run A's server says where it is.
    let mut at = String::new();
    let start = Instant::now();
    while at.is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "run A's server never started"
        );
        let log = c.stdout(&a, "serve").await;
        if let Some(l) = log.lines().find(|l| l.starts_with("at ")) {
            at = l[3..].to_string();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The run's bridge and ports on the host carry no IPv6 address: each would be one more
    // change of the host's addresses, which makes a browser on the host drop its requests.
    let (links, _, _) = network_of(&c.worker_dir());
    assert!(links.len() >= 2, "the run's bridge and port: {links:?}");
    let inet6 = std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
    let on_ours: Vec<&str> = inet6
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .last()
                .is_some_and(|n| links.iter().any(|k| k == n))
        })
        .collect();
    assert!(
        on_ours.is_empty(),
        "IPv6 addresses on the run's links: {on_ours:?}"
    );
    let other = format!(
        r#"apiVersion: sluice/v1
kind: Pipeline
name: run-b
steps:
  - name: intrude
    image: {img}
    script: |
      {try_it}
"#,
        img = image("busybox"),
        try_it = fetch(&at, 8080, "/", "run A"),
    );
    let b = c.run(&other).await;
    let run_a = wait_run(&c.client, &a, Duration::from_secs(60)).await;
    assert_eq!(run_a.summary.state, RunState::Succeeded, "{run_a:#?}");
    let peer = c.stdout(&a, "peer").await;
    assert!(
        peer.contains("hello from run-a"),
        "a step reaches its run's other: {peer}"
    );
    let intrude = c.stdout(&b.summary.id, "intrude").await;
    assert!(intrude.contains("run A: unreachable"), "{intrude}");
}

/// The worker's links (`slSCOPE…`), address claims and nftables table as they are now.
fn network_of(worker_dir: &Path) -> (Vec<String>, usize, Option<String>) {
    let scope = sluice_worker::network::scope_of(worker_dir);
    let links: Vec<String> = sh("ip -o link")
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap().to_string())
        .filter(|n| n.starts_with(&format!("sl{scope}")))
        .collect();
    let mut claims = 0;
    let pool = Path::new(sluice_worker::network::STATE_ROOT).join("198.19.0.0-16");
    for e in std::fs::read_dir(&pool).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        if e.path().is_file() && text.starts_with(&format!("{scope}\n")) {
            claims += 1;
        }
    }
    (links, claims, sluice_worker::network::nft::list(&scope))
}

async fn until_clean(worker_dir: &Path, table: bool) -> (Vec<String>, usize, Option<String>) {
    let start = Instant::now();
    loop {
        let now = network_of(worker_dir);
        if (now.0.is_empty() && now.1 == 0 && now.2.is_some() == table)
            || start.elapsed() > Duration::from_secs(30)
        {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_bridged_steps_leave_no_link_address_or_rule_and_a_stop_leaves_nothing() {
    let mut c = Cluster::start(&[]).await;
    let wd = c.worker_dir();
    let (_, _, table) = until_clean(&wd, true).await;
    let table = table.expect("the worker's table exists while it runs");
    let yaml = format!(
        r#"apiVersion: sluice/v1
kind: Pipeline
name: many
params:
  n: {{type: list, default: [{items}]}}
steps:
  - name: step
    image: {img}
    forEach: '{{{{params.n}}}}'
    command: [sh, -c, 'ip -4 -o addr show eth0 | grep -q 198.19.']
"#,
        items = (0..200)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(","),
        img = image("busybox"),
    );
    let run = c.run(&yaml).await;
    assert_eq!(run.summary.state, RunState::Succeeded, "{run:#?}");
    let (links, claims, after) = until_clean(&wd, true).await;
    assert!(links.is_empty(), "links left: {links:?}");
    assert_eq!(claims, 0, "subnet claims left");
    assert_eq!(
        after.as_deref(),
        Some(table.as_str()),
        "the table's rules changed"
    );
    // A stopped worker takes its table away too.
    let pid = c.worker.as_ref().unwrap().0.id();
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let _ = c.worker.as_mut().unwrap().0.wait();
    let (links, claims, table) = network_of(&wd);
    assert!(links.is_empty() && claims == 0, "{links:?} {claims}");
    assert_eq!(table, None, "the table outlived the worker");
    c.worker = None;
}

/// Runs' bridges are deleted (5 s after their last step) while other runs' bridges are being
/// made, and every run ends. (A worker once hung so under the Kubeflow corpus: a run's new
/// bridge was made while holding the network's state, waiting on the runtime for netlink, while
/// the deletions waited for that state on every runtime thread. This test drives the overlap;
/// it did not catch that hang in five tries here, the corpus under the whole suite did.)
#[tokio::test(flavor = "multi_thread")]
async fn bridges_deleted_while_others_are_made_leave_the_worker_going() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let mut ids = Vec::new();
    // Waves of one-step runs, each its own bridge, 300 ms apart for 9 s: from the 5th second
    // on, the first waves' bridges go while new ones come.
    let start = Instant::now();
    let mut k = 0;
    while start.elapsed() < Duration::from_secs(9) {
        for _ in 0..8 {
            let yaml = format!(
                "name: wave-{k}\nsteps:\n  - {{name: s, image: {img}, command: [\"true\"]}}\n"
            );
            ids.push(submit(&c.client, &yaml).await);
            k += 1;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for id in &ids {
        let run = wait_run(&c.client, id, Duration::from_secs(60)).await;
        assert_eq!(run.summary.state, RunState::Succeeded, "{run:#?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_with_sigkill_leaves_no_network_after_its_next_start() {
    let mut c = Cluster::start(&[]).await;
    let wd = c.worker_dir();
    let yaml = format!(
        r#"apiVersion: sluice/v1
kind: Pipeline
name: killed
steps:
  - name: long
    image: {img}
    command: [sleep, "60"]
"#,
        img = image("busybox"),
    );
    let id = submit(&c.client, &yaml).await;
    wait_until(
        &c.client,
        &id,
        Duration::from_secs(30),
        "the step to run",
        |r| task(r, "long").state == TaskState::Running,
    )
    .await;
    let (links, claims, table) = network_of(&wd);
    assert!(
        links.len() >= 2,
        "a bridge and a port while it runs: {links:?}"
    );
    assert_eq!(claims, 1);
    assert!(table.is_some());
    c.worker.as_mut().unwrap().kill9();
    c.client.cancel_run(&id).await.unwrap();
    let (links, _, _) = network_of(&wd);
    assert!(
        !links.is_empty(),
        "the bridge outlives a killed worker: {links:?}"
    );
    c.start_worker();
    let (links, claims, table) = until_clean(&wd, true).await;
    assert!(
        links.is_empty(),
        "links left after the next start: {links:?}"
    );
    assert_eq!(claims, 0);
    assert!(table.is_some(), "the next worker has its table again");
}

#[tokio::test(flavor = "multi_thread")]
async fn sluice_up_leaves_no_network_when_it_exits() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut up, url) = spawn_up(&data, &dir.path().join("up.log")).await;
    let client = Client::new(&url, None);
    let yaml = format!(
        "name: up-net\nsteps:\n  - name: look\n    image: {}\n    command: [sh, -c, 'ip -4 -o addr show eth0 | grep 198.19.']\n",
        image("busybox")
    );
    let id = submit(&client, &yaml).await;
    let run = wait_run(&client, &id, Duration::from_secs(60)).await;
    assert_eq!(run.summary.state, RunState::Succeeded, "{run:#?}");
    let wd = data.join("worker");
    let (links, claims, table) = network_of(&wd);
    assert!(
        !links.is_empty() && claims == 1 && table.is_some(),
        "{links:?}"
    );
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(up.0.id() as i32, libc::SIGTERM) };
    let status = up.0.wait().unwrap();
    assert!(status.success(), "sluice up exited with {status}");
    let (links, claims, table) = network_of(&wd);
    assert!(links.is_empty(), "links left: {links:?}");
    assert_eq!(claims, 0);
    assert_eq!(table, None);
}

/// A daemon step (the example: serve the trained model, evaluate it over HTTP): the step after
/// it starts once it accepts connections, reaches it by name and by `{{steps.serve.ip}}`; it is
/// stopped when that step has ended, ends succeeded, its log readable; its network goes.
#[tokio::test]
async fn a_daemon_step_serves_the_trained_model_to_the_step_that_evaluates_it_then_stops() {
    let c = Cluster::start(&[]).await;
    image("sklearn");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let yaml = std::fs::read_to_string(root.join("pipelines/examples/serve-model.yaml"))
        .unwrap()
        .replace("127.0.0.1:5000", &registry());
    let run = c.run(&yaml).await;
    assert_eq!(run.summary.state, RunState::Succeeded, "{run:#?}");
    let serve = task(&run, "serve");
    let evaluate = task(&run, "evaluate");
    assert_eq!(serve.state, TaskState::Succeeded, "{serve:#?}");
    assert!(serve.daemon && !serve.serving, "{serve:#?}");
    let address = serve.address.clone().expect("the daemon's address is kept");
    assert!(address.starts_with("198.19."), "{address}");
    // It ran until the step it served had ended.
    assert!(
        serve.finished_at >= evaluate.finished_at,
        "serve ended at {:?}, evaluate at {:?}",
        serve.finished_at,
        evaluate.finished_at
    );
    let accuracy = evaluate.outputs["accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.85 && accuracy <= 1.0, "accuracy {accuracy}");
    // The address went into the command as it was.
    assert!(
        evaluate
            .script
            .as_deref()
            .is_some_and(|s| s.contains(&format!("http://{address}:8080/predict"))),
        "{:?}",
        evaluate.script
    );
    // Its log stays: both questions, each from the evaluating step's address on the run's network.
    let log = c.stdout(&run.summary.id, "serve").await;
    let answered: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("predicted 45 rows for 198.19."))
        .collect();
    assert_eq!(answered.len(), 2, "{log}");
    assert!(log.contains("serving the model on port 8080"), "{log}");
    // The run's network goes with its steps.
    let (links, claims, _) = until_clean(&c.worker_dir(), true).await;
    assert!(
        links.is_empty() && claims == 0,
        "left: {links:?}, {claims} claims"
    );
}

/// A daemon that never listens on its port holds back the steps after it (they wait, pending)
/// until the run is cancelled; the cancel stops it.
#[tokio::test]
async fn the_steps_after_a_daemon_wait_for_its_port_and_a_cancel_stops_it() {
    let c = Cluster::start(&[]).await;
    let yaml = format!(
        r#"apiVersion: sluice/v1
kind: Pipeline
name: never-up
steps:
  - name: deaf
    image: {img}
    daemon: {{port: 9}}
    command: [sh, -c, 'echo up but deaf; sleep 300']
  - name: ask
    image: {img}
    command: [nc, -w, '2', '{{{{steps.deaf.ip}}}}', '9']
"#,
        img = image("busybox"),
    );
    let id = submit(&c.client, &yaml).await;
    let start = Instant::now();
    loop {
        let r = c.client.get_run(&id).await.unwrap();
        let deaf = task(&r, "deaf");
        if deaf.state == TaskState::Running && c.stdout(&id, "deaf").await.contains("up but deaf") {
            // Running, and still not serving: the step after it has not started.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let r = c.client.get_run(&id).await.unwrap();
            assert!(!task(&r, "deaf").serving, "{r:#?}");
            assert_eq!(task(&r, "ask").state, TaskState::Pending, "{r:#?}");
            // The UI says so.
            let b = crate::ui::Browser::start().await;
            b.goto(&format!("{}/runs/{id}/tasks/deaf", c.url)).await;
            let says = b
                .wait(
                    "the daemon's state",
                    "const s = document.getElementById('serves'); return s && s.textContent",
                )
                .await;
            assert_eq!(
                says,
                serde_json::json!("not yet: the steps after it wait until it is up")
            );
            b.quit().await;
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{r:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.client.cancel_run(&id).await.unwrap();
    let r = wait_run(&c.client, &id, Duration::from_secs(60)).await;
    assert_eq!(r.summary.state, RunState::Cancelled, "{r:#?}");
    assert_eq!(task(&r, "deaf").state, TaskState::Cancelled, "{r:#?}");
    assert_eq!(task(&r, "ask").state, TaskState::Cancelled, "{r:#?}");
}

/// A rerun from failure runs a daemon that served the first run again (a stored result serves
/// nobody), and the step that reaches it finds it up.
#[tokio::test]
async fn a_rerun_runs_the_daemon_again_for_the_step_that_failed() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let yaml = format!(
        r#"
name: rerun-daemon
steps:
  - name: web
    image: {img}
    daemon: {{port: 8080}}
    command: [sh, -c, 'mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www']
  - name: ask
    image: {img}
    volumes: [{{hostPath: {dir}, path: /ctl}}]
    command: [sh, -c, 'test -e /ctl/flag && wget -qO- http://{{{{steps.web.ip}}}}:8080/ && wget -qO- http://web:8080/']
"#,
        dir = c.dir.path().display()
    );
    let first = c.run(&yaml).await;
    assert_eq!(first.summary.state, RunState::Failed, "{first:#?}");
    assert_eq!(task(&first, "web").state, TaskState::Succeeded);
    std::fs::write(c.dir.path().join("flag"), "").unwrap();
    let d = c.client.rerun(&first.summary.id).await.unwrap();
    let second = wait_run(&c.client, &d.summary.id, Duration::from_secs(60)).await;
    assert_eq!(second.summary.state, RunState::Succeeded, "{second:#?}");
    assert_eq!(task(&second, "web").cached_from, None, "{second:#?}");
    assert_eq!(c.stdout(&second.summary.id, "ask").await, "hello\nhello\n");
}
