//! Generic metadata validation of the Kubernetes API stand-in: the checks the apiserver applies
//! to every type whatever its schema (object names are RFC 1123 subdomains, label values are
//! valid label values). Pure functions; no schema validation lives here or anywhere else.

use serde_json::Value;

use super::paths::Target;
use super::status::{self, ApiError};

fn is_dns_label(s: &str, max: usize) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !s.is_empty()
        && s.len() <= max
        && s.chars().all(|c| alnum(c) || c == '-')
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

/// RFC 1123 subdomain, as object names must be.
pub fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(|part| is_dns_label(part, 63))
}

fn is_label_value(v: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    v.is_empty()
        || (v.len() <= 63
            && v.chars().all(ok)
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// Name and label checks every type gets from the apiserver's generic metadata validation.
pub fn validate_metadata(target: &Target, kind: &str, object: &Value) -> Result<(), ApiError> {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    if !is_dns_subdomain(name) {
        let cause = format!(
            "metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must \
             consist of lower case alphanumeric characters, '-' or '.', and must start and end \
             with an alphanumeric character"
        );
        return Err(status::invalid(target, kind, name, &cause));
    }
    let labels = object["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (key, value) in labels {
        let value = value.as_str().unwrap_or("\u{0}");
        if !is_label_value(value) {
            let cause = format!(
                "metadata.labels: Invalid value: \"{value}\": a valid label must be an empty \
                 string or consist of alphanumeric characters, '-', '_' or '.', and must start \
                 and end with an alphanumeric character (label {key})"
            );
            return Err(status::invalid(target, kind, name, &cause));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_follow_the_apiserver_rules() {
        assert!(is_dns_subdomain("local-on-demand-node-1-1700000000-a1b2c3"));
        assert!(is_dns_subdomain("etcd-snapshot-node.zip"));
        assert!(!is_dns_subdomain("Upper"));
        assert!(!is_dns_subdomain("-lead"));
        assert!(!is_dns_subdomain(&"a".repeat(254)));
        assert!(is_label_value("s3") && is_label_value("") && is_label_value("A_b.c-1"));
        assert!(!is_label_value("a/b") && !is_label_value(&"x".repeat(64)));
    }
}
