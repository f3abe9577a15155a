//! One set of link keys: sealing and opening data frames with ChaCha20-Poly1305 (RFC 8439), or
//! AES-256-GCM where both ends picked it (see `cipher`).
//!
//! Nonce = 4 zero bytes followed by the 64-bit frame counter, little-endian (as WireGuard). The frame header
//! is the associated data, so the counter and index cannot be altered either.
//!
//! The cipher is ring's: assembly with run-time CPU dispatch (AVX2/AVX-512 on x86-64, NEON on aarch64), so
//! any release build is fast on any machine. RustCrypto's `chacha20poly1305` 0.11 is 2.5-4x slower in a
//! default build: `poly1305` 0.9 selects its AVX2 backend at run time, but most of that backend's helpers
//! lack `#[target_feature]`, so every AVX2 intrinsic in them becomes an out-of-line call; the per-message
//! key set-up alone costs 1.3 us instead of 0.15 us. The two produce identical bytes (a test checks).
//!
//! Wiping: ring's key types hold the key material inline (ChaCha20-Poly1305: the 32 key bytes
//! themselves, as eight words; AES-256-GCM: the expanded round keys, whose first two are the key, and
//! the GHASH key table) and have neither `Drop` nor `Zeroize`: dropped as they are, they would stay in
//! freed memory, once for every place a `KeySet` was ever moved to. So each key lives in one heap
//! allocation for its whole life ([`WipeOnDrop`]: moving a `KeySet` between a link's slots moves a
//! pointer) and every byte of it is overwritten with zeros there when it is dropped ([`AeadKey`]).
//! Not only the key's fields: moving a ring key copies its whole enum, unused variant space included,
//! and that space carries whatever the stack held, key bytes among it (found there in a test build).
//! What this cannot reach: the copies ring and the compiler make on the stack while building a key
//! (safe Rust has no handle on them; later calls overwrite them).

use std::mem::{align_of, size_of};
use std::sync::atomic::{Ordering, compiler_fence};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey};

use super::cipher::Cipher;

use super::handshake::DirectionalKeys;
use super::replay::ReplayWindow;
use crate::core::time::Instant;
use crate::core::wire::datagram::{DATA_HEADER_LEN, TAG_LEN, write_data_header};

/// Counters at or beyond this are never used: a key set this old must be replaced.
pub const COUNTER_LIMIT: u64 = 1 << 60;

/// Keys and counters for one completed handshake.
pub struct KeySet {
    /// The index peers put in frames for these keys (chosen by us).
    pub local_index: u32,
    /// The index we put in frames we send (chosen by the peer).
    pub remote_index: u32,
    send: WipeOnDrop<AeadKey>,
    recv: WipeOnDrop<AeadKey>,
    next_counter: u64,
    replay: ReplayWindow,
    /// When the handshake completed.
    pub created: Instant,
    /// When to start replacing these keys.
    pub rekey_at: Instant,
    /// False for a responder's keys until the initiator proves them with a first frame.
    pub confirmed: bool,
    /// True if we sent the Init that made these keys.
    pub we_initiated: bool,
    /// The AEAD.
    pub cipher: Cipher,
}

fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    // Counters never repeat within a key set: `seal` takes each once, and keys are per handshake.
    Nonce::assume_unique_for_key(n)
}

fn aead_key(cipher: Cipher, key: &[u8; 32]) -> LessSafeKey {
    let key = UnboundKey::new(cipher.algorithm(), key)
        .unwrap_or_else(|_| unreachable!("a 32-byte key is the right length"));
    LessSafeKey::new(key)
}

/// A value that can overwrite itself, where it lies, with a value that holds no secret.
trait Wipe {
    /// Overwrites every secret byte of `self` in place.
    fn wipe(&mut self);
}

/// Keeps a [`Wipe`] value in one heap allocation for its whole life, so that moving the owner never
/// leaves a copy behind, and wipes it there when dropped, before the allocation is freed.
struct WipeOnDrop<T: Wipe>(Box<T>);

