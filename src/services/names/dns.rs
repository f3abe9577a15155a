//! The DNS answers of a node, sans-IO: `.mesh` names and the reverse names of mesh addresses from
//! the [`NameTable`], everything else forwarded (when upstream servers are configured) or refused.
//! The message format is `simple-dns`'s; this file only decides. Total: any bytes give an answer
//! or nothing, never a panic.

use std::net::Ipv6Addr;

use simple_dns::rdata::{AAAA, PTR, RData};
use simple_dns::{CLASS, Name, Packet, PacketFlag, QCLASS, QTYPE, RCODE, ResourceRecord, TYPE};

use super::table::{NameTable, Resolution};

/// How long resolvers may cache our answers: names change rarely, but a released name should not
/// linger for long.
pub const TTL: u32 = 60;
/// Largest answer sent over UDP without EDNS (RFC 1035 §4.2.1); ours are far smaller.
pub const MAX_UDP_ANSWER: usize = 512;
/// The reverse zones of the mesh (`200::/7`: first byte 0x02 or 0x03).
const REVERSE_ZONES: [&str; 2] = ["2.0.ip6.arpa", "3.0.ip6.arpa"];

/// Who a node's responder answers: this node, loopback, link-local and LAN hosts (anything
/// outside `200::/7`), and in the mesh only its own address and /64, unless `allow_overlay`. So the
/// responder is never a service of the overlay (nor a reflector for it) unless configured to be.
#[derive(Debug, Clone, Copy)]
pub struct Admission {
    /// The node's address.
    pub address: Ipv6Addr,
    /// The node's routed /64.
    pub subnet: crate::core::address::Subnet,
    /// Answer other mesh nodes too.
    pub allow_overlay: bool,
}

impl Admission {
    /// True if a query from `source` is answered.
    pub fn admits(&self, source: std::net::IpAddr) -> bool {
        let std::net::IpAddr::V6(v6) = source else {
            return true;
        };
        // An IPv4-mapped source is an IPv4 host on a dual-stack socket: not the mesh.
        let v6 = v6.to_ipv4_mapped().map_or(v6, |_| Ipv6Addr::UNSPECIFIED);
        self.allow_overlay
            || v6.octets()[0] & 0xfe != 0x02
            || v6 == self.address
            || self.subnet.contains(&v6)
    }
}

/// What to do with a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Send this reply.
    Reply(Vec<u8>),
    /// Not ours: send the query to an upstream server and relay its answer.
    Forward,
    /// Not a query (a response, or too short to answer): say nothing.
    Ignore,
}

