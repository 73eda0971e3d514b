//! The `s3` block of a snapshot request, with RKE2's JSON field names (`config.EtcdS3`).
//!
//! Wire shape only: it neither validates values nor decides what an unset field means (that is
//! `request.rs` and the config engine). Secrets are `SecretString` from the moment they are
//! decoded: Debug shows them redacted (and a proxy URL without its user info), and a decode
//! error never repeats a secret field's value.
//! Serializing emits them, because the CLI must send them to the server.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Unexpected, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// RKE2's S3 settings for one request. Every field is optional: our CLI sends only what the user
/// set; RKE2's CLI sends them all, with "" for unset strings.
#[derive(Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct S3Request {
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "expose_secret"
    )]
    pub access_key: Option<SecretString>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "expose_secret"
    )]
    pub secret_key: Option<SecretString>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "expose_secret"
    )]
    pub session_token: Option<SecretString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket_lookup: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(rename = "endpointCA", skip_serializing_if = "Option::is_none")]
    pub endpoint_ca: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    #[serde(rename = "skipSSLVerify", skip_serializing_if = "Option::is_none")]
    pub skip_ssl_verify: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<i64>,
    /// A Go duration string such as `5m0s`, as RKE2 sends it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// The JSON field names of the block, in RKE2's order; anything else is refused.
pub const S3_FIELDS: &[&str] = &[
    "accessKey",
    "secretKey",
    "sessionToken",
    "bucket",
    "bucketLookup",
    "configSecret",
    "endpoint",
    "endpointCA",
    "folder",
    "proxy",
    "region",
    "insecure",
    "skipSSLVerify",
    "retention",
    "timeout",
];

/// Written by hand for the proxy: `http://user:password@proxy:3128` shows as
/// `http://<redacted>@proxy:3128` (the keys are `SecretString`s and redact themselves).
impl fmt::Debug for S3Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proxy = self
            .proxy
            .as_deref()
            .map(crate::config::desired::redact_userinfo);
        f.debug_struct("S3Request")
            .field("access_key", &self.access_key)
            .field("secret_key", &self.secret_key)
            .field("session_token", &self.session_token)
            .field("bucket", &self.bucket)
            .field("bucket_lookup", &self.bucket_lookup)
            .field("config_secret", &self.config_secret)
            .field("endpoint", &self.endpoint)
            .field("endpoint_ca", &self.endpoint_ca)
            .field("folder", &self.folder)
            .field("proxy", &proxy)
            .field("region", &self.region)
            .field("insecure", &self.insecure)
            .field("skip_ssl_verify", &self.skip_ssl_verify)
            .field("retention", &self.retention)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl PartialEq for S3Request {
    fn eq(&self, other: &Self) -> bool {
        let secret = |a: &Option<SecretString>, b: &Option<SecretString>| {
            a.as_ref().map(|s| s.expose_secret()) == b.as_ref().map(|s| s.expose_secret())
        };
        secret(&self.access_key, &other.access_key)
            && secret(&self.secret_key, &other.secret_key)
            && secret(&self.session_token, &other.session_token)
            && self.bucket == other.bucket
            && self.bucket_lookup == other.bucket_lookup
            && self.config_secret == other.config_secret
            && self.endpoint == other.endpoint
            && self.endpoint_ca == other.endpoint_ca
            && self.folder == other.folder
            && self.proxy == other.proxy
            && self.region == other.region
            && self.insecure == other.insecure
            && self.skip_ssl_verify == other.skip_ssl_verify
            && self.retention == other.retention
            && self.timeout == other.timeout
    }
}

fn expose_secret<S: Serializer>(value: &Option<SecretString>, ser: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(secret) => ser.serialize_str(secret.expose_secret()),
        None => ser.serialize_none(),
    }
}

impl<'de> Deserialize<'de> for S3Request {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(S3Visitor)
    }
}

struct S3Visitor;

