//! Labels: `NAME=VALUE` pairs that runs carry (commit, branch) and workers offer (`gpu=a100`,
//! `zone=b`), and the rules both follow, so a step's `nodeSelector` can be checked at submit
//! against the same rules a worker's labels were checked against at registration.

/// At most this many labels on one run, worker or selector.
pub const MAX_LABELS: usize = 32;

/// What is wrong with a label, if anything: a name of 1 to 63 letters, digits, `-`, `_`, `.` or
/// `/`, starting with a letter or digit; a value of at most 256 characters without control
/// characters.
pub fn label_problem(name: &str, value: &str) -> Option<String> {
    let ok = (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if !ok {
        return Some(format!(
            "label name `{}` is not 1 to 63 letters, digits, `-`, `_`, `.` or `/` starting with a letter or digit",
            name.escape_debug()
        ));
    }
    if value.chars().count() > 256 || value.chars().any(char::is_control) {
        return Some(format!(
            "label `{name}`'s value is longer than 256 characters or holds control characters"
        ));
    }
    None
}

/// Whether labels offered (a worker's) hold every `NAME=VALUE` asked for (a step's selector).
pub fn selects<'a>(
    asked: impl IntoIterator<Item = (&'a String, &'a String)>,
    offered: &std::collections::BTreeMap<String, String>,
) -> bool {
    asked
        .into_iter()
        .all(|(k, v)| offered.get(k).is_some_and(|o| o == v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_are_checked_and_a_selector_needs_every_label() {
        for (name, value, ok) in [
            ("gpu", "a100", true),
            ("sluice.dev/zone", "b", true),
            ("", "x", false),
            ("-x", "x", false),
            ("a b", "x", false),
            (&"n".repeat(64), "x", false),
            ("k", "line\nbreak", false),
            ("k", &"v".repeat(257), false),
        ] {
            assert_eq!(
                label_problem(name, value).is_none(),
                ok,
                "{name:?}={value:?}"
            );
        }
        let offered: std::collections::BTreeMap<String, String> = [("gpu", "a100"), ("zone", "b")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        let ask = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        for (asked, want) in [
            (ask(&[]), true),
            (ask(&[("gpu", "a100")]), true),
            (ask(&[("gpu", "a100"), ("zone", "b")]), true),
            (ask(&[("gpu", "h100")]), false),
            (ask(&[("gpu", "a100"), ("rack", "1")]), false),
        ] {
            assert_eq!(
                selects(asked.iter().map(|(k, v)| (k, v)), &offered),
                want,
                "{asked:?}"
            );
        }
    }
}
