//! Seals a 64-byte key to an administrator's age X25519 recipient, as an age v1 file
//! ([C2SP age](https://c2sp.org/age), `age-encryption.org/v1`).
//!
//! dumpcrypt's `KeySource = sealed` draws a fresh XTS key at each DriverEntry of an
//! encrypting dump-stack copy and stores it only sealed: [`seal`] writes a complete age
//! file that `age -d -i IDENTITY` (the reference implementation) decrypts to the 64 bytes.
//! The caller supplies every random input ([`Randomness`]); this crate draws nothing itself.
//!
//! The file, always [`SEALED_LEN`] = 264 bytes:
//!
//! | bytes | what |
//! |------:|------|
//! | 22 | `age-encryption.org/v1` LF |
//! | 54 | `-> X25519 ` base64(ephemeral share, 43) LF: the one recipient stanza's argument line |
//! | 44 | base64(wrapped file key, 43) LF: the stanza's body, 16 bytes of key and a 16-byte tag |
//! | 48 | `--- ` base64(header MAC, 43) LF |
//! | 16 | the payload nonce |
//! | 80 | the one STREAM chunk, the last: 64 bytes of ChaCha20-Poly1305 and its 16-byte tag |
//!
//! The computation, as the spec gives it:
//!
//! - ephemeral share = X25519(ephemeral secret, basepoint); shared secret =
//!   X25519(ephemeral secret, recipient), refused when all zero (a small-order recipient);
//! - wrap key = HKDF-SHA-256(salt = share ‖ recipient, ikm = shared secret,
//!   info = `age-encryption.org/v1/X25519`); body = ChaCha20-Poly1305(wrap key, nonce 0,
//!   file key);
//! - header MAC = HMAC-SHA-256(HKDF-SHA-256(salt empty, ikm = file key, info = `header`)),
//!   over the header up to and including `---`;
//! - payload key = HKDF-SHA-256(salt = nonce, ikm = file key, info = `payload`); the chunk =
//!   ChaCha20-Poly1305(payload key, nonce = 11 zero bytes (chunk counter 0) ‖ 0x01 (last)).
//!
//! # Secrets, panics, allocation
//!
//! `no_std`, no `alloc`, no `unsafe`, no panic path reachable from any input. The derived
//! keys are held in [`zeroize::Zeroizing`] buffers and the primitives' states zeroize on drop
//! (their `zeroize` features); the caller's [`Randomness`] zeroizes on drop. That is not
//! enough on its own: the copies the compiler and the dependencies leave in their frames
//! (moved return values, the ladder's field elements, SHA-256 message schedules, ChaCha20
//! key stream) stay in the dead stack, and `scripts/stack-use.sh` finds pieces of the shared
//! secret and of all three HKDF outputs there. So before returning, [`seal`] overwrites the
//! stack below its frame, with volatile writes, to beyond the depth its work reached
//! ([`STACK_WIPE_LEN`]); the script then finds none of them. The depth is an optimised
//! build's: an unoptimised (debug) build has larger frames, which the wipe does not all reach.
//!
//! # Stack
//!
//! Measured by `scripts/stack-use.sh` (x86_64 Linux, release build; gdb paints the stack
//! below `seal`'s caller and reads it back), return address included:
//!
//! | backends | the work | [`seal`], its wipe included |
//! |---|---:|---:|
//! | portable (`soft`, as a kernel build needs them) | 2312 B | **3304 B (3.2 KiB)** |
//! | chosen at run time (AVX2 on the measuring machine) | 4376 B | 4840 B |
//!
//! The wipe is the deepest part, by design: it must reach beyond the work. [`Recipient::parse`]
//! needs 2104 B (its small-order test runs the X25519 ladder). The deepest calls are the
//! dependencies' (the ladder's `Mul` and `differential_add_and_double`, 1.5 KiB; HMAC-SHA-256
//! inside HKDF, 1.3 KiB); this crate keeps its own frames out from under them (each step a
//! call of its own, no buffer larger than 64 bytes but the wipe's). The Windows x64 ABI (a
//! 32-byte home area per call, larger frames) adds to each frame: adding up the frames of
//! the x86_64-pc-windows-msvc build gives about 2.8 KiB for the work and 3.4 KiB for `seal`
//! with its wipe; measure it in the driver. `tests/seal/stack.rs` also runs `seal` on the
//! smallest thread stack the host allows.
//!
//! # Kernel builds
//!
//! On x86_64, chacha20 (AVX-512, AVX2, SSE2) and poly1305 (AVX2) choose a backend at run
//! time from CPUID unless a `--cfg` flag fixes it, and curve25519-dalek compiles an AVX2
//! backend (for Edwards points; the Montgomery ladder used here is its portable code in
//! every backend). Code that must not touch YMM/ZMM state (a Windows driver that does not
//! save it with `KeSaveExtendedProcessorState`) builds with
//! `--cfg chacha20_backend="soft" --cfg poly1305_backend="soft"
//! --cfg curve25519_dalek_backend="serial"`: flags for every crate of the build (RUSTFLAGS),
//! which this crate reads too, to choose [`STACK_WIPE_LEN`]. sha2 uses SHA-NI (XMM only) or
//! its portable code.
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::panic,
        clippy::unwrap_used,
        clippy::expect_used
    )
)]