impl<'de> Visitor<'de> for S3Visitor {
    type Value = S3Request;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an s3 object with RKE2's field names")
    }

    // A repeated field keeps its last value, as Go's decoder does.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<S3Request, A::Error> {
        let mut s3 = S3Request::default();
        while let Some(field) = map.next_key::<String>()? {
            match field.as_str() {
                "accessKey" => s3.access_key = map.next_value_seed(SecretVisitor("accessKey"))?,
                "secretKey" => s3.secret_key = map.next_value_seed(SecretVisitor("secretKey"))?,
                "sessionToken" => {
                    s3.session_token = map.next_value_seed(SecretVisitor("sessionToken"))?;
                }
                "bucket" => s3.bucket = map.next_value()?,
                "bucketLookup" => s3.bucket_lookup = map.next_value()?,
                "configSecret" => s3.config_secret = map.next_value()?,
                "endpoint" => s3.endpoint = map.next_value()?,
                "endpointCA" => s3.endpoint_ca = map.next_value()?,
                "folder" => s3.folder = map.next_value()?,
                "proxy" => s3.proxy = map.next_value()?,
                "region" => s3.region = map.next_value()?,
                "insecure" => s3.insecure = map.next_value()?,
                "skipSSLVerify" => s3.skip_ssl_verify = map.next_value()?,
                "retention" => s3.retention = map.next_value()?,
                "timeout" => s3.timeout = map.next_value()?,
                unknown => {
                    return Err(de::Error::custom(format!(
                        "unknown field {unknown:?} in s3 (expected one of: {})",
                        S3_FIELDS.join(", ")
                    )));
                }
            }
        }
        Ok(s3)
    }
}

/// Decodes a secret field's value (named for errors): a string or null. A value of another
/// type is refused without repeating it, since it may still be the secret.
struct SecretVisitor(&'static str);

impl<'de> DeserializeSeed<'de> for SecretVisitor {
    type Value = Option<SecretString>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl SecretVisitor {
    fn refuse<E: de::Error>(&self) -> Result<Option<SecretString>, E> {
        Err(E::invalid_type(
            Unexpected::Other("a non-string value"),
            self,
        ))
    }
}

impl<'de> Visitor<'de> for SecretVisitor {
    type Value = Option<SecretString>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a string for s3 field {:?}", self.0)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(SecretString::from(v)))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        self.refuse()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        self.refuse()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        self.refuse()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        self.refuse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_rke2_field_names_and_emits_secrets() {
        let s3 = S3Request {
            access_key: Some(SecretString::from("AK")),
            secret_key: Some(SecretString::from("SK")),
            bucket: Some("b".into()),
            endpoint_ca: Some("/ca.pem".into()),
            skip_ssl_verify: Some(true),
            retention: Some(3),
            ..Default::default()
        };
        let json = serde_json::to_string(&s3).unwrap();
        assert_eq!(
            json,
            r#"{"accessKey":"AK","secretKey":"SK","bucket":"b","endpointCA":"/ca.pem","skipSSLVerify":true,"retention":3}"#
        );
        assert_eq!(serde_json::from_str::<S3Request>(&json).unwrap(), s3);
    }

    #[test]
    fn every_listed_field_is_accepted() {
        let strings = ["insecure", "skipSSLVerify", "retention"];
        let body: Vec<String> = S3_FIELDS
            .iter()
            .filter(|f| !strings.contains(f))
            .map(|f| format!("{f:?}:\"x\""))
            .collect();
        let json = format!(
            "{{{},\"insecure\":false,\"skipSSLVerify\":false,\"retention\":5}}",
            body.join(",")
        );
        let s3: S3Request = serde_json::from_str(&json).unwrap();
        assert_eq!(s3.timeout.as_deref(), Some("x"));
        assert_eq!(s3.endpoint_ca.as_deref(), Some("x"));
        assert_eq!(
            s3.session_token.as_ref().map(|s| s.expose_secret()),
            Some("x")
        );
    }

    #[test]
    fn unknown_field_is_named_in_the_error() {
        let err = serde_json::from_str::<S3Request>(r#"{"bucket":"b","bukcet":"c"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field \"bukcet\" in s3"), "{err}");
        assert!(err.contains("bucket, bucketLookup"), "{err}");
    }

    #[test]
    fn secrets_stay_out_of_debug_and_decode_errors() {
        let s3: S3Request = serde_json::from_str(
            r#"{"accessKey":"AKIDLEAK","secretKey":null,"proxy":"http://bob:pr0xyLEAK@proxy:3128"}"#,
        )
        .unwrap();
        assert!(s3.secret_key.is_none());
        let shown = format!("{s3:?}");
        assert!(
            !shown.contains("AKIDLEAK") && !shown.contains("pr0xyLEAK"),
            "{shown}"
        );
        assert!(!shown.contains("bob"), "{shown}");
        assert!(shown.contains("proxy:3128"), "{shown}");
        let err = serde_json::from_str::<S3Request>(r#"{"secretKey":8675309}"#)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("8675309"), "{err}");
        assert!(err.contains("a string for s3 field \"secretKey\""), "{err}");
    }
}
