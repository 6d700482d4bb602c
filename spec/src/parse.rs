//! From a YAML tree to the pipeline model: shapes, field names and scalar types, with every problem
//! reported at its place. Cross-references are checked afterwards, in `validate`.

use super::*;
use crate::diag::did_you_mean;
use crate::yaml::{Key, Kind, Node};

mod control;
mod decls;
pub(crate) mod group;
mod placement;
mod secrets;
mod units;

use control::{control, duration};
use decls::{artifact_decls, io, param_decls};
use group::Parsed;
pub(crate) use placement::node_selector;
use secrets::{env_secret, secret_files};
pub use units::{format_bytes, parse_bytes, parse_cpu, parse_duration_ms};

const TEMPLATE_KEYS: &[&str] = &[
    "image",
    "command",
    "args",
    "script",
    "env",
    "workingDir",
    "resources",
    "inputs",
    "outputs",
    "network",
    "volumes",
    "seccomp",
    "secrets",
    "nodeSelector",
];
const CONTROL_KEYS: &[&str] = &[
    "when",
    "forEach",
    "parallelism",
    "retry",
    "timeout",
    "cache",
    "daemon",
];

/// A mapping node whose keys are checked against what the schema allows.
pub(crate) struct Fields<'a> {
    node: &'a Node,
    entries: &'a [(Key, Node)],
}

impl<'a> Fields<'a> {
    pub(crate) fn new(
        node: &'a Node,
        what: &str,
        allowed: &[&[&str]],
        d: &mut Diagnostics,
    ) -> Option<Self> {
        let Kind::Map(entries) = &node.kind else {
            d.error(
                node.span,
                format!("{what} must be a mapping, found {}", node.describe()),
            );
            return None;
        };
        let all: Vec<&str> = allowed.iter().flat_map(|s| s.iter().copied()).collect();
        for (k, _) in entries {
            if !all.contains(&k.name.as_str()) {
                let hint = match did_you_mean(&k.name, all.iter().copied()) {
                    Some(s) => format!(" (did you mean `{s}`?)"),
                    None => format!("; expected one of: {}", all.join(", ")),
                };
                d.error(
                    k.span,
                    format!("unknown field `{}` in {what}{hint}", k.name),
                );
            }
        }
        Some(Fields { node, entries })
    }

    pub(crate) fn entries(&self) -> &'a [(Key, Node)] {
        self.entries
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    pub(crate) fn required(&self, key: &str, what: &str, d: &mut Diagnostics) -> Option<&'a Node> {
        let v = self.get(key);
        if v.is_none() {
            d.error(
                self.node.span,
                format!("{what} is missing the required field `{key}`"),
            );
        }
        v
    }

    fn string(&self, key: &str, d: &mut Diagnostics) -> Option<Spanned<String>> {
        self.get(key).and_then(|n| string(n, key, d))
    }
}

pub(crate) fn string(node: &Node, what: &str, d: &mut Diagnostics) -> Option<Spanned<String>> {
    match &node.kind {
        Kind::Str { value, .. } => Some(Spanned::new(value.clone(), node.span)),
        Kind::Int(_) | Kind::Float(_) | Kind::Bool(_) => Some(Spanned::new(
            node.scalar_text().unwrap_or_default(),
            node.span,
        )),
        _ => {
            d.error(
                node.span,
                format!("`{what}` must be a string, found {}", node.describe()),
            );
            None
        }
    }
}

pub(crate) fn string_list(
    node: &Node,
    what: &str,
    d: &mut Diagnostics,
) -> Option<Vec<Spanned<String>>> {
    match &node.kind {
        Kind::Seq(items) => Some(items.iter().filter_map(|n| string(n, what, d)).collect()),
        Kind::Str { .. } => {
            d.error(
                node.span,
                format!("`{what}` must be a list of strings, such as [\"python\", \"train.py\"]; found a single string"),
            );
            None
        }
        _ => {
            d.error(
                node.span,
                format!(
                    "`{what}` must be a list of strings, found {}",
                    node.describe()
                ),
            );
            None
        }
    }
}

pub(crate) fn entries<'a>(node: &'a Node, what: &str, d: &mut Diagnostics) -> &'a [(Key, Node)] {
    match &node.kind {
        Kind::Map(e) => e,
        Kind::Null => &[],
        _ => {
            d.error(
                node.span,
                format!(
                    "`{what}` must be a mapping of names, found {}",
                    node.describe()
                ),
            );
            &[]
        }
    }
}

