//! Network namespaces by path: open, enter for a while (per thread, always
//! back again), and open netlink sockets inside them.

use crate::error::{Error, Result};
use crate::socket::Handle;
use std::fs::File;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;

// ioctl(2) on an nsfs file: which kind of namespace it is (Linux 4.11+).
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
const THREAD_NETNS: &str = "/proc/thread-self/ns/net";

/// An open network namespace (`/run/netns/x`, `/proc/<pid>/ns/net`).
#[derive(Debug)]
pub struct Netns {
    file: File,
    path: String,
}

impl Netns {
    /// Open the namespace at `path`, checking that it is a network namespace.
    ///
    /// A missing file, or a file that is not a namespace (a stale bind-mount
    /// point), gives an error for which [`Error::is_not_found`] is true.
    pub fn open(path: &str) -> Result<Netns> {
        let op = || format!("failed to open netns {path}");
        if path.is_empty() {
            return Err(Error::invalid(op(), "no path given"));
        }
        let file = File::open(path).map_err(|e| Error::os(op(), e))?;
        // SAFETY: the fd is valid for the call; NS_GET_NSTYPE takes no argument.
        let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
        if kind != libc::CLONE_NEWNET {
            return Err(Error::not_found(
                op(),
                format!("{path} is not a network namespace"),
            ));
        }
        Ok(Netns {
            file,
            path: path.to_string(),
        })
    }

    /// Like [`Netns::open`], but `None` when the namespace is gone or no
    /// path is given: what DEL needs, since it must succeed for a container
    /// that no longer exists.
    pub fn open_if_exists(path: &str) -> Result<Option<Netns>> {
        if path.is_empty() {
            return Ok(None);
        }
        match Netns::open(path) {
            Ok(ns) => Ok(Some(ns)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The namespace the calling thread is in now.
    pub fn current() -> Result<Netns> {
        Netns::open(THREAD_NETNS)
    }

    /// The path this namespace was opened from.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// True when this is the namespace the calling thread is in.
    pub fn is_current(&self) -> Result<bool> {
        let op = || format!("comparing netns {} with the current one", self.path);
        let mine = self.file.metadata().map_err(|e| Error::os(op(), e))?;
        let cur = std::fs::metadata(THREAD_NETNS).map_err(|e| Error::os(op(), e))?;
        Ok(mine.dev() == cur.dev() && mine.ino() == cur.ino())
    }

    /// Move the calling thread into this namespace until the guard drops.
    ///
    /// Other threads are not affected. Prefer [`Netns::handle`] for netlink
    /// work: it needs to be inside only while the socket is created.
    pub fn enter(&self) -> Result<NetnsGuard> {
        let orig =
            File::open(THREAD_NETNS).map_err(|e| Error::os("remembering the current netns", e))?;
        setns(self.file.as_fd())
            .map_err(|e| Error::os(format!("entering netns {}", self.path), e))?;
        Ok(NetnsGuard {
            orig,
            _per_thread: PhantomData,
        })
    }

    /// Run `f` inside this namespace, returning to the original one after,
    /// also when `f` fails.
    pub fn run<T, E: From<Error>>(
        &self,
        f: impl FnOnce() -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let _guard = self.enter()?;
        f()
    }

    /// A netlink socket that works inside this namespace, while the calling
    /// thread stays where it is (it enters only to create the socket).
    pub fn handle(&self) -> Result<Handle> {
        let _guard = self.enter()?;
        Handle::open(Some(self.path.clone()))
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

fn setns(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    // SAFETY: plain system call on a valid fd.
    if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// While alive, the calling thread is in another namespace; dropping it
/// returns the thread to where it was. Not `Send`: namespaces are per thread.
#[must_use = "the thread leaves the namespace again when the guard drops"]
pub struct NetnsGuard {
    orig: File,
    _per_thread: PhantomData<*const ()>,
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if let Err(e) = setns(self.orig.as_fd()) {
            // Carrying on would apply the host's changes inside the container
            // (or the reverse): stopping is the only safe outcome.
            eprintln!("fatal: cannot return to the original network namespace: {e}");
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_files_that_are_not_network_namespaces() {
        let e = Netns::open("/proc/self/ns/uts").unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert!(e.to_string().contains("is not a network namespace"), "{e}");
        let e = Netns::open("/etc/hostname").unwrap_err();
        assert!(e.is_not_found());
        assert!(Netns::open_if_exists("/run/netns/surely-not-here")
            .unwrap()
            .is_none());
        assert!(Netns::open_if_exists("").unwrap().is_none());
    }

    #[test]
    fn missing_path_is_reported_in_words() {
        let e = Netns::open("/run/netns/nope-nope").unwrap_err();
        assert_eq!(
            e.to_string(),
            "failed to open netns /run/netns/nope-nope: No such file or directory (os error 2)"
        );
        assert!(Netns::open("").unwrap_err().is_invalid());
    }

    #[test]
    fn current_namespace_is_current() {
        let ns = Netns::current().unwrap();
        assert!(ns.is_current().unwrap());
        // Entering the namespace we are in is allowed and changes nothing.
        ns.run(|| Ok::<_, Error>(())).unwrap();
        assert!(ns.is_current().unwrap());
    }
}
