//! Loom's stand-ins for tokio's `Notify`, `sleep` and `yield_now` (to be written).
