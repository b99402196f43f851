//! The egress header an enclave sends first on the parent's egress port, and the parent's
//! one-status reply.
//!
//! ```text
//! header = magic version host-len host port      ; at most 261 bytes
//! magic    = %x44.41.45.47                       ; "DAEG"
//! version  = %x01
//! host-len = OCTET                               ; 1..=253
//! host     = host-len OCTET                      ; an IP literal (IPv6 without brackets) or
//!                                                ; a DNS name, lowercase, no trailing dot
//! port     = 2OCTET                              ; big-endian, 1..=65535
//!
//! reply    = status reason-len reason
//! status   = %x00 (OK) / %x01 (DENIED) / %x02 (BAD-HEADER) / %x03 (CONNECT-FAILED)
//! reason-len = OCTET                             ; 0 for OK
//! reason   = reason-len OCTET                    ; UTF-8, for logs
//! ```
//!
//! After an OK reply both directions carry the target's bytes unchanged. Any other status is
//! followed by the parent closing the connection.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::allow::{Host, MAX_HOST_LEN, Target, TargetError};

/// The header's first four bytes.
pub const MAGIC: [u8; 4] = *b"DAEG";
/// The only header version.
pub const VERSION: u8 = 1;
/// The largest header: magic, version, length, 253-byte host, port.
pub const MAX_HEADER_LEN: usize = 4 + 1 + 1 + MAX_HOST_LEN + 2;

/// Why a header was refused.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    /// The connection ended (or failed) before the header was complete.
    #[error("egress header truncated: {0}")]
    Truncated(#[source] std::io::Error),
    /// Not our magic: some other protocol, or garbage.
    #[error("egress header has the wrong magic")]
    BadMagic,
    /// A version this side does not speak.
    #[error("egress header version {0} is not supported (expected {VERSION})")]
    BadVersion(u8),
    /// Host length 0 or above 253.
    #[error("egress header host length {0} is out of range (1..={MAX_HOST_LEN})")]
    BadHostLength(u8),
    /// The host bytes are not a canonical name or address.
    #[error("egress header host is invalid: {0}")]
    BadHost(#[source] TargetError),
    /// Port 0.
    #[error("egress header port 0 is invalid")]
    BadPort,
}

/// Encodes the header for `target`.
pub fn encode(target: &Target) -> Vec<u8> {
    let host = target.host_str();
    let mut out = Vec::with_capacity(8 + host.len());
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    // Target hosts are at most MAX_HOST_LEN (253) bytes by construction.
    out.push(u8::try_from(host.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(&target.port.to_be_bytes());
    out
}

/// Reads and validates one header. Reads at most [`MAX_HEADER_LEN`] bytes, and nothing past
/// the header.
pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<Target, HeaderError> {
    let mut fixed = [0u8; 6];
    r.read_exact(&mut fixed)
        .await
        .map_err(HeaderError::Truncated)?;
    if fixed[..4] != MAGIC {
        return Err(HeaderError::BadMagic);
    }
    if fixed[4] != VERSION {
        return Err(HeaderError::BadVersion(fixed[4]));
    }
    let len = fixed[5];
    if len == 0 || usize::from(len) > MAX_HOST_LEN {
        return Err(HeaderError::BadHostLength(len));
    }
    let mut rest = vec![0u8; usize::from(len) + 2];
    r.read_exact(&mut rest)
        .await
        .map_err(HeaderError::Truncated)?;
    let (host, port) = rest.split_at(usize::from(len));
    let port = u16::from_be_bytes([port[0], port[1]]);
    if port == 0 {
        return Err(HeaderError::BadPort);
    }
    let host = std::str::from_utf8(host)
        .map_err(|_| HeaderError::BadHost(TargetError::BadHost("(not UTF-8)".to_owned())))?;
    let parsed = Host::parse(host).map_err(HeaderError::BadHost)?;
    let target = Target { host: parsed, port };
    // Only the canonical spelling is accepted, so a name has one wire form to audit.
    if target.host_str() != host {
        return Err(HeaderError::BadHost(TargetError::BadHost(host.to_owned())));
    }
    Ok(target)
}

/// The parent's verdict on a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Connected; the target's bytes follow.
    Ok,
    /// The target is not on the parent's allow-list.
    Denied,
    /// The header was malformed.
    BadHeader,
    /// The parent could not reach the target.
    ConnectFailed,
}

impl Status {
    fn byte(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Denied => 1,
            Status::BadHeader => 2,
            Status::ConnectFailed => 3,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0 => Status::Ok,
            1 => Status::Denied,
            2 => Status::BadHeader,
            3 => Status::ConnectFailed,
            _ => return None,
        })
    }
}

