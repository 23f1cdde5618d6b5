//! GitOps output: a proposal is pushed to a real (local, bare) Git repository over `file://`
//! and read back with the `git` program; the pull request is opened against a local mock forge
//! (the crate's loopback server) that records the request, for GitHub, GitLab and Gitea;
//! failures name what failed.

use std::path::PathBuf;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use reverie::api::MemoryProposal;
use reverie::api::dream_schedule::{Forge, ForgeType, GitAuthor, GitOutput};
use reverie::gitops::{self, CONTENT_DIGEST_ANNOTATION, Credentials, GitOpsError, GitTarget, Token, manifest};
use reverie::test_support::{LoopbackServer, Seen};
use reverie_api::test_support::git::{bare_repository, git, seed_main};

const TOKEN: &str = "s3cr3t-t0ken";

/// A bare repository with one commit on `main`, and its `file://` URL.
struct Remote {
    _dir: tempfile::TempDir,
    bare: PathBuf,
    work: PathBuf,
}

impl Remote {
    fn new(seeded: bool) -> Remote {
        let dir = tempfile::tempdir().unwrap();
        let bare = bare_repository(dir.path());
        if seeded {
            seed_main(&bare);
        }
        let work = dir.path().join("work");
        std::fs::create_dir(&work).unwrap();
        Remote { _dir: dir, bare, work }
    }

    fn url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    fn target(&self, forge: Option<Forge>, token: Option<&str>) -> GitTarget {
        GitTarget {
            output: GitOutput {
                repository: self.url(),
                branch: "main".into(),
                path: "memory-proposals".into(),
                auth_secret_ref: None,
                forge,
                author: Some(GitAuthor {
                    name: "Dreamer".into(),
                    email: "dreamer@example.com".into(),
                }),
            },
            credentials: Credentials {
                token: token.and_then(Token::new),
                ..Credentials::default()
            },
            work_dir: self.work.clone(),
        }
    }

    fn git(&self, args: &[&str]) -> String {
        git(&self.bare, args)
    }

    fn branches(&self) -> String {
        self.git(&["for-each-ref", "--format=%(refname)", "refs/heads"])
    }
}

/// A proposal as the dream pass builds it: owned by the Agent, named after the Job.
fn proposal() -> MemoryProposal {
    serde_json::from_value(json!({
        "apiVersion": "reverie.dev/v1alpha1", "kind": "MemoryProposal",
        "metadata": {"name": "nightly-support-29000000", "namespace": "team",
            "labels": {"reverie.dev/schedule": "nightly", "reverie.dev/job": "nightly-support-29000000"},
            "ownerReferences": [{"apiVersion": "reverie.dev/v1alpha1", "kind": "Agent", "name": "support",
                "uid": "uid-support", "controller": true}]},
        "spec": {
            "agentRef": {"name": "support"}, "baseRevision": 3, "baseDigest": "sha256:base",
            "summary": "Ask for the billing id before looking up invoices.\nSecond line.",
            "changes": [
                {"op": "Add", "id": "l-billing", "section": "lessons",
                 "after": "Ask for the billing id before looking up invoices.",
                 "evidence": {"count": 5, "sessions": ["s1", "s2", "s3"]}, "rationale": "recurring mistake"},
                {"op": "Archive", "id": "l-old", "section": "lessons", "before": "Use the v1 API."}
            ],
            "stats": {"sessionsReviewed": 40, "linesSkipped": 0, "tokensIn": 0, "tokensOut": 0, "reflector": "builtin"},
            "source": {"dreamSchedule": "nightly", "job": "nightly-support-29000000"}
        }
    }))
    .unwrap()
}

const BRANCH: &str = "reverie/team/nightly-support-29000000";
const FILE: &str = "memory-proposals/team/nightly-support-29000000.yaml";

#[tokio::test]
async fn the_manifest_is_pushed_to_its_own_branch_and_reads_back_exactly() {
    let remote = Remote::new(true);
    let proposal = proposal();
    let published = gitops::publish(&remote.target(None, None), &proposal).await.unwrap();
    assert_eq!(published.branch, BRANCH);
    assert_eq!(published.file, FILE);
    assert!(published.pushed);
    assert_eq!(published.pull_request, None);
    assert!(
        published.message().contains("no pull request"),
        "{}",
        published.message()
    );

    let text = remote.git(&["show", &format!("{BRANCH}:{FILE}")]);
    let expected = manifest::render(&manifest::manifest(&proposal)).unwrap();
    assert_eq!(format!("{text}\n"), expected);
    let written: Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(written["apiVersion"], "reverie.dev/v1alpha1");
    assert_eq!(written["kind"], "MemoryProposal");
    assert_eq!(written["metadata"]["namespace"], "team");
    assert_eq!(written["metadata"]["labels"]["reverie.dev/schedule"], "nightly");
    assert!(written["metadata"].get("ownerReferences").is_none());
    assert!(written.get("status").is_none());
    let digest = proposal.spec.content_digest();
    assert_eq!(
        written["metadata"]["annotations"][CONTENT_DIGEST_ANNOTATION],
        digest.as_str()
    );
    let back: MemoryProposal = serde_yaml::from_str(&text).unwrap();
    assert_eq!(back.spec, proposal.spec, "the spec in Git is the one proposed");

    // One commit on top of main, by the configured author, titled with the summary's first line.
    assert_eq!(
        remote.git(&["rev-parse", &format!("{BRANCH}^")]),
        remote.git(&["rev-parse", "main"])
    );
    assert_eq!(
        remote.git(&["log", "-1", "--format=%s|%an <%ae>|%cn", BRANCH]),
        "Ask for the billing id before looking up invoices.|Dreamer <dreamer@example.com>|Dreamer"
    );
    assert!(remote.git(&["log", "-1", "--format=%b", BRANCH]).contains(&digest));
    assert_eq!(
        remote.git(&["diff", "--name-only", "main", BRANCH]),
        FILE,
        "only the manifest changes"
    );
    assert_eq!(remote.git(&["rev-parse", "main"]), remote.git(&["rev-parse", "main"]));
    assert_eq!(
        std::fs::read_dir(&remote.work).unwrap().count(),
        0,
        "the temporary clone is removed"
    );
}

