//! Groups of steps (`steps:` inside a step): parsed as a tree, then flattened into the pipeline's
//! one list of steps with qualified names (`GROUP.STEP`), each knowing its group.

use super::*;

/// A step as written, with the steps of a group inside it.
pub(crate) struct Parsed {
    pub step: Step,
    pub steps: Vec<Parsed>,
    pub on_exit: Vec<Parsed>,
}

/// What a group may set: a name, a description, what it waits for, its steps and exit handlers,
/// its outputs, and when and how often it runs.
const GROUP_KEYS: &[&str] = &[
    "name",
    "description",
    "dependsOn",
    "steps",
    "onExit",
    "outputs",
    "when",
    "forEach",
    "parallelism",
];

/// The body of a group step: its steps, exit handlers and output bindings. `f` holds the step's
/// fields; those a group cannot have are reported.
pub(super) fn body(
    f: &Fields,
    what: &str,
    d: &mut Diagnostics,
) -> (Group, Vec<Parsed>, Vec<Parsed>) {
    for (k, _) in f.entries() {
        if !GROUP_KEYS.contains(&k.name.as_str()) {
            d.error(
                k.span,
                format!(
                    "{what} is a group (it has `steps`) and so cannot set `{}`; a group may set {}",
                    k.name,
                    GROUP_KEYS.join(", ")
                ),
            );
        }
    }
    let steps = f
        .get("steps")
        .map(|n| step_list(n, "steps", d))
        .unwrap_or_default();
    if steps.is_empty() {
        if let Some(n) = f.get("steps") {
            d.error(n.span, format!("{what} is a group with no steps"));
        }
    }
    let on_exit = f
        .get("onExit")
        .map(|n| handlers(step_list(n, "onExit", d), d))
        .unwrap_or_default();
    let mut group = Group::default();
    if let Some(n) = f.get("outputs") {
        if let Some(o) = Fields::new(n, "outputs", &[&["params", "artifacts"]], d) {
            group.params = bindings(o.get("params"), "outputs.params", d);
            group.artifacts = bindings(o.get("artifacts"), "outputs.artifacts", d);
        }
    }
    (group, steps, on_exit)
}

/// Exit handlers as written: each a step, not a group.
pub(super) fn handlers(list: Vec<Parsed>, d: &mut Diagnostics) -> Vec<Parsed> {
    list.into_iter()
        .filter(|p| {
            if p.step.group().is_some() {
                d.error(p.step.span, format!("exit handler `{}` cannot be a group: list its steps under `onExit`, ordered with `dependsOn`", p.step.name));
                return false;
            }
            true
        })
        .collect()
}

/// `NAME: value` entries as bindings.
pub(super) fn bindings(node: Option<&Node>, what: &str, d: &mut Diagnostics) -> Vec<Binding> {
    node.map(|n| {
        entries(n, what, d)
            .iter()
            .map(|(k, v)| Binding {
                name: k.name.clone(),
                value: v.to_json(),
                span: v.span,
            })
            .collect()
    })
    .unwrap_or_default()
}

/// Appends `parsed` (and, after each group, its steps and then its exit handlers) to `out`,
/// qualifying names with their group's. Returns the indices of the steps added at this level.
pub(crate) fn flatten(
    parsed: Vec<Parsed>,
    parent: Option<usize>,
    handler: bool,
    out: &mut Vec<Step>,
) -> Vec<usize> {
    let mut level = Vec::new();
    for p in parsed {
        let mut step = p.step;
        if let Some(g) = parent {
            step.name = format!("{}.{}", out[g].name, step.name);
        }
        step.parent = parent;
        step.handler = handler;
        let at = out.len();
        out.push(step);
        level.push(at);
        if p.steps.is_empty() && p.on_exit.is_empty() {
            continue;
        }
        let steps = flatten(p.steps, Some(at), false, out);
        let on_exit = flatten(p.on_exit, Some(at), true, out);
        if let Uses::Group(g) = &mut out[at].uses {
            g.steps = steps;
            g.on_exit = on_exit;
        }
    }
    level
}
