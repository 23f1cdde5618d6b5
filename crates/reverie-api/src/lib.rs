//! The three custom resources of reverie (group `reverie.dev`, version `v1alpha1`).
//!
//! The types (serde + schemars + kube derive, defaults and small accessors), the pure rules
//! every reader of them applies ([`rules`]), and the translation between the memory core's
//! changes and a proposal's reviewable changes ([`proposal`]). No client, no runtime: the
//! operator crate does the I/O. Tests of every crate build their objects with
//! `test_support` (this crate's tests and the `test-support` feature only).

// kube's `printcolumn(...)` attributes repeat keys such as `type_` by design; clippy's
// duplicated-attributes lint reads them as duplicates.
#[allow(clippy::duplicated_attributes)]
pub mod agent;
pub mod conditions;
pub mod dream_job;
#[allow(clippy::duplicated_attributes)]
pub mod dream_schedule;
pub mod duration;
pub mod effect;
#[allow(clippy::duplicated_attributes)]
pub mod memory_proposal;
pub mod proposal;
pub mod reference;
pub mod review;
pub mod rules;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;

pub use agent::{Agent, AgentSpec, AgentStatus};
pub use dream_schedule::{DreamSchedule, DreamScheduleSpec, DreamScheduleStatus};
pub use memory_proposal::{MemoryProposal, MemoryProposalSpec, MemoryProposalStatus};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group every reverie kind belongs to.
pub const GROUP: &str = "reverie.dev";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";
/// The field manager reverie uses for every server-side apply, so ownership is stable across
/// restarts and replicas.
pub const FIELD_MANAGER: &str = "reverie";

/// A reference to an object by name in the same namespace.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub struct LocalObjectReference {
    /// Name of the object in the same namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A key inside a Secret in the same namespace.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub struct SecretKeyReference {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Every CRD of reverie, in a stable order (Agent, DreamSchedule, MemoryProposal).
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    [Agent::crd(), DreamSchedule::crd(), MemoryProposal::crd()]
        .into_iter()
        .map(without_unknown_formats)
        .collect()
}

/// The `format`s an API server recognises in a CRD schema (apiextensions' validation formats).
/// Others are kept but make every install print `Warning: unrecognized format`.
pub const KUBERNETES_FORMATS: &[&str] = &[
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
    "date-time",
    "int32",
    "int64",
    "float",
    "double",
];

/// Drops the schema formats Kubernetes does not know (schemars writes `uint32`/`uint64` for
/// unsigned fields, whose `minimum: 0` already says what matters).
fn without_unknown_formats(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn walk(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                let unknown = map
                    .get("format")
                    .and_then(serde_json::Value::as_str)
                    .is_some_and(|f| !KUBERNETES_FORMATS.contains(&f));
                if unknown && map.get("type").is_some() {
                    map.remove("format");
                }
                map.values_mut().for_each(walk);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(&crd).expect("a CRD serialises");
    walk(&mut value["spec"]["versions"]);
    serde_json::from_value(value).expect("the same CRD with fewer formats")
}

/// The file name under `crds/` that holds a CRD, e.g. `agents.reverie.dev.yaml`.
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}

/// Renders a CRD as the YAML document that `reverie crds` prints and `crds/` holds.
pub fn crd_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(crd)
}
