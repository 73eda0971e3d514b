//! Observability: tracing setup, Prometheus metrics, and the progress a CLI run reports.

pub mod delta_metrics;
pub mod exposition;
pub mod logging;
pub mod metrics;
pub mod progress;
