//! Caching: the key a task's result is kept under, and a ready task finished from a kept result.

use super::*;

impl Run {
    /// A ready task's result is taken from the cache (the scheduler found it): it succeeds as
    /// attempt 1 with no worker, and what waits for it goes on.
    pub fn finish_from_cache(&mut self, i: usize, result: TaskResult, now: i64) -> Vec<Effect> {
        if self.tasks[i].state != TaskState::Ready || self.state != RunState::Running {
            return Vec::new();
        }
        let lease = LeaseId::new(format!("cache-{i}"));
        let t = &mut self.tasks[i];
        t.attempt += 1;
        t.state = TaskState::Leased;
        t.started_at = Some(now);
        t.lease = Some(LeaseInfo {
            id: lease.clone(),
            worker: WorkerId::default(),
            expires_at: now,
        });
        self.finished(i, &lease, result, now).unwrap_or_default()
    }

    /// The key task `i`'s result is cached under, with the step's maximum cache age in seconds;
    /// `None` when it must always run (caching off for the step, or a step that
    /// reads volumes or the host's network, serves, or waits for a step that serves: their
    /// results depend on more than their inputs). The
    /// key covers the image reference, command, args, script, environment, working directory,
    /// declared outputs, each input artifact's content hash and each secret's version; the image's digest is matched
    /// beside it (see the scheduler and the worker).
    pub fn cache_key(&self, i: usize) -> Option<(String, Option<u64>)> {
        let control = self.pipeline.control(self.step_of(i));
        let cache = control.cache.map(|c| c.value);
        let max_age = match &cache {
            Some(c) if !c.enabled => return None,
            Some(c) => c.max_age_secs,
            None => None,
        };
        let spec = self.tasks[i].spec.as_ref()?;
        if spec.network == Some(sluice_spec::NetworkMode::Host)
            || !spec.volumes.is_empty()
            || self.serves_or_reaches_a_daemon(i)
        {
            return None;
        }
        // An import reads the host's file as it is now.
        if spec
            .kfp
            .as_ref()
            .is_some_and(|k| k.launch.importer.is_some())
        {
            return None;
        }
        let inputs: Vec<(&str, &str)> = spec
            .input_artifacts
            .iter()
            .map(|a| {
                // The digest the input carries; records from before inputs carried one are
                // looked up in their producer's outputs.
                let hash = a
                    .digest
                    .as_deref()
                    .or_else(|| {
                        self.task_index(&a.producer)
                            .and_then(|p| {
                                self.tasks[p]
                                    .outputs
                                    .artifacts
                                    .iter()
                                    .find(|r| r.uri == a.uri)
                            })
                            .map(|r| r.digest.as_str())
                    })
                    .unwrap_or("");
                (a.path.as_str(), hash)
            })
            .collect();
        let mut what = serde_json::json!({
            "image": spec.image, "command": spec.command, "args": spec.args, "script": spec.script,
            "env": spec.env, "working_dir": spec.working_dir, "inputs": inputs,
            "output_params": spec.output_params, "output_artifacts": spec.output_artifacts,
        });
        // Secrets by name, place and version (a changed value is a new version, so a miss);
        // their values never reach a key.
        if !spec.secrets.is_empty() {
            what["secrets"] = serde_json::json!(spec.secrets);
        }
        // A Kubeflow task: its launch contract and input values, not the run's or task's names.
        if let Some(k) = &spec.kfp {
            what["kfp"] = serde_json::json!({"launch": k.launch, "values": k.values});
        }
        // A key of the step's own replaces what sluice works out (Kubeflow's `cacheKey`).
        if let Some(k) = cache.as_ref().and_then(|c| c.key.as_ref()) {
            what = serde_json::json!({"cache_key": k, "image": spec.image});
        }
        use sha2::Digest;
        let key = hex::encode(sha2::Sha256::digest(what.to_string().as_bytes()));
        Some((key, max_age))
    }
}