#[tokio::test]
async fn a_retried_pass_leaves_an_existing_branch_alone() {
    let remote = Remote::new(true);
    let first = gitops::publish(&remote.target(None, None), &proposal()).await.unwrap();
    assert!(first.pushed);
    let head = remote.git(&["rev-parse", BRANCH]);
    let mut retried = proposal();
    retried.spec.summary = "A different pass result".into();
    let second = gitops::publish(&remote.target(None, None), &retried).await.unwrap();
    assert!(!second.pushed);
    assert!(second.message().contains("already existed"), "{}", second.message());
    assert_eq!(remote.git(&["rev-parse", BRANCH]), head);
}

#[tokio::test]
async fn a_missing_base_branch_is_named() {
    let remote = Remote::new(false);
    let error = gitops::publish(&remote.target(None, None), &proposal())
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(error, GitOpsError::Git { ref step, .. } if step == "clone"),
        "{text}"
    );
    assert!(text.contains(&remote.url()), "{text}");
    assert!(text.contains("base branch \"main\""), "{text}");
    assert_eq!(remote.branches(), "");
}

#[tokio::test]
async fn a_forge_without_a_token_fails_before_pushing() {
    let remote = Remote::new(true);
    let forge = Forge {
        type_: ForgeType::GitHub,
        api_url: Some("http://127.0.0.1:9".into()),
        project: Some("acme/agents".into()),
    };
    let error = gitops::publish(&remote.target(Some(forge), None), &proposal())
        .await
        .unwrap_err();
    assert!(matches!(error, GitOpsError::Invalid(_)), "{error}");
    assert!(error.to_string().contains("REVERIE_GIT_TOKEN"), "{error}");
    assert_eq!(remote.branches(), "refs/heads/main");
}

// ---- the mock forge ----

/// A forge that answers every request with `status` and `answer`: the crate's loopback server.
fn mock_forge(status: StatusCode, answer: Value) -> LoopbackServer {
    LoopbackServer::start(move |_| (status, answer.clone()))
}

fn header<'a>(request: &'a Seen, name: &str) -> &'a str {
    request
        .headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

/// The review diff reaches the pull request's body.
fn assert_review_body(body: &str) {
    let digest = proposal().spec.content_digest();
    assert!(body.contains(&format!("digest: \"{digest}\"")), "{body}");
    assert!(body.contains(FILE), "{body}");
    assert!(
        body.contains("+ [lessons] Ask for the billing id before looking up invoices."),
        "{body}"
    );
    assert!(body.contains("- [lessons] l-old: Use the v1 API."), "{body}");
    assert!(body.contains("5 sessions (e.g. s1, s2, s3)"), "{body}");
}

#[tokio::test]
async fn github_gets_one_pull_request_with_the_review_diff() {
    let remote = Remote::new(true);
    let forge = mock_forge(
        StatusCode::CREATED,
        json!({"number": 7, "html_url": "https://github.example/acme/agents/pull/7"}),
    );
    let settings = Forge {
        type_: ForgeType::GitHub,
        api_url: Some(format!("{}/api/v3/", forge.url())),
        project: Some("acme/agents".into()),
    };
    let published = gitops::publish(&remote.target(Some(settings), Some(TOKEN)), &proposal())
        .await
        .unwrap();
    let opened = published.pull_request.clone().unwrap();
    assert_eq!(opened.url.as_deref(), Some("https://github.example/acme/agents/pull/7"));
    assert!(
        published
            .message()
            .contains("opened pull request https://github.example/acme/agents/pull/7")
    );

    let received = forge.requests();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.method, Method::POST);
    assert_eq!(request.path, "/api/v3/repos/acme/agents/pulls");
    assert_eq!(header(request, "authorization"), format!("Bearer {TOKEN}"));
    assert_eq!(header(request, "accept"), "application/vnd.github+json");
    assert_eq!(header(request, "x-github-api-version"), "2022-11-28");
    assert_eq!(header(request, "content-type"), "application/json");
    assert!(header(request, "user-agent").starts_with("reverie/"));
    assert_eq!(request.body["head"], BRANCH);
    assert_eq!(request.body["base"], "main");
    assert_eq!(
        request.body["title"],
        "Memory of support: Ask for the billing id before looking up invoices."
    );
    assert_review_body(request.body["body"].as_str().unwrap());
    assert!(remote.branches().contains(BRANCH), "pushed before the pull request");
}

