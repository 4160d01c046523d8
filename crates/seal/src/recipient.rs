//! The recipient: an age X25519 public key, parsed from its `age1…` Bech32 text.

use bech32::primitives::decode::UncheckedHrpstring;
use bech32::Bech32;

use crate::{is_all_zero, SealError};

/// The Bech32 human-readable part of an age X25519 recipient (C2SP age, "The X25519
/// recipient type").
const RECIPIENT_HRP: &str = "age";

/// The Bech32 human-readable part of an age X25519 identity, `AGE-SECRET-KEY-` (and of the
/// post-quantum `AGE-SECRET-KEY-PQ-`): text that must never be configured on the machine.
const IDENTITY_PREFIX: &[u8] = b"AGE-SECRET-KEY-";

/// The length of an X25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;

/// A scalar for the small-order test in [`Recipient::parse`]: any clamped scalar is a
/// multiple of the cofactor 8, so it maps every point of order 1, 2, 4 or 8 (on the curve or
/// its twist) to u = 0, and every other point to a non-zero u. Public, not a secret.
const SMALL_ORDER_PROBE: [u8; 32] = [0x5a; 32];

/// An age X25519 recipient: the administrator's public key that [`seal`](crate::seal) seals
/// to. Public; harmless to keep on the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recipient {
    public_key: [u8; PUBLIC_KEY_LEN],
}

impl Recipient {
    /// Parses a recipient exactly as `age-keygen -y` prints it, without the line feed:
    /// `age1` and 58 lowercase Bech32 characters (BIP-173 Bech32, human-readable part `age`,
    /// a 32-byte payload, checksum and padding bits checked).
    ///
    /// # Errors
    ///
    /// - [`SealError::SecretKeyNotRecipient`]: the text is an identity (`AGE-SECRET-KEY-1…`).
    /// - [`SealError::RecipientNotLowercase`]: an uppercase letter (age prints recipients in
    ///   lowercase; an uppercase or mixed-case text is refused rather than folded).
    /// - [`SealError::RecipientNotBech32`]: empty, whitespace or other characters outside
    ///   printable ASCII, no `1` separator, or a character outside the Bech32 alphabet.
    /// - [`SealError::RecipientNotX25519`]: valid Bech32 of another kind (a human-readable
    ///   part other than `age`: a post-quantum `age1pq1…` or a plugin's `age1name1…`
    ///   recipient, or a Bitcoin address).
    /// - [`SealError::RecipientChecksum`]: the Bech32 checksum does not match (a mistyped,
    ///   missing or extra character, a Bech32m checksum, too short for a checksum).
    /// - [`SealError::RecipientLength`]: the payload is not 32 bytes, or its padding bits are
    ///   not zero.
    /// - [`SealError::LowOrderRecipient`]: the point has small order, so that every shared
    ///   secret with it would be zero.
    pub fn parse(text: &[u8]) -> Result<Recipient, SealError> {
        let public_key = decode(text)?;
        if is_small_order(&public_key) {
            return Err(SealError::LowOrderRecipient);
        }
        Ok(Recipient { public_key })
    }

    /// A recipient from the 32 bytes of an X25519 public key (RFC 7748 u-coordinate, little
    /// endian). Not checked here: [`seal`](crate::seal) refuses a small-order point.
    pub const fn from_public_key(public_key: [u8; PUBLIC_KEY_LEN]) -> Recipient {
        Recipient { public_key }
    }

    /// The X25519 public key.
    pub const fn public_key(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.public_key
    }
}

impl core::fmt::Display for Recipient {
    /// The `age1…` text, as `age-keygen -y` prints it.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let hrp = bech32::Hrp::parse_unchecked(RECIPIENT_HRP);
        bech32::encode_lower_to_fmt::<Bech32, _>(f, hrp, &self.public_key)
            .map_err(|_| core::fmt::Error)
    }
}

/// The 32 bytes an `age1…` text encodes ([`Recipient::parse`] without the small-order test).
/// A frame of its own, so that the X25519 ladder after it does not run below this one.
#[inline(never)]
fn decode(text: &[u8]) -> Result<[u8; PUBLIC_KEY_LEN], SealError> {
    if text
        .get(..IDENTITY_PREFIX.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(IDENTITY_PREFIX))
    {
        return Err(SealError::SecretKeyNotRecipient);
    }
    if text.is_empty() || !text.iter().all(u8::is_ascii_graphic) {
        return Err(SealError::RecipientNotBech32);
    }
    if text.iter().any(u8::is_ascii_uppercase) {
        return Err(SealError::RecipientNotLowercase);
    }
    let text = core::str::from_utf8(text).map_err(|_| SealError::RecipientNotBech32)?;
    let unchecked = UncheckedHrpstring::new(text).map_err(|_| SealError::RecipientNotBech32)?;
    if unchecked.hrp().as_str() != RECIPIENT_HRP {
        return Err(SealError::RecipientNotX25519);
    }
    let checked = unchecked
        .validate_and_remove_checksum::<Bech32>()
        .map_err(|_| SealError::RecipientChecksum)?;
    // BIP-173: an incomplete group at the end is at most 4 bits and all zero.
    checked
        .validate_segwit_padding()
        .map_err(|_| SealError::RecipientLength)?;
    let mut public_key = [0u8; PUBLIC_KEY_LEN];
    let mut len = 0usize;
    for byte in checked.byte_iter() {
        if let Some(slot) = public_key.get_mut(len) {
            *slot = byte;
        }
        len = len.saturating_add(1);
    }
    if len != PUBLIC_KEY_LEN {
        return Err(SealError::RecipientLength);
    }
    Ok(public_key)
}

/// Whether X25519 maps the point to zero for every scalar: a point of order 1, 2, 4 or 8.
fn is_small_order(public_key: &[u8; PUBLIC_KEY_LEN]) -> bool {
    is_all_zero(&x25519_dalek::x25519(SMALL_ORDER_PROBE, *public_key))
}
