//! A node as the IPv6 router of a LAN, so that phones and laptops join the mesh with no app: Router
//! Advertisements give them an address in the node's /64, routes to the mesh and the node as DNS
//! server. Sans-IO: the daemon sends what [`advertiser::Advertiser`] produces on a raw ICMPv6
//! socket and hands it the solicitations that arrive.

pub mod advertiser;
pub mod ra;
