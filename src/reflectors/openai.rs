//! A reflector backed by any OpenAI-compatible chat-completions endpoint
//! (`POST {endpoint}/v1/chat/completions`): OpenAI itself, or a self-hosted model (vLLM, Ollama,
//! llama.cpp, a gateway) so that transcripts never leave the cluster.
//!
//! The answer is shaped with `response_format: json_schema` in strict mode; the message content
//! is that JSON. Servers that honour the schema loosely sometimes wrap it in a Markdown code
//! fence, which is tolerated.

use bytes::Bytes;
use hyper::header::{AUTHORIZATION, HeaderName, HeaderValue};
use serde_json::{Value, json};

use super::http::{HttpClient, endpoint_url};
use super::{ModelConfig, nothing_to_ask, parse_json, usage, warn_if_plain};
use crate::dream::model::Reflection;
use crate::dream::reflector::prompt::{Prompt, TOOL_NAME, parse_output};
use crate::dream::reflector::{ReflectError, ReflectFuture, ReflectRequest, Reflector};

/// The public API.
pub const DEFAULT_ENDPOINT: &str = "https://api.openai.com";
/// A model for when the schedule names none: supports strict structured outputs, priced for
/// scheduled passes.
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";
/// The host of the public API, which needs a key and names the output bound
/// `max_completion_tokens` (its reasoning models reject `max_tokens`).
const OPENAI_HOST: &str = "api.openai.com";

/// Reflects with a model behind an OpenAI-compatible endpoint.
pub struct OpenAiReflector {
    name: String,
    config: ModelConfig,
    http: HttpClient,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The body field bounding the answer: `max_completion_tokens` for the public API,
    /// `max_tokens` (what compatible servers all accept) elsewhere.
    max_tokens_field: &'static str,
}

impl OpenAiReflector {
    /// A reflector for `config`. Fails when the endpoint is not a usable URL, or when it is the
    /// public API and there is no key; a self-hosted endpoint may need none, and then no
    /// `Authorization` header is sent.
    pub fn new(config: ModelConfig) -> Result<OpenAiReflector, ReflectError> {
        let url = endpoint_url(
            config.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT),
            "/v1/chat/completions",
        )?;
        let endpoint = url.to_string();
        let public = url.host() == Some(OPENAI_HOST);
        let mut headers = Vec::new();
        match &config.api_key {
            Some(key) => headers.push((AUTHORIZATION, key.header_value("Bearer ", &endpoint)?)),
            None if public => return Err(ReflectError::MissingApiKey { endpoint }),
            None => {}
        }
        warn_if_plain(&url, config.api_key.is_some());
        Ok(OpenAiReflector {
            name: format!("openai/{}", config.model),
            http: HttpClient::new(url, config.timeout, config.retry.clone()),
            config,
            headers,
            max_tokens_field: if public { "max_completion_tokens" } else { "max_tokens" },
        })
    }

    fn body(&self, prompt: &Prompt) -> Value {
        let mut body = json!({
            "model": self.config.model,
            "messages": [
                {"role": "system", "content": prompt.system},
                {"role": "user", "content": prompt.user},
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": TOOL_NAME, "strict": true, "schema": prompt.schema},
            },
        });
        body[self.max_tokens_field] = json!(self.config.max_output_tokens);
        body
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

impl Reflector for OpenAiReflector {
    fn name(&self) -> &str {
        &self.name
    }

    fn reflect<'a>(&'a self, request: &'a ReflectRequest<'a>) -> ReflectFuture<'a> {
        Box::pin(self.run(request))
    }
}

