//! Helpers shared by the workspace's tests, each in one place:
//!
//! * [`alloc`]: a global allocator that counts the allocations of the current thread,
//!   for tests that prove a path allocates nothing;
//! * [`fuzz`]: runs every kept fuzz input (minimized corpus and regressions) through a
//!   fuzz target's checks in a normal `cargo test`;
//! * `http` (feature `http`): a loopback HTTP/1 server for a tower service.

pub mod alloc;
pub mod fuzz;
#[cfg(feature = "http")]
pub mod http;
