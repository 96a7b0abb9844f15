//! IPAM for the interface plugins. The plugin named by `ipam.type` is found
//! on `CNI_PATH` and executed, as the spec says; but when what is found
//! there is this very build of host-local ([`ipam::host_local::is_this_build`]),
//! its code runs in this process instead: the same code, stdin and
//! environment, without a second process (measured here: about 0.8 ms less
//! CPU per ADD, which is what 64 parallel ADDs wait for).

use cni::delegate;
use cni::{Command, Plugin, Request, Result};
use ipam::host_local::HostLocal;
use std::path::PathBuf;

/// Where the request's IPAM plugin runs.
pub(crate) enum Ipam {
    /// This build's host-local: in this process.
    InProcess(HostLocal),
    /// Anything else: executed from this path.
    Exec(PathBuf),
}

/// Find the request's IPAM plugin on `CNI_PATH` (once) and tell where it runs.
pub(crate) fn resolve(req: &Request) -> Result<Ipam> {
    let binary = delegate::ipam_binary(req)?;
    Ok(match ipam::host_local::is_this_build(&binary) {
        true => Ipam::InProcess(HostLocal),
        false => Ipam::Exec(binary),
    })
}

/// IPAM for a verb that prints nothing on success (DEL, CHECK, STATUS, GC).
pub fn run(req: &Request, command: Command) -> Result<()> {
    let plugin = match resolve(req)? {
        Ipam::InProcess(plugin) => plugin,
        Ipam::Exec(binary) => return delegate::exec(&binary, command, &req.stdin, &[]).map(drop),
    };
    match command {
        Command::Add => plugin.add(req).map(drop),
        Command::Del => plugin.del(req),
        Command::Check => plugin.check(req),
        Command::Status => plugin.status(req),
        Command::Gc => plugin.gc(req),
        Command::Version => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rollback;
    use cni::{NetConf, Version};
    use testutil::TempDir;

    /// A host-local request with `bin` as CNI_PATH and its data in `dir`.
    fn request(bin: &std::path::Path, dir: &TempDir, command: Command) -> Request {
        let conf = serde_json::json!({"cniVersion": "1.0.0", "name": "n",
            "ipam": {"type": "host-local", "dataDir": dir.path.join("data"),
                     "ranges": [[{"subnet": "10.9.0.0/24"}]]}});
        Request {
            command,
            container_id: "c".into(),
            netns: String::new(),
            ifname: "eth0".into(),
            args: String::new(),
            path: vec![bin.to_path_buf()],
            stdin: conf.to_string().into_bytes(),
            conf: NetConf::from_value(conf).unwrap(),
            version: Version::V1_0_0,
        }
    }

    fn lease_files(dir: &TempDir) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.path.join("data/n"))
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        names.retain(|n| n.parse::<std::net::IpAddr>().is_ok());
        names
    }

    #[test]
    fn this_builds_host_local_runs_in_process() {
        let (bin, dir) = (TempDir::new("own-bin"), TempDir::new("own-data"));
        std::fs::copy(testutil::plugin("host-local"), bin.path.join("host-local")).unwrap();
        let req = request(&bin.path, &dir, Command::Add);
        assert!(matches!(resolve(&req), Ok(Ipam::InProcess(_))));

        let mut undo = Rollback::new();
        let result = undo.ipam_start(&req).unwrap().finish().unwrap();
        assert_eq!(result.ips[0].address.to_string(), "10.9.0.2/24");
        assert_eq!(lease_files(&dir), ["10.9.0.2"]);
        drop(undo);
        assert!(lease_files(&dir).is_empty(), "the rollback released it");

        let mut undo = Rollback::new();
        undo.ipam_start(&req).unwrap().finish().unwrap();
        undo.commit().unwrap();
        run(&request(&bin.path, &dir, Command::Check), Command::Check).unwrap();
        run(&request(&bin.path, &dir, Command::Del), Command::Del).unwrap();
        assert!(lease_files(&dir).is_empty());
    }

    #[test]
    fn any_other_host_local_is_executed() {
        let (bin, dir) = (TempDir::new("other-bin"), TempDir::new("other-data"));
        let log = dir.path.join("log");
        testutil::write_script(
            &bin.path.join("host-local"),
            &format!(
                "#!/bin/sh\necho \"$CNI_COMMAND\" >> {}\n\
                 [ \"$CNI_COMMAND\" = ADD ] && echo '{{\"cniVersion\": \"1.0.0\", \
                 \"ips\": [{{\"address\": \"10.9.0.77/24\"}}]}}'\nexit 0\n",
                log.display()
            ),
        );
        let req = request(&bin.path, &dir, Command::Add);
        assert!(matches!(resolve(&req), Ok(Ipam::Exec(_))));
        let mut undo = Rollback::new();
        let result = undo.ipam_start(&req).unwrap().finish().unwrap();
        assert_eq!(result.ips[0].address.to_string(), "10.9.0.77/24");
        undo.commit().unwrap();
        run(&request(&bin.path, &dir, Command::Del), Command::Del).unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "ADD\nDEL\n");
        // The reference plugin is not taken for ours either.
        if let Some(reference) = testutil::reference_dir() {
            assert!(!ipam::host_local::is_this_build(
                &reference.join("host-local")
            ));
        }
    }

    #[test]
    fn only_host_local_itself_counts() {
        // Our other plugins link the same host-local code; they are not it,
        // whatever their name or the configured type.
        for other in ["static", "bridge", "ptp"] {
            let other = testutil::plugin(other);
            assert!(!ipam::host_local::is_this_build(&other), "{other:?}");
        }
        let (bin, dir) = (TempDir::new("static-bin"), TempDir::new("static-data"));
        std::fs::copy(testutil::plugin("static"), bin.path.join("static")).unwrap();
        let mut req = request(&bin.path, &dir, Command::Add);
        req.conf.ipam_type = Some("static".into());
        assert!(matches!(resolve(&req), Ok(Ipam::Exec(_))));
    }
}
