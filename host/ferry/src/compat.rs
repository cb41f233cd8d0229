//! Tree versions and whether application code written for one version may use a
//! database at another (daf_butler's rule).
//!
//! A tree's version is the `VERSION` constant of its current revision. It is read as
//! `[LABEL-]MAJOR[.MINOR[.PATCH]]`: the label is everything before the last `-` that is
//! followed by the numbers (`uuid-1.0.0` has label `uuid`), and missing numbers are 0
//! (`"0"` is 0.0.0, `"6.0.2"` has no label). A label names a lineage, like a manager
//! class in daf_butler (`int-1.0.0` and `uuid-1.0.0` store dataset ids differently), so
//! two versions with different labels are as incompatible as two major versions.
//!
//! For code written for version C and a database at version D of the same tree:
//!
//! | D compared with C | access | why |
//! | --- | --- | --- |
//! | other label or other major | refuse | incompatible schema |
//! | same major, newer minor | read | the database has additions the code does not know |
//! | same major, older minor | refuse | the code needs additions the database lacks: upgrade it |
//! | same major and minor, any patch | write | patch versions are compatible |
//!
//! A version that does not parse (`TODO`) is only compatible with exactly itself.

use std::cmp::Ordering;
use std::fmt;

/// A parsed tree version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeVersion {
    /// The lineage before the numbers (`uuid` in `uuid-1.0.0`); empty when there is none.
    pub label: String,
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl TreeVersion {
    /// Parses `[LABEL-]MAJOR[.MINOR[.PATCH]]`; `None` when the text has another shape.
    pub fn parse(text: &str) -> Option<TreeVersion> {
        let text = text.trim();
        let (label, numbers) = match text.rfind('-') {
            Some(at) => (&text[..at], &text[at + 1..]),
            None => ("", text),
        };
        if text.starts_with('-') {
            return None;
        }
        let parts: Vec<&str> = numbers.split('.').collect();
        if parts.is_empty() || parts.len() > 3 {
            return None;
        }
        let mut n = [0u64; 3];
        for (i, p) in parts.iter().enumerate() {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            n[i] = p.parse().ok()?;
        }
        Some(TreeVersion {
            label: label.to_string(),
            major: n[0],
            minor: n[1],
            patch: n[2],
        })
    }
}

impl fmt::Display for TreeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.label.is_empty() {
            write!(f, "{}-", self.label)?;
        }
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// What application code may do with a tree's data. Ordered: `Refuse < Read < Write`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// No use: the code cannot work with this tree's data.
    Refuse,
    /// Reading only.
    Read,
    /// Reading and writing.
    Write,
}

impl Access {
    /// The lower-case name (`refuse`, `read`, `write`).
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Refuse => "refuse",
            Access::Read => "read",
            Access::Write => "write",
        }
    }
}

/// An access decision and the reason for it, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    /// What the code may do.
    pub access: Access,
    /// Why, in words an operator can act on.
    pub reason: String,
}

impl Decision {
    /// A decision and its reason.
    pub fn new(access: Access, reason: impl Into<String>) -> Decision {
        Decision {
            access,
            reason: reason.into(),
        }
    }
}

/// Whether code written for version `code` of `tree` may use the database at `database`.
pub fn decide(tree: &str, code: &str, database: &str) -> Decision {
    if code == database {
        return Decision::new(
            Access::Write,
            format!("{tree}: the database is at {database}, the version this code supports"),
        );
    }
    let (Some(c), Some(d)) = (TreeVersion::parse(code), TreeVersion::parse(database)) else {
        return Decision::new(
            Access::Refuse,
            format!(
                "{tree}: versions {database:?} (database) and {code:?} (code) cannot be compared; \
                 only an exact match is accepted"
            ),
        );
    };
    if c.label != d.label || c.major != d.major {
        let what = if c.label != d.label {
            "a different lineage"
        } else {
            "a different major version"
        };
        return Decision::new(
            Access::Refuse,
            format!(
                "{tree}: the database is at {database}, {what} from the {code} this code \
                 supports: incompatible"
            ),
        );
    }
    match d.minor.cmp(&c.minor) {
        Ordering::Greater => Decision::new(
            Access::Read,
            format!(
                "{tree}: the database is at {database}, a newer minor version than the {code} \
                 this code supports: it may read, not write"
            ),
        ),
        Ordering::Less => Decision::new(
            Access::Refuse,
            format!(
                "{tree}: the database is at {database}, an older minor version than the {code} \
                 this code needs: upgrade the database first"
            ),
        ),
        Ordering::Equal => Decision::new(
            Access::Write,
            format!(
                "{tree}: the database is at {database}, a patch version of the {code} this \
                 code supports: compatible"
            ),
        ),
    }
}

