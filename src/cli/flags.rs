//! Turning parsed command-line matches into the flags config layer.
//!
//! Only flags the user typed become entries (clap's defaults for config keys are never set; the
//! key table's defaults apply in `resolve`). Values stay raw text here; `resolve` types them.

use std::collections::BTreeMap;

use clap::ArgMatches;
use clap::parser::ValueSource;
use secrecy::SecretString;

use crate::config::keys::{self, KeySpec};
use crate::config::{Layer, RawValue, Source};

/// One typed occurrence of a key: its arg id, the flag as typed, and its last position.
pub(crate) struct Occurrence {
    id: String,
    typed: String,
    index: usize,
}

/// The flags layer from the matches of each command level, outermost first; a flag given after
/// the subcommand name overrides the same key given before it.
pub fn layer_from_matches(levels: &[&ArgMatches]) -> Layer {
    let mut layer = Layer::new();
    for matches in levels {
        for (spec, occurrence) in typed_keys(matches) {
            if let Some(raw) = raw_value(spec, matches, &occurrence.id) {
                layer.set(
                    spec.name,
                    raw,
                    Source::Flag(format!("--{}", occurrence.typed)),
                );
            }
        }
    }
    layer
}

/// Config keys typed at this level; when a key was given under several names, the last wins.
pub(crate) fn typed_keys(matches: &ArgMatches) -> Vec<(&'static KeySpec, Occurrence)> {
    let mut best: BTreeMap<&'static str, (&'static KeySpec, Occurrence)> = BTreeMap::new();
    for id in matches.ids() {
        let id = id.as_str();
        // Arg ids are key names or aliases (see `build::key_args`); others are not settings.
        let Some(spec) = keys::lookup(id) else {
            continue;
        };
        if matches.value_source(id) != Some(ValueSource::CommandLine) {
            continue;
        }
        let index = matches
            .indices_of(id)
            .and_then(|mut i| i.next_back())
            .unwrap_or(0);
        let later = best.get(spec.name).is_none_or(|(_, o)| o.index < index);
        if later {
            let occurrence = Occurrence {
                id: id.to_string(),
                typed: id.to_string(),
                index,
            };
            best.insert(spec.name, (spec, occurrence));
        }
    }
    best.into_values().collect()
}

fn raw_value(spec: &KeySpec, matches: &ArgMatches, id: &str) -> Option<RawValue> {
    let values: Vec<String> = matches.get_many::<String>(id)?.cloned().collect();
    if spec.kind.is_list() {
        return Some(RawValue::List(values));
    }
    let last = values.into_iter().next_back()?;
    Some(if spec.is_secret() {
        RawValue::Secret(SecretString::from(last))
    } else {
        RawValue::String(last)
    })
}
