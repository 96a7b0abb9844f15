//! Undo a half-done ADD: every step that created something registers how
//! to remove it; if the ADD returns early, the guard runs those in reverse.

use crate::ipam::Ipam;
use cni::delegate::{self, Running};
use cni::{CniResult, Command, Error, IpConfig, Plugin, Request, Result};
use ipam::host_local::HostLocal;
use netlink::{Handle, Netns};
use std::cell::RefCell;
use std::rc::Rc;

type Undo<'a> = Box<dyn FnOnce() -> Result<()> + 'a>;

/// The undo steps of one ADD. Dropping it runs them (last first) unless
/// [`Rollback::commit`] succeeds.
#[must_use = "dropping the guard undoes everything registered so far"]
pub struct Rollback<'a> {
    steps: Vec<(String, Undo<'a>)>,
    /// IPAM ADDs started here, to be confirmed by `commit`.
    ipam: Vec<Rc<RefCell<IpamState>>>,
}

impl<'a> Default for Rollback<'a> {
    fn default() -> Self {
        Rollback::new()
    }
}

impl<'a> Rollback<'a> {
    pub fn new() -> Rollback<'a> {
        Rollback {
            steps: Vec::new(),
            ipam: Vec::new(),
        }
    }

    /// Register how to undo a step that just succeeded; `what` names it in
    /// the log if undoing fails.
    pub fn push(&mut self, what: impl Into<String>, undo: impl FnOnce() -> Result<()> + 'a) {
        self.steps.push((what.into(), Box::new(undo)));
    }

    /// The ADD succeeded: keep everything, once every IPAM plugin whose
    /// result was used before it exited has exited successfully. If one
    /// did not, its error is returned and everything is undone.
    pub fn commit(mut self) -> Result<()> {
        for state in &self.ipam {
            let confirming = state.replace(IpamState::Failed);
            if let IpamState::Confirming(running) = confirming {
                running.wait()?;
            }
            state.replace(IpamState::Succeeded);
        }
        self.steps.clear();
        Ok(())
    }

    /// IPAM ADD for `req`, with IPAM DEL registered to undo it. Fails when
    /// the IPAM plugin hands out no address: interface plugins need one.
    pub fn ipam_add(&mut self, req: &'a Request) -> Result<CniResult> {
        self.ipam_start(req)?.finish()
    }

    /// Start IPAM ADD for `req` and return at once, so the caller can
    /// create links while the IPAM process runs; [`PendingIpam::finish`]
    /// collects the result. IPAM DEL is registered to undo it; if the ADD
    /// is undone before the IPAM process has exited, it is waited for first
    /// (so DEL cannot overtake the allocation), and DEL is skipped when IPAM
    /// ADD failed (it allocated nothing), as with [`Rollback::ipam_add`].
    pub fn ipam_start(&mut self, req: &'a Request) -> Result<PendingIpam<'a>> {
        // This build's own host-local (see `crate::ipam`) runs in `finish`,
        // in this process: the caller's links are made first either way.
        let state = match crate::ipam::resolve(req)? {
            Ipam::InProcess(plugin) => IpamState::InProcess(plugin),
            Ipam::Exec(binary) => {
                IpamState::Running(delegate::spawn(&binary, Command::Add, &req.stdin, &[])?)
            }
        };
        let state = Rc::new(RefCell::new(state));
        let seen = Rc::clone(&state);
        self.ipam.push(Rc::clone(&state));
        self.push("releasing the IPAM lease", move || {
            let allocated = match seen.replace(IpamState::Failed) {
                IpamState::Running(running) | IpamState::Confirming(running) => {
                    running.wait().is_ok()
                }
                IpamState::Succeeded => true,
                IpamState::InProcess(_) | IpamState::Failed => false,
            };
            match allocated {
                true => crate::ipam::run(req, Command::Del),
                false => Ok(()),
            }
        });
        Ok(PendingIpam { req, state })
    }

    /// Masquerade for the addresses of `ips` (`ipMasq`), with their removal
    /// registered.
    pub fn masquerade(
        &mut self,
        req: &'a Request,
        backend: Option<&str>,
        ips: &[IpConfig],
    ) -> Result<()> {
        let addrs: Vec<_> = ips.iter().map(|ip| ip.address).collect();
        crate::masq::add(req, backend, &addrs)?;
        self.push("removing the masquerade rules", || crate::masq::del(req));
        Ok(())
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

/// Where a started IPAM ADD stands, shared with its undo step.
enum IpamState {
    /// This build's host-local, to run in this process; nothing ran yet.
    InProcess(HostLocal),
    Running(Running),
    /// Its result is in use; its exit status is not known yet.
    Confirming(Running),
    Succeeded,
    Failed,
}

/// An IPAM ADD started by [`Rollback::ipam_start`].
pub struct PendingIpam<'a> {
    req: &'a Request,
    state: Rc<RefCell<IpamState>>,
}

impl PendingIpam<'_> {
    /// IPAM's result, as soon as it has printed one (its exit status is
    /// confirmed by [`Rollback::commit`]). Fails when IPAM failed or handed
    /// out no address: interface plugins need one.
    pub fn finish(self) -> Result<CniResult> {
        let out = match self.state.replace(IpamState::Failed) {
            // host-local allocates all or nothing: a failed ADD kept nothing.
            IpamState::InProcess(plugin) => {
                let result = plugin.add(self.req)?;
                self.state.replace(IpamState::Succeeded);
                // As the executed plugin would have printed it: an older
                // version's format drops here what it drops there.
                Some(result.to_json(self.req.version)?)
            }
            IpamState::Running(mut running) => match running.early_result() {
                Some(out) => {
                    self.state.replace(IpamState::Confirming(running));
                    Some(out)
                }
                None => {
                    let out = running.wait()?;
                    self.state.replace(IpamState::Succeeded);
                    out
                }
            },
            _ => return Err(Error::failed("IPAM ADD was already collected")),
        };
        // From here on the lease may exist, whatever we think of the result.
        let result = delegate::ipam_add_result(self.req, out)?;
        if result.ips.is_empty() {
            return Err(Error::failed(format!(
                "IPAM plugin {:?} returned no IP addresses",
                self.req.conf.ipam_type.as_deref().unwrap_or_default()
            )));
        }
        Ok(result)
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
    use cni::{NetConf, Version};
    use std::cell::RefCell;
    use testutil::TempDir;

    /// A stand-in IPAM plugin that logs when each command starts and ends
    /// (ADD takes a while) and fails ADD when asked to.
    fn fake_ipam(dir: &TempDir, fail_add: bool) -> Request {
        let log = dir.path.join("log");
        let script = format!(
            "#!/bin/sh\n\
             echo \"$CNI_COMMAND start\" >> {log}\n\
             if [ \"$CNI_COMMAND\" = ADD ]; then sleep 0.2; fi\n\
             echo \"$CNI_COMMAND end\" >> {log}\n\
             if [ \"$CNI_COMMAND\" = ADD ]; then\n\
               if [ {fail} = 1 ]; then echo '{{\"code\": 11, \"msg\": \"busy\"}}'; exit 1; fi\n\
               echo '{{\"cniVersion\": \"1.0.0\", \"ips\": [{{\"address\": \"10.9.0.2/24\"}}]}}'\n\
             fi\n",
            log = log.display(),
            fail = u8::from(fail_add),
        );
        testutil::write_script(&dir.path.join("fakeipam"), &script);
        let conf = serde_json::json!({"cniVersion": "1.0.0", "name": "n",
            "ipam": {"type": "fakeipam"}});
        Request {
            command: Command::Add,
            container_id: "c".into(),
            netns: String::new(),
            ifname: "eth0".into(),
            args: String::new(),
            path: vec![dir.path.clone()],
            stdin: conf.to_string().into_bytes(),
            conf: NetConf::from_value(conf).unwrap(),
            version: Version::V1_0_0,
        }
    }

    fn log(dir: &TempDir) -> Vec<String> {
        std::fs::read_to_string(dir.path.join("log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn started_ipam_is_finished_before_its_release() {
        let dir = TempDir::new("rollback");
        let req = fake_ipam(&dir, false);
        {
            let mut undo = Rollback::new();
            let _pending = undo.ipam_start(&req).unwrap();
            // The ADD fails elsewhere while IPAM still runs.
        }
        assert_eq!(log(&dir), ["ADD start", "ADD end", "DEL start", "DEL end"]);
    }

    #[test]
    fn finished_ipam_is_released_on_rollback_and_kept_on_success() {
        let dir = TempDir::new("rollback");
        let req = fake_ipam(&dir, false);
        {
            let mut undo = Rollback::new();
            let result = undo.ipam_start(&req).unwrap().finish().unwrap();
            assert_eq!(result.ips[0].address.to_string(), "10.9.0.2/24");
        }
        assert_eq!(log(&dir), ["ADD start", "ADD end", "DEL start", "DEL end"]);

        let dir = TempDir::new("rollback");
        let req = fake_ipam(&dir, false);
        let mut undo = Rollback::new();
        undo.ipam_add(&req).unwrap();
        undo.commit().unwrap();
        assert_eq!(log(&dir), ["ADD start", "ADD end"]);
    }

    /// A stand-in IPAM plugin that prints its result, then lingers 0.3 s
    /// before exiting with `status`.
    fn lingering_ipam(dir: &TempDir, status: u8) -> Request {
        let mut req = fake_ipam(dir, false);
        let script = format!(
            "#!/bin/sh\n\
             echo \"$CNI_COMMAND\" >> {log}\n\
             if [ \"$CNI_COMMAND\" = ADD ]; then\n\
               echo '{{\"cniVersion\": \"1.0.0\", \"ips\": [{{\"address\": \"10.9.0.3/24\"}}]}}'\n\
               sleep 0.3; exit {status}\n\
             fi\n",
            log = dir.path.join("log").display(),
        );
        testutil::write_script(&dir.path.join("lingering"), &script);
        let conf = serde_json::json!({"cniVersion": "1.0.0", "name": "n",
            "ipam": {"type": "lingering"}});
        req.stdin = conf.to_string().into_bytes();
        req.conf = NetConf::from_value(conf).unwrap();
        req
    }

    #[test]
    fn ipam_result_is_used_before_the_plugin_exits_and_confirmed_at_commit() {
        let dir = TempDir::new("rollback");
        let req = lingering_ipam(&dir, 0);
        let mut undo = Rollback::new();
        let start = std::time::Instant::now();
        let result = undo.ipam_start(&req).unwrap().finish().unwrap();
        assert_eq!(result.ips[0].address.to_string(), "10.9.0.3/24");
        assert!(start.elapsed() < std::time::Duration::from_millis(250));
        undo.commit().unwrap();
        assert!(start.elapsed() >= std::time::Duration::from_millis(300));
        assert_eq!(log(&dir), ["ADD"]);
    }

    #[test]
    fn ipam_that_prints_a_result_but_fails_fails_the_add() {
        let dir = TempDir::new("rollback");
        let req = lingering_ipam(&dir, 1);
        let mut undo = Rollback::new();
        undo.ipam_start(&req).unwrap().finish().unwrap();
        let e = undo.commit().unwrap_err();
        assert_eq!(e.code, cni::code::DELEGATE_FAILED, "{e}");
        // It failed, so it allocated nothing: no DEL.
        assert_eq!(log(&dir), ["ADD"]);

        // Undone before commit: waited for, then released.
        let dir = TempDir::new("rollback");
        let req = lingering_ipam(&dir, 0);
        {
            let mut undo = Rollback::new();
            undo.ipam_start(&req).unwrap().finish().unwrap();
        }
        assert_eq!(log(&dir), ["ADD", "DEL"]);
    }

    #[test]
    fn failed_ipam_add_is_not_released() {
        for finish in [true, false] {
            let dir = TempDir::new("rollback");
            let req = fake_ipam(&dir, true);
            {
                let mut undo = Rollback::new();
                let pending = undo.ipam_start(&req).unwrap();
                if finish {
                    let e = pending.finish().unwrap_err();
                    assert_eq!((e.code, e.msg.as_str()), (11, "busy"));
                }
            }
            assert_eq!(log(&dir), ["ADD start", "ADD end"], "finish: {finish}");
        }
    }

    #[test]
    fn undoes_in_reverse_unless_committed() {
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
        r.commit().unwrap();
        assert!(log.borrow().is_empty());
    }
}