mod recipient;

use core::fmt;

use base64ct::{Base64Unpadded, Encoding};
use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret, X25519_BASEPOINT_BYTES};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

pub use recipient::{Recipient, PUBLIC_KEY_LEN};

/// The length of what is sealed: an XTS-AES-256 key, data key then tweak key.
pub const PAYLOAD_LEN: usize = 64;
/// The length of the ephemeral X25519 secret.
pub const EPHEMERAL_SECRET_LEN: usize = 32;
/// The length of the age file key.
pub const FILE_KEY_LEN: usize = 16;
/// The length of the payload nonce.
pub const PAYLOAD_NONCE_LEN: usize = 16;
/// All the random input one seal takes: [`Randomness::from_bytes`].
pub const RANDOMNESS_LEN: usize = EPHEMERAL_SECRET_LEN + FILE_KEY_LEN + PAYLOAD_NONCE_LEN;

/// The version line.
const VERSION_LINE: &[u8] = b"age-encryption.org/v1\n";
/// The X25519 stanza's argument line, up to the ephemeral share.
const STANZA_TAG: &[u8] = b"-> X25519 ";
/// The start of the MAC line, the end of what the MAC covers.
const MAC_TAG: &[u8] = b"---";
/// HKDF info of the X25519 wrap key.
const X25519_INFO: &[u8] = b"age-encryption.org/v1/X25519";
/// HKDF info of the header MAC key.
const HEADER_INFO: &[u8] = b"header";
/// HKDF info of the payload key.
const PAYLOAD_INFO: &[u8] = b"payload";
/// The length of a ChaCha20-Poly1305 tag.
const TAG_LEN: usize = 16;
/// The stanza's body: the file key encrypted, and its tag.
const WRAPPED_KEY_LEN: usize = FILE_KEY_LEN + TAG_LEN;
/// Unpadded base64 of 32 bytes: the share, the wrapped key and the MAC are each 32 bytes.
const BASE64_32_LEN: usize = (32usize * 4).div_ceil(3);
/// The STREAM nonce of chunk 0 when it is the last: an 11-byte big-endian counter of 0 and
/// the last-chunk flag 0x01.
const LAST_CHUNK_0_NONCE: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
/// The one chunk: the payload and its tag.
const CHUNK_LEN: usize = PAYLOAD_LEN + TAG_LEN;

/// The length of the text header, from the version line to the MAC line's LF.
pub const HEADER_LEN: usize = VERSION_LINE.len()
    + STANZA_TAG.len()
    + BASE64_32_LEN
    + 1
    + BASE64_32_LEN
    + 1
    + MAC_TAG.len()
    + 1
    + BASE64_32_LEN
    + 1;

/// The exact length of the age file [`seal`] writes: the header, the 16-byte payload nonce
/// and one STREAM chunk of [`PAYLOAD_LEN`] bytes with its 16-byte tag.
pub const SEALED_LEN: usize = HEADER_LEN + PAYLOAD_NONCE_LEN + CHUNK_LEN;

const _: () = assert!(BASE64_32_LEN == 43);
const _: () = assert!(WRAPPED_KEY_LEN == 32);
const _: () = assert!(HEADER_LEN == 22 + 54 + 44 + 48);
const _: () = assert!(SEALED_LEN == 264);

/// How many bytes below its own frame [`seal`] wipes before it returns: more than the
/// deepest its work reaches. With the portable backends of chacha20 and poly1305
/// (`--cfg chacha20_backend="soft"` and `--cfg poly1305_backend="soft"`, as a kernel build
/// needs them) the work reaches about 2.1 KiB below `seal`'s frame on x86_64 Linux
/// (measured by `scripts/stack-use.sh`), and about 2.6 KiB in the Windows x64 ABI (the
/// frames of the x86_64-pc-windows-msvc build added up along the deepest calls, HKDF's):
/// 3 KiB are wiped.
#[cfg(all(chacha20_backend = "soft", poly1305_backend = "soft"))]
pub const STACK_WIPE_LEN: usize = 3 * 1024;
/// How many bytes below its own frame [`seal`] wipes before it returns: more than the
/// deepest its work reaches, measured by `scripts/stack-use.sh` on x86_64 (release build).
/// With the backends chacha20 and poly1305 choose at run time (AVX2, AVX-512: a host build)
/// the work reaches about 4.1 KiB below `seal`'s frame: 4.5 KiB are wiped.
#[cfg(not(all(chacha20_backend = "soft", poly1305_backend = "soft")))]
pub const STACK_WIPE_LEN: usize = 4608;

