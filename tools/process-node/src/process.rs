//! Turning a container into a local process: which executable runs (the `reverie` mapping),
//! the mount-namespace script that puts the volumes in place, spawning, log capture and
//! signalling the process group, and the termination message a container leaves behind.

use std::collections::VecDeque;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use k8s_openapi::api::core::v1::Container;
use tokio::process::{Child, Command};

use super::Tools;
use super::env::expand;
use super::volumes::Mount;

/// Where the mount script mounts a private tmpfs, so that service-account directories can
/// be created without touching (or seeing) whatever the host has there.
const SECRETS_ROOT: &str = "/var/run/secrets";
/// How much of a failed container's stderr goes into its termination message.
const TAIL_BYTES: usize = 2048;
/// `terminationMessagePath` when the container does not set one (the API default).
pub const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// How much of the termination-message file is read (the kubelet's limit per container).
pub const MAX_TERMINATION_MESSAGE: usize = 4096;

pub fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Would `program` be found, either as a path or on `path` (a `PATH` value)?
pub fn program_exists(program: &str, path: &str) -> bool {
    if program.contains('/') {
        return is_executable(Path::new(program));
    }
    path.split(':')
        .filter(|d| !d.is_empty())
        .any(|d| is_executable(&Path::new(d).join(program)))
}

/// The argv a container runs, with `$(VAR)` expanded against its environment.
///
/// - `command` set: `command + args`; empty: the image entrypoint, which process-node only
///   knows for reverie images (`reverie`); other images are assumed to have no entrypoint,
///   so `args` alone is run.
/// - An executable named `reverie` (any directory), or for a reverie image (image name
///   containing "reverie") an executable that does not exist on the host, is replaced by
///   `reverie_bin`. `kubectl-dream` resolves next to `reverie_bin` the same way.
pub fn resolve_argv(
    container: &Container,
    env: &[(String, String)],
    reverie_bin: Option<&Path>,
) -> Result<Vec<String>, String> {
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let command: Vec<String> = container.command.iter().flatten().map(|s| expand(s, lookup)).collect();
    let args: Vec<String> = container.args.iter().flatten().map(|s| expand(s, lookup)).collect();
    let image = container.image.clone().unwrap_or_default();
    let reverie_image = image.to_ascii_lowercase().contains("reverie");
    let mut argv = if !command.is_empty() {
        command.into_iter().chain(args).collect::<Vec<_>>()
    } else if reverie_image {
        std::iter::once("reverie".to_string()).chain(args).collect()
    } else if !args.is_empty() {
        args
    } else {
        return Err(format!(
            "container {:?} has no command and process-node cannot know the entrypoint of \
             image {image:?}; set `command`",
            container.name
        ));
    };
    let path = lookup("PATH").unwrap_or_default();
    let first = argv[0].clone();
    let base = Path::new(&first)
        .file_name()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_default();
    let need_reverie = |what: &str| -> Result<PathBuf, String> {
        reverie_bin.map(Path::to_path_buf).ok_or_else(|| {
            format!(
                "container {:?} runs {what} but process-node has no --reverie-bin / REVERIE_BIN",
                container.name
            )
        })
    };
    if base == "reverie" || (reverie_image && !program_exists(&first, &path) && base != "kubectl-dream") {
        argv[0] = need_reverie("reverie")?.to_string_lossy().into_owned();
    } else if base == "kubectl-dream" && !program_exists(&first, &path) {
        let bin = need_reverie("kubectl-dream")?;
        argv[0] = bin.with_file_name("kubectl-dream").to_string_lossy().into_owned();
    }
    Ok(argv)
}

/// Quote for `sh`.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Where the host's root is bound inside a container's mount namespace when a mount would hide
/// another mount's source.
const HOST_ROOT: &str = "/run/process-node/host";

fn under(path: &str, root: &str) -> bool {
    let path = path.trim_end_matches('/');
    path == root || path.starts_with(&format!("{root}/"))
}