impl<T: Wipe> WipeOnDrop<T> {
    fn new(value: T) -> Self {
        Self(Box::new(value))
    }
}

impl<T: Wipe> std::ops::Deref for WipeOnDrop<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Wipe> Drop for WipeOnDrop<T> {
    fn drop(&mut self) {
        self.0.wipe();
        // The allocation is freed right after: without these, the compiler may drop the stores of
        // `wipe` as dead (what `zeroize` guards against with volatile writes, which ring's opaque
        // types do not allow).
        std::hint::black_box(&mut *self.0);
        compiler_fence(Ordering::SeqCst);
    }
}

/// The bytes of [`AeadKey`] after its tag: all the room a `LessSafeKey` takes there, the padding
/// before it included.
const KEY_ROOM: usize = size_of::<LessSafeKey>() + align_of::<LessSafeKey>() - 1;

/// One direction's ring key, or the zeros that replaced it. `repr(u8)` fixes the layout (a C union
/// of C structs, each a tag byte followed by the variant's fields): the key lies at offset
/// `align_of::<LessSafeKey>()`, `Wiped` covers every byte from offset 1 to the end, and the enum has no
/// trailing padding (checked below). Writing `Wiped` therefore overwrites every byte the key occupied:
/// its fields, its padding and its enum's unused variant space, which an assignment of another ring
/// key would fill with stack garbage instead.
#[repr(u8)]
enum AeadKey {
    Key(LessSafeKey),
    Wiped(#[allow(dead_code, reason = "written only to overwrite the key")] [u8; KEY_ROOM]),
}

const _: () = assert!(
    size_of::<AeadKey>() == 1 + KEY_ROOM,
    "AeadKey has trailing padding"
);

impl AeadKey {
    fn new(cipher: Cipher, key: &[u8; 32]) -> WipeOnDrop<Self> {
        WipeOnDrop::new(Self::Key(aead_key(cipher, key)))
    }

    fn key(&self) -> &LessSafeKey {
        match self {
            Self::Key(key) => key,
            Self::Wiped(_) => unreachable!("a key is wiped only when it is dropped"),
        }
    }
}

impl Wipe for AeadKey {
    fn wipe(&mut self) {
        *self = Self::Wiped([0; KEY_ROOM]);
    }
}

impl KeySet {
    /// Builds the key set from derived keys.
    pub fn new(
        keys: &DirectionalKeys,
        cipher: Cipher,
        local_index: u32,
        remote_index: u32,
        now: Instant,
        rekey_at: Instant,
        we_initiated: bool,
    ) -> Self {
        Self {
            local_index,
            remote_index,
            send: AeadKey::new(cipher, &keys.send),
            recv: AeadKey::new(cipher, &keys.recv),
            next_counter: 0,
            replay: ReplayWindow::default(),
            created: now,
            rekey_at,
            confirmed: we_initiated,
            we_initiated,
            cipher,
        }
    }

    /// Returns true once the send counter is exhausted.
    pub fn exhausted(&self) -> bool {
        self.next_counter >= COUNTER_LIMIT
    }

    /// Encrypts `plaintext` into a complete data datagram, or `None` if the counter is exhausted.
    pub fn seal(&mut self, plaintext: &[u8]) -> Option<Vec<u8>> {
        self.seal_parts(&[plaintext])
    }

    /// Encrypts the concatenation of `parts` (say a message header and the bytes it carries) into a
    /// complete data datagram, copying each byte once.
    pub fn seal_parts(&mut self, parts: &[&[u8]]) -> Option<Vec<u8>> {
        self.seal_parts_into(Vec::new(), parts)
    }

