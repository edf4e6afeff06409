//! Label and field selectors in the string syntax of the Kubernetes API
//! (`labelSelector=app=web,tier notin (db)`, `fieldSelector=spec.nodeName=n1`),
//! parsed once per request and matched against many objects.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Why a selector string was refused; the message mirrors apimachinery's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("unable to parse requirement: {0}")]
    Requirement(String),
    #[error("invalid field selector: {0}")]
    Field(String),
    #[error("{0}")]
    LabelSelector(String),
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            // `!=` also matches objects without the key, as in Kubernetes.
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        }
    }
}

/// A parsed label selector: all requirements must hold. Empty matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSel {
    pub requirements: Vec<Requirement>,
}

impl LabelSel {
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Parses the `labelSelector` query syntax.
    pub fn parse(s: &str) -> Result<LabelSel, SelectorError> {
        let mut requirements = Vec::new();
        for part in split_top_level(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            requirements.push(parse_requirement(part)?);
        }
        Ok(LabelSel { requirements })
    }

    /// Converts a structured `LabelSelector` (as in a Deployment spec).
    /// A `None` selector matches nothing in Kubernetes; callers decide.
    pub fn from_label_selector(sel: &LabelSelector) -> Result<LabelSel, SelectorError> {
        let mut requirements = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            requirements.push(Requirement::Equals(k.clone(), v.clone()));
        }
        for e in sel.match_expressions.iter().flatten() {
            let values = e.values.clone().unwrap_or_default();
            let r = match e.operator.as_str() {
                "In" => Requirement::In(e.key.clone(), values),
                "NotIn" => Requirement::NotIn(e.key.clone(), values),
                "Exists" => Requirement::Exists(e.key.clone()),
                "DoesNotExist" => Requirement::DoesNotExist(e.key.clone()),
                op => {
                    return Err(SelectorError::LabelSelector(format!(
                        "{op:?} is not a valid label selector operator"
                    )));
                }
            };
            requirements.push(r);
        }
        Ok(LabelSel { requirements })
    }
}

/// Splits on commas that are not inside `( ... )`.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_requirement(part: &str) -> Result<Requirement, SelectorError> {
    let bad = || SelectorError::Requirement(part.to_string());
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        check_key(key).map_err(|_| bad())?;
        return Ok(Requirement::DoesNotExist(key.to_string()));
    }
    if let Some((k, v)) = part.split_once("!=") {
        return Ok(Requirement::NotEquals(key_of(k, part)?, value_of(v, part)?));
    }
    if let Some((k, v)) = part.split_once("==") {
        return Ok(Requirement::Equals(key_of(k, part)?, value_of(v, part)?));
    }
    if let Some((k, v)) = part.split_once('=') {
        return Ok(Requirement::Equals(key_of(k, part)?, value_of(v, part)?));
    }
    // Set-based: `key in (a,b)` / `key notin (a,b)`.
    let tokens: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
    if tokens.len() == 2 {
        let key = key_of(tokens[0], part)?;
        let rest = tokens[1].trim();
        let (op, list) = if let Some(l) = rest.strip_prefix("notin") {
            ("notin", l)
        } else if let Some(l) = rest.strip_prefix("in") {
            ("in", l)
        } else {
            return Err(bad());
        };
        let list = list.trim();
        let inner = list
            .strip_prefix('(')
            .and_then(|l| l.strip_suffix(')'))
            .ok_or_else(bad)?;
        let values = inner
            .split(',')
            .map(|v| value_of(v, part))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(if op == "in" {
            Requirement::In(key, values)
        } else {
            Requirement::NotIn(key, values)
        });
    }
    check_key(part).map_err(|_| bad())?;
    Ok(Requirement::Exists(part.to_string()))
}

fn key_of(k: &str, part: &str) -> Result<String, SelectorError> {
    let k = k.trim();
    check_key(k).map_err(|_| SelectorError::Requirement(part.to_string()))?;
    Ok(k.to_string())
}

fn value_of(v: &str, part: &str) -> Result<String, SelectorError> {
    let v = v.trim();
    let ok = v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(v.to_string())
    } else {
        Err(SelectorError::Requirement(part.to_string()))
    }
}

fn check_key(k: &str) -> Result<(), ()> {
    let name = match k.rsplit_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty() || prefix.len() > 253 {
                return Err(());
            }
            name
        }
        None => k,
    };
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok { Ok(()) } else { Err(()) }
}

/// A parsed field selector: `field=value` / `field!=value`, all must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSel {
    pub terms: Vec<(String, bool, String)>,
}

impl FieldSel {
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    pub fn parse(s: &str) -> Result<FieldSel, SelectorError> {
        let mut terms = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (field, eq, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(SelectorError::Field(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                )));
            };
            terms.push((field.trim().to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSel { terms })
    }

    /// The field names used, so a server can refuse unsupported ones.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.terms.iter().map(|(f, _, _)| f.as_str())
    }

    /// Matches against an object's selectable fields; a field the object
    /// does not have reads as the empty string, as in Kubernetes.
    pub fn matches(&self, lookup: impl Fn(&str) -> Option<String>) -> bool {
        self.terms.iter().all(|(f, eq, v)| {
            let have = lookup(f).unwrap_or_default();
            (have == *v) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selector_operators_match_like_kubernetes() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("missing!=x", true),
            ("app in (web,api)", true),
            ("app notin (web)", false),
            ("missing notin (web)", true),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("app=web,tier=back", false),
            ("app in (web, api),!missing", true),
        ];
        for (sel, want) in cases {
            let s = LabelSel::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&l), want, "{sel}");
        }
    }

    #[test]
    fn malformed_label_selectors_are_refused() {
        for sel in ["app in web", "=x", "a b c", "app=we b", "-bad"] {
            assert!(LabelSel::parse(sel).is_err(), "{sel}");
        }
    }

    #[test]
    fn field_selectors_compare_with_missing_as_empty() {
        let s = FieldSel::parse("spec.nodeName=,status.phase!=Running").expect("parse");
        let lookup = |f: &str| match f {
            "status.phase" => Some("Pending".to_string()),
            _ => None,
        };
        assert!(s.matches(lookup));
        assert!(FieldSel::parse("nonsense").is_err());
    }

    #[test]
    fn structured_selectors_convert() {
        let sel: LabelSelector = serde_json::from_value(serde_json::json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]
        }))
        .expect("selector");
        let s = LabelSel::from_label_selector(&sel).expect("convert");
        assert!(s.matches(&labels(&[("app", "web")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "db")])));
    }
}
