//! Cache keys: what decides a result, and nothing else.

use super::*;
use sluice_spec::ids::LeaseId;

#[test]
fn cache_keys_cover_what_decides_a_result_and_nothing_else() {
    let key = |src: &str, params: &[(&str, serde_json::Value)]| {
        let run = start(src, params);
        run.cache_key(0).map(|(k, _)| k)
    };
    let a = key(DIAMOND, &[]);
    assert!(a.is_some());
    // Same inputs, another run: the same key.
    assert_eq!(key(DIAMOND, &[]), a);
    // Another parameter value: another key.
    assert_ne!(key(DIAMOND, &[("seed", serde_json::json!(6))]), a);
    // Another image reference: another key.
    assert_ne!(
        key(
            &DIAMOND.replacen("image: busybox", "image: busybox:2", 1),
            &[]
        ),
        a
    );
    // Opting out, or reading volumes or the host's network: no key.
    let off = DIAMOND.replacen(
        "    image: busybox\n",
        "    image: busybox\n    cache: false\n",
        1,
    );
    assert_eq!(key(&off, &[]), None);
    let vol = DIAMOND.replacen(
        "    image: busybox\n",
        "    image: busybox\n    volumes: [{name: data, path: /data}]\n",
        1,
    );
    assert_eq!(key(&vol, &[]), None);
    let aged = DIAMOND.replacen(
        "    image: busybox\n",
        "    image: busybox\n    cache: {maxAge: 1h}\n",
        1,
    );
    assert_eq!(start(&aged, &[]).cache_key(0).unwrap().1, Some(3600));
}

#[test]
fn input_artifacts_enter_the_key_by_content() {
    let mut one = start(DIAMOND, &[]);
    let mut two = start(DIAMOND, &[]);
    let a = one.task_index("a").unwrap();
    for (run, sha) in [(&mut one, "aaa"), (&mut two, "bbb")] {
        lease_at(run, a, 0);
        let lease = LeaseId::new(format!("l{}", run.tasks[a].attempt));
        run.finished(
            a,
            &lease,
            TaskResult {
                outcome: Outcome::Succeeded,
                exit_code: Some(0),
                error: None,
                outputs: [("x".to_string(), "1".to_string())].into(),
                artifacts: vec![ArtifactRecord {
                    name: "data".into(),
                    uri: "file:///a/data".into(),
                    size: 1,
                    digest: sha.into(),
                    metadata: None,
                    kind: None,
                }],
                cached_from: None,
            },
            10,
        )
        .unwrap();
    }
    let c = one.task_index("c").unwrap();
    assert_ne!(one.cache_key(c), two.cache_key(c));
    // `b` reads only a's parameter, the same in both: the same key.
    let b = one.task_index("b").unwrap();
    assert_eq!(one.cache_key(b), two.cache_key(b));
}
