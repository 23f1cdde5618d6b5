//! Errors as one line a person can read: the message and each of its causes.

/// An error and its causes on one line (e.g. `... : Connection refused (os error 111)`). A
/// cause whose text the line already holds is not repeated: kube and hyper often embed their
/// source's message in their own.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Layer {
        text: &'static str,
        #[source]
        cause: Option<Box<Layer>>,
    }

    #[test]
    fn causes_are_joined_once_each() {
        let inner = Layer {
            text: "Connection refused (os error 111)",
            cause: None,
        };
        let middle = Layer {
            text: "client error (Connect)",
            cause: Some(Box::new(inner)),
        };
        let outer = Layer {
            text: "HTTP request failed: client error (Connect)",
            cause: Some(Box::new(middle)),
        };
        assert_eq!(
            error_chain(&outer),
            "HTTP request failed: client error (Connect): Connection refused (os error 111)"
        );
    }
}
