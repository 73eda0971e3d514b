//! The declarative config engine: layers (defaults, `config.yaml`, `config.yaml.d/*.yaml`,
//! environment, flags, API request) merged by `resolve` into one validated `DesiredConfig`.
//!
//! Re-evaluated on every operation and whenever a watched file changes. Reads files and the
//! environment; never touches etcd, snapshots or the network.

mod build;
pub mod delta;
pub mod desired;
pub mod duration;
pub mod encryption;
pub mod env;
mod etcd_check;
pub mod file;
pub mod keys;
pub mod layer;
pub mod resolve;
pub mod restore_to;
pub mod retention;
pub mod schedule;
pub mod secret;
pub mod show;
pub mod value;
pub mod verify;
pub mod watch;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod test_support;

use std::path::{Path, PathBuf};

pub use desired::{
    ApiSettings, DesiredConfig, EtcdSettings, LogFormat, LogSettings, SnapshotSettings,
};
pub use layer::{Layer, RawValue, Source, Sourced};
pub use resolve::{ConfigError, ConfigErrors, Resolved, ShownValue};

/// Default `--config`.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/etcd-snapshot/config.yaml";

/// Holds the non-file layers and knows which files to read; `evaluate` re-reads the files.
#[derive(Debug, Clone)]
pub struct ConfigEngine {
    config_file: PathBuf,
    config_file_explicit: bool,
    /// Where the config path came from (flag, env or default), for messages.
    config_file_source: Source,
    flags: Layer,
    env: Layer,
    /// Unknown `ETCD_SNAPSHOT_*` variables, found once at construction.
    env_warnings: Vec<String>,
}

/// The outcome of one evaluation, with the warnings kept even when it failed (`config validate`).
#[derive(Debug, Clone)]
pub struct Validation {
    /// Every warning: unknown keys and variables, missing explicit files, ignored settings.
    pub warnings: Vec<String>,
    pub outcome: Result<Resolved, ConfigErrors>,
}

impl ConfigEngine {
    /// `flags` from the command line; the environment is read from the process.
    pub fn new(flags: Layer) -> Self {
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        Self::with_env(flags, vars)
    }

    /// Same, with an explicit environment (tests).
    pub fn with_env(flags: Layer, env: impl IntoIterator<Item = (String, String)>) -> Self {
        let (env, env_warnings) = env::layer_from_vars(env);
        let explicit = flags.get("config").or_else(|| env.get("config"));
        let (config_file, config_file_source) = match explicit.and_then(|s| {
            let text = s.value.display()?;
            (!text.trim().is_empty()).then(|| (PathBuf::from(text.trim()), s.source.clone()))
        }) {
            Some(found) => found,
            None => (PathBuf::from(DEFAULT_CONFIG_FILE), Source::Default),
        };
        Self {
            config_file_explicit: config_file_source != Source::Default,
            config_file,
            config_file_source,
            flags,
            env,
            env_warnings,
        }
    }

    /// Reads the files and merges every layer, plus an API request's layer when given.
    pub fn evaluate(&self, request: Option<&Layer>) -> Result<Resolved, ConfigErrors> {
        self.validate_with(request).outcome
    }

    /// Applies an API request's layer over an earlier good evaluation, for when the files on
    /// disk are invalid right now: the last good configuration stays in force for requests too.
    pub fn reapply(base: &Resolved, request: &Layer) -> Result<Resolved, ConfigErrors> {
        let layers: Vec<&Layer> = base.layers.iter().chain([request]).collect();
        let mut resolved = resolve::resolve(&layers)?;
        resolved.layers = base.layers.clone();
        Ok(resolved)
    }

    /// Like `evaluate`, but keeps the warnings when the configuration is invalid.
    pub fn validate(&self) -> Validation {
        self.validate_with(None)
    }

    fn validate_with(&self, request: Option<&Layer>) -> Validation {
        let (files, mut warnings, mut errors) = self.load_files();
        warnings.extend(self.env_warnings.iter().cloned());
        let mut layers: Vec<&Layer> = files.iter().collect();
        layers.push(&self.env);
        layers.push(&self.flags);
        layers.extend(request);
        let outcome = match resolve::resolve(&layers) {
            Ok(mut resolved) if errors.is_empty() => {
                warnings.append(&mut resolved.warnings);
                resolved.warnings = warnings.clone();
                resolved.layers = files
                    .iter()
                    .chain([&self.env, &self.flags])
                    .cloned()
                    .collect();
                Ok(resolved)
            }
            Ok(resolved) => {
                warnings.extend(resolved.warnings);
                Err(ConfigErrors(errors))
            }
            Err(ConfigErrors(more)) => {
                errors.extend(more);
                Err(ConfigErrors(errors))
            }
        };
        Validation { warnings, outcome }
    }

    /// The config file layer and the drop-in layers (lexical order), with load findings.
    fn load_files(&self) -> (Vec<Layer>, Vec<String>, Vec<ConfigError>) {
        let (mut layers, mut warnings, mut errors) = (Vec::new(), Vec::new(), Vec::new());
        let mut take = |loaded: file::Loaded| {
            layers.push(loaded.layer);
            warnings.extend(loaded.warnings);
            errors.extend(loaded.errors);
        };
        match file::read(&self.config_file, Source::File(self.config_file.clone())) {
            Some(loaded) => take(loaded),
            None if self.config_file_explicit => take(file::Loaded {
                warnings: vec![format!(
                    "config file {} (from {}) does not exist",
                    self.config_file.display(),
                    self.config_file_source
                )],
                ..file::Loaded::default()
            }),
            None => {}
        }
        let dir = self.drop_in_dir();
        match file::drop_in_files(&dir) {
            Ok(paths) => {
                for path in paths {
                    if let Some(loaded) = file::read(&path, Source::DropIn(path.clone())) {
                        take(loaded);
                    }
                }
            }
            Err(e) => errors.push(ConfigError {
                key: "config".into(),
                value: None,
                source: Source::DropIn(dir.clone()),
                expected: format!("a readable drop-in directory ({e})"),
            }),
        }
        (layers, warnings, errors)
    }

    /// The config file in use.
    pub fn config_file(&self) -> &Path {
        &self.config_file
    }

    /// `<config>.d`, the drop-in directory.
    pub fn drop_in_dir(&self) -> PathBuf {
        file::drop_in_dir(&self.config_file)
    }

    /// The config file and its drop-in dir, for the watcher.
    pub fn watched_paths(&self) -> Vec<PathBuf> {
        vec![self.config_file.clone(), self.drop_in_dir()]
    }

    /// The layer of explicit flags and environment values (what the CLI forwards to a server).
    pub fn explicit_layers(&self) -> (&Layer, &Layer) {
        (&self.flags, &self.env)
    }
}
