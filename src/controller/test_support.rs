//! A scripted fake API server for reconciler tests: every request a reconcile makes must match
//! the next expectation (method and path), gets the scripted reply, and is recorded. A request
//! the script did not expect fails the test; a missing one leaves the reconcile waiting and the
//! test fails on its timeout.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::Value;

use super::{Caches, Context, FixedClock};
use crate::metrics::Metrics;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// How long a test waits for a reconcile to finish (it normally takes microseconds).
pub const RECONCILE_TIMEOUT: Duration = Duration::from_secs(5);

/// The instant the test clock is stopped at.
pub const NOW: &str = "2026-11-20T12:00:00Z";

/// One request the reconcile is expected to make, and the reply it gets.
pub struct Expect {
    pub method: Method,
    pub path: String,
    pub status: StatusCode,
    pub reply: Value,
}

impl Expect {
    pub fn new(method: Method, path: impl Into<String>, status: StatusCode, reply: Value) -> Self {
        Self {
            method,
            path: path.into(),
            status,
            reply,
        }
    }

    pub fn get(path: impl Into<String>, reply: Value) -> Self {
        Self::new(Method::GET, path, StatusCode::OK, reply)
    }

    pub fn not_found(path: impl Into<String>) -> Self {
        Self::new(
            Method::GET,
            path,
            StatusCode::NOT_FOUND,
            serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
        )
    }

    /// The server-side apply of a status subresource on `object`; replies with the object
    /// carrying the applied status, as the API server does.
    pub fn patch_status(path: impl Into<String>, object: &impl serde::Serialize) -> Self {
        Self::new(
            Method::PATCH,
            path,
            StatusCode::OK,
            serde_json::to_value(object).expect("object serialises"),
        )
    }

    /// An event recorded in `namespace`.
    pub fn event(namespace: &str) -> Self {
        Self::new(
            Method::POST,
            format!("/apis/events.k8s.io/v1/namespaces/{namespace}/events"),
            StatusCode::CREATED,
            Value::Null,
        )
    }
}

/// A request as the fake server saw it.
#[derive(Debug)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub body: Value,
}

/// A context whose client talks to the scripted server and whose caches are empty, with the
/// clock stopped at [`NOW`].
pub fn test_context() -> (Arc<Context>, Handle) {
    test_context_with(Caches::new().0)
}

/// [`test_context`] whose caches hold `caches` (what the watches would have listed).
pub fn test_context_with(caches: Caches) -> (Arc<Context>, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let clock = Arc::new(FixedClock(NOW.parse().expect("valid timestamp")));
    (
        Arc::new(Context::new(client, caches, Arc::new(Metrics::default()), clock)),
        handle,
    )
}

/// Serves `script` in order and returns what was requested.
pub async fn serve(mut handle: Handle, script: Vec<Expect>) -> Vec<Seen> {
    let mut seen = Vec::new();
    for expect in script {
        let (request, send) = handle
            .next_request()
            .await
            .expect("the reconcile stopped before making every expected request");
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let query = request.uri().query().unwrap_or_default().to_string();
        let bytes = http_body_util::BodyExt::collect(request.into_body())
            .await
            .expect("request body")
            .to_bytes();
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON request body")
        };
        assert_eq!(
            (&method, path.as_str()),
            (&expect.method, expect.path.as_str()),
            "unexpected request (query {query})"
        );
        let mut reply = expect.reply;
        if method == Method::PATCH && path.ends_with("/status") && expect.status.is_success() {
            reply["status"] = body["status"].clone();
        } else if reply.is_null() {
            // Creations (events) are answered with what was sent, as the API server would.
            reply = body.clone();
        }
        let response = Response::builder()
            .status(expect.status)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&reply).expect("reply serialises")))
            .expect("response");
        send.send_response(response);
        seen.push(Seen {
            method,
            path,
            query,
            body,
        });
    }
    seen
}

/// Runs `reconcile` against the scripted server and returns the requests it made.
pub async fn run_scripted<F, T>(handle: Handle, script: Vec<Expect>, reconcile: F) -> (T, Vec<Seen>)
where
    F: std::future::Future<Output = T>,
{
    let server = tokio::spawn(serve(handle, script));
    let Ok(outcome) = tokio::time::timeout(RECONCILE_TIMEOUT, reconcile).await else {
        if server.is_finished()
            && let Err(panic) = server.await
        {
            std::panic::resume_unwind(panic.into_panic());
        }
        panic!("reconcile did not finish: it made a request the script does not serve");
    };
    let seen = tokio::time::timeout(RECONCILE_TIMEOUT, server)
        .await
        .expect("the script expected more requests than the reconcile made")
        .expect("fake server panicked");
    (outcome, seen)
}

/// The condition of `type_` in a status patch body.
pub fn condition<'a>(patch: &'a Value, type_: &str) -> &'a Value {
    patch["status"]["conditions"]
        .as_array()
        .and_then(|conditions| conditions.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {patch}"))
}

/// Asserts `seen` is the server-side apply of a status at `path`, as reverie's field manager.
pub fn assert_status_patch(seen: &Seen, path: &str) {
    assert_eq!(seen.method, Method::PATCH);
    assert_eq!(seen.path, path);
    assert!(
        seen.query.contains("fieldManager=reverie") && seen.query.contains("force=true"),
        "{}",
        seen.query
    );
}
