//! Config files: `config.yaml` and the `config.yaml.d/*.yaml` drop-ins, read into layers.
//!
//! A file is a YAML mapping of key (canonical name or alias) to value. Keys this program does not
//! know are warnings, never errors, because an RKE2 `config.yaml` carries many settings for other
//! components. Only file reading lives here; precedence and typing are `resolve`'s.

use std::io;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde_json::Value as Json;

use super::keys;
use super::layer::{Layer, RawValue, Source};
use super::resolve::ConfigError;

/// One file's contribution: its layer plus what was wrong with it.
#[derive(Debug, Default)]
pub struct Loaded {
    pub layer: Layer,
    pub warnings: Vec<String>,
    pub errors: Vec<ConfigError>,
}

impl Loaded {
    fn error(source: &Source, expected: String) -> Self {
        Loaded {
            errors: vec![ConfigError {
                key: "config".into(),
                value: None,
                source: source.clone(),
                expected,
            }],
            ..Loaded::default()
        }
    }
}

/// `<config>.d`: the directory of drop-ins that belongs to a config file.
pub fn drop_in_dir(config_file: &Path) -> PathBuf {
    let mut name = config_file.as_os_str().to_os_string();
    name.push(".d");
    PathBuf::from(name)
}

/// True for file names the drop-in dir reads.
pub fn is_drop_in_name(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    !name.starts_with('.') && (name.ends_with(".yaml") || name.ends_with(".yml"))
}

/// The drop-in files in lexical order; an absent dir has none.
pub fn drop_in_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if is_drop_in_name(&path) && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads and parses one file; None when it does not exist.
pub fn read(path: &Path, source: Source) -> Option<Loaded> {
    let text = crate::fsutil::read_capped(path, crate::fsutil::SMALL_FILE_MAX).and_then(|bytes| {
        String::from_utf8(bytes)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
    });
    match text {
        Ok(text) => Some(parse(&text, &source)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => Some(Loaded::error(&source, format!("a readable file ({e})"))),
    }
}

/// Parses a file's text into a layer whose entries carry `source`.
pub fn parse(text: &str, source: &Source) -> Loaded {
    if text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---"
    }) {
        return Loaded::default();
    }
    // No snippets: they would echo file lines, which may hold secrets.
    let mut options = serde_saphyr::RenderOptions::default();
    options.snippets = serde_saphyr::SnippetMode::Off;
    let doc: Json = match serde_saphyr::from_str(text) {
        Ok(doc) => doc,
        Err(e) => {
            let msg = e
                .render_with_options(options)
                .replace(", set DuplicateKeyPolicy in Options if acceptable", "");
            let at = match e.location() {
                Some(l) if !msg.contains("line ") => {
                    format!(" at line {}, column {}", l.line(), l.column())
                }
                _ => String::new(),
            };
            return Loaded::error(source, format!("valid YAML ({msg}{at})"));
        }
    };
    let map = match doc {
        Json::Object(map) => map,
        Json::Null => return Loaded::default(),
        _ => {
            return Loaded::error(source, "a YAML mapping of config keys to values".into());
        }
    };
    let mut loaded = Loaded::default();
    for (name, json) in &map {
        add_entry(&mut loaded, name, json, source);
    }
    loaded
}

fn add_entry(loaded: &mut Loaded, name: &str, json: &Json, source: &Source) {
    let Some(spec) = keys::lookup(name) else {
        let hint = keys::suggest(name, keys::file_names())
            .map(|s| format!("; did you mean {s:?}?"))
            .unwrap_or_default();
        loaded
            .warnings
            .push(format!("unknown key {name:?} in {source}, ignored{hint}"));
        return;
    };
    if !spec.in_file {
        loaded.warnings.push(format!(
            "key {name:?} is not allowed in {source}, ignored; use --{} or {}",
            spec.name,
            spec.env_var()
        ));
        return;
    }
    let raw = match to_raw(json, spec.is_secret()) {
        Ok(Some(raw)) => raw,
        Ok(None) => return,
        Err(expected) => {
            loaded.errors.push(ConfigError {
                key: spec.name.into(),
                value: (!spec.is_secret()).then(|| json.to_string()),
                source: source.clone(),
                expected,
            });
            return;
        }
    };
    if loaded.layer.get(spec.name).is_some() {
        loaded.warnings.push(format!(
            "both {name:?} and another name of {:?} are set in {source}; using {:?}",
            spec.name, spec.name
        ));
        if name != spec.name {
            return;
        }
    }
    loaded.layer.set(spec.name, raw, source.clone());
}

