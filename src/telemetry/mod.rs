//! Observability: tracing setup and Prometheus metrics.

pub mod exposition;
pub mod logging;
pub mod metrics;
pub mod progress;
