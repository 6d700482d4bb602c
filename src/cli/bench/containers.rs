//! `sluice bench containers`: the embedded runtime next to runc and crun on the same image, and
//! container steps through a server and a worker (a chain, and a wide fan-out).

use super::{fanout_yaml, median, Cluster};
use anyhow::Context;
use sluice_sdk::api::TaskSpec;
use sluice_spec::NetworkMode;
use sluice_worker::images::registry::Registries;
use sluice_worker::images::store::ImageStore;
use sluice_worker::network::{BridgeConfig, Bridges};
use sluice_worker::runtime::embedded::cgroups::Limits;
use sluice_worker::runtime::embedded::userns::IdMap;
use sluice_worker::runtime::embedded::{EmbeddedConfig, EmbeddedRuntime};
use sluice_worker::runtime::{ContainerRuntime, Io, LogSink, RunRequest};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

pub struct Opts {
    pub image: String,
    pub starts: usize,
    pub chain: usize,
    pub fanout: usize,
    pub capacity: u32,
    pub repeat: usize,
    /// The size of the artifact handed from one step to the next on one worker.
    pub handoff_bytes: u64,
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// A worker's embedded runtime in `worker_dir` with `image` pulled into its store: with a user
/// namespace or not, with a bridge network or not.
pub(crate) async fn embedded(
    worker_dir: PathBuf,
    image: String,
    userns: Option<IdMap>,
    bridge: bool,
) -> anyhow::Result<(
    Arc<EmbeddedRuntime>,
    Arc<ImageStore>,
    sluice_worker::images::store::ImageRecord,
    Option<Arc<Bridges>>,
)> {
    std::fs::create_dir_all(&worker_dir)?;
    let wiring = match bridge {
        true => Some(Arc::new(
            Bridges::start(&worker_dir, BridgeConfig::default()).map_err(|e| anyhow::anyhow!(e))?,
        )),
        false => None,
    };
    let store = Arc::new(ImageStore::open(&worker_dir.join("images"))?);
    let registries = Arc::new(Registries::new(store.clone(), vec![]));
    let rec = registries
        .ensure(&image)
        .await
        .with_context(|| format!("cannot pull {image}"))?;
    let runtime = Arc::new(EmbeddedRuntime::new(
        EmbeddedConfig {
            worker_dir: worker_dir.clone(),
            helper: std::env::current_exe()?,
            defaults: Limits {
                pids: Some(4096),
                ..Default::default()
            },
            keep: false,
            tag_ttl: std::time::Duration::from_secs(60),
            allow_unconfined: false,
            disk: Default::default(),
            wiring: wiring
                .clone()
                .map(|b| b as Arc<dyn sluice_worker::runtime::embedded::NetworkWiring>),
            default_network: NetworkMode::None,
            userns,
        },
        store.clone(),
        registries,
    )?);
    Ok((runtime, store, rec, wiring))
}

pub async fn containers(o: Opts) -> anyhow::Result<u8> {
    let dir = tempfile::Builder::new()
        .prefix("sluice-bench-")
        .tempdir_in("/var/tmp")?;
    // The same image in two workers' stores: containers with a user namespace (the default)
    // and without.
    let make = |name: &str, userns: Option<IdMap>, bridge: bool| {
        embedded(dir.path().join(name), o.image.clone(), userns, bridge)
    };
    let (runtime, store, rec, _) = make("worker", Some(IdMap::DEFAULT), false).await?;
    let (plain, _, _, _) = make("worker-no-userns", None, false).await?;

    // 1. Start to exit of one `true` container, one after another.
    println!(
        "start -> exit of `true` in {} ({} runs each, after 3 warm-ups):",
        o.image, o.starts
    );
    let (mut embedded, mut without) = (Vec::new(), Vec::new());
    for i in 0..o.starts + 3 {
        // Alternated, so that both see the same machine.
        let ms = start_once(&runtime, &o.image, i, None, "bench").await?;
        let ms_plain = start_once(&plain, &o.image, i, None, "bench").await?;
        if i >= 3 {
            embedded.push(ms);
            without.push(ms_plain);
        }
    }
    let (w_med, w_p99) = (median(without.clone()), percentile(without, 0.99));
    let (e_med, e_p99) = (median(embedded.clone()), percentile(embedded, 0.99));
    println!("  sluice embedded  median {e_med:6.1} ms   p99 {e_p99:6.1} ms   (root inside mapped to host id {}, a user namespace)", IdMap::DEFAULT.host);
    println!(
        "  sluice, no userns median {w_med:6.1} ms   p99 {w_p99:6.1} ms   with/without: {:.2}x median, {:.2}x p99 (target <= 1.2x)",
        e_med / w_med,
        e_p99 / w_p99
    );
    let rootfs = store.layer_path(rec.layers.last().context("the image has no layers")?)?;
    for peer in ["runc", "crun"] {
        match peer_starts(peer, &rootfs, dir.path(), o.starts) {
            Ok(times) => {
                let (m, p) = (median(times.clone()), percentile(times, 0.99));
                println!(
                    "  {peer:<16} median {m:6.1} ms   p99 {p:6.1} ms   sluice/{peer}: {:.2}x median, {:.2}x p99",
                    e_med / m,
                    e_p99 / p
                );
            }
            Err(e) => println!("  {peer:<16} not measured: {e:#}"),
        }
    }
    println!("  (targets: sluice <= runc, and <= 1.5x crun; runc and crun get a ready root directory, sluice mounts an overlay per container)");
    bridged(&o, &make).await?;

    // 2 and 3. Container steps through a server and one worker.
    let cluster = Cluster::start(dir.path(), runtime.clone(), o.capacity).await?;
    let mut chain = format!(
        "name: bench-chain\nsteps:\n  - name: s0\n    image: {}\n    command: [\"true\"]\n",
        o.image
    );
    for i in 1..o.chain {
        chain.push_str(&format!(
            "  - name: s{i}\n    image: {}\n    command: [\"true\"]\n    dependsOn: [s{}]\n",
            o.image,
            i - 1
        ));
    }
    let mut secs = Vec::new();
    for _ in 0..o.repeat {
        secs.push(cluster.run(&chain).await?);
    }
    println!(
        "a {}-step chain of container steps, submit to finish: {:.2} s median of {} (target <= 1.2 s)",
        o.chain,
        median(secs),
        o.repeat
    );
    // The same chain again, every step's result reused from the cache.
    cluster.run_with(&chain, true).await?;
    let mut cached = Vec::new();
    for _ in 0..o.repeat.max(5) {
        cached.push(cluster.run_with(&chain, true).await? * 1e3);
    }
    println!(
        "the same chain fully cached, submit to finish: {:.1} ms median of {} (target <= 50 ms)",
        median(cached),
        o.repeat.max(5)
    );
    let fan = fanout_yaml(o.fanout, &o.image);
    let mut rates = Vec::new();
    for _ in 0..o.repeat {
        let s = cluster.run(&fan).await?;
        rates.push((o.fanout + 1) as f64 / s);
    }
    println!(
        "a {}-step fan-out of container steps on one worker (capacity {}): {:.0} steps/s median of {} (target >= 100 steps/s)",
        o.fanout,
        o.capacity,
        median(rates),
        o.repeat
    );
    log_latency(&cluster, &o.image).await?;
    handoff(&cluster, &o.image, o.handoff_bytes, o.repeat).await?;
    cluster.stop().await?;
    Ok(0)
}

/// From a step that wrote a large artifact exiting to the step that reads it starting, on one
/// worker: the producer's output is hashed (and recorded) in between, and the consumer gets it
/// bind-mounted. Both ends are read off the host's clock inside the containers
/// (`/proc/uptime`), so the figure is the hand-off itself.
async fn handoff(cluster: &Cluster, image: &str, bytes: u64, repeat: usize) -> anyhow::Result<()> {
    let client = sluice_sdk::client::Client::new(&cluster.url, None);
    let mb = bytes.div_ceil(1 << 20);
    let yaml = format!(
        "name: bench-handoff\nsteps:\n  - name: make\n    image: {image}\n    outputs: {{artifacts: {{data: {{}}}}}}\n    script: |\n      dd if=/dev/zero of={{{{outputs.artifacts.data}}}} bs=1048576 count={mb} 2>/dev/null\n      cat /proc/uptime\n  - name: use\n    image: {image}\n    inputs: {{artifacts: {{data: {{}}}}}}\n    artifacts: {{data: \"{{{{steps.make.outputs.artifacts.data}}}}\"}}\n    script: cat /proc/uptime\n"
    );
    let mut gaps = Vec::new();
    for _ in 0..repeat {
        let (id, _, gap) = handoff_run(&client, &yaml).await?;
        gaps.push(gap * 1e3);
        client.delete_run(&id).await.ok();
    }
    println!(
        "a {:.1} GiB artifact, from its step exiting to the next step starting on the same worker (hashed and recorded, then bind-mounted): median {:.0} ms of {repeat} (target <= 1000 ms)",
        bytes as f64 / (1u64 << 30) as f64,
        median(gaps)
    );
    Ok(())
}

/// Runs a pipeline whose steps `make` and `use` each print `/proc/uptime` first (`make` last,
/// after writing its artifact) with nothing cached: its id, its details, and the seconds from
/// `make`'s line to `use`'s, read off the host's clock inside the two containers.
pub(crate) async fn handoff_run(
    client: &sluice_sdk::client::Client,
    yaml: &str,
) -> anyhow::Result<(String, sluice_sdk::api::RunDetail, f64)> {
    let id = client
        .create_run(&sluice_sdk::api::CreateRun {
            yaml: Some(yaml.to_string()),
            cache: Some(false),
            ..Default::default()
        })
        .await?
        .summary
        .id;
    let state = crate::cli::runs::follow(client, &id, false).await?;
    let detail = client.get_run(&id).await?;
    anyhow::ensure!(
        state == sluice_sdk::api::RunState::Succeeded,
        "the hand-off run ended {state}: {:?}",
        detail
            .tasks
            .iter()
            .filter_map(|t| Some((&t.name, t.error.as_ref()?)))
            .collect::<Vec<_>>()
    );
    let uptime = |task: &'static str| {
        let (client, id) = (client.clone(), id.clone());
        async move {
            let page = client.logs(&id, task, 0, 10).await?;
            let first = page
                .lines
                .iter()
                .find_map(|l| l.line.split_whitespace().next()?.parse::<f64>().ok());
            first.ok_or_else(|| anyhow::anyhow!("no uptime in {task}'s log"))
        }
    };
    let gap = uptime("use").await? - uptime("make").await?;
    Ok((id, detail, gap))
}

