//! decode → encode → decode gives the same span.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssf_proto::wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(span) = wire::decode(data) {
        let bytes = wire::encode_to_vec(&span);
        assert_eq!(bytes.len(), wire::encoded_len(&span));
        let again = wire::decode(&bytes[..]).expect("our own encoding decodes");
        assert_eq!(again, span);
    }
});
