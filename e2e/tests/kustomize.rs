//! The install manifests in `config/` against a real API server (server-side dry run, so the
//! cluster is left as it was): `kubectl apply -k config/default` is accepted, and so are the
//! samples once the CRDs are installed.
//!
//! config/default installs into `reverie-system`, and a server-side dry run of objects in a
//! namespace that does not exist yet fails (the Namespace is not really created). So that the
//! test neither needs nor touches a real `reverie-system` on a shared cluster, it dry-runs
//! config/default through a one-line overlay that only sets a throwaway namespace.

use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output};

use reverie_e2e::{TestNamespace, client, install_crds, repo_root};

fn kubectl(args: &[&str], dir: &Path) -> Output {
    let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_string());
    Command::new(&kubectl)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {kubectl} (e2e/cluster/install-deps.sh installs it): {e}"))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `to` as a path relative to the directory `from` (kustomize refuses absolute resource paths).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let ups = from.components().filter(|c| matches!(c, Component::Normal(_))).count();
    let mut path: PathBuf = std::iter::repeat_n("..", ups).collect();
    path.extend(to.components().filter(|c| matches!(c, Component::Normal(_))));
    path
}

/// A kustomization that is config/default with only the namespace changed.
fn overlay(namespace: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("reverie-kustomize-{namespace}"));
    std::fs::create_dir_all(&dir).unwrap();
    let dir = dir.canonicalize().unwrap();
    let base = relative(&dir, &repo_root().canonicalize().unwrap().join("config/default"));
    std::fs::write(
        dir.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: {namespace}\nresources:\n  - {}\n",
            base.display()
        ),
    )
    .unwrap();
    dir
}

#[tokio::test]
async fn config_default_and_the_samples_are_accepted_by_the_api_server() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "kustomize").await.unwrap();
    let dir = overlay(&ns.name);
    // Plain `kubectl apply`, with kubectl's schema validation on: the CRDs' CEL rules included.
    let args = ["apply", "-k", ".", "--dry-run=server"];
    let applied = kubectl(&args, &dir);
    let out = text(&applied);
    assert!(
        applied.status.success(),
        "kubectl apply -k config/default failed:\n{out}"
    );
    for object in [
        "customresourcedefinition.apiextensions.k8s.io/agents.reverie.dev",
        "customresourcedefinition.apiextensions.k8s.io/dreamschedules.reverie.dev",
        "customresourcedefinition.apiextensions.k8s.io/memoryproposals.reverie.dev",
        "serviceaccount/reverie-operator",
        "clusterrole.rbac.authorization.k8s.io/reverie-operator",
        "clusterrole.rbac.authorization.k8s.io/reverie-reviewer",
        "clusterrole.rbac.authorization.k8s.io/reverie-viewer",
        "clusterrolebinding.rbac.authorization.k8s.io/reverie-operator",
        "role.rbac.authorization.k8s.io/reverie-operator-leader-election",
        "rolebinding.rbac.authorization.k8s.io/reverie-operator-leader-election",
        "deployment.apps/reverie-operator",
        "service/reverie-operator-metrics",
        "validatingadmissionpolicy.admissionregistration.k8s.io/reverie-approval",
        "validatingadmissionpolicybinding.admissionregistration.k8s.io/reverie-approval",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("{object} ")) && l.ends_with("(server dry run)")),
            "{object} missing from:\n{out}"
        );
    }

    // The samples, once the CRDs are served.
    install_crds(&client).await.unwrap();
    let samples = kubectl(
        &["apply", "-f", "config/samples", "-n", &ns.name, "--dry-run=server"],
        &repo_root(),
    );
    let out = text(&samples);
    assert!(
        samples.status.success(),
        "kubectl apply -f config/samples failed:\n{out}"
    );
    for object in [
        "persistentvolumeclaim/support-sessions",
        "agent.reverie.dev/support",
        "dreamschedule.reverie.dev/nightly",
        "memoryproposal.reverie.dev/support-nightly-pending",
        "memoryproposal.reverie.dev/support-nightly-approved",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("{object} ")) && l.ends_with("(server dry run)")),
            "{object} missing from:\n{out}"
        );
    }

    std::fs::remove_dir_all(&dir).unwrap();
    ns.delete().await.unwrap();
}
