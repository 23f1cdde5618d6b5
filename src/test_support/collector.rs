//! A running `reverie collect` process for tests: started on ephemeral ports (the addresses it
//! bound are read from its start-up log line), waited on by the files it writes, and stopped
//! with SIGTERM as Kubernetes stops a pod.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a collector may take to start, write or stop.
pub const COLLECTOR_WAIT: Duration = Duration::from_secs(60);

pub struct CollectorProcess {
    child: Child,
    /// The OTLP/HTTP address (`POST /v1/traces`).
    pub otlp: SocketAddr,
    /// /healthz, /readyz, /metrics.
    pub admin: SocketAddr,
    log: mpsc::Receiver<String>,
}

impl CollectorProcess {
    /// Starts `bin collect --sessions-root ROOT` with `args`, on 127.0.0.1 ports it chooses.
    pub fn start(bin: &Path, root: &Path, args: &[&str]) -> CollectorProcess {
        let mut child = Command::new(bin)
            .args([
                "--log-format",
                "json",
                "collect",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .arg("--sessions-root")
            .arg(root)
            .args(args)
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} collect: {e}", bin.display()));
        // Every log line is read, so the pipe never fills; the start-up line names the ports.
        let (lines, log) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr is piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    return;
                }
            }
        });
        let deadline = Instant::now() + COLLECTOR_WAIT;
        loop {
            let Ok(line) = log.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
                let status = child.try_wait();
                let _ = child.kill();
                let _ = child.wait();
                panic!("reverie collect did not report its addresses (exit status {status:?})");
            };
            let Ok(event) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            // The JSON log lines carry an event's fields at the top level.
            if let (Some(otlp), Some(admin)) = (event["otlp"].as_str(), event["admin"].as_str()) {
                return CollectorProcess {
                    child,
                    otlp: otlp.parse().expect("an address"),
                    admin: admin.parse().expect("an address"),
                    log,
                };
            }
        }
    }

    /// The log lines printed so far (for failure messages).
    pub fn log_lines(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM could not be sent");
        let deadline = Instant::now() + COLLECTOR_WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("the child can be waited on") {
                return status;
            }
            assert!(Instant::now() < deadline, "reverie collect did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for CollectorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The session files under `dir` (sorted), once there are at least `count`, waiting up to
/// [`COLLECTOR_WAIT`].
pub fn wait_for_session_files(dir: &Path, count: usize) -> Vec<PathBuf> {
    let deadline = Instant::now() + COLLECTOR_WAIT;
    loop {
        let files = session_files(dir);
        if files.len() >= count {
            return files;
        }
        assert!(
            Instant::now() < deadline,
            "{count} sessions were not written to {} in time: {files:?}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The session files under `dir`, sorted (none when it does not exist yet).
pub fn session_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    files.retain(|f| f.to_string_lossy().ends_with(crate::collect::writer::SUFFIX));
    files.sort();
    files
}
