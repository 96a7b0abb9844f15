//! DEL of the container's interface: idempotent, and fine when the
//! namespace is gone (a veth's host end goes with it) or was never given.

use cni::{Error, Result};
use netlink::Netns;

/// Delete `ifname` in the namespace at `netns`. Succeeds when the path is
/// empty, the namespace is gone, or the link is already deleted. Returns
/// whether a link was deleted.
pub fn delete_container_link(netns: &str, ifname: &str) -> Result<bool> {
    let Some(ns) = Netns::open_if_exists(netns)? else {
        return Ok(false);
    };
    let deleted = ns
        .handle()?
        .delete_link_by_name(ifname)
        .map_err(|e| Error::from(e).context(format!("removing {ifname:?} in {netns}")))?;
    Ok(deleted)
}

/// DEL and GC carry on after a failed step and report every failure at the
/// end, so one stuck resource does not leak the others.
#[derive(Debug, Default)]
pub struct Failures(Vec<Error>);

impl Failures {
    pub fn new() -> Failures {
        Failures::default()
    }

    /// Remember the step's error, if any.
    pub fn note<T>(&mut self, step: Result<T>) {
        if let Err(e) = step {
            self.0.push(e);
        }
    }

    /// The step's value, or `None` with its error remembered.
    pub fn keep<T>(&mut self, step: Result<T>) -> Option<T> {
        step.map_err(|e| self.0.push(e)).ok()
    }

    /// Ok when every step succeeded; else the first error's code with all
    /// messages.
    pub fn finish(self) -> Result<()> {
        let mut errors = self.0.into_iter();
        let Some(first) = errors.next() else {
            return Ok(());
        };
        Err(errors.fold(first, |mut acc, e| {
            acc.msg = format!("{}; {}", acc.msg, e);
            acc
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_keep_every_message_and_the_first_code() {
        assert!(Failures::new().finish().is_ok());
        let mut f = Failures::new();
        f.note(Ok::<_, Error>(1));
        f.note::<()>(Err(Error::new(104, "ipam DEL failed")));
        f.note::<()>(Err(Error::failed("link busy")));
        let e = f.finish().unwrap_err();
        assert_eq!(e.code, 104);
        assert_eq!(e.msg, "ipam DEL failed; link busy");
    }
}