/// The answer to `query` from `table`; `forwarding` says whether upstream servers are configured.
pub fn answer(query: &[u8], table: &NameTable, forwarding: bool) -> Answer {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return Answer::Ignore;
    }
    if (query[2] >> 3) & 0x0f != 0 {
        return Answer::Reply(bare_reply(query, RCODE::NotImplemented));
    }
    let Ok(packet) = Packet::parse(query) else {
        return Answer::Reply(bare_reply(query, RCODE::FormatError));
    };
    let [question] = packet.questions.as_slice() else {
        return Answer::Reply(bare_reply(query, RCODE::FormatError));
    };
    let name = question.qname.to_string().to_ascii_lowercase();
    let name = name.strip_suffix('.').unwrap_or(&name);
    let class_in = matches!(question.qclass, QCLASS::CLASS(CLASS::IN) | QCLASS::ANY);
    let ours = if let Some(address) = reverse_name(name) {
        Some(match address {
            Some(addr) if class_in => Found::Pointer(table.reverse(&addr)),
            _ => Found::Nothing,
        })
    } else {
        match table.resolve(name) {
            Resolution::NotMesh => None,
            Resolution::NoSuchName => Some(Found::Nothing),
            Resolution::Address(addr, _) if class_in => Some(Found::Address(addr)),
            Resolution::Address(..) => Some(Found::Nothing),
        }
    };
    let Some(found) = ours else {
        return if forwarding {
            Answer::Forward
        } else {
            Answer::Reply(bare_reply(query, RCODE::Refused))
        };
    };
    let mut reply = Packet::new_reply(packet.id());
    reply.set_flags(PacketFlag::AUTHORITATIVE_ANSWER);
    if packet.has_flags(PacketFlag::RECURSION_DESIRED) {
        reply.set_flags(PacketFlag::RECURSION_DESIRED);
    }
    if forwarding {
        reply.set_flags(PacketFlag::RECURSION_AVAILABLE);
    }
    reply.questions.push(question.clone());
    let wants = |t: TYPE| matches!(question.qtype, QTYPE::ANY) || question.qtype == QTYPE::TYPE(t);
    let pointer;
    match &found {
        Found::Nothing => *reply.rcode_mut() = RCODE::NameError,
        Found::Address(addr) if wants(TYPE::AAAA) => {
            reply.answers.push(ResourceRecord::new(
                question.qname.clone(),
                CLASS::IN,
                TTL,
                RData::AAAA(AAAA {
                    address: u128::from(*addr),
                }),
            ));
        }
        Found::Pointer(Some(target)) if wants(TYPE::PTR) => {
            pointer = target.clone();
            let Ok(target) = Name::new(&pointer) else {
                return Answer::Reply(bare_reply(query, RCODE::ServerFailure));
            };
            reply.answers.push(ResourceRecord::new(
                question.qname.clone(),
                CLASS::IN,
                TTL,
                RData::PTR(PTR(target)),
            ));
        }
        Found::Pointer(None) => *reply.rcode_mut() = RCODE::NameError,
        // The name exists with no record of the asked type: NOERROR, no answer (NODATA).
        Found::Address(_) | Found::Pointer(_) => {}
    }
    match reply.build_bytes_vec_compressed() {
        Ok(bytes) if bytes.len() <= MAX_UDP_ANSWER => Answer::Reply(bytes),
        _ => Answer::Reply(bare_reply(query, RCODE::ServerFailure)),
    }
}

/// What the table holds for a name of ours.
enum Found {
    Address(Ipv6Addr),
    Pointer(Option<String>),
    Nothing,
}

/// For a name in the mesh's reverse zones: `Some(address)` if it names a whole address, `Some(None)`
/// for any other name in the zones; `None` outside them.
fn reverse_name(name: &str) -> Option<Option<Ipv6Addr>> {
    REVERSE_ZONES
        .iter()
        .find(|z| name == **z || name.ends_with(&format!(".{z}")))?;
    let Some(nibbles) = name.strip_suffix(".ip6.arpa") else {
        return Some(None);
    };
    let digits: Vec<&str> = nibbles.split('.').collect();
    if digits.len() != 32 {
        return Some(None);
    }
    let mut value: u128 = 0;
    for digit in digits.iter().rev() {
        let [d] = digit.as_bytes() else {
            return Some(None);
        };
        let Some(v) = char::from(*d).to_digit(16) else {
            return Some(None);
        };
        value = (value << 4) | u128::from(v);
    }
    Some(Some(Ipv6Addr::from(value)))
}

/// SERVFAIL for `query` (a query [`answer`] said to forward, which could not be): its header with
/// the response and recursion-available bits.
pub fn server_failure(query: &[u8]) -> Vec<u8> {
    let mut reply = bare_reply(query, RCODE::ServerFailure);
    reply[3] |= 0x80;
    reply
}

/// A reply with only a header: the query's id, opcode and RD flag, and `rcode` (for queries we
/// cannot or will not read further).
fn bare_reply(query: &[u8], rcode: RCODE) -> Vec<u8> {
    let mut header = [0u8; 12];
    let id_flags = query.get(..3).unwrap_or(&[0; 3]);
    header[..2].copy_from_slice(&id_flags[..2]);
    header[2] = 0x80 | (id_flags[2] & 0x79);
    header[3] = rcode as u8;
    header.to_vec()
}

#[cfg(test)]
mod tests;
