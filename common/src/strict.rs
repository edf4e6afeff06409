//! A typed decode that notices, on the way, whether strict decoding could
//! have anything to say about the body: a member the type ignored (an
//! unknown field) or a key repeated within one object.
//!
//! Kubernetes' strict decoding walks the body once, decoding it. The API
//! server's exact check (`openapi::validate`) is a walk of its own, with
//! the paths and wording kubectl prints. Run before every typed create, it
//! parsed each body twice. This adapter lets the typed decode answer the
//! common question (is there anything to report?) in the same pass; only a
//! body where it finds something, or cannot be sure, needs the exact walk.
//!
//! How it knows: a generated Kubernetes type decodes each member it has by
//! type and skips the others as `IgnoredAny`, so a value skipped inside a
//! map is a member the type ignored; keys are compared within each object.
//! Values a type decodes as "anything" (`deserialize_any`: `RawExtension`,
//! `FieldsV1`, int-or-string) are passed through unlooked-at, as the exact
//! walk passes over the schema's opaque nodes.

use std::cell::{Cell, RefCell};
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::lean::{Key, forward_deserialize, forward_scalar_visits};

/// More keys than this in one object are not compared here: the exact walk
/// (which hashes them) checks such a body.
const MAX_KEYS: usize = 32;

/// What one decode found; shared by every level of it.
#[derive(Default)]
pub struct StrictCheck<'de> {
    /// The keys of the objects being decoded, outermost first.
    keys: RefCell<Vec<&'de str>>,
    unsure: Cell<bool>,
}

impl<'de> StrictCheck<'de> {
    pub fn new() -> Self {
        Self::default()
    }

    /// `deserializer`, watched by this check.
    pub fn wrap<D: Deserializer<'de>>(&self, deserializer: D) -> Strict<'_, 'de, D> {
        Strict {
            inner: deserializer,
            check: self,
        }
    }

    /// True when the decode saw no ignored member and no repeated key, so
    /// strict decoding has nothing to report on what was decoded.
    pub fn passed(&self) -> bool {
        !self.unsure.get()
    }

    fn doubt(&self) {
        self.unsure.set(true);
    }

    /// `seed`, deserializing through a watched deserializer.
    fn seed<S>(&self, seed: S) -> StrictSeed<'_, 'de, S> {
        StrictSeed { seed, check: self }
    }
}

/// A deserializer whose maps and lists are watched by a [`StrictCheck`].
pub struct Strict<'a, 'de, D> {
    inner: D,
    check: &'a StrictCheck<'de>,
}

impl<'a, 'de, D> Strict<'a, 'de, D> {
    fn split<V>(self, visitor: V) -> (D, StrictVisitor<'a, 'de, V>) {
        (
            self.inner,
            StrictVisitor {
                inner: visitor,
                check: self.check,
            },
        )
    }
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Strict<'_, 'de, D> {
    type Error = D::Error;

    forward_deserialize!();

    /// "Anything": opaque to the check, as to the exact walk.
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_any(visitor)
    }

