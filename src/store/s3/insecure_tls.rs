//! The HTTP connector behind `--etcd-s3-skip-ssl-verify`: TLS without certificate verification.
//!
//! The SDK's own connector has no "accept any certificate" switch, so this one wraps hyper-util
//! and hyper-rustls directly. Only the certificate check is off: handshake signatures are still
//! verified, so the peer must hold the key of the certificate it shows. Owns no other policy.

use std::sync::Arc;

use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;

use crate::tls_verify::AcceptAnyCertificate;

type HttpsClient = Client<hyper_rustls::HttpsConnector<TcpConnector>, SdkBody>;

/// Builds the shared connector once, so its connection pool is reused by every request.
pub fn connector() -> Result<SharedHttpConnector, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build();
    let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
    Ok(SharedHttpConnector::new(NoVerifyConnector { client }))
}

#[derive(Debug, Clone)]
struct NoVerifyConnector {
    client: HttpsClient,
}

impl HttpConnector for NoVerifyConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        HttpConnectorFuture::new(async move {
            let request = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::other(e.into(), None))?;
            let response = client.request(request).await.map_err(|e| {
                if e.is_connect() {
                    ConnectorError::io(e.into())
                } else {
                    ConnectorError::other(e.into(), None)
                }
            })?;
            let (parts, body) = response.into_parts();
            let response = http::Response::from_parts(parts, SdkBody::from_body_1_x(body));
            HttpResponse::try_from(response).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}
