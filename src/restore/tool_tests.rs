//! Unit tests of `tool`: version parsing, the compatibility table, and locating tools.

use super::*;

fn v(s: &str) -> Version {
    Version::parse(s).unwrap()
}

#[test]
fn parses_versions_and_tool_output() {
    assert_eq!(v("3.5.10"), Version::new(3, 5, 10));
    assert_eq!(v("v3.6.0-rc.1"), Version::new(3, 6, 0));
    assert_eq!(Version::parse("3.5"), None);
    assert_eq!(Version::parse("3.5.x"), None);
    let cases = [
        (
            "etcdctl version: 3.4.23\nAPI version: 3.4\n",
            Some(v("3.4.23")),
        ),
        (
            "etcdutl version: 3.5.17\nAPI version: 3.5\n",
            Some(v("3.5.17")),
        ),
        (
            "etcd Version: 3.4.23\nGit SHA: Not provided\nGo Version: go1.19.8\n",
            Some(v("3.4.23")),
        ),
        ("API version: 3.4\n", None),
        ("", None),
    ];
    for (text, want) in cases {
        assert_eq!(parse_version_output(text), want, "{text:?}");
    }
}

#[test]
fn compatibility_table() {
    use ToolKind::{Etcdctl as Ctl, Etcdutl as Utl};
    // (tool, tool version, etcd version, usable, bump supported)
    let table = [
        (Ctl, "3.4.23", "3.4.23", true, false),
        (Ctl, "3.4.27", "3.4.23", true, true),
        (Ctl, "3.4.23", "3.5.17", false, false),
        (Ctl, "3.5.17", "3.5.17", true, false),
        (Ctl, "3.6.0", "3.6.0", false, false),
        (Utl, "3.5.1", "3.5.1", false, false),
        (Utl, "3.5.3", "3.5.3", true, false),
        (Utl, "3.5.9", "3.5.12", true, false),
        (Utl, "3.5.10", "3.5.10", true, true),
        (Utl, "3.5.26", "3.6.4", true, true),
        (Utl, "3.6.4", "3.6.1", true, true),
        (Utl, "3.6.4", "3.5.26", false, false),
        (Utl, "3.5.26", "3.4.23", false, false),
        (Utl, "3.5.26", "3.7.0", false, false),
        (Utl, "4.0.0", "4.0.0", false, false),
    ];
    for (kind, tool, etcd, usable, bump) in table {
        let got = assess_tool(kind, v(tool), v(etcd));
        assert_eq!(
            got.is_ok(),
            usable,
            "{kind:?} {tool} for etcd {etcd}: {got:?}"
        );
        if let Ok(a) = got {
            assert_eq!(a.bump_revision, bump, "{kind:?} {tool}");
        }
    }
}

#[test]
fn warnings_explain_weak_tools() {
    let a = assess_tool(ToolKind::Etcdctl, v("3.4.23"), v("3.4.23")).unwrap();
    assert!(
        a.warnings
            .iter()
            .any(|w| w.contains("cannot bump the revision"))
    );
    assert!(a.warnings.iter().any(|w| w.contains("3.5.26")));
    let a = assess_tool(ToolKind::Etcdutl, v("3.6.4"), v("3.6.4")).unwrap();
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
}

#[test]
fn candidates_prefer_etcdutl_beside_etcd() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    for name in ["etcd", "etcdctl", "etcdutl"] {
        let path = dir.path().join(name);
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let found = candidates(&dir.path().join("etcd"));
    assert_eq!(found[0], (ToolKind::Etcdutl, dir.path().join("etcdutl")));
    let ctl = found
        .iter()
        .position(|(k, _)| *k == ToolKind::Etcdctl)
        .unwrap();
    assert!(found[..ctl].iter().all(|(k, _)| *k == ToolKind::Etcdutl));
}

/// An executable shell script at `dir/name` that prints `output`.
fn fake_program(dir: &Path, name: &str, output: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\nprintf '{output}'\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test]
async fn selects_the_etcdutl_beside_etcd_after_reading_versions() {
    let dir = tempfile::tempdir().unwrap();
    fake_program(dir.path(), "etcd", "etcd Version: 3.6.4\\nGit SHA: x\\n");
    fake_program(
        dir.path(),
        "etcdutl",
        "etcdutl version: 3.6.4\\nAPI version: 3.6\\n",
    );
    let tool = select_restore_tool(&dir.path().join("etcd")).await.unwrap();
    assert_eq!(
        (tool.kind, tool.path, tool.version),
        (ToolKind::Etcdutl, dir.path().join("etcdutl"), v("3.6.4"))
    );
    assert!(tool.assessment.bump_revision);
}

#[tokio::test]
async fn reports_why_each_found_tool_was_refused() {
    let dir = tempfile::tempdir().unwrap();
    // etcd 3.7 here: no etcdutl/etcdctl release in this table may restore for it.
    fake_program(dir.path(), "etcd", "etcd Version: 3.7.0\\n");
    fake_program(dir.path(), "etcdutl", "etcdutl version: 3.5.26\\n");
    let err = select_restore_tool(&dir.path().join("etcd"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, RestoreError::NoCompatibleTool { .. }),
        "{text}"
    );
    assert!(
        text.contains("etcd 3.7.0") && text.contains("etcdutl 3.5.26"),
        "{text}"
    );
}
