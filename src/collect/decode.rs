//! OTLP/HTTP request bodies in, responses out: the wire half of `reverie collect`.
//!
//! Both encodings the OTLP/HTTP specification defines are read: binary protobuf
//! (`application/x-protobuf`, what SDKs and the Collector send by default) and JSON
//! (`application/json`), gzip-compressed or not. Protobuf is turned into the OTLP/JSON shape
//! (hex ids, decimal-string 64-bit integers, `AnyValue` objects) so the assembler and the
//! `otlp` importer see one format. Responses use the request's encoding, as the specification
//! requires.

use std::io::Read;

use base64::Engine;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span, span};
use prost::Message;
use serde_json::{Value, json};

/// The two encodings of OTLP/HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    /// The encoding of a `Content-Type` (parameters such as `charset` are ignored).
    pub fn of(content_type: Option<&str>) -> Result<Encoding, DecodeError> {
        let media = content_type
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim();
        match media.to_ascii_lowercase().as_str() {
            "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
            "application/json" => Ok(Encoding::Json),
            _ => Err(DecodeError::MediaType(media.to_string())),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unsupported Content-Type {0:?}: send application/x-protobuf or application/json")]
    MediaType(String),
    #[error("unsupported Content-Encoding {0:?}: send gzip or no encoding")]
    ContentEncoding(String),
    #[error("the request is larger than {0} bytes once decompressed")]
    TooLarge(usize),
    #[error("the gzip body is corrupt: {0}")]
    Gzip(std::io::Error),
    #[error("not an ExportTraceServiceRequest: {0}")]
    Malformed(String),
}

/// The body after `Content-Encoding`, refused past `limit` bytes (a small gzip body can
/// inflate to gigabytes).
pub fn decompress(body: &[u8], content_encoding: Option<&str>, limit: usize) -> Result<Vec<u8>, DecodeError> {
    match content_encoding.map(str::trim).unwrap_or_default() {
        "" | "identity" => Ok(body.to_vec()),
        "gzip" => {
            let mut inflated = Vec::new();
            flate2::read::GzDecoder::new(body)
                .take(limit as u64 + 1)
                .read_to_end(&mut inflated)
                .map_err(DecodeError::Gzip)?;
            if inflated.len() > limit {
                return Err(DecodeError::TooLarge(limit));
            }
            Ok(inflated)
        }
        other => Err(DecodeError::ContentEncoding(other.to_string())),
    }
}

/// The request as OTLP/JSON.
pub fn request(bytes: &[u8], encoding: Encoding) -> Result<Value, DecodeError> {
    match encoding {
        Encoding::Json => {
            let value: Value = serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
            if !value.is_object() {
                return Err(DecodeError::Malformed("the body is not a JSON object".into()));
            }
            Ok(value)
        }
        Encoding::Protobuf => {
            let request =
                ExportTraceServiceRequest::decode(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
            Ok(request_json(&request))
        }
    }
}

fn request_json(request: &ExportTraceServiceRequest) -> Value {
    let resource_spans: Vec<Value> = request
        .resource_spans
        .iter()
        .map(|rs| {
            let scope_spans: Vec<Value> =
                rs.scope_spans
                    .iter()
                    .map(|ss| {
                        let scope = ss.scope.as_ref().map_or(Value::Null, |s| {
                        json!({"name": s.name, "version": s.version, "attributes": attributes_json(&s.attributes)})
                    });
                        json!({"scope": scope, "spans": ss.spans.iter().map(span_json).collect::<Vec<_>>()})
                    })
                    .collect();
            let resource = rs
                .resource
                .as_ref()
                .map_or(Value::Null, |r| json!({"attributes": attributes_json(&r.attributes)}));
            json!({"resource": resource, "scopeSpans": scope_spans})
        })
        .collect();
    json!({ "resourceSpans": resource_spans })
}

fn span_json(span: &Span) -> Value {
    let status = span
        .status
        .as_ref()
        .map_or_else(|| json!({}), |s| json!({"code": s.code, "message": s.message}));
    json!({
        "traceId": hex::encode(&span.trace_id),
        "spanId": hex::encode(&span.span_id),
        "parentSpanId": hex::encode(&span.parent_span_id),
        "name": span.name,
        "kind": span.kind,
        "startTimeUnixNano": span.start_time_unix_nano.to_string(),
        "endTimeUnixNano": span.end_time_unix_nano.to_string(),
        "attributes": attributes_json(&span.attributes),
        "events": span.events.iter().map(event_json).collect::<Vec<_>>(),
        "status": status,
    })
}

fn event_json(event: &span::Event) -> Value {
    json!({
        "timeUnixNano": event.time_unix_nano.to_string(),
        "name": event.name,
        "attributes": attributes_json(&event.attributes),
    })
}

fn attributes_json(attributes: &[KeyValue]) -> Value {
    Value::Array(
        attributes
            .iter()
            .map(|kv| json!({"key": kv.key, "value": kv.value.as_ref().map_or(json!({}), any_value_json)}))
            .collect(),
    )
}

fn any_value_json(value: &AnyValue) -> Value {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => json!({ "stringValue": s }),
        Some(any_value::Value::BoolValue(b)) => json!({ "boolValue": b }),
        Some(any_value::Value::IntValue(i)) => json!({ "intValue": i.to_string() }),
        Some(any_value::Value::DoubleValue(d)) => json!({ "doubleValue": d }),
        Some(any_value::Value::ArrayValue(a)) => {
            json!({"arrayValue": {"values": a.values.iter().map(any_value_json).collect::<Vec<_>>()}})
        }
        Some(any_value::Value::KvlistValue(kv)) => json!({"kvlistValue": {"values": attributes_json(&kv.values)}}),
        Some(any_value::Value::BytesValue(b)) => {
            json!({ "bytesValue": base64::engine::general_purpose::STANDARD.encode(b) })
        }
        // Dictionary references belong to the profiles signal; a trace has no dictionary.
        Some(any_value::Value::StringValueStrindex(_)) | None => json!({}),
    }
}

/// The success response, with OTLP's partial success when some spans were refused.
pub fn success(encoding: Encoding, rejected: u64, message: &str) -> Vec<u8> {
    let partial_success = (rejected > 0).then(|| ExportTracePartialSuccess {
        rejected_spans: i64::try_from(rejected).unwrap_or(i64::MAX),
        error_message: message.to_string(),
    });
    match encoding {
        Encoding::Protobuf => ExportTraceServiceResponse { partial_success }.encode_to_vec(),
        Encoding::Json => {
            let body = match partial_success {
                Some(p) => {
                    json!({"partialSuccess": {"rejectedSpans": p.rejected_spans.to_string(), "errorMessage": p.error_message}})
                }
                None => json!({}),
            };
            body.to_string().into_bytes()
        }
    }
}

/// `google.rpc.Status`, the body of an OTLP/HTTP error response.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// gRPC codes used in error bodies.
pub const INVALID_ARGUMENT: i32 = 3;
pub const RESOURCE_EXHAUSTED: i32 = 8;
pub const UNAVAILABLE: i32 = 14;

/// An error response body.
pub fn status(encoding: Encoding, code: i32, message: &str) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => RpcStatus {
            code,
            message: message.to_string(),
        }
        .encode_to_vec(),
        Encoding::Json => json!({"code": code, "message": message}).to_string().into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status};

    use super::*;

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..KeyValue::default()
        }
    }

    fn protobuf_request() -> ExportTraceServiceRequest {
        let span = Span {
            trace_id: vec![0xab; 16],
            span_id: vec![0x01; 8],
            name: "execute_tool lookup".into(),
            start_time_unix_nano: 1_764_000_000_000_000_000,
            end_time_unix_nano: 1_764_000_001_000_000_000,
            attributes: vec![
                kv(
                    "gen_ai.operation.name",
                    any_value::Value::StringValue("execute_tool".into()),
                ),
                kv("gen_ai.tool.name", any_value::Value::StringValue("lookup".into())),
                kv("retries", any_value::Value::IntValue(3)),
                kv(
                    "tags",
                    any_value::Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
                        values: vec![AnyValue {
                            value: Some(any_value::Value::BoolValue(true)),
                        }],
                    }),
                ),
            ],
            status: Some(Status {
                code: 2,
                message: "Error: timeout".into(),
            }),
            ..Span::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", any_value::Value::StringValue("support".into()))],
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![span],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
    }

    #[test]
    fn protobuf_becomes_the_otlp_json_shape() {
        let bytes = protobuf_request().encode_to_vec();
        let value = request(&bytes, Encoding::Protobuf).unwrap();
        let span = &value["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "abababababababababababababababab");
        assert_eq!(span["startTimeUnixNano"], "1764000000000000000");
        assert_eq!(span["status"], json!({"code": 2, "message": "Error: timeout"}));
        assert_eq!(
            span["attributes"][2],
            json!({"key": "retries", "value": {"intValue": "3"}})
        );
        assert_eq!(
            span["attributes"][3]["value"],
            json!({"arrayValue": {"values": [{"boolValue": true}]}})
        );
        assert_eq!(
            value["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
            "support"
        );
    }

    #[test]
    fn gzip_is_inflated_within_the_limit_and_refused_past_it() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![b'{'; 100_000]).unwrap();
        let body = gz.finish().unwrap();
        assert!(body.len() < 1_000, "a small body");
        assert_eq!(decompress(&body, Some("gzip"), 200_000).unwrap().len(), 100_000);
        assert!(matches!(
            decompress(&body, Some("gzip"), 10_000),
            Err(DecodeError::TooLarge(10_000))
        ));
        assert!(matches!(
            decompress(b"not gzip", Some("gzip"), 10),
            Err(DecodeError::Gzip(_))
        ));
        assert!(matches!(
            decompress(b"x", Some("br"), 10),
            Err(DecodeError::ContentEncoding(_))
        ));
    }

    #[test]
    fn media_types_and_broken_bodies_are_named() {
        assert_eq!(
            Encoding::of(Some("application/json; charset=utf-8")).unwrap(),
            Encoding::Json
        );
        assert_eq!(
            Encoding::of(Some("application/x-protobuf")).unwrap(),
            Encoding::Protobuf
        );
        assert!(Encoding::of(Some("text/plain")).is_err());
        assert!(Encoding::of(None).is_err());
        assert!(matches!(
            request(b"[1]", Encoding::Json),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            request(b"\xff\xff\xff", Encoding::Protobuf),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn responses_speak_the_request_s_encoding() {
        let body = success(Encoding::Protobuf, 2, "unknown agent billing");
        let decoded = ExportTraceServiceResponse::decode(body.as_slice()).unwrap();
        assert_eq!(decoded.partial_success.unwrap().rejected_spans, 2);
        assert!(
            ExportTraceServiceResponse::decode(success(Encoding::Protobuf, 0, "").as_slice())
                .unwrap()
                .partial_success
                .is_none()
        );
        let json: Value = serde_json::from_slice(&success(Encoding::Json, 1, "m")).unwrap();
        assert_eq!(json["partialSuccess"]["rejectedSpans"], "1");
        let error: Value = serde_json::from_slice(&status(Encoding::Json, UNAVAILABLE, "busy")).unwrap();
        assert_eq!(error, json!({"code": 14, "message": "busy"}));
    }
}
