//! Address parsing never panics, and what parses prints back to an equal address.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssf_codec::Address;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(addr) = text.parse::<Address>() {
            let printed = addr.to_string();
            let again: Address = printed.parse().expect("printed address parses");
            assert_eq!(again, addr);
        }
    }
});