    /// [`seal_parts`](Self::seal_parts) into `out` (cleared first): a spare buffer of an earlier
    /// datagram, so that sealing does not allocate.
    pub fn seal_parts_into(&mut self, mut out: Vec<u8>, parts: &[&[u8]]) -> Option<Vec<u8>> {
        if self.exhausted() {
            return None;
        }
        let counter = self.next_counter;
        self.next_counter += 1;
        let text_len: usize = parts.iter().map(|p| p.len()).sum();
        out.clear();
        out.reserve(DATA_HEADER_LEN + text_len + TAG_LEN);
        out.resize(DATA_HEADER_LEN, 0);
        write_data_header(&mut out, self.remote_index, counter);
        for part in parts {
            out.extend_from_slice(part);
        }
        let (header, text) = out.split_at_mut(DATA_HEADER_LEN);
        let tag = self
            .send
            .key()
            .seal_in_place_separate_tag(nonce(counter), Aad::from(&*header), text)
            .ok()?;
        out.extend_from_slice(tag.as_ref());
        Some(out)
    }

    /// Authenticates and decrypts a frame; refuses replays. The replay window moves only after the tag
    /// verified.
    pub fn open(&mut self, counter: u64, header: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let mut text = sealed.to_vec();
        let len = self.open_in_place(counter, header, &mut text)?.len();
        text.truncate(len);
        Some(text)
    }

    /// [`open`](Self::open) where the frame lies: decrypts `sealed` (ciphertext and tag) in place and
    /// returns the plaintext, its front.
    pub fn open_in_place<'b>(
        &mut self,
        counter: u64,
        header: &[u8],
        sealed: &'b mut [u8],
    ) -> Option<&'b mut [u8]> {
        if !self.replay.check(counter) || sealed.len() < TAG_LEN {
            return None;
        }
        let text = self
            .recv
            .key()
            .open_in_place(nonce(counter), Aad::from(header), sealed)
            .ok()?;
        if !self.replay.update(counter) {
            return None;
        }
        self.confirmed = true;
        Some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::wire::datagram::Datagram;
    use zeroize::Zeroizing;

    fn pair(cipher: Cipher) -> (KeySet, KeySet) {
        let k1 = Zeroizing::new([1u8; 32]);
        let k2 = Zeroizing::new([2u8; 32]);
        let a = DirectionalKeys {
            send: k1.clone(),
            recv: k2.clone(),
        };
        let b = DirectionalKeys { send: k2, recv: k1 };
        (
            KeySet::new(&a, cipher, 10, 20, Instant::ZERO, Instant::ZERO, true),
            KeySet::new(&b, cipher, 20, 10, Instant::ZERO, Instant::ZERO, false),
        )
    }

    fn open(keys: &mut KeySet, datagram: &[u8]) -> Option<Vec<u8>> {
        match Datagram::parse(datagram).ok()? {
            Datagram::Data {
                receiver_index,
                counter,
                header,
                sealed,
            } => {
                assert_eq!(receiver_index, keys.local_index);
                keys.open(counter, header, sealed)
            }
            _ => None,
        }
    }

    #[test]
    fn seal_open_replay_and_tamper() {
        for cipher in [Cipher::ChaCha20Poly1305, Cipher::Aes256Gcm] {
            seal_open_replay_and_tamper_with(cipher);
        }
        // Keys of one cipher do not open frames of the other.
        let (mut a, _) = pair(Cipher::Aes256Gcm);
        let (_, mut b) = pair(Cipher::ChaCha20Poly1305);
        let d = a.seal(b"one").unwrap();
        assert_eq!(open(&mut b, &d), None);
    }

    fn seal_open_replay_and_tamper_with(cipher: Cipher) {
        let (mut a, mut b) = pair(cipher);
        let d1 = a.seal(b"one").unwrap();
        let d2 = a.seal(b"two").unwrap();
        assert!(!b.confirmed);
        assert_eq!(open(&mut b, &d2).as_deref(), Some(&b"two"[..]));
        assert!(b.confirmed);
        assert_eq!(
            open(&mut b, &d1).as_deref(),
            Some(&b"one"[..]),
            "reordered frame accepted"
        );
        assert_eq!(open(&mut b, &d1), None, "replay refused");
        for i in 0..d1.len() {
            if (2..6).contains(&i) {
                continue; // the receiver index selects the key set, checked above
            }
            let mut t = a.seal(b"three").unwrap();
            t[i] ^= 0x40;
            assert_eq!(open(&mut b, &t), None, "byte {i} flipped");
        }
    }

