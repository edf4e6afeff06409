//! The byte layout of the embedded store's log. Entries are written by hand
//! (fixed-width little-endian integers, then the opaque payload) so the
//! on-disk format does not depend on a serialization crate's version.
//!
//! - log table (`revision -> entry`): `kind | create_revision | prev_revision |
//!   key length | key | value`, where `prev_revision` is the revision of the
//!   key's previous log entry in the same incarnation (0 for a create) and a
//!   delete's entry (a tombstone) carries no value.
//! - live-keys table (`key -> (create_revision, mod_revision)`): redb's own
//!   tuple encoding. A live key's value is its log entry at `mod_revision`,
//!   which compaction never removes (it is no entry's predecessor), so every
//!   value is stored once.

use bytes::Bytes;

use crate::storage::{KeyValue, StorageError};

const PUT: u8 = 0;
const DELETE: u8 = 1;

/// A live key's revisions, as the live-keys table holds them.
pub(super) type LiveRow = (i64, i64);

/// A live key's value, from its row and the log entry at its `mod_revision`
/// (`entry`, `None` if the log has none).
pub(super) fn live_value(
    key: &str,
    (create_revision, mod_revision): LiveRow,
    entry: Option<&[u8]>,
) -> Result<KeyValue, StorageError> {
    let missing = || {
        StorageError::Internal(format!(
            "log entry {mod_revision} with the value of {key} is missing"
        ))
    };
    let view = LogView::parse(mod_revision, entry.ok_or_else(missing)?)?;
    match view.value {
        Some(value) if view.key == key => Ok(KeyValue {
            key: key.to_owned(),
            value: Bytes::copy_from_slice(value),
            create_revision,
            mod_revision,
        }),
        _ => Err(missing()),
    }
}

/// The revisions at the head of a row of the legacy current-values table
/// (`create_revision | mod_revision | value`), which also held the value.
pub(super) fn legacy_row(key: &str, row: &[u8]) -> Result<LiveRow, StorageError> {
    let corrupt = || StorageError::Internal(format!("row of key {key} is corrupt"));
    let (create_revision, rest) = split_i64(row).ok_or_else(corrupt)?;
    let (mod_revision, _) = split_i64(rest).ok_or_else(corrupt)?;
    Ok((create_revision, mod_revision))
}

/// One entry of the revision log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LogEntry {
    pub key: String,
    /// `None` for a delete (tombstone).
    pub value: Option<Bytes>,
    pub create_revision: i64,
    pub prev_revision: i64,
}

impl LogEntry {
    pub fn encode(&self) -> Vec<u8> {
        let value: &[u8] = self.value.as_deref().unwrap_or_default();
        let mut out = Vec::with_capacity(21 + self.key.len() + value.len());
        out.push(if self.value.is_some() { PUT } else { DELETE });
        out.extend_from_slice(&self.create_revision.to_le_bytes());
        out.extend_from_slice(&self.prev_revision.to_le_bytes());
        // Keys are API paths, far below 4 GiB; the conversion cannot fail for them.
        let key_len = u32::try_from(self.key.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&key_len.to_le_bytes());
        out.extend_from_slice(self.key.as_bytes());
        out.extend_from_slice(value);
        out
    }

    pub fn decode(revision: i64, bytes: &[u8]) -> Result<LogEntry, StorageError> {
        Ok(LogView::parse(revision, bytes)?.to_entry())
    }

    /// The key's value as written by this entry, if it is a put.
    pub fn key_value(&self, revision: i64) -> Option<KeyValue> {
        self.value.as_ref().map(|value| KeyValue {
            key: self.key.clone(),
            value: value.clone(),
            create_revision: self.create_revision,
            mod_revision: revision,
        })
    }
}

/// A log entry read in place, so scans can skip entries by key without
/// copying their values.
pub(super) struct LogView<'a> {
    pub key: &'a str,
    pub value: Option<&'a [u8]>,
    pub create_revision: i64,
    pub prev_revision: i64,
}

