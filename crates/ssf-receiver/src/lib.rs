//! An in-process SSF receiver (work in progress).
