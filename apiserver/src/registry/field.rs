//! Field errors in the shape of apimachinery's `field.Error`: a path such as
//! `spec.containers[0].image`, a kind, and the message text kubectl prints
//! (`spec.containers[0].image: Required value`).

use std::fmt;

/// A path to a field, built as validation descends into an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(String);

impl FieldPath {
    pub fn new(root: &str) -> FieldPath {
        FieldPath(root.to_string())
    }

    /// `spec` → `spec.containers`.
    pub fn child(&self, name: &str) -> FieldPath {
        if self.0.is_empty() {
            return FieldPath(name.to_string());
        }
        self.extended(&[".", name])
    }

    /// `spec.containers` → `spec.containers[0]`.
    pub fn index(&self, i: usize) -> FieldPath {
        // Paths are built for every field validated, not only for errors:
        // building them without `format!` keeps validation cheap.
        self.extended(&["[", itoa::Buffer::new().format(i), "]"])
    }

    /// `metadata.labels` → `metadata.labels[app]`.
    pub fn key(&self, k: &str) -> FieldPath {
        self.extended(&["[", k, "]"])
    }

    fn extended(&self, parts: &[&str]) -> FieldPath {
        let len = self.0.len() + parts.iter().map(|p| p.len()).sum::<usize>();
        let mut path = String::with_capacity(len);
        path.push_str(&self.0);
        for part in parts {
            path.push_str(part);
        }
        FieldPath(path)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kinds of field error, with apimachinery's cause type strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldErrorKind {
    Required,
    /// The offending value, rendered as Kubernetes renders it (strings quoted).
    Invalid(String),
    NotSupported {
        value: String,
        supported: Vec<String>,
    },
    Forbidden,
    Duplicate(String),
    TooLong(usize),
    NotFound(String),
}

impl FieldErrorKind {
    /// The `reason` of the Status cause (`FieldValueRequired`, ...).
    pub fn cause_type(&self) -> &'static str {
        match self {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Invalid(_) => "FieldValueInvalid",
            FieldErrorKind::NotSupported { .. } => "FieldValueNotSupported",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::Duplicate(_) => "FieldValueDuplicate",
            FieldErrorKind::TooLong(_) => "FieldValueTooLong",
            FieldErrorKind::NotFound(_) => "FieldValueNotFound",
        }
    }
}

/// One validation failure of one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: FieldPath,
    pub kind: FieldErrorKind,
    pub detail: String,
}

impl FieldError {
    pub fn required(field: &FieldPath, detail: &str) -> FieldError {
        FieldError {
            field: field.clone(),
            kind: FieldErrorKind::Required,
            detail: detail.to_string(),
        }
    }

    /// `value` is any JSON-like value; strings are shown quoted.
    pub fn invalid(field: &FieldPath, value: impl fmt::Debug, detail: &str) -> FieldError {
        FieldError {
            field: field.clone(),
            kind: FieldErrorKind::Invalid(format!("{value:?}")),
            detail: detail.to_string(),
        }
    }

    pub fn not_supported(field: &FieldPath, value: &str, supported: &[&str]) -> FieldError {
        FieldError {
            field: field.clone(),
            kind: FieldErrorKind::NotSupported {
                value: value.to_string(),
                supported: supported.iter().map(|s| s.to_string()).collect(),
            },
            detail: String::new(),
        }
    }

    pub fn forbidden(field: &FieldPath, detail: &str) -> FieldError {
        FieldError {
            field: field.clone(),
            kind: FieldErrorKind::Forbidden,
            detail: detail.to_string(),
        }
    }

    pub fn duplicate(field: &FieldPath, value: impl fmt::Debug) -> FieldError {
        FieldError {
            field: field.clone(),
            kind: FieldErrorKind::Duplicate(format!("{value:?}")),
            detail: String::new(),
        }
    }

    pub fn too_long(field: &FieldPath, max: usize) -> FieldError {
        FieldError {
            field: field.clone(),
            kind: FieldErrorKind::TooLong(max),
            detail: String::new(),
        }
    }

    pub fn not_found(field: &FieldPath, value: impl fmt::Debug) -> FieldError {
        FieldError {
            field: field.clone(),
            kind: FieldErrorKind::NotFound(format!("{value:?}")),
            detail: String::new(),
        }
    }

    /// The message without the field path, as in a Status cause.
    pub fn message_body(&self) -> String {
        let body = match &self.kind {
            FieldErrorKind::Required => "Required value".to_string(),
            FieldErrorKind::Invalid(v) => format!("Invalid value: {v}"),
            FieldErrorKind::NotSupported { value, supported } => {
                let list = supported
                    .iter()
                    .map(|s| format!("{s:?}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("Unsupported value: {value:?}: supported values: {list}")
            }
            FieldErrorKind::Forbidden => "Forbidden".to_string(),
            FieldErrorKind::Duplicate(v) => format!("Duplicate value: {v}"),
            FieldErrorKind::TooLong(max) => format!("Too long: may not be more than {max} bytes"),
            FieldErrorKind::NotFound(v) => format!("Not found: {v}"),
        };
        if self.detail.is_empty() {
            body
        } else {
            format!("{body}: {}", self.detail)
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message_body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_kubectl_prints_them() {
        let p = FieldPath::new("spec")
            .child("containers")
            .index(0)
            .child("image");
        assert_eq!(
            FieldError::required(&p, "").to_string(),
            "spec.containers[0].image: Required value"
        );
        let n = FieldPath::new("metadata").child("name");
        assert_eq!(
            FieldError::invalid(&n, "Foo", "must be lowercase").to_string(),
            "metadata.name: Invalid value: \"Foo\": must be lowercase"
        );
        let r = FieldPath::new("spec").child("restartPolicy");
        assert_eq!(
            FieldError::not_supported(&r, "Sometimes", &["Always", "Never"]).to_string(),
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"Never\""
        );
        assert_eq!(
            FieldError::invalid(&n, 3, "x").message_body(),
            "Invalid value: 3: x"
        );
    }

    #[test]
    fn paths_render_indexes_and_keys() {
        let root = FieldPath::default();
        assert_eq!(root.child("spec").as_str(), "spec");
        let list = FieldPath::new("spec").child("containers");
        for (i, text) in [(0, "[0]"), (7, "[7]"), (12, "[12]"), (305, "[305]")] {
            assert_eq!(list.index(i).as_str(), format!("spec.containers{text}"));
        }
        let max = usize::MAX;
        assert_eq!(list.index(max).as_str(), format!("spec.containers[{max}]"));
        let labels = FieldPath::new("metadata").child("labels").key("app");
        assert_eq!(labels.as_str(), "metadata.labels[app]");
    }
}
