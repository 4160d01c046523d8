//! A Bech32/Bech32m encoder written from BIP-173 and BIP-350 for the tests, independent of
//! the `bech32` crate the parser uses: it makes the malformed recipients (other
//! human-readable parts, other lengths, bad padding, Bech32m) with valid checksums.

const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";

/// The checksum constants: BIP-173 Bech32 and BIP-350 Bech32m.
pub const BECH32: u32 = 1;
pub const BECH32M: u32 = 0x2bc8_30a3;

fn polymod(values: &[u8]) -> u32 {
    const GENERATOR: [u32; 5] = [
        0x3b6a_57b2,
        0x2650_8e6d,
        0x1ea1_19fa,
        0x3d42_33dd,
        0x2a14_62b3,
    ];
    let mut chk: u32 = 1;
    for value in values {
        let top = chk >> 25;
        chk = ((chk & 0x01ff_ffff) << 5) ^ u32::from(*value);
        for (i, generator) in GENERATOR.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= generator;
            }
        }
    }
    chk
}

/// Encodes 5-bit groups with the given human-readable part and checksum constant.
pub fn encode_groups(hrp: &str, groups: &[u8], constant: u32) -> String {
    let mut values: Vec<u8> = hrp.bytes().map(|c| c >> 5).collect();
    values.push(0);
    values.extend(hrp.bytes().map(|c| c & 31));
    values.extend_from_slice(groups);
    values.extend_from_slice(&[0; 6]);
    let residue = polymod(&values) ^ constant;
    let mut text = String::from(hrp);
    text.push('1');
    text.extend(groups.iter().map(|g| char::from(CHARSET[usize::from(*g)])));
    text.extend((0..6).map(|i| char::from(CHARSET[((residue >> (5 * (5 - i))) & 31) as usize])));
    text
}

/// Bytes as 5-bit groups, the last one padded with zero bits (BIP-173 convertbits).
pub fn to_groups(bytes: &[u8]) -> Vec<u8> {
    let mut groups = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for byte in bytes {
        acc = (acc << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            groups.push(((acc >> bits) & 31) as u8);
        }
    }
    if bits > 0 {
        groups.push(((acc << (5 - bits)) & 31) as u8);
    }
    groups
}

/// Bytes in Bech32 (BIP-173) with the given human-readable part.
pub fn encode(hrp: &str, bytes: &[u8]) -> String {
    encode_groups(hrp, &to_groups(bytes), BECH32)
}

fn groups_of(text: &str) -> Vec<u8> {
    text.bytes()
        .map(|c| CHARSET.iter().position(|&d| d == c).unwrap() as u8)
        .collect()
}

#[test]
fn the_encoder_gives_the_bip173_and_bip350_test_vectors() {
    assert_eq!(encode_groups("a", &[], BECH32), "a12uel5l");
    let ascending: Vec<u8> = (0..32).collect();
    assert_eq!(
        encode_groups("abcdef", &ascending, BECH32),
        "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw"
    );
    assert_eq!(
        encode_groups(
            "split",
            &groups_of("checkupstagehandshakeupstreamerranterredcaperred"),
            BECH32
        ),
        "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w"
    );
    assert_eq!(encode_groups("a", &[], BECH32M), "a1lqfn3a");
    let descending: Vec<u8> = (0..32).rev().collect();
    assert_eq!(
        encode_groups("abcdef", &descending, BECH32M),
        "abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx"
    );
}
