//! The protobuf wire format, read without a schema: keys, varints,
//! fixed-width values and length-delimited bytes.

use super::ProtobufError;

/// One field value as the wire carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireValue<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl WireValue<'_> {
    pub fn wire_type(&self) -> u8 {
        match self {
            WireValue::Varint(_) => 0,
            WireValue::Fixed64(_) => 1,
            WireValue::Bytes(_) => 2,
            WireValue::Fixed32(_) => 5,
        }
    }
}

/// Reads the fields of one message in order.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn varint(&mut self) -> Result<u64, ProtobufError> {
        let start = self.pos;
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(ProtobufError::Truncated { offset: start });
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ProtobufError::BadVarint { offset: start })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtobufError> {
        let start = self.pos;
        let end = start
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or(ProtobufError::Truncated { offset: start })?;
        self.pos = end;
        Ok(&self.buf[start..end])
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], ProtobufError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn fixed64(&mut self) -> Result<u64, ProtobufError> {
        Ok(u64::from_le_bytes(self.fixed()?))
    }

    /// The next field number and value, or `None` at the end.
    pub fn field(&mut self) -> Result<Option<(u32, WireValue<'a>)>, ProtobufError> {
        if self.is_empty() {
            return Ok(None);
        }
        let offset = self.pos;
        let key = self.varint()?;
        let number = u32::try_from(key >> 3)
            .ok()
            .filter(|n| *n != 0)
            .ok_or(ProtobufError::BadFieldNumber { offset })?;
        let value = match key & 7 {
            0 => WireValue::Varint(self.varint()?),
            1 => WireValue::Fixed64(u64::from_le_bytes(self.fixed()?)),
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| ProtobufError::Truncated { offset })?;
                WireValue::Bytes(self.take(len)?)
            }
            5 => WireValue::Fixed32(u32::from_le_bytes(self.fixed()?)),
            // Groups (3, 4) are proto2 relics no Kubernetes type uses.
            wire => {
                return Err(ProtobufError::WireType {
                    wire: wire as u8,
                    offset,
                });
            }
        };
        Ok(Some((number, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_varints_fixed_values_and_bytes() {
        // 1: varint 300, 2: "hi", 3: fixed64 7, 4: fixed32 9
        let buf = [
            0x08, 0xac, 0x02, 0x12, 2, b'h', b'i', 0x19, 7, 0, 0, 0, 0, 0, 0, 0, 0x25, 9, 0, 0, 0,
        ];
        let mut r = Reader::new(&buf);
        assert_eq!(r.field().expect("1"), Some((1, WireValue::Varint(300))));
        assert_eq!(r.field().expect("2"), Some((2, WireValue::Bytes(b"hi"))));
        assert_eq!(r.field().expect("3"), Some((3, WireValue::Fixed64(7))));
        assert_eq!(r.field().expect("4"), Some((4, WireValue::Fixed32(9))));
        assert_eq!(r.field().expect("end"), None);
    }

    #[test]
    fn truncated_and_malformed_input_is_an_error() {
        for bad in [
            &[0x12, 5, b'a'][..],
            &[0x08][..],
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ][..],
            &[0x0b][..],
            &[0x00, 0x01][..],
            &[0x19, 1, 2][..],
        ] {
            let mut r = Reader::new(bad);
            let result =
                std::iter::from_fn(|| r.field().transpose()).collect::<Result<Vec<_>, _>>();
            assert!(result.is_err(), "{bad:?}");
        }
    }
}