/// The best decision over several versions the code supports for one tree.
pub fn decide_any(tree: &str, supported: &[String], database: &str) -> Decision {
    supported
        .iter()
        .map(|code| decide(tree, code, database))
        .max_by_key(|d| d.access)
        .unwrap_or_else(|| {
            Decision::new(
                Access::Refuse,
                format!("{tree}: this code supports no version of it"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(label: &str, major: u64, minor: u64, patch: u64) -> TreeVersion {
        TreeVersion {
            label: label.into(),
            major,
            minor,
            patch,
        }
    }

    #[test]
    fn versions_parse_with_labels_and_missing_numbers() {
        assert_eq!(TreeVersion::parse("1.0.0"), Some(v("", 1, 0, 0)));
        assert_eq!(TreeVersion::parse("uuid-1.0.1"), Some(v("uuid", 1, 0, 1)));
        assert_eq!(TreeVersion::parse("int-1.0.0"), Some(v("int", 1, 0, 0)));
        assert_eq!(TreeVersion::parse("0"), Some(v("", 0, 0, 0)));
        assert_eq!(TreeVersion::parse("6.0"), Some(v("", 6, 0, 0)));
        assert_eq!(
            TreeVersion::parse("my-label-2.1"),
            Some(v("my-label", 2, 1, 0))
        );
        for bad in [
            "TODO", "", "1.2.3.4", "1..2", "-1.0", "v1.0", "1.0-rc1", "uuid-",
        ] {
            assert_eq!(TreeVersion::parse(bad), None, "{bad:?}");
        }
        assert_eq!(v("uuid", 1, 2, 3).to_string(), "uuid-1.2.3");
    }

    #[test]
    fn the_same_version_may_write() {
        assert_eq!(decide("t", "1.2.3", "1.2.3").access, Access::Write);
        assert_eq!(decide("t", "TODO", "TODO").access, Access::Write);
    }

    #[test]
    fn a_different_patch_is_compatible() {
        let d = decide("datasets", "uuid-1.0.1", "uuid-1.0.0");
        assert_eq!(d.access, Access::Write, "{}", d.reason);
        assert!(d.reason.contains("patch"), "{}", d.reason);
        assert_eq!(decide("t", "1.0.0", "1.0.7").access, Access::Write);
    }

    #[test]
    fn a_newer_minor_in_the_database_may_only_be_read() {
        let d = decide("alpha", "1.1.0", "1.2.0");
        assert_eq!(d.access, Access::Read);
        assert!(d.reason.contains("newer minor"), "{}", d.reason);
    }

    #[test]
    fn an_older_minor_in_the_database_needs_an_upgrade() {
        let d = decide("alpha", "1.2.0", "1.1.5");
        assert_eq!(d.access, Access::Refuse);
        assert!(d.reason.contains("upgrade the database"), "{}", d.reason);
    }

    #[test]
    fn a_different_major_or_label_is_incompatible() {
        let d = decide("alpha", "1.0.0", "2.0.0");
        assert_eq!(d.access, Access::Refuse);
        assert!(d.reason.contains("major"), "{}", d.reason);
        assert_eq!(decide("alpha", "2.0.0", "1.9.0").access, Access::Refuse);
        let d = decide("datasets", "uuid-1.0.0", "int-1.0.0");
        assert_eq!(d.access, Access::Refuse);
        assert!(d.reason.contains("lineage"), "{}", d.reason);
    }

    #[test]
    fn unparseable_versions_match_only_exactly() {
        let d = decide("t", "TODO", "1.0.0");
        assert_eq!(d.access, Access::Refuse);
        assert!(d.reason.contains("cannot be compared"), "{}", d.reason);
    }

    #[test]
    fn the_best_of_several_supported_versions_wins() {
        let supported = vec!["1.0.0".to_string(), "2.0.0".to_string()];
        assert_eq!(decide_any("t", &supported, "2.0.3").access, Access::Write);
        assert_eq!(decide_any("t", &supported, "1.4.0").access, Access::Read);
        assert_eq!(decide_any("t", &[], "1.0.0").access, Access::Refuse);
    }
}
