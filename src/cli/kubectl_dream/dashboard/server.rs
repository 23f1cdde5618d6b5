//! The dashboard's HTTP server: routes, the guard on every request, and the handlers that read
//! with [`super::read`], render with [`super::views`] and decide with the plugin's one
//! decision write.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Path, Query, Request, State as Extract};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use jiff::Timestamp;
use maud::Markup;
use serde::Deserialize;

use super::guard::{CONTENT_SECURITY_POLICY, Guard};
use super::live::Changes;
use super::read::Cluster;
use super::views::{self, Chrome, Nav, Outcome};
use crate::api::MemoryProposal;
use crate::cli::kubectl_dream::decide::{Verdict, check_decidable, decision_error, write_decision};

const STYLESHEET: &str = include_str!("assets/dashboard.css");
const SCRIPT: &str = include_str!("assets/dashboard.js");

/// What every handler shares.
#[derive(Clone)]
pub struct State {
    pub cluster: Cluster,
    /// The caller, as the API server authenticated them.
    pub user: Arc<str>,
    pub guard: Guard,
    pub changes: Changes,
}

impl State {
    pub fn new(cluster: Cluster, user: String, bound: SocketAddr) -> Result<Self, String> {
        Ok(Self {
            changes: Changes::watch(&cluster),
            cluster,
            user: user.into(),
            guard: Guard::new(bound)?,
        })
    }

    /// A whole page around `body`, whose data was read after `seen` changes.
    fn page(&self, seen: u64, title: &str, nav: Nav, body: Markup) -> Markup {
        let chrome = Chrome {
            user: &self.user,
            scope: &self.cluster.scope,
            seen,
        };
        views::layout(&chrome, title, nav, body)
    }

    fn problem(&self, status: StatusCode, title: &str, message: &str) -> Response {
        let page = self.page(self.changes.seen(), title, Nav::Agents, views::problem(title, message));
        (status, page).into_response()
    }
}

