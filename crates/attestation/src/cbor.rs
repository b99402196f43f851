//! A small strict CBOR (RFC 8949) reader and writer for exactly the items a Nitro document
//! uses: unsigned and negative integers, definite byte and text strings, arrays and maps
//! (definite or indefinite length), tags and `null`.
//!
//! Everything else (floats, other simple values, indefinite-length strings) is refused. No
//! allocation depends on a length read from the input: strings are slices of the input, and
//! collection lengths are only used as loop bounds after the caller checked them.

use crate::AttestationError;

/// The initial byte and argument of one CBOR data item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Head {
    /// Major type 0.
    Uint(u64),
    /// Major type 1: the value is `-1 - n`.
    Nint(u64),
    /// Major type 2, definite length.
    Bytes(u64),
    /// Major type 3, definite length.
    Text(u64),
    /// Major type 4; `None` for indefinite length.
    Array(Option<u64>),
    /// Major type 5; `None` for indefinite length.
    Map(Option<u64>),
    /// Major type 6.
    Tag(u64),
    /// `null` (0xf6).
    Null,
    /// The "break" stop code (0xff) of an indefinite-length item.
    Break,
}

/// A cursor over one CBOR buffer.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    context: &'static str,
}

impl<'a> Reader<'a> {
    /// Read `buf`; `context` names it in errors (`"document"`, `"payload"`).
    pub(crate) fn new(buf: &'a [u8], context: &'static str) -> Self {
        Reader {
            buf,
            pos: 0,
            context,
        }
    }

    /// An error at the current position.
    pub(crate) fn err(&self, reason: &'static str) -> AttestationError {
        AttestationError::Cbor {
            context: self.context,
            offset: self.pos,
            reason,
        }
    }

    fn byte(&mut self) -> Result<u8, AttestationError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| self.err("unexpected end of input"))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], AttestationError> {
        let remaining = self.buf.len() - self.pos;
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= remaining)
            .ok_or_else(|| self.err("length runs past the end of input"))?;
        let out = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    /// The next item's head (consumed).
    pub(crate) fn head(&mut self) -> Result<Head, AttestationError> {
        let initial = self.byte()?;
        let major = initial >> 5;
        let info = initial & 0x1f;
        if initial == 0xf6 {
            return Ok(Head::Null);
        }
        if initial == 0xff {
            return Ok(Head::Break);
        }
        if info == 31 {
            return match major {
                4 => Ok(Head::Array(None)),
                5 => Ok(Head::Map(None)),
                2 | 3 => Err(self.err("indefinite-length strings are not supported")),
                _ => Err(self.err("reserved additional information")),
            };
        }
        let arg = match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.byte()?),
            25 => u64::from(u16::from_be_bytes(self.array()?)),
            26 => u64::from(u32::from_be_bytes(self.array()?)),
            27 => u64::from_be_bytes(self.array()?),
            _ => return Err(self.err("reserved additional information")),
        };
        match major {
            0 => Ok(Head::Uint(arg)),
            1 => Ok(Head::Nint(arg)),
            2 => Ok(Head::Bytes(arg)),
            3 => Ok(Head::Text(arg)),
            4 => Ok(Head::Array(Some(arg))),
            5 => Ok(Head::Map(Some(arg))),
            6 => Ok(Head::Tag(arg)),
            _ => Err(self.err("floats and simple values other than null are not supported")),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], AttestationError> {
        let bytes = self.take(N as u64)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// The next item's first byte, without consuming it.
    pub(crate) fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// The payload of a byte string whose head was already read.
    pub(crate) fn bytes_of(&mut self, len: u64) -> Result<&'a [u8], AttestationError> {
        self.take(len)
    }

    /// The payload of a text string whose head was already read.
    pub(crate) fn text_of(&mut self, len: u64) -> Result<&'a str, AttestationError> {
        let start = self.pos;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map_err(|_| AttestationError::Cbor {
            context: self.context,
            offset: start,
            reason: "text string is not UTF-8",
        })
    }

    /// If the next item is the break code, consume it and return true.
    pub(crate) fn at_break(&mut self) -> bool {
        if self.peek() == Some(0xff) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Error unless the whole buffer was consumed.
    pub(crate) fn finish(&self) -> Result<(), AttestationError> {
        match self.buf.len() - self.pos {
            0 => Ok(()),
            len => Err(AttestationError::TrailingBytes {
                context: self.context,
                len,
            }),
        }
    }
}

/// Iterates the entries of an array or map whose head was read: yields until the definite
/// count is reached or, for indefinite length, until the break code (consumed).
pub(crate) struct Items {
    remaining: Option<u64>,
}

impl Items {
    /// For a collection of `len` items (`None`: indefinite).
    pub(crate) fn new(len: Option<u64>) -> Self {
        Items { remaining: len }
    }

    /// Whether another entry follows.
    pub(crate) fn next(&mut self, r: &mut Reader<'_>) -> bool {
        match &mut self.remaining {
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                true
            }
            None => !r.at_break(),
        }
    }
}

