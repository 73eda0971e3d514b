//! Finding etcd's restore tool and deciding whether it may restore for the configured etcd.
//!
//! `etcdutl` is preferred, `etcdctl` (3.4/3.5) is the fallback. Versions come from the tools'
//! own `version` output and `etcd --version`; whether a pair is usable and which flags it has
//! is a pure table ([`assess_tool`]). Running the restore itself lives in `run`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::RestoreError;

/// The two programs that can turn a snapshot into a data dir.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolKind {
    /// `etcdutl snapshot restore` (etcd 3.5+): the maintained tool.
    Etcdutl,
    /// `ETCDCTL_API=3 etcdctl snapshot restore`: 3.4's tool, deprecated in 3.5, gone in 3.6.
    Etcdctl,
}

impl ToolKind {
    /// The executable's file name.
    pub fn program(self) -> &'static str {
        match self {
            Self::Etcdutl => "etcdutl",
            Self::Etcdctl => "etcdctl",
        }
    }
}

/// An etcd release number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Parses `3.5.10`, also with a leading `v` or a suffix (`3.6.0-rc.1`, `3.4.23+git`).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().trim_start_matches('v');
        let core = text.split(['-', '+', ' ']).next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u32>().ok());
        let (major, minor, patch) = (parts.next()??, parts.next()??, parts.next()??);
        parts
            .next()
            .is_none()
            .then_some(Self::new(major, minor, patch))
    }

    fn same_minor(self, other: Self) -> bool {
        (self.major, self.minor) == (other.major, other.minor)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Reads the version from `etcd --version`, `etcdctl version` or `etcdutl version` output: the
/// first line of the form `<program> version: X.Y.Z` (any case). The `API version` line is not
/// a release number and is skipped.
pub fn parse_version_output(output: &str) -> Option<Version> {
    output
        .lines()
        .filter(|line| {
            !line
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("api version")
        })
        .find_map(|line| {
            let (label, value) = line.split_once(':')?;
            label
                .to_ascii_lowercase()
                .trim_end()
                .ends_with("version")
                .then(|| Version::parse(value))?
        })
}

/// What a tool can do for a given etcd server. Built by [`assess_tool`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolAssessment {
    /// `--bump-revision N --mark-compacted` are available.
    pub bump_revision: bool,
    /// Things an operator should know (logged by the caller as warnings).
    pub warnings: Vec<String>,
}

/// Decides whether `tool` at `tool_version` may restore a data dir that etcd `etcd_version`
/// will serve. Pure: the whole compatibility table lives here.
///
/// The tool writes etcd-internal formats (WAL, `.snap`, bolt schema keys), so it must not be
/// newer than the server, and `etcdctl` must be the server's exact minor version. An `etcdutl`
/// one minor older is accepted with a warning (the server upgrades such a data dir itself).
pub fn assess_tool(
    tool: ToolKind,
    tool_version: Version,
    etcd_version: Version,
) -> Result<ToolAssessment, String> {
    let (t, e) = (tool_version, etcd_version);
    if t.major != 3 || e.major != 3 {
        return Err(format!(
            "only etcd 3.x is supported ({tool:?} {t}, etcd {e})"
        ));
    }
    let mut warnings = Vec::new();
    match tool {
        ToolKind::Etcdctl => {
            if t.minor >= 6 {
                return Err(format!("etcdctl {t} has no snapshot restore (use etcdutl)"));
            }
            if !t.same_minor(e) {
                return Err(format!(
                    "etcdctl {t} must be the same minor version as etcd {e}"
                ));
            }
            if t.minor == 5 {
                warnings.push(format!(
                    "etcdctl {t} snapshot restore is deprecated; install etcdutl {}.{}",
                    e.major, e.minor
                ));
            }
        }
        ToolKind::Etcdutl => {
            if t.minor < 5 {
                return Err(format!("etcdutl {t} is not a release of etcdutl"));
            }
            if t > e && !t.same_minor(e) {
                return Err(format!("etcdutl {t} is newer than etcd {e}"));
            }
            if e.minor > t.minor + 1 {
                return Err(format!(
                    "etcdutl {t} is more than one minor version older than etcd {e}"
                ));
            }
            if t.minor == 5 && t.patch <= 2 {
                return Err(format!(
                    "etcdutl {t} has known data inconsistency bugs (fixed in 3.5.3); use 3.5.26 or later"
                ));
            }
            if !t.same_minor(e) {
                warnings.push(format!(
                    "etcdutl {t} is one minor version older than etcd {e}"
                ));
            }
        }
    }
    if t.minor == 4 {
        warnings.push(format!(
            "etcd {t} restore keeps the old members in the database; move to etcd 3.5.26 or later before upgrading to 3.6"
        ));
    } else if t.minor == 5 && t.patch < 26 {
        warnings.push(format!(
            "{} {t}: upgrade to 3.5.26 or later before moving to 3.6 (zombie members)",
            tool.program()
        ));
    }
    let bump_revision = supports_bump_revision(tool, t);
    if !bump_revision {
        warnings.push(format!(
            "{} {t} cannot bump the revision: watchers that saw newer revisions may miss changes until they relist",
            tool.program()
        ));
    }
    Ok(ToolAssessment {
        bump_revision,
        warnings,
    })
}

