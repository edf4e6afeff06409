//! [`created_managed_fields_of`]: the create's entry written while walking a
//! typed object through `serde::Serialize`, without first converting it into
//! a `serde_json::Value` tree. The walk makes the same decisions as the
//! `Value` writer in the parent module, from the same schema and zero
//! object; where it cannot (a value that the zero object holds as anything
//! but an object), that member is converted and handed to the `Value`
//! writer, and anything unexpected abandons the walk so the caller uses the
//! `Value` path.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::ser::{self, Impossible, Serialize, Serializer};
use serde_json::Value;

use super::{
    Written, Zero, entry, envelope, field_member_key, is_metadata_stripped, is_zero_struct,
    list_entry, member_key, separate,
};
use crate::patch::ManagerRequest;
use crate::patch::fieldpath::PathElement;
use crate::patch::schema::{self, Field, Shape, TypeHint};
use crate::patch::typed::write_keyed_element;
use crate::patch::zero::zero_object;

/// What [`super::created_managed_fields`] gives for `obj` encoded as JSON,
/// written from the typed object; `None` when it records nothing, and
/// `Err` when this walk cannot decide and the `Value` path must.
pub fn created_managed_fields_of<T: Serialize + ?Sized>(
    obj: &T,
    api_version: &str,
    kind: &str,
    req: &ManagerRequest<'_>,
) -> Result<Option<Vec<u8>>, Unsupported> {
    let mut sink = Sink {
        out: Vec::with_capacity(2048),
        written: Vec::with_capacity(64),
    };
    let root = TypeHint::for_kind(kind).root();
    let zero = Zero::Present(zero_object(api_version, kind));
    let written = obj.serialize(Walk {
        field: root,
        zero,
        sink: &mut sink,
        role: Role::Root,
        capture: None,
    })?;
    match written {
        Written::Entry => Ok(Some(envelope(&sink.out, req))),
        Written::Leaf | Written::Nothing => Ok(None),
    }
}

/// The walk met something it does not decide itself.
#[derive(Debug)]
pub struct Unsupported;

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not walked as a typed object")
    }
}

impl std::error::Error for Unsupported {}

impl ser::Error for Unsupported {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Unsupported
    }
}

/// Which rules apply to the members of the map being walked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The object itself: status and identity are not owned, and its entry
    /// holds only what its members hold.
    Root,
    /// Its `metadata`: never owned itself; identity members skipped.
    Metadata,
    /// Any other map.
    Member,
    /// An item of a keyed list: a member itself (`".": {}`) when non-empty.
    Item,
}

