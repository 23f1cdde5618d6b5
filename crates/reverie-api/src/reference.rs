//! The field reference of the CRDs as Markdown, generated from their OpenAPI schemas, so the
//! documented fields are exactly the served ones (`docs/crd-fields.md`, checked by tests/crds.rs).

use std::fmt::Write;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray,
};

/// The Markdown reference of `crds`: one table per kind, one row per field.
pub fn markdown(crds: &[CustomResourceDefinition]) -> String {
    let mut out = String::from(
        "# CRD field reference (generated)\n\n\
         Generated from the CRD schemas by `reverie crds --reference`; do not edit (`make crds`\n\
         regenerates it, and tests/crds.rs fails when it is out of date). The overview, defaults\n\
         and behaviour are in [the CRD reference](crd-reference.md).\n",
    );
    for crd in crds {
        let Some(version) = crd.spec.versions.first() else {
            continue;
        };
        let Some(schema) = version.schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()) else {
            continue;
        };
        let _ = write!(
            out,
            "\n## {} ({}/{})\n\n| field | type | description |\n|---|---|---|\n",
            crd.spec.names.kind, crd.spec.group, version.name
        );
        for root in ["spec", "status"] {
            if let Some(props) = schema.properties.as_ref().and_then(|p| p.get(root)) {
                rows(
                    &mut out,
                    root,
                    props,
                    schema
                        .required
                        .as_deref()
                        .unwrap_or_default()
                        .contains(&root.to_string()),
                );
            }
        }
    }
    out
}

fn rows(out: &mut String, path: &str, schema: &JSONSchemaProps, required: bool) {
    let _ = writeln!(
        out,
        "| `{path}` | {}{} | {} |",
        type_of(schema),
        if required { ", required" } else { "" },
        describe(schema)
    );
    let mut children: Vec<(String, &JSONSchemaProps, bool)> = Vec::new();
    let required_children = schema.required.clone().unwrap_or_default();
    for (name, child) in schema.properties.iter().flatten() {
        children.push((format!("{path}.{name}"), child, required_children.contains(name)));
    }
    if let Some(JSONSchemaPropsOrArray::Schema(items)) = &schema.items {
        let item_required = items.required.clone().unwrap_or_default();
        for (name, child) in items.properties.iter().flatten() {
            children.push((format!("{path}[].{name}"), child, item_required.contains(name)));
        }
    }
    // Kubernetes' own types (conditions, resources, selectors) are documented upstream.
    if is_upstream(path) {
        return;
    }
    for (child_path, child, child_required) in children {
        rows(out, &child_path, child, child_required);
    }
}

fn is_upstream(path: &str) -> bool {
    const UPSTREAM: [&str; 12] = [
        "conditions",
        "resources",
        "selector",
        "labelSelector",
        "tolerations",
        "env",
        "envFrom",
        "nodeSelector",
        "active",
        "sessions.nfs",
        "sessions.hostPath",
        "sessions.persistentVolumeClaim",
    ];
    UPSTREAM.iter().any(|leaf| path.ends_with(&format!(".{leaf}")))
}

fn type_of(schema: &JSONSchemaProps) -> String {
    match schema.type_.as_deref() {
        Some("array") => match &schema.items {
            Some(JSONSchemaPropsOrArray::Schema(items)) => format!("[]{}", type_of(items)),
            _ => "array".into(),
        },
        Some(other) => other.to_string(),
        None if schema.x_kubernetes_int_or_string == Some(true) => "int or string".into(),
        None if schema.one_of.is_some() => "one of".into(),
        None => "object".into(),
    }
}

/// The description's first sentence, with its constraints.
fn describe(schema: &JSONSchemaProps) -> String {
    let text = schema
        .description
        .as_deref()
        .unwrap_or_default()
        .replace('\n', " ")
        .replace('|', "\\|");
    let mut parts = vec![text.trim().to_string()];
    if let Some(values) = &schema.enum_ {
        let values: Vec<String> = values
            .iter()
            .map(|v| format!("`{}`", v.0.as_str().unwrap_or_default()))
            .collect();
        parts.push(format!("One of {}.", values.join(", ")));
    }
    if let Some(default) = &schema.default {
        parts.push(format!("Default `{}`.", default.0));
    }
    if let (Some(min), Some(max)) = (schema.minimum, schema.maximum) {
        parts.push(format!("{min}–{max}."));
    } else if let Some(min) = schema.minimum {
        parts.push(format!("At least {min}."));
    }
    parts.retain(|p| !p.is_empty());
    parts.join(" ")
}
