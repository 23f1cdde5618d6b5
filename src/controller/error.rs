//! The one error type of the reconcilers, labelled for metrics.

/// A reconcile that could not finish. Invalid specs are not errors: they are reported as
/// conditions and the reconcile succeeds.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("could not serialise {what}: {source}")]
    Serialize {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("object has no {0}")]
    MissingObjectKey(&'static str),
    /// Another writer kept winning a race; the reconcile is retried.
    #[error("write conflict: {0}")]
    Conflict(String),
}

impl Error {
    /// A short, bounded label for the `reconcile_errors` metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube_api",
            Error::Serialize { .. } => "serialize",
            Error::MissingObjectKey(_) => "missing_object_key",
            Error::Conflict(_) => "conflict",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
