//! Observability: tracing setup and Prometheus metrics.

pub mod logging;
pub mod metrics;