fn opt_string(f: &Fields, key: &str, d: &mut Diagnostics) -> Option<String> {
    f.string(key, d).map(|s| s.value)
}

pub(super) fn pipeline(node: &Node, d: &mut Diagnostics) -> Option<Pipeline> {
    let f = Fields::new(
        node,
        "the pipeline",
        &[&[
            "apiVersion",
            "kind",
            "name",
            "description",
            "params",
            "artifacts",
            "components",
            "steps",
            "onExit",
            "timeout",
            "network",
        ]],
        d,
    )?;
    if let Some(v) = f.string("apiVersion", d) {
        if v.value != "sluice/v1" {
            d.error(
                v.span,
                format!("unsupported apiVersion `{}`: expected `sluice/v1`", v.value),
            );
        }
    }
    if let Some(v) = f.string("kind", d) {
        if v.value != "Pipeline" {
            d.error(
                v.span,
                format!("unsupported kind `{}`: expected `Pipeline`", v.value),
            );
        }
    }
    let name = f
        .required("name", "the pipeline", d)
        .and_then(|n| string(n, "name", d));
    let params = f
        .get("params")
        .map(|n| param_decls(n, "params", false, d))
        .unwrap_or_default();
    let artifacts = f
        .get("artifacts")
        .map(|n| artifact_decls(n, "artifacts", d))
        .unwrap_or_default();
    let components = f
        .get("components")
        .map(|n| {
            entries(n, "components", d)
                .iter()
                .filter_map(|(k, v)| component(k, v, d))
                .collect()
        })
        .unwrap_or_default();
    let parsed = match f.required("steps", "the pipeline", d) {
        Some(n) => step_list(n, "steps", d),
        None => Vec::new(),
    };
    let mut steps = Vec::new();
    group::flatten(parsed, None, false, &mut steps);
    let on_exit = f
        .get("onExit")
        .map(|n| group::handlers(step_list(n, "onExit", d), d))
        .unwrap_or_default()
        .into_iter()
        .map(|p| p.step)
        .collect();
    let mut step_index = std::collections::HashMap::new();
    for (i, s) in steps.iter().enumerate() {
        step_index.entry(s.name.clone()).or_insert(i);
    }
    Some(Pipeline {
        timeout: f.get("timeout").and_then(|n| duration(n, "timeout", d)),
        network: network(&f, d),
        outputs: Outputs::default(),
        workspace: false,
        step_index,
        name: name.map(|n| n.value).unwrap_or_default(),
        description: opt_string(&f, "description", d),
        params,
        artifacts,
        components,
        steps,
        on_exit,
        span: node.span,
    })
}

fn step_list(node: &Node, what: &str, d: &mut Diagnostics) -> Vec<Parsed> {
    match &node.kind {
        Kind::Seq(items) => items.iter().filter_map(|n| step(n, d)).collect(),
        _ => {
            d.error(
                node.span,
                format!(
                    "`{what}` must be a list of steps, found {}",
                    node.describe()
                ),
            );
            Vec::new()
        }
    }
}

fn template(f: &Fields, d: &mut Diagnostics) -> Template {
    let mut secrets = Vec::new();
    let env = match f.get("env") {
        None => Vec::new(),
        Some(n) => match &n.kind {
            Kind::Map(e) => e
                .iter()
                .filter_map(|(k, v)| {
                    if matches!(v.kind, Kind::Map(_)) {
                        secrets.extend(env_secret(&k.name, v, d));
                        return None;
                    }
                    string(v, &format!("env.{}", k.name), d).map(|s| (k.name.clone(), s))
                })
                .collect(),
            Kind::Seq(items) => items
                .iter()
                .filter_map(|item| {
                    let f = Fields::new(item, "an env entry", &[&["name", "value"]], d)?;
                    let name = f
                        .required("name", "an env entry", d)
                        .and_then(|n| string(n, "name", d))?;
                    let value = f
                        .string("value", d)
                        .unwrap_or_else(|| Spanned::new(String::new(), item.span));
                    Some((name.value, value))
                })
                .collect(),
            _ => {
                d.error(
                    n.span,
                    format!(
                        "`env` must be a mapping of NAME: value, found {}",
                        n.describe()
                    ),
                );
                Vec::new()
            }
        },
    };
    Template {
        image: f.string("image", d).unwrap_or_default(),
        command: f.get("command").and_then(|n| string_list(n, "command", d)),
        args: f.get("args").and_then(|n| string_list(n, "args", d)),
        script: f.string("script", d),
        env,
        working_dir: f.string("workingDir", d),
        resources: f
            .get("resources")
            .map(|n| resources(n, d))
            .unwrap_or_default(),
        inputs: f
            .get("inputs")
            .map(|n| io(n, "inputs", false, d))
            .unwrap_or_default(),
        outputs: f
            .get("outputs")
            .map(|n| io(n, "outputs", true, d))
            .unwrap_or_default(),
        network: network(f, d),
        volumes: f.get("volumes").map(|n| volumes(n, d)).unwrap_or_default(),
        secrets: {
            secrets.extend(
                f.get("secrets")
                    .map(|n| secret_files(n, d))
                    .unwrap_or_default(),
            );
            secrets
        },
        seccomp_unconfined: switch(
            f,
            "seccomp",
            ("default", "Docker's profile"),
            ("unconfined", "where the worker allows it"),
            d,
        ),
        node_selector: f
            .get("nodeSelector")
            .map(|n| node_selector(n, d))
            .unwrap_or_default(),
        kfp: None,
    }
}

