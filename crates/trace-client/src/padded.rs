//! [`Padded`]: a value alone on its cache line(s).

/// Keeps a value alone on its cache line(s), so that threads writing it do not slow down
/// threads reading its neighbours (128 bytes: two lines, for CPUs that fetch pairs).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}