/// Why nothing was sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealError {
    /// The text is an age identity (`AGE-SECRET-KEY-1…`): the secret key, which must never
    /// be on the machine. The recipient is what `age-keygen -y` prints from it.
    SecretKeyNotRecipient,
    /// The text has an uppercase letter: age prints recipients in lowercase.
    RecipientNotLowercase,
    /// The text is not Bech32 (empty, whitespace or non-ASCII, no `1` separator, a character
    /// outside the alphabet).
    RecipientNotBech32,
    /// Bech32 of another kind: a human-readable part other than `age` (a post-quantum or
    /// plugin recipient, or no age recipient at all).
    RecipientNotX25519,
    /// The Bech32 checksum does not match.
    RecipientChecksum,
    /// The Bech32 payload is not exactly 32 bytes, or its padding bits are not zero.
    RecipientLength,
    /// The recipient is a small-order point: the shared secret would be all zero, which
    /// age refuses (anyone could unwrap the key).
    LowOrderRecipient,
    /// A part of the [`Randomness`] is all zero: the random source did not fill it.
    ZeroRandomness,
    /// A primitive refused an input length. Cannot happen with the fixed sizes here;
    /// returned rather than panicking.
    Internal,
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SealError::SecretKeyNotRecipient => {
                "this is an age secret key (AGE-SECRET-KEY-1...), not a recipient: give the \
                 age1... recipient that age-keygen -y prints, and keep the secret key off the machine"
            }
            SealError::RecipientNotLowercase => {
                "the recipient has uppercase letters: give it in lowercase, as age-keygen prints it"
            }
            SealError::RecipientNotBech32 => "the recipient is not an age1... Bech32 string",
            SealError::RecipientNotX25519 => {
                "the recipient is not an age X25519 recipient (age1...): other kinds \
                 (post-quantum, plugins) are not supported"
            }
            SealError::RecipientChecksum => {
                "the recipient's checksum does not match (a mistyped character?)"
            }
            SealError::RecipientLength => "the recipient does not hold a 32-byte X25519 key",
            SealError::LowOrderRecipient => {
                "the recipient is a small-order X25519 point: the shared secret would be zero"
            }
            SealError::ZeroRandomness => {
                "a part of the random input is all zero: the random source did not fill it"
            }
            SealError::Internal => "internal length error in the age sealing code",
        })
    }
}

/// Every random input of one seal, supplied by the caller from a cryptographically secure
/// source, never reused: the ephemeral X25519 secret, the file key and the payload nonce.
/// Zeroized on drop.
pub struct Randomness {
    ephemeral_secret: [u8; EPHEMERAL_SECRET_LEN],
    file_key: [u8; FILE_KEY_LEN],
    payload_nonce: [u8; PAYLOAD_NONCE_LEN],
}

impl Randomness {
    /// The three parts.
    pub fn from_parts(
        ephemeral_secret: &[u8; EPHEMERAL_SECRET_LEN],
        file_key: &[u8; FILE_KEY_LEN],
        payload_nonce: &[u8; PAYLOAD_NONCE_LEN],
    ) -> Randomness {
        Randomness {
            ephemeral_secret: *ephemeral_secret,
            file_key: *file_key,
            payload_nonce: *payload_nonce,
        }
    }

    /// [`RANDOMNESS_LEN`] random bytes: the ephemeral secret (32), the file key (16), the
    /// payload nonce (16). The caller wipes its own copy.
    pub fn from_bytes(bytes: &[u8; RANDOMNESS_LEN]) -> Randomness {
        let mut randomness = Randomness {
            ephemeral_secret: [0; EPHEMERAL_SECRET_LEN],
            file_key: [0; FILE_KEY_LEN],
            payload_nonce: [0; PAYLOAD_NONCE_LEN],
        };
        let parts = randomness
            .ephemeral_secret
            .iter_mut()
            .chain(randomness.file_key.iter_mut())
            .chain(randomness.payload_nonce.iter_mut());
        for (part, byte) in parts.zip(bytes) {
            *part = *byte;
        }
        randomness
    }

