//! stub (helper A replaces)
use super::Resolved;

pub fn render(resolved: &Resolved, with_sources: bool) -> String {
    let _ = (resolved, with_sources);
    todo!()
}
