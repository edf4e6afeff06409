//! Decoding objects without `metadata.managedFields`, for readers that
//! never look at them: informers (client-go's `TransformStripManagedFields`)
//! and the API server's watch cache, which keeps the stored bytes and
//! decodes only to index an object by its labels and fields.
//!
//! The managed fields are close to half of a created pod's JSON and most of
//! the work of decoding it: a tree of small maps, one allocation each.
//! Skipping them while decoding saves that work. A serde deserializer
//! adapter drops the key `managedFields` of the top-level object's
//! `metadata` and passes everything else through untouched, so it works for
//! any kind.

use std::fmt;

use serde::Deserialize;
use serde::de::value::{BorrowedStrDeserializer, StringDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

/// Deserializes a `K` from `deserializer`, skipping `metadata.managedFields`.
pub fn without_managed_fields<'de, K, D>(deserializer: D) -> Result<K, D::Error>
where
    K: Deserialize<'de>,
    D: Deserializer<'de>,
{
    decode_at(deserializer, Level::Object(None))
}

/// Deserializes the part of a `K` an index reads: `apiVersion`, `kind`,
/// the metadata without managed fields, and of the other members only what
/// `paths` names: `"type"` keeps a top-level member whole, `"spec.nodeName"`
/// one member of a top-level object. The rest is skipped unread (a typed
/// object's required fields then take their defaults).
pub fn for_index<'de, K, D>(deserializer: D, paths: &'static [&'static str]) -> Result<K, D::Error>
where
    K: Deserialize<'de>,
    D: Deserializer<'de>,
{
    decode_at(deserializer, Level::Object(Some(paths)))
}

/// Deserializes a `K` from `deserializer` without the top-level member
/// `name` (as if the object lacked it); everything else is untouched,
/// managed fields included. The API server decodes a create's body so,
/// without its `status`.
pub fn without_member<'de, K, D>(deserializer: D, name: &'static str) -> Result<K, D::Error>
where
    K: Deserialize<'de>,
    D: Deserializer<'de>,
{
    decode_at(deserializer, Level::Without(name))
}

fn decode_at<'de, K, D>(deserializer: D, level: Level) -> Result<K, D::Error>
where
    K: Deserialize<'de>,
    D: Deserializer<'de>,
{
    K::deserialize(Filter {
        inner: deserializer,
        level,
    })
}

/// Where in the object a filtered value sits.
#[derive(Clone, Copy)]
enum Level {
    /// The object itself, of which only the member named is skipped.
    Without(&'static str),
    /// The object itself: its `metadata` is filtered, and with paths, its
    /// other members are kept only as far as the paths name them.
    Object(Option<&'static [&'static str]>),
    /// Its metadata: `managedFields` is skipped.
    Metadata,
    /// A top-level member of which only the `prefix.<key>` paths are kept.
    Member {
        prefix: &'static str,
        paths: &'static [&'static str],
    },
}

impl Level {
    /// What becomes of the member `key` of a map at this level: skipped
    /// (`None`), kept whole (`Some(None)`) or filtered (`Some(Some(level))`).
    fn member(self, key: &str) -> Option<Option<Level>> {
        match self {
            Level::Without(name) if key == name => None,
            Level::Without(_) => Some(None),
            Level::Metadata if key == "managedFields" => None,
            Level::Metadata => Some(None),
            Level::Object(_) if key == "metadata" => Some(Some(Level::Metadata)),
            Level::Object(None) => Some(None),
            Level::Object(Some(_)) if matches!(key, "apiVersion" | "kind") => Some(None),
            Level::Object(Some(paths)) => {
                if paths.contains(&key) {
                    return Some(None);
                }
                // A path below `key` keeps it, filtered to what the paths name.
                paths
                    .iter()
                    .find(|p| {
                        p.strip_prefix(key)
                            .is_some_and(|rest| rest.starts_with('.'))
                    })
                    .map(|p| {
                        Some(Level::Member {
                            prefix: &p[..key.len()],
                            paths,
                        })
                    })
            }
            Level::Member { prefix, paths } => paths
                .iter()
                .any(|p| {
                    p.strip_prefix(prefix)
                        .and_then(|rest| rest.strip_prefix('.'))
                        == Some(key)
                })
                .then_some(None),
        }
    }
}

