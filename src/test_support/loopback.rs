//! A real HTTP server on 127.0.0.1 answering by method and path, for callers the test cannot
//! hand a client to: the `kubectl-dream` binary run as a child process, or code that takes a
//! URL (the GitOps forge). It runs on its own thread and runtime, so synchronous and async
//! tests use it alike, and lives until the test process exits.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::Seen;

/// What the server answers a request with: a status and a JSON body.
type Answer = dyn Fn(&Seen) -> (StatusCode, Value) + Send + Sync;

#[derive(Clone)]
struct Shared {
    answer: Arc<Answer>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// A loopback server answering every request with `answer`, recording each.
pub struct LoopbackServer {
    address: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl LoopbackServer {
    /// Starts serving on a free port; it is listening when this returns.
    pub fn start(answer: impl Fn(&Seen) -> (StatusCode, Value) + Send + Sync + 'static) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let address = listener.local_addr().expect("a bound address");
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let shared = Shared {
            answer: Arc::new(answer),
            seen: Arc::default(),
        };
        let seen = shared.seen.clone();
        let app = Router::new().fallback(respond).with_state(shared);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the loopback server");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                axum::serve(listener, app).await.expect("the loopback server runs");
            });
        });
        Self { address, seen }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Every request so far, in the order they arrived.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("the record is intact").clone()
    }
}

async fn respond(State(shared): State<Shared>, request: Request) -> Response {
    let request = Seen::read(request).await;
    let (status, body) = (shared.answer)(&request);
    shared.seen.lock().expect("the record is intact").push(request);
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("a response")
}
