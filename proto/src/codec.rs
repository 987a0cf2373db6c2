//! Jute primitives: big-endian ints and longs, one-byte bools, length-prefixed buffers and
//! strings (-1 means null), count-prefixed vectors (-1 means null).

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record truncated at byte {offset}: needed {needed} more bytes")]
    Truncated { offset: usize, needed: usize },
    #[error("negative length {length} at byte {offset}")]
    NegativeLength { offset: usize, length: i32 },
    #[error("string at byte {offset} is not UTF-8")]
    NotUtf8 { offset: usize },
    #[error("{trailing} trailing bytes after the record")]
    Trailing { trailing: usize },
    #[error("null string at byte {offset}")]
    Null { offset: usize },
    #[error("unknown {what} {value}")]
    Unknown { what: &'static str, value: i32 },
}

/// Reads jute values from a byte slice. Lengths are checked against the bytes actually left,
/// so a hostile length never leads to a large allocation.
pub struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, offset: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.offset
    }

    pub fn offset(&self) -> usize {
        self.offset
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            trailing => Err(DecodeError::Trailing { trailing }),
        }
    }

    fn take(&mut self, count: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < count {
            return Err(DecodeError::Truncated {
                offset: self.offset,
                needed: count - self.remaining(),
            });
        }
        let slice = &self.bytes[self.offset..self.offset + count];
        self.offset += count;
        Ok(slice)
    }

    pub fn int(&mut self) -> Result<i32, DecodeError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn long(&mut self) -> Result<i64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.take(1)?[0] != 0)
    }

    /// One raw byte (jute's own `bool` takes any non-zero byte as true).
    pub fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    /// A buffer; `None` is jute's null (length -1).
    pub fn buffer(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        let offset = self.offset;
        let length = self.int()?;
        if length == -1 {
            return Ok(None);
        }
        if length < 0 {
            return Err(DecodeError::NegativeLength { offset, length });
        }
        Ok(Some(self.take(length as usize)?))
    }

    /// A string; null decodes as `None`.
    pub fn ustring_opt(&mut self) -> Result<Option<String>, DecodeError> {
        let offset = self.offset;
        match self.buffer()? {
            None => Ok(None),
            Some(b) => std::str::from_utf8(b)
                .map(|s| Some(s.to_owned()))
                .map_err(|_| DecodeError::NotUtf8 { offset }),
        }
    }

    /// A string that must not be null: ZooKeeper's server fails such a request (a path it
    /// dereferences) with MarshallingError.
    pub fn ustring(&mut self) -> Result<String, DecodeError> {
        let offset = self.offset;
        self.ustring_opt()?.ok_or(DecodeError::Null { offset })
    }

    /// A vector count; null (-1) reads as zero items, as ZooKeeper's server treats it.
    pub fn vec_len(&mut self) -> Result<usize, DecodeError> {
        let offset = self.offset;
        let count = self.int()?;
        if count == -1 {
            return Ok(0);
        }
        if count < 0 {
            return Err(DecodeError::NegativeLength {
                offset,
                length: count,
            });
        }
        // Every item takes at least one byte, so a count above the bytes left is a lie.
        if count as usize > self.remaining() {
            return Err(DecodeError::Truncated {
                offset,
                needed: count as usize - self.remaining(),
            });
        }
        Ok(count as usize)
    }

    pub fn strings(&mut self) -> Result<Vec<String>, DecodeError> {
        let n = self.vec_len()?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.ustring_opt()?.unwrap_or_default());
        }
        Ok(out)
    }
}

/// Writes jute values into a growable buffer.
#[derive(Default)]
pub struct Writer {
    pub bytes: Vec<u8>,
}

/// Length prefix, reply header (16 bytes) and a Stat (68 bytes), rounded up.
const FRAME_START_CAPACITY: usize = 128;

impl Writer {
    pub fn new() -> Self {
        Writer { bytes: Vec::new() }
    }

    /// Starts a frame: reserves the 4-byte length prefix that [`Writer::finish_frame`] fills.
    /// Room for a reply header and a Stat from the start: growing from 4 bytes cost several
    /// reallocations per small frame, most of an encode's time (criterion, proto/benches).
    pub fn frame() -> Self {
        let mut bytes = Vec::with_capacity(FRAME_START_CAPACITY);
        bytes.extend_from_slice(&[0; 4]);
        Writer { bytes }
    }

    pub fn finish_frame(mut self) -> Vec<u8> {
        let length = (self.bytes.len() - 4) as u32;
        self.bytes[..4].copy_from_slice(&length.to_be_bytes());
        self.bytes
    }

    pub fn int(&mut self, v: i32) {
        self.bytes.extend_from_slice(&v.to_be_bytes());
    }

    pub fn long(&mut self, v: i64) {
        self.bytes.extend_from_slice(&v.to_be_bytes());
    }

    pub fn bool(&mut self, v: bool) {
        self.bytes.push(v as u8);
    }

    pub fn buffer(&mut self, v: Option<&[u8]>) {
        match v {
            None => self.int(-1),
            Some(b) => {
                self.int(b.len() as i32);
                self.bytes.extend_from_slice(b);
            }
        }
    }

    pub fn ustring(&mut self, v: &str) {
        self.buffer(Some(v.as_bytes()));
    }

    pub fn strings<S: AsRef<str>>(&mut self, v: &[S]) {
        self.int(v.len() as i32);
        for s in v {
            self.ustring(s.as_ref());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_vector_count_is_rejected_without_allocating() {
        let mut w = Writer::new();
        w.int(i32::MAX);
        let mut r = Reader::new(&w.bytes);
        assert!(matches!(r.vec_len(), Err(DecodeError::Truncated { .. })));
    }

    #[test]
    fn null_buffer_round_trips() {
        let mut w = Writer::new();
        w.buffer(None);
        w.buffer(Some(b"ab"));
        let mut r = Reader::new(&w.bytes);
        assert_eq!(r.buffer().unwrap(), None);
        assert_eq!(r.buffer().unwrap(), Some(&b"ab"[..]));
        r.finish().unwrap();
    }
}
