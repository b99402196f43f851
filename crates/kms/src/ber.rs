//! A small strict BER reader: exactly what a KMS `CiphertextForRecipient` needs.
//!
//! It reads the input into a tree of [`Node`]s, with definite and indefinite lengths,
//! low- and high-number tags, and constructed strings. It refuses: lengths past the end of
//! their parent, indefinite lengths on primitive elements, the reserved length byte `0xff`,
//! long-form lengths of more than 4 bytes, end-of-contents markers that are not `00 00` or
//! that appear outside an indefinite element, trailing bytes after the outer element, nesting
//! deeper than [`MAX_DEPTH`], more than [`MAX_NODES`] elements and inputs larger than
//! [`MAX_INPUT`]. It does not interpret values beyond what CMS needs (small INTEGERs, OBJECT
//! IDENTIFIERs compared as bytes, OCTET STRINGs whose constructed form is concatenated).

use std::borrow::Cow;

/// Largest input accepted (bytes). A KMS reply for a data key is well under 2 KiB; KMS
/// plaintexts are at most 4096 bytes.
pub(crate) const MAX_INPUT: usize = 64 * 1024;
/// Deepest nesting accepted. CMS EnvelopedData as KMS sends it is 7 levels deep.
pub(crate) const MAX_DEPTH: usize = 16;
/// Most elements accepted in one input.
pub(crate) const MAX_NODES: usize = 512;

/// Tag class (X.690 8.1.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Universal,
    Application,
    Context,
    Private,
}

/// An identifier: class and number (the constructed bit is kept on the [`Node`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tag {
    pub(crate) class: Class,
    pub(crate) number: u32,
}

impl Tag {
    pub(crate) const INTEGER: Tag = Tag::universal(2);
    pub(crate) const OCTET_STRING: Tag = Tag::universal(4);
    pub(crate) const NULL: Tag = Tag::universal(5);
    pub(crate) const OID: Tag = Tag::universal(6);
    pub(crate) const SEQUENCE: Tag = Tag::universal(16);
    pub(crate) const SET: Tag = Tag::universal(17);

    pub(crate) const fn universal(number: u32) -> Tag {
        Tag {
            class: Class::Universal,
            number,
        }
    }

    pub(crate) const fn context(number: u32) -> Tag {
        Tag {
            class: Class::Context,
            number,
        }
    }
}

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.class, self.number) {
            (Class::Universal, 2) => f.write_str("INTEGER"),
            (Class::Universal, 4) => f.write_str("OCTET STRING"),
            (Class::Universal, 5) => f.write_str("NULL"),
            (Class::Universal, 6) => f.write_str("OBJECT IDENTIFIER"),
            (Class::Universal, 16) => f.write_str("SEQUENCE"),
            (Class::Universal, 17) => f.write_str("SET"),
            (Class::Universal, n) => write!(f, "UNIVERSAL {n}"),
            (Class::Application, n) => write!(f, "[APPLICATION {n}]"),
            (Class::Context, n) => write!(f, "[{n}]"),
            (Class::Private, n) => write!(f, "[PRIVATE {n}]"),
        }
    }
}

/// Why bytes are not acceptable BER. Offsets count from the start of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BerError {
    /// The input is empty.
    #[error("BER input is empty")]
    Empty,
    /// The input is larger than this reader accepts.
    #[error("BER input of {len} bytes is larger than the {max}-byte limit")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The input ends inside an element.
    #[error("BER truncated at offset {offset}: {what}")]
    Truncated {
        /// Where the missing bytes were expected.
        offset: usize,
        /// What was being read.
        what: &'static str,
    },
    /// A malformed identifier or length.
    #[error("BER malformed at offset {offset}: {what}")]
    Malformed {
        /// Where.
        offset: usize,
        /// What is wrong.
        what: &'static str,
    },
    /// Nested deeper than the limit.
    #[error("BER nested deeper than {max} levels at offset {offset}")]
    TooDeep {
        /// Where.
        offset: usize,
        /// The limit.
        max: usize,
    },
    /// More elements than the limit.
    #[error("BER input has more than {max} elements")]
    TooManyElements {
        /// The limit.
        max: usize,
    },
    /// Bytes left over after the outer element.
    #[error("{extra} trailing bytes after the BER element")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
}

/// One element of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node<'a> {
    pub(crate) tag: Tag,
    /// Offset of the identifier byte in the input, for error messages.
    pub(crate) offset: usize,
    pub(crate) value: Value<'a>,
}

/// The contents of an element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    /// A primitive element's content octets.
    Primitive(&'a [u8]),
    /// A constructed element's children, in order.
    Constructed(Vec<Node<'a>>),
}

impl<'a> Node<'a> {
    /// The children of a constructed element, `None` for a primitive one.
    pub(crate) fn children(&self) -> Option<&[Node<'a>]> {
        match &self.value {
            Value::Constructed(children) => Some(children),
            Value::Primitive(_) => None,
        }
    }

    /// The content octets of a primitive element, `None` for a constructed one.
    pub(crate) fn primitive(&self) -> Option<&'a [u8]> {
        match self.value {
            Value::Primitive(bytes) => Some(bytes),
            Value::Constructed(_) => None,
        }
    }

    /// The value of an OCTET STRING (or an IMPLICIT-tagged one): the content of the primitive
    /// form, or the concatenated segments of the constructed form (each segment must itself be
    /// an OCTET STRING, primitive or constructed, as X.690 8.7.3 says). `None` when a segment
    /// is not an OCTET STRING.
    pub(crate) fn octet_string(&self) -> Option<Cow<'a, [u8]>> {
        match &self.value {
            Value::Primitive(bytes) => Some(Cow::Borrowed(bytes)),
            Value::Constructed(children) => {
                let mut out = Vec::new();
                for child in children {
                    if child.tag != Tag::OCTET_STRING {
                        return None;
                    }
                    out.extend_from_slice(&child.octet_string()?);
                }
                Some(Cow::Owned(out))
            }
        }
    }
}

