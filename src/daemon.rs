//! Wires the server tasks.