/// From the worker reading a line off a container's stdout to a follower of the task's log (the
/// stream the UI's log view reads) receiving it: 200 lines, 20 ms apart, followed live.
async fn log_latency(cluster: &Cluster, image: &str) -> anyhow::Result<()> {
    let client = sluice_sdk::client::Client::new(&cluster.url, None);
    let yaml = format!(
        "name: bench-logs\nsteps:\n  - name: talk\n    image: {image}\n    script: |\n      sleep 1\n      i=0; while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); usleep 20000; done\n"
    );
    let run = client
        .create_run(&sluice_sdk::api::CreateRun {
            yaml: Some(yaml),
            ..Default::default()
        })
        .await?;
    let mut stream = client.follow_logs(&run.summary.id, "talk").await?;
    let mut lats = Vec::new();
    while let Some(ev) = stream.next::<sluice_sdk::api::RunEvent>().await {
        let sluice_sdk::api::RunEvent::Log(line) = ev? else {
            continue;
        };
        let read = humantime::parse_rfc3339(&line.ts)?;
        let now = std::time::SystemTime::now();
        lats.push(now.duration_since(read).unwrap_or_default().as_secs_f64() * 1e3);
        if lats.len() == 200 {
            break;
        }
    }
    anyhow::ensure!(
        lats.len() == 200,
        "the log stream ended after {} lines",
        lats.len()
    );
    // The step ends before the cluster stops (its result must reach the server).
    crate::cli::runs::follow(&client, &run.summary.id, false).await?;
    println!(
        "a log line, from the worker reading it to a follower of the task's log: median {:.1} ms, p99 {:.1} ms, max {:.1} ms over 200 lines (target p99 <= 100 ms)",
        median(lats.clone()),
        percentile(lats.clone(), 0.99),
        percentile(lats, 1.0)
    );
    Ok(())
}