/// The script run by `sh -c` inside the new mount namespace before `exec "$@"`.
/// `mounts` pairs each mount with whether its source is a regular file.
pub fn mount_script(mounts: &[(Mount, bool)], working_dir: &str, tools: &Tools) -> String {
    let mkdir = sh_quote(&tools.mkdir.to_string_lossy());
    let mount = sh_quote(&tools.mount.to_string_lossy());
    let mut s = String::from("set -e\n");
    let secret_targets = mounts
        .iter()
        .any(|(m, _)| under(&m.target, SECRETS_ROOT) || under(&m.target, "/run/secrets"));
    if secret_targets {
        let root = sh_quote(SECRETS_ROOT);
        s += &format!("{mkdir} -p {root}\n{mount} -t tmpfs -o mode=0755 process-node {root}\n");
    }
    // A mount can hide the source of a later one (an emptyDir at /tmp over a hostPath under
    // /tmp). The kubelet resolves sources on the host; here the host's root is bound once,
    // before any mount, and sources are read through it.
    let shadowed = mounts.iter().any(|(m, _)| {
        mounts
            .iter()
            .any(|(other, _)| under(&other.source.to_string_lossy(), &m.target))
    });
    if shadowed {
        let root = sh_quote(HOST_ROOT);
        s += &format!("{mkdir} -p {root}\n{mount} --rbind / {root}\n");
    }
    for (m, is_file) in mounts {
        let target = sh_quote(&m.target);
        let source = match shadowed {
            true => sh_quote(&format!("{HOST_ROOT}{}", m.source.to_string_lossy())),
            false => sh_quote(&m.source.to_string_lossy()),
        };
        if *is_file {
            let parent = Path::new(&m.target)
                .parent()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|| "/".into());
            s += &format!("{mkdir} -p {}\n[ -e {target} ] || : > {target}\n", sh_quote(&parent));
        } else {
            s += &format!("{mkdir} -p {target}\n");
        }
        s += &format!("{mount} --bind {source} {target}\n");
        if m.read_only {
            s += &format!("{mount} -o remount,bind,ro {target}\n");
        }
    }
    let wd = sh_quote(if working_dir.is_empty() { "/" } else { working_dir });
    s += &format!("{mkdir} -p {wd}\ncd {wd}\nexec \"$@\"\n");
    s
}

/// A started container process.
pub struct Started {
    pub child: Child,
    pub pgid: i32,
    pub stderr: std::io::PipeReader,
    pub log: std::fs::File,
}

/// Start `argv` in a private mount namespace prepared by `script`, with exactly `env`,
/// stdout appended to `log_path` and stderr piped (see [`wait`]).
pub fn spawn(
    tools: &Tools,
    script: &str,
    argv: &[String],
    env: &[(String, String)],
    log_path: &Path,
    banner: &str,
) -> Result<Started, String> {
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(|e| format!("opening log {}: {e}", log_path.display()))?;
    let _ = writeln!(log, "{banner}");
    let stdout = log
        .try_clone()
        .map_err(|e| format!("opening log {}: {e}", log_path.display()))?;
    let (stderr, stderr_writer) = std::io::pipe().map_err(|e| format!("creating the stderr pipe: {e}"))?;
    let mut cmd = Command::new(&tools.unshare);
    cmd.args(["--mount", "--propagation", "private", "--"])
        .arg(&tools.sh)
        .arg("-c")
        .arg(script)
        .arg("process-node-container")
        .args(argv)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr_writer))
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2),
    // which is async-signal-safe. PDEATHSIG makes the container process die with
    // process-node even when process-node itself is SIGKILLed.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("starting {}: {e}", tools.unshare.display()))?;
    // Drop our copy of the pipe's write end, so the reader sees EOF when the container exits.
    drop(cmd);
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .ok_or("the process exited before it could be tracked")?;
    Ok(Started {
        child,
        pgid,
        stderr,
        log,
    })
}

