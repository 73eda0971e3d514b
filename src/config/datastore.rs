//! `datastore-endpoint`, in RKE2/k3s terms: `sqlite://<path>` names a kine SQLite database
//! (`state.db`) to snapshot instead of etcd. [`parse_datastore_endpoint`] is the pure parser
//! (a fuzz target in `config::fuzz_tests`); `check_datastore` turns its refusals into errors
//! naming the key, the value's source and what was expected.
//!
//! Only SQLite is taken. k3s also accepts MySQL, PostgreSQL and NATS URLs there: those
//! databases are backed up with their own tools (see the operator guide), so such a value is
//! refused with that advice rather than ignored. An etcd cluster is given with
//! `etcd-endpoints`. Which datastore a save actually uses (configured, detected from the data
//! dir, or etcd) is decided by `datastore::choose`.

use std::path::PathBuf;

use super::build::Parsed;
use super::desired::redact_userinfo;
use super::resolve::ConfigError;

/// The key.
pub const KEY: &str = "datastore-endpoint";

/// What `datastore-endpoint` accepts, for messages.
const EXPECTED: &str = "sqlite://<absolute path to kine's state.db>, e.g. \
     sqlite:///var/lib/rancher/k3s/server/db/state.db (query parameters such as ?_journal=WAL \
     are allowed and ignored)";

/// The SQLite database path of a `sqlite://` endpoint. Pure; the value is untrusted text.
pub fn parse_datastore_endpoint(text: &str) -> Result<PathBuf, String> {
    let text = text.trim();
    let scheme_end = text.find("://");
    let scheme = scheme_end.map_or("", |i| &text[..i]).to_ascii_lowercase();
    match scheme.as_str() {
        "sqlite" => {}
        "mysql" | "postgres" | "postgresql" | "nats" => {
            return Err(format!(
                "{EXPECTED}; a {scheme} datastore is backed up with the database's own tools \
                 (this tool snapshots etcd and SQLite only)"
            ));
        }
        "http" | "https" | "unix" | "unixs" => {
            return Err(format!(
                "{EXPECTED}; an etcd cluster is given with etcd-endpoints"
            ));
        }
        _ => return Err(EXPECTED.to_string()),
    }
    let rest = &text["sqlite://".len()..];
    let path = rest.split('?').next().unwrap_or("");
    if !path.starts_with('/') || path.contains('\0') || path.ends_with('/') {
        return Err(format!("{EXPECTED}; {path:?} is not an absolute file path"));
    }
    Ok(PathBuf::from(path))
}

/// The configured SQLite database, once `check_datastore` passed.
pub(super) fn sqlite_path(p: &Parsed) -> Option<PathBuf> {
    p.text(KEY)
        .filter(|t| !t.trim().is_empty())
        .and_then(|t| parse_datastore_endpoint(&t).ok())
}

/// A `datastore-endpoint` that does not parse, or one given together with `etcd-endpoints`.
pub(super) fn check_datastore(p: &Parsed, errors: &mut Vec<ConfigError>) {
    let Some(text) = p.text(KEY).filter(|t| !t.trim().is_empty()) else {
        return;
    };
    let mut fail = |expected: String| {
        let mut error = p.error(KEY, expected);
        // A MySQL or PostgreSQL URL may carry a password: never quote it.
        error.value = Some(redact_userinfo(&text).into_owned());
        errors.push(error);
    };
    if let Err(expected) = parse_datastore_endpoint(&text) {
        fail(expected);
        return;
    }
    if p.list("etcd-endpoints").is_some_and(|e| !e.is_empty()) {
        fail("no value while etcd-endpoints is set: a node snapshots one datastore".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::test_support::resolve_flags as run;

    #[test]
    fn sqlite_endpoints_give_their_path_and_others_say_why_not() {
        for (text, path) in [
            (
                "sqlite:///var/lib/rancher/k3s/server/db/state.db",
                "/var/lib/rancher/k3s/server/db/state.db",
            ),
            (
                " SQLite:///d/state.db?_journal=WAL&cache=shared ",
                "/d/state.db",
            ),
        ] {
            assert_eq!(
                parse_datastore_endpoint(text),
                Ok(PathBuf::from(path)),
                "{text}"
            );
        }
        for (text, says) in [
            ("mysql://u:p@tcp(db:3306)/k3s", "own tools"),
            ("postgres://u:p@db:5432/k3s", "own tools"),
            ("https://10.0.0.1:2379", "etcd-endpoints"),
            ("sqlite://./db/state.db", "absolute"),
            ("sqlite://", "absolute"),
            ("sqlite:///var/db/", "absolute"),
            ("/var/db/state.db", "sqlite://"),
        ] {
            let err = parse_datastore_endpoint(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn a_bad_endpoint_is_refused_naming_the_key_without_its_password() {
        let errs = run(&[(KEY, "mysql://k3s:hunter2@tcp(db:3306)/k3s")])
            .unwrap_err()
            .0;
        assert_eq!(errs.len(), 1, "{errs:?}");
        let text = errs[0].to_string();
        assert!(
            text.contains("datastore-endpoint") && text.contains("from flag"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        let both = run(&[
            (KEY, "sqlite:///d/state.db"),
            ("etcd-endpoints", "https://a:2379"),
        ]);
        assert!(both.unwrap_err().to_string().contains("etcd-endpoints"));
        let ok = run(&[(KEY, "sqlite:///d/state.db")]).unwrap();
        assert_eq!(
            ok.config.datastore_sqlite,
            Some(PathBuf::from("/d/state.db"))
        );
        assert_eq!(run(&[]).unwrap().config.datastore_sqlite, None);
    }
}