/// One container's whole life through the runtime (state, cgroup, helper, overlay, exec, wait,
/// cleanup), in milliseconds.
/// Start to exit of `true` on the bridge network next to no network, alternated on one runtime.
async fn bridged<F, Fut>(o: &Opts, make: &F) -> anyhow::Result<()>
where
    F: Fn(&str, Option<IdMap>, bool) -> Fut,
    Fut: std::future::Future<
        Output = anyhow::Result<(
            Arc<EmbeddedRuntime>,
            Arc<ImageStore>,
            sluice_worker::images::store::ImageRecord,
            Option<Arc<Bridges>>,
        )>,
    >,
{
    let bridges = match make("worker-bridge", Some(IdMap::DEFAULT), true).await {
        Ok((rt, _, _, Some(b))) => (rt, b),
        Ok(_) => unreachable!("asked for a bridge"),
        Err(e) => {
            println!("  bridge network not measured: {e:#}");
            return Ok(());
        }
    };
    let (rt, b) = bridges;
    let (mut none, mut bridge, mut first) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..o.starts + 3 {
        let n = start_once(&rt, &o.image, 10_000 + i, Some(NetworkMode::None), "bench").await?;
        let br = start_once(
            &rt,
            &o.image,
            20_000 + i,
            Some(NetworkMode::Bridge),
            "bench",
        )
        .await?;
        // A run's first step on the worker also makes the run's bridge.
        let run = format!("bench-first-{i}");
        let f = start_once(&rt, &o.image, 30_000 + i, Some(NetworkMode::Bridge), &run).await?;
        if i >= 3 {
            none.push(n);
            bridge.push(br);
            first.push(f);
        }
    }
    let (n_med, b_med, f_med) = (median(none.clone()), median(bridge.clone()), median(first));
    println!(
        "start -> exit of `true`, network `none` next to `bridge` ({} runs each, alternated):",
        o.starts
    );
    println!(
        "  network none     median {n_med:6.1} ms   p99 {:6.1} ms",
        percentile(none, 0.99)
    );
    println!(
        "  network bridge   median {b_med:6.1} ms   p99 {:6.1} ms   bridge - none: {:+.1} ms median (target <= +3 ms)",
        percentile(bridge, 0.99),
        b_med - n_med
    );
    println!("  a run's first bridged step (makes its bridge): median {f_med:6.1} ms");
    drop(rt);
    b.shutdown().await;
    Ok(())
}

