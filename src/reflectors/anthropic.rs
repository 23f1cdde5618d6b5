//! A reflector backed by the Anthropic Messages API (`POST {endpoint}/v1/messages`).
//!
//! The answer is forced into shape with a single tool whose input schema is the answer's schema
//! and `tool_choice` naming it: the model must call it, and the tool call's `input` is the
//! answer — no free text to pick JSON out of.

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use serde_json::{Value, json};

use super::http::{HttpClient, endpoint_url};
use super::{ModelConfig, nothing_to_ask, parse_json, usage, warn_if_plain};
use crate::dream::model::Reflection;
use crate::dream::reflector::prompt::{Prompt, TOOL_NAME, parse_output};
use crate::dream::reflector::{ReflectError, ReflectFuture, ReflectRequest, Reflector};

/// The public API.
pub const DEFAULT_ENDPOINT: &str = "https://api.anthropic.com";
/// A model for when the schedule names none: capable of tool use, priced for scheduled passes.
pub const DEFAULT_MODEL: &str = "claude-sonnet-4-5";
/// The Messages API version this reflector speaks.
pub const API_VERSION: &str = "2023-06-01";

/// Reflects with a Claude model through the Messages API.
pub struct AnthropicReflector {
    name: String,
    config: ModelConfig,
    http: HttpClient,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl AnthropicReflector {
    /// A reflector for `config`. Fails when the endpoint is not a usable URL or there is no API
    /// key, so that a misconfigured schedule fails before any session is read.
    pub fn new(config: ModelConfig) -> Result<AnthropicReflector, ReflectError> {
        let url = endpoint_url(config.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT), "/v1/messages")?;
        let endpoint = url.to_string();
        let key = config
            .api_key
            .as_ref()
            .ok_or_else(|| ReflectError::MissingApiKey {
                endpoint: endpoint.clone(),
            })?
            .header_value("", &endpoint)?;
        warn_if_plain(&url, true);
        let headers = vec![
            (HeaderName::from_static("x-api-key"), key),
            (
                HeaderName::from_static("anthropic-version"),
                HeaderValue::from_static(API_VERSION),
            ),
        ];
        Ok(AnthropicReflector {
            name: format!("anthropic/{}", config.model),
            http: HttpClient::new(url, config.timeout, config.retry.clone()),
            config,
            headers,
        })
    }

    fn body(&self, prompt: &Prompt) -> Value {
        json!({
            "model": self.config.model,
            "max_tokens": self.config.max_output_tokens,
            "system": prompt.system,
            "messages": [{"role": "user", "content": prompt.user}],
            "tools": [{
                "name": TOOL_NAME,
                "description": "Propose lessons for the agent's memory, each citing the candidates it rests on.",
                "input_schema": prompt.schema,
            }],
            "tool_choice": {"type": "tool", "name": TOOL_NAME},
        })
    }

    async fn run(&self, request: &ReflectRequest<'_>) -> Result<Reflection, ReflectError> {
        let prompt = Prompt::build_within(request, self.config.max_input_tokens.map(|t| t as usize));
        if prompt.is_empty() {
            return Ok(nothing_to_ask(&prompt));
        }
        let body = Bytes::from(self.body(&prompt).to_string());
        let answer = self.http.post_json(&self.headers, body).await?;
        read_answer(self.http.label(), &answer)
    }
}

impl Reflector for AnthropicReflector {
    fn name(&self) -> &str {
        &self.name
    }

    fn reflect<'a>(&'a self, request: &'a ReflectRequest<'a>) -> ReflectFuture<'a> {
        Box::pin(self.run(request))
    }
}

/// The reflection in a Messages API answer: the forced tool call's input, and the usage.
fn read_answer(endpoint: &str, body: &Bytes) -> Result<Reflection, ReflectError> {
    let schema = |cause: String| ReflectError::Schema {
        endpoint: endpoint.to_string(),
        cause,
    };
    let value = parse_json(endpoint, body)?;
    let stop_reason = value.get("stop_reason").and_then(Value::as_str).unwrap_or("none");
    if stop_reason == "max_tokens" {
        return Err(schema(
            "the answer was cut off at max_tokens; raise the reflector's maxOutputTokens".to_string(),
        ));
    }
    let content = value
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| schema("it has no content array".to_string()))?;
    let tool_use = content
        .iter()
        .find(|block| block.get("type") == Some(&json!("tool_use")) && block.get("name") == Some(&json!(TOOL_NAME)))
        .ok_or_else(|| {
            schema(format!(
                "it has no {TOOL_NAME} tool_use block (stop_reason {stop_reason}); use a model that supports tool use"
            ))
        })?;
    let input = tool_use.get("input").cloned().unwrap_or(Value::Null);
    let (summary, lessons) = parse_output(input).map_err(schema)?;
    let usage_of = value.get("usage").cloned().unwrap_or(Value::Null);
    Ok(Reflection {
        lessons,
        summary,
        // Cached prompt tokens are input too, billed at other rates; the stats count them all.
        tokens_in: usage(&usage_of, "input_tokens")
            + usage(&usage_of, "cache_creation_input_tokens")
            + usage(&usage_of, "cache_read_input_tokens"),
        tokens_out: usage(&usage_of, "output_tokens"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_required() {
        let error = AnthropicReflector::new(ModelConfig::new(DEFAULT_MODEL)).err().unwrap();
        assert!(matches!(error, ReflectError::MissingApiKey { .. }));
        assert!(
            error
                .to_string()
                .starts_with("no API key for https://api.anthropic.com/v1/messages")
        );
    }

    #[test]
    fn the_key_never_shows_in_debug_output() {
        let config = ModelConfig {
            api_key: crate::reflectors::ApiKey::new("sk-ant-secret\n"),
            ..ModelConfig::new(DEFAULT_MODEL)
        };
        assert!(!format!("{config:?}").contains("sk-ant-secret"));
        let reflector = AnthropicReflector::new(config).unwrap();
        assert_eq!(reflector.name(), "anthropic/claude-sonnet-4-5");
        assert!(!format!("{:?}", reflector.headers).contains("sk-ant-secret"));
    }

    #[test]
    fn answers_are_read_from_the_tool_call() {
        let body = Bytes::from(
            json!({
                "content": [
                    {"type": "text", "text": "Here you go."},
                    {"type": "tool_use", "id": "t1", "name": TOOL_NAME, "input": {"summary": "s", "lessons": []}}
                ],
                "stop_reason": "tool_use",
                "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 7}
            })
            .to_string(),
        );
        let reflection = read_answer("e", &body).unwrap();
        assert_eq!(
            (reflection.summary.as_str(), reflection.tokens_in, reflection.tokens_out),
            ("s", 15, 7)
        );
        let cut = Bytes::from(json!({"content": [], "stop_reason": "max_tokens"}).to_string());
        assert!(
            read_answer("e", &cut)
                .unwrap_err()
                .to_string()
                .contains("maxOutputTokens")
        );
    }
}
