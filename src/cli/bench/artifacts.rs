//! `sluice bench artifacts`: a large artifact crossing from a step on one worker to a step on
//! another through an S3 server (a throwaway Garage), next to a plain client (curl, signing as
//! the AWS SDKs do) putting and getting an object of the same size on the same server in the
//! same run. The two workers share nothing but the server and the store (each its own data
//! directory), as workers on two hosts do.

use super::{median, run_timed, Cluster, ClusterOpts};
use sluice_server::throwaway_s3::ThrowawayS3;
use std::io::Write;
use std::process::Command;
use std::sync::Arc;

pub async fn artifacts(image: &str, bytes: u64, repeat: usize) -> anyhow::Result<u8> {
    let s3 = ThrowawayS3::start([127, 0, 0, 1].into()).map_err(anyhow::Error::msg)?;
    let dir = tempfile::Builder::new()
        .prefix("sluice-bench-")
        .tempdir_in("/var/tmp")?;
    let mb = bytes.div_ceil(1 << 20);
    let bytes = mb << 20;
    let gib = bytes as f64 / (1u64 << 30) as f64;

    // Two workers sharing a runtime (and its images), each with its own data directory.
    let (runtime, ..) = super::containers::embedded(
        dir.path().join("runtime"),
        image.to_string(),
        Some(sluice_worker::runtime::embedded::userns::IdMap::DEFAULT),
        false,
    )
    .await?;
    let store = Arc::new(s3.store("bench"));
    let cluster = Cluster::start_with(
        dir.path(),
        runtime,
        2,
        ClusterOpts {
            workers: 2,
            artifact_store: Some(store.clone()),
            ..Default::default()
        },
    )
    .await?;
    let client = sluice_sdk::client::Client::new(&cluster.url, None);
    let yaml = format!(
        "name: bench-crossing\nsteps:\n  - name: make\n    image: {image}\n    nodeSelector: {{worker: \"0\"}}\n    outputs: {{artifacts: {{data: {{}}}}}}\n    script: |\n      dd if=/dev/urandom of={{{{outputs.artifacts.data}}}} bs=1048576 count={mb} 2>/dev/null\n      cat /proc/uptime\n  - name: use\n    image: {image}\n    nodeSelector: {{worker: \"1\"}}\n    inputs: {{artifacts: {{data: {{}}}}}}\n    artifacts: {{data: \"{{{{steps.make.outputs.artifacts.data}}}}\"}}\n    script: cat /proc/uptime\n"
    );
    let user = format!("{}:{}", s3.key_id, s3.secret);
    let curl = |extra: &[&str]| {
        let mut c = Command::new("curl");
        c.args(["-sSf", "--aws-sigv4"])
            .arg(format!("aws:amz:{}:s3", s3.region))
            .args([
                "--user",
                &user,
                "-H",
                "x-amz-content-sha256: UNSIGNED-PAYLOAD",
            ])
            .args(extra);
        c
    };
    let object = format!("{}/{}/raw/object", s3.endpoint, s3.bucket);
    let (file, back) = (dir.path().join("raw.bin"), dir.path().join("raw.out"));
    let (mut puts, mut gets, mut gaps, mut ratios) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..repeat {
        // The plain client first, on the same machine in the same minute: an object of the same
        // size (random bytes, as the step writes) PUT from a file and GET into one, each one
        // request.
        {
            let mut f = std::fs::File::create(&file)?;
            let mut urandom = std::fs::File::open("/dev/urandom")?;
            let copied = std::io::copy(&mut std::io::Read::take(&mut urandom, bytes), &mut f)?;
            anyhow::ensure!(copied == bytes, "short random file");
            f.flush()?;
        }
        let put = run_timed(&mut curl(&[
            "-o",
            "/dev/null",
            "-T",
            file.to_str().unwrap(),
            &object,
        ]))? / 1e3;
        std::fs::remove_file(&file)?;
        let get = run_timed(&mut curl(&["-o", back.to_str().unwrap(), &object]))? / 1e3;
        std::fs::remove_file(&back)?;
        run_timed(&mut curl(&["-o", "/dev/null", "-X", "DELETE", &object]))?;
        puts.push(put);
        gets.push(get);
        let (id, detail, gap) = super::containers::handoff_run(&client, &yaml).await?;
        let worker = |t: &str| {
            detail
                .tasks
                .iter()
                .find(|x| x.name == t)
                .and_then(|x| x.worker.clone())
        };
        anyhow::ensure!(
            worker("make") != worker("use"),
            "both steps ran on one worker"
        );
        gaps.push(gap);
        ratios.push((put + get) / gap);
        // What the run left (the object, the producer's copy, the consumer's cached copy) goes
        // before the next, so that the disk holds one run's at a time.
        for a in detail.tasks.iter().flat_map(|t| &t.artifacts) {
            store.delete(&a.uri).await?;
        }
        client.delete_run(&id).await.ok();
        std::fs::remove_dir_all(dir.path().join("worker-0/artifacts").join(&id))?;
        std::fs::remove_dir_all(dir.path().join("worker-1/artifacts/.cache"))?;
        std::fs::create_dir(dir.path().join("worker-1/artifacts/.cache"))?;
    }
    cluster.stop().await?;
    let (put, get, gap) = (median(puts), median(gets), median(gaps));
    let raw = bytes as f64 / (put + get);
    let ours = bytes as f64 / gap;
    let mbs = |b: f64| b / (1 << 20) as f64;
    println!(
        "a {gib:.1} GiB object on Garage {} with a plain client (curl, file to file): PUT {put:.2} s + GET {get:.2} s = {:.0} MiB/s, medians of {repeat}",
        s3.endpoint,
        mbs(raw)
    );
    println!(
        "a {gib:.1} GiB artifact from its step exiting on one worker to the next step starting on another (hashed, uploaded, recorded, leased, fetched, verified): {gap:.2} s = {:.0} MiB/s, median of {repeat}; against the plain client in the same repetition: {:.2}x median (target >= 0.8x)",
        mbs(ours),
        median(ratios)
    );
    Ok(0)
}
