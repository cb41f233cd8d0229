//! Finding script files under the roots.
