//! The in-process scripted API server: a [`kube::Client`] over a `tower_test` mock whose
//! requests must match a script in order (method and path), get the scripted reply, and are
//! recorded. A request the script did not expect fails the test; a missing one leaves the
//! caller waiting and the test fails on its timeout.

use std::time::Duration;

use axum::http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::Value;

use super::{Seen, failure};

/// The test's end of the mock: where the client's requests arrive.
pub type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// How long a test waits for a reconcile to finish (it normally takes microseconds).
pub const RECONCILE_TIMEOUT: Duration = Duration::from_secs(5);

/// A client whose requests arrive at the returned handle (serve it with [`serve`]).
pub fn scripted_client() -> (Client, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

/// One request the caller is expected to make, and the reply it gets.
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
            failure(StatusCode::NOT_FOUND, "NotFound", "not found"),
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
            reverie_api::test_support::paths::events(namespace),
            StatusCode::CREATED,
            Value::Null,
        )
    }
}

/// Serves `script` in order and returns what was requested.
pub async fn serve(mut handle: Handle, script: Vec<Expect>) -> Vec<Seen> {
    let mut seen = Vec::new();
    for expect in script {
        let (request, send) = handle
            .next_request()
            .await
            .expect("the reconcile stopped before making every expected request");
        let request = Seen::read(request).await;
        assert_eq!(
            (&request.method, request.path.as_str()),
            (&expect.method, expect.path.as_str()),
            "unexpected request (query {})",
            request.query
        );
        let mut reply = expect.reply;
        if request.method == Method::PATCH && request.path.ends_with("/status") && expect.status.is_success() {
            reply["status"] = request.body["status"].clone();
        } else if reply.is_null() {
            // Creations (events) are answered with what was sent, as the API server would.
            reply = request.body.clone();
        }
        let response = Response::builder()
            .status(expect.status)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&reply).expect("reply serialises")))
            .expect("response");
        send.send_response(response);
        seen.push(request);
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