/// How a container process ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Exit {
    pub code: i32,
    pub signal: Option<i32>,
    /// The end of its stderr (lossy UTF-8).
    pub stderr_tail: String,
    /// The start of its termination-message file (see [`read_termination_file`]); filled in
    /// by the caller, which knows where the file is.
    pub termination_file: Vec<u8>,
}

/// Wait for a started container: copy stderr to the log while keeping its tail, then kill
/// whatever is left of its process group (a container's processes die with it).
pub async fn wait(started: Started) -> Exit {
    let Started {
        mut child,
        pgid,
        stderr,
        mut log,
    } = started;
    let copier = tokio::task::spawn_blocking(move || {
        let mut stderr = stderr;
        let mut tail: VecDeque<u8> = VecDeque::with_capacity(TAIL_BYTES);
        let mut buf = [0u8; 8192];
        loop {
            match stderr.read(&mut buf) {
                Ok(0) => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
                Ok(n) => {
                    let _ = log.write_all(&buf[..n]);
                    tail.extend(&buf[..n]);
                    let excess = tail.len().saturating_sub(TAIL_BYTES);
                    tail.drain(..excess);
                }
            }
        }
        String::from_utf8_lossy(&tail.into_iter().collect::<Vec<u8>>()).into_owned()
    });
    let status = child.wait().await;
    signal_group(pgid, libc::SIGKILL);
    let stderr_tail = match tokio::time::timeout(std::time::Duration::from_secs(2), copier).await {
        Ok(Ok(tail)) => tail,
        _ => String::new(),
    };
    match status {
        Ok(status) => Exit {
            code: status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
            signal: status.signal(),
            stderr_tail,
            termination_file: Vec::new(),
        },
        Err(e) => Exit {
            code: 128,
            signal: None,
            stderr_tail: format!("process-node lost the process: {e}"),
            termination_file: Vec::new(),
        },
    }
}

