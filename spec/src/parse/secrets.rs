//! Secrets a step names: `env: {VAR: {secret: NAME}}` and `secrets: [NAME, {name, path}]`.

use super::*;

/// `{secret: NAME}`, an environment variable's value taken from a secret.
pub(super) fn env_secret(key: &str, v: &Node, d: &mut Diagnostics) -> Option<SecretRef> {
    let f = Fields::new(v, "a secret reference", &[&["secret"]], d)?;
    let name = f
        .required("secret", "a secret reference", d)
        .and_then(|n| string(n, "secret", d))?;
    check_secret_name(&name, d);
    Some(SecretRef {
        secret: name.value,
        env: Some(key.to_string()),
        path: None,
        span: name.span,
    })
}

fn check_secret_name(name: &Spanned<String>, d: &mut Diagnostics) {
    if !is_name(&name.value) {
        d.error(
            name.span,
            format!(
                "secret name `{}` must be letters, digits, `-` and `_`, starting with a letter",
                name.value
            ),
        );
    }
}

/// `secrets: [NAME, {name: NAME, path: /file}]`: secrets given as read-only files.
pub(super) fn secret_files(node: &Node, d: &mut Diagnostics) -> Vec<SecretRef> {
    let Kind::Seq(items) = &node.kind else {
        d.error(
            node.span,
            format!(
                "`secrets` must be a list of secret names or {{name, path}}, found {}",
                node.describe()
            ),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let (name, path) = match &item.kind {
            Kind::Map(_) => {
                let Some(f) = Fields::new(item, "a secret file", &[&["name", "path"]], d) else {
                    continue;
                };
                let Some(name) = f
                    .required("name", "a secret file", d)
                    .and_then(|n| string(n, "name", d))
                else {
                    continue;
                };
                (name, f.string("path", d))
            }
            _ => match string(item, "a secret", d) {
                Some(n) => (n, None),
                None => continue,
            },
        };
        check_secret_name(&name, d);
        let path = path.map(|p| {
            let bad = !p.value.starts_with('/')
                || p.value.split('/').any(|c| c == "..")
                || p.value.ends_with('/')
                || p.value == "/sluice"
                || p.value.starts_with("/sluice/");
            if bad {
                d.error(
                    p.span,
                    format!(
                        "a secret's `path` is an absolute file path outside /sluice, without `..`; found `{}`",
                        p.value
                    ),
                );
            }
            p.value
        });
        out.push(SecretRef {
            path: Some(path.unwrap_or_else(|| SecretRef::default_path(&name.value))),
            secret: name.value,
            env: None,
            span: name.span,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::load;

    fn step(body: &str) -> String {
        format!("name: p\nsteps:\n  - name: s\n    image: busybox\n    command: [\"true\"]\n{body}")
    }

    #[test]
    fn secrets_are_named_as_environment_variables_or_files() {
        let p = load(
            "p.yaml",
            &step("    env: {A: plain, B: {secret: api-key}}\n    secrets: [api-key, {name: db, path: /etc/db}]\n"),
        )
        .unwrap_or_else(|d| panic!("{d}"));
        let t = p.template_of(&p.steps[0]).unwrap();
        assert_eq!(t.env.len(), 1);
        let got: Vec<_> = t
            .secrets
            .iter()
            .map(|s| (s.secret.as_str(), s.env.as_deref(), s.path.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("api-key", Some("B"), None),
                ("api-key", None, Some("/run/secrets/api-key")),
                ("db", None, Some("/etc/db")),
            ]
        );
    }

    #[test]
    fn a_bad_secret_reference_is_an_error_at_its_place() {
        for (body, want) in [
            (
                "    env: {B: {secret: \"no way\"}}\n",
                "secret name `no way`",
            ),
            ("    env: {B: {secrte: x}}\n", "secrte"),
            (
                "    secrets: [{name: x, path: etc/x}]\n",
                "absolute file path",
            ),
            (
                "    secrets: [{name: x, path: /sluice/x}]\n",
                "outside /sluice",
            ),
            ("    secrets: [{name: x, path: /a/../b}]\n", "without `..`"),
            ("    secrets: x\n", "must be a list"),
        ] {
            let d = load("p.yaml", &step(body)).unwrap_err().to_string();
            assert!(d.contains(want), "{body}: {d}");
            assert!(d.contains("p.yaml:6:") || d.contains("p.yaml:7:"), "{d}");
        }
    }
}
