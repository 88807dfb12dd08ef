//! Feeds arbitrary bytes, split into arbitrary chunks, to the stream decoder: it must
//! never panic and never buffer more than one frame (max length + 5) beyond a chunk.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ssf_codec::{HEADER_LEN, SsfCodec};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let max = 1024;
    let mut codec = SsfCodec::with_max_frame_length(max);
    let mut buf = BytesMut::new();
    let chunk = usize::from(split).max(1);
    for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    assert!(e.is_framing());
                    return;
                }
            }
        }
        assert!(buf.len() <= HEADER_LEN + max + chunk);
    }
    let _ = codec.decode_eof(&mut buf);
});