    /// A [`Wipe`] value whose secret is a buffer the test keeps: dropping the wrapper must wipe it.
    /// (Reading the freed allocation instead would be undefined behaviour.)
    struct Probe(std::rc::Rc<std::cell::Cell<[u8; 32]>>);

    impl Wipe for Probe {
        fn wipe(&mut self) {
            self.0.set([0; 32]);
        }
    }

    #[test]
    fn wipe_on_drop_keeps_one_place_and_wipes_it() {
        let secret = std::rc::Rc::new(std::cell::Cell::new([7u8; 32]));
        let held = WipeOnDrop::new(Probe(secret.clone()));
        let place: *const Probe = &*held;
        let mut moved = std::collections::VecDeque::new();
        moved.push_back(held);
        moved.reserve(100);
        assert!(
            std::ptr::eq(&*moved[0], place),
            "moving the owner moved the value"
        );
        assert_eq!(secret.get(), [7; 32], "moving must not wipe");
        drop(moved);
        assert_eq!(secret.get(), [0; 32], "dropping did not wipe");
    }

    #[test]
    fn wiping_a_ring_key_overwrites_all_its_room() {
        // The layout the wipe relies on (the const assertion checks the size at compile time).
        assert_eq!(size_of::<AeadKey>(), 1 + KEY_ROOM);
        assert_eq!(align_of::<AeadKey>(), align_of::<LessSafeKey>());
        for cipher in [Cipher::ChaCha20Poly1305, Cipher::Aes256Gcm] {
            let mut key = AeadKey::Key(aead_key(cipher, &[9; 32]));
            key.key();
            key.wipe();
            assert!(matches!(&key, AeadKey::Wiped(room) if room.iter().all(|b| *b == 0)));
        }
    }

    #[test]
    fn key_sets_hold_ring_keys_only_behind_wipe_on_drop() {
        let (a, _) = pair(Cipher::Aes256Gcm);
        // Type-level: fails to compile if a KeySet holds a bare ring key again.
        let _: [&WipeOnDrop<AeadKey>; 2] = [&a.send, &a.recv];
    }

    proptest::proptest! {
        /// ring's output is byte for byte what RustCrypto's RFC 8439 implementation produces, so the
        /// choice of library never changes the wire.
        #[test]
        fn same_bytes_as_rustcrypto(
            key in proptest::array::uniform32(proptest::num::u8::ANY),
            skip in 0u64..3,
            text in proptest::collection::vec(proptest::num::u8::ANY, 0..2000),
        ) {
            use chacha20poly1305::aead::{AeadInOut, KeyInit};
            let keys = DirectionalKeys {
                send: Zeroizing::new(key),
                recv: Zeroizing::new([0; 32]),
            };
            let chacha = Cipher::ChaCha20Poly1305;
            let mut ours = KeySet::new(&keys, chacha, 1, 2, Instant::ZERO, Instant::ZERO, true);
            for _ in 0..skip {
                ours.seal(b"");
            }
            let datagram = ours.seal(&text).unwrap();
            let (header, body) = datagram.split_at(DATA_HEADER_LEN);
            let mut expected = text.clone();
            let mut n = [0u8; 12];
            n[4..].copy_from_slice(&skip.to_le_bytes());
            let tag = chacha20poly1305::ChaCha20Poly1305::new(&key.into())
                .encrypt_inout_detached(&n.into(), header, expected.as_mut_slice().into())
                .unwrap();
            expected.extend_from_slice(&tag);
            proptest::prop_assert_eq!(body, &expected[..]);
        }
    }
}
