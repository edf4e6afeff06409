//! Image reference syntax, as `github.com/distribution/reference` parses it
//! (`[domain[:port]/]path[:tag][@algorithm:hex]`, lowercase path
//! components, at most 255 characters of name): an image the kubelet
//! cannot parse waits with reason `InvalidImageName` and the kubelet's
//! message instead of being looked up or pulled.

/// Why a reference does not parse, in the reference library's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid reference format")]
    Format,
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    #[error("repository name must not be more than 255 characters")]
    NameTooLong,
    #[error("invalid checksum digest format")]
    Digest,
}

fn path_component_ok(c: &str) -> bool {
    // [a-z0-9]+ joined by '.', '_', '__' or '-'+.
    if c.is_empty() {
        return false;
    }
    let bytes = c.as_bytes();
    if !bytes[0].is_ascii_alphanumeric() || !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_lowercase() || b.is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && matches!(bytes[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok || sep.is_empty() {
            return false;
        }
    }
    true
}

fn domain_ok(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    if port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn tag_ok(t: &str) -> bool {
    let bytes = t.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn digest_ok(d: &str) -> bool {
    let Some((algorithm, hex)) = d.split_once(':') else {
        return false;
    };
    let hex_ok = |len: usize| {
        hex.len() == len
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    match algorithm {
        "sha256" => hex_ok(64),
        "sha384" => hex_ok(96),
        "sha512" => hex_ok(128),
        _ => false,
    }
}

/// Checks `reference` the way `reference.ParseNormalizedNamed` does.
pub fn validate(reference: &str) -> Result<(), ReferenceError> {
    if reference.is_empty() || reference.trim() != reference {
        return Err(ReferenceError::Format);
    }
    let (rest, digest) = match reference.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (reference, None),
    };
    if let Some(d) = digest
        && !digest_ok(d)
    {
        return Err(ReferenceError::Digest);
    }
    // A tag is after the last ':' that follows the last '/'.
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[slash..].rfind(':') {
        Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..])),
        None => (rest, None),
    };
    if tag.is_some_and(|t| !tag_ok(t)) {
        return Err(ReferenceError::Format);
    }
    if name.len() > 255 {
        return Err(ReferenceError::NameTooLong);
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    let has_domain = parts.len() > 1
        && (parts[0].contains('.')
            || parts[0].contains(':')
            || parts[0] == "localhost"
            || parts[0].bytes().any(|b| b.is_ascii_uppercase()));
    if has_domain {
        if !domain_ok(parts[0]) {
            return Err(ReferenceError::Format);
        }
        parts.remove(0);
    }
    if parts
        .iter()
        .any(|p| p.bytes().any(|b| b.is_ascii_uppercase()))
    {
        let repo = if has_domain || parts.len() > 1 {
            parts.join("/")
        } else {
            format!("library/{}", parts.join("/"))
        };
        return Err(ReferenceError::Uppercase(repo));
    }
    if parts.is_empty() || !parts.iter().all(|p| path_component_ok(p)) {
        return Err(ReferenceError::Format);
    }
    Ok(())
}

/// The kubelet's waiting message for an unparsable image.
pub fn invalid_image_message(image: &str, err: &ReferenceError) -> String {
    format!(
        "Failed to apply default image tag {image:?}: couldn't parse image name {image:?}: {err}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_like_the_distribution_library() {
        let digest = format!("sha256:{}", "a".repeat(64));
        for good in [
            "busybox".to_string(),
            "busybox:1.36".into(),
            "library/busybox:latest".into(),
            "docker.io/library/busybox".into(),
            "127.0.0.1:5000/team/app:v1.2-rc_3".into(),
            "localhost/app".into(),
            "registry.k8s.io/pause:3.9".into(),
            format!("busybox@{digest}"),
            format!("quay.io/a/b:tag@{digest}"),
            "my_app.x__y-z--w".into(),
        ] {
            assert_eq!(validate(&good), Ok(()), "{good}");
        }
        for (bad, want) in [
            ("", ReferenceError::Format),
            ("busybox:", ReferenceError::Format),
            ("bad image", ReferenceError::Format),
            ("-busybox", ReferenceError::Format),
            ("a//b", ReferenceError::Format),
            ("busybox:t@g", ReferenceError::Digest),
            ("busybox@sha256:abc", ReferenceError::Digest),
            (
                "BusyBox",
                ReferenceError::Uppercase("library/BusyBox".into()),
            ),
            (
                "example.com/Team/app",
                ReferenceError::Uppercase("Team/app".into()),
            ),
            ("a_-b", ReferenceError::Format),
        ] {
            assert_eq!(validate(bad), Err(want), "{bad:?}");
        }
        assert_eq!(validate(&"a".repeat(256)), Err(ReferenceError::NameTooLong));
    }

    #[test]
    fn the_message_is_the_kubelets() {
        assert_eq!(
            invalid_image_message("bad image", &ReferenceError::Format),
            "Failed to apply default image tag \"bad image\": couldn't parse image name \"bad image\": invalid reference format"
        );
    }
}
