//! `memory.yaml`: the canonical serialisation of a memory document, its digest, and reading it
//! back with the checks that keep a broken file from ever being loaded.
//!
//! The canonical form is pretty-printed JSON, which is also valid YAML: every YAML tool reads
//! `memory.yaml`, people can edit it as YAML, and reverie writes and reads it an order of
//! magnitude faster than through a YAML serialiser (see docs/benchmarks.md). Reading tries
//! JSON first and falls back to YAML for hand-edited files.

use std::collections::HashSet;

use sha2::{Digest, Sha256};

use super::document::{MemoryDocument, is_section_name};

/// Why a `memory.yaml` cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("memory.yaml is not valid: {0}")]
    Syntax(String),
    #[error("memory.yaml has format version {0}; this reverie reads version 1")]
    UnsupportedVersion(u32),
    #[error("memory.yaml is not consistent: {0}")]
    Inconsistent(String),
}

/// The canonical text of a document (which must already be normalised): pretty JSON, which
/// is valid YAML.
pub fn to_yaml(doc: &MemoryDocument) -> String {
    // Plain data with string keys and no maps with non-string keys: serialising cannot fail.
    let mut text = serde_json::to_string_pretty(doc).unwrap_or_default();
    text.push('\n');
    text
}

/// `sha256:<hex>` of the canonical YAML.
pub fn digest_of(yaml: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(yaml.as_bytes())))
}

/// The digest of a document: of its canonical YAML.
pub fn digest(doc: &MemoryDocument) -> String {
    digest_of(&to_yaml(doc))
}

/// Parses and checks a `memory.yaml`, returning the document in canonical form.
pub fn from_yaml(text: &str) -> Result<MemoryDocument, CodecError> {
    let mut doc: MemoryDocument = match serde_json::from_str(text) {
        Ok(doc) => doc,
        Err(json) if text.trim_start().starts_with('{') => {
            // Looks like the canonical form: a YAML reading would only blur the error.
            serde_yaml::from_str(text).map_err(|_| CodecError::Syntax(json.to_string()))?
        }
        Err(_) => serde_yaml::from_str(text).map_err(|e| CodecError::Syntax(e.to_string()))?,
    };
    if doc.version != 1 {
        return Err(CodecError::UnsupportedVersion(doc.version));
    }
    check(&doc)?;
    doc.normalize();
    Ok(doc)
}

/// The invariants every document keeps: valid section names, each section once, ids unique
/// across sections and archive.
pub fn check(doc: &MemoryDocument) -> Result<(), CodecError> {
    let mut sections = HashSet::new();
    for section in &doc.sections {
        if !is_section_name(&section.name) {
            return Err(CodecError::Inconsistent(format!(
                "{:?} is not a section name",
                section.name
            )));
        }
        if !sections.insert(section.name.as_str()) {
            return Err(CodecError::Inconsistent(format!(
                "section {:?} appears twice",
                section.name
            )));
        }
    }
    let mut ids = HashSet::new();
    let all_ids = doc
        .entries()
        .map(|(_, e)| e.id.as_str())
        .chain(doc.archive.iter().map(|a| a.entry.id.as_str()));
    for id in all_ids {
        if id.is_empty() {
            return Err(CodecError::Inconsistent("an entry has an empty id".into()));
        }
        if !ids.insert(id) {
            return Err(CodecError::Inconsistent(format!("entry id {id:?} is used twice")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> jiff::Timestamp {
        "2026-11-20T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn round_trip_is_exact_and_digest_is_stable() {
        let doc = MemoryDocument::with_instructions("Help customers.", &["safety".into()], now());
        let yaml = to_yaml(&doc);
        let back = from_yaml(&yaml).unwrap();
        assert_eq!(back, doc);
        assert_eq!(to_yaml(&back), yaml);
        assert_eq!(digest(&back), digest(&doc));
        assert!(digest(&doc).starts_with("sha256:"));
    }

    #[test]
    fn the_canonical_form_is_json_and_hand_written_yaml_still_reads() {
        let doc = MemoryDocument::with_instructions("Help customers.", &[], now());
        let text = to_yaml(&doc);
        assert!(text.starts_with('{'));
        // Valid YAML too: a YAML parser reads the same document.
        let via_yaml: MemoryDocument = serde_yaml::from_str(&text).unwrap();
        assert_eq!(via_yaml, doc);
        let hand_written = "version: 1\nsections:\n- name: lessons\n  entries:\n  - {id: a, text: x, kind: lesson, created: 2026-01-01T00:00:00Z}\n";
        assert_eq!(from_yaml(hand_written).unwrap().entry_count(), 1);
    }

    #[test]
    fn broken_files_are_refused_with_the_reason() {
        assert!(matches!(from_yaml("sections: [").unwrap_err(), CodecError::Syntax(_)));
        assert_eq!(from_yaml("version: 2").unwrap_err(), CodecError::UnsupportedVersion(2));
        let twice = "version: 1\nsections:\n- name: lessons\n  entries:\n  - {id: a, text: x, kind: lesson, created: 2026-01-01T00:00:00Z}\n  - {id: a, text: y, kind: lesson, created: 2026-01-01T00:00:00Z}\n";
        assert!(
            from_yaml(twice)
                .unwrap_err()
                .to_string()
                .contains("\"a\" is used twice")
        );
        let bad_section = "version: 1\nsections:\n- name: Bad Name\n  entries: []\n";
        assert!(
            from_yaml(bad_section)
                .unwrap_err()
                .to_string()
                .contains("not a section name")
        );
        assert!(matches!(
            from_yaml("version: 1\nsurprise: true").unwrap_err(),
            CodecError::Syntax(_)
        ));
    }
}