/// A deserializer whose maps go through [`FilterMap`]; every request is
/// passed on to the inner deserializer with a wrapped visitor.
struct Filter<D> {
    inner: D,
    level: Level,
}

impl<D> Filter<D> {
    /// The inner deserializer, and `visitor` wrapped for this level.
    fn split<V>(self, visitor: V) -> (D, FilterVisitor<V>) {
        let level = self.level;
        (
            self.inner,
            FilterVisitor {
                inner: visitor,
                level,
            },
        )
    }
}

/// `Deserializer` methods of an adapter with a `split(self, visitor)` into
/// the inner deserializer and a wrapped visitor, which each pass on. With
/// no list: every method but `deserialize_any` and
/// `deserialize_ignored_any`, which adapters tell apart.
macro_rules! forward_deserialize {
    () => {
        $crate::lean::forward_deserialize!(
            deserialize_bool(),
            deserialize_i8(),
            deserialize_i16(),
            deserialize_i32(),
            deserialize_i64(),
            deserialize_i128(),
            deserialize_u8(),
            deserialize_u16(),
            deserialize_u32(),
            deserialize_u64(),
            deserialize_u128(),
            deserialize_f32(),
            deserialize_f64(),
            deserialize_char(),
            deserialize_str(),
            deserialize_string(),
            deserialize_bytes(),
            deserialize_byte_buf(),
            deserialize_option(),
            deserialize_unit(),
            deserialize_seq(),
            deserialize_map(),
            deserialize_identifier(),
            deserialize_unit_struct(name: &'static str),
            deserialize_newtype_struct(name: &'static str),
            deserialize_tuple(len: usize),
            deserialize_tuple_struct(name: &'static str, len: usize),
            deserialize_struct(name: &'static str, fields: &'static [&'static str]),
            deserialize_enum(name: &'static str, variants: &'static [&'static str]),
        );
    };
    ($($method:ident($($arg:ident: $ty:ty),*)),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            let (inner, visitor) = self.split(visitor);
            inner.$method($($arg,)* visitor)
        }
    )*};
}

pub(crate) use forward_deserialize;

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Filter<D> {
    type Error = D::Error;

    forward_deserialize!();
    forward_deserialize!(deserialize_any(), deserialize_ignored_any());

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// Passes every value to the inner visitor; a map goes through
/// [`FilterMap`], an option's content through [`Filter`].
struct FilterVisitor<V> {
    inner: V,
    level: Level,
}

/// The `Visitor` methods of an adapter around `self.inner: V` that pass
/// every scalar, `None` and unit on unchanged (the adapter writes the
/// methods that take a nested value).
macro_rules! forward_scalar_visits {
    () => {
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            self.inner.expecting(f)
        }

        $crate::lean::forward_scalar_visits!(@each
            visit_bool(bool),
            visit_i8(i8),
            visit_i16(i16),
            visit_i32(i32),
            visit_i64(i64),
            visit_i128(i128),
            visit_u8(u8),
            visit_u16(u16),
            visit_u32(u32),
            visit_u64(u64),
            visit_u128(u128),
            visit_f32(f32),
            visit_f64(f64),
            visit_char(char),
            visit_str(&str),
            visit_borrowed_str(&'de str),
            visit_string(String),
            visit_bytes(&[u8]),
            visit_borrowed_bytes(&'de [u8]),
            visit_byte_buf(Vec<u8>)
        );

        fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
            self.inner.visit_none()
        }

        fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
            self.inner.visit_unit()
        }
    };
    (@each $($method:ident($ty:ty)),*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

pub(crate) use forward_scalar_visits;

impl<'de, V: Visitor<'de>> Visitor<'de> for FilterVisitor<V> {
    type Value = V::Value;

    forward_scalar_visits!();

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.inner.visit_some(Filter {
            inner: d,
            level: self.level,
        })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.inner.visit_newtype_struct(Filter {
            inner: d,
            level: self.level,
        })
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.inner.visit_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.inner.visit_map(FilterMap {
            inner: map,
            level: self.level,
            next: None,
        })
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.inner.visit_enum(data)
    }
}

/// A map key, borrowed from the input when it can be.
pub(crate) enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl<'de> Key<'de> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }

    /// Hands the key on to `seed`, as the map that was read would have.
    pub(crate) fn into_seed<S: DeserializeSeed<'de>, E: de::Error>(
        self,
        seed: S,
    ) -> Result<S::Value, E> {
        match self {
            Key::Borrowed(s) => seed.deserialize(BorrowedStrDeserializer::new(s)),
            Key::Owned(s) => seed.deserialize(StringDeserializer::new(s)),
        }
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// The map of a filtered level: each member is skipped, passed on, or
/// filtered in turn as [`Level::member`] says.
struct FilterMap<A> {
    inner: A,
    level: Level,
    /// The level of the value after the key just returned, if filtered.
    next: Option<Level>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for FilterMap<A> {
    type Error = A::Error;

    fn next_key_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, A::Error> {
        loop {
            let Some(key) = self.inner.next_key::<Key<'de>>()? else {
                return Ok(None);
            };
            let Some(next) = self.level.member(key.as_str()) else {
                self.inner.next_value::<IgnoredAny>()?;
                continue;
            };
            self.next = next;
            return key.into_seed(seed).map(Some);
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        match self.next.take() {
            Some(level) => self.inner.next_value_seed(LevelSeed { seed, level }),
            None => self.inner.next_value_seed(seed),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// Deserializes a member through a [`Filter`] at `level`.
struct LevelSeed<S> {
    seed: S,
    level: Level,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for LevelSeed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(Filter {
            inner: d,
            level: self.level,
        })
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    use super::{for_index, without_managed_fields, without_member};

    #[test]
    fn one_top_level_member_is_skipped_and_nothing_else() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "managedFields": [{"manager": "m"}]},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1"}
        });
        let bytes = serde_json::to_vec(&pod).expect("encodes");
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let decoded: Pod = without_member(&mut de, "status").expect("decodes");
        let mut want: Pod = serde_json::from_value(pod).expect("a pod");
        want.status = None;
        assert_eq!(decoded, want);
        assert!(decoded.metadata.managed_fields.is_some());
    }

    #[test]
    fn managed_fields_are_skipped_and_everything_else_is_kept() {
        let bytes = serde_json::to_vec(&json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "web-1",
                "namespace": "default",
                "labels": {"app": "web", "managedFields": "a label, kept"},
                "managedFields": [{
                    "manager": "kubectl",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}}}
                }],
                "annotations": {"note": "escaped \"quotes\" keep working"}
            },
            "spec": {"containers": [{"name": "c", "image": "busybox",
                "env": [{"name": "managedFields", "value": "kept"}]}]},
            "status": {"phase": "Running"}
        }))
        .expect("encodes");
        let full: Pod = serde_json::from_slice(&bytes).expect("decodes");
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let lean: Pod = without_managed_fields(&mut de).expect("decodes");
        assert!(full.metadata.managed_fields.is_some());
        assert_eq!(lean.metadata.managed_fields, None);
        let mut expected = full;
        expected.metadata.managed_fields = None;
        assert_eq!(lean, expected);
    }

    #[test]
    fn an_index_decode_keeps_the_metadata_and_only_the_named_members() {
        let bytes = serde_json::to_vec(&json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-1", "labels": {"app": "web"},
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"nodeName": "n1", "schedulerName": "s",
                "containers": [{"name": "c", "image": "busybox"}],
                "volumes": [{"name": "v", "emptyDir": {}}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1",
                "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .expect("encodes");
        const PATHS: &[&str] = &["spec.nodeName", "status.phase", "status.podIP"];
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let pod: Pod = for_index(&mut de, PATHS).expect("decodes");
        assert_eq!(pod.metadata.name.as_deref(), Some("web-1"));
        assert!(pod.metadata.labels.is_some_and(|l| l["app"] == "web"));
        assert_eq!(pod.metadata.managed_fields, None);
        let spec = pod.spec.expect("spec kept");
        assert_eq!(spec.node_name.as_deref(), Some("n1"));
        assert_eq!(
            (spec.scheduler_name, spec.containers.len(), spec.volumes),
            (None, 0, None)
        );
        let status = pod.status.expect("status kept");
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.pod_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(status.conditions, None);

        // A top-level path keeps its member whole; no path drops it.
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let pod: Pod = for_index(&mut de, &["spec"]).expect("decodes");
        assert_eq!(pod.spec.map(|s| s.containers.len()), Some(1));
        assert_eq!(pod.status, None);
    }
}
