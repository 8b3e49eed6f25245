//! Zero-copy decoding of byte values.
//!
//! A decoder that holds a received frame as [`Bytes`] lends it for the duration of one decode
//! ([`decode_from`]); a value type that deserializes through [`bytes_from`] (as
//! [`crate::PackedBytes`] does) then becomes a slice of that frame, a reference-count bump,
//! instead of a fresh allocation and copy. Outside a lending decode, [`bytes_from`] copies, so
//! every format and every caller still works.

use bytes::Bytes;
use std::cell::RefCell;

thread_local! {
    static FRAME: RefCell<Option<Bytes>> = const { RefCell::new(None) };
}

/// Run `decode` on `frame`'s bytes with `frame` lent to the byte values decoded meanwhile: a
/// value that deserializes through borrowed bytes inside `frame` (as [`crate::PackedBytes`]
/// does) becomes a slice of `frame`, a reference-count bump instead of a copy. Transports call
/// this around their decode; outside it, such values copy, so every format still works.
pub fn decode_from<R>(frame: &Bytes, decode: impl FnOnce(&[u8]) -> R) -> R {
    /// Takes the frame back even if `decode` panics.
    struct Lent(Option<Bytes>);
    impl Drop for Lent {
        fn drop(&mut self) {
            let previous = self.0.take();
            FRAME.with(|f| *f.borrow_mut() = previous);
        }
    }
    let previous = FRAME.with(|f| f.borrow_mut().replace(frame.clone()));
    let _restore = Lent(previous);
    decode(frame)
}

/// `bytes` as [`Bytes`]: a slice of the lent frame when `bytes` lies inside it, else a copy.
pub fn bytes_from(bytes: &[u8]) -> Bytes {
    FRAME.with(|f| match &*f.borrow() {
        Some(frame) if contains(frame, bytes) => frame.slice_ref(bytes),
        _ => Bytes::copy_from_slice(bytes),
    })
}

fn contains(frame: &[u8], part: &[u8]) -> bool {
    let outer = frame.as_ptr_range();
    let inner = part.as_ptr_range();
    !part.is_empty() && outer.start <= inner.start && inner.end <= outer.end
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inside a lending decode a sub-slice shares the frame's memory; outside it is a copy.
    #[test]
    fn slices_share_the_lent_frame_and_copy_otherwise() {
        let frame = Bytes::from_static(b"0123456789");
        let inside = decode_from(&frame, |b| bytes_from(&b[2..5]));
        assert_eq!(&inside[..], b"234");
        assert_eq!(inside.as_ptr(), frame[2..].as_ptr());
        let other = b"234".to_vec();
        let copied = decode_from(&frame, |_| bytes_from(&other));
        assert_eq!(&copied[..], b"234");
        assert_ne!(copied.as_ptr(), frame[2..].as_ptr());
        let outside = bytes_from(&frame[2..5]);
        assert_ne!(outside.as_ptr(), frame[2..].as_ptr());
    }
}
