//! `icsctl` is a client: it depends on the contracts (`ics-proto`, `ics-auth`, `ics-client`,
//! `ics-validate`) and on libraries built on them alone (`ics-board-pack`, `ics-demo`,
//! `ics-measures`), never on the server kit, so it links no database driver, NATS client or
//! span exporter. Read off `Cargo.lock`, so that a dependency added anywhere below `icsctl`
//! is caught.

use std::collections::{BTreeMap, BTreeSet};

/// Each package of the lock file and the names of the packages it depends on.
fn lock_graph() -> BTreeMap<String, Vec<String>> {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock"))
        .expect("read Cargo.lock");
    let mut graph = BTreeMap::new();
    for package in lock.split("[[package]]").skip(1) {
        let mut name = None;
        let mut dependencies = Vec::new();
        let mut in_dependencies = false;
        for line in package.lines().map(str::trim) {
            if let Some(value) = line.strip_prefix("name = ") {
                name = Some(value.trim_matches('"').to_owned());
            } else if line.starts_with("dependencies = [") {
                in_dependencies = true;
            } else if in_dependencies && line.starts_with(']') {
                in_dependencies = false;
            } else if in_dependencies {
                // `"name"` or `"name version"` or `"name version (source)"`.
                let entry = line.trim_end_matches(',').trim_matches('"');
                if let Some(dependency) = entry.split_whitespace().next() {
                    dependencies.push(dependency.to_owned());
                }
            }
        }
        if let Some(name) = name {
            graph
                .entry(name)
                .or_insert_with(Vec::new)
                .extend(dependencies);
        }
    }
    graph
}

#[test]
fn icsctl_links_no_server_kit_database_driver_nats_client_or_span_exporter() {
    let graph = lock_graph();
    let mut reached = BTreeSet::new();
    let mut next = vec!["icsctl".to_owned()];
    while let Some(package) = next.pop() {
        if reached.insert(package.clone()) {
            next.extend(graph.get(&package).into_iter().flatten().cloned());
        }
    }
    assert!(
        reached.len() > 20,
        "icsctl's dependencies were read: {reached:?}"
    );
    let forbidden: Vec<&String> = reached
        .iter()
        .filter(|package| {
            package.starts_with("sqlx")
                || [
                    "async-nats",
                    "opentelemetry-otlp",
                    "ics-service-kit",
                    "ics-eventstore",
                ]
                .contains(&package.as_str())
        })
        .collect();
    assert!(forbidden.is_empty(), "icsctl reaches {forbidden:?}");
}
