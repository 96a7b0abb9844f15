//! Spec versions and the gates between them.

use crate::error::{Error, Result};
use std::fmt;

/// Every spec version this suite speaks, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    V0_1_0,
    V0_2_0,
    V0_3_0,
    V0_3_1,
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

pub const ALL: &[Version] = &[
    Version::V0_1_0,
    Version::V0_2_0,
    Version::V0_3_0,
    Version::V0_3_1,
    Version::V0_4_0,
    Version::V1_0_0,
    Version::V1_1_0,
];

impl Version {
    pub const CURRENT: Version = Version::V1_1_0;

    pub fn as_str(self) -> &'static str {
        match self {
            Version::V0_1_0 => "0.1.0",
            Version::V0_2_0 => "0.2.0",
            Version::V0_3_0 => "0.3.0",
            Version::V0_3_1 => "0.3.1",
            Version::V0_4_0 => "0.4.0",
            Version::V1_0_0 => "1.0.0",
            Version::V1_1_0 => "1.1.0",
        }
    }

    /// Parse a version string; unknown versions are code 1, as the spec asks.
    pub fn parse(s: &str) -> Result<Version> {
        ALL.iter()
            .copied()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                Error::incompatible("incompatible CNI versions")
                    .with_details(format!("config is \"{s}\", plugin supports {}", list(ALL)))
            })
    }

    /// Results before 0.3.0 carry one `ip4`/`ip6` block each and no interfaces.
    pub fn is_legacy(self) -> bool {
        self < Version::V0_3_0
    }

    pub fn supports_check(self) -> bool {
        self >= Version::V0_4_0
    }

    pub fn supports_gc_status(self) -> bool {
        self >= Version::V1_1_0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `["0.1.0", ...]` as JSON text, for messages.
pub fn list(versions: &[Version]) -> String {
    let names: Vec<&str> = versions.iter().map(|v| v.as_str()).collect();
    serde_json::to_string(&names).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_known_version_and_orders_them() {
        for w in ALL.windows(2) {
            assert!(w[0] < w[1]);
        }
        for v in ALL {
            assert_eq!(Version::parse(v.as_str()).unwrap(), *v);
        }
    }

    #[test]
    fn unknown_version_is_code_1_and_lists_supported() {
        let e = Version::parse("9.9.9").unwrap_err();
        assert_eq!(e.code, 1);
        assert!(e.details.contains("\"9.9.9\""));
        assert!(e.details.contains("\"1.1.0\""));
    }
}
