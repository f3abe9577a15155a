//! A node behind a completed link handshake: node A (a real `Node`) links with a scripted peer B,
//! and the fuzz input then drives a sequence of operations on the authenticated link. Nothing may
//! panic, link-up events on A's link name B, and every packet A delivers to its host is an IPv6
//! packet from the sender's address (or /64) to A's.
//!
//! B is played with the core's own public pieces: a `Link` (so the frames it sends are sealed with
//! the keys of the real handshake, which is what lets the fuzzer reach A's decoders and state
//! machines behind authentication), a `Tree` (so A gets validly signed tree messages and a parent or
//! child), a `Sessions` table (for a closed overlay, where A talks to B through a session). Behind B
//! sits C, a node two hops from A that exists only as a key, coordinates under B and a `Sessions`
//! table: B answers A's lookups for C with C's signed reply, and routes A's session traffic for C
//! into C's sessions and C's answers back, so A's lookup and session paths complete. D is a key
//! that nobody runs (a stranger to name in messages). Every key is fixed, every clock virtual, every
//! random stream seeded: a run replays exactly.
//!
//! Input: a config byte, then operations, each an opcode byte and its fields (see `Op`); fields read
//! past the end are zeros. Set `NODE_LINK_TRACE=1` to print, per run, what A went through (link state
//! before the operations, counters and drops after) when replaying an input.
#![no_main]

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use meshrouter::core::address::{PartialKey, node_address, node_subnet};
use meshrouter::core::identity::{NodeKey, PublicKey};
use meshrouter::core::link::{Link, LinkParams};
use meshrouter::core::lookup::tags::tag;
use meshrouter::core::node::{DeliveryKind, Event, LinkId, Node, NodeConfig};
use meshrouter::core::password::PasswordKey;
use meshrouter::core::rng::Rng;
use meshrouter::core::session::Sessions;
use meshrouter::core::time::{Instant, earliest};
use meshrouter::core::tree::Tree;
use meshrouter::core::wire::ack::VersionAck;
use meshrouter::core::wire::fragment::Fragment;
use meshrouter::core::wire::inner::{Message, Messages};
use meshrouter::core::wire::keepalive::Keepalive;
use meshrouter::core::wire::lookup::{Lookup, LookupReply, SubtreeDelta};
use meshrouter::core::wire::neighbors::{Neighbors, attest};
use meshrouter::core::wire::payload::{Service, TcpSuperPacket};
use meshrouter::core::wire::traffic::{
    KIND_DATA, KIND_LOOKUP_REPLY, KIND_PATH_BROKEN, KIND_SESSION, Traffic,
};
use meshrouter::core::wire::tree::{Announce, AnnounceAck, FLAG_DETACHED, SigReq, SigRes};

/// Most operations taken from one input.
const MAX_OPS: usize = 64;
/// Most rounds of datagrams moved between A and B per operation (a ping-pong must end).
const MAX_ROUNDS: usize = 32;
/// Most timer deadlines stepped through per time advance; past that, time jumps.
const MAX_STEPS: usize = 48;
/// A's seed; B's is one of two found by `b_seeds`.
const A_SEED: u8 = 0xa1;
const C_SEED: u8 = 0xc1;
const D_SEED: u8 = 0xd1;
/// C's port under B.
const C_PORT: u64 = 9;
const PASSWORD: &[u8] = b"fuzz overlay";

/// Keys by seed byte, and the signatures the harness makes with them, made once per process.
/// Ed25519 signatures are deterministic, so a cached one is exactly what signing again would give:
/// runs stay the same, only faster (key derivation and signing are much of a run's cost under the
/// sanitizer).
#[derive(Default)]
struct Cache {
    keys: HashMap<u8, (NodeKey, PublicKey)>,
    signatures: HashMap<(u8, Vec<u8>), [u8; 64]>,
    attestations: HashMap<(u8, PublicKey), [u8; 64]>,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

fn with_key<T>(seed: u8, f: impl FnOnce(&NodeKey, &PublicKey) -> T) -> T {
    CACHE.with_borrow_mut(|cache| {
        let (key, public) = cache.keys.entry(seed).or_insert_with(|| {
            let key = NodeKey::from_seed(&[seed; 32]);
            let public = key.public_key();
            (key, public)
        });
        f(key, public)
    })
}

fn node_key(seed: u8) -> NodeKey {
    with_key(seed, |key, _| key.duplicate())
}

fn public_key(seed: u8) -> PublicKey {
    with_key(seed, |_, public| *public)
}

/// `seed`'s key signs `message`.
fn sign(seed: u8, message: &[u8]) -> [u8; 64] {
    if let Some(s) =
        CACHE.with_borrow(|cache| cache.signatures.get(&(seed, message.to_vec())).copied())
    {
        return s;
    }
    let signature = with_key(seed, |key, _| key.sign(message));
    CACHE.with_borrow_mut(|cache| {
        if cache.signatures.len() >= 4096 {
            cache.signatures.clear();
        }
        cache.signatures.insert((seed, message.to_vec()), signature);
    });
    signature
}

/// `seed`'s key attests that it is linked to `peer`.
fn attestation(seed: u8, peer: &PublicKey) -> [u8; 64] {
    if let Some(s) = CACHE.with_borrow(|cache| cache.attestations.get(&(seed, *peer)).copied()) {
        return s;
    }
    let signature = with_key(seed, |key, _| attest(key, peer));
    CACHE.with_borrow_mut(|cache| cache.attestations.insert((seed, *peer), signature));
    signature
}

/// Seeds for B: the first whose key is below A's (B is the root) and the first above (A is).
fn b_seeds(a: &PublicKey) -> [u8; 2] {
    static SEEDS: std::sync::OnceLock<[u8; 2]> = std::sync::OnceLock::new();
    *SEEDS.get_or_init(|| {
        let below = |want: bool| {
            (0xb0..=0xff)
                .find(|&s| (public_key(s) < *a) == want)
                .expect("a seed on each side")
        };
        [below(true), below(false)]
    })
}

/// Reads fields from the input; past its end every field is zero.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    fn u32(&mut self) -> u32 {
        u32::from(self.u16()) << 16 | u32::from(self.u16())
    }

    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) << 32 | u64::from(self.u32())
    }

    fn bool(&mut self) -> bool {
        self.u8() & 1 != 0
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for b in &mut out {
            *b = self.u8();
        }
        out
    }

    /// Up to `n` bytes (fewer at the end of the input).
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    /// A length-prefixed byte string: one length byte, or two if its top bit is set.
    fn blob(&mut self) -> &'a [u8] {
        let first = self.u8();
        let len = if first & 0x80 == 0 {
            usize::from(first)
        } else {
            usize::from(first & 0x7f) << 8 | usize::from(self.u8())
        };
        self.bytes(len)
    }
}

