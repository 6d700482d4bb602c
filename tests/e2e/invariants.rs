//! The architecture's invariants that a test can check, and the example pipelines.

use std::path::Path;

fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The dependencies a crate's manifest names under `[dependencies]`.
fn dependencies(krate: &str) -> Vec<String> {
    let toml = std::fs::read_to_string(root().join(krate).join("Cargo.toml")).unwrap();
    let mut out = Vec::new();
    let mut in_deps = false;
    for line in toml.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
        } else if in_deps && !line.is_empty() && !line.starts_with('#') {
            let name = line.split(['=', '.', ' ']).next().unwrap();
            out.push(name.to_string());
        }
    }
    out
}

#[test]
fn the_model_and_the_engine_can_see_no_io_crate() {
    // What Cargo enforces, kept from growing: each pure crate's whole list of dependencies.
    let allowed: &[(&str, &[&str])] = &[
        (
            "spec",
            &[
                "serde",
                "serde_json",
                "yaml-rust2",
                "sha2",
                "hex",
                "humantime",
            ],
        ),
        (
            "engine",
            &[
                "sluice-spec",
                "petgraph",
                "serde",
                "serde_json",
                "sha2",
                "hex",
            ],
        ),
    ];
    for (krate, allowed) in allowed {
        let deps = dependencies(krate);
        assert!(!deps.is_empty(), "{krate}: no dependencies read");
        for d in deps {
            assert!(
                allowed.contains(&d.as_str()),
                "{krate} depends on `{d}`: the crate must stay pure (no I/O, no wire types)"
            );
        }
    }
}

#[test]
fn the_engine_does_no_io() {
    // What Cargo cannot see: the standard library's I/O, clocks, threads and environment.
    let forbidden = [
        "std::fs",
        "std::net",
        "std::process",
        "std::thread",
        "std::env",
        "std::io::stdin",
        "SystemTime",
        "Instant::now",
        "println!",
    ];
    for krate in ["engine/src", "spec/src"] {
        for f in rust_files(&root().join(krate)) {
            let text = std::fs::read_to_string(&f).unwrap();
            let code: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            for word in forbidden {
                assert!(
                    !code.contains(word),
                    "{} mentions `{word}`: the engine and the model must stay pure",
                    f.display()
                );
            }
        }
    }
}

#[test]
fn only_the_store_writes_sql() {
    // Only the store's implementations (SQLite's, PostgreSQL's, and the columns, binders and
    // statements both share in `cols.rs` and `catalog_sql.rs`) speak SQL; the traits and their
    // rows do not, nor anything else.
    let store = root().join("server/src/store");
    for f in rust_files(&root().join("server/src")) {
        if f.starts_with(store.join("sqlite"))
            || f.starts_with(store.join("postgres"))
            || f == store.join("cols.rs")
            || f == store.join("catalog_sql.rs")
        {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            !text.contains("sqlx::query"),
            "{} runs SQL outside the store",
            f.display()
        );
    }
}

#[test]
fn the_worker_and_sdk_do_not_depend_on_the_server() {
    for krate in ["worker", "sdk", "spec", "engine"] {
        let toml = std::fs::read_to_string(root().join(krate).join("Cargo.toml")).unwrap();
        assert!(
            !toml.contains("sluice-server"),
            "{krate} depends on the server"
        );
        assert!(!toml.contains("sqlx"), "{krate} depends on sqlx");
    }
    let sdk = std::fs::read_to_string(root().join("sdk/Cargo.toml")).unwrap();
    assert!(!sdk.contains("axum"), "the sdk depends on axum");
}

#[test]
fn every_example_pipeline_validates() {
    let mut n = 0;
    let mut stack = vec![root().join("pipelines")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml") {
                let text = std::fs::read_to_string(&p).unwrap();
                if let Err(d) = sluice_spec::load(&p.display().to_string(), &text) {
                    panic!("{}", d.render(&text));
                }
                n += 1;
            }
        }
    }
    assert!(n > 0, "no example pipelines found");
}
