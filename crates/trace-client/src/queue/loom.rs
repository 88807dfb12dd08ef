//! Loom models of the ring and of the wake protocol (to be written).