/// Parses `input` as exactly one BER element.
pub(crate) fn parse(input: &[u8]) -> Result<Node<'_>, BerError> {
    if input.is_empty() {
        return Err(BerError::Empty);
    }
    if input.len() > MAX_INPUT {
        return Err(BerError::TooLarge {
            len: input.len(),
            max: MAX_INPUT,
        });
    }
    let mut reader = Reader {
        input,
        pos: 0,
        nodes: 0,
    };
    let node = reader.element(0, input.len())?.ok_or(BerError::Malformed {
        offset: 0,
        what: "end-of-contents marker outside an indefinite-length element",
    })?;
    if reader.pos != input.len() {
        return Err(BerError::TrailingBytes {
            extra: input.len() - reader.pos,
        });
    }
    Ok(node)
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
    nodes: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self, end: usize, what: &'static str) -> Result<u8, BerError> {
        if self.pos >= end {
            return Err(BerError::Truncated {
                offset: self.pos,
                what,
            });
        }
        let b = self.input[self.pos];
        self.pos += 1;
        Ok(b)
    }

    /// Reads one element that must end at or before `end`. `Ok(None)` for an end-of-contents
    /// marker (`00 00`), which only the caller can judge.
    fn element(&mut self, depth: usize, end: usize) -> Result<Option<Node<'a>>, BerError> {
        let offset = self.pos;
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(BerError::TooManyElements { max: MAX_NODES });
        }
        let first = self.byte(end, "identifier")?;
        let class = match first >> 6 {
            0 => Class::Universal,
            1 => Class::Application,
            2 => Class::Context,
            _ => Class::Private,
        };
        let constructed = first & 0x20 != 0;
        let mut number = u32::from(first & 0x1f);
        if number == 0x1f {
            number = self.high_tag_number(end)?;
        }
        let tag = Tag { class, number };
        let len_byte = self.byte(end, "length")?;
        if first == 0 {
            // End-of-contents: identifier 00 and length 00.
            if len_byte != 0 {
                return Err(BerError::Malformed {
                    offset,
                    what: "end-of-contents marker with a non-zero length",
                });
            }
            return Ok(None);
        }
        if depth > MAX_DEPTH {
            return Err(BerError::TooDeep {
                offset,
                max: MAX_DEPTH,
            });
        }
        if class == Class::Universal && number == 0 {
            return Err(BerError::Malformed {
                offset,
                what: "universal tag 0 used for something other than end-of-contents",
            });
        }
        let value = if len_byte == 0x80 {
            if !constructed {
                return Err(BerError::Malformed {
                    offset,
                    what: "indefinite length on a primitive element",
                });
            }
            let mut children = Vec::new();
            while let Some(child) = self.element(depth + 1, end)? {
                children.push(child);
            }
            Value::Constructed(children)
        } else {
            let len = self.definite_length(len_byte, offset, end)?;
            let content_end = self.pos.saturating_add(len);
            if content_end > end {
                return Err(BerError::Truncated {
                    offset: self.pos,
                    what: "content shorter than its length",
                });
            }
            if constructed {
                let mut children = Vec::new();
                while self.pos < content_end {
                    let child_offset = self.pos;
                    match self.element(depth + 1, content_end)? {
                        Some(child) => children.push(child),
                        None => {
                            return Err(BerError::Malformed {
                                offset: child_offset,
                                what: "end-of-contents marker inside a definite-length element",
                            });
                        }
                    }
                }
                Value::Constructed(children)
            } else {
                let bytes = &self.input[self.pos..content_end];
                self.pos = content_end;
                Value::Primitive(bytes)
            }
        };
        Ok(Some(Node { tag, offset, value }))
    }

    fn high_tag_number(&mut self, end: usize) -> Result<u32, BerError> {
        let start = self.pos;
        let mut number: u32 = 0;
        for i in 0..4 {
            let b = self.byte(end, "high tag number")?;
            if i == 0 && b == 0x80 {
                return Err(BerError::Malformed {
                    offset: start,
                    what: "high tag number with a leading zero group",
                });
            }
            number = (number << 7) | u32::from(b & 0x7f);
            if b & 0x80 == 0 {
                if number < 0x1f {
                    return Err(BerError::Malformed {
                        offset: start,
                        what: "high tag number form used for a number below 31",
                    });
                }
                return Ok(number);
            }
        }
        Err(BerError::Malformed {
            offset: start,
            what: "tag number longer than 4 bytes",
        })
    }

    fn definite_length(
        &mut self,
        len_byte: u8,
        offset: usize,
        end: usize,
    ) -> Result<usize, BerError> {
        if len_byte < 0x80 {
            return Ok(usize::from(len_byte));
        }
        if len_byte == 0xff {
            return Err(BerError::Malformed {
                offset,
                what: "reserved length byte 0xff",
            });
        }
        let count = usize::from(len_byte & 0x7f);
        if count > 4 {
            return Err(BerError::Malformed {
                offset,
                what: "length of more than 4 bytes",
            });
        }
        let mut len: usize = 0;
        for _ in 0..count {
            len = (len << 8) | usize::from(self.byte(end, "long-form length")?);
        }
        Ok(len)
    }
}

#[cfg(test)]
mod tests;
