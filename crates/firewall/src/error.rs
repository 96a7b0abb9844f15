use std::io;

/// What can go wrong while programming the packet filter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration asks for something we cannot do.
    #[error("{0}")]
    Config(String),
    /// The kernel refused a request.
    #[error("{what}: {}{}", io::Error::from_raw_os_error(*errno), text.as_ref().map(|t| format!(" ({t})")).unwrap_or_default())]
    Kernel {
        what: String,
        errno: i32,
        text: Option<String>,
    },
    /// A system call on the socket, or running a tool, failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    /// The kernel (or a tool) answered something we cannot read.
    #[error("unexpected reply: {0}")]
    Malformed(String),
    /// An external tool ran but failed.
    #[error("{tool} failed: {msg}")]
    Tool { tool: String, msg: String },
    /// CHECK found the state missing or different.
    #[error("{0}")]
    Missing(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn kernel(what: &str, errno: i32) -> Error {
        Error::Kernel {
            what: what.to_string(),
            errno,
            text: None,
        }
    }

    /// True when the operation lost a race with another change of the
    /// ruleset and should be planned again from fresh state.
    pub fn is_retry(&self) -> bool {
        matches!(self, Error::Kernel { errno, .. } if *errno == libc::ERESTART || *errno == libc::EINTR)
    }

    /// True when the kernel refused because an object (table, chain, rule)
    /// does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Kernel { errno, .. } if *errno == libc::ENOENT)
    }

    /// True when this kernel has no nf_tables (or no netfilter netlink) at
    /// all, as opposed to refusing a particular request.
    pub fn is_unsupported(&self) -> bool {
        let errno = match self {
            Error::Kernel { errno, .. } => Some(*errno),
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        };
        matches!(
            errno,
            Some(libc::EPROTONOSUPPORT | libc::EAFNOSUPPORT | libc::EOPNOTSUPP | libc::EINVAL)
        )
    }
}

impl From<Error> for cni::Error {
    fn from(e: Error) -> cni::Error {
        let code = match e {
            Error::Config(_) => cni::code::INVALID_CONFIG,
            Error::Missing(_) => cni::code::CHECK_FAILED,
            _ => cni::code::OPERATION_FAILED,
        };
        cni::Error::new(code, e.to_string())
    }
}
