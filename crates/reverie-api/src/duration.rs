//! Human durations in specs (`7d`, `30d`, `12h`, `90m`): one schema pattern, one parser.

use std::time::Duration;

/// The schema pattern for duration fields: one or more `<number><unit>` groups with units
/// `s`, `m`, `h`, `d` or `w`, e.g. `7d` or `1h30m`.
pub const DURATION_PATTERN: &str = r"^([0-9]+(s|m|h|d|w))+$";

/// Parses a duration written as in [`DURATION_PATTERN`].
///
/// `humantime` does the arithmetic; the explicit unit check keeps what the operator accepts
/// identical to what the CRD schema admits (humantime alone would also take `7 days`).
pub fn parse(text: &str) -> Result<Duration, String> {
    let well_formed = !text.is_empty()
        && text.chars().all(|c| c.is_ascii_digit() || "smhdw".contains(c))
        && text.starts_with(|c: char| c.is_ascii_digit())
        && text.ends_with(|c: char| "smhdw".contains(c));
    if !well_formed {
        return Err(format!("{text:?} is not a duration like 30m, 12h, 7d or 2w"));
    }
    humantime::parse_duration(text).map_err(|e| format!("{text:?} is not a valid duration: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_units_specs_use() {
        assert_eq!(parse("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5_400));
        assert_eq!(parse("2w").unwrap(), Duration::from_secs(14 * 86_400));
        assert_eq!(parse("45s").unwrap(), Duration::from_secs(45));
    }

    #[test]
    fn rejects_what_the_schema_rejects() {
        for bad in ["", "7", "d", "7 days", "-1h", "1.5h", "7y"] {
            assert!(parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
