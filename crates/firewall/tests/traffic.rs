//! Masquerade really rewrites traffic: client → router (masquerading the
//! client's address) → server. The server has no route back to the client's
//! subnet, so a reply arrives only if the router masqueraded, and the server
//! reports the source address it saw. No tools needed: the traffic is UDP
//! from sockets opened inside the namespaces.

mod common;

use common::*;
use firewall::Instance;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::Duration;

/// Only reached when traffic is lost, i.e. when the test fails.
const LOST: Duration = Duration::from_secs(5);

struct Topology {
    client: Netns,
    router: Netns,
    server: Netns,
}

fn topology() -> Topology {
    let t = Topology {
        client: Netns::new("fwtc"),
        router: Netns::new("fwtr"),
        server: Netns::new("fwts"),
    };
    t.router.ip(&[
        "link",
        "add",
        "r0",
        "type",
        "veth",
        "peer",
        "name",
        "c0",
        "netns",
        &t.client.name,
    ]);
    t.router.ip(&[
        "link",
        "add",
        "r1",
        "type",
        "veth",
        "peer",
        "name",
        "s0",
        "netns",
        &t.server.name,
    ]);
    for (ns, dev, v4, v6) in [
        (&t.client, "c0", "10.50.1.2/24", "fd00:50:1::2/64"),
        (&t.router, "r0", "10.50.1.1/24", "fd00:50:1::1/64"),
        (&t.router, "r1", "10.50.2.1/24", "fd00:50:2::1/64"),
        (&t.server, "s0", "10.50.2.2/24", "fd00:50:2::2/64"),
    ] {
        ns.ip(&["addr", "add", v4, "dev", dev]);
        ns.ip(&["-6", "addr", "add", v6, "dev", dev, "nodad"]);
        ns.ip(&["link", "set", dev, "up"]);
    }
    t.client
        .ip(&["route", "add", "default", "via", "10.50.1.1"]);
    t.client
        .ip(&["-6", "route", "add", "default", "via", "fd00:50:1::1"]);
    sh(
        &t.router,
        "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1",
    );
    t
}

/// Send one datagram from a new client socket to `server_ip`; returns the
/// source the server saw and whether the client got the server's echo.
fn exchange(t: &Topology, server_ip: &str, want_reply: bool) -> (IpAddr, bool) {
    let ip: IpAddr = server_ip.parse().unwrap();
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        let server = s.spawn(move || {
            in_ns(&t.server, || {
                let sock = UdpSocket::bind(SocketAddr::new(ip, 0)).unwrap();
                sock.set_read_timeout(Some(LOST)).unwrap();
                tx.send(sock.local_addr().unwrap()).unwrap();
                let mut buf = [0u8; 64];
                let (n, peer) = sock.recv_from(&mut buf).expect("server got nothing");
                // Only routable back if the source is the router's address.
                let _ = sock.send_to(&buf[..n], peer);
                peer.ip()
            })
        });
        let to = rx.recv().unwrap();
        let replied = in_ns(&t.client, || {
            let any: IpAddr = if ip.is_ipv4() {
                "0.0.0.0".parse().unwrap()
            } else {
                "::".parse().unwrap()
            };
            let sock = UdpSocket::bind(SocketAddr::new(any, 0)).unwrap();
            sock.set_read_timeout(Some(LOST)).unwrap();
            sock.send_to(b"hello", to).unwrap();
            want_reply && sock.recv_from(&mut [0u8; 64]).is_ok()
        });
        (server.join().unwrap(), replied)
    })
}

fn masquerade_works(backend: &str) {
    let t = topology();
    let who = Instance {
        network: "natnet",
        container_id: "client",
        ifname: "eth0",
    };
    in_ns(&t.router, || {
        firewall::masquerade(Some(backend))
            .unwrap()
            .add(
                &who,
                &[
                    "10.50.1.2/24".parse().unwrap(),
                    "fd00:50:1::2/64".parse().unwrap(),
                ],
            )
            .unwrap()
    });
    let (seen, replied) = exchange(&t, "10.50.2.2", true);
    assert_eq!(seen, "10.50.2.1".parse::<IpAddr>().unwrap());
    assert!(replied, "IPv4 reply did not come back through the NAT");
    let (seen, replied) = exchange(&t, "fd00:50:2::2", true);
    assert_eq!(seen, "fd00:50:2::1".parse::<IpAddr>().unwrap());
    assert!(replied, "IPv6 reply did not come back through the NAT");

    // After DEL a new flow reaches the server with the client's own address.
    in_ns(&t.router, || {
        firewall::masquerade(None).unwrap().del(&who).unwrap()
    });
    let (seen, _) = exchange(&t, "10.50.2.2", false);
    assert_eq!(seen, "10.50.1.2".parse::<IpAddr>().unwrap());
    let (seen, _) = exchange(&t, "fd00:50:2::2", false);
    assert_eq!(seen, "fd00:50:1::2".parse::<IpAddr>().unwrap());
}

#[test]
fn native_masquerade_rewrites_traffic() {
    masquerade_works("nftables");
}

#[test]
fn iptables_masquerade_rewrites_traffic() {
    masquerade_works("iptables");
}
