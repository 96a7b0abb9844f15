//! What can go wrong on the runtime side, kept apart from what a plugin reports.

use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A plugin ran and failed: its own CNI error (or what it printed instead).
    #[error("plugin type={plugin:?} failed ({command}): {error}")]
    Plugin {
        plugin: String,
        command: String,
        error: cni::Error,
    },
    /// No configuration by that name, or one that cannot be parsed.
    #[error("{0}")]
    Config(String),
    /// The runtime was given invalid arguments (container ID, network or interface name).
    #[error("{0}")]
    InvalidArgs(String),
    /// A plugin could not be found or started.
    #[error("{0}")]
    Exec(String),
    /// The result cache could not be read or written.
    #[error("{0}")]
    Cache(String),
    /// Several independent steps failed (GC keeps going after an error).
    #[error("{}", Joined(.0))]
    Multiple(Vec<Error>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The plugin's CNI error, when the failure came from a plugin.
    pub fn plugin_error(&self) -> Option<&cni::Error> {
        match self {
            Error::Plugin { error, .. } => Some(error),
            _ => None,
        }
    }
}

struct Joined<'a>(&'a [Error]);

impl fmt::Display for Joined<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}
