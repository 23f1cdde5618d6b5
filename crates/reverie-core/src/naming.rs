//! Names of generated objects: deterministic, DNS-1123 compatible and at most 63 characters.

use sha2::{Digest, Sha256};

/// The longest name usable as a label value (Job names end up in the `job-name` label).
pub const MAX_NAME: usize = 63;

/// Eight hex characters of the sha256 of `text`.
pub fn short_hash(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..4])
}

/// `parts` joined with `-`; when longer than 63 characters, the head is cut and a hash of the
/// full name appended, so distinct long names stay distinct.
pub fn bounded_name(parts: &[&str]) -> String {
    let full = parts.join("-");
    if full.len() <= MAX_NAME {
        return full;
    }
    let hash = short_hash(&full);
    let head: String = full.chars().take(MAX_NAME - hash.len() - 1).collect();
    format!("{}-{hash}", head.trim_end_matches('-'))
}

/// Whether `name` is a DNS-1123 label (what Kubernetes object names like agents are).
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_kept_and_long_ones_bounded_and_distinct() {
        assert_eq!(bounded_name(&["support", "memory-writer"]), "support-memory-writer");
        let long_a = bounded_name(&[&"a".repeat(60), "memory-apply", "r2"]);
        let long_b = bounded_name(&[&"a".repeat(60), "memory-apply", "r3"]);
        assert!(long_a.len() <= MAX_NAME && long_b.len() <= MAX_NAME);
        assert_ne!(long_a, long_b);
        assert_eq!(short_hash("x").len(), 8);
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("support-bot2"));
        for bad in ["", "-a", "a-", "Support", "a/b", "a.b"] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }
}
