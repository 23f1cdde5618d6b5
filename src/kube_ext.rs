//! Small Kubernetes helpers the controllers and the stores share: creating objects that never
//! change once created, and reading what a finished Job says about itself.

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, PostParams};

/// Creates `object`; one that already exists counts as created (these objects never change).
pub async fn create_unless_exists<K>(api: &Api<K>, object: &K) -> kube::Result<()>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// The user the API server authenticates this client as (a SelfSubjectReview, Kubernetes 1.28+):
/// the name an admission policy sees, whatever the kubeconfig calls its entry.
pub async fn whoami(client: &kube::Client) -> Result<String, String> {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .map_err(|e| format!("the API server did not say who you are (SelfSubjectReview, Kubernetes 1.28+): {e}"))?;
    review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .filter(|name| !name.is_empty())
        .ok_or_else(|| "the API server's SelfSubjectReview named no user".to_string())
}

/// Why a finished Job failed, as its `Failed` condition states it.
pub fn job_failure(job: &Job) -> Option<String> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .find(|c| c.type_ == "Failed" && c.status == "True")
        .map(|c| {
            c.message
                .clone()
                .or_else(|| c.reason.clone())
                .unwrap_or_else(|| "failed".into())
        })
}

/// The termination message of `container` (default: the first) in the newest of `pods`.
pub fn termination_message(pods: &[Pod], container: Option<&str>) -> Option<String> {
    pods.iter()
        .filter_map(|pod| {
            let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
            let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
            let status = match container {
                Some(name) => statuses.iter().find(|c| c.name == name)?,
                None => statuses.first()?,
            };
            let message = status.state.as_ref()?.terminated.as_ref()?.message.clone()?;
            Some((created, message))
        })
        .max_by_key(|(created, _)| *created)
        .map(|(_, message)| message)
}

/// The termination message of `container` in the newest pod of Job `job`.
pub async fn job_pod_message(pods: &Api<Pod>, job: &str, container: Option<&str>) -> kube::Result<Option<String>> {
    let listed = pods
        .list(&ListParams::default().labels(&format!("job-name={job}")))
        .await?;
    Ok(termination_message(&listed.items, container))
}
