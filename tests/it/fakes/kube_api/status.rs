//! `Status` bodies of the Kubernetes API stand-in, shaped and worded like the apiserver's so that
//! kube-rs turns them into `kube::Error::Api` with the same reason, code and message a real
//! cluster would give. Pure builders; the caller chooses the HTTP code from `ApiError::code`.

use serde_json::{Value, json};

use super::paths::Target;

/// A failed request: the HTTP code and the `Status` object sent as its body.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub body: Value,
}

/// The apiserver's `reason` for an HTTP code (what `fail_next` injects).
pub fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    }
}

fn failure(code: u16, reason: &str, message: String, details: Option<Value>) -> ApiError {
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(details) = details {
        body["details"] = details;
    }
    ApiError { code, body }
}

/// `{"name", "group"?, "kind": <resource>}` as the apiserver fills `details`.
fn details(target: &Target, name: &str) -> Value {
    let mut details = json!({ "name": name, "kind": target.resource });
    if !target.group.is_empty() {
        details["group"] = json!(target.group);
    }
    details
}

pub fn not_found(target: &Target, name: &str) -> ApiError {
    let message = format!("{} \"{name}\" not found", target.qualified_resource());
    failure(404, "NotFound", message, Some(details(target, name)))
}

pub fn already_exists(target: &Target, name: &str) -> ApiError {
    let message = format!("{} \"{name}\" already exists", target.qualified_resource());
    failure(409, "AlreadyExists", message, Some(details(target, name)))
}

pub fn conflict(target: &Target, name: &str) -> ApiError {
    let message = format!(
        "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
         please apply your changes to the latest version and try again",
        target.qualified_resource()
    );
    failure(409, "Conflict", message, Some(details(target, name)))
}

/// An RBAC denial worded like the authorizer's.
pub fn forbidden(target: &Target, verb: &str) -> ApiError {
    let name = target.name.clone().unwrap_or_default();
    let subject = if name.is_empty() {
        target.qualified_resource()
    } else {
        format!("{} \"{name}\"", target.qualified_resource())
    };
    let scope = match &target.namespace {
        Some(ns) => format!(" in the namespace \"{ns}\""),
        None => " at the cluster scope".to_string(),
    };
    let message = format!(
        "{subject} is forbidden: User \"system:serviceaccount:kube-system:etcd-snapshot\" \
         cannot {verb} resource \"{}\" in API group \"{}\"{scope}",
        target.resource, target.group
    );
    failure(403, "Forbidden", message, Some(details(target, &name)))
}

pub fn unauthorized() -> ApiError {
    failure(401, "Unauthorized", "Unauthorized".into(), None)
}

/// A field error (422): `<Kind> "<name>" is invalid: <field>: <problem>`.
pub fn invalid(target: &Target, kind: &str, name: &str, cause: &str) -> ApiError {
    let message = format!("{kind} \"{name}\" is invalid: {cause}");
    let mut details = details(target, name);
    details["kind"] = json!(kind);
    failure(422, "Invalid", message, Some(details))
}

pub fn bad_request(message: impl Into<String>) -> ApiError {
    failure(400, "BadRequest", message.into(), None)
}

pub fn method_not_allowed(method: &str) -> ApiError {
    let message =
        format!("the server does not allow this method on the requested resource ({method})");
    failure(405, "MethodNotAllowed", message, None)
}

pub fn unsupported_media_type(content_type: &str) -> ApiError {
    let message = format!("the body of the request was in an unknown format: {content_type}");
    failure(415, "UnsupportedMediaType", message, None)
}

/// What a watch from a compacted resourceVersion gets (as an ERROR watch event).
pub fn expired(rv: &str) -> ApiError {
    let message = format!("too old resource version: {rv}");
    failure(410, "Expired", message, None)
}

/// A path the stand-in does not serve (discovery, `/version`, unknown subresources).
pub fn no_route(path: &str) -> ApiError {
    failure(
        404,
        "NotFound",
        format!("the server could not find the requested resource ({path})"),
        None,
    )
}

/// The error `fail_next` injects for `code` on `target`: the realistic wording for the codes the
/// apiserver gives a meaning to, a plain internal error otherwise.
pub fn injected(code: u16, target: Option<&Target>, verb: &str) -> ApiError {
    let name = target.and_then(|t| t.name.clone()).unwrap_or_default();
    match (code, target) {
        (401, _) => unauthorized(),
        (403, Some(t)) => forbidden(t, verb),
        (404, Some(t)) => not_found(t, &name),
        (409, Some(t)) => conflict(t, &name),
        _ => failure(
            code,
            reason_for(code),
            format!("Internal error occurred: injected failure ({code})"),
            None,
        ),
    }
}

/// `status: Success` with the deleted object's identity (what DELETE on built-ins returns).
pub fn deleted(target: &Target, name: &str, uid: &str) -> Value {
    let mut details = details(target, name);
    details["uid"] = json!(uid);
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::kube_api::paths::parse;

    #[test]
    fn not_found_matches_the_apiserver_shape() {
        let t = parse("/api/v1/namespaces/kube-system/secrets/x").unwrap();
        let e = not_found(&t, "x");
        assert_eq!(e.code, 404);
        assert_eq!(
            e.body,
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                   "message":"secrets \"x\" not found","reason":"NotFound",
                   "details":{"name":"x","kind":"secrets"},"code":404})
        );
    }

    #[test]
    fn group_resources_are_qualified() {
        let t = parse("/apis/k3s.cattle.io/v1/etcdsnapshotfiles/a").unwrap();
        let e = conflict(&t, "a");
        assert!(
            e.body["message"].as_str().unwrap().starts_with(
                "Operation cannot be fulfilled on etcdsnapshotfiles.k3s.cattle.io \"a\""
            )
        );
        assert_eq!(e.body["details"]["group"], "k3s.cattle.io");
        let f = forbidden(&t, "delete");
        assert_eq!(f.body["reason"], "Forbidden");
        assert!(
            f.body["message"]
                .as_str()
                .unwrap()
                .contains("at the cluster scope")
        );
    }

    #[test]
    fn injected_codes_get_their_reasons() {
        assert_eq!(injected(500, None, "get").body["reason"], "InternalError");
        assert_eq!(
            injected(503, None, "get").body["reason"],
            "ServiceUnavailable"
        );
        assert_eq!(injected(401, None, "get").code, 401);
    }
}