async fn start_once(
    rt: &Arc<EmbeddedRuntime>,
    image: &str,
    i: usize,
    network: Option<NetworkMode>,
    run: &str,
) -> anyhow::Result<f64> {
    let (logs, _rx) = LogSink::channel();
    let (started, _) = tokio::sync::oneshot::channel();
    let (_stop_tx, stop) = tokio::sync::watch::channel(None);
    let req = RunRequest {
        lease_id: format!("bench-start-{i}"),
        run_id: run.into(),
        task: "start".into(),
        attempt: 1,
        spec: TaskSpec {
            image: image.into(),
            command: Some(vec!["true".into()]),
            hostname: "bench".into(),
            network,
            ..Default::default()
        },
        params_dir: PathBuf::new(),
        artifacts_dir: PathBuf::new(),
        script: None,
        inputs: vec![],
        artifacts_root: PathBuf::new(),
        secret_files: Vec::new(),
    };
    let t = Instant::now();
    let exit = rt
        .run(
            req,
            Io {
                logs,
                started,
                stop,
            },
        )
        .await?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(exit.code == 0, "`true` exited with {}", exit.code);
    Ok(ms)
}

/// `runc run` / `crun run` of the same `true` over the image's unpacked layer, timed in a bash
/// loop (no fork to read the clock). crun runs in its own mount namespace without the v2 mount,
/// since it refuses this host's hybrid cgroup layout otherwise.
fn peer_starts(peer: &str, rootfs: &Path, dir: &Path, n: usize) -> anyhow::Result<Vec<f64>> {
    let bin =
        which(peer).with_context(|| format!("{peer} is not installed (apt-get install {peer})"))?;
    let bundle = dir.join(format!("bundle-{peer}"));
    std::fs::create_dir_all(&bundle)?;
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec_pretty(&oci_config(rootfs, peer))?,
    )?;
    let script = format!(
        r#"
{setup}
for i in $(seq {total}); do
  t0=$EPOCHREALTIME
  {bin} run --bundle {bundle} sluice-bench-{peer}-$$-$i >/dev/null 2>/tmp/sluice-bench-{peer}.err || {{ cat /tmp/sluice-bench-{peer}.err >&2; exit 1; }}
  t1=$EPOCHREALTIME
  [ $i -gt 3 ] && echo "${{t0/./}} ${{t1/./}}"
done
exit 0
"#,
        setup = if peer == "crun" {
            "umount /sys/fs/cgroup/unified 2>/dev/null || true"
        } else {
            ""
        },
        total = n + 3,
        bin = bin.display(),
        bundle = bundle.display(),
    );
    let mut cmd = if peer == "crun" {
        let mut c = std::process::Command::new("unshare");
        c.args(["-m", "--propagation", "private", "bash", "-c", &script]);
        c
    } else {
        let mut c = std::process::Command::new("bash");
        c.args(["-c", &script]);
        c
    };
    let out = cmd.output()?;
    anyhow::ensure!(
        out.status.success(),
        "{peer} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (a, b) = l.split_once(' ')?;
            Some((b.parse::<f64>().ok()? - a.parse::<f64>().ok()?) / 1e3)
        })
        .collect())
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

/// An OCI runtime config as `runc spec` writes it, with the same namespaces, mounts, masked paths
/// and PIDs limit that sluice's containers get.
fn oci_config(rootfs: &Path, peer: &str) -> serde_json::Value {
    use sluice_worker::runtime::embedded::config::{
        DEFAULT_CAPABILITIES, MASKED_PATHS, READONLY_PATHS,
    };
    let caps: Vec<&str> = DEFAULT_CAPABILITIES.to_vec();
    serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["true"],
            "env": [format!("PATH={}", sluice_worker::runtime::embedded::config::DEFAULT_PATH)],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": true
        },
        "root": {"path": rootfs, "readonly": true},
        "hostname": "bench",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "cgroupsPath": format!("/sluice-bench/{peer}"),
            "resources": {"pids": {"limit": 4096}},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS
        }
    })
}
