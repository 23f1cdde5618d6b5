//! Writing status: server-side apply of the whole status, skipped when nothing changed.

use std::fmt::Debug;

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Error, Result};
use crate::api::FIELD_MANAGER;

/// Applies `desired` as the object's status unless it already equals `current`.
/// Returns whether a write was made.
pub async fn apply_status<K, S>(api: &Api<K>, object: &K, current: Option<&S>, desired: &S) -> Result<bool>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned,
    S: Serialize + PartialEq,
{
    if current == Some(desired) {
        return Ok(false);
    }
    let name = object
        .meta()
        .name
        .as_deref()
        .ok_or(Error::MissingObjectKey("metadata.name"))?;
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": serde_json::to_value(desired).map_err(|source| Error::Serialize { what: "status", source })?,
    });
    api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await?;
    Ok(true)
}