    /// Refuses a part that is all zero: a source that failed without saying so.
    fn check(&self) -> Result<(), SealError> {
        if is_all_zero(&self.ephemeral_secret)
            || is_all_zero(&self.file_key)
            || is_all_zero(&self.payload_nonce)
        {
            return Err(SealError::ZeroRandomness);
        }
        Ok(())
    }
}

impl Drop for Randomness {
    fn drop(&mut self) {
        self.ephemeral_secret.zeroize();
        self.file_key.zeroize();
        self.payload_nonce.zeroize();
    }
}

impl ZeroizeOnDrop for Randomness {}

impl fmt::Debug for Randomness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Randomness { .. }")
    }
}

/// Seals `payload` to `recipient`: writes into `out` the age v1 file with one X25519
/// recipient stanza whose payload is the 64 bytes. `age -d -i IDENTITY` prints them.
///
/// Takes no randomness of its own: `randomness` must be fresh from a cryptographically
/// secure source for each call.
///
/// # Errors
///
/// [`SealError::LowOrderRecipient`] for a small-order recipient (the shared secret is all
/// zero), [`SealError::ZeroRandomness`] when a part of `randomness` is all zero, and
/// [`SealError::Internal`], which the fixed sizes rule out. On error `out` is all zero:
/// never a partial or unsealed file.
pub fn seal(
    recipient: &Recipient,
    randomness: &Randomness,
    payload: &[u8; PAYLOAD_LEN],
    out: &mut [u8; SEALED_LEN],
) -> Result<(), SealError> {
    // The X25519 ladder is the deepest call tree: called from here rather than from
    // seal_into, its stack does not add to seal_into's frame.
    let mut shared = Zeroizing::new([0u8; 32]);
    let result = randomness
        .check()
        .and_then(|()| x25519_agree(&randomness.ephemeral_secret, recipient, &mut shared))
        .and_then(|share| seal_into(recipient, randomness, &share, &shared, payload, out));
    drop(shared);
    if result.is_err() {
        out.zeroize();
    }
    wipe_stack();
    result
}

/// Overwrites [`STACK_WIPE_LEN`] bytes of the stack below [`seal`]'s frame, where
/// [`seal_into`] and its callees left their locals. Volatile writes: not elided.
#[inline(never)]
fn wipe_stack() {
    let mut dead = [0u8; STACK_WIPE_LEN];
    dead.zeroize();
    core::hint::black_box(&dead);
}

/// [`seal`]'s work after the X25519 agreement, in a frame of its own (wiped after it by
/// [`wipe_stack`]). Each step with a deep call tree (HKDF, HMAC, ChaCha20-Poly1305) is a
/// call of its own from here, so that their stacks do not add up: the keys pass through
/// this frame, in [`Zeroizing`] buffers.
#[inline(never)]
fn seal_into(
    recipient: &Recipient,
    randomness: &Randomness,
    share: &[u8; 32],
    shared: &[u8; 32],
    payload: &[u8; PAYLOAD_LEN],
    out: &mut [u8; SEALED_LEN],
) -> Result<(), SealError> {
    // The X25519 stanza: the wrap key from the shared secret, the file key wrapped.
    let mut salt = [0u8; 2 * PUBLIC_KEY_LEN];
    for (slot, byte) in salt
        .iter_mut()
        .zip(share.iter().chain(recipient.public_key()))
    {
        *slot = *byte;
    }
    let wrap_key = hkdf_sha256(&salt, shared, X25519_INFO)?;
    let mut body = Zeroizing::new([0u8; WRAPPED_KEY_LEN]);
    let (key, tag) = body
        .split_first_chunk_mut::<FILE_KEY_LEN>()
        .ok_or(SealError::Internal)?;
    *key = randomness.file_key;
    chacha20_poly1305(&wrap_key, &[0; 12], key, tag)?;
    drop(wrap_key);

    // The header, and its MAC.
    let mut file = Cursor { buf: out, pos: 0 };
    file.put(VERSION_LINE)?;
    file.put(STANZA_TAG)?;
    file.put_base64(share)?;
    file.put(b"\n")?;
    file.put_base64(&body)?;
    file.put(b"\n")?;
    file.put(MAC_TAG)?;
    let mac_key = hkdf_sha256(&[], &randomness.file_key, HEADER_INFO)?;
    let mac = hmac_sha256(&mac_key, file.written()?)?;
    drop(mac_key);
    file.put(b" ")?;
    file.put_base64(&mac)?;
    file.put(b"\n")?;

    // The payload: the nonce, then the one STREAM chunk, encrypted in place.
    file.put(&randomness.payload_nonce)?;
    let payload_key = hkdf_sha256(
        &randomness.payload_nonce,
        &randomness.file_key,
        PAYLOAD_INFO,
    )?;
    let (data, tag) = file
        .take(CHUNK_LEN)?
        .split_first_chunk_mut::<PAYLOAD_LEN>()
        .ok_or(SealError::Internal)?;
    *data = *payload;
    chacha20_poly1305(&payload_key, &LAST_CHUNK_0_NONCE, data, tag)?;
    if file.pos != SEALED_LEN {
        return Err(SealError::Internal);
    }
    Ok(())
}