/// `--bump-revision/--mark-compacted`: etcdutl 3.5.10+ and 3.6+, etcdctl 3.4.27+.
fn supports_bump_revision(tool: ToolKind, v: Version) -> bool {
    match tool {
        ToolKind::Etcdutl => v >= Version::new(3, 5, 10),
        ToolKind::Etcdctl => v.minor == 4 && v.patch >= 27,
    }
}

/// A located, version-checked restore tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreTool {
    pub kind: ToolKind,
    pub path: PathBuf,
    pub version: Version,
    pub assessment: ToolAssessment,
}

/// Where to look for a tool, in preference order: beside the etcd binary (most likely the same
/// release), then on PATH; `etcdutl` before `etcdctl`. Existing files only, no duplicates.
pub fn candidates(etcd_binary: &Path) -> Vec<(ToolKind, PathBuf)> {
    let beside = resolve_program(etcd_binary).and_then(|p| p.parent().map(Path::to_path_buf));
    let mut found = Vec::new();
    for kind in [ToolKind::Etcdutl, ToolKind::Etcdctl] {
        let near = beside.as_ref().map(|dir| dir.join(kind.program()));
        let on_path = resolve_program(Path::new(kind.program()));
        for path in [near, on_path].into_iter().flatten() {
            if path.is_file() && !found.iter().any(|(_, p)| p == &path) {
                found.push((kind, path));
            }
        }
    }
    found
}

/// Resolves a program like a shell: a path as is, a bare name through PATH.
fn resolve_program(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 || program.is_absolute() {
        return program.is_file().then(|| program.to_path_buf());
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Finds the first restore tool usable for the configured etcd, reading every version.
///
/// Fails naming what was looked for when none exists, or listing why each found one was
/// refused.
pub async fn select_restore_tool(etcd_binary: &Path) -> Result<RestoreTool, RestoreError> {
    let found = candidates(etcd_binary);
    if found.is_empty() {
        return Err(RestoreError::ToolNotFound {
            searched: searched_places(etcd_binary),
        });
    }
    let etcd_path = resolve_program(etcd_binary).unwrap_or_else(|| etcd_binary.to_path_buf());
    let etcd_version = read_version(&etcd_path, &["--version"]).await?;
    let mut rejected = Vec::new();
    for (kind, path) in found {
        let version = match read_version(&path, &["version"]).await {
            Ok(v) => v,
            Err(err) => {
                rejected.push(format!("{}: {err}", path.display()));
                continue;
            }
        };
        match assess_tool(kind, version, etcd_version) {
            Ok(assessment) => {
                return Ok(RestoreTool {
                    kind,
                    path,
                    version,
                    assessment,
                });
            }
            Err(reason) => rejected.push(format!("{}: {reason}", path.display())),
        }
    }
    Err(RestoreError::NoCompatibleTool {
        etcd_version: etcd_version.to_string(),
        rejected: rejected.join("; "),
    })
}

/// The directories searched, for the "not found" message.
fn searched_places(etcd_binary: &Path) -> String {
    let beside = resolve_program(etcd_binary)
        .and_then(|p| p.parent().map(|d| d.display().to_string()))
        .unwrap_or_else(|| format!("(etcd binary {} not found)", etcd_binary.display()));
    format!("{beside} (beside the etcd binary) and PATH")
}

/// Runs `program args` and parses its version line.
pub async fn read_version(program: &Path, args: &[&str]) -> Result<Version, RestoreError> {
    let output = crate::child::command(program)
        .args(args)
        // etcdctl 3.4 defaults to the v2 API, whose `version` prints differently.
        .env("ETCDCTL_API", "3")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| RestoreError::RunVersion {
            program: program.to_path_buf(),
            source,
        })?;
    let text = String::from_utf8_lossy(&output.stdout);
    parse_version_output(&text).ok_or_else(|| RestoreError::ParseVersion {
        program: program.to_path_buf(),
        output: crate::child::mask_known(&text).chars().take(200).collect(),
    })
}

#[cfg(test)]
#[path = "tool_tests.rs"]
mod tests;
