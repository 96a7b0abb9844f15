//! One error type for every operation of this crate: what was being done,
//! and why it failed (the kernel's errno in words where there is one).

use std::fmt;
use std::io;

/// Why an operation failed.
#[derive(Debug)]
enum Cause {
    /// A system call or the kernel failed with this errno; `extack` is the
    /// kernel's own explanation when it sent one.
    Os { errno: i32, extack: Option<String> },
    /// Something looked up was not there (decided here, not by the kernel).
    NotFound(String),
    /// The kernel sent something we could not decode.
    Decode(String),
    /// The caller passed something unusable (a bad sysctl key, an empty name).
    Invalid(String),
}

/// A failed netlink, namespace or sysctl operation.
///
/// Displays as `<operation>: <reason>`, for example
/// `creating veth "veth1234" in /run/netns/x: File exists (os error 17)`.
#[derive(Debug)]
pub struct Error {
    op: String,
    cause: Cause,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn os(op: impl Into<String>, err: io::Error) -> Error {
        match err.raw_os_error() {
            Some(errno) => Error::kernel(op, errno, None),
            // Not from a system call: keep the words, no errno to test against.
            None => Error {
                op: op.into(),
                cause: Cause::Decode(err.to_string()),
            },
        }
    }

    pub(crate) fn kernel(op: impl Into<String>, errno: i32, extack: Option<String>) -> Error {
        Error {
            op: op.into(),
            cause: Cause::Os { errno, extack },
        }
    }

    pub(crate) fn not_found(op: impl Into<String>, what: impl Into<String>) -> Error {
        Error {
            op: op.into(),
            cause: Cause::NotFound(what.into()),
        }
    }

    pub(crate) fn decode(op: impl Into<String>, what: impl fmt::Display) -> Error {
        Error {
            op: op.into(),
            cause: Cause::Decode(what.to_string()),
        }
    }

    pub(crate) fn invalid(op: impl Into<String>, what: impl Into<String>) -> Error {
        Error {
            op: op.into(),
            cause: Cause::Invalid(what.into()),
        }
    }

    /// The operation that failed, e.g. `setting link "lo" up in /run/netns/x`.
    pub fn op(&self) -> &str {
        &self.op
    }

    /// The errno the kernel or a system call returned, if any.
    pub fn errno(&self) -> Option<i32> {
        match self.cause {
            Cause::Os { errno, .. } => Some(errno),
            _ => None,
        }
    }

    /// True when the object (link, address, route, namespace, file) does not
    /// exist: what DEL treats as "already gone".
    pub fn is_not_found(&self) -> bool {
        match self.cause {
            Cause::NotFound(_) => true,
            Cause::Os { errno, .. } => matches!(
                errno,
                libc::ENOENT | libc::ENODEV | libc::ESRCH | libc::EADDRNOTAVAIL
            ),
            _ => false,
        }
    }

    /// True when the object already exists (`EEXIST`).
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }

    /// True when the caller's input was unusable (no kernel involved).
    pub fn is_invalid(&self) -> bool {
        matches!(self.cause, Cause::Invalid(_))
    }

    /// Put more context in front of the operation, e.g. the namespace.
    pub fn context(mut self, what: impl fmt::Display) -> Error {
        self.op = format!("{what}: {}", self.op);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.op)?;
        match &self.cause {
            Cause::Os { errno, extack } => {
                write!(f, "{}", io::Error::from_raw_os_error(*errno))?;
                if let Some(msg) = extack {
                    write!(f, " ({msg})")?;
                }
                Ok(())
            }
            Cause::NotFound(s) | Cause::Decode(s) | Cause::Invalid(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for cni::Error {
    fn from(e: Error) -> cni::Error {
        let code = if e.is_invalid() {
            cni::code::INVALID_CONFIG
        } else {
            cni::code::OPERATION_FAILED
        };
        cni::Error::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_operation_and_errno_in_words() {
        let e = Error::kernel("creating veth \"veth1234\" in /run/netns/x", 17, None);
        assert_eq!(
            e.to_string(),
            "creating veth \"veth1234\" in /run/netns/x: File exists (os error 17)"
        );
        assert!(e.is_exists());
        assert!(!e.is_not_found());
    }

    #[test]
    fn kernel_explanation_follows_errno() {
        let e = Error::kernel(
            "creating link \"x\"",
            95,
            Some("Unknown device type".into()),
        );
        assert_eq!(
            e.to_string(),
            "creating link \"x\": Operation not supported (os error 95) (Unknown device type)"
        );
    }

    #[test]
    fn converts_to_cni_errors_with_codes() {
        let e: cni::Error = Error::kernel("looking up link \"eth9\"", libc::ENODEV, None).into();
        assert_eq!(e.code, cni::code::OPERATION_FAILED);
        assert_eq!(
            e.msg,
            "looking up link \"eth9\": No such device (os error 19)"
        );
        let e: cni::Error = Error::invalid("setting sysctl \"a/../b\"", "bad key").into();
        assert_eq!(e.code, cni::code::INVALID_CONFIG);
    }

    #[test]
    fn not_found_covers_the_kernel_spellings() {
        for errno in [libc::ENOENT, libc::ENODEV, libc::ESRCH, libc::EADDRNOTAVAIL] {
            assert!(Error::kernel("x", errno, None).is_not_found());
        }
        assert!(Error::not_found("x", "no link").is_not_found());
        assert!(!Error::kernel("x", libc::EPERM, None).is_not_found());
    }
}
