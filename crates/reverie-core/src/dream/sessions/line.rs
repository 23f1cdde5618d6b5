//! One transcript line: JSON into borrowed fields, then into a [`Record`].
//!
//! This is the hot path of a dream pass, so it is built to allocate nothing for the common line:
//! the line is checked for UTF-8 once and parsed with `serde_json::from_str` into [`Line`], whose
//! string fields borrow from the line buffer (`Cow::Borrowed`) unless the JSON string contains an
//! escape. Fields the reader does not use (`input`, tool outputs, anything a newer writer adds)
//! are skipped without being materialised.
//!
//! Every field the reader knows is parsed as a [`Field`], which accepts any JSON value. Field
//! types are checked only after the `type` is known, so that an unknown line type, or a known one
//! carrying a field the reader ignores, is never rejected for a shape this reader does not
//! understand (SESSIONS.md: unknown types and fields are ignored).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use jiff::Timestamp;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::dream::model::{Record, Role};

/// The line types of the transcript format; a first line of another type is not a session.
pub(super) const KNOWN_TYPES: [&str; 6] = ["session", "message", "tool_call", "tool_result", "feedback", "outcome"];

/// Why a line was skipped (counted in `lines_skipped`). Tests assert on it; the stats only count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Malformed {
    TooLong,
    NotUtf8,
    NotObject,
    NotJson,
    /// Valid JSON object, but not one serde could map (e.g. a duplicated key).
    BadShape,
    /// No `type`, or a `type` that is not a string.
    NoType,
    /// A field of a known line type has the wrong JSON type, or a required one is missing.
    BadField(&'static str),
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Malformed::TooLong => write!(f, "longer than {} MiB", super::reader::MAX_LINE_BYTES >> 20),
            Malformed::NotUtf8 => f.write_str("is not valid UTF-8"),
            Malformed::NotObject => f.write_str("is not a JSON object"),
            Malformed::NotJson => f.write_str("is not valid JSON"),
            Malformed::BadShape => f.write_str("is a JSON object of an unexpected shape"),
            Malformed::NoType => f.write_str("has no string \"type\""),
            Malformed::BadField(name) => write!(f, "has a missing or mistyped \"{name}\""),
        }
    }
}

/// Any JSON value, kept only as far as the reader needs it: scalars and (borrowed) strings.
/// Arrays and objects are skipped in place. Missing and `null` are the same to the reader.
#[derive(Debug, Default, PartialEq)]
pub(super) enum Field<'a> {
    #[default]
    Missing,
    Bool(bool),
    Num(f64),
    Str(Cow<'a, str>),
    Composite,
}

impl<'a> Field<'a> {
    fn str(&self, name: &'static str) -> Result<Option<&str>, Malformed> {
        match self {
            Field::Missing => Ok(None),
            Field::Str(s) => Ok(Some(s)),
            _ => Err(Malformed::BadField(name)),
        }
    }

    fn required_str(&self, name: &'static str) -> Result<&str, Malformed> {
        self.str(name)?.ok_or(Malformed::BadField(name))
    }

    fn bool(&self, name: &'static str) -> Result<Option<bool>, Malformed> {
        match self {
            Field::Missing => Ok(None),
            Field::Bool(b) => Ok(Some(*b)),
            _ => Err(Malformed::BadField(name)),
        }
    }

    fn num(&self, name: &'static str) -> Result<Option<f64>, Malformed> {
        match self {
            Field::Missing => Ok(None),
            Field::Num(n) => Ok(Some(*n)),
            _ => Err(Malformed::BadField(name)),
        }
    }

    /// An RFC 3339 timestamp. A string that does not parse is `None` (a clock glitch in the
    /// writer should not cost the line); a non-string is a mistyped field.
    fn timestamp(&self, name: &'static str) -> Result<Option<Timestamp>, Malformed> {
        Ok(self.str(name)?.and_then(|s| s.parse().ok()))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldVisitor(PhantomData))
    }
}

struct FieldVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for FieldVisitor<'a> {
    type Value = Field<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Field::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Field::Num(v as f64))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Field::Num(v as f64))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Field::Num(v))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(v)))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Field::Missing)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Field::Missing)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Field::Composite)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Field::Composite)
    }
}

/// Hashes of the data-like values (ids, e-mail addresses, numbers: anything with a digit or an
/// `@`) anywhere in a tool call's `input`, normalised like [`data_token_hash`], so a dream can
/// tell whether a failing call used a value the customer typed. Other values are skipped in
/// place; nothing is kept but the hashes.
#[derive(Debug, Default, PartialEq)]
pub(super) struct InputValues(Vec<u64>);