/// A YAML value as a raw value; None for an explicit null (the key is left unset).
fn to_raw(json: &Json, secret: bool) -> Result<Option<RawValue>, String> {
    let raw = match json {
        Json::Null => return Ok(None),
        Json::Bool(b) => RawValue::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => RawValue::Int(i),
            None => RawValue::String(n.to_string()),
        },
        Json::String(s) => RawValue::String(s.clone()),
        Json::Array(items) => RawValue::List(
            items
                .iter()
                .filter(|item| !item.is_null())
                .map(|item| match item {
                    Json::String(s) => Ok(s.clone()),
                    Json::Bool(_) | Json::Number(_) => Ok(item.to_string()),
                    _ => Err("a list of plain values".to_string()),
                })
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(_) => return Err("a plain value or a list, not a mapping".into()),
    };
    Ok(Some(match raw {
        RawValue::String(s) if secret => RawValue::Secret(SecretString::from(s)),
        RawValue::Int(i) if secret => RawValue::Secret(SecretString::from(i.to_string())),
        other => other,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Source {
        Source::File("/etc/x.yaml".into())
    }

    #[test]
    fn maps_yaml_types_and_aliases() {
        let loaded = parse(
            "dir: /backups\nsnapshot-retention: 3\netcd-snapshot-compress: true\n\
             etcd-endpoints:\n  - http://a:2379\n  - http://b:2379\ntoken: abc\netcd-cafile:\n",
            &file(),
        );
        assert!(
            loaded.errors.is_empty() && loaded.warnings.is_empty(),
            "{loaded:?}"
        );
        let get = |k: &str| loaded.layer.get(k).map(|s| s.value.clone());
        assert_eq!(
            get("etcd-snapshot-dir"),
            Some(RawValue::String("/backups".into()))
        );
        assert_eq!(get("etcd-snapshot-retention"), Some(RawValue::Int(3)));
        assert_eq!(get("etcd-snapshot-compress"), Some(RawValue::Bool(true)));
        assert_eq!(
            get("etcd-endpoints"),
            Some(RawValue::List(vec![
                "http://a:2379".into(),
                "http://b:2379".into()
            ]))
        );
        assert!(matches!(get("token"), Some(RawValue::Secret(_))));
        assert_eq!(get("etcd-cafile"), None);
        assert!(!format!("{loaded:?}").contains("abc"));
    }

    #[test]
    fn unknown_keys_warn_with_a_suggestion() {
        let loaded = parse(
            "etcd-snapshot-retension: 3\ncni: canal\nconfig: /x\n",
            &file(),
        );
        assert!(loaded.errors.is_empty());
        assert!(loaded.layer.is_empty());
        assert!(
            loaded.warnings.contains(
                &"unknown key \"etcd-snapshot-retension\" in config file /etc/x.yaml, ignored; \
              did you mean \"etcd-snapshot-retention\"?"
                    .to_string()
            )
        );
        assert!(
            loaded
                .warnings
                .contains(&"unknown key \"cni\" in config file /etc/x.yaml, ignored".to_string())
        );
        assert!(
            loaded
                .warnings
                .iter()
                .any(|w| w.starts_with("key \"config\" is not allowed"))
        );
    }

    #[test]
    fn canonical_name_wins_over_alias_in_one_file() {
        let loaded = parse("etcd-snapshot-dir: /a\ndir: /b\n", &file());
        assert_eq!(
            loaded
                .layer
                .get("etcd-snapshot-dir")
                .map(|s| s.value.clone()),
            Some(RawValue::String("/a".into()))
        );
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    }

    #[test]
    fn malformed_yaml_is_an_error_naming_the_file_and_line() {
        let loaded = parse("a: 1\nb: [unclosed\nc: 2\n", &file());
        assert_eq!(loaded.errors.len(), 1);
        let text = loaded.errors[0].to_string();
        assert!(text.contains("config file /etc/x.yaml"), "{text}");
        assert!(text.contains("line "), "{text}");
        let loaded = parse("- a\n- b\n", &file());
        assert!(loaded.errors[0].expected.contains("mapping"));
    }

    #[test]
    fn empty_and_comment_only_files_are_empty_layers() {
        for text in ["", "# nothing\n", "---\n"] {
            let loaded = parse(text, &file());
            assert!(
                loaded.errors.is_empty() && loaded.layer.is_empty(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn yaml_1_1_booleans_read_as_rke2_reads_them() {
        // RKE2's YAML parser takes yes/no/on/off as booleans; so does this one.
        let loaded = parse("etcd-snapshot-compress: yes\ndebug: Off\n", &file());
        let get = |k: &str| loaded.layer.get(k).map(|s| s.value.clone());
        assert_eq!(get("etcd-snapshot-compress"), Some(RawValue::Bool(true)));
        assert_eq!(get("debug"), Some(RawValue::Bool(false)));
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let loaded = parse("name: a\nname: b\n", &file());
        assert_eq!(loaded.errors.len(), 1);
        assert!(
            loaded.errors[0].expected.contains("duplicate"),
            "{:?}",
            loaded.errors
        );
        assert!(!loaded.errors[0].expected.contains("DuplicateKeyPolicy"));
    }

    #[test]
    fn nested_values_are_errors() {
        let loaded = parse("etcd-snapshot-dir:\n  a: b\n", &file());
        assert_eq!(loaded.errors.len(), 1);
        assert_eq!(loaded.errors[0].key, "etcd-snapshot-dir");
    }

    #[test]
    fn drop_in_dir_is_beside_the_file() {
        assert_eq!(
            drop_in_dir(Path::new("/etc/etcd-snapshot/config.yaml")),
            PathBuf::from("/etc/etcd-snapshot/config.yaml.d")
        );
        assert!(is_drop_in_name(Path::new("/d/10-x.yaml")));
        assert!(is_drop_in_name(Path::new("/d/10-x.yml")));
        assert!(!is_drop_in_name(Path::new("/d/.10-x.yaml.swp")));
        assert!(!is_drop_in_name(Path::new("/d/10-x.yaml~")));
    }
}
