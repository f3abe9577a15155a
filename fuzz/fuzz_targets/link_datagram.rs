//! Link datagrams straight off a UDP socket or Ethernet interface: parse totally; handshakes re-encode
//! to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshrouter::core::wire::datagram::Datagram;

fuzz_target!(|data: &[u8]| {
    match Datagram::parse(data) {
        Ok(Datagram::Init(init)) => assert_eq!(init.encode(), data),
        Ok(Datagram::Response(response)) => assert_eq!(response.encode(), data),
        Ok(Datagram::Data { header, sealed, .. }) => {
            assert_eq!(header.len() + sealed.len(), data.len())
        }
        Ok(Datagram::Cookie {
            receiver_index,
            cookie,
        }) => {
            assert_eq!(
                meshrouter::core::wire::datagram::encode_cookie(receiver_index, &cookie),
                data
            )
        }
        Err(_) => {}
    }
});
