//! The least a bridge ADD can do, for `bench` to measure against: one
//! process that starts like our plugins (`#![no_main]`), then through our
//! netlink layer makes a veth pair with one end on bridge `cnifloor0` (made
//! once, with gateway 10.77.0.1/16) and the other as `eth0` in `CNI_NETNS`,
//! gives that an address, brings it up and adds a default route. No
//! configuration, no IPAM process, no result, no checks, no sysctls. DEL
//! deletes `eth0`. The address comes from the digits that end
//! `CNI_CONTAINERID`, so concurrent callers need distinct ones.

#![no_main]

use netlink::{Batch, Handle, LinkKind, Netns, NewAddr, NewLink, Route};

const BRIDGE: &str = "cnifloor0";

fn add(netns: &str, n: u32) -> netlink::Result<()> {
    let ns = Netns::open(netns)?;
    let mut host = Handle::new()?;
    let br = match host.find_link(BRIDGE)? {
        Some(br) => br,
        None => {
            let mut new = NewLink::new(BRIDGE, LinkKind::Bridge);
            new.up = true;
            match host.add_link(&new) {
                Ok(br) => {
                    host.add_address(
                        &NewAddr::new(br.index, "10.77.0.1/16".parse().unwrap_or_default()).nodad(),
                    )?;
                    br
                }
                // A concurrent caller made it just now.
                Err(e) if e.is_exists() => host.link_by_name(BRIDGE)?,
                Err(e) => return Err(e),
            }
        }
    };
    let name = netlink::random_name("veth")?;
    let mut new = NewLink::veth(&name, "eth0", Some(&ns));
    new.master = Some(br.index);
    new.up = true;
    host.add_link(&new)?;
    let mut cont = ns.handle()?;
    let eth0 = cont.link_by_name("eth0")?;
    let address = format!("10.77.{}.{}/16", 1 + n / 250, 2 + n % 250);
    let mut batch = Batch::new();
    batch.add_address(&NewAddr::new(eth0.index, address.parse().unwrap_or_default()).nodad());
    batch.set_up(eth0.index);
    let mut default = Route::new("0.0.0.0/0".parse().unwrap_or_default());
    default.gw = "10.77.0.1".parse().ok();
    default.oif = Some(eth0.index);
    batch.add_route(&default);
    batch.commit(&mut cont)
}

fn del(netns: &str) -> netlink::Result<()> {
    match Netns::open_if_exists(netns)? {
        Some(ns) => ns.handle()?.delete_link_by_name("eth0").map(drop),
        None => Ok(()),
    }
}

#[no_mangle]
pub extern "C" fn main(_argc: i32, _argv: *const *const std::ffi::c_char) -> i32 {
    cni::skel::prepare_process();
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let id = env("CNI_CONTAINERID");
    let digits = id.trim_start_matches(|c: char| !c.is_ascii_digit());
    let n = digits.parse().unwrap_or(0);
    let done = match env("CNI_COMMAND").as_str() {
        "ADD" => add(&env("CNI_NETNS"), n),
        "DEL" => del(&env("CNI_NETNS")),
        _ => Ok(()),
    };
    match done {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("floor: {e}");
            1
        }
    }
}
