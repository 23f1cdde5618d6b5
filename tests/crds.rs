//! The checked-in CRDs (`crds/`) are exactly what the Rust types generate, and they carry what
//! `kubectl` users and the API server rely on.

use std::path::Path;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use reverie::api::{all_crds, crd_file_name, crd_yaml};

fn checked_in(crd: &CustomResourceDefinition) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crds")
        .join(crd_file_name(crd));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[test]
fn crds_directory_matches_the_types() {
    for crd in all_crds() {
        assert_eq!(
            checked_in(&crd),
            crd_yaml(&crd).unwrap(),
            "crds/{} is out of date: run `make crds`",
            crd_file_name(&crd)
        );
    }
    let files = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("crds"))
        .unwrap()
        .count();
    assert_eq!(files, all_crds().len(), "crds/ holds a file no type generates");
}

#[test]
fn every_kind_has_names_category_status_and_columns() {
    let expected = [
        ("agents", "Agent", "ag"),
        ("dreamschedules", "DreamSchedule", "ds"),
        ("memoryproposals", "MemoryProposal", "mp"),
    ];
    for (crd, (plural, kind, short)) in all_crds().iter().zip(expected) {
        assert_eq!(crd.spec.group, "reverie.dev");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.plural, plural);
        assert_eq!(crd.spec.names.kind, kind);
        assert_eq!(crd.spec.names.short_names.as_deref(), Some(&[short.to_string()][..]));
        assert_eq!(crd.spec.names.categories.as_deref(), Some(&["reverie".to_string()][..]));
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(version.served && version.storage);
        assert!(
            version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some(),
            "{kind} has no status subresource"
        );
        let columns: Vec<&str> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert!(
            columns.len() >= 4 && columns.contains(&"Age"),
            "{kind} columns: {columns:?}"
        );
    }
}

#[test]
fn conditions_merge_by_type_under_server_side_apply() {
    for crd in all_crds() {
        let schema = serde_json::to_value(
            crd.spec.versions[0]
                .schema
                .as_ref()
                .unwrap()
                .open_api_v3_schema
                .as_ref()
                .unwrap(),
        )
        .unwrap();
        let conditions = &schema["properties"]["status"]["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], "map", "{}", crd.spec.names.kind);
        assert_eq!(conditions["x-kubernetes-list-map-keys"], serde_json::json!(["type"]));
    }
}

#[test]
fn the_field_reference_is_generated_from_the_schemas() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/crd-fields.md");
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = reverie::api::reference::markdown(&all_crds());
    assert!(
        checked_in == generated,
        "docs/crd-fields.md is out of date: run `make crds`"
    );
    for field in [
        "`spec.schedule`",
        "`spec.output.git.repository`",
        "`spec.changes[].evidence.count`",
        "`status.lastRuns[].proposal`",
    ] {
        assert!(generated.contains(field), "{field} is documented");
    }
}

#[test]
fn every_schema_format_is_one_the_api_server_knows() {
    fn formats(value: &serde_json::Value, found: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                if let (Some(serde_json::Value::String(format)), Some(_)) = (map.get("format"), map.get("type")) {
                    found.push(format.clone());
                }
                map.values().for_each(|v| formats(v, found));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| formats(v, found)),
            _ => {}
        }
    }
    for crd in all_crds() {
        let mut found = Vec::new();
        formats(&serde_json::to_value(&crd).unwrap(), &mut found);
        for format in found {
            assert!(
                reverie::api::KUBERNETES_FORMATS.contains(&format.as_str()),
                "{}: format {format:?} makes kubectl apply warn",
                crd.metadata.name.as_deref().unwrap_or_default()
            );
        }
    }
}
