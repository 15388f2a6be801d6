//! The Internet checksum (RFC 1071) of IPv4 headers and TCP segments with their pseudo-header.

use std::net::IpAddr;

/// Ones'-complement sum of `bytes` as big-endian 16-bit words (an odd last byte padded with
/// zero), not yet folded. Adds 32-bit words into 64 bits: the same sum, since 2^16 is 1 modulo
/// 0xffff, and a quarter of the additions.
pub fn sum(bytes: &[u8]) -> u64 {
    let mut acc = 0u64;
    let mut words = bytes.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    acc + u64::from(u32::from_be_bytes(tail))
}

/// Folds a sum to 16 bits (end-around carry). A correct checksum folds to 0xffff.
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Whether a TCP segment's checksum is right for its addresses.
pub fn tcp_ok(src: IpAddr, dst: IpAddr, segment: &[u8]) -> bool {
    let len = segment.len() as u64;
    let pseudo = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => sum(&s.octets()) + sum(&d.octets()) + 6 + len,
        (IpAddr::V6(s), IpAddr::V6(d)) => sum(&s.octets()) + sum(&d.octets()) + 6 + len,
        _ => return false,
    };
    fold(pseudo + sum(segment)) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071's example: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
    #[test]
    fn rfc1071_example() {
        assert_eq!(fold(sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7])), 0xddf2);
        // Odd length: the last byte is the high half of a word.
        assert_eq!(fold(sum(&[0x01, 0x02, 0x03])), 0x0402);
    }

    /// A real IPv4 header (from a capture) checks out; one flipped bit does not.
    #[test]
    fn ipv4_header() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert_eq!(fold(sum(&h)), 0xffff);
        h[8] ^= 1;
        assert_ne!(fold(sum(&h)), 0xffff);
    }
}