/// A setting that is one of two words: `off` (the default, false) or `on` (true), each with what
/// it means for the message that lists them when the word is neither.
/// `network: none | bridge | host`.
fn network(f: &Fields, d: &mut Diagnostics) -> Option<crate::NetworkMode> {
    let n = f.string("network", d)?;
    match n.value.parse() {
        Ok(m) => Some(m),
        Err(_) => {
            d.error(
                n.span,
                format!(
                    "`network` must be `none` (loopback only), `bridge` (the run's network, out through NAT) or `host` (the host's), found `{}`",
                    n.value
                ),
            );
            None
        }
    }
}

fn switch(f: &Fields, key: &str, off: (&str, &str), on: (&str, &str), d: &mut Diagnostics) -> bool {
    match f.string(key, d) {
        None => false,
        Some(n) if n.value == on.0 => true,
        Some(n) if n.value == off.0 => false,
        Some(n) => {
            d.error(
                n.span,
                format!(
                    "`{key}` must be `{}` ({}) or `{}` ({}), found `{}`",
                    off.0, off.1, on.0, on.1, n.value
                ),
            );
            false
        }
    }
}

fn volumes(node: &Node, d: &mut Diagnostics) -> Vec<Volume> {
    let Kind::Seq(items) = &node.kind else {
        d.error(
            node.span,
            format!(
                "`volumes` must be a list of {{name or hostPath, path, writable}}, found {}",
                node.describe()
            ),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let Some(f) = Fields::new(
            item,
            "a volume",
            &[&["name", "hostPath", "path", "writable"]],
            d,
        ) else {
            continue;
        };
        let name = f.string("name", d);
        let host_path = f.string("hostPath", d);
        let Some(path) = f
            .required("path", "a volume", d)
            .and_then(|n| string(n, "path", d))
        else {
            continue;
        };
        if !path.value.starts_with('/') || path.value.split('/').any(|c| c == "..") {
            d.error(
                path.span,
                format!(
                    "a volume's `path` must be absolute, without `..`; found `{}`",
                    path.value
                ),
            );
        } else if path.value == "/" || path.value == "/sluice" || path.value.starts_with("/sluice/")
        {
            d.error(
                path.span,
                format!(
                    "a volume cannot be mounted at `{}`: sluice uses it",
                    path.value
                ),
            );
        }
        match (&name, &host_path) {
            (Some(_), Some(h)) => d.error(
                h.span,
                "a volume names either a volume (`name`) or a host path (`hostPath`), not both",
            ),
            (None, None) => d.error(
                item.span,
                "a volume needs a `name` (a named volume) or a `hostPath`",
            ),
            (Some(n), None) if !is_name(&n.value) => d.error(
                n.span,
                format!(
                    "volume name `{}` must be letters, digits, `-` and `_`",
                    n.value
                ),
            ),
            (None, Some(h)) if !h.value.starts_with('/') => d.error(
                h.span,
                format!("`hostPath` must be an absolute path, found `{}`", h.value),
            ),
            _ => {}
        }
        let writable = match f.get("writable") {
            None => false,
            Some(n) => match &n.kind {
                Kind::Bool(b) => *b,
                _ => {
                    d.error(
                        n.span,
                        format!("`writable` must be true or false, found {}", n.describe()),
                    );
                    false
                }
            },
        };
        out.push(Volume {
            name: name.map(|n| n.value),
            host_path: host_path.map(|h| h.value),
            path: path.value,
            writable,
            span: item.span,
        });
    }
    out
}

fn component(key: &Key, node: &Node, d: &mut Diagnostics) -> Option<Component> {
    let what = format!("component `{}`", key.name);
    let f = Fields::new(
        node,
        &what,
        &[
            &["description"],
            TEMPLATE_KEYS,
            &["retry", "timeout", "cache"],
        ],
        d,
    )?;
    f.required("image", &what, d);
    Some(Component {
        name: key.name.clone(),
        description: opt_string(&f, "description", d),
        template: template(&f, d),
        control: control(&f, d),
        span: key.span,
    })
}

fn step(node: &Node, d: &mut Diagnostics) -> Option<Parsed> {
    let f = Fields::new(
        node,
        "a step",
        &[
            &[
                "name",
                "description",
                "component",
                "params",
                "artifacts",
                "dependsOn",
                "steps",
                "onExit",
            ],
            TEMPLATE_KEYS,
            CONTROL_KEYS,
        ],
        d,
    )?;
    let name = f
        .required("name", "a step", d)
        .and_then(|n| string(n, "name", d))?;
    let what = format!("step `{}`", name.value);
    let mut nested = (Vec::new(), Vec::new());
    let uses = match f.string("component", d) {
        _ if f.get("steps").is_some() => {
            let (group, steps, on_exit) = group::body(&f, &what, d);
            nested = (steps, on_exit);
            Uses::Group(Box::new(group))
        }
        Some(c) => {
            for k in TEMPLATE_KEYS {
                if let Some(n) = f.get(k) {
                    d.error(n.span, format!("{what} uses component `{}` and so cannot set `{k}`; set it in the component or drop `component`", c.value));
                }
            }
            Uses::Component(c)
        }
        None => {
            if f.get("image").is_none() {
                d.error(
                    node.span,
                    format!("{what} needs either `component` or an `image`"),
                );
            }
            Uses::Inline(Box::new(template(&f, d)))
        }
    };
    let params = group::bindings(f.get("params"), "params", d);
    let artifacts = group::bindings(f.get("artifacts"), "artifacts", d);
    let depends_on = match f.get("dependsOn") {
        Some(n) => match &n.kind {
            Kind::Str { .. } => string(n, "dependsOn", d).into_iter().collect(),
            _ => string_list(n, "dependsOn", d).unwrap_or_default(),
        },
        None => Vec::new(),
    };
    if let (Some(n), None) = (f.get("onExit"), f.get("steps")) {
        d.error(
            n.span,
            format!("{what} has `onExit` but no `steps`: exit handlers belong to a group or to the pipeline"),
        );
    }
    let step = Step {
        name: name.value,
        description: opt_string(&f, "description", d),
        uses,
        params,
        artifacts,
        depends_on,
        control: control(&f, d),
        span: name.span,
        parent: None,
        handler: false,
        display_name: None,
    };
    Some(Parsed {
        step,
        steps: nested.0,
        on_exit: nested.1,
    })
}

fn resources(node: &Node, d: &mut Diagnostics) -> Resources {
    let Some(f) = Fields::new(node, "resources", &[&["cpu", "memory", "disk", "gpu"]], d) else {
        return Resources::default();
    };
    let cpu_millis = f.get("cpu").and_then(|n| {
        let text = n.scalar_text().unwrap_or_default();
        let v = parse_cpu(&text);
        if v.is_none() {
            d.error(
                n.span,
                format!("`cpu` must be cores such as 2, 0.5 or 500m, found `{text}`"),
            );
        }
        v
    });
    let mut size = |key: &str| {
        f.get(key).and_then(|n| {
            let text = n.scalar_text().unwrap_or_default();
            let v = parse_bytes(&text);
            if v.is_none() {
                d.error(
                    n.span,
                    format!("`{key}` must be a size such as 512Mi, 2Gi or 1G, found `{text}`"),
                );
            }
            v
        })
    };
    let memory_bytes = size("memory");
    let disk_bytes = size("disk");
    let gpu = match f.get("gpu") {
        None => 0,
        Some(n) => match n.kind {
            Kind::Int(i) if (0..=64).contains(&i) => i as u32,
            _ => {
                d.error(
                    n.span,
                    format!(
                        "`gpu` must be a whole number of GPUs, found {}",
                        n.describe()
                    ),
                );
                0
            }
        },
    };
    Resources {
        cpu_millis,
        memory_bytes,
        disk_bytes,
        gpu,
    }
}
