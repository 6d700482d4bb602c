use super::*;
use sluice_sdk::api::{EnvVar, InputArtifact};

fn image() -> RunConfig {
    RunConfig {
        env: vec!["PATH=/opt/conda/bin:/usr/bin".into(), "LANG=C.UTF-8".into()],
        entrypoint: Some(vec!["/entry.sh".into()]),
        cmd: Some(vec!["serve".into()]),
        working_dir: Some("/app".into()),
        user: Some("ml".into()),
    }
}

fn spec() -> TaskSpec {
    TaskSpec {
        image: "127.0.0.1:5000/ml/trainer:1".into(),
        hostname: "train".into(),
        ..Default::default()
    }
}

#[test]
fn command_and_args_override_the_image_as_kubernetes_does() {
    let img = image();
    let mut s = spec();
    assert_eq!(argv(&s, &img).unwrap(), ["/entry.sh", "serve"]);
    s.args = Some(vec!["fit".into()]);
    assert_eq!(argv(&s, &img).unwrap(), ["/entry.sh", "fit"]);
    s.command = Some(vec!["python".into(), "-c".into()]);
    assert_eq!(argv(&s, &img).unwrap(), ["python", "-c", "fit"]);
    s.args = None;
    // `command` alone drops the image's Cmd too.
    assert_eq!(argv(&s, &img).unwrap(), ["python", "-c"]);
    let bare = RunConfig::default();
    let e = argv(&spec(), &bare).unwrap_err();
    assert!(
        e.contains("no Entrypoint or Cmd") && e.contains("trainer:1"),
        "{e}"
    );
}

#[test]
fn the_environment_layers_image_worker_and_step() {
    let mut s = spec();
    s.env = vec![
        EnvVar {
            name: "LANG".into(),
            value: "en_GB.UTF-8".into(),
        },
        EnvVar {
            name: "SEED".into(),
            value: "7".into(),
        },
    ];
    let extra = [
        ("PATH".to_string(), "/usr/local/nvidia/bin".to_string()),
        (
            "LD_LIBRARY_PATH".to_string(),
            "/usr/local/nvidia/lib64".to_string(),
        ),
    ];
    let env = env(&s, &image(), &extra);
    assert_eq!(
        env,
        [
            "PATH=/opt/conda/bin:/usr/bin:/usr/local/nvidia/bin",
            "PYTHONUNBUFFERED=1",
            "LANG=en_GB.UTF-8",
            "HOSTNAME=train",
            "LD_LIBRARY_PATH=/usr/local/nvidia/lib64",
            "SEED=7",
        ]
    );
    // An image without PATH gets the usual default.
    let env = env_of(&spec(), &RunConfig::default());
    assert_eq!(env[0], format!("PATH={DEFAULT_PATH}"));
    // Python writes as it goes unless the image or the step says otherwise.
    let mut i = RunConfig::default();
    i.env.push("PYTHONUNBUFFERED=".into());
    assert!(env_of(&spec(), &i).contains(&"PYTHONUNBUFFERED=".to_string()));
}

fn env_of(s: &TaskSpec, i: &RunConfig) -> Vec<String> {
    env(s, i, &[])
}

#[test]
fn layers_are_stacked_topmost_first_and_named_relative_to_the_store() {
    let store = Path::new("/var/lib/sluice/images/layers");
    let layers = vec![store.join("sha256/aaa"), store.join("sha256/bbb")];
    let state = Path::new("/w/containers/c1");
    let mut s = spec();
    s.input_artifacts = vec![InputArtifact {
        name: "prep.data".into(),
        path: "/sluice/inputs/artifacts/prep.data".into(),
        uri: "file:///w/artifacts/r/prep/1/data".into(),
        producer: "prep".into(),
        metadata: None,
        digest: None,
        size: None,
    }];
    let mounts = TaskMounts {
        params_dir: Some("/w/tasks/l/params".into()),
        script: Some("/w/tasks/l/script".into()),
        inputs: vec!["/w/artifacts/r/prep/1/data".into()],
        ..Default::default()
    };
    let c = build("c1", &s, &image(), &layers, state, &mounts).unwrap();
    assert_eq!(c.rootfs.layers_root, store);
    assert_eq!(c.rootfs.lower, ["sha256/bbb", "sha256/aaa"]);
    assert_eq!(c.rootfs.upper, state.join("upper"));
    assert_eq!(c.rootfs.target, Path::new("/w/containers/.rootfs"));
    assert_eq!(c.etc[0], ("hostname".to_string(), "train\n".to_string()));
    assert!(c.etc[1].1.contains("127.0.1.1\ttrain"));
    let m: Vec<(&str, bool)> = c
        .mounts
        .iter()
        .map(|m| (m.target.as_str(), m.readonly))
        .collect();
    assert_eq!(
        m,
        [
            ("/sluice/outputs/params", false),
            ("/sluice/script", true),
            ("/sluice/inputs/artifacts/prep.data", true),
        ]
    );
    assert_eq!(c.process.cwd, "/app");
    assert_eq!(c.process.user, "ml");
    assert!(c.capabilities.contains(&"CAP_CHOWN".to_string()));
    assert!(!c
        .capabilities
        .iter()
        .any(|c| c == "CAP_SYS_ADMIN" || c == "CAP_MKNOD"));
    assert!(c.masked_paths.contains(&"/proc/kcore".to_string()));
    assert!(c.readonly_paths.contains(&"/proc/sys".to_string()));

    // An image with no layers still gets an (empty) lower directory.
    let c = build("c2", &s, &image(), &[], state, &mounts).unwrap();
    assert_eq!(c.rootfs.lower, ["/w/containers/.empty"]);
}

#[test]
fn mount_targets_must_stay_absolute() {
    let mounts = TaskMounts {
        extra: vec![BindMount {
            source: "/srv/data".into(),
            target: "/data/../etc".into(),
            readonly: true,
            beneath: None,
        }],
        ..Default::default()
    };
    let e = build("c", &spec(), &image(), &[], Path::new("/s"), &mounts).unwrap_err();
    assert!(e.contains("/data/../etc"), "{e}");
}
