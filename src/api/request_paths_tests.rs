//! Tests of the request path policy: pure decisions with a stand-in canonicaliser, then the
//! real file system (symlinks, `..`, FIFOs, devices, sizes).

use std::collections::HashMap;

use super::*;

#[test]
fn only_the_snapshot_dir_and_listed_dirs_are_allowed() {
    // A stand-in file system: /link -> /srv/other, /srv/snaps/.. -> /srv.
    let links: HashMap<&str, &str> = HashMap::from([
        ("/var/snaps", "/var/snaps"),
        ("/srv/extra", "/srv/extra"),
        ("/srv/extra/../extra", "/srv/extra"),
        ("/srv/other", "/srv/other"),
        ("/link", "/srv/other"),
        ("/link-to-extra", "/srv/extra"),
    ]);
    let canonical = |p: &Path| links.get(p.to_str()?).map(PathBuf::from);
    let configured = Path::new("/var/snaps");
    let allowed = vec![PathBuf::from("/srv/extra")];
    let check = |dir: &str| allowed_dir(dir, configured, &allowed, canonical);
    assert_eq!(check("/var/snaps"), Ok(PathBuf::from("/var/snaps")));
    assert_eq!(check("/srv/extra"), Ok(PathBuf::from("/srv/extra")));
    assert_eq!(
        check("/srv/extra/../extra"),
        Ok(PathBuf::from("/srv/extra"))
    );
    assert_eq!(check("/link-to-extra"), Ok(PathBuf::from("/srv/extra")));
    for refused in [
        "/srv/other",
        "/link",
        "/missing",
        "relative/dir",
        "snaps",
        "",
    ] {
        assert_eq!(
            check(refused),
            Err(PathError::DirNotAllowed {
                dir: refused.into()
            }),
            "{refused}"
        );
    }
    // The configured dir as written passes even before it exists (created on first save).
    let missing = Path::new("/var/lib/etcd-snapshot/server/db/snapshots");
    assert!(allowed_dir(missing.to_str().unwrap(), missing, &[], |_| None).is_ok());
    let message = check("/srv/other").unwrap_err().to_string();
    assert!(message.contains("etcd-snapshot-allowed-dirs"), "{message}");
}

#[test]
fn real_symlinks_and_dot_dots_are_resolved_before_the_check() {
    let root = tempfile::tempdir().unwrap();
    let dir = |name: &str| {
        let path = root.path().join(name);
        std::fs::create_dir_all(&path).unwrap();
        path
    };
    let (snaps, extra, other) = (dir("snaps"), dir("extra"), dir("other"));
    std::os::unix::fs::symlink(&other, extra.join("escape")).unwrap();
    let canonical = |p: &Path| std::fs::canonicalize(p).ok();
    let check = |p: &Path| {
        allowed_dir(
            p.to_str().unwrap(),
            &snaps,
            std::slice::from_ref(&extra),
            canonical,
        )
    };
    assert!(check(&snaps).is_ok());
    assert!(check(&extra.join("../extra")).is_ok());
    assert!(check(&snaps.join("../other")).is_err());
    assert!(check(&extra.join("escape")).is_err());
    assert!(check(&other).is_err());
}

#[test]
fn a_ca_path_is_read_only_from_an_allowed_dir_and_only_a_small_regular_file() {
    let root = tempfile::tempdir().unwrap();
    let cas = root.path().join("cas");
    std::fs::create_dir(&cas).unwrap();
    let secret = root.path().join("shadow");
    std::fs::write(&secret, "root:$6$secret").unwrap();
    std::fs::write(cas.join("ca.pem"), "-----BEGIN CERTIFICATE-----\n").unwrap();
    std::os::unix::fs::symlink(&secret, cas.join("to-shadow")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", cas.join("to-zero")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        cas.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let big = std::fs::File::create(cas.join("big.pem")).unwrap();
    big.set_len(MAX_CA_BYTES + 1).unwrap();
    let allowed = vec![cas.clone()];
    let read = |p: &Path| read_request_ca(p.to_str().unwrap(), &allowed);
    assert_eq!(
        read(&cas.join("ca.pem")).unwrap(),
        "-----BEGIN CERTIFICATE-----\n"
    );
    assert_eq!(read(&cas.join("../cas/ca.pem")).unwrap().len(), 28);
    let refused = |p: &Path| {
        Err(PathError::CaNotAllowed {
            path: p.to_str().unwrap().into(),
        })
    };
    for path in [
        secret.clone(),
        cas.join("to-shadow"),
        cas.join("to-zero"),
        cas.join("fifo"),
        cas.join("big.pem"),
        cas.join("missing.pem"),
        cas.clone(),
        PathBuf::from("/dev/zero"),
        PathBuf::from("/etc/shadow"),
        PathBuf::from("/etc/no-such-file"),
    ] {
        assert_eq!(read(&path), refused(&path), "{}", path.display());
    }
    // A device inside an allowed dir is refused on the opened descriptor, unread.
    let dev = vec![PathBuf::from("/dev")];
    assert!(read_request_ca("/dev/zero", &dev).is_err());
    assert!(read_request_ca("relative.pem", &allowed).is_err());
    // Nothing is allowed by default.
    assert!(read_request_ca(cas.join("ca.pem").to_str().unwrap(), &[]).is_err());
}