/// X25519 with the ephemeral secret: returns the ephemeral share, X25519(secret, basepoint),
/// and writes the shared secret, X25519(secret, recipient), into `shared`; refuses an
/// all-zero shared secret (a small-order recipient), as age does. Both with the Montgomery
/// ladder (RFC 7748 section 5; the share with u = 9).
#[inline(never)]
fn x25519_agree(
    ephemeral_secret: &[u8; EPHEMERAL_SECRET_LEN],
    recipient: &Recipient,
    shared: &mut [u8; 32],
) -> Result<[u8; 32], SealError> {
    let ephemeral = StaticSecret::from(*ephemeral_secret);
    let share = ephemeral
        .diffie_hellman(&PublicKey::from(X25519_BASEPOINT_BYTES))
        .to_bytes();
    let agreed = ephemeral.diffie_hellman(&PublicKey::from(*recipient.public_key()));
    if is_all_zero(agreed.as_bytes()) {
        return Err(SealError::LowOrderRecipient);
    }
    *shared = *agreed.as_bytes();
    Ok(share)
}

/// HKDF-SHA-256 to 32 bytes (RFC 5869: extract with `salt`, expand with `info`).
#[inline(never)]
fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8]) -> Result<Zeroizing<[u8; 32]>, SealError> {
    let mut okm = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, okm.as_mut_slice())
        .map_err(|_| SealError::Internal)?;
    Ok(okm)
}

/// HMAC-SHA-256 of `data` under `key`.
#[inline(never)]
fn hmac_sha256(key: &[u8; 32], data: &[u8]) -> Result<[u8; 32], SealError> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).map_err(|_| SealError::Internal)?;
    mac.update(data);
    Ok(mac.finalize().into_bytes().into())
}

/// ChaCha20-Poly1305 (RFC 7539) without associated data: encrypts `data` in place and
/// writes the tag into `tag`.
#[inline(never)]
fn chacha20_poly1305(
    key: &[u8; 32],
    nonce: &[u8; 12],
    data: &mut [u8],
    tag: &mut [u8],
) -> Result<(), SealError> {
    let cipher = ChaCha20Poly1305::new(<&Key>::from(key));
    let computed = cipher
        .encrypt_inout_detached(<&Nonce>::from(nonce), b"", data.into())
        .map_err(|_| SealError::Internal)?;
    if tag.len() != computed.len() {
        return Err(SealError::Internal);
    }
    for (slot, byte) in tag.iter_mut().zip(computed.iter()) {
        *slot = *byte;
    }
    Ok(())
}

/// Whether every byte is zero, without a data-dependent branch before the end.
fn is_all_zero(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |acc, byte| acc | byte) == 0
}

/// Writes the file front to back into the caller's buffer.
struct Cursor<'a> {
    buf: &'a mut [u8; SEALED_LEN],
    pos: usize,
}

impl Cursor<'_> {
    /// The next `len` bytes, to be written.
    fn take(&mut self, len: usize) -> Result<&mut [u8], SealError> {
        let end = self.pos.checked_add(len).ok_or(SealError::Internal)?;
        let slot = self.buf.get_mut(self.pos..end).ok_or(SealError::Internal)?;
        self.pos = end;
        Ok(slot)
    }

    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]) -> Result<(), SealError> {
        let slot = self.take(bytes.len())?;
        for (slot, byte) in slot.iter_mut().zip(bytes) {
            *slot = *byte;
        }
        Ok(())
    }

    /// Appends 32 bytes in unpadded standard base64 (43 characters).
    fn put_base64(&mut self, bytes: &[u8; 32]) -> Result<(), SealError> {
        let slot = self.take(BASE64_32_LEN)?;
        let written = Base64Unpadded::encode(bytes, slot)
            .map_err(|_| SealError::Internal)?
            .len();
        if written != BASE64_32_LEN {
            return Err(SealError::Internal);
        }
        Ok(())
    }

    /// What has been written so far.
    fn written(&self) -> Result<&[u8], SealError> {
        self.buf.get(..self.pos).ok_or(SealError::Internal)
    }
}
