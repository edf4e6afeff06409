//! Adds a member to an object's stored JSON `metadata` without decoding it.
//! Stored objects carry no resourceVersion (the store's revision is it);
//! every answer and watch event needs one, and writing it into the bytes
//! costs a scan where a decode and re-encode cost a few microseconds per
//! object on the hottest paths (create answers, the watch cache). A create's
//! managed fields go in the same way. The member goes where a sorted encoder
//! puts it, so the result is byte for byte what encoding the object with
//! that member gives.

/// `json` (an object) with `"resourceVersion":"<rv>"` in its top-level
/// `metadata`. `None` when that cannot be done by insertion alone: not an
/// object, no `metadata` object, or one that already has a
/// resourceVersion; the caller then encodes the object itself.
pub fn with_resource_version(json: &[u8], rv: i64) -> Option<Vec<u8>> {
    with_metadata_member(json, b"resourceVersion", format!("\"{rv}\"").as_bytes())
}

/// `json` (an object) with `"<key>":<value>` in its top-level `metadata`,
/// `value` being encoded JSON; `None` as for [`with_resource_version`].
pub fn with_metadata_member(json: &[u8], key: &[u8], value: &[u8]) -> Option<Vec<u8>> {
    let [at] = metadata_insertions(json, [key])?;
    Some(splice(json, at, key, value))
}

/// A created object's encoding with its managed fields, and where its
/// resourceVersion goes once the store has given it one: the create's
/// answer then needs no second scan of the object.
#[derive(Clone)]
pub struct WithManagedFields {
    pub bytes: bytes::Bytes,
    resource_version_at: Insertion,
}

/// `json` with `managed` as its `metadata.managedFields`; `None` as for
/// [`with_resource_version`], or when it has a managedFields member.
pub fn with_managed_fields(json: &[u8], managed: &[u8]) -> Option<WithManagedFields> {
    let [at, rv_at] = metadata_insertions(json, [b"managedFields", b"resourceVersion"])?;
    let inserted_before_rv = member_len(&at, b"managedFields", managed);
    let bytes = splice(json, at, b"managedFields", managed);
    Some(WithManagedFields {
        bytes: bytes.into(),
        resource_version_at: Insertion {
            at: rv_at.at + inserted_before_rv,
            ..rv_at
        },
    })
}

impl WithManagedFields {
    /// The object with `"resourceVersion":"<rv>"` in its metadata.
    pub fn with_resource_version(&self, rv: i64) -> Vec<u8> {
        let value = format!("\"{rv}\"");
        splice(
            &self.bytes,
            self.resource_version_at,
            b"resourceVersion",
            value.as_bytes(),
        )
    }
}

/// Where each of `keys` (in sorted order) goes in the top-level metadata;
/// `None` if that is not an object or already has one of them.
fn metadata_insertions<const N: usize>(json: &[u8], keys: [&[u8]; N]) -> Option<[Insertion; N]> {
    let mut scan = Scan { bytes: json, at: 0 };
    scan.expect(b'{')?;
    loop {
        scan.skip_space();
        if scan.peek()? == b'}' {
            return None;
        }
        let name = scan.string()?;
        scan.expect(b':')?;
        scan.skip_space();
        if name == b"metadata" {
            return scan.metadata_insertions(keys);
        }
        scan.value()?;
        scan.skip_space();
        match scan.next()? {
            b',' => {}
            _ => return None,
        }
    }
}

/// Where a member goes and what separates it from its neighbours.
#[derive(Debug, Clone, Copy)]
struct Insertion {
    at: usize,
    /// A comma before the member: it goes last in a non-empty object.
    comma_before: bool,
    /// A comma after it: a key follows.
    comma_after: bool,
}

/// The bytes [`splice`] adds for one member.
fn member_len(insertion: &Insertion, key: &[u8], value: &[u8]) -> usize {
    key.len()
        + value.len()
        + 3
        + usize::from(insertion.comma_before)
        + usize::from(insertion.comma_after)
}

