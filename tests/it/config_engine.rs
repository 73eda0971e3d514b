//! Integration tests: config_engine.