/// The reflection in a chat-completions answer: the first choice's content as JSON, and the
/// usage.
fn read_answer(endpoint: &str, body: &Bytes) -> Result<Reflection, ReflectError> {
    let schema = |cause: String| ReflectError::Schema {
        endpoint: endpoint.to_string(),
        cause,
    };
    let value = parse_json(endpoint, body)?;
    let choice = value
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or_else(|| schema("it has no choices".to_string()))?;
    let message = choice.get("message").unwrap_or(&Value::Null);
    if let Some(refusal) = message.get("refusal").and_then(Value::as_str) {
        return Err(schema(format!(
            "the model refused ({}); adjust the reflector instructions or the model",
            crate::dream::reflector::truncate_chars(refusal, 200)
        )));
    }
    if choice.get("finish_reason").and_then(Value::as_str) == Some("length") {
        return Err(schema(
            "the answer was cut off at the output limit; raise the reflector's maxOutputTokens".to_string(),
        ));
    }
    let content = message
        .get("content")
        .and_then(Value::as_str)
        .ok_or_else(|| schema("choices[0].message.content is not a string".to_string()))?;
    // The envelope was JSON but the answer in it is not: the server ignored `response_format`.
    let answer: Value = serde_json::from_str(strip_code_fence(content)).map_err(|e| {
        schema(format!(
            "choices[0].message.content is not JSON ({e}) but starts {:?}; use a model and server that support \
             response_format json_schema",
            super::http::excerpt(content.as_bytes(), 80)
        ))
    })?;
    let (summary, lessons) = parse_output(answer).map_err(schema)?;
    let usage_of = value.get("usage").cloned().unwrap_or(Value::Null);
    Ok(Reflection {
        lessons,
        summary,
        tokens_in: usage(&usage_of, "prompt_tokens"),
        tokens_out: usage(&usage_of, "completion_tokens"),
    })
}

/// The JSON inside a Markdown code fence (```` ```json … ``` ````), or the text as is.
fn strip_code_fence(content: &str) -> &str {
    let trimmed = content.trim();
    let Some(inner) = trimmed.strip_prefix("```") else {
        return trimmed;
    };
    let inner = inner.strip_suffix("```").unwrap_or(inner);
    // The info string ("json") runs to the end of the fence's first line.
    match inner.split_once('\n') {
        Some((info, rest)) if !info.trim_start().starts_with('{') => rest.trim(),
        _ => inner.trim(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reflectors::ApiKey;

    #[test]
    fn the_public_api_needs_a_key_and_a_self_hosted_one_does_not() {
        let error = OpenAiReflector::new(ModelConfig::new(DEFAULT_MODEL)).err().unwrap();
        assert!(matches!(error, ReflectError::MissingApiKey { .. }));
        let local = OpenAiReflector::new(ModelConfig {
            endpoint: Some("http://vllm.models:8000/v1".into()),
            ..ModelConfig::new("qwen3")
        })
        .unwrap();
        assert!(local.headers.is_empty());
        assert_eq!(local.max_tokens_field, "max_tokens");
        let public = OpenAiReflector::new(ModelConfig {
            api_key: ApiKey::new("sk-secret"),
            ..ModelConfig::new(DEFAULT_MODEL)
        })
        .unwrap();
        assert_eq!(public.max_tokens_field, "max_completion_tokens");
        assert!(!format!("{:?}", public.headers).contains("sk-secret"));
    }

    #[test]
    fn code_fences_are_tolerated() {
        assert_eq!(strip_code_fence("```json\n{\"a\":1}\n```"), "{\"a\":1}");
        assert_eq!(strip_code_fence("```{\"a\":1}```"), "{\"a\":1}");
        assert_eq!(strip_code_fence(" {\"a\":1} "), "{\"a\":1}");
    }

    #[test]
    fn refusals_and_cut_answers_are_explained() {
        let refusal =
            Bytes::from(json!({"choices": [{"message": {"content": null, "refusal": "I can't."}}]}).to_string());
        assert!(
            read_answer("e", &refusal)
                .unwrap_err()
                .to_string()
                .contains("refused (I can't.)")
        );
        let cut =
            Bytes::from(json!({"choices": [{"message": {"content": "{\"su"}, "finish_reason": "length"}]}).to_string());
        assert!(
            read_answer("e", &cut)
                .unwrap_err()
                .to_string()
                .contains("maxOutputTokens")
        );
    }
}
