//! Field errors in the shape of apimachinery's `field.Error`: a path such as
//! `spec.containers[0].image`, a kind, and the message text kubectl prints
//! (`spec.containers[0].image: Required value`).

use std::fmt;

/// A path to a field, built as validation descends into an object. Each
/// step borrows the path above it, so building one costs nothing: it is
/// written out only when an error names it, and validation builds a path
/// for every field it looks at.
#[derive(Debug, Clone, Copy, Default)]
pub struct FieldPath<'a> {
    parent: Option<&'a FieldPath<'a>>,
    step: Step<'a>,
}

#[derive(Debug, Clone, Copy, Default)]
enum Step<'a> {
    /// The empty path.
    #[default]
    Root,
    /// `.name` (without the dot at the start of a path).
    Name(&'a str),
    /// `[3]`.
    Index(usize),
    /// `.name[3]`: an item of the list `name`, in one step.
    Item(&'a str, usize),
    /// `[key]`.
    Key(&'a str),
}

impl<'a> FieldPath<'a> {
    /// A path starting at `root`, which may itself hold several steps
    /// (`spec.template`).
    pub fn new(root: &'a str) -> FieldPath<'a> {
        FieldPath {
            parent: None,
            step: Step::Name(root),
        }
    }

    /// `spec` → `spec.containers`.
    pub fn child<'b>(&'b self, name: &'b str) -> FieldPath<'b> {
        FieldPath {
            parent: Some(self),
            step: Step::Name(name),
        }
    }

    /// `spec.containers` → `spec.containers[0]`.
    pub fn index(&self, i: usize) -> FieldPath<'_> {
        FieldPath {
            parent: Some(self),
            step: Step::Index(i),
        }
    }

    /// `spec` → `spec.containers[0]`: [`Self::child`] then [`Self::index`]
    /// in one step, so that it needs no path of its own in between.
    pub fn item<'b>(&'b self, name: &'b str, i: usize) -> FieldPath<'b> {
        FieldPath {
            parent: Some(self),
            step: Step::Item(name, i),
        }
    }

    /// `metadata.labels` → `metadata.labels[app]`.
    pub fn key<'b>(&'b self, k: &'b str) -> FieldPath<'b> {
        FieldPath {
            parent: Some(self),
            step: Step::Key(k),
        }
    }

    fn write_to(&self, out: &mut String) {
        if let Some(parent) = self.parent {
            parent.write_to(out);
        }
        let name = |out: &mut String, name: &str| {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(name);
        };
        let index = |out: &mut String, i: usize| {
            out.push('[');
            out.push_str(itoa::Buffer::new().format(i));
            out.push(']');
        };
        match self.step {
            Step::Root => {}
            Step::Name(n) => name(out, n),
            Step::Index(i) => index(out, i),
            Step::Item(n, i) => {
                name(out, n);
                index(out, i);
            }
            Step::Key(k) => {
                out.push('[');
                out.push_str(k);
                out.push(']');
            }
        }
    }

    /// The path as kubectl prints it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.write_to(&mut out);
        out
    }
}

impl fmt::Display for FieldPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
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
    /// The path, as kubectl prints it.
    pub field: String,
    pub kind: FieldErrorKind,
    pub detail: String,
}

impl FieldError {
    pub fn required(field: &FieldPath, detail: &str) -> FieldError {
        FieldError {
            field: field.render(),
            kind: FieldErrorKind::Required,
            detail: detail.to_string(),
        }
    }

    /// `value` is any JSON-like value; strings are shown quoted.
    pub fn invalid(field: &FieldPath, value: impl fmt::Debug, detail: &str) -> FieldError {
        FieldError {
            field: field.render(),
            kind: FieldErrorKind::Invalid(format!("{value:?}")),
            detail: detail.to_string(),
        }
    }

    pub fn not_supported(field: &FieldPath, value: &str, supported: &[&str]) -> FieldError {
        FieldError {
            field: field.render(),
            kind: FieldErrorKind::NotSupported {
                value: value.to_string(),
                supported: supported.iter().map(|s| s.to_string()).collect(),
            },
            detail: String::new(),
        }
    }

    pub fn forbidden(field: &FieldPath, detail: &str) -> FieldError {
        FieldError {
            field: field.render(),
            kind: FieldErrorKind::Forbidden,
            detail: detail.to_string(),
        }
    }

    pub fn duplicate(field: &FieldPath, value: impl fmt::Debug) -> FieldError {
        FieldError {
            field: field.render(),
            kind: FieldErrorKind::Duplicate(format!("{value:?}")),
            detail: String::new(),
        }
    }

    pub fn too_long(field: &FieldPath, max: usize) -> FieldError {
        FieldError {
            field: field.render(),
            kind: FieldErrorKind::TooLong(max),
            detail: String::new(),
        }
    }

    pub fn not_found(field: &FieldPath, value: impl fmt::Debug) -> FieldError {
        FieldError {
            field: field.render(),
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
        let spec = FieldPath::new("spec");
        let container = spec.item("containers", 0);
        let p = container.child("image");
        assert_eq!(
            FieldError::required(&p, "").to_string(),
            "spec.containers[0].image: Required value"
        );
        let n = FieldPath::new("metadata.name");
        assert_eq!(
            FieldError::invalid(&n, "Foo", "must be lowercase").to_string(),
            "metadata.name: Invalid value: \"Foo\": must be lowercase"
        );
        let r = FieldPath::new("spec.restartPolicy");
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
        assert_eq!(root.render(), "");
        assert_eq!(root.child("spec").render(), "spec");
        assert_eq!(root.index(2).render(), "[2]");
        assert_eq!(root.item("items", 1).render(), "items[1]");
        let spec = FieldPath::new("spec");
        let list = spec.child("containers");
        for (i, text) in [(0, "[0]"), (7, "[7]"), (12, "[12]"), (305, "[305]")] {
            assert_eq!(list.index(i).render(), format!("spec.containers{text}"));
            assert_eq!(spec.item("containers", i).render(), list.index(i).render());
        }
        let max = usize::MAX;
        assert_eq!(list.index(max).render(), format!("spec.containers[{max}]"));
        let metadata = FieldPath::new("metadata");
        let labels = metadata.child("labels");
        assert_eq!(labels.key("app").render(), "metadata.labels[app]");
        assert_eq!(labels.key("app").to_string(), "metadata.labels[app]");
        // A step may hold several names; it reads as the steps would.
        let port = spec.item("ports", 0);
        assert_eq!(port.child("a.b").render(), "spec.ports[0].a.b");
    }
}
