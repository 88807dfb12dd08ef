//! The datagram parser never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssf_codec::DatagramCodec;

fuzz_target!(|data: &[u8]| {
    let codec = DatagramCodec::new();
    if let Ok(mut span) = codec.decode(data) {
        ssf_proto::normalize(&mut span);
        let mut out = Vec::new();
        let _ = codec.encode(&span, &mut out);
    }
});