/// Longest value considered data (longer strings are prose, not an id).
const MAX_DATA_TOKEN: usize = 64;

/// The hash of `token` if it looks like data a person could type: an id, an e-mail address, a
/// number (it has a digit or an `@`). Leading `#` and surrounding punctuation are dropped and
/// case is folded, so `#W123` in a message and `w123` in a call are the same value.
pub fn data_token_hash(token: &str) -> Option<u64> {
    let token = token
        .trim_matches(|c: char| !c.is_alphanumeric() && c != '@')
        .trim_start_matches('#');
    if token.len() < 2 || token.len() > MAX_DATA_TOKEN || !token.bytes().any(|b| b.is_ascii_digit() || b == b'@') {
        return None;
    }
    // FNV-1a over the lowercase bytes: small, fast, and stable across runs.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in token.bytes() {
        hash ^= u64::from(byte.to_ascii_lowercase());
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    Some(hash)
}

impl<'de> Deserialize<'de> for InputValues {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut values = Vec::new();
        deserializer.deserialize_any(DataValues(&mut values))?;
        Ok(InputValues(values))
    }
}

/// The hashes of the data-like values anywhere in an already parsed `input` (the importers').
pub(super) fn input_values(input: &serde_json::Value) -> Vec<u64> {
    let mut values = Vec::new();
    // Walking a `Value` cannot fail: every JSON value is accepted.
    let _ = serde::de::DeserializeSeed::deserialize(DataValues(&mut values), input);
    values
}

/// Walks any JSON value, pushing the hashes of its data-like scalars.
struct DataValues<'v>(&'v mut Vec<u64>);

/// Values kept per call: a call with more is not one a customer typed by hand.
const MAX_INPUT_VALUES: usize = 32;

impl DataValues<'_> {
    fn push(&mut self, text: &str) {
        if self.0.len() < MAX_INPUT_VALUES
            && let Some(hash) = data_token_hash(text)
        {
            self.0.push(hash);
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for DataValues<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DataValues<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(mut self, v: i64) -> Result<(), E> {
        self.push(&v.to_string());
        Ok(())
    }

    fn visit_u64<E>(mut self, v: u64) -> Result<(), E> {
        self.push(&v.to_string());
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(mut self, v: &str) -> Result<(), E> {
        self.push(v);
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(DataValues(&mut *self.0))?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(DataValues(&mut *self.0))?;
        }
        Ok(())
    }
}

/// The fields of every record type, flattened: one struct, one pass, no tagged-enum buffering.
#[derive(Debug, Deserialize)]
pub(super) struct Line<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Field<'a>,
    #[serde(borrow, default)]
    ts: Field<'a>,
    #[serde(borrow, default)]
    role: Field<'a>,
    #[serde(borrow, default)]
    text: Field<'a>,
    #[serde(borrow, default)]
    name: Field<'a>,
    #[serde(borrow, default)]
    ok: Field<'a>,
    #[serde(borrow, default)]
    error: Field<'a>,
    #[serde(borrow, default)]
    from: Field<'a>,
    #[serde(borrow, default)]
    rating: Field<'a>,
    #[serde(borrow, default)]
    success: Field<'a>,
    #[serde(borrow, default)]
    score: Field<'a>,
    #[serde(default)]
    input: InputValues,
}

impl<'a> Line<'a> {
    /// Parses one line (its trailing newline included or not).
    pub(super) fn parse(bytes: &'a [u8]) -> Result<Self, Malformed> {
        parse_object(bytes)
    }

    /// The record this line carries: `Ok(None)` for a line the reader does not use (the `session`
    /// header, an unknown `type` or message `role`: forward compatible), `Err` for a malformed one.
    pub(super) fn record(&self) -> Result<Option<Record<'_>>, Malformed> {
        let Field::Str(kind) = &self.kind else {
            return Err(Malformed::NoType);
        };
        let record = match kind.as_ref() {
            "message" => {
                let role = match self.role.required_str("role")? {
                    "user" => Role::User,
                    "assistant" => Role::Assistant,
                    "system" => Role::System,
                    _ => return Ok(None),
                };
                Record::Message {
                    role,
                    text: self.text.required_str("text")?,
                    ts: self.ts.timestamp("ts")?,
                }
            }
            "tool_call" => Record::ToolCall {
                name: self.name.required_str("name")?,
                values: &self.input.0,
                ts: self.ts.timestamp("ts")?,
            },
            "tool_result" => {
                // An empty error says nothing; without `ok`, the presence of an error decides.
                let error = self.error.str("error")?.filter(|e| !e.is_empty());
                Record::ToolResult {
                    name: self.name.required_str("name")?,
                    ok: self.ok.bool("ok")?.unwrap_or(error.is_none()),
                    error,
                    ts: self.ts.timestamp("ts")?,
                }
            }
            "feedback" => Record::Feedback {
                // No source reads as the user: the least authoritative reading.
                from: self.from.str("from")?.filter(|f| !f.is_empty()).unwrap_or("user"),
                rating: self.rating.num("rating")?,
                text: self.text.str("text")?.unwrap_or(""),
                ts: self.ts.timestamp("ts")?,
            },
            "outcome" => Record::Outcome {
                success: self.success.bool("success")?,
                score: self.score.num("score")?,
                ts: self.ts.timestamp("ts")?,
            },
            _ => return Ok(None),
        };
        Ok(Some(record))
    }
}