/// A decoded reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The verdict.
    pub status: Status,
    /// The parent's explanation (empty for OK).
    pub reason: String,
}

/// Writes a reply; the reason is cut to 255 bytes on a character boundary.
pub async fn write_reply<W: AsyncWrite + Unpin>(
    w: &mut W,
    status: Status,
    reason: &str,
) -> std::io::Result<()> {
    let mut end = reason.len().min(255);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = &reason.as_bytes()[..end];
    let mut out = Vec::with_capacity(2 + reason.len());
    out.push(status.byte());
    out.push(u8::try_from(reason.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(reason);
    w.write_all(&out).await?;
    w.flush().await
}

/// Reads a reply. An unknown status byte is an `InvalidData` error.
pub async fn read_reply<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Reply> {
    let mut head = [0u8; 2];
    r.read_exact(&mut head).await?;
    let status = Status::from_byte(head[0]).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unknown egress reply status {}", head[0]),
        )
    })?;
    let mut reason = vec![0u8; usize::from(head[1])];
    r.read_exact(&mut reason).await?;
    Ok(Reply {
        status,
        reason: String::from_utf8_lossy(&reason).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn decode(bytes: &[u8]) -> Result<Target, HeaderError> {
        let mut r = bytes;
        read(&mut r).await
    }

    #[tokio::test]
    async fn round_trips_and_stops_at_the_header() {
        for t in [
            "kms.eu-west-1.amazonaws.com:443",
            "10.0.0.5:2379",
            "[::1]:8080",
        ] {
            let target: Target = t.parse().expect("target");
            let mut bytes = encode(&target);
            assert!(bytes.len() <= MAX_HEADER_LEN);
            bytes.extend_from_slice(b"payload");
            let mut r = &bytes[..];
            assert_eq!(read(&mut r).await.expect("valid header"), target);
            assert_eq!(r, b"payload", "nothing past the header is consumed");
        }
        let longest = Target {
            host: Host::Name(format!(
                "{}.{}.{}.{}",
                "a".repeat(63),
                "b".repeat(63),
                "c".repeat(63),
                "d".repeat(61)
            )),
            port: 1,
        };
        assert_eq!(encode(&longest).len(), MAX_HEADER_LEN);
        assert_eq!(decode(&encode(&longest)).await.expect("longest"), longest);
    }

    #[tokio::test]
    async fn malformed_headers_are_named() {
        let good = encode(&"a.example:443".parse().expect("target"));
        let mut bad_magic = good.clone();
        bad_magic[0] = b'X';
        assert!(matches!(
            decode(&bad_magic).await,
            Err(HeaderError::BadMagic)
        ));
        let mut bad_version = good.clone();
        bad_version[4] = 2;
        assert!(matches!(
            decode(&bad_version).await,
            Err(HeaderError::BadVersion(2))
        ));
        let mut zero_len = good.clone();
        zero_len[5] = 0;
        assert!(matches!(
            decode(&zero_len).await,
            Err(HeaderError::BadHostLength(0))
        ));
        let mut long = good.clone();
        long[5] = 254;
        assert!(matches!(
            decode(&long).await,
            Err(HeaderError::BadHostLength(254))
        ));
        let mut port0 = good.clone();
        let n = port0.len();
        port0[n - 2..].copy_from_slice(&[0, 0]);
        assert!(matches!(decode(&port0).await, Err(HeaderError::BadPort)));
        for cut in 0..good.len() {
            assert!(
                matches!(decode(&good[..cut]).await, Err(HeaderError::Truncated(_))),
                "cut at {cut}"
            );
        }
        let mut upper = good.clone();
        upper[6] = b'A';
        assert!(
            matches!(decode(&upper).await, Err(HeaderError::BadHost(_))),
            "non-canonical"
        );
        let mut wild = good.clone();
        wild[6] = b'*';
        assert!(matches!(decode(&wild).await, Err(HeaderError::BadHost(_))));
        let mut bytes = good;
        bytes[6] = 0xff;
        assert!(matches!(decode(&bytes).await, Err(HeaderError::BadHost(_))));
    }

    #[tokio::test]
    async fn replies_round_trip() {
        let mut buf = Vec::new();
        write_reply(&mut buf, Status::Denied, &"é".repeat(200))
            .await
            .expect("write");
        assert!(buf.len() <= 257);
        let reply = read_reply(&mut &buf[..]).await.expect("read");
        assert_eq!(reply.status, Status::Denied);
        assert_eq!(reply.reason, "é".repeat(127));
        assert!(read_reply(&mut &[9u8, 0][..]).await.is_err());
    }
}
