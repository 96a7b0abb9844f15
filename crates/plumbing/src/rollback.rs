//! Undo a half-done ADD: every step that created something registers how
//! to remove it; if the ADD returns early, the guard runs those in reverse.

use cni::delegate;
use cni::{CniResult, Command, Error, Request, Result};
use netlink::{Handle, Netns};

type Undo<'a> = Box<dyn FnOnce() -> Result<()> + 'a>;

/// The undo steps of one ADD. Dropping it runs them (last first) unless
/// [`Rollback::disarm`] was called on success.
#[must_use = "dropping the guard undoes everything registered so far"]
pub struct Rollback<'a> {
    steps: Vec<(String, Undo<'a>)>,
}

impl<'a> Default for Rollback<'a> {
    fn default() -> Self {
        Rollback::new()
    }
}

impl<'a> Rollback<'a> {
    pub fn new() -> Rollback<'a> {
        Rollback { steps: Vec::new() }
    }

    /// Register how to undo a step that just succeeded; `what` names it in
    /// the log if undoing fails.
    pub fn push(&mut self, what: impl Into<String>, undo: impl FnOnce() -> Result<()> + 'a) {
        self.steps.push((what.into(), Box::new(undo)));
    }

    /// The ADD succeeded: keep everything.
    pub fn disarm(mut self) {
        self.steps.clear();
    }

    /// IPAM ADD for `req`, with IPAM DEL registered to undo it. Fails when
    /// the IPAM plugin hands out no address: interface plugins need one.
    pub fn ipam_add(&mut self, req: &'a Request) -> Result<CniResult> {
        let result = delegate::ipam_add(req)?;
        self.push("releasing the IPAM lease", move || {
            delegate::ipam_run(req, Command::Del)
        });
        if result.ips.is_empty() {
            return Err(Error::failed(format!(
                "IPAM plugin {:?} returned no IP addresses",
                req.conf.ipam_type.as_deref().unwrap_or_default()
            )));
        }
        Ok(result)
    }

    /// Delete link `index` (in `ns`, or the current namespace) on failure.
    /// Deleting one end of a veth removes the other too.
    pub fn delete_link(&mut self, ns: Option<&'a Netns>, index: u32, name: &str) {
        self.push(format!("deleting link {name:?}"), move || {
            let mut nl = match ns {
                Some(ns) => ns.handle()?,
                None => Handle::new()?,
            };
            match nl.delete_link(index) {
                Err(e) if !e.is_not_found() => Err(e.into()),
                _ => Ok(()),
            }
        });
    }
}

impl Drop for Rollback<'_> {
    fn drop(&mut self) {
        while let Some((what, undo)) = self.steps.pop() {
            if let Err(e) = undo() {
                // The ADD's own error is what the runtime sees; this is for the log.
                eprintln!("rollback: {what} failed: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn undoes_in_reverse_unless_disarmed() {
        let log = RefCell::new(Vec::new());
        {
            let mut r = Rollback::new();
            r.push("a", || {
                log.borrow_mut().push("a");
                Ok(())
            });
            r.push("b", || {
                log.borrow_mut().push("b");
                Err(Error::failed("b cannot be undone"))
            });
            r.push("c", || {
                log.borrow_mut().push("c");
                Ok(())
            });
        }
        assert_eq!(
            *log.borrow(),
            ["c", "b", "a"],
            "a failing step stops nothing"
        );

        log.borrow_mut().clear();
        let mut r = Rollback::new();
        r.push("a", || {
            log.borrow_mut().push("a");
            Ok(())
        });
        r.disarm();
        assert!(log.borrow().is_empty());
    }
}
