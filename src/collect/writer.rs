//! Writes an assembled session into its agent's sessions directory, atomically: a dream pass
//! reading the directory sees the file before or after, never half of it.
//!
//! One file per session, named from the session id (sanitized, plus a hash so distinct ids
//! never collide). When spans of a session already written arrive later (a conversation
//! resumed after the idle timeout, or a session written early to make room), the new spans are
//! appended as one more line of the same file: the `otlp` importer groups a file's spans by
//! conversation, so the session stays one session.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use reverie_core::collect::Complete;
use reverie_core::naming::short_hash;

use crate::store::files::write_atomically;

/// The suffix of files `reverie collect` writes (read back with `--format auto` or `otlp`).
pub const SUFFIX: &str = ".otlp.jsonl";

/// Writes `session` under `dir` and returns the file's path.
pub fn write_session(dir: &Path, session: &Complete) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let path = dir.join(file_name(&session.key.session));
    let mut bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    if !bytes.is_empty() && !bytes.ends_with(b"\n") {
        bytes.push(b'\n');
    }
    bytes.extend_from_slice(session.line.as_bytes());
    write_atomically(&path, &bytes)?;
    Ok(path)
}

/// A file name for a session id that came off the wire: letters, digits, `-` and `_` only,
/// at most 48 of them, never starting with a dot (hidden files are not read), and a hash of
/// the full id.
pub fn file_name(session: &str) -> String {
    let readable: String = session
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    format!("{readable}-{}{SUFFIX}", short_hash(session))
}

#[cfg(test)]
mod tests {
    use reverie_core::collect::SessionKey;

    use super::*;

    fn complete(session: &str, line: &str) -> Complete {
        Complete {
            key: SessionKey {
                agent: "support".into(),
                session: session.into(),
            },
            spans: 1,
            line: format!("{line}\n"),
        }
    }

    #[test]
    fn hostile_ids_cannot_leave_the_directory_or_hide() {
        for hostile in ["../../etc/passwd", "/abs", ".hidden", "a/b", "", "\u{0}\n"] {
            let name = file_name(hostile);
            assert!(!name.contains('/') && !name.starts_with('.'), "{hostile:?} → {name}");
            assert!(name.ends_with(SUFFIX));
        }
        assert_ne!(file_name("a/b"), file_name("a_b"), "sanitized alike, hashed apart");
        assert!(file_name(&"x".repeat(10_000)).len() < 80);
    }

    #[test]
    fn a_resumed_session_is_appended_to_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = dir.path().join("support");
        let first = write_session(&sessions, &complete("conv-1", "{\"a\":1}")).unwrap();
        let second = write_session(&sessions, &complete("conv-1", "{\"b\":2}")).unwrap();
        assert_eq!(first, second);
        assert_eq!(fs::read_to_string(&first).unwrap(), "{\"a\":1}\n{\"b\":2}\n");
        let names: Vec<_> = fs::read_dir(&sessions)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary file is left behind: {names:?}");
    }
}