/// A node we hold the key of, with the sessions it runs (B's own sessions, or C's).
struct Endpoint {
    seed: u8,
    key: NodeKey,
    me: PublicKey,
    rng: Rng,
    sessions: Sessions,
}

impl Endpoint {
    fn new(seed: u8, password: Option<PasswordKey>, now: Instant) -> Self {
        Self {
            seed,
            me: public_key(seed),
            key: node_key(seed),
            rng: Rng::from_seed([seed ^ 0x55; 32]),
            sessions: Sessions::new(password, 1_000 + u64::from(seed), false, now),
        }
    }
}

struct World {
    now: Instant,
    a: Node,
    a_key: PublicKey,
    a_link: LinkId,
    /// B's link, tree and sessions (B's own key is `b.key`).
    b: Endpoint,
    b_link: Link,
    b_tree: Tree,
    c: Endpoint,
    d: PublicKey,
    /// Datagrams on the wire, each way.
    to_a: Vec<Vec<u8>>,
    to_b: Vec<Vec<u8>>,
    /// The last datagram B sent (for replays and bit flips).
    last_b_datagram: Vec<u8>,
    /// The last `SigReq` A sent, which B may answer validly.
    last_sig_req: Option<SigReq>,
    /// The last lookup A sent.
    last_lookup: Option<Lookup>,
    /// Versions of the subtree deltas and neighbour lists B sends.
    b_version: u64,
    a_up: bool,
    b_up: bool,
    delivered: u64,
    frames_sealed: u64,
}

