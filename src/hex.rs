//! Lowercase hexadecimal of digests and tags: how signature hashes, secret hashes and card
//! tags are written into the database and into card ids. One table lookup per byte, because it
//! runs on every acknowledged callback (a `format!` per byte cost 1.7 % of the service's CPU
//! under load, docs/throughput.md).

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// `bytes` as lowercase hex, two digits a byte.
pub fn lower_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_lowercase_digits_a_byte_with_leading_zeros() {
        assert_eq!(lower_hex(&[]), "");
        assert_eq!(lower_hex(&[0x00, 0x0a, 0xf0, 0xff, 0x7b]), "000af0ff7b");
    }

    #[test]
    fn agrees_with_format_for_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        let expected: String = all.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(lower_hex(&all), expected);
    }
}
