use super::*;

fn padded(data: &[u8], pad: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    v.extend_from_slice(pad);
    v
}

#[test]
fn unpad_accepts_valid_padding() {
    assert_eq!(unpad(&padded(&[7; 15], &[1])), Ok(15));
    assert_eq!(unpad(&padded(&[7; 12], &[4; 4])), Ok(12));
    assert_eq!(unpad(&[16; 16]), Ok(0));
    assert_eq!(unpad(&padded(&[9; 32], &[16; 16])), Ok(32));
}

#[test]
fn unpad_refuses_every_bad_padding_with_one_error() {
    for bad in [
        padded(&[7; 15], &[0]),          // zero
        padded(&[7; 15], &[17]),         // > block
        padded(&[7; 12], &[4, 4, 3, 4]), // inconsistent
        padded(&[7; 12], &[5, 4, 4, 4]), // inconsistent before
        padded(&[7; 14], &[2, 3]),       // wrong count
        padded(&[0; 0], &[0xff; 16]),    // 255
        vec![1; 15],                     // not a whole block
        vec![],                          // empty
    ] {
        assert_eq!(unpad(&bad), Err(CmsError::Padding), "{bad:?}");
    }
}

#[test]
fn version_integers() {
    let ok = |bytes: &[u8]| {
        let mut enc = vec![0x02, bytes.len() as u8];
        enc.extend_from_slice(bytes);
        let node = ber::parse(&enc).expect("ber");
        small_int(&node)
    };
    assert_eq!(ok(&[2]), Ok(2));
    assert_eq!(ok(&[0]), Ok(0));
    assert_eq!(ok(&[0xff]), Ok(-1));
    assert_eq!(ok(&[1, 0]), Ok(-1));
}
