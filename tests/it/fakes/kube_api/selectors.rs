//! Label and field selectors of the Kubernetes API stand-in, parsed from the query string and
//! matched against stored objects. Label syntax: `k=v`, `k==v`, `k!=v`, `k in (a,b)`,
//! `k notin (a,b)`, `k`, `!k`, comma-separated. Field selectors: `path=v`, `path==v`, `path!=v`
//! on any dotted path (`metadata.name`, `metadata.namespace`, `type`, ...). Pure functions.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
}

/// One parsed selector (label or field): all requirements must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<(String, Op)>,
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(raw: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in raw.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&raw[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&raw[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn parse_set(raw: &str) -> Result<Vec<String>, String> {
    let inner = raw
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            format!("unable to parse requirement: expected a (value,...) set in {raw:?}")
        })?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

fn parse_requirement(raw: &str, allow_sets: bool) -> Result<(String, Op), String> {
    if let Some((key, value)) = raw.split_once("!=") {
        return Ok((key.trim().into(), Op::NotIn(vec![value.trim().into()])));
    }
    if let Some((key, value)) = raw.split_once("==").or_else(|| raw.split_once('=')) {
        return Ok((key.trim().into(), Op::In(vec![value.trim().into()])));
    }
    if allow_sets {
        if let Some(key) = raw.strip_prefix('!') {
            return Ok((key.trim().into(), Op::DoesNotExist));
        }
        let words: Vec<&str> = raw.splitn(3, ' ').collect();
        match words.as_slice() {
            [key] => return Ok((key.to_string(), Op::Exists)),
            [key, "in", set] => return Ok((key.to_string(), Op::In(parse_set(set)?))),
            [key, "notin", set] => return Ok((key.to_string(), Op::NotIn(parse_set(set)?))),
            _ => {}
        }
    }
    Err(format!("unable to parse requirement: {raw:?}"))
}

impl Selector {
    /// A `labelSelector` value; the error is the 400 message.
    pub fn labels(raw: &str) -> Result<Selector, String> {
        let requirements = split_top_level(raw)
            .into_iter()
            .map(|r| parse_requirement(r, true))
            .collect::<Result<_, _>>()?;
        Ok(Selector { requirements })
    }

    /// A `fieldSelector` value (only equality and inequality, as the apiserver allows).
    pub fn fields(raw: &str) -> Result<Selector, String> {
        let requirements = split_top_level(raw)
            .into_iter()
            .map(|r| parse_requirement(r, false))
            .collect::<Result<_, _>>()?;
        Ok(Selector { requirements })
    }

    /// Against `metadata.labels`.
    pub fn matches_labels(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        self.matches_with(|key| labels.get(key).and_then(Value::as_str).map(str::to_string))
    }

    /// Against dotted paths into the object; absent fields compare as the empty string, as
    /// the apiserver's field sets do.
    pub fn matches_fields(&self, object: &Value) -> bool {
        self.matches_with(|path| {
            let found = path.split('.').try_fold(object, |v, key| v.get(key));
            Some(match found {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            })
        })
    }

    fn matches_with(&self, lookup: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|(key, op)| {
            let value = lookup(key);
            match op {
                Op::In(set) => value.is_some_and(|v| set.contains(&v)),
                Op::NotIn(set) => value.is_none_or(|v| !set.contains(&v)),
                Op::Exists => value.is_some(),
                Op::DoesNotExist => value.is_none(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labelled(labels: Value) -> Value {
        json!({"metadata": {"name": "n", "labels": labels}})
    }

    #[test]
    fn label_operators() {
        let obj = labelled(json!({"node": "a", "tier": "db"}));
        let cases = [
            ("node=a", true),
            ("node==a", true),
            ("node!=a", false),
            ("node in (a, b)", true),
            ("node notin (a,b)", false),
            ("node notin (b)", true),
            ("tier", true),
            ("!tier", false),
            ("missing", false),
            ("!missing", true),
            ("missing notin (x)", true),
            ("node in (a,b),tier=db", true),
            ("node in (a,b),tier=web", false),
            ("", true),
        ];
        for (raw, expected) in cases {
            assert_eq!(
                Selector::labels(raw).unwrap().matches_labels(&obj),
                expected,
                "{raw}"
            );
        }
    }

    #[test]
    fn malformed_selectors_are_refused() {
        assert!(Selector::labels("a in b").is_err());
        assert!(Selector::labels("a b c d").is_err());
        assert!(Selector::fields("metadata.name").is_err());
    }

    #[test]
    fn field_paths() {
        let obj = json!({"metadata": {"name": "x", "namespace": "ns"}, "type": "Opaque"});
        let sel = Selector::fields("metadata.name=x,type!=kubernetes.io/tls").unwrap();
        assert!(sel.matches_fields(&obj));
        assert!(
            !Selector::fields("metadata.name=y")
                .unwrap()
                .matches_fields(&obj)
        );
        assert!(
            Selector::fields("spec.missing=")
                .unwrap()
                .matches_fields(&obj)
        );
    }
}
