//! Which built-in admission plugins run, as kube-apiserver's
//! `--disable-admission-plugins` chooses. All are on by default; turning
//! them off is for setups like Kubernetes' own scheduler_perf, whose API
//! server runs with `--disable-admission-plugins=ServiceAccount,...` because
//! no service account controller runs there.

/// The admission plugins ferrokube implements, by Kubernetes' names.
pub const PLUGINS: [&str; 3] = ["ServiceAccount", "Priority", "DefaultTolerationSeconds"];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("admission plugin {name:?} is unknown; known plugins: {known}", known = PLUGINS.join(", "))]
pub struct UnknownPlugin {
    pub name: String,
}

/// The plugins that mutate new pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admission {
    /// `ServiceAccount`: the `default` service account and its token volume.
    pub service_account: bool,
    /// `Priority`: priority 0 and `PreemptLowerPriority` without a class.
    pub priority: bool,
    /// `DefaultTolerationSeconds`: 300 s tolerations of unready and
    /// unreachable nodes.
    pub default_toleration_seconds: bool,
}

impl Admission {
    /// Every plugin on, kube-apiserver's default.
    pub const ALL: Admission = Admission {
        service_account: true,
        priority: true,
        default_toleration_seconds: true,
    };
}

impl Default for Admission {
    fn default() -> Self {
        Admission::ALL
    }
}

/// Checks one name given to `--disable-admission-plugins`.
pub fn known(name: &str) -> Result<&'static str, UnknownPlugin> {
    PLUGINS
        .iter()
        .find(|p| **p == name)
        .copied()
        .ok_or_else(|| UnknownPlugin { name: name.into() })
}

impl Admission {
    /// Every plugin except those named.
    pub fn disabling<S: AsRef<str>>(names: &[S]) -> Result<Admission, UnknownPlugin> {
        let mut a = Admission::default();
        for name in names {
            match known(name.as_ref().trim())? {
                "ServiceAccount" => a.service_account = false,
                "Priority" => a.priority = false,
                _ => a.default_toleration_seconds = false,
            }
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_plugin_runs_unless_disabled() {
        assert_eq!(Admission::disabling::<&str>(&[]), Ok(Admission::default()));
        let a = Admission::disabling(&["ServiceAccount", " Priority"]).expect("known names");
        assert!(!a.service_account && !a.priority && a.default_toleration_seconds);
        let a = Admission::disabling(&["DefaultTolerationSeconds"]).expect("known name");
        assert!(a.service_account && a.priority && !a.default_toleration_seconds);
    }

    #[test]
    fn unknown_plugins_are_refused_with_the_known_names() {
        let err = Admission::disabling(&["ServiceAcount"]).expect_err("a typo");
        assert_eq!(err.name, "ServiceAcount");
        assert!(
            err.to_string()
                .contains("ServiceAccount, Priority, DefaultTolerationSeconds"),
            "{err}"
        );
    }
}