/// Takes a frame (messages, each `type length body`) and calls `f` with each parsed message.
fn for_each_message(frame: &[u8], mut f: impl FnMut(Message<'_>)) {
    for message in Messages::new(frame) {
        match message {
            Ok(m) => f(m),
            Err(_) => break,
        }
    }
}

fn encode(messages: &[Message<'_>]) -> Vec<u8> {
    let mut frame = Vec::new();
    for m in messages {
        m.encode(&mut frame);
    }
    frame
}

impl World {
    /// A and B with a link between them, handshake done and the tree settled. `config`: bit 0, B
    /// initiates (else A does); bit 1, B's key is the higher one (else B is the root); bit 2, a closed
    /// overlay (every packet in a session, also to the neighbour); bit 3, small link MTU (A and B
    /// fragment); bit 4, each side pins the other's key.
    fn new(config: u8, trace: bool) -> Self {
        let now = Instant::from_micros(1_000);
        let b_initiates = config & 1 != 0;
        let password = (config & 4 != 0).then(|| {
            // Stretched once per process: Argon2id per input would dominate the run.
            static KEY: std::sync::OnceLock<PasswordKey> = std::sync::OnceLock::new();
            KEY.get_or_init(|| PasswordKey::derive(PASSWORD)).clone()
        });
        let mtu = if config & 8 != 0 { 400 } else { 1280 };
        let pin = config & 16 != 0;

        let a_node_key = node_key(A_SEED);
        let a_key = public_key(A_SEED);
        let a_config = NodeConfig {
            seq_base: 1,
            group_password: password.clone(),
            session_aes_gcm: false,
        };
        let mut a = Node::new(a_node_key, a_config, [A_SEED; 32], now);

        let b_seed = b_seeds(&a_key)[usize::from(config & 2 != 0)];
        let mut b = Endpoint::new(b_seed, password.clone(), now);
        let c = Endpoint::new(C_SEED, password, now);
        let d = public_key(D_SEED);

        let a_params = LinkParams {
            initiate: !b_initiates,
            allowed_keys: if pin { vec![b.me] } else { Vec::new() },
            mtu,
            ..LinkParams::default()
        };
        let a_link = a.open_link(now, a_params);
        let b_params = LinkParams {
            initiate: b_initiates,
            allowed_keys: if pin { vec![a_key] } else { Vec::new() },
            mtu,
            ..LinkParams::default()
        };
        let b_link = Link::new(b_params, now, 1_000);
        let b_tree = Tree::new(&b.key, 2, now, &mut b.rng);
        let mut world = Self {
            now,
            a,
            a_key,
            a_link,
            b,
            b_link,
            b_tree,
            c,
            d,
            to_a: Vec::new(),
            to_b: Vec::new(),
            last_b_datagram: Vec::new(),
            last_sig_req: None,
            last_lookup: None,
            b_version: 1,
            a_up: false,
            b_up: false,
            delivered: 0,
            frames_sealed: 0,
        };
        // The initiator's first timer sends the initiation; then the tree, filters and neighbour
        // lists settle over a virtual second.
        world.timers();
        world.pump();
        world.advance(Duration::from_millis(100));
        assert!(
            world.a_up && world.b_up,
            "handshake did not complete (A up {}, B up {})",
            world.a_up,
            world.b_up
        );
        let a_link = world.a.link(world.a_link).expect("A's link");
        assert!(a_link.is_up() && a_link.peer() == Some(world.b.me));
        assert!(world.a.peers().any(|p| *p == world.b.me));
        assert!(world.b_link.is_up());
        if trace {
            eprintln!(
                "node_link: config {config:#04x}: link up; A rx {} datagrams, root {:?}, A coords {:?}, B coords {:?}, A stats {:?}",
                a_link.stats().rx_datagrams,
                world.a.tree().root().map(|k| k == world.b.me),
                world.a.tree().coords(),
                world.b_tree.coords(),
                world.a.stats(),
            );
        }
        world
    }

    fn c_coords(&self) -> Vec<u64> {
        let mut coords = self.b_tree.coords().clone();
        coords.push(C_PORT);
        coords
    }

    /// A key chosen by the input: one of the four nodes, or arbitrary bytes.
    fn key(&self, input: &mut Input<'_>) -> PublicKey {
        match input.u8() % 5 {
            0 => self.a_key,
            1 => self.b.me,
            2 => self.c.me,
            3 => self.d,
            _ => PublicKey::from_bytes(input.array()),
        }
    }

    /// The seed of A, B, C or D, chosen by the input (for signatures).
    fn signer(&self, input: &mut Input<'_>) -> u8 {
        match input.u8() % 4 {
            0 => A_SEED,
            1 => self.b.seed,
            2 => C_SEED,
            _ => D_SEED,
        }
    }

    /// Coordinates chosen by the input: a node's real ones, or arbitrary.
    fn coords(&self, input: &mut Input<'_>) -> Vec<u64> {
        match input.u8() % 5 {
            0 => self.a.tree().coords().clone(),
            1 => self.b_tree.coords().clone(),
            2 => self.c_coords(),
            3 => Vec::new(),
            _ => {
                let n = usize::from(input.u8() % 8);
                (0..n).map(|_| u64::from(input.u16())).collect()
            }
        }
    }

    /// A lookup target chosen by the input.
    fn target(&self, input: &mut Input<'_>) -> [u8; 32] {
        match input.u8() % 4 {
            0 => *PartialKey::canonical(&self.a_key).as_padded_key(),
            1 => *PartialKey::canonical(&self.c.me).as_padded_key(),
            2 => *PartialKey::canonical(&self.d).as_padded_key(),
            _ => input.array(),
        }
    }

    /// An IPv6 packet between two of the nodes (or arbitrary addresses), as the input chooses.
    fn packet(&self, input: &mut Input<'_>) -> Vec<u8> {
        let address = |input: &mut Input<'_>| -> [u8; 16] {
            match input.u8() % 6 {
                0 => node_address(&self.a_key).octets(),
                1 => node_address(&self.b.me).octets(),
                2 => node_address(&self.c.me).octets(),
                3 => node_address(&self.d).octets(),
                4 => {
                    let mut host = node_subnet(&self.c.me).network().octets();
                    host[15] = input.u8();
                    host
                }
                _ => input.array(),
            }
        };
        let src = address(input);
        let dst = address(input);
        let payload = input.blob();
        let mut packet = vec![0u8; 40];
        packet[0] = 0x60 | (input.u8() & 0x0f);
        packet[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
        packet[6] = input.u8();
        packet[7] = 64;
        packet[8..24].copy_from_slice(&src);
        packet[24..40].copy_from_slice(&dst);
        packet.extend_from_slice(payload);
        if input.u8() & 0x0f == 0 {
            // Now and then a truncated or non-IPv6 one.
            let keep = usize::from(input.u8()).min(packet.len());
            packet.truncate(keep);
        }
        packet
    }

    /// One message built from the input: encoded with the core's own encoders (valid structure,
    /// often valid signatures), or raw.
    fn message(&mut self, input: &mut Input<'_>, out: &mut Vec<u8>) {
        let op = input.u8();
        match op % 18 {
            0 => Message::Keepalive(Keepalive {
                timestamp_ms: input.u32(),
                echo_timestamp_ms: input.u32(),
                echo_delay_ms: input.u16(),
                flags: input.u8(),
            })
            .encode(out),
            1 => Message::Fragment(Fragment {
                id: input.u32() % 4,
                index: input.u8() % 4,
                count: input.u8() % 5,
                data: input.blob(),
            })
            .encode(out),
            2 => {
                // Fields are read whichever is chosen, so that the input's layout does not depend
                // on the state.
                let use_last = input.bool();
                let made_up = SigReq {
                    seq: input.u64(),
                    nonce: input.u64(),
                };
                let req = self.last_sig_req.filter(|_| use_last).unwrap_or(made_up);
                Message::SigReq(req).encode(out);
            }
            3 => {
                // A parent signature: for A's latest request (valid, signed by the chosen key) or
                // for made-up numbers.
                let use_last = input.bool();
                let made_up = (input.u64(), input.u64());
                let (seq, nonce) = match self.last_sig_req.filter(|_| use_last) {
                    Some(r) => (r.seq, r.nonce),
                    None => made_up,
                };
                let port = u64::from(input.u16());
                let signer = self.signer(input);
                let psig = sign(
                    signer,
                    &Announce::signed_bytes(&self.a_key, &public_key(signer), seq, nonce, port, 0),
                );
                Message::SigRes(SigRes {
                    seq,
                    nonce,
                    port,
                    psig,
                })
                .encode(out);
            }
            4 => {
                // A signed announcement for any topology claim between the nodes we hold keys of.
                let signer = self.signer(input);
                let parent = self.signer(input);
                let root = input.bool();
                let parent = if root { signer } else { parent };
                let seq = match input.u8() % 3 {
                    0 => input.u64(),
                    1 => 1 + u64::from(input.u8()),
                    _ => u64::MAX - u64::from(input.u8()),
                };
                let nonce = input.u64();
                let port = if root { 0 } else { u64::from(input.u16()) };
                let flags = input.u8() & (FLAG_DETACHED | 0x02);
                let (key, parent_key) = (public_key(signer), public_key(parent));
                // A detached one names the best key heard of: one of the fuzz keys, or a lower one.
                let best = (flags & FLAG_DETACHED != 0).then(|| match input.u8() % 3 {
                    0 => key,
                    1 => public_key(input.u8()),
                    _ => PublicKey::from_bytes([0; 32]),
                });
                let mut announce = Announce {
                    key,
                    parent: parent_key,
                    seq,
                    nonce,
                    port,
                    flags,
                    best,
                    psig: [0; 64],
                    sig: [0; 64],
                };
                let signed = announce.signed();
                announce.psig = sign(parent, &signed);
                announce.sig = sign(signer, &signed);
                if input.u8() & 7 == 0 {
                    announce.sig[usize::from(input.u8()) % 64] ^= 1;
                }
                Message::Announce(announce).encode(out);
            }
            5 => {
                // One of the announcements B holds (A's own ancestry among them), perhaps altered.
                let held: Vec<Announce> = self.b_tree.announcements().copied().collect();
                if held.is_empty() {
                    return;
                }
                let mut announce = held[usize::from(input.u8()) % held.len()];
                match input.u8() % 6 {
                    0 => {}
                    1 => announce.seq = announce.seq.wrapping_add(u64::from(input.u8())),
                    2 => announce.port = u64::from(input.u16()),
                    3 => announce.flags ^= input.u8(),
                    4 => announce.psig[usize::from(input.u8()) % 64] ^= 0x80,
                    _ => announce.parent = self.key(input),
                }
                Message::Announce(announce).encode(out);
            }
            6 => {
                let n = usize::from(input.u8() % 4);
                let entries = (0..n).map(|_| (self.key(input), input.u64())).collect();
                Message::AnnounceAck(AnnounceAck { entries }).encode(out);
            }
            7 | 8 => {
                let dest_path = self.coords(input);
                let src_path = self.coords(input);
                let dest_key = self.key(input);
                let src_key = self.key(input);
                let watermark = match input.u8() % 3 {
                    0 => u64::MAX,
                    1 => u64::from(input.u8()),
                    _ => input.u64(),
                };
                let kind = match input.u8() % 5 {
                    0 => KIND_DATA,
                    1 => KIND_LOOKUP_REPLY,
                    2 => KIND_PATH_BROKEN,
                    3 => KIND_SESSION,
                    _ => input.u8(),
                };
                let payload: Vec<u8> = match (kind, input.u8() % 2) {
                    (KIND_LOOKUP_REPLY, 0) => {
                        // A lookup reply signed by the chosen key, for A's last lookup or a made-up
                        // nonce.
                        let signer = self.signer(input);
                        let use_last = input.bool();
                        let made_up = input.u64();
                        let nonce = match &self.last_lookup {
                            Some(l) if use_last => l.nonce,
                            _ => made_up,
                        };
                        // Signed over the packet's source path, as a reply's coordinates are.
                        let signed = LookupReply::signed_bytes(
                            &self.a_key,
                            &public_key(signer),
                            nonce,
                            &src_path,
                        );
                        let mut payload = Vec::new();
                        LookupReply {
                            nonce,
                            signature: sign(signer, &signed),
                        }
                        .encode(&mut payload);
                        payload
                    }
                    (KIND_PATH_BROKEN, 0) => self.key(input).as_bytes().to_vec(),
                    _ => input.blob().to_vec(),
                };
                Message::Traffic(Traffic {
                    dest_path,
                    src_path,
                    dest_key,
                    src_key,
                    watermark,
                    kind,
                    payload: &payload,
                })
                .encode(out);
            }
            9 => {
                let mode = input.u8() % 3;
                let mut added: Vec<u32> = match mode {
                    0 => vec![tag(&self.target(input)), tag(&self.target(input))],
                    1 => (0..input.u8() % 8).map(|_| input.u64() as u32).collect(),
                    _ => (0..input.u8()).map(|_| input.u64() as u32).collect(),
                };
                added.sort_unstable();
                added.dedup();
                let version = self.version(input).max(1);
                let base = if mode == 0 {
                    0
                } else {
                    version.saturating_sub(1 + u64::from(input.u8() % 3))
                };
                Message::SubtreeDelta(Box::new(SubtreeDelta {
                    version,
                    base,
                    last: mode != 2 || input.u8() % 2 == 0,
                    added,
                    removed: Vec::new(),
                }))
                .encode(out);
            }
            10 => Message::SubtreeAck(VersionAck {
                version: self.version(input),
            })
            .encode(out),
            11 => Message::Lookup(Lookup {
                nonce: input.u64(),
                source: self.key(input),
                source_path: self.coords(input),
                target: self.target(input),
            })
            .encode(out),
            12 => {
                // A neighbour list with B's attestation for A and entries whose proofs are valid or
                // not.
                let version = self.version(input);
                let b_says = if input.u8() & 7 == 0 {
                    input.array()
                } else {
                    attestation(self.b.seed, &self.a_key)
                };
                let n = usize::from(input.u8() % 4);
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let node = self.signer(input);
                    let listed = if input.u8() & 3 == 0 {
                        self.key(input)
                    } else {
                        public_key(node)
                    };
                    entries.push((listed, attestation(node, &self.b.me)));
                }
                Message::Neighbors(Neighbors {
                    version,
                    attestation: b_says,
                    entries,
                })
                .encode(out);
            }
            13 => Message::NeighborsAck(VersionAck {
                version: self.version(input),
            })
            .encode(out),
            14 => {
                let packet = self.packet(input);
                Message::Packet(&packet).encode(out);
            }
            15 => Message::Service(Service {
                port: input.u16(),
                payload: input.blob(),
            })
            .encode(out),
            16 => {
                let packet = self.packet(input);
                Message::TcpSuperPacket(TcpSuperPacket {
                    mss: input.u16(),
                    ecn: input.bool(),
                    packet: &packet,
                })
                .encode(out);
            }
            _ => {
                // Raw: a type byte (any, unknown ones included), a length that may lie, a body.
                out.push(input.u8());
                let body = input.blob();
                let len = if input.u8() & 7 == 0 {
                    usize::from(input.u8())
                } else {
                    body.len()
                };
                meshrouter::core::wire::put_varint(out, len as u64);
                out.extend_from_slice(body);
            }
        }
    }

    /// A version for B's filters and neighbour lists: the next one, an old one or any.
    fn version(&mut self, input: &mut Input<'_>) -> u64 {
        match input.u8() % 3 {
            0 => {
                self.b_version += 1;
                self.b_version
            }
            1 => self.b_version.saturating_sub(u64::from(input.u8())),
            _ => input.u64(),
        }
    }

    /// B seals `frame` with the link keys and sends it to A.
    fn b_send(&mut self, frame: &[u8], traffic: bool) {
        if self.b_link.send(self.now, frame, traffic) {
            self.frames_sealed += 1;
        }
        self.drain_b_link();
    }

    /// Moves B's link datagrams to the wire and acts on its events.
    fn drain_b_link(&mut self) {
        while let Some(d) = self.b_link.poll_datagram() {
            self.last_b_datagram.clone_from(&d);
            self.to_a.push(d);
        }
        while let Some(e) = self.b_link.poll_event() {
            match e {
                meshrouter::core::link::LinkEvent::Up(peer) => {
                    self.b_up = true;
                    self.b_tree
                        .add_peer(self.now, peer, None, Duration::from_secs(1));
                    self.b_tree.resync_peer(&peer);
                    self.b_greet();
                }
                meshrouter::core::link::LinkEvent::Down(peer) => {
                    self.b_up = false;
                    self.b_tree.remove_peer(self.now, &peer);
                }
            }
        }
    }

    /// What B tells A when their link comes up: a subtree set with C's key in it and a neighbour
    /// list with C, so that A looks C up through B and routes to it via B.
    fn b_greet(&mut self) {
        let mut added = vec![
            tag(PartialKey::canonical(&self.b.me).as_padded_key()),
            tag(PartialKey::canonical(&self.c.me).as_padded_key()),
        ];
        added.sort_unstable();
        added.dedup();
        self.b_version += 1;
        let frame = encode(&[
            Message::SubtreeDelta(Box::new(SubtreeDelta {
                version: self.b_version,
                base: 0,
                last: true,
                added,
                removed: Vec::new(),
            })),
            Message::Neighbors(Neighbors {
                version: self.b_version,
                attestation: attestation(self.b.seed, &self.a_key),
                entries: vec![(self.c.me, attestation(C_SEED, &self.b.me))],
            }),
        ]);
        self.b_send(&frame, false);
    }

    /// B takes a datagram from A.
    fn b_receive(&mut self, mut datagram: Vec<u8>) {
        let result =
            self.b_link
                .handle_datagram(self.now, &mut datagram, &self.b.key, &mut self.b.rng);
        let frame = match result {
            Ok(Some(frame)) => frame.to_vec(),
            _ => Vec::new(),
        };
        self.drain_b_link();
        if !frame.is_empty() {
            self.b_frame(&frame);
        }
    }

    /// B acts on a frame from A as a well-behaved neighbour would.
    fn b_frame(&mut self, frame: &[u8]) {
        let a = self.a_key;
        let mut replies: Vec<u8> = Vec::new();
        let mut traffic: Vec<(PublicKey, Vec<u64>, u8, Vec<u8>)> = Vec::new();
        let mut lookups = Vec::new();
        let mut keepalives = Vec::new();
        for_each_message(frame, |m| match m {
            Message::Keepalive(k) => keepalives.push(k),
            Message::SigReq(r) => {
                self.last_sig_req = Some(r);
                self.b_tree.handle_sig_req(a, r);
            }
            Message::SigRes(r) => self.b_tree.handle_sig_res(a, r),
            Message::Announce(ann) => {
                let _ = self
                    .b_tree
                    .handle_announce(self.now, &self.b.key, &mut self.b.rng, a, ann);
            }
            Message::AnnounceAck(ack) => self.b_tree.handle_ack(&a, &ack),
            Message::SubtreeDelta(d) => Message::SubtreeAck(VersionAck { version: d.version })
            .encode(&mut replies),
            Message::Neighbors(list) => Message::NeighborsAck(VersionAck {
                version: list.version,
            })
            .encode(&mut replies),
            Message::Lookup(l) => lookups.push(l),
            Message::Traffic(t) => {
                traffic.push((t.dest_key, t.src_path.clone(), t.kind, t.payload.to_vec()))
            }
            _ => {}
        });
        for k in keepalives {
            self.b_link.handle_keepalive(self.now, &k);
        }
        if !replies.is_empty() {
            self.b_send(&replies, false);
        }
        for lookup in lookups {
            self.answer_lookup(&lookup);
            self.last_lookup = Some(lookup);
        }
        for (dest, src_path, kind, mut payload) in traffic {
            if kind != KIND_SESSION {
                continue;
            }
            // Session traffic for B itself (a closed overlay) or for C.
            let is_c = if dest == self.c.me {
                true
            } else if dest == self.b.me {
                false
            } else {
                continue;
            };
            let now = self.now;
            let endpoint = if is_c { &mut self.c } else { &mut self.b };
            let received = endpoint.sessions.receive(
                now,
                a,
                &src_path,
                &mut payload,
                &endpoint.key,
                &mut endpoint.rng,
            );
            let replies = received.replies;
            for reply in replies {
                self.route_to_a(is_c, KIND_SESSION, &reply);
            }
        }
    }

    /// B answers a lookup for B or C the way those nodes would: a signed reply routed to A.
    fn answer_lookup(&mut self, lookup: &Lookup) {
        for is_c in [false, true] {
            let (seed, coords) = if is_c {
                (C_SEED, self.c_coords())
            } else {
                (self.b.seed, self.b_tree.coords().clone())
            };
            let key = public_key(seed);
            if lookup.target != *PartialKey::canonical(&key).as_padded_key() {
                continue;
            }
            let signed = LookupReply::signed_bytes(&lookup.source, &key, lookup.nonce, &coords);
            let mut payload = Vec::new();
            LookupReply {
                nonce: lookup.nonce,
                signature: sign(seed, &signed),
            }
            .encode(&mut payload);
            self.route_to_a(is_c, KIND_LOOKUP_REPLY, &payload);
        }
    }

    /// Sends `payload` from C (or B) to A as routed traffic over the link.
    fn route_to_a(&mut self, from_c: bool, kind: u8, payload: &[u8]) {
        let (src_key, src_path) = if from_c {
            (self.c.me, self.c_coords())
        } else {
            (self.b.me, self.b_tree.coords().clone())
        };
        let mut frame = Vec::new();
        Message::Traffic(Traffic {
            dest_path: self.a.tree().coords().clone(),
            src_path,
            dest_key: self.a_key,
            src_key,
            watermark: u64::MAX,
            kind,
            payload,
        })
        .encode(&mut frame);
        self.b_send(&frame, true);
    }

    /// C (or B) sends a session frame to A: the session starts with a handshake the first time, and
    /// the frame waits for it.
    fn session_send(&mut self, from_c: bool, frame: &[u8]) {
        let now = self.now;
        let a = self.a_key;
        let endpoint = if from_c { &mut self.c } else { &mut self.b };
        let payloads = endpoint
            .sessions
            .send(now, a, &[frame], &endpoint.key, &mut endpoint.rng);
        for payload in payloads {
            self.route_to_a(from_c, KIND_SESSION, &payload);
        }
    }

    /// Settles B's tree and sends what it queued.
    fn b_tree_flush(&mut self) {
        self.b_tree.settle(self.now, &self.b.key, &mut self.b.rng);
        let mut frame = Vec::new();
        while let Some((peer, message)) = self.b_tree.poll_message() {
            if peer == self.a_key {
                message.encode(&mut frame);
            }
        }
        while self.b_tree.poll_event().is_some() {}
        if !frame.is_empty() {
            self.b_send(&frame, false);
        }
    }

    /// Drains A's outputs; its datagrams go on the wire to B.
    fn drain_a(&mut self) {
        while let Some(t) = self.a.poll_transmit() {
            if t.link == self.a_link {
                self.to_b.push(t.payload);
            } else {
                self.a.recycle(t.link, t.payload);
            }
        }
        while let Some(d) = self.a.poll_deliver() {
            self.delivered += 1;
            // What A hands its host as a packet must be an IPv6 packet from the sender's address
            // (or its /64) to A's (or A's /64): the session or link proved who sent it, and the
            // node checks the packet does not claim otherwise.
            if matches!(
                d.kind,
                DeliveryKind::Packet | DeliveryKind::TcpSuperPacket { .. }
            ) {
                let p = &d.payload;
                assert!(p.len() >= 40 && p[0] >> 4 == 6, "not IPv6: {p:02x?}");
                let belongs = |key: &PublicKey, address: &[u8]| {
                    address == node_address(key).octets()
                        || node_subnet(key).contains(&std::net::Ipv6Addr::from(
                            <[u8; 16]>::try_from(address).unwrap_or_default(),
                        ))
                };
                assert!(belongs(&d.source, &p[8..24]), "source not the sender's");
                assert!(belongs(&self.a_key, &p[24..40]), "destination not A's");
            }
        }
        while let Some(e) = self.a.poll_event() {
            match e {
                Event::LinkUp(id, peer) if id == self.a_link => {
                    assert_eq!(peer, self.b.me);
                    self.a_up = true;
                }
                Event::LinkDown(id, _) if id == self.a_link => self.a_up = false,
                _ => {}
            }
        }
    }

    /// Moves datagrams both ways until the wire is quiet (or a bound is reached).
    fn pump(&mut self) {
        for _ in 0..MAX_ROUNDS {
            self.drain_a();
            self.b_tree_flush();
            if self.to_a.is_empty() && self.to_b.is_empty() {
                return;
            }
            for d in std::mem::take(&mut self.to_b) {
                self.b_receive(d);
            }
            self.b_tree_flush();
            for mut d in std::mem::take(&mut self.to_a) {
                self.a.handle_link_datagram(self.now, self.a_link, &mut d);
                self.drain_a();
            }
        }
    }

    /// B's next deadline.
    fn b_timeout(&self) -> Option<Instant> {
        let mut next = self.b_link.poll_timeout(self.now);
        next = earliest(next, self.b_tree.poll_timeout());
        next = earliest(next, self.b.sessions.poll_timeout(self.now));
        earliest(next, self.c.sessions.poll_timeout(self.now))
    }

    /// Runs every timer due at `self.now`, on both sides.
    fn timers(&mut self) {
        let now = self.now;
        if self.a.poll_timeout().is_some_and(|t| t <= now) {
            self.a.handle_timeout(now);
        }
        if self.b_link.poll_timeout(now).is_some_and(|t| t <= now) {
            self.b_link
                .handle_timeout(now, &self.b.key, &mut self.b.rng);
            self.drain_b_link();
        }
        if self.b_tree.poll_timeout().is_some_and(|t| t <= now) {
            self.b_tree
                .handle_timeout(now, &self.b.key, &mut self.b.rng);
        }
        for from_c in [false, true] {
            let endpoint = if from_c { &mut self.c } else { &mut self.b };
            if endpoint
                .sessions
                .poll_timeout(now)
                .is_some_and(|t| t <= now)
            {
                let out = endpoint
                    .sessions
                    .handle_timeout(now, &endpoint.key, &mut endpoint.rng);
                for (dest, payload) in out {
                    if dest == self.a_key {
                        self.route_to_a(from_c, KIND_SESSION, &payload);
                    }
                }
            }
        }
    }

    /// Advances virtual time by `by`, stepping through the deadlines on the way (a bounded number
    /// of them; then it jumps).
    fn advance(&mut self, by: Duration) {
        let target = self.now + by;
        for _ in 0..MAX_STEPS {
            let next = earliest(self.a.poll_timeout(), self.b_timeout());
            match next {
                Some(t) if t <= target => {
                    self.now = self.now.max(t);
                    self.timers();
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = target;
        self.timers();
        self.pump();
    }

    /// Delivers `datagram` to A as it is (not from B's link: unauthenticated).
    fn raw_to_a(&mut self, mut datagram: Vec<u8>) {
        self.a
            .handle_link_datagram(self.now, self.a_link, &mut datagram);
        self.pump();
    }

    fn op(&mut self, input: &mut Input<'_>) {
        match input.u8() % 14 {
            // A frame of arbitrary bytes, sealed by B.
            0 => {
                let frame = input.blob().to_vec();
                let traffic = input.bool();
                self.b_send(&frame, traffic);
                self.pump();
            }
            // A frame of messages built from the input, sealed by B (one frame, or several
            // messages spread over frames sent back to back).
            1 | 2 | 3 => {
                let n = 1 + usize::from(input.u8() % 6);
                let mut frame = Vec::new();
                for _ in 0..n {
                    self.message(input, &mut frame);
                }
                self.b_send(&frame, false);
                self.pump();
            }
            // A raw datagram, unauthenticated: arbitrary bytes, or B's last datagram replayed or
            // with a bit flipped.
            4 => {
                let datagram = match input.u8() % 3 {
                    0 => input.blob().to_vec(),
                    1 => self.last_b_datagram.clone(),
                    _ => {
                        let mut d = self.last_b_datagram.clone();
                        if !d.is_empty() {
                            let at = usize::from(input.u16()) % d.len();
                            d[at] ^= 1 << (input.u8() % 8);
                        }
                        d
                    }
                };
                self.raw_to_a(datagram);
            }
            // Time passes: a little, a lot (past keepalives, probes, tree refreshes) or very much
            // (past rekeys and key expiry).
            5 | 6 => {
                let by = match input.u8() % 4 {
                    0 | 1 => Duration::from_millis(u64::from(input.u8()) * 10),
                    2 => Duration::from_millis(u64::from(input.u16())),
                    _ => Duration::from_secs(u64::from(input.u8())),
                };
                self.advance(by);
            }
            // A's host sends a packet (to B, C, D, A or elsewhere): direct to the neighbour, or a
            // lookup and a session.
            7 | 8 => {
                let packet = self.packet(input);
                if input.u8() & 3 == 0 {
                    let mss = input.u16();
                    let ecn = input.bool();
                    self.a
                        .handle_local_super_packet(self.now, &packet, mss, ecn);
                } else {
                    self.a.handle_local_packet(self.now, &packet);
                }
                self.pump();
            }
            // A sends a service message.
            9 => {
                let dest = self.key(input);
                let port = input.u16();
                let payload = input.blob().to_vec();
                self.a.send_service(self.now, dest, port, &payload);
                self.pump();
            }
            // C (or B) sends A a session frame: messages built from the input, or raw bytes.
            10 | 11 => {
                let from_c = input.u8() & 3 != 0;
                let mut frame = Vec::new();
                if input.bool() {
                    frame.extend_from_slice(input.blob());
                } else {
                    for _ in 0..1 + input.u8() % 3 {
                        self.message(input, &mut frame);
                    }
                }
                self.session_send(from_c, &frame);
                self.pump();
            }
            // Routed traffic from C (or B) to A with a raw payload of the chosen kind.
            12 => {
                let from_c = input.bool();
                let kind = input.u8() % 5;
                let payload = input.blob().to_vec();
                self.route_to_a(from_c, kind, &payload);
                self.pump();
            }
            // B's link sends a frame larger than the MTU: fragments, joined by A.
            _ => {
                let mut frame = Vec::new();
                for _ in 0..1 + input.u8() % 3 {
                    self.message(input, &mut frame);
                }
                // Padded with a message of a type A does not know (skipped).
                let pad = usize::from(input.u16() % 4096);
                frame.push(0x7f);
                meshrouter::core::wire::put_varint(&mut frame, pad as u64);
                frame.resize(frame.len() + pad, 0);
                self.b_send(&frame, true);
                self.pump();
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let trace = std::env::var_os("NODE_LINK_TRACE").is_some();
    let mut input = Input(data);
    let mut world = World::new(input.u8(), trace);
    let rx_before = world
        .a
        .link(world.a_link)
        .map_or(0, |l| l.stats().rx_datagrams);
    let mut ops = 0;
    while !input.is_empty() && ops < MAX_OPS {
        world.op(&mut input);
        ops += 1;
    }
    if trace {
        let link = world.a.link(world.a_link);
        eprintln!(
            "node_link: {ops} ops, {} frames sealed by B; A link up {} (A {}, B {}), rx datagrams {} -> {}, delivered {}, sessions {}, paths {}, stats {:?}",
            world.frames_sealed,
            link.is_some_and(|l| l.is_up()),
            world.a_up,
            world.b_up,
            rx_before,
            link.map_or(0, |l| l.stats().rx_datagrams),
            world.delivered,
            world.a.sessions().len(),
            world.a.paths().iter().count(),
            world.a.stats(),
        );
    }
});