#[tokio::test]
async fn gitlab_gets_one_merge_request_on_the_encoded_project() {
    let remote = Remote::new(true);
    let forge = mock_forge(
        StatusCode::CREATED,
        json!({"iid": 3, "web_url": "https://gitlab.example/platform/ai/agents/-/merge_requests/3"}),
    );
    let settings = Forge {
        type_: ForgeType::GitLab,
        api_url: Some(format!("{}/api/v4", forge.url())),
        project: Some("platform/ai/agents".into()),
    };
    let published = gitops::publish(&remote.target(Some(settings), Some(TOKEN)), &proposal())
        .await
        .unwrap();
    assert_eq!(
        published.pull_request.unwrap().url.as_deref(),
        Some("https://gitlab.example/platform/ai/agents/-/merge_requests/3")
    );
    let received = forge.requests();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.method, Method::POST);
    assert_eq!(request.path, "/api/v4/projects/platform%2Fai%2Fagents/merge_requests");
    assert_eq!(header(request, "private-token"), TOKEN);
    assert!(request.headers.get("authorization").is_none());
    assert_eq!(request.body["source_branch"], BRANCH);
    assert_eq!(request.body["target_branch"], "main");
    assert_eq!(request.body["remove_source_branch"], true);
    assert!(
        request.body["title"]
            .as_str()
            .unwrap()
            .starts_with("Memory of support: ")
    );
    assert_review_body(request.body["description"].as_str().unwrap());
}

#[tokio::test]
async fn gitea_gets_one_pull_request_with_token_auth() {
    let remote = Remote::new(true);
    let forge = mock_forge(
        StatusCode::CREATED,
        json!({"number": 12, "html_url": "https://gitea.example/acme/agents/pulls/12"}),
    );
    let settings = Forge {
        type_: ForgeType::Gitea,
        api_url: Some(format!("{}/api/v1", forge.url())),
        project: Some("acme/agents".into()),
    };
    let published = gitops::publish(&remote.target(Some(settings), Some(TOKEN)), &proposal())
        .await
        .unwrap();
    assert_eq!(
        published.pull_request.unwrap().url.as_deref(),
        Some("https://gitea.example/acme/agents/pulls/12")
    );
    let received = forge.requests();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.method, Method::POST);
    assert_eq!(request.path, "/api/v1/repos/acme/agents/pulls");
    assert_eq!(header(request, "authorization"), format!("token {TOKEN}"));
    assert_eq!(request.body["head"], BRANCH);
    assert_eq!(request.body["base"], "main");
    assert_review_body(request.body["body"].as_str().unwrap());
}

#[tokio::test]
async fn a_forge_error_names_the_forge_the_status_and_the_pushed_branch() {
    let remote = Remote::new(true);
    let forge = mock_forge(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({"message": "Validation Failed", "errors": [{"message": "base branch protected"}]}),
    );
    let settings = Forge {
        type_: ForgeType::GitHub,
        api_url: Some(forge.url()),
        project: Some("acme/agents".into()),
    };
    let error = gitops::publish(&remote.target(Some(settings.clone()), Some(TOKEN)), &proposal())
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, GitOpsError::ForgeStatus { status: 422, .. }), "{text}");
    for part in ["GitHub", "422", BRANCH, "Validation Failed", "/repos/acme/agents/pulls"] {
        assert!(text.contains(part), "{part:?} missing in: {text}");
    }
    assert!(!text.contains(TOKEN), "{text}");
    assert!(remote.branches().contains(BRANCH), "the branch stays pushed");

    // The retried pod finds its branch, and a 422 there means the pull request is already open.
    let retried = gitops::publish(&remote.target(Some(settings), Some(TOKEN)), &proposal())
        .await
        .unwrap();
    assert!(!retried.pushed);
    assert!(retried.pull_request.unwrap().already_open);
    assert_eq!(forge.requests().len(), 2);
}

#[tokio::test]
async fn an_unreachable_forge_names_the_forge_and_the_branch() {
    let remote = Remote::new(true);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let settings = Forge {
        type_: ForgeType::Gitea,
        api_url: Some(format!("http://{addr}/api/v1")),
        project: Some("acme/agents".into()),
    };
    let error = gitops::publish(&remote.target(Some(settings), Some(TOKEN)), &proposal())
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, GitOpsError::ForgeUnreachable { .. }), "{text}");
    assert!(text.contains("Gitea") && text.contains(BRANCH), "{text}");
}
