//! `reverie operator` without a reachable cluster fails fast with one clear line.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the operator may take to give up; a process still running then is retrying
/// forever, which is the bug these tests guard against.
const GIVE_UP_WITHIN: Duration = Duration::from_secs(30);

struct Outcome {
    code: Option<i32>,
    stderr: String,
}

fn run_operator(kubeconfig: &str, home: &std::path::Path) -> Outcome {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reverie"))
        .args(["operator", "--listen", "127.0.0.1:0"])
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("reverie runs");
    let deadline = Instant::now() + GIVE_UP_WITHIN;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("reverie operator still running after {GIVE_UP_WITHIN:?}: it must give up with an error");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("piped")
        .read_to_string(&mut stderr)
        .expect("stderr");
    Outcome {
        code: status.code(),
        stderr,
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("reverie-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn no_kubeconfig_is_one_line_and_exit_code_1() {
    let home = temp_dir("nokube");
    let outcome = run_operator(home.join("missing-kubeconfig").to_str().unwrap(), &home);
    let stderr = outcome.stderr;
    assert_eq!(outcome.code, Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: no Kubernetes configuration found"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

#[test]
fn unreachable_server_is_one_line_naming_the_server() {
    let home = temp_dir("unreachable");
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    let kubeconfig = home.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"https://127.0.0.1:1\"}\n\
         contexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\nusers:\n- name: u\n  user: {token: t}\n",
    )
    .unwrap();
    let outcome = run_operator(kubeconfig.to_str().unwrap(), &home);
    let stderr = outcome.stderr;
    assert_eq!(outcome.code, Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot reach the Kubernetes API server at https://127.0.0.1:1"),
        "{stderr}"
    );
}