/// The key fields of a keyed list's item, captured as the item is walked.
type Captured = Vec<(&'static str, Value)>;

/// What a walk writes, shared by all its levels so that none allocates
/// its own buffers.
struct Sink {
    /// The entries written so far.
    out: Vec<u8>,
    /// The members written of the maps being walked, innermost last: each
    /// map's key, start (after its comma) and end, for sorting them when
    /// they came unsorted. A map drops its own when it ends.
    written: Vec<(Cow<'static, str>, usize, usize)>,
}

/// Walks one value, writing its entry as [`super::entry`] does.
struct Walk<'o, 'z> {
    field: Field,
    zero: Zero<'z>,
    sink: &'o mut Sink,
    role: Role,
    capture: Option<(&'static [&'static str], &'o mut Captured)>,
}

impl<'o, 'z> Walk<'o, 'z> {
    /// A scalar's verdict: not even changed when the zero object has it.
    fn leaf(self, same_as_zero: impl FnOnce(&Value) -> bool) -> Result<Written, Unsupported> {
        if self.role == Role::Root {
            return Err(Unsupported);
        }
        Ok(match self.zero {
            Zero::Present(z) if same_as_zero(z) => Written::Nothing,
            _ => Written::Leaf,
        })
    }

    fn map(self) -> Result<Members<'o, 'z>, Unsupported> {
        let granular = granular_map(self.field);
        if !granular && self.role != Role::Member {
            return Err(Unsupported);
        }
        let out = &mut self.sink.out;
        let mark = out.len();
        let added = matches!(self.zero, Zero::Absent);
        let dot = match self.role {
            Role::Root | Role::Metadata => false,
            Role::Member => added,
            Role::Item => true,
        };
        if granular {
            out.push(b'{');
            if dot {
                out.extend_from_slice(b"\".\":{}");
            }
        }
        let region = out.len();
        let written = self.sink.written.len();
        Ok(Members {
            walk: self,
            granular,
            mark,
            region,
            dot,
            first: !dot,
            seen: 0,
            written,
            pending_key: None,
        })
    }
}

/// The members of a map or struct being walked.
struct Members<'o, 'z> {
    walk: Walk<'o, 'z>,
    /// Whether members are walked at all (an atomic map is one leaf).
    granular: bool,
    /// Where this value's entry starts.
    mark: usize,
    /// Where its members start.
    region: usize,
    /// Whether the entry holds `".": {}` before its members.
    dot: bool,
    first: bool,
    /// Members met, owned or not: none means an empty object.
    seen: usize,
    /// Where this map's members start in the sink's `written`.
    written: usize,
    /// A map's key, between `serialize_key` and `serialize_value`.
    pending_key: Option<String>,
}

impl Members<'_, '_> {
    fn member<T: Serialize + ?Sized>(
        &mut self,
        key: Cow<'static, str>,
        value: &T,
    ) -> Result<(), Unsupported> {
        self.seen += 1;
        if let Some((keys, captured)) = &mut self.walk.capture
            && let Some(k) = keys.iter().find(|k| **k == key)
        {
            captured.push((k, serde_json::to_value(value).map_err(|_| Unsupported)?));
        }
        if !self.granular {
            return Ok(());
        }
        match self.walk.role {
            Role::Root if matches!(&*key, "status" | "apiVersion" | "kind") => return Ok(()),
            Role::Metadata if is_metadata_stripped(&key) => {
                // Only managed fields could be more than a scalar here, and
                // a create that brings its own takes the general path.
                return match &*key {
                    "managedFields" => Err(Unsupported),
                    _ => Ok(()),
                };
            }
            _ => {}
        }
        let field = schema::field(self.walk.field.node, &key);
        let zero = self.walk.zero.child(&key);
        let sink = &mut *self.walk.sink;
        let mark = (sink.out.len(), self.first);
        separate(&mut sink.out, &mut self.first);
        let start = sink.out.len();
        match &key {
            Cow::Borrowed(name) => field_member_key(&mut sink.out, "f:", name),
            Cow::Owned(key) => member_key(&mut sink.out, "f:", key),
        }
        let role = match (self.walk.role, &*key) {
            (Role::Root, "metadata") => Role::Metadata,
            _ => Role::Member,
        };
        let written = match zero {
            // What the zero object holds as a scalar or a list (or as an
            // object where the value is one leaf) is compared whole, by the
            // tree writer. A null there is a present but empty value.
            Zero::Present(z)
                if !(z.is_object() || z.is_null())
                    || z.is_object() && role == Role::Member && !granular_map(field) =>
            {
                let v = serde_json::to_value(value).map_err(|_| Unsupported)?;
                entry(&v, field, zero, &mut sink.out)
            }
            _ => value.serialize(Walk {
                field,
                zero,
                sink: &mut *sink,
                role,
                capture: None,
            })?,
        };
        match written {
            Written::Entry => {}
            Written::Leaf => sink.out.extend_from_slice(b"{}"),
            Written::Nothing => {
                sink.out.truncate(mark.0);
                self.first = mark.1;
                return Ok(());
            }
        }
        let end = sink.out.len();
        sink.written.push((key, start, end));
        Ok(())
    }

    fn end(self) -> Result<Written, Unsupported> {
        let walk = self.walk;
        if !self.granular {
            return walk.leaf(|_| false);
        }
        if self.seen == 0 {
            walk.sink.out.truncate(self.mark);
            return match walk.role {
                // Nothing below: nothing owned.
                Role::Root | Role::Metadata => Ok(Written::Nothing),
                // An empty object is a leaf, unchanged where the zero
                // object has an empty one (or one of nulls, as Go writes a
                // zero struct).
                _ => Walk {
                    role: Role::Member,
                    ..walk
                }
                .leaf(is_zero_struct),
            };
        }
        let sink = &mut *walk.sink;
        let written = &mut sink.written[self.written..];
        if !written.is_sorted_by(|a, b| a.0 <= b.0) {
            sort_members(&mut sink.out, self.region, self.dot, written);
        }
        let any = !written.is_empty();
        sink.written.truncate(self.written);
        let unowned = match walk.role {
            Role::Root | Role::Metadata => !any,
            Role::Member => !any && !matches!(walk.zero, Zero::Absent),
            Role::Item => false,
        };
        if unowned {
            walk.sink.out.truncate(self.mark);
            return Ok(Written::Nothing);
        }
        walk.sink.out.push(b'}');
        Ok(Written::Entry)
    }
}

fn granular_map(field: Field) -> bool {
    !matches!(field.shape, Shape::AtomicMap | Shape::ReplaceMap)
}

/// Rewrites the members written from `region` on in key order, as the
/// entry's encoding has them (after a comma if `".": {}` precedes them).
fn sort_members(
    out: &mut Vec<u8>,
    region: usize,
    dot: bool,
    written: &mut [(Cow<'static, str>, usize, usize)],
) {
    let tail = out.split_off(region);
    written.sort_by(|a, b| a.0.cmp(&b.0));
    for (i, (_, start, end)) in written.iter().enumerate() {
        if i > 0 || dot {
            out.push(b',');
        }
        out.extend_from_slice(&tail[start - region..end - region]);
    }
}

/// The items of a keyed or set list being walked.
struct Items<'o> {
    field: Field,
    /// The zero object lacks the list: it is a member itself.
    added: bool,
    sink: &'o mut Sink,
    /// Where the list's entry goes; each item's entry is written after it
    /// until the list ends.
    region: usize,
    /// Each item's path element and where its entry lies in the sink.
    items: Vec<(String, Range<usize>)>,
    /// An item without a path element makes the whole list one leaf.
    atomic: bool,
}

impl Items<'_> {
    fn item<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        if self.atomic {
            return Ok(());
        }
        match self.field.shape {
            Shape::Set => {
                let text = serde_json::to_string(value).map_err(|_| Unsupported)?;
                let out = &mut self.sink.out;
                let start = out.len();
                out.extend_from_slice(b"{}");
                self.items
                    .push((PathElement::Value(text).serialize(), start..out.len()));
            }
            Shape::Keyed(keys) => {
                let mut captured = Captured::with_capacity(keys.len());
                let start = self.sink.out.len();
                let item_field = Field {
                    node: self.field.node,
                    shape: Shape::Plain,
                };
                let written = value.serialize(Walk {
                    field: item_field,
                    zero: Zero::Absent,
                    sink: &mut *self.sink,
                    role: Role::Item,
                    capture: Some((keys, &mut captured)),
                });
                let written = written?;
                // An item that is no object has no element either.
                let found = |key: &str| captured.iter().find(|(k, _)| *k == key).map(|(_, v)| v);
                let mut element = Vec::with_capacity(32);
                element.extend_from_slice(b"k:");
                if write_keyed_element(&mut element, keys, found).is_err() {
                    self.atomic = true;
                    return Ok(());
                }
                let out = &mut self.sink.out;
                if !matches!(written, Written::Entry) {
                    out.truncate(start);
                    out.extend_from_slice(b"{}");
                }
                let element = String::from_utf8(element).map_err(|_| Unsupported)?;
                self.items.push((element, start..out.len()));
            }
            _ => return Err(Unsupported),
        }
        Ok(())
    }

    fn end(self) -> Result<Written, Unsupported> {
        let out = &mut self.sink.out;
        if self.atomic || self.items.is_empty() {
            out.truncate(self.region);
            return Ok(Written::Leaf);
        }
        let chunks = out.split_off(self.region);
        let region = self.region;
        list_entry(out, self.added, self.items, |out, range| {
            out.extend_from_slice(&chunks[range.start - region..range.end - region]);
        });
        Ok(Written::Entry)
    }
}

/// A list nobody walks into: an atomic list is one leaf.
enum Seq<'o> {
    Granular(Items<'o>),
    Leaf(Written),
}

impl<'o, 'z> Serializer for Walk<'o, 'z> {
    type Ok = Written;
    type Error = Unsupported;
    type SerializeSeq = Seq<'o>;
    type SerializeTuple = Impossible<Written, Unsupported>;
    type SerializeTupleStruct = Impossible<Written, Unsupported>;
    type SerializeTupleVariant = Impossible<Written, Unsupported>;
    type SerializeMap = Members<'o, 'z>;
    type SerializeStruct = Members<'o, 'z>;
    type SerializeStructVariant = Impossible<Written, Unsupported>;

    fn serialize_bool(self, v: bool) -> Result<Written, Unsupported> {
        self.leaf(|z| z.as_bool() == Some(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Written, Unsupported> {
        self.serialize_i64(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<Written, Unsupported> {
        self.serialize_i64(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<Written, Unsupported> {
        self.serialize_i64(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<Written, Unsupported> {
        self.leaf(|z| *z == v)
    }
    fn serialize_u8(self, v: u8) -> Result<Written, Unsupported> {
        self.serialize_u64(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<Written, Unsupported> {
        self.serialize_u64(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<Written, Unsupported> {
        self.serialize_u64(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<Written, Unsupported> {
        self.leaf(|z| *z == v)
    }
    fn serialize_f32(self, v: f32) -> Result<Written, Unsupported> {
        self.serialize_f64(v.into())
    }
    // As the tree compares: a float is never equal to an integer there.
    #[allow(clippy::cmp_owned)]
    fn serialize_f64(self, v: f64) -> Result<Written, Unsupported> {
        self.leaf(|z| *z == Value::from(v))
    }
    fn serialize_char(self, v: char) -> Result<Written, Unsupported> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<Written, Unsupported> {
        self.leaf(|z| z.as_str() == Some(v))
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<Written, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_none(self) -> Result<Written, Unsupported> {
        self.leaf(Value::is_null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Written, Unsupported> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Written, Unsupported> {
        self.leaf(Value::is_null)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Written, Unsupported> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Written, Unsupported> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<Written, Unsupported> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Written, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Seq<'o>, Unsupported> {
        if self.role != Role::Member || self.capture.is_some() {
            return Err(Unsupported);
        }
        let granular = matches!(self.field.shape, Shape::Keyed(_) | Shape::Set);
        if !granular || len == Some(0) {
            return Ok(Seq::Leaf(
                self.leaf(|z| z.as_array().is_some_and(Vec::is_empty))?,
            ));
        }
        let region = self.sink.out.len();
        Ok(Seq::Granular(Items {
            field: self.field,
            added: matches!(self.zero, Zero::Absent),
            sink: self.sink,
            region,
            items: Vec::with_capacity(len.unwrap_or(0)),
            atomic: false,
        }))
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Members<'o, 'z>, Unsupported> {
        self.map()
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Members<'o, 'z>, Unsupported> {
        self.map()
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Unsupported> {
        Err(Unsupported)
    }
}

impl ser::SerializeSeq for Seq<'_> {
    type Ok = Written;
    type Error = Unsupported;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        match self {
            Seq::Granular(items) => items.item(value),
            Seq::Leaf(_) => Ok(()),
        }
    }

    fn end(self) -> Result<Written, Unsupported> {
        match self {
            Seq::Granular(items) => items.end(),
            Seq::Leaf(written) => Ok(written),
        }
    }
}

impl ser::SerializeStruct for Members<'_, '_> {
    type Ok = Written;
    type Error = Unsupported;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        self.member(Cow::Borrowed(key), value)
    }

    fn end(self) -> Result<Written, Unsupported> {
        Members::end(self)
    }
}

impl ser::SerializeMap for Members<'_, '_> {
    type Ok = Written;
    type Error = Unsupported;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Unsupported> {
        // A JSON object's keys are strings; anything else is not walked.
        match key.serialize(serde_json::value::Serializer) {
            Ok(Value::String(key)) => {
                self.pending_key = Some(key);
                Ok(())
            }
            _ => Err(Unsupported),
        }
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        let key = self.pending_key.take().ok_or(Unsupported)?;
        self.member(Cow::Owned(key), value)
    }

    fn end(self) -> Result<Written, Unsupported> {
        Members::end(self)
    }
}
