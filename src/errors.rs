//! Error text for logs and client-facing messages: an error with all its sources on one line,
//! each said once. The bottom of the module graph: no `crate::` imports, so every layer
//! (stores, etcd, restore, operations, the CLI) can use the one rendering.

/// An error and all its sources joined with ": ", for logs and client-facing messages.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some library errors repeat their source's text in their own; say it once.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Layered {
        text: &'static str,
        #[source]
        source: Option<Box<Layered>>,
    }

    #[test]
    fn error_chain_joins_sources_and_says_repeated_text_once() {
        let inner = Layered {
            text: "no such file",
            source: None,
        };
        let repeating = Layered {
            text: "failed to read kubeconfig: no such file",
            source: Some(Box::new(inner)),
        };
        let outer = Layered {
            text: "failed to set up access",
            source: Some(Box::new(repeating)),
        };
        assert_eq!(
            error_chain(&outer),
            "failed to set up access: failed to read kubeconfig: no such file"
        );
    }
}