/// The first line of a file, as far as selection needs it.
#[derive(Debug, Deserialize)]
pub(super) struct Header<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Field<'a>,
    #[serde(borrow, default)]
    id: Field<'a>,
    #[serde(borrow, default)]
    agent: Field<'a>,
    #[serde(borrow, default)]
    started: Field<'a>,
    #[serde(default)]
    labels: serde_json::Value,
    #[serde(rename = "memoryRevision", borrow, default)]
    memory_revision: Field<'a>,
}

/// What a first line says about its file.
#[derive(Debug, Default, PartialEq)]
pub(super) struct HeaderInfo {
    pub id: Option<String>,
    pub agent: Option<String>,
    pub started: Option<Timestamp>,
    pub labels: std::collections::BTreeMap<String, String>,
    pub memory_revision: Option<u64>,
}

/// Why a file whose first line was read is not a session.
#[derive(Debug, PartialEq)]
pub(super) enum NotASession {
    Malformed(Malformed),
    UnknownType(String),
}

impl fmt::Display for NotASession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotASession::Malformed(m) => write!(f, "not a session: the first line {m}"),
            NotASession::UnknownType(t) => {
                write!(f, "not a session: the first line has the unknown type {t:?}")
            }
        }
    }
}

impl<'a> Header<'a> {
    /// Reads a first line. A `session` line contributes what it has; a header field of the wrong
    /// type falls back like a missing one (the file is still a session). Any other known type
    /// makes a header-less session.
    pub(super) fn parse(bytes: &'a [u8]) -> Result<HeaderInfo, NotASession> {
        let header: Header<'_> = parse_object(bytes).map_err(NotASession::Malformed)?;
        let Field::Str(kind) = &header.kind else {
            return Err(NotASession::Malformed(Malformed::NoType));
        };
        if !KNOWN_TYPES.contains(&kind.as_ref()) {
            return Err(NotASession::UnknownType(kind.chars().take(64).collect()));
        }
        if kind != "session" {
            return Ok(HeaderInfo::default());
        }
        let text = |field: &Field<'_>| match field {
            Field::Str(s) if !s.is_empty() => Some(s.to_string()),
            _ => None,
        };
        let labels = match header.labels {
            serde_json::Value::Object(map) => map
                .into_iter()
                .filter_map(|(key, value)| {
                    let value = match value {
                        serde_json::Value::String(s) => s,
                        serde_json::Value::Bool(b) => b.to_string(),
                        serde_json::Value::Number(n) => n.to_string(),
                        _ => return None,
                    };
                    Some((key, value))
                })
                .collect(),
            _ => Default::default(),
        };
        Ok(HeaderInfo {
            id: text(&header.id),
            agent: text(&header.agent),
            started: header.started.timestamp("started").ok().flatten(),
            labels,
            memory_revision: revision(&header.memory_revision),
        })
    }
}

/// A memory revision as a writer may put it: a whole number, or one as a string. Anything
/// else (negative, fractional, too large, words) is no revision: the session is attributed by
/// time.
fn revision(field: &Field<'_>) -> Option<u64> {
    match field {
        Field::Num(n) if *n >= 0.0 && n.fract() == 0.0 && *n < 9.0e15 => Some(*n as u64),
        Field::Str(s) if !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        _ => None,
    }
}

/// UTF-8 check of the whole line (serde_json does not validate strings it skips), then a parse
/// from `&str`, which borrows unescaped strings.
fn parse_object<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, Malformed> {
    let text = std::str::from_utf8(bytes).map_err(|_| Malformed::NotUtf8)?;
    if !text.trim_start().starts_with('{') {
        return Err(Malformed::NotObject);
    }
    serde_json::from_str(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => Malformed::BadShape,
        _ => Malformed::NotJson,
    })
}