/// Send `signal` to the process group `pgid` (errors such as "no such process" ignored).
pub fn signal_group(pgid: i32, signal: i32) {
    if pgid > 1 {
        // SAFETY: kill(2) has no memory-safety preconditions; a negative pid addresses the
        // process group this node created for the container (never 0 / -1 / our own group).
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

/// The last few lines of a container's stderr, for a termination message.
pub fn message_from_tail(tail: &str) -> String {
    let lines: Vec<&str> = tail.trim_end().lines().collect();
    let start = lines.len().saturating_sub(20);
    lines[start..].join("\n")
}

/// A container's `terminationMessagePath`: the API default when unset; must be absolute.
pub fn termination_message_path(container: &Container) -> Result<String, String> {
    let path = container
        .termination_message_path
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or(DEFAULT_TERMINATION_MESSAGE_PATH);
    if !path.starts_with('/') || path.trim_end_matches('/').is_empty() {
        return Err(format!(
            "container {:?}: terminationMessagePath {path:?} must be an absolute file path",
            container.name
        ));
    }
    Ok(path.to_string())
}

/// Create (or empty) the host file bind-mounted at a container's `terminationMessagePath`,
/// before every start, so that a restarted container does not report its predecessor's
/// message. World-writable, like the kubelet's.
pub fn reset_termination_file(path: &Path) -> Result<(), String> {
    let err = |e: std::io::Error| format!("termination-message file {}: {e}", path.display());
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    std::fs::File::create(path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).map_err(err)
}

/// At most [`MAX_TERMINATION_MESSAGE`] bytes of a termination-message file (nothing when it
/// cannot be read).
pub fn read_termination_file(path: &Path) -> Vec<u8> {
    let mut data = Vec::new();
    if let Ok(file) = std::fs::File::open(path) {
        let _ = file.take(MAX_TERMINATION_MESSAGE as u64).read_to_end(&mut data);
    }
    data
}

/// The `message` of a terminated container, from its termination-message file (`file`),
/// its `terminationMessagePolicy` and, for failed containers, its stderr tail.
///
/// A non-empty file is the message, whatever the policy. An empty file gives no message for
/// a container that exited 0, and the stderr tail for a failed one: that is the kubelet's
/// `FallbackToLogsOnError`, and process-node keeps it for `File` too (the default, where
/// the kubelet would report nothing), because a failed process's stderr is usually the only
/// diagnostic a test run has. This also covers containers that could not be started, whose
/// "tail" is the start error.
pub fn termination_message(policy: Option<&str>, file: &[u8], exit_code: i32, stderr_tail: &str) -> Option<String> {
    if !file.is_empty() {
        return Some(String::from_utf8_lossy(file).into_owned());
    }
    let falls_back_to_logs = match policy.unwrap_or("File") {
        "FallbackToLogsOnError" => true,
        // `File`: the kubelet would stop here; see above.
        _ => true,
    };
    (falls_back_to_logs && exit_code != 0)
        .then(|| message_from_tail(stderr_tail))
        .filter(|m| !m.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools() -> Tools {
        Tools {
            unshare: "/usr/bin/unshare".into(),
            sh: "/bin/sh".into(),
            mount: "/usr/bin/mount".into(),
            mkdir: "/usr/bin/mkdir".into(),
        }
    }

    fn container(image: &str, command: &[&str], args: &[&str]) -> Container {
        Container {
            name: "c".into(),
            image: Some(image.into()),
            command: (!command.is_empty()).then(|| command.iter().map(|s| s.to_string()).collect()),
            args: (!args.is_empty()).then(|| args.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    fn env() -> Vec<(String, String)> {
        vec![("PATH".into(), "/usr/bin:/bin".into()), ("NS".into(), "team-a".into())]
    }

    const BIN: &str = "/build/target/debug/reverie";

    #[test]
    fn reverie_images_and_commands_map_to_the_built_binary() {
        let bin = Some(Path::new(BIN));
        let argv = |c: Container| resolve_argv(&c, &env(), bin).unwrap();
        assert_eq!(
            argv(container("ghcr.io/x/reverie:dev", &[], &["dream", "--agent", "$(NS)"])),
            [BIN, "dream", "--agent", "team-a"]
        );
        assert_eq!(
            argv(container("busybox", &["reverie", "operator"], &[])),
            [BIN, "operator"]
        );
        assert_eq!(
            argv(container(
                "reverie:dev",
                &["/usr/local/bin/reverie"],
                &["memory", "apply"]
            )),
            [BIN, "memory", "apply"]
        );
        assert_eq!(
            argv(container("reverie:dev", &["/app/does-not-exist"], &["x"])),
            [BIN, "x"]
        );
        assert_eq!(
            argv(container("reverie:dev", &["kubectl-dream"], &["list"])),
            ["/build/target/debug/kubectl-dream", "list"]
        );
        // Host commands run as given, even for reverie images.
        assert_eq!(
            argv(container("reverie:dev", &["sh", "-c", "echo $$(NS) $(NS)"], &[])),
            ["sh", "-c", "echo $(NS) team-a"]
        );
        assert_eq!(argv(container("busybox", &["true"], &[])), ["true"]);
        // No entrypoint knowledge for other images: args are the command.
        assert_eq!(
            argv(container("busybox", &[], &["sh", "-c", "exit 3"])),
            ["sh", "-c", "exit 3"]
        );
    }

    #[test]
    fn unresolvable_commands_are_errors() {
        let err = resolve_argv(&container("busybox", &[], &[]), &env(), None).unwrap_err();
        assert!(err.contains("set `command`"), "{err}");
        let err = resolve_argv(&container("reverie:dev", &[], &["operator"]), &env(), None).unwrap_err();
        assert!(err.contains("REVERIE_BIN"), "{err}");
    }

    #[test]
    fn quoting_survives_the_shell() {
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn script_mounts_in_order_with_tmpfs_for_secrets() {
        let mounts = vec![
            (
                Mount {
                    source: "/s/data".into(),
                    target: "/data".into(),
                    read_only: false,
                },
                false,
            ),
            (
                Mount {
                    source: "/s/cfg/app.yaml".into(),
                    target: "/etc/app/app.yaml".into(),
                    read_only: true,
                },
                true,
            ),
            (
                Mount {
                    source: "/s/sa".into(),
                    target: "/var/run/secrets/kubernetes.io/serviceaccount".into(),
                    read_only: true,
                },
                false,
            ),
        ];
        let script = mount_script(&mounts, "/work dir", &tools());
        let expected = "set -e\n\
            '/usr/bin/mkdir' -p '/var/run/secrets'\n\
            '/usr/bin/mount' -t tmpfs -o mode=0755 process-node '/var/run/secrets'\n\
            '/usr/bin/mkdir' -p '/data'\n\
            '/usr/bin/mount' --bind '/s/data' '/data'\n\
            '/usr/bin/mkdir' -p '/etc/app'\n\
            [ -e '/etc/app/app.yaml' ] || : > '/etc/app/app.yaml'\n\
            '/usr/bin/mount' --bind '/s/cfg/app.yaml' '/etc/app/app.yaml'\n\
            '/usr/bin/mount' -o remount,bind,ro '/etc/app/app.yaml'\n\
            '/usr/bin/mkdir' -p '/var/run/secrets/kubernetes.io/serviceaccount'\n\
            '/usr/bin/mount' --bind '/s/sa' '/var/run/secrets/kubernetes.io/serviceaccount'\n\
            '/usr/bin/mount' -o remount,bind,ro '/var/run/secrets/kubernetes.io/serviceaccount'\n\
            '/usr/bin/mkdir' -p '/work dir'\n\
            cd '/work dir'\n\
            exec \"$@\"\n";
        assert_eq!(script, expected);
        let plain = mount_script(&[], "", &tools());
        assert!(!plain.contains("tmpfs"));
        assert!(plain.contains("cd '/'"));
    }

    #[test]
    fn a_mount_that_would_hide_another_sources_reads_sources_through_the_host_root() {
        let mounts = vec![
            (
                Mount {
                    source: "/state/pod/tmp".into(),
                    target: "/tmp".into(),
                    read_only: false,
                },
                false,
            ),
            (
                Mount {
                    source: "/tmp/sessions/support".into(),
                    target: "/var/lib/reverie/sessions".into(),
                    read_only: true,
                },
                false,
            ),
        ];
        let script = mount_script(&mounts, "", &tools());
        let rbind = script
            .find("--rbind / '/run/process-node/host'")
            .expect("host root bound");
        let hidden = script.find("--bind '/run/process-node/host/tmp/sessions/support' '/var/lib/reverie/sessions'");
        assert!(hidden.is_some_and(|at| at > rbind), "{script}");
        assert!(
            script.contains("--bind '/run/process-node/host/state/pod/tmp' '/tmp'"),
            "{script}"
        );
    }

    #[test]
    fn script_bind_mounts_the_termination_log_read_write() {
        let mounts = vec![
            (
                Mount {
                    source: "/s/data".into(),
                    target: "/data".into(),
                    read_only: false,
                },
                false,
            ),
            (
                Mount {
                    source: "/s/termination/c".into(),
                    target: DEFAULT_TERMINATION_MESSAGE_PATH.into(),
                    read_only: false,
                },
                true,
            ),
        ];
        let script = mount_script(&mounts, "", &tools());
        let expected = "set -e\n\
            '/usr/bin/mkdir' -p '/data'\n\
            '/usr/bin/mount' --bind '/s/data' '/data'\n\
            '/usr/bin/mkdir' -p '/dev'\n\
            [ -e '/dev/termination-log' ] || : > '/dev/termination-log'\n\
            '/usr/bin/mount' --bind '/s/termination/c' '/dev/termination-log'\n\
            '/usr/bin/mkdir' -p '/'\n\
            cd '/'\n\
            exec \"$@\"\n";
        assert_eq!(script, expected);
    }

    #[test]
    fn termination_message_path_defaults_and_must_be_absolute() {
        let mut c = container("busybox", &["true"], &[]);
        assert_eq!(termination_message_path(&c).unwrap(), "/dev/termination-log");
        c.termination_message_path = Some(String::new());
        assert_eq!(termination_message_path(&c).unwrap(), "/dev/termination-log");
        c.termination_message_path = Some("/tmp/result".into());
        assert_eq!(termination_message_path(&c).unwrap(), "/tmp/result");
        for bad in ["result", "/"] {
            c.termination_message_path = Some(bad.into());
            let err = termination_message_path(&c).unwrap_err();
            assert!(err.contains("absolute"), "{err}");
        }
    }

    #[test]
    fn termination_file_is_emptied_at_start_and_read_up_to_4096_bytes() {
        let dir = std::env::temp_dir().join(format!("process-node-termfile-{}", std::process::id()));
        let file = dir.join("termination").join("c");
        assert!(read_termination_file(&file).is_empty());
        reset_termination_file(&file).unwrap();
        assert!(read_termination_file(&file).is_empty());
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666);
        std::fs::write(&file, "result: 3 items\n").unwrap();
        assert_eq!(read_termination_file(&file), b"result: 3 items\n");
        let long: Vec<u8> = (0..5000u32).map(|i| b'a' + (i % 26) as u8).collect();
        std::fs::write(&file, &long).unwrap();
        assert_eq!(read_termination_file(&file), long[..MAX_TERMINATION_MESSAGE]);
        // A restart starts from an empty file again.
        reset_termination_file(&file).unwrap();
        assert!(read_termination_file(&file).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn termination_message_prefers_the_file_and_falls_back_to_stderr_on_failure() {
        for policy in [None, Some("File"), Some("FallbackToLogsOnError")] {
            // The file wins, success or failure, and is kept as written.
            assert_eq!(
                termination_message(policy, b"done\n", 0, "noise\n").as_deref(),
                Some("done\n"),
                "{policy:?}"
            );
            assert_eq!(
                termination_message(policy, b"bad input", 2, "panic\n").as_deref(),
                Some("bad input"),
                "{policy:?}"
            );
            // Empty file: nothing for a success, the stderr tail for a failure.
            assert_eq!(termination_message(policy, b"", 0, "warning\n"), None, "{policy:?}");
            assert_eq!(
                termination_message(policy, b"", 1, "step 1\nerror: boom\n").as_deref(),
                Some("step 1\nerror: boom"),
                "{policy:?}"
            );
            assert_eq!(termination_message(policy, b"", 1, "\n"), None, "{policy:?}");
        }
        // Invalid UTF-8 is reported lossily rather than dropped.
        assert_eq!(
            termination_message(None, b"ok \xff", 0, "").as_deref(),
            Some("ok \u{fffd}")
        );
    }

    /// The host tools, when this test run can really start containers (`unshare --mount`
    /// needs root).
    fn real_tools(path: &str) -> Option<Tools> {
        // SAFETY: geteuid(2) cannot fail and has no preconditions.
        #[allow(unsafe_code)]
        let euid = unsafe { libc::geteuid() };
        if euid != 0 {
            return None;
        }
        Some(Tools {
            unshare: super::super::find_tool("unshare", path).ok()?,
            sh: super::super::find_tool("sh", path).ok()?,
            mount: super::super::find_tool("mount", path).ok()?,
            mkdir: super::super::find_tool("mkdir", path).ok()?,
        })
    }

    #[tokio::test]
    async fn a_container_reports_its_termination_message_through_the_file() {
        let path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        let Some(tools) = real_tools(path) else {
            return;
        };
        let dir = std::env::temp_dir().join(format!("process-node-termination-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let env = vec![("PATH".to_string(), path.to_string())];
        let run = |target: String, command: &str| {
            let file = dir.join("termination").join("c");
            reset_termination_file(&file).unwrap();
            let mounts = vec![(
                Mount {
                    source: file.clone(),
                    target,
                    read_only: false,
                },
                true,
            )];
            let script = mount_script(&mounts, "", &tools);
            let argv: Vec<String> = ["sh", "-c", command].iter().map(|s| s.to_string()).collect();
            let started = spawn(&tools, &script, &argv, &env, &dir.join("c.log"), "=== banner").unwrap();
            async move {
                let mut exit = wait(started).await;
                exit.termination_file = read_termination_file(&file);
                exit
            }
        };

        // The default path, under /dev: a Job reporting its result.
        let exit = run(
            DEFAULT_TERMINATION_MESSAGE_PATH.into(),
            "echo starting >&2; printf 'processed 42' > /dev/termination-log",
        )
        .await;
        assert_eq!(exit.code, 0, "{exit:?}");
        assert_eq!(exit.termination_file, b"processed 42");
        assert_eq!(
            termination_message(None, &exit.termination_file, exit.code, &exit.stderr_tail).as_deref(),
            Some("processed 42")
        );
        // What the container wrote went to the pod's file, not the host's /dev.
        assert_ne!(
            std::fs::read(DEFAULT_TERMINATION_MESSAGE_PATH).unwrap(),
            b"processed 42"
        );

        // A custom path whose directory does not exist yet; the file beats stderr.
        let custom = dir.join("custom").join("result");
        let exit = run(
            custom.to_string_lossy().into_owned(),
            &format!(
                "echo trace >&2; echo 'invalid spec' > {}; exit 4",
                sh_quote(&custom.to_string_lossy())
            ),
        )
        .await;
        assert_eq!(exit.code, 4, "{exit:?}");
        assert_eq!(
            termination_message(None, &exit.termination_file, exit.code, &exit.stderr_tail).as_deref(),
            Some("invalid spec\n")
        );
        assert_eq!(std::fs::metadata(&custom).unwrap().len(), 0);

        // Nothing written and a failure: the stderr tail, under either policy.
        let exit = run(
            DEFAULT_TERMINATION_MESSAGE_PATH.into(),
            "echo 'fatal: no input' >&2; exit 1",
        )
        .await;
        assert!(exit.termination_file.is_empty(), "{exit:?}");
        assert_eq!(
            termination_message(
                Some("FallbackToLogsOnError"),
                &exit.termination_file,
                exit.code,
                &exit.stderr_tail
            )
            .as_deref(),
            Some("fatal: no input")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn runs_a_container_in_a_private_mount_namespace() {
        let path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        let Some(tools) = real_tools(path) else {
            return;
        };
        let dir = std::env::temp_dir().join(format!("process-node-spawn-{}", std::process::id()));
        let source = dir.join("source");
        std::fs::create_dir_all(&source).unwrap();
        std::fs::write(source.join("f"), "from-volume").unwrap();
        let target = dir.join("target");
        let mounts = vec![(
            Mount {
                source: source.clone(),
                target: target.to_string_lossy().into_owned(),
                read_only: true,
            },
            false,
        )];
        let script = mount_script(&mounts, &dir.to_string_lossy(), &tools);
        let argv: Vec<String> = [
            "sh",
            "-c",
            "cat target/f; echo \" $GREETING\"; echo oops >&2; touch target/new 2>/dev/null || exit 3",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let env = vec![
            ("PATH".to_string(), path.to_string()),
            ("GREETING".to_string(), "hello".to_string()),
        ];
        let log = dir.join("c.log");
        let started = spawn(&tools, &script, &argv, &env, &log, "=== banner").unwrap();
        let exit = wait(started).await;
        assert_eq!(exit.code, 3, "{exit:?}");
        assert_eq!(exit.stderr_tail, "oops\n");
        let log_text = std::fs::read_to_string(&log).unwrap();
        assert!(log_text.contains("=== banner\nfrom-volume hello\n"), "{log_text}");
        assert!(log_text.contains("oops"), "{log_text}");
        // The bind mount stayed inside the pod's namespace.
        assert!(!target.join("f").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tail_message_keeps_the_last_lines() {
        let tail: String = (0..30).map(|i| format!("line {i}\n")).collect();
        let msg = message_from_tail(&tail);
        assert!(msg.starts_with("line 10\n"));
        assert!(msg.ends_with("line 29"));
    }
}