/// The routes, behind the guard.
pub fn router(state: State) -> Router {
    Router::new()
        .route("/", get(agents))
        .route("/queue", get(queue))
        .route("/ns/{namespace}/proposals/{name}", get(proposal))
        .route(
            "/ns/{namespace}/proposals/{name}/decide",
            get(back_to_proposal).post(decide),
        )
        .route("/ns/{namespace}/agents/{name}", get(agent))
        .route("/events", get(events))
        .route(
            "/assets/dashboard.css",
            get(|| asset(STYLESHEET, "text/css; charset=utf-8")),
        )
        .route(
            "/assets/dashboard.js",
            get(|| asset(SCRIPT, "text/javascript; charset=utf-8")),
        )
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Serves until SIGINT or SIGTERM. Open event streams never end, so the server is dropped
/// rather than drained: nothing it holds needs writing out.
pub async fn serve(listener: tokio::net::TcpListener, state: State) -> std::io::Result<()> {
    tokio::select! {
        served = axum::serve(listener, router(state)) => served,
        () = crate::operator::termination_signal() => Ok(()),
    }
}

/// Refuses requests that name another host (DNS rebinding), and sets the security headers.
async fn guard(Extract(state): Extract<State>, request: Request, next: Next) -> Response {
    let mut response = if state.guard.host_allowed(request.headers()) {
        next.run(request).await
    } else {
        (
            StatusCode::MISDIRECTED_REQUEST,
            "this dashboard answers only to the address it printed\n",
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Not `no-referrer`: under it Chromium sends `Origin: null` on the page's own form posts,
    // which the write check must refuse. `same-origin` says nothing to other sites either.
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn asset(body: &'static str, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn not_found(Extract(state): Extract<State>) -> Response {
    state.problem(StatusCode::NOT_FOUND, "Not found", "There is no such page.")
}

async fn agents(Extract(state): Extract<State>) -> Response {
    let seen = state.changes.seen();
    match state.cluster.overview().await {
        Ok(overview) => {
            let body = views::agents_page(&overview, &state.cluster.scope, Timestamp::now());
            state.page(seen, "Agents", Nav::Agents, body).into_response()
        }
        Err(message) => state.problem(StatusCode::BAD_GATEWAY, "Agents", &message),
    }
}

#[derive(Deserialize)]
struct QueueQuery {
    session: Option<String>,
}

async fn queue(Extract(state): Extract<State>, Query(query): Query<QueueQuery>) -> Response {
    let session = query.session.as_deref().filter(|s| !s.is_empty());
    let seen = state.changes.seen();
    match state.cluster.queue(session).await {
        Ok(proposals) => {
            let body = views::queue_page(&proposals, session, &state.cluster.scope, Timestamp::now());
            state.page(seen, "Review queue", Nav::Queue, body).into_response()
        }
        Err(message) => state.problem(StatusCode::BAD_GATEWAY, "Review queue", &message),
    }
}

async fn proposal(Extract(state): Extract<State>, Path((namespace, name)): Path<(String, String)>) -> Response {
    render_proposal(&state, &namespace, &name, None, StatusCode::OK).await
}

async fn render_proposal(
    state: &State,
    namespace: &str,
    name: &str,
    outcome: Option<Outcome>,
    status: StatusCode,
) -> Response {
    if let Some(refused) = refusal(state, namespace, name) {
        return refused;
    }
    let seen = state.changes.seen();
    match state.cluster.proposal(namespace, name).await {
        Ok(Some(page)) => {
            let body = views::proposal_page(
                &page,
                state.guard.csrf_token(),
                &state.user,
                outcome.as_ref(),
                Timestamp::now(),
            );
            (status, state.page(seen, name, Nav::Queue, body)).into_response()
        }
        Ok(None) => state.problem(
            StatusCode::NOT_FOUND,
            name,
            &format!("memoryproposal {name} not found in namespace {namespace}"),
        ),
        Err(message) => state.problem(StatusCode::BAD_GATEWAY, name, &message),
    }
}

/// The answer to a path naming an object this dashboard does not show; `None` when it does
/// (in its namespaces, and spelled as Kubernetes names are: lower-case letters, digits, `-`
/// and `.`, so nothing decoded from a URL reaches a header or a request unchecked).
fn refusal(state: &State, namespace: &str, name: &str) -> Option<Response> {
    let valid = |s: &str| {
        !s.is_empty()
            && s.len() <= 253
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    if !valid(namespace) || !valid(name) {
        return Some(state.problem(StatusCode::NOT_FOUND, "Not found", "There is no such page."));
    }
    (!state.cluster.scope.contains(namespace)).then(|| not_in_scope(state, namespace))
}

fn not_in_scope(state: &State, namespace: &str) -> Response {
    state.problem(
        StatusCode::NOT_FOUND,
        "Not shown here",
        &format!(
            "namespace {namespace} is not in this dashboard's {}",
            state.cluster.scope.describe()
        ),
    )
}

async fn back_to_proposal(Extract(state): Extract<State>, Path((namespace, name)): Path<(String, String)>) -> Response {
    refusal(&state, &namespace, &name)
        .unwrap_or_else(|| Redirect::to(&views::proposal_href(&namespace, &name)).into_response())
}

#[derive(Deserialize)]
struct DecisionForm {
    #[serde(default)]
    csrf: String,
    digest: String,
    verdict: String,
    #[serde(default)]
    comment: String,
}

/// Approve or Reject: the same checks and the same write as `kubectl dream approve|reject
/// --digest`, with the digest the page showed, as the caller; the page shows the answer.
async fn decide(
    Extract(state): Extract<State>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<DecisionForm>,
) -> Response {
    if let Some(refused) = refusal(&state, &namespace, &name) {
        return refused;
    }
    if let Err(why) = state.guard.write_allowed(&headers, &form.csrf) {
        return state.problem(StatusCode::FORBIDDEN, "Refused", why);
    }
    let verdict = match form.verdict.as_str() {
        "approve" => Verdict::Approve,
        "reject" => Verdict::Reject,
        _ => return state.problem(StatusCode::BAD_REQUEST, "Refused", "the verdict is approve or reject"),
    };
    let api = state.cluster.namespaced::<MemoryProposal>(&namespace);
    let read = match api.get_opt(&name).await {
        Ok(Some(proposal)) => proposal,
        Ok(None) => return render_proposal(&state, &namespace, &name, None, StatusCode::NOT_FOUND).await,
        Err(e) => {
            let message = decision_error(&name, &namespace, &e);
            return state.problem(StatusCode::BAD_GATEWAY, &name, &message);
        }
    };
    let comment = Some(form.comment.as_str()).filter(|c| !c.trim().is_empty());
    let (outcome, status) = match check_decidable(&read, Some(&form.digest)) {
        Err(message) => (Outcome::Refused { message, code: None }, StatusCode::CONFLICT),
        Ok(digest) => match write_decision(&api, &read, verdict, &digest, &state.user, comment).await {
            Ok(_) => (
                Outcome::Written {
                    decision: verdict.past(),
                    reviewer: state.user.to_string(),
                    digest,
                },
                StatusCode::OK,
            ),
            Err(e) => {
                let code = match &e {
                    kube::Error::Api(status) => Some(status.code),
                    _ => None,
                };
                let status = code
                    .and_then(|c| StatusCode::from_u16(c).ok())
                    .unwrap_or(StatusCode::BAD_GATEWAY);
                (
                    Outcome::Refused {
                        message: decision_error(&name, &namespace, &e),
                        code,
                    },
                    status,
                )
            }
        },
    };
    render_proposal(&state, &namespace, &name, Some(outcome), status).await
}

async fn agent(Extract(state): Extract<State>, Path((namespace, name)): Path<(String, String)>) -> Response {
    if let Some(refused) = refusal(&state, &namespace, &name) {
        return refused;
    }
    let seen = state.changes.seen();
    match state.cluster.agent(&namespace, &name).await {
        Ok(Some(page)) => {
            let body = views::agent_page(&page, Timestamp::now());
            state.page(seen, &name, Nav::Agents, body).into_response()
        }
        Ok(None) => state.problem(
            StatusCode::NOT_FOUND,
            &name,
            &format!("agent {name} not found in namespace {namespace}"),
        ),
        Err(message) => state.problem(StatusCode::BAD_GATEWAY, &name, &message),
    }
}

async fn events(Extract(state): Extract<State>) -> impl IntoResponse {
    state.changes.stream()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::cli::kubectl_dream::dashboard::Scope;
    use crate::cli::kubectl_dream::dashboard::live::Health;

    /// A dashboard whose API server is unreachable (what these tests send must be answered
    /// before any API request; one would fail with 502), and the sender of its watch state.
    fn dashboard() -> (State, tokio::sync::watch::Sender<Health>) {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let (changes, watches) = Changes::manual();
        let state = State {
            cluster: Cluster::new(client, Scope::Namespace("team".into())),
            user: "rita".into(),
            guard: Guard::with_token("127.0.0.1:3100".parse().unwrap(), "tok".into()),
            changes,
        };
        (state, watches)
    }

    fn state() -> State {
        dashboard().0
    }

    fn request(method: &str, uri: &str, host: &str) -> http::request::Builder {
        Request::builder().method(method).uri(uri).header("host", host)
    }

    fn get(uri: &str, host: &str) -> Request<Body> {
        request("GET", uri, host).body(Body::empty()).unwrap()
    }

    async fn send(request: Request<Body>) -> Response {
        router(state()).oneshot(request).await.unwrap()
    }

    #[tokio::test]
    async fn another_host_is_refused_and_every_answer_carries_the_policy() {
        let response = send(get("/assets/dashboard.css", "rebound.example:3100")).await;
        assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST);
        assert_eq!(
            response.headers()[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY
        );

        let response = send(get("/assets/dashboard.js", "localhost:3100")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(response.headers()[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    }

    #[tokio::test]
    async fn a_write_without_this_dashboards_token_or_origin_is_refused() {
        let form = |csrf: &str| format!("csrf={csrf}&digest=sha256%3Ax&verdict=approve&comment=");
        let post = |body: String, origin: &'static str| {
            request("POST", "/ns/team/proposals/p/decide", "127.0.0.1:3100")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("origin", origin)
                .body(Body::from(body))
                .unwrap()
        };
        let response = send(post(form("forged"), "http://127.0.0.1:3100")).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let response = send(post(form("tok"), "http://evil.example")).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }

    /// The next server-sent event of `body`, as its text.
    async fn next_event(body: &mut Body) -> String {
        use http_body_util::BodyExt;
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), body.frame())
            .await
            .expect("an event within 10s")
            .expect("the stream is open")
            .unwrap();
        String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn the_event_stream_says_the_count_now_then_each_change_and_each_failing_watch() {
        let (state, watches) = dashboard();
        watches.send_modify(|h| h.changes = 4);
        let response = router(state).oneshot(get("/events", "127.0.0.1:3100")).await.unwrap();
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/event-stream");
        let mut body = response.into_body();
        // What a page rendered at an older count needs to know at once.
        assert_eq!(next_event(&mut body).await, "event: change\ndata: 4\n\n");
        assert_eq!(next_event(&mut body).await, "event: healthy\ndata: ok\n\n");
        watches.send_modify(|h| h.changes = 5);
        assert_eq!(next_event(&mut body).await, "event: change\ndata: 5\n\n");
        watches.send_modify(|h| {
            h.problems.insert("agents", "forbidden".into());
        });
        assert_eq!(
            next_event(&mut body).await,
            "event: problem\ndata: cannot watch agents: forbidden\n\n"
        );
    }

    #[tokio::test]
    async fn pages_outside_the_namespace_are_not_shown() {
        let response = send(get("/ns/other/proposals/p", "127.0.0.1:3100")).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let response = send(get("/nowhere", "127.0.0.1:3100")).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}
