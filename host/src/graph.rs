//! The revision graph over all roots.
