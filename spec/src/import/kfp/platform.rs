//! The kubernetes platform spec (the document `kfp-kubernetes` adds after the PipelineSpec): the
//! features with a sluice meaning are applied to their executor's template; the rest is an error
//! at its place.
//!
//! - `secretAsEnv`: the key `KEY` of Kubernetes secret `NAME` is sluice secret `NAME-KEY`
//!   (`sluice secrets set NAME-KEY`), given as the variable named.
//! - `pvcMount` of a constant claim name: the worker's named volume of that name, writable.
//! - `nodeSelector.labels`: the step's `nodeSelector`, the labels its worker must offer
//!   (`sluice worker --label`).
//! - `pipelineConfig.workspace`: the run's workspace (see [`crate::Pipeline::workspace`]).
//!
//! `secretAsVolume` is refused: a Kubernetes secret's keys are not known before the run.

use super::*;
use crate::{SecretRef, Volume};

pub(super) fn index<'a>(doc: &'a Node, ir: &mut Ir<'a>, d: &mut Diagnostics) {
    let Some(f) = Fields::new(doc, "the platform spec", &[&["platforms"]], d) else {
        return;
    };
    let Some(p) = f
        .get("platforms")
        .and_then(|n| Fields::new(n, "platforms", &[&["kubernetes"]], d))
    else {
        return;
    };
    let Some(k) = p
        .get("kubernetes")
        .and_then(|n| Fields::new(n, "kubernetes", &[&["deploymentSpec", "pipelineConfig"]], d))
    else {
        return;
    };
    if let Some(c) = k
        .get("pipelineConfig")
        .and_then(|n| Fields::new(n, "pipelineConfig", &[&["workspace"]], d))
    {
        // The size and the claim's patch are Kubernetes' business: a worker's volume grows.
        ir.workspace = c
            .get("workspace")
            .and_then(|n| Fields::new(n, "workspace", &[&["size", "kubernetes"]], d))
            .is_some();
    }
    let Some(ds) = k
        .get("deploymentSpec")
        .and_then(|n| Fields::new(n, "deploymentSpec", &[&["executors"]], d))
    else {
        return;
    };
    if let Some(e) = ds.get("executors") {
        for (k, v) in entries(e, "executors", d) {
            ir.platform.insert(k.name.as_str(), v);
        }
    }
}

const KNOWN: &[&str] = &["secretAsEnv", "secretAsVolume", "pvcMount", "nodeSelector"];
/// What kfp-kubernetes can say that has no meaning on a sluice worker.
const UNSUPPORTED: &[&str] = &[
    "tolerations",
    "imagePullPolicy",
    "imagePullSecret",
    "podMetadata",
    "configMapAsEnv",
    "configMapAsVolume",
    "activeDeadlineSeconds",
    "emptyDirMounts",
    "fieldPathAsEnv",
    "enabledSharedMemory",
    "genericEphemeralVolume",
    "nodeAffinity",
    "podAffinity",
];

pub(super) fn apply(node: &Node, label: &str, t: &mut Template, d: &mut Diagnostics) {
    let what = format!("the platform spec of executor `{label}`");
    let Some(f) = Fields::new(node, &what, &[KNOWN, UNSUPPORTED], d) else {
        return;
    };
    for k in UNSUPPORTED {
        if let Some(n) = f.get(k) {
            d.error(
                n.span,
                format!("{what} sets `{k}`, which sluice's workers do not run"),
            );
        }
    }
    let list = |k: &str| match f.get(k).map(|n| &n.kind) {
        Some(Kind::Seq(items)) => items.as_slice(),
        _ => &[],
    };
    for s in list("secretAsEnv") {
        let Some(s) = Fields::new(
            s,
            "secretAsEnv",
            &[&["secretName", "secretNameParameter", "keyToEnv", "optional"]],
            d,
        ) else {
            continue;
        };
        let Some(name) = s
            .required("secretName", "secretAsEnv", d)
            .and_then(|n| string(n, "secretName", d))
        else {
            continue;
        };
        for ke in match s.get("keyToEnv").map(|n| &n.kind) {
            Some(Kind::Seq(items)) => items.as_slice(),
            _ => &[],
        } {
            let Some(ke) = Fields::new(ke, "keyToEnv", &[&["secretKey", "envVar"]], d) else {
                continue;
            };
            let key = ke
                .required("secretKey", "keyToEnv", d)
                .and_then(|n| string(n, "secretKey", d));
            let var = ke
                .required("envVar", "keyToEnv", d)
                .and_then(|n| string(n, "envVar", d));
            if let (Some(key), Some(var)) = (key, var) {
                t.secrets.push(SecretRef {
                    secret: format!("{}-{}", name.value, key.value),
                    env: Some(var.value),
                    path: None,
                    span: key.span,
                });
            }
        }
    }
    for s in list("secretAsVolume") {
        let Some(s) = Fields::new(
            s,
            "secretAsVolume",
            &[&[
                "secretName",
                "secretNameParameter",
                "mountPath",
                "optional",
                "items",
            ]],
            d,
        ) else {
            continue;
        };
        d.error(s.get("secretName").map(|n| n.span).unwrap_or(node.span), "secretAsVolume: a Kubernetes secret's keys are not known before the run; give each key as an environment variable (secretAsEnv)");
    }
    if let Some(n) = f.get("nodeSelector") {
        if let Some(s) = Fields::new(n, "nodeSelector", &[&["labels", "nodeSelectorJson"]], d) {
            if let Some(j) = s.get("nodeSelectorJson") {
                d.error(j.span, "nodeSelector: a selector given as a parameter (`nodeSelectorJson`) is not known before the run; give its labels");
            }
            if let Some(l) = s.get("labels") {
                t.node_selector = crate::parse::node_selector(l, d);
            }
        }
    }
    for p in list("pvcMount") {
        let Some(p) = Fields::new(
            p,
            "pvcMount",
            &[&[
                "constant",
                "pvcName",
                "mountPath",
                "taskOutputParameter",
                "componentInputParameter",
                "pvcNameParameter",
            ]],
            d,
        ) else {
            continue;
        };
        let name = p
            .get("constant")
            .or_else(|| p.get("pvcName"))
            .and_then(|n| string(n, "pvcName", d));
        let path = p
            .required("mountPath", "pvcMount", d)
            .and_then(|n| string(n, "mountPath", d));
        match (name, path) {
            (Some(name), Some(path)) => t.volumes.push(Volume {
                name: Some(name.value),
                host_path: None,
                path: path.value,
                writable: true,
                span: name.span,
            }),
            (None, Some(path)) => d.error(path.span, "pvcMount: sluice mounts claims named by a constant (its named volume of that name)"),
            _ => {}
        }
    }
}
