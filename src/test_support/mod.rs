//! Stand-ins for an API server, written once for every test of this crate: the unit tests of
//! the controllers and the integration tests under `tests/`.
//!
//! - [`scripted`]: in-process, for a [`kube::Client`] built by the test. Every request must be
//!   the next one of a script (method and path) and gets the scripted reply.
//! - [`loopback`]: a real HTTP server on 127.0.0.1, for clients the test cannot hand a client to
//!   (the `kubectl-dream` binary, the GitOps forge calls). It answers by method and path.
//!
//! - [`collector`]: a running `reverie collect` process, for the ingest tests.
//!
//! Both stand-ins record what they were asked as [`Seen`] requests, so tests assert on the same thing.
//! The objects in replies come from `reverie_api::test_support`.
//!
//! Compiled for this crate's tests and with the `test-support` feature (integration tests get
//! it through the package's dev-dependency on itself); the operator never contains it.

pub mod collector;
pub mod loopback;
pub mod scripted;

use axum::http::{HeaderMap, Method, Request, StatusCode};
use hyper::body::Body;
use serde_json::{Value, json};

pub use loopback::LoopbackServer;
pub use scripted::{Expect, Handle, RECONCILE_TIMEOUT, condition, run_scripted, scripted_client, serve};

/// A request as a stand-in saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    /// The JSON body; `Null` when there is none.
    pub body: Value,
}

impl Seen {
    /// Reads `request` whole; a body that is not JSON fails the test.
    pub async fn read<B>(request: Request<B>) -> Seen
    where
        B: Body,
        B::Error: std::fmt::Debug,
    {
        let (parts, body) = request.into_parts();
        let bytes = http_body_util::BodyExt::collect(body)
            .await
            .expect("request body")
            .to_bytes();
        Seen {
            method: parts.method,
            path: parts.uri.path().to_string(),
            query: parts.uri.query().unwrap_or_default().to_string(),
            headers: parts.headers,
            body: if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).expect("JSON request body")
            },
        }
    }

    /// The value of header `name`, empty when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    /// Every value of header `name`, in order (`Impersonate-Group` repeats).
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }
}

/// The API server's `Status` object for a failed request.
pub fn failure(code: StatusCode, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code.as_u16()})
}

/// A `404 NotFound` reply.
pub fn not_found() -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        failure(StatusCode::NOT_FOUND, "NotFound", "not found"),
    )
}
