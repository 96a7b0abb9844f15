//! Whatever arrives on stdin or in the environment, dispatch answers with a
//! CNI document and never panics: mutated configs, results and CNI_ARGS.

use cni::skel::{dispatch, About, Outcome};
use cni::{CniResult, Plugin, Request, Result};
use std::collections::HashMap;

/// Parses everything a real plugin would: its prevResult, CNI_ARGS, GC list.
struct Curious;

impl Plugin for Curious {
    fn add(&self, req: &Request) -> Result<CniResult> {
        let _ = req.cni_args(&["IP", "MAC"])?;
        Ok(req.prev_result()?.unwrap_or_default())
    }
    fn del(&self, req: &Request) -> Result<()> {
        req.prev_result().map(drop)
    }
    fn check(&self, req: &Request) -> Result<()> {
        req.prev_result().map(drop)
    }
    fn gc(&self, req: &Request) -> Result<()> {
        req.valid_attachments().map(drop)
    }
}

/// xorshift64*: deterministic, so a failure names a reproducible round.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const SEEDS: &[&str] = &[
    r#"{"cniVersion":"1.1.0","name":"n","type":"x","prevResult":{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","mtu":1500,"pciID":"a"}],"ips":[{"address":"10.0.0.2/24","gateway":"10.0.0.1","interface":0}],"routes":[{"dst":"0.0.0.0/0","table":7,"scope":0}],"dns":{"nameservers":["1.1.1.1"]}}}"#,
    r#"{"cniVersion":"0.2.0","name":"n","prevResult":{"ip4":{"ip":"10.0.0.2/24","routes":[{"dst":"0.0.0.0/0"}]},"ip6":{"ip":"fd00::2/64"}}}"#,
    r#"{"cniVersion":"0.4.0","name":"n","prevResult":{"ips":[{"version":"6","address":"fd00::2/64"}]},"runtimeConfig":{"ips":["10.0.0.2/24"]},"args":{"cni":{"ips":["x"]}}}"#,
    r#"{"cniVersion":"1.1.0","name":"n","cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]}"#,
];

const ALPHABET: &[u8] = b"{}[]\":,0123456789.-/ abcdefghijklmnopqrstuvwxyz\\\0\xff";

fn mutate(rng: &mut Rng, seed: &str) -> Vec<u8> {
    let mut bytes = seed.as_bytes().to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(3) {
            0 if at < bytes.len() => {
                bytes.remove(at);
            }
            1 if at < bytes.len() => bytes[at] = ALPHABET[rng.below(ALPHABET.len())],
            _ => bytes.insert(at, ALPHABET[rng.below(ALPHABET.len())]),
        }
    }
    bytes
}

fn run(command: &str, args: &str, stdin: &[u8]) -> Outcome {
    let env: HashMap<&str, String> = [
        ("CNI_COMMAND", command.to_string()),
        ("CNI_CONTAINERID", "c1".into()),
        ("CNI_NETNS", "/run/netns/nonexistent".into()),
        ("CNI_IFNAME", "eth0".into()),
        ("CNI_PATH", "/nonexistent".into()),
        ("CNI_ARGS", args.to_string()),
    ]
    .into_iter()
    .collect();
    let get = |k: &str| env.get(k).cloned();
    dispatch(&Curious, &About::new("curious"), &get, &mut &stdin[..])
}

#[test]
fn mutated_input_always_gets_a_cni_answer() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let commands = ["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"];
    let args = [
        "",
        "IP=1.2.3.4",
        "IP=a=b",
        ";;",
        "IgnoreUnknown=1;X=\u{0}",
        "MAC",
    ];
    let (mut ok, mut failed) = (0, 0);
    for round in 0..20_000 {
        let seed = SEEDS[rng.below(SEEDS.len())];
        let stdin = mutate(&mut rng, seed);
        let command = commands[rng.below(commands.len())];
        let out = run(command, args[rng.below(args.len())], &stdin);
        if out.code == 0 {
            ok += 1;
            continue;
        }
        failed += 1;
        let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "round {round}: error output is not JSON ({e}): {}",
                out.stdout
            )
        });
        let code = doc["code"].as_u64().unwrap_or(0);
        assert!(code > 0, "round {round}: error without a code: {doc}");
        assert!(
            !doc["msg"].as_str().unwrap_or_default().is_empty(),
            "round {round}: error without a message: {doc}"
        );
    }
    // The mutations must exercise both paths, or the test proves little.
    assert!(ok > 1000 && failed > 1000, "ok {ok}, failed {failed}");
}