    /// A value the type skips: a member it does not have.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.check.doubt();
        self.inner.deserialize_ignored_any(visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

struct StrictVisitor<'a, 'de, V> {
    inner: V,
    check: &'a StrictCheck<'de>,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for StrictVisitor<'_, 'de, V> {
    type Value = V::Value;

    forward_scalar_visits!();

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.inner.visit_some(self.check.wrap(d))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.inner.visit_newtype_struct(self.check.wrap(d))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.inner.visit_seq(StrictSeq {
            inner: seq,
            check: self.check,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        let base = self.check.keys.borrow().len();
        self.inner.visit_map(StrictMap {
            inner: map,
            check: self.check,
            base,
        })
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        // No Kubernetes type decodes an enum: nothing to look into.
        self.inner.visit_enum(data)
    }
}

struct StrictSeq<'a, 'de, A> {
    inner: A,
    check: &'a StrictCheck<'de>,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for StrictSeq<'_, 'de, A> {
    type Error = A::Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, A::Error> {
        self.inner.next_element_seed(self.check.seed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// One object: its keys are compared with the ones before them.
struct StrictMap<'a, 'de, A> {
    inner: A,
    check: &'a StrictCheck<'de>,
    /// Where this object's keys start in the check's list.
    base: usize,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for StrictMap<'_, 'de, A> {
    type Error = A::Error;

    fn next_key_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, A::Error> {
        let Some(key) = self.inner.next_key::<Key<'de>>()? else {
            self.check.keys.borrow_mut().truncate(self.base);
            return Ok(None);
        };
        match key {
            Key::Borrowed(key) => {
                let mut keys = self.check.keys.borrow_mut();
                let seen = &keys[self.base..];
                if seen.len() >= MAX_KEYS || seen.contains(&key) {
                    self.check.doubt();
                } else {
                    keys.push(key);
                }
            }
            // An escaped key is not kept to compare: let the exact walk look.
            Key::Owned(_) => self.check.doubt(),
        }
        key.into_seed(seed).map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        self.inner.next_value_seed(self.check.seed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

struct StrictSeed<'a, 'de, S> {
    seed: S,
    check: &'a StrictCheck<'de>,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for StrictSeed<'_, 'de, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(self.check.wrap(d))
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Pod;
    use serde::Deserialize;

    use super::StrictCheck;

    /// Decodes `body` as a `K` through the check: the object, and whether
    /// the check passed.
    fn decode<'de, K: Deserialize<'de>>(body: &'de str) -> (K, bool) {
        let check = StrictCheck::new();
        let mut de = serde_json::Deserializer::from_str(body);
        let decoded = K::deserialize(check.wrap(&mut de)).expect("decodes");
        de.end().expect("ends");
        (decoded, check.passed())
    }

    const POD: &str = r#"{"apiVersion":"v1","kind":"Pod",
        "metadata":{"name":"p","labels":{"app":"web","tier":"front"},
            "managedFields":[{"manager":"m","fieldsType":"FieldsV1",
                "fieldsV1":{"f:metadata":{"f:labels":{}},"f:spec":{}}}]},
        "spec":{"containers":[
            {"name":"a","image":"i","ports":[{"containerPort":80}],
             "resources":{"limits":{"cpu":"1"}},
             "livenessProbe":{"httpGet":{"path":"/","port":"http"}}},
            {"name":"b","image":"i","env":[{"name":"X","value":"1"}]}],
         "nodeSelector":{"disk":"ssd"}}}"#;

    #[test]
    fn a_body_of_known_fields_passes_and_decodes_as_without_the_check() {
        let (pod, passed): (Pod, bool) = decode(POD);
        assert!(passed);
        assert_eq!(pod, serde_json::from_str::<Pod>(POD).expect("a pod"));
    }

    #[test]
    fn an_unknown_field_at_any_depth_is_noticed() {
        for (at, with) in [
            (r#""kind":"Pod","#, r#""kind":"Pod","extra":1,"#),
            (r#""name":"p","#, r#""name":"p","nmae":"q","#),
            (r#""name":"a","#, r#""name":"a","imagee":"x","#),
            (
                r#""containerPort":80"#,
                r#""containerPort":80,"hostPortt":1"#,
            ),
            (r#""path":"/","#, r#""path":"/","pth":{"a":[1]},"#),
            (r#""manager":"m","#, r#""manager":"m","managr":"m","#),
        ] {
            let body = POD.replacen(at, with, 1);
            assert_ne!(body, POD, "{at}");
            let (_, passed): (Pod, bool) = decode(&body);
            assert!(!passed, "{with}");
        }
    }

    #[test]
    fn a_repeated_key_is_noticed_in_objects_and_maps_but_not_in_opaque_values() {
        for (at, with) in [
            (r#""name":"p","#, r#""name":"p","name":"p","#),
            (r#""app":"web","#, r#""app":"web","app":"db","#),
            (
                r#""image":"i","ports""#,
                r#""image":"i","image":"j","ports""#,
            ),
            (r#""disk":"ssd""#, r#""disk":"ssd","disk":"hdd""#),
        ] {
            let body = POD.replacen(at, with, 1);
            assert_ne!(body, POD, "{at}");
            let (_, passed): (Pod, bool) = decode(&body);
            assert!(!passed, "{with}");
        }
        // fieldsV1 is "anything" to the schema: the exact walk does not look.
        let body = POD.replacen(r#""f:spec":{}"#, r#""f:spec":{},"f:spec":{}"#, 1);
        assert_ne!(body, POD);
        let (_, passed): (Pod, bool) = decode(&body);
        assert!(passed);
        // The same key in two sibling objects is no repetition.
        let (_, passed): (Deployment, bool) = decode(
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},
            "spec":{"selector":{"matchLabels":{"app":"x"}},
            "template":{"metadata":{"labels":{"app":"x"}},
            "spec":{"containers":[{"name":"c","image":"i"},{"name":"c2","image":"i"}]}}}}"#,
        );
        assert!(passed);
    }

    #[test]
    fn what_the_check_cannot_be_sure_of_is_left_to_the_exact_walk() {
        // A key with an escape is not kept for comparing.
        let body = POD.replacen(r#""tier":"front""#, r#""ti\u0065r2":"front""#, 1);
        let (pod, passed): (Pod, bool) = decode(&body);
        assert!(!passed);
        assert!(pod.metadata.labels.is_some_and(|l| l.contains_key("tier2")));
        // More keys in one object than it compares.
        let labels: Vec<String> = (0..40).map(|i| format!(r#""l{i}":"v""#)).collect();
        let body = POD.replacen(r#""app":"web","tier":"front""#, &labels.join(","), 1);
        let (pod, passed): (Pod, bool) = decode(&body);
        assert!(!passed);
        assert_eq!(pod.metadata.labels.map(|l| l.len()), Some(40));
    }
}
