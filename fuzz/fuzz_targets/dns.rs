//! DNS queries and name claims from anyone: any bytes give a reply, a forward or silence from the
//! responder (a FORMERR for what has a header but does not read), and any text reads as a claim or
//! an error and resolves or not, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshrouter::core::identity::PublicKey;
use meshrouter::services::names::dns::{Answer, MAX_UDP_ANSWER, answer};
use meshrouter::services::names::{Claim, NameTable};

fuzz_target!(|data: &[u8]| {
    let claim = Claim {
        since: 1,
        target: None,
        seen: vec![],
    };
    let table = NameTable::from_claims(
        [
            ("server".to_owned(), PublicKey::from_bytes([3; 32]), claim.clone()),
            ("server".to_owned(), PublicKey::from_bytes([4; 32]), claim),
        ],
        &|_| false,
    );
    let forwarding = data.first().is_some_and(|b| b & 1 == 1);
    match answer(data, &table, forwarding) {
        Answer::Reply(bytes) => {
            assert!(bytes.len() <= MAX_UDP_ANSWER);
            assert_eq!(bytes[..2], data[..2], "a reply carries the query's id");
            assert!(bytes[2] & 0x80 != 0, "a reply is a response");
        }
        Answer::Forward => assert!(forwarding),
        Answer::Ignore => {}
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(claim) = Claim::decode(text) {
            assert_eq!(Claim::decode(&claim.encode()), Ok(claim));
        }
        let _ = table.resolve(text);
    }
    if let Ok(bytes) = <[u8; 16]>::try_from(data) {
        let _ = table.reverse(&std::net::Ipv6Addr::from(bytes));
    }
});