impl<'a> LogView<'a> {
    pub fn parse(revision: i64, bytes: &'a [u8]) -> Result<LogView<'a>, StorageError> {
        let corrupt = || StorageError::Internal(format!("log entry {revision} is corrupt"));
        let (&kind, rest) = bytes.split_first().ok_or_else(corrupt)?;
        let (create_revision, rest) = split_i64(rest).ok_or_else(corrupt)?;
        let (prev_revision, rest) = split_i64(rest).ok_or_else(corrupt)?;
        let (len_bytes, rest) = rest.split_at_checked(4).ok_or_else(corrupt)?;
        let key_len = u32::from_le_bytes(len_bytes.try_into().map_err(|_| corrupt())?) as usize;
        let (key, value) = rest.split_at_checked(key_len).ok_or_else(corrupt)?;
        let key = std::str::from_utf8(key).map_err(|_| corrupt())?;
        let value = match kind {
            PUT => Some(value),
            DELETE => None,
            _ => return Err(corrupt()),
        };
        Ok(LogView {
            key,
            value,
            create_revision,
            prev_revision,
        })
    }

    pub fn to_entry(&self) -> LogEntry {
        LogEntry {
            key: self.key.to_owned(),
            value: self.value.map(Bytes::copy_from_slice),
            create_revision: self.create_revision,
            prev_revision: self.prev_revision,
        }
    }
}

fn split_i64(bytes: &[u8]) -> Option<(i64, &[u8])> {
    let (head, rest) = bytes.split_at_checked(8)?;
    Some((i64::from_le_bytes(head.try_into().ok()?), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_entries_round_trip_puts_and_tombstones() {
        let cases = [
            LogEntry {
                key: "/registry/pods/default/a".into(),
                value: Some(Bytes::from_static(b"{\"x\":1}")),
                create_revision: 3,
                prev_revision: 0,
            },
            LogEntry {
                key: "/registry/pods/default/a".into(),
                value: Some(Bytes::new()),
                create_revision: 3,
                prev_revision: 3,
            },
            LogEntry {
                key: "/k".into(),
                value: None,
                create_revision: 3,
                prev_revision: 7,
            },
        ];
        for entry in cases {
            let decoded = LogEntry::decode(9, &entry.encode()).expect("decodes");
            assert_eq!(decoded, entry);
        }
    }

    #[test]
    fn live_values_come_from_their_own_key_s_put_and_truncated_bytes_are_refused() {
        let put = LogEntry {
            key: "/k".into(),
            value: Some(Bytes::from_static(b"value")),
            create_revision: 4,
            prev_revision: 4,
        }
        .encode();
        let kv = live_value("/k", (4, 9), Some(&put)).expect("decodes");
        assert_eq!(
            (kv.create_revision, kv.mod_revision, &kv.value[..]),
            (4, 9, &b"value"[..])
        );
        assert!(live_value("/other", (4, 9), Some(&put)).is_err());
        assert!(live_value("/k", (4, 9), None).is_err());
        let tombstone = LogEntry {
            key: "/k".into(),
            value: None,
            create_revision: 4,
            prev_revision: 9,
        };
        assert!(live_value("/k", (4, 9), Some(&tombstone.encode())).is_err());
        assert!(live_value("/k", (4, 9), Some(&put[..10])).is_err());

        let mut legacy = 4i64.to_le_bytes().to_vec();
        legacy.extend_from_slice(&9i64.to_le_bytes());
        legacy.extend_from_slice(b"value");
        assert_eq!(legacy_row("/k", &legacy).expect("decodes"), (4, 9));
        assert!(legacy_row("/k", &legacy[..10]).is_err());
        assert!(LogEntry::decode(1, &[0, 1, 2]).is_err());
        assert!(LogEntry::decode(1, &[]).is_err());
    }
}
