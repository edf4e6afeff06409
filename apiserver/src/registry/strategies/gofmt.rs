//! Renders values the way Go's `%#v` prints them: apimachinery's
//! `field.Invalid` falls back to `%#v` for structs, maps and slices, so
//! Kubernetes' messages contain text such as `map[string]string{"app":"web"}`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// `[]string{"a", "b"}`, or `[]string(nil)` when absent.
pub fn go_string_slice(values: &[String]) -> String {
    let items: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[]string{{{}}}", items.join(", "))
}

/// `map[string]string{"a":"b"}` (keys sorted, as fmt sorts them), or
/// `map[string]string(nil)` when absent.
pub fn go_string_map(map: Option<&BTreeMap<String, String>>) -> String {
    match map {
        None => "map[string]string(nil)".to_string(),
        Some(m) => {
            let items: Vec<String> = m.iter().map(|(k, v)| format!("{k:?}:{v:?}")).collect();
            format!("map[string]string{{{}}}", items.join(", "))
        }
    }
}

/// `intstr.IntOrString{Type:1, IntVal:0, StrVal:"25%"}`.
pub fn go_int_or_string(v: Option<&IntOrString>) -> String {
    let (ty, int, s) = match v {
        Some(IntOrString::Int(i)) => (0, *i, String::new()),
        Some(IntOrString::String(s)) => (1, 0, s.clone()),
        None => (0, 0, String::new()),
    };
    format!("intstr.IntOrString{{Type:{ty}, IntVal:{int}, StrVal:{s:?}}}")
}

/// `v1.LabelSelector{MatchLabels:..., MatchExpressions:...}`.
pub fn go_label_selector(sel: &LabelSelector) -> String {
    let exprs = match &sel.match_expressions {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(list) => {
            let items: Vec<String> = list
                .iter()
                .map(|e| {
                    let values = match &e.values {
                        None => "[]string(nil)".to_string(),
                        Some(v) => go_string_slice(v),
                    };
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{:?}, Operator:{:?}, Values:{values}}}",
                        e.key, e.operator
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{exprs}}}",
        go_string_map(sel.match_labels.as_ref())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_match_go_percent_sharp_v() {
        let mut m = BTreeMap::new();
        m.insert("tier".to_string(), "db".to_string());
        m.insert("app".to_string(), "web".to_string());
        assert_eq!(
            go_string_map(Some(&m)),
            r#"map[string]string{"app":"web", "tier":"db"}"#
        );
        assert_eq!(go_string_map(None), "map[string]string(nil)");
        assert_eq!(
            go_int_or_string(Some(&IntOrString::String("110%".into()))),
            r#"intstr.IntOrString{Type:1, IntVal:0, StrVal:"110%"}"#
        );
        assert_eq!(
            go_label_selector(&LabelSelector::default()),
            "v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"
        );
        assert_eq!(
            go_string_slice(&["a".to_string(), "b".to_string()]),
            r#"[]string{"a", "b"}"#
        );
    }
}
