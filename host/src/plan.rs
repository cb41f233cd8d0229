//! The ordered revisions that take the repository from its state to a target.
