//! Stand-ins for services we do not run for real: an in-process, signature-checking S3 server
//! (s3s + s3s-fs) and a Kubernetes API server, with helpers to point the product at them, and
//! the tests that prove each stand-in answers as the real service does.

pub mod kube_api;
mod kube_api_tests;
pub mod kube_support;
mod s3_etags;
pub mod s3_support;
