//! Where a step may run: `nodeSelector`, the worker labels it needs.

use super::*;

/// `nodeSelector: {NAME: VALUE, …}`: the worker labels a step needs, each checked as a worker's
/// labels are.
pub(crate) fn node_selector(
    node: &Node,
    d: &mut Diagnostics,
) -> std::collections::BTreeMap<String, Spanned<String>> {
    let mut out = std::collections::BTreeMap::new();
    let Kind::Map(entries) = &node.kind else {
        d.error(
            node.span,
            format!(
                "`nodeSelector` must be a mapping of worker label NAME: VALUE, found {}",
                node.describe()
            ),
        );
        return out;
    };
    if entries.len() > crate::labels::MAX_LABELS {
        d.error(
            node.span,
            format!(
                "`nodeSelector` names at most {} labels, not {}",
                crate::labels::MAX_LABELS,
                entries.len()
            ),
        );
        return out;
    }
    for (k, v) in entries {
        let Some(value) = string(v, &format!("nodeSelector.{}", k.name), d) else {
            continue;
        };
        if let Some(why) = crate::labels::label_problem(&k.name, &value.value) {
            d.error(k.span, format!("`nodeSelector`: {why}"));
        } else if value.value.contains("{{") {
            d.error(
                value.span,
                "a `nodeSelector` value is taken as written: it cannot hold a reference",
            );
        } else {
            out.insert(k.name.clone(), value);
        }
    }
    out
}
