//! Reading the shapes every format shares: message content, tool arguments and outputs, times.

use jiff::Timestamp;
use serde_json::Value;

use super::super::line::input_values;

/// The text of a message's `content`: a string, or the `text` of its text parts (`text`,
/// `input_text`, `output_text`), joined by newlines. Images, files, tool parts and anything else
/// are not text a dream reads.
pub fn text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| match part {
                Value::String(s) => Some(s.as_str()),
                Value::Object(part) => match part.get("type").and_then(Value::as_str) {
                    None | Some("text" | "input_text" | "output_text") => part.get("text").and_then(Value::as_str),
                    Some(_) => None,
                },
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Object(part) => part.get("text").and_then(Value::as_str).unwrap_or_default().to_string(),
        _ => String::new(),
    }
}

/// The hashes of the data-like values in a tool call's input (see `sessions::data_token_hash`).
pub fn values(input: &Value) -> Vec<u64> {
    match input {
        // Arguments as a JSON string (OpenAI, OpenTelemetry): the values inside it.
        Value::String(arguments) => match serde_json::from_str::<Value>(arguments) {
            Ok(parsed @ (Value::Object(_) | Value::Array(_))) => values(&parsed),
            _ => input_values(input),
        },
        other => input_values(other),
    }
}

/// Whether a tool's output reads as a failure, and its error text. Formats without an error
/// flag (Chat Completions `tool` messages, Codex outputs) signal failure in the text itself:
/// output that starts with "error" (`Error: …`, `error: …`) or with a non-zero `Exit code: N`
/// line, or a JSON object with a non-empty `error` (its message, or the value itself), a
/// non-zero `exit_code` (also under `metadata`), `"is_error": true` or `"status": "error"`.
pub fn failure(output: &str) -> Option<String> {
    let trimmed = output.trim_start();
    let head: String = trimmed.chars().take(5).flat_map(char::to_lowercase).collect();
    if head == "error" {
        return Some(trimmed.to_string());
    }
    if let Some(code) = exit_code_line(trimmed)
        && code != 0
    {
        return Some(trimmed.to_string());
    }
    if !trimmed.starts_with('{') {
        return None;
    }
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(trimmed) else {
        return None;
    };
    match object.get("error") {
        Some(Value::String(message)) if !message.trim().is_empty() => return Some(message.clone()),
        Some(Value::Object(error)) => {
            let message = error.get("message").and_then(Value::as_str).map(str::to_string);
            return Some(message.unwrap_or_else(|| Value::Object(error.clone()).to_string()));
        }
        Some(Value::Bool(true)) => return Some(trimmed.to_string()),
        _ => {}
    }
    let exit_code = object
        .get("metadata")
        .and_then(|m| m.get("exit_code"))
        .or_else(|| object.get("exit_code"))
        .and_then(Value::as_i64);
    if exit_code.is_some_and(|code| code != 0) {
        let output = object.get("output").and_then(Value::as_str);
        return Some(output.map_or_else(|| trimmed.to_string(), str::to_string));
    }
    let flagged = object.get("is_error") == Some(&Value::Bool(true))
        || object.get("status").and_then(Value::as_str) == Some("error");
    flagged.then(|| {
        ["message", "output", "content"]
            .iter()
            .find_map(|key| object.get(*key).and_then(Value::as_str))
            .map_or_else(|| trimmed.to_string(), str::to_string)
    })
}

/// The code of a shell tool's `Exit code: N` first line (Codex and similar harnesses).
fn exit_code_line(output: &str) -> Option<i64> {
    let first = output.lines().next()?;
    first.strip_prefix("Exit code:")?.trim().parse().ok()
}

/// Whether a user-role text is a harness's own wrapping rather than a person's words: the whole
/// text is one tag, `<name …>…</name>` (`<environment_context>`, `<command-name>`,
/// `<system-reminder>`, `<user_instructions>`). Agents' CLIs inject these as user messages in
/// every session; read as a person's, they would be proposed as the team's rules.
pub fn is_harness_text(text: &str) -> bool {
    let text = text.trim();
    let Some(rest) = text.strip_prefix('<') else {
        return false;
    };
    let name_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        .count();
    if name_len == 0 || !rest.as_bytes()[0].is_ascii_alphabetic() {
        return false;
    }
    let name = &rest[..name_len];
    matches!(rest.as_bytes().get(name_len), Some(b'>' | b' '))
        && text
            .strip_suffix('>')
            .and_then(|t| t.strip_suffix(name))
            .is_some_and(|t| t.ends_with("</"))
}

/// A time as the formats write it: an RFC 3339 string, or seconds, milliseconds or nanoseconds
/// since the epoch (as a number or a decimal string, OTLP's way), told apart by magnitude.
pub fn timestamp(value: &Value) -> Option<Timestamp> {
    match value {
        Value::String(s) => s.parse().ok().or_else(|| s.parse::<u64>().ok().and_then(epoch)),
        Value::Number(n) => n.as_u64().and_then(epoch).or_else(|| {
            n.as_f64()
                .and_then(|f| Timestamp::from_millisecond((f * 1000.0) as i64).ok())
        }),
        _ => None,
    }
}

fn epoch(n: u64) -> Option<Timestamp> {
    let n = i64::try_from(n).ok()?;
    match n {
        0..100_000_000_000 => Timestamp::from_second(n).ok(),
        100_000_000_000..100_000_000_000_000 => Timestamp::from_millisecond(n).ok(),
        100_000_000_000_000..100_000_000_000_000_000 => Timestamp::from_microsecond(n).ok(),
        _ => Timestamp::from_nanosecond(i128::from(n)).ok(),
    }
}

/// A non-empty string field of `object`.
pub fn str_field<'v>(object: &'v Value, key: &str) -> Option<&'v str> {
    object.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Labels from a JSON object of scalars (strings, numbers, booleans); other values are dropped.
pub fn labels(value: Option<&Value>) -> std::collections::BTreeMap<String, String> {
    let Some(Value::Object(map)) = value else {
        return Default::default();
    };
    map.iter()
        .filter_map(|(key, value)| {
            let value = match value {
                Value::String(s) => s.clone(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            };
            Some((key.clone(), value))
        })
        .collect()
}

/// The last component of a working directory: the project a coding agent worked in, as a label
/// (the full path would name the user's home and split one project across machines).
pub fn project(cwd: &str) -> Option<&str> {
    cwd.rsplit(['/', '\\']).find(|part| !part.is_empty())
}