fn splice(json: &[u8], insertion: Insertion, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + member_len(&insertion, key, value));
    out.extend_from_slice(&json[..insertion.at]);
    if insertion.comma_before {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(key);
    out.extend_from_slice(b"\":");
    out.extend_from_slice(value);
    if insertion.comma_after {
        out.push(b',');
    }
    out.extend_from_slice(&json[insertion.at..]);
    out
}

/// A cursor over JSON that skips values without building them.
struct Scan<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn expect(&mut self, want: u8) -> Option<()> {
        self.skip_space();
        (self.next()? == want).then_some(())
    }

    /// A string at the cursor; returns its raw content (escapes left as
    /// they are, so an escaped key never equals a plain one).
    fn string(&mut self) -> Option<&'a [u8]> {
        if self.next()? != b'"' {
            return None;
        }
        let start = self.at;
        loop {
            // Most of a stored object is string content: jump to its end.
            self.at += memchr::memchr2(b'"', b'\\', self.bytes.get(self.at..)?)?;
            match self.next()? {
                b'"' => return Some(&self.bytes[start..self.at - 1]),
                _ => {
                    self.next()?;
                }
            }
        }
    }

    /// Skips one value of any kind.
    fn value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.at += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.at += 1;
                }
            }
            _ => {
                // A number or a literal: runs to the next delimiter.
                let start = self.at;
                while self
                    .peek()
                    .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
                {
                    self.at += 1;
                }
                (self.at > start).then_some(())
            }
        }
    }

    /// With the cursor on the metadata value: where each of `new_keys`
    /// (sorted) goes, before the first key that sorts after it, else at the
    /// end; `None` if the metadata has one of them already.
    fn metadata_insertions<const N: usize>(
        &mut self,
        new_keys: [&[u8]; N],
    ) -> Option<[Insertion; N]> {
        self.expect(b'{')?;
        let mut found = [Insertion {
            at: 0,
            comma_before: false,
            comma_after: false,
        }; N];
        let mut placed = 0;
        let mut members = 0usize;
        loop {
            self.skip_space();
            if self.peek()? == b'}' {
                // The rest go last, each after what precedes it.
                for (i, slot) in found.iter_mut().enumerate().skip(placed) {
                    *slot = Insertion {
                        at: self.at,
                        comma_before: members > 0 || i > placed,
                        comma_after: false,
                    };
                }
                return Some(found);
            }
            let key_start = self.at;
            let key = self.string()?;
            while placed < N && new_keys[placed] < key {
                found[placed] = Insertion {
                    at: key_start,
                    comma_before: false,
                    comma_after: true,
                };
                placed += 1;
            }
            if placed < N && new_keys[placed] == key {
                return None;
            }
            if placed == N {
                return Some(found);
            }
            self.expect(b':')?;
            self.skip_space();
            self.value()?;
            members += 1;
            self.skip_space();
            match self.next()? {
                b',' => {}
                b'}' => {
                    self.at -= 1;
                }
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{with_managed_fields, with_metadata_member, with_resource_version};
    use serde_json::{Value, json};

    /// What encoding the object with the resourceVersion set gives.
    fn encoded_with_rv(object: &Value, rv: i64) -> Vec<u8> {
        let mut object = object.clone();
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        serde_json::to_vec(&object).expect("encodes")
    }

    #[test]
    fn the_result_is_byte_for_byte_the_encoding_of_the_object_with_its_rv() {
        let objects = [
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "namespace": "d", "uid": "u"}, "spec": {"x": [1, {"y": "}]\"{"}]}}),
            json!({"metadata": {}, "spec": {}}),
            json!({"metadata": {"annotations": {"resourceVersion": "x"}, "name": "a"}}),
            json!({"a": {"metadata": {"b": 1}}, "metadata": {"selfLink": "s", "uid": "u"}}),
            json!({"metadata": {"labels": {"a": "b"}, "managedFields": [{"fieldsV1": {"f:metadata": {}}}]}, "status": {"n": -1.5e3, "t": true, "z": null}}),
        ];
        for object in objects {
            let raw = serde_json::to_vec(&object).expect("encodes");
            assert_eq!(
                with_resource_version(&raw, 42).map(String::from_utf8),
                Some(Ok(
                    String::from_utf8(encoded_with_rv(&object, 42)).expect("utf8")
                )),
                "{object}"
            );
        }
    }

    #[test]
    fn whitespace_and_escapes_are_walked_over() {
        let raw = br#" { "kind" : "P\"od" , "metadata" : { "name" : "a\\" } } "#;
        let out = with_resource_version(raw, 7).expect("spliced");
        let value: Value = serde_json::from_slice(&out).expect("still JSON");
        assert_eq!(value["metadata"]["resourceVersion"], "7");
        assert_eq!(value["metadata"]["name"], "a\\");
        assert_eq!(value["kind"], "P\"od");
    }

    #[test]
    fn what_insertion_cannot_do_is_left_to_the_caller() {
        for raw in [
            &br#"{"metadata":{"resourceVersion":"3"}}"#[..],
            br#"{"kind":"Pod"}"#,
            br#"{"metadata":null}"#,
            br#"[1,2]"#,
            br#"{"metadata":{"name":"#,
            b"",
        ] {
            assert_eq!(
                with_resource_version(raw, 1),
                None,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn any_member_goes_where_encoding_the_object_with_it_puts_it() {
        let managed = json!([{"manager": "m", "fieldsV1": {"f:data": {"f:\"a\"": {}}}}]);
        let value = serde_json::to_vec(&managed).expect("encodes");
        for object in [
            json!({"kind": "ConfigMap", "metadata": {"labels": {"a": "b"}, "name": "x", "uid": "u"}}),
            json!({"metadata": {}}),
            json!({"metadata": {"annotations": {"managedFields": "no"}}, "spec": {}}),
        ] {
            let raw = serde_json::to_vec(&object).expect("encodes");
            let mut expected = object.clone();
            expected["metadata"]["managedFields"] = managed.clone();
            assert_eq!(
                with_metadata_member(&raw, b"managedFields", &value),
                Some(serde_json::to_vec(&expected).expect("encodes")),
                "{object}"
            );
        }
        let taken = br#"{"metadata":{"managedFields":[]}}"#;
        assert_eq!(with_metadata_member(taken, b"managedFields", b"[]"), None);
    }

    #[test]
    fn a_create_gets_its_managed_fields_and_then_its_rv_without_a_second_scan() {
        let managed = json!([{"manager": "m", "fieldsV1": {"f:metadata": {"f:name": {}}}}]);
        let value = serde_json::to_vec(&managed).expect("encodes");
        for object in [
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": {"a": "b"}, "name": "x", "namespace": "d", "uid": "u"}, "spec": {}}),
            json!({"metadata": {}}),
            json!({"metadata": {"annotations": {"a": "b"}}}),
            json!({"metadata": {"name": "x"}}),
            json!({"metadata": {"selfLink": "s"}, "z": 1}),
            json!({"metadata": {"name": "x", "ownerReferences": [{"uid": "o"}], "uid": "u"}}),
        ] {
            let raw = serde_json::to_vec(&object).expect("encodes");
            let with = with_managed_fields(&raw, &value).expect("spliced");
            let mut expected = object.clone();
            expected["metadata"]["managedFields"] = managed.clone();
            assert_eq!(
                String::from_utf8_lossy(&with.bytes),
                expected.to_string(),
                "{object}"
            );
            expected["metadata"]["resourceVersion"] = json!("42");
            assert_eq!(
                String::from_utf8_lossy(&with.with_resource_version(42)),
                expected.to_string(),
                "{object}"
            );
        }
        for taken in [
            &br#"{"metadata":{"managedFields":[]}}"#[..],
            br#"{"metadata":{"name":"x","resourceVersion":"1"}}"#,
            br#"{"kind":"Pod"}"#,
        ] {
            assert!(with_managed_fields(taken, b"[]").is_none());
        }
    }
}