/// Minimal-length CBOR encoding into a `Vec` (the dev attester and the Sig_structure).
pub(crate) struct Writer {
    out: Vec<u8>,
}

impl Writer {
    /// An empty buffer with room for `capacity` bytes.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Writer {
            out: Vec::with_capacity(capacity),
        }
    }

    fn head(&mut self, major: u8, arg: u64) {
        let m = major << 5;
        match arg {
            0..=23 => self.out.push(m | arg as u8),
            24..=0xff => self.out.extend_from_slice(&[m | 24, arg as u8]),
            0x100..=0xffff => {
                self.out.push(m | 25);
                self.out.extend_from_slice(&(arg as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                self.out.push(m | 26);
                self.out.extend_from_slice(&(arg as u32).to_be_bytes());
            }
            _ => {
                self.out.push(m | 27);
                self.out.extend_from_slice(&arg.to_be_bytes());
            }
        }
    }

    /// An unsigned integer.
    pub(crate) fn uint(&mut self, v: u64) {
        self.head(0, v);
    }

    /// A byte string.
    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.head(2, v.len() as u64);
        self.out.extend_from_slice(v);
    }

    /// A text string.
    pub(crate) fn text(&mut self, v: &str) {
        self.head(3, v.len() as u64);
        self.out.extend_from_slice(v.as_bytes());
    }

    /// An array head of `len` items.
    pub(crate) fn array(&mut self, len: usize) {
        self.head(4, len as u64);
    }

    /// A map head of `len` pairs.
    pub(crate) fn map(&mut self, len: usize) {
        self.head(5, len as u64);
    }

    /// A byte string, or `null` for `None`.
    pub(crate) fn opt_bytes(&mut self, v: Option<&[u8]>) {
        match v {
            Some(v) => self.bytes(v),
            None => self.out.push(0xf6),
        }
    }

    /// The encoding.
    pub(crate) fn into_vec(self) -> Vec<u8> {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heads(bytes: &[u8]) -> Result<Vec<Head>, AttestationError> {
        let mut r = Reader::new(bytes, "test");
        let mut out = Vec::new();
        while r.peek().is_some() {
            let h = r.head()?;
            if let Head::Bytes(n) | Head::Text(n) = h {
                r.take(n)?;
            }
            out.push(h);
        }
        Ok(out)
    }

    #[test]
    fn reads_heads() {
        let cases: &[(&[u8], Head)] = &[
            (&[0x00], Head::Uint(0)),
            (&[0x17], Head::Uint(23)),
            (&[0x18, 0x18], Head::Uint(24)),
            (&[0x19, 0x01, 0x00], Head::Uint(256)),
            (
                &[0x1b, 0, 0, 1, 0x93, 0x2d, 0x12, 0x39, 0xca],
                Head::Uint(1_731_627_989_450),
            ),
            (&[0x38, 0x22], Head::Nint(34)),
            (&[0x40], Head::Bytes(0)),
            (&[0x84], Head::Array(Some(4))),
            (&[0x9f], Head::Array(None)),
            (&[0xbf], Head::Map(None)),
            (&[0xd2], Head::Tag(18)),
            (&[0xf6], Head::Null),
            (&[0xff], Head::Break),
        ];
        for (bytes, head) in cases {
            assert_eq!(
                heads(bytes).expect("valid head"),
                vec![*head],
                "{bytes:02x?}"
            );
        }
    }

    #[test]
    fn refuses_unsupported_and_truncated() {
        for bad in [
            &[0x5f][..],         // indefinite byte string
            &[0x7f],             // indefinite text string
            &[0xf4],             // false
            &[0xf9, 0, 0],       // half float
            &[0x1c],             // reserved
            &[0x19, 0x01],       // truncated argument
            &[0x43, 1, 2],       // bstr longer than input
            &[0x1f],             // indefinite uint
            &[0x62, 0xff, 0xfe], // text not UTF-8
        ] {
            let mut r = Reader::new(bad, "test");
            let res = r.head().and_then(|h| match h {
                Head::Bytes(n) => r.bytes_of(n).map(|_| ()),
                Head::Text(n) => r.text_of(n).map(|_| ()),
                _ => Ok(()),
            });
            assert!(res.is_err(), "{bad:02x?} accepted");
        }
    }

    #[test]
    fn writer_is_minimal_and_round_trips() {
        for v in [
            0u64,
            23,
            24,
            255,
            256,
            65_535,
            65_536,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut w = Writer::with_capacity(9);
            w.uint(v);
            let enc = w.into_vec();
            let expected_len = match v {
                0..=23 => 1,
                24..=0xff => 2,
                0x100..=0xffff => 3,
                0x1_0000..=0xffff_ffff => 5,
                _ => 9,
            };
            assert_eq!(enc.len(), expected_len);
            assert_eq!(heads(&enc).expect("round trip"), vec![Head::Uint(v)]);
        }
    }
}
