//! Counts every request the operator's client sends to the API server, by Kubernetes verb and
//! resource (`reverie_api_requests_total{verb,resource}`): the figure that shows reconciles
//! read from caches (no `list` per reconcile) and that a converged cluster gets no writes.

use std::sync::Arc;

use http::{Method, Request};
use tower::util::MapRequestLayer;

use crate::metrics::Metrics;

/// A layer for `kube::client::ClientBuilder::with_layer` that counts each request in `metrics`.
pub fn counting_layer<B>(metrics: Arc<Metrics>) -> MapRequestLayer<impl Fn(Request<B>) -> Request<B> + Clone> {
    MapRequestLayer::new(move |request: Request<B>| {
        let (verb, resource) = classify(request.method(), request.uri().path(), request.uri().query());
        metrics.api_request(verb, resource);
        request
    })
}

/// The Kubernetes verb and resource of a request, from its method and path:
/// `/api/v1/namespaces/ns/configmaps/x` is a `get` of `configmaps`, the same path without
/// the name a `list`, and with `watch=true` a `watch`.
pub fn classify<'a>(method: &Method, path: &'a str, query: Option<&str>) -> (&'static str, &'a str) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    // Skip `api/v1` or `apis/<group>/<version>`.
    let rest = match segments.first() {
        Some(&"api") => segments.get(2..),
        Some(&"apis") => segments.get(3..),
        _ => None,
    }
    .unwrap_or_default();
    // `namespaces/<ns>/<resource>…` is namespaced; `namespaces/<ns>` alone is a Namespace.
    // A path that names no resource (`/version`) counts as a read of one object.
    let (resource, named) = match rest {
        ["namespaces", _, resource, more @ ..] => (*resource, !more.is_empty()),
        [resource, more @ ..] => (*resource, !more.is_empty()),
        [] => ("other", true),
    };
    let watching = query.is_some_and(|q| q.split('&').any(|pair| pair == "watch=true" || pair == "watch=1"));
    let verb = match *method {
        Method::GET if watching => "watch",
        Method::GET if named => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "other",
    };
    (verb, resource)
}

#[cfg(test)]
mod tests {
    use tower::{Layer, Service, ServiceExt};

    use super::*;

    #[tokio::test]
    async fn each_request_through_the_layer_is_counted() {
        let metrics = Arc::new(Metrics::default());
        let mut service = counting_layer(metrics.clone()).layer(tower::service_fn(|_: Request<()>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(()))
        }));
        for _ in 0..2 {
            let request = Request::get("/api/v1/namespaces/team/configmaps/support-memory")
                .body(())
                .unwrap();
            service.ready().await.unwrap().call(request).await.unwrap();
        }
        let exposition = metrics.encode();
        assert!(
            exposition.contains("reverie_api_requests_total{verb=\"get\",resource=\"configmaps\"} 2"),
            "{exposition}"
        );
    }

    #[test]
    fn requests_are_named_by_verb_and_resource() {
        let cases = [
            (
                Method::GET,
                "/api/v1/namespaces/team/configmaps/support-memory",
                None,
                ("get", "configmaps"),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/team/configmaps",
                Some("labelSelector=a"),
                ("list", "configmaps"),
            ),
            (
                Method::GET,
                "/apis/reverie.dev/v1alpha1/agents",
                Some("watch=true&resourceVersion=7"),
                ("watch", "agents"),
            ),
            (
                Method::PATCH,
                "/apis/reverie.dev/v1alpha1/namespaces/team/memoryproposals/p-1/status",
                Some("fieldManager=reverie"),
                ("patch", "memoryproposals"),
            ),
            (
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/team/events",
                None,
                ("create", "events"),
            ),
            (
                Method::DELETE,
                "/apis/batch/v1/namespaces/team/jobs/j-1",
                None,
                ("delete", "jobs"),
            ),
            (Method::GET, "/api/v1/namespaces/team", None, ("get", "namespaces")),
            (Method::GET, "/version", None, ("get", "other")),
        ];
        for (method, path, query, expected) in cases {
            assert_eq!(classify(&method, path, query), expected, "{method} {path}");
        }
    }
}
