use super::*;

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).expect("test hex")
}

/// Parses `input` and compares the outcome with `expected` (`Ok` holds a compact rendering).
fn check(input: &str, expected: Result<&str, BerError>) {
    let bytes = hex(input);
    let got = parse(&bytes).map(|n| render(&n));
    assert_eq!(
        got.as_deref().map_err(Clone::clone),
        expected,
        "input {input}"
    );
}

/// `tag(children)` or `tag:hex` for primitives.
fn render(node: &Node<'_>) -> String {
    match &node.value {
        Value::Primitive(b) => format!("{}:{}", node.tag, hex::encode(b)),
        Value::Constructed(c) => format!(
            "{}({})",
            node.tag,
            c.iter().map(render).collect::<Vec<_>>().join(",")
        ),
    }
}

#[test]
fn definite_and_indefinite() {
    check("30 03 02 01 05", Ok("SEQUENCE(INTEGER:05)"));
    check("30 80 02 01 05 00 00", Ok("SEQUENCE(INTEGER:05)"));
    check(
        "30 80 30 80 04 01 aa 00 00 31 04 05 00 05 00 00 00",
        Ok("SEQUENCE(SEQUENCE(OCTET STRING:aa),SET(NULL:,NULL:))"),
    );
    check("a0 80 04 02 01 02 00 00", Ok("[0](OCTET STRING:0102)"));
    check("30 81 03 02 01 05", Ok("SEQUENCE(INTEGER:05)"));
    check("30 00", Ok("SEQUENCE()"));
    check("bf 1f 00", Ok("[31]()"));
}

#[test]
fn truncated() {
    check(
        "30 05 02 01 05",
        Err(BerError::Truncated {
            offset: 2,
            what: "content shorter than its length",
        }),
    );
    check(
        "30 80 02 01 05",
        Err(BerError::Truncated {
            offset: 5,
            what: "identifier",
        }),
    );
    check(
        "30 80 02 01 05 00",
        Err(BerError::Truncated {
            offset: 6,
            what: "length",
        }),
    );
    check(
        "30 82 01",
        Err(BerError::Truncated {
            offset: 3,
            what: "long-form length",
        }),
    );
    check(
        "30",
        Err(BerError::Truncated {
            offset: 1,
            what: "length",
        }),
    );
    // A child claiming more than its parent holds.
    check(
        "30 03 04 05 aa bb cc dd ee",
        Err(BerError::Truncated {
            offset: 4,
            what: "content shorter than its length",
        }),
    );
}

#[test]
fn malformed() {
    check(
        "04 80 aa 00 00",
        Err(BerError::Malformed {
            offset: 0,
            what: "indefinite length on a primitive element",
        }),
    );
    check(
        "30 ff",
        Err(BerError::Malformed {
            offset: 0,
            what: "reserved length byte 0xff",
        }),
    );
    check(
        "30 85 00 00 00 00 01 00",
        Err(BerError::Malformed {
            offset: 0,
            what: "length of more than 4 bytes",
        }),
    );
    // The stray byte inside the SEQUENCE starts an element whose length is missing.
    check(
        "30 04 02 01 05 00 00",
        Err(BerError::Truncated {
            offset: 6,
            what: "length",
        }),
    );
    check(
        "30 02 00 00",
        Err(BerError::Malformed {
            offset: 2,
            what: "end-of-contents marker inside a definite-length element",
        }),
    );
    check(
        "00 00",
        Err(BerError::Malformed {
            offset: 0,
            what: "end-of-contents marker outside an indefinite-length element",
        }),
    );
    check(
        "30 80 00 01 00 00",
        Err(BerError::Malformed {
            offset: 2,
            what: "end-of-contents marker with a non-zero length",
        }),
    );
    check(
        "1f 05 00",
        Err(BerError::Malformed {
            offset: 1,
            what: "high tag number form used for a number below 31",
        }),
    );
    check(
        "30 03 02 01 05 ff",
        Err(BerError::TrailingBytes { extra: 1 }),
    );
    check("", Err(BerError::Empty));
}

#[test]
fn over_deep() {
    let depth = MAX_DEPTH + 2;
    let mut bytes = Vec::new();
    for _ in 0..depth {
        bytes.extend_from_slice(&[0x30, 0x80]);
    }
    for _ in 0..depth {
        bytes.extend_from_slice(&[0, 0]);
    }
    assert!(matches!(
        parse(&bytes),
        Err(BerError::TooDeep { max: MAX_DEPTH, .. })
    ));

    // Exactly at the limit is fine.
    let mut ok = Vec::new();
    for _ in 0..=MAX_DEPTH {
        ok.extend_from_slice(&[0x30, 0x80]);
    }
    for _ in 0..=MAX_DEPTH {
        ok.extend_from_slice(&[0, 0]);
    }
    parse(&ok).expect("nesting at the limit parses");
}

#[test]
fn too_many_elements_and_too_large() {
    let mut bytes = vec![0x30, 0x80];
    for _ in 0..MAX_NODES {
        bytes.extend_from_slice(&[0x05, 0x00]);
    }
    bytes.extend_from_slice(&[0, 0]);
    assert_eq!(
        parse(&bytes),
        Err(BerError::TooManyElements { max: MAX_NODES })
    );
    let big = vec![0u8; MAX_INPUT + 1];
    assert_eq!(
        parse(&big),
        Err(BerError::TooLarge {
            len: MAX_INPUT + 1,
            max: MAX_INPUT
        })
    );
}

#[test]
fn constructed_octet_strings_concatenate() {
    // [0] IMPLICIT OCTET STRING, constructed, indefinite, with a nested constructed segment.
    let bytes = hex("a0 80 04 02 01 02 24 80 04 01 03 00 00 04 00 00 00");
    let node = parse(&bytes).expect("parses");
    assert_eq!(node.octet_string().as_deref(), Some(&[1u8, 2, 3][..]));
    // A segment that is not an OCTET STRING is refused.
    let bytes = hex("24 80 04 01 01 02 01 02 00 00");
    let node = parse(&bytes).expect("parses");
    assert_eq!(node.octet_string(), None);
}
