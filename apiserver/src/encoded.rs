//! Sets `metadata.resourceVersion` in an object's stored JSON without
//! decoding it. Stored objects carry no resourceVersion (the store's
//! revision is it); every answer and watch event needs one, and writing it
//! into the bytes costs a scan where a decode and re-encode cost a few
//! microseconds per object on the hottest paths (create answers, the watch
//! cache). The member goes where a sorted encoder puts it, so the result is
//! byte for byte what encoding the object with its resourceVersion gives.

/// The key every object's metadata gets.
const KEY: &[u8] = b"resourceVersion";

/// `json` (an object) with `"resourceVersion":"<rv>"` in its top-level
/// `metadata`. `None` when that cannot be done by insertion alone: not an
/// object, no `metadata` object, or one that already has a
/// resourceVersion; the caller then encodes the object itself.
pub fn with_resource_version(json: &[u8], rv: i64) -> Option<Vec<u8>> {
    let mut scan = Scan { bytes: json, at: 0 };
    scan.expect(b'{')?;
    loop {
        scan.skip_space();
        if scan.peek()? == b'}' {
            return None;
        }
        let key = scan.string()?;
        scan.expect(b':')?;
        scan.skip_space();
        if key == b"metadata" {
            let at = scan.metadata_insertion()?;
            return Some(splice(json, at, rv));
        }
        scan.value()?;
        scan.skip_space();
        match scan.next()? {
            b',' => {}
            _ => return None,
        }
    }
}

/// Where the member goes and what separates it from its neighbours.
struct Insertion {
    at: usize,
    /// A comma before the member: it goes last in a non-empty object.
    comma_before: bool,
    /// A comma after it: a key follows.
    comma_after: bool,
}

fn splice(json: &[u8], insertion: Insertion, rv: i64) -> Vec<u8> {
    let rv = rv.to_string();
    let mut out = Vec::with_capacity(json.len() + KEY.len() + rv.len() + 8);
    out.extend_from_slice(&json[..insertion.at]);
    if insertion.comma_before {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(KEY);
    out.extend_from_slice(b"\":\"");
    out.extend_from_slice(rv.as_bytes());
    out.push(b'"');
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
            match self.next()? {
                b'"' => return Some(&self.bytes[start..self.at - 1]),
                b'\\' => {
                    self.next()?;
                }
                _ => {}
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

    /// With the cursor on the metadata value: where resourceVersion goes,
    /// before the first key that sorts after it, else at the end.
    fn metadata_insertion(&mut self) -> Option<Insertion> {
        self.expect(b'{')?;
        let mut members = 0usize;
        loop {
            self.skip_space();
            if self.peek()? == b'}' {
                return Some(Insertion {
                    at: self.at,
                    comma_before: members > 0,
                    comma_after: false,
                });
            }
            let key_start = self.at;
            let key = self.string()?;
            if key == KEY {
                return None;
            }
            if key > KEY {
                return Some(Insertion {
                    at: key_start,
                    comma_before: false,
                    comma_after: true,
                });
            }
            self.expect(b':')?;
            self.skip_space();
            self.value()?;
            members += 1;
            self.skip_space();
            match self.next()? {
                b',' => {}
                b'}' => {
                    return Some(Insertion {
                        at: self.at - 1,
                        comma_before: true,
                        comma_after: false,
                    });
                }
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_resource_version;
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
}
