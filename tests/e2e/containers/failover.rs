//! A task never runs twice at once, with real containers: when its worker is killed, and when
//! its worker is cut off from the server. Each attempt of the step appends to a file on a shared
//! writable host volume while it runs; the file's order shows whether two attempts overlapped.

use super::*;

/// A step that appends `alive ATTEMPT` to /shared/log every 50 ms, for `first` seconds in its
/// first attempt and for one second in the next.
fn heartbeat_step(img: &str, shared: &Path, first: u32) -> String {
    format!(
        r#"
name: once
steps:
  - name: work
    image: {img}
    volumes: [{{hostPath: {}, path: /shared, writable: true}}]
    script: |
      n=20; [ {{{{task.attempt}}}} = 1 ] && n={}
      i=0
      while [ $i -lt $n ]; do echo "alive {{{{task.attempt}}}}" >> /shared/log; usleep 50000; i=$((i+1)); done
"#,
        shared.display(),
        first * 20
    )
}

/// The attempts in the order their lines reached the file; panics if an earlier attempt wrote
/// after a later one had started.
fn attempts_in_order(shared: &Path) -> Vec<u32> {
    let text = std::fs::read_to_string(shared.join("log")).unwrap();
    let mut seen: Vec<u32> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let a: u32 = line.strip_prefix("alive ").unwrap().parse().unwrap();
        match seen.last() {
            Some(&last) if a == last => {}
            Some(&last) if a < last => {
                panic!(
                    "line {}: attempt {a} ran on after attempt {last} started:\n{text}",
                    n + 1
                )
            }
            _ => seen.push(a),
        }
    }
    seen
}

async fn wait_for_line(shared: &Path, want: &str) {
    wait_for_text(&shared.join("log"), want).await
}

/// Waits until `file` holds `want` (a step said so through a shared volume).
async fn wait_for_text(file: &Path, want: &str) {
    let start = Instant::now();
    while !std::fs::read_to_string(file)
        .unwrap_or_default()
        .contains(want)
    {
        assert!(start.elapsed() < Duration::from_secs(60), "no `{want}` yet");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_task_whose_worker_is_killed_never_runs_twice_at_once() {
    let mut c = Cluster::start(&[]).await;
    let img = image("busybox");
    let shared = tempfile::tempdir().unwrap();
    let id = submit(&c.client, &heartbeat_step(&img, shared.path(), 6)).await;
    wait_for_line(shared.path(), "alive 1").await;
    c.worker.take().unwrap().kill9();
    // Another worker, on its own directory: nothing of the first one's is cleaned up for it.
    let _second = c.spawn_worker(&c.dir.path().join("second/worker"), "second.log");
    let run = wait_run(&c.client, &id, Duration::from_secs(90)).await;
    assert_succeeded(&c, &run);
    assert_eq!(task(&run, "work").attempt, 2);
    assert_eq!(attempts_in_order(shared.path()), [1, 2]);
}

#[tokio::test]
async fn a_worker_cut_off_from_its_server_stops_its_task_before_it_can_run_elsewhere() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let shared = tempfile::tempdir().unwrap();
    // The first attempt would run for a minute.
    let id = submit(&c.client, &heartbeat_step(&img, shared.path(), 60)).await;
    wait_for_line(shared.path(), "alive 1").await;
    let signal = |s: &str| {
        let ok = std::process::Command::new("kill")
            .args([s, &c.server.0.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {s}");
    };
    // The server stops answering: the worker cannot renew its lease, so it must stop the task
    // by itself, while the server is still away (its lease lapses after 2 s).
    signal("-STOP");
    let size = || std::fs::metadata(shared.path().join("log")).map_or(0, |m| m.len());
    let start = Instant::now();
    let (mut last, mut since) = (size(), Instant::now());
    while since.elapsed() < Duration::from_secs(1) {
        if start.elapsed() > Duration::from_secs(20) {
            signal("-CONT");
            panic!("attempt 1 went on writing while its worker was cut off from the server");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if size() != last {
            (last, since) = (size(), Instant::now());
        }
    }
    assert!(
        c.worker_log().contains("could not be renewed in time"),
        "{}",
        c.worker_log()
    );
    // Back: the lapsed lease is taken back once its grace has passed, and the task runs again.
    signal("-CONT");
    let run = wait_run(&c.client, &id, Duration::from_secs(90)).await;
    assert_succeeded(&c, &run);
    assert_eq!(task(&run, "work").attempt, 2);
    assert_eq!(attempts_in_order(shared.path()), [1, 2]);
}

#[tokio::test]
async fn a_server_killed_mid_run_takes_it_up_again_and_its_running_container_goes_on() {
    // Leases long enough that the restart never lets one lapse.
    let mut c = Cluster::start_with_ttl("15s", &[]).await;
    let img = image("busybox");
    let shared = tempfile::tempdir().unwrap();
    let id = submit(
        &c.client,
        &format!(
            r#"
name: restart
steps:
  - name: a
    image: {img}
    volumes: [{{hostPath: {}, path: /shared, writable: true}}]
    outputs: {{params: {{v: {{type: int}}}}}}
    script: |
      echo started > /shared/started
      while [ ! -e /shared/go ]; do usleep 20000; done
      echo 41 > {{{{outputs.params.v}}}}
      echo "a done"
  - name: b
    image: {img}
    command: [sh, -c, "echo $(( {{{{steps.a.outputs.params.v}}}} + 1 ))"]
"#,
            shared.path().display()
        ),
    )
    .await;
    wait_for_text(&shared.path().join("started"), "started").await;
    c.restart_server().await;
    // Released only once the server is back: the step ran through the restart.
    std::fs::write(shared.path().join("go"), "").unwrap();
    let run = wait_run(&c.client, &id, Duration::from_secs(60)).await;
    assert_succeeded(&c, &run);
    assert_eq!(
        run.tasks.iter().map(|t| t.attempt).collect::<Vec<_>>(),
        [1, 1],
        "nothing ran twice"
    );
    assert_eq!(c.stdout(&id, "a").await, "a done\n");
    assert_eq!(c.stdout(&id, "b").await, "42\n");
}
