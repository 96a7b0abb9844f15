//! nf_tables netlink messages, encoded by hand.
//!
//! Split as in smoltcp's `wire`: [`Attrs`] reads attributes out of bytes and
//! never panics on short or hostile input, [`Writer`] appends them, and the
//! typed reprs ([`TableRepr`], [`ChainRepr`], [`RuleRepr`], [`Expr`], ...)
//! have `parse` and `emit`. Numbers are the kernel's uapi values
//! (`linux/netfilter/nf_tables.h`, `nfnetlink.h`); nf_tables integers are
//! big-endian on the wire.

use crate::{Error, Result};
use netlink_packet_core::{ErrorBuffer, NetlinkBuffer, NLMSG_DONE, NLMSG_ERROR};

/// Constants from the kernel's uapi headers.
pub mod consts {
    pub const NFNETLINK_V0: u8 = 0;
    pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
    pub const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
    pub const NFNL_MSG_BATCH_END: u16 = 0x11;
    pub const NFNL_BATCH_GENID: u16 = 1;

    pub const NFT_MSG_NEWTABLE: u8 = 0;
    pub const NFT_MSG_GETTABLE: u8 = 1;
    pub const NFT_MSG_DELTABLE: u8 = 2;
    pub const NFT_MSG_NEWCHAIN: u8 = 3;
    pub const NFT_MSG_GETCHAIN: u8 = 4;
    pub const NFT_MSG_DELCHAIN: u8 = 5;
    pub const NFT_MSG_NEWRULE: u8 = 6;
    pub const NFT_MSG_GETRULE: u8 = 7;
    pub const NFT_MSG_DELRULE: u8 = 8;
    pub const NFT_MSG_NEWGEN: u8 = 15;
    pub const NFT_MSG_GETGEN: u8 = 16;

    pub const NFPROTO_UNSPEC: u8 = 0;
    pub const NFPROTO_INET: u8 = 1;
    pub const NFPROTO_IPV4: u8 = 2;
    pub const NFPROTO_IPV6: u8 = 10;

    pub const NFTA_TABLE_NAME: u16 = 1;
    pub const NFTA_TABLE_FLAGS: u16 = 2;
    pub const NFTA_TABLE_HANDLE: u16 = 4;
    pub const NFTA_TABLE_USERDATA: u16 = 6;

    pub const NFTA_CHAIN_TABLE: u16 = 1;
    pub const NFTA_CHAIN_HANDLE: u16 = 2;
    pub const NFTA_CHAIN_NAME: u16 = 3;
    pub const NFTA_CHAIN_HOOK: u16 = 4;
    pub const NFTA_CHAIN_POLICY: u16 = 5;
    pub const NFTA_CHAIN_TYPE: u16 = 7;
    pub const NFTA_CHAIN_FLAGS: u16 = 10;
    pub const NFTA_CHAIN_USERDATA: u16 = 12;
    pub const NFTA_HOOK_HOOKNUM: u16 = 1;
    pub const NFTA_HOOK_PRIORITY: u16 = 2;

    pub const NFTA_RULE_TABLE: u16 = 1;
    pub const NFTA_RULE_CHAIN: u16 = 2;
    pub const NFTA_RULE_HANDLE: u16 = 3;
    pub const NFTA_RULE_EXPRESSIONS: u16 = 4;
    pub const NFTA_RULE_POSITION: u16 = 6;
    pub const NFTA_RULE_USERDATA: u16 = 7;

    pub const NFTA_GEN_ID: u16 = 1;

    pub const NFTA_LIST_ELEM: u16 = 1;
    pub const NFTA_EXPR_NAME: u16 = 1;
    pub const NFTA_EXPR_DATA: u16 = 2;
    pub const NFTA_DATA_VALUE: u16 = 1;
    pub const NFTA_DATA_VERDICT: u16 = 2;
    pub const NFTA_VERDICT_CODE: u16 = 1;
    pub const NFTA_VERDICT_CHAIN: u16 = 2;

    pub const NFTA_META_DREG: u16 = 1;
    pub const NFTA_META_KEY: u16 = 2;
    pub const NFTA_CMP_SREG: u16 = 1;
    pub const NFTA_CMP_OP: u16 = 2;
    pub const NFTA_CMP_DATA: u16 = 3;
    pub const NFTA_PAYLOAD_DREG: u16 = 1;
    pub const NFTA_PAYLOAD_BASE: u16 = 2;
    pub const NFTA_PAYLOAD_OFFSET: u16 = 3;
    pub const NFTA_PAYLOAD_LEN: u16 = 4;
    pub const NFTA_BITWISE_SREG: u16 = 1;
    pub const NFTA_BITWISE_DREG: u16 = 2;
    pub const NFTA_BITWISE_LEN: u16 = 3;
    pub const NFTA_BITWISE_MASK: u16 = 4;
    pub const NFTA_BITWISE_XOR: u16 = 5;
    pub const NFTA_BITWISE_OP: u16 = 6;
    pub const NFTA_IMMEDIATE_DREG: u16 = 1;
    pub const NFTA_IMMEDIATE_DATA: u16 = 2;
    pub const NFTA_MASQ_FLAGS: u16 = 1;
    pub const NFTA_COUNTER_BYTES: u16 = 1;
    pub const NFTA_COUNTER_PACKETS: u16 = 2;
    /// Same numbers for NFTA_TARGET_*.
    pub const NFTA_MATCH_NAME: u16 = 1;
    pub const NFTA_MATCH_REV: u16 = 2;
    pub const NFTA_MATCH_INFO: u16 = 3;

    pub const NFT_REG_VERDICT: u32 = 0;
    pub const NFT_REG_1: u32 = 1;
    pub const NFT_CMP_EQ: u32 = 0;
    pub const NFT_CMP_NEQ: u32 = 1;
    pub const NFT_META_NFPROTO: u32 = 15;
    pub const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;

    pub const NF_ACCEPT: i32 = 1;
    pub const NFT_JUMP: i32 = -3;
    pub const NFT_GOTO: i32 = -4;
    pub const NFT_RETURN: i32 = -5;

    pub const NF_INET_POST_ROUTING: u32 = 4;
    /// `srcnat`: the priority nat postrouting chains use.
    pub const NF_IP_PRI_NAT_SRC: i32 = 100;

    /// libnftnl's userdata TLV type for comments (same for tables, chains, rules).
    pub const NFTNL_UDATA_COMMENT: u8 = 0;

    pub const NLA_F_NESTED: u16 = 0x8000;
    pub const NLA_TYPE_MASK: u16 = 0x3fff;
}
use consts::*;

fn malformed(what: &str) -> Error {
    Error::Malformed(what.to_string())
}

// ---------------------------------------------------------------- reading

/// One netlink attribute: its type (flag bits stripped) and value.
#[derive(Debug, Clone, Copy)]
pub struct Attr<'a> {
    pub kind: u16,
    pub value: &'a [u8],
}

impl<'a> Attr<'a> {
    pub fn be32(&self) -> Result<u32> {
        let b: [u8; 4] = self
            .value
            .try_into()
            .map_err(|_| malformed("32-bit attribute of wrong size"))?;
        Ok(u32::from_be_bytes(b))
    }

    pub fn be64(&self) -> Result<u64> {
        let b: [u8; 8] = self
            .value
            .try_into()
            .map_err(|_| malformed("64-bit attribute of wrong size"))?;
        Ok(u64::from_be_bytes(b))
    }

    /// A NUL-terminated string; bytes that are not UTF-8 are replaced.
    pub fn string(&self) -> String {
        let end = self
            .value
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.value.len());
        String::from_utf8_lossy(self.value.get(..end).unwrap_or_default()).into_owned()
    }

    pub fn nested(&self) -> Attrs<'a> {
        Attrs::new(self.value)
    }
}

/// Iterator over the attributes in a buffer. Yields an error (and then stops)
/// at the first attribute whose length does not fit.
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Attrs<'a> {
    pub fn new(buf: &'a [u8]) -> Attrs<'a> {
        Attrs { rest: buf }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<Attr<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let parsed = (|| {
            let hdr = self.rest.get(..4)?;
            let len = usize::from(u16::from_ne_bytes([hdr[0], hdr[1]]));
            let kind = u16::from_ne_bytes([hdr[2], hdr[3]]) & NLA_TYPE_MASK;
            let value = self.rest.get(4..len)?;
            let next = self.rest.get(align4(len)..).unwrap_or_default();
            Some((Attr { kind, value }, next))
        })();
        match parsed {
            Some((attr, next)) => {
                self.rest = next;
                Some(Ok(attr))
            }
            None => {
                self.rest = &[];
                Some(Err(malformed("attribute length exceeds its buffer")))
            }
        }
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

// ---------------------------------------------------------------- writing

/// Appends attributes to a message buffer. Values that cannot be encoded (an
/// attribute longer than 64 KiB) are remembered and reported by [`push_msg`].
pub struct Writer<'a> {
    buf: &'a mut Vec<u8>,
    too_long: bool,
}

impl Writer<'_> {
    fn header(&mut self, kind: u16, len: usize) {
        let len = u16::try_from(len).unwrap_or_else(|_| {
            self.too_long = true;
            0
        });
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
    }

    fn pad(&mut self) {
        let n = align4(self.buf.len()) - self.buf.len();
        self.buf.extend(std::iter::repeat_n(0u8, n));
    }

    pub fn bytes(&mut self, kind: u16, value: &[u8]) {
        self.header(kind, 4 + value.len());
        self.buf.extend_from_slice(value);
        self.pad();
    }

    /// A string with its terminating NUL, as the kernel's NLA_STRING expects.
    pub fn string(&mut self, kind: u16, s: &str) {
        self.header(kind, 4 + s.len() + 1);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        self.pad();
    }

    pub fn be32(&mut self, kind: u16, v: u32) {
        self.bytes(kind, &v.to_be_bytes());
    }

    pub fn be64(&mut self, kind: u16, v: u64) {
        self.bytes(kind, &v.to_be_bytes());
    }

    /// A nested attribute whose contents `f` writes.
    pub fn nest(&mut self, kind: u16, f: impl FnOnce(&mut Self)) {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        f(self);
        let len = self.buf.len() - start;
        let len = u16::try_from(len).unwrap_or_else(|_| {
            self.too_long = true;
            0
        });
        let kind = kind | NLA_F_NESTED;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self.buf[start + 2..start + 4].copy_from_slice(&kind.to_ne_bytes());
    }
}

// ---------------------------------------------------------------- messages

/// Netlink header length.
pub const NLMSG_HDRLEN: usize = 16;
/// `struct nfgenmsg` length.
pub const NFGENMSG_LEN: usize = 4;

/// The nlmsghdr and nfgenmsg fields of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgHeader {
    /// Full netlink type, e.g. `nft_type(NFT_MSG_NEWRULE)`.
    pub msg_type: u16,
    pub flags: u16,
    pub seq: u32,
    pub family: u8,
    /// Host order; sent big-endian.
    pub res_id: u16,
}

/// The netlink message type of an nf_tables message.
pub fn nft_type(msg: u8) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | u16::from(msg)
}

/// Append one complete message (headers, then the attributes `body` writes).
/// On error nothing is appended.
pub fn push_msg(buf: &mut Vec<u8>, hdr: &MsgHeader, body: impl FnOnce(&mut Writer)) -> Result<()> {
    let start = buf.len();
    buf.extend_from_slice(&[0; NLMSG_HDRLEN]);
    buf.push(hdr.family);
    buf.push(NFNETLINK_V0);
    buf.extend_from_slice(&hdr.res_id.to_be_bytes());
    let mut w = Writer {
        buf,
        too_long: false,
    };
    body(&mut w);
    let too_long = w.too_long;
    let len = u32::try_from(buf.len() - start).ok();
    match len {
        Some(len) if !too_long => {
            let mut nl = NetlinkBuffer::new(&mut buf[start..]);
            nl.set_length(len);
            nl.set_message_type(hdr.msg_type);
            nl.set_flags(hdr.flags);
            nl.set_sequence_number(hdr.seq);
            nl.set_port_number(0);
            Ok(())
        }
        _ => {
            buf.truncate(start);
            Err(malformed("message too long to encode"))
        }
    }
}

/// One message received from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// NLMSG_ERROR: `errno` 0 is an acknowledgement, else a negative errno.
    /// `text` is the kernel's extended-ack message, if any.
    Error {
        seq: u32,
        errno: i32,
        text: Option<String>,
    },
    /// NLMSG_DONE ends a dump; `errno` is non-zero when the dump failed.
    Done { seq: u32, errno: i32 },
    /// An nfnetlink message.
    Msg { hdr: MsgHeader, attrs: &'a [u8] },
}

/// Walk the messages in one datagram from the kernel.
pub fn parse_incoming(buf: &[u8]) -> impl Iterator<Item = Result<Incoming<'_>>> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let nl = match NetlinkBuffer::new_checked(rest) {
            Ok(nl) => nl,
            Err(_) => {
                rest = &[];
                return Some(Err(malformed("truncated netlink message")));
            }
        };
        let len = nl.length() as usize;
        let (msg_type, flags, seq) = (nl.message_type(), nl.flags(), nl.sequence_number());
        let payload = rest.get(NLMSG_HDRLEN..len).unwrap_or_default();
        rest = rest.get(align4(len)..).unwrap_or_default();
        Some(parse_one(msg_type, flags, seq, payload))
    })
}

fn parse_one(msg_type: u16, flags: u16, seq: u32, payload: &[u8]) -> Result<Incoming<'_>> {
    let code = |p: &[u8]| -> Result<i32> {
        let b: [u8; 4] = p
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| malformed("short error message"))?;
        Ok(i32::from_ne_bytes(b))
    };
    match msg_type {
        NLMSG_ERROR => {
            let eb =
                ErrorBuffer::new_checked(payload).map_err(|_| malformed("short error message"))?;
            let errno = eb.code().map(|c| c.get()).unwrap_or(0);
            Ok(Incoming::Error {
                seq,
                errno,
                text: extack_text(flags, payload),
            })
        }
        NLMSG_DONE => Ok(Incoming::Done {
            seq,
            // The payload (an int) may be absent on old kernels: then success.
            errno: if payload.is_empty() {
                0
            } else {
                code(payload)?
            },
        }),
        _ => {
            let g = payload
                .get(..NFGENMSG_LEN)
                .ok_or_else(|| malformed("message shorter than nfgenmsg"))?;
            Ok(Incoming::Msg {
                hdr: MsgHeader {
                    msg_type,
                    flags,
                    seq,
                    family: g[0],
                    res_id: u16::from_be_bytes([g[2], g[3]]),
                },
                attrs: payload.get(NFGENMSG_LEN..).unwrap_or_default(),
            })
        }
    }
}

/// The NLMSGERR_ATTR_MSG text of an error carrying extended-ack TLVs.
fn extack_text(flags: u16, payload: &[u8]) -> Option<String> {
    const NLM_F_CAPPED: u16 = 0x100;
    const NLM_F_ACK_TLVS: u16 = 0x200;
    const NLMSGERR_ATTR_MSG: u16 = 1;
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    // After the errno comes the offending message: its header only when capped.
    let inner_len = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        let b = payload.get(4..8)?;
        u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize
    };
    let tlvs = payload.get(4 + align4(inner_len)..)?;
    Attrs::new(tlvs)
        .map_while(|a| a.ok())
        .find(|a| a.kind == NLMSGERR_ATTR_MSG)
        .map(|a| a.string())
}

// ---------------------------------------------------------------- userdata

/// Userdata holding one comment TLV, as nft writes for `comment "..."`.
/// Comments longer than a TLV can carry are cut.
pub fn comment_udata(comment: &[u8]) -> Vec<u8> {
    let c = &comment[..comment.len().min(usize::from(u8::MAX) - 1)];
    let mut v = Vec::with_capacity(c.len() + 3);
    v.push(NFTNL_UDATA_COMMENT);
    v.push(c.len() as u8 + 1);
    v.extend_from_slice(c);
    v.push(0);
    v
}

/// The comment in a userdata blob, without its NUL; None when there is none.
pub fn udata_comment(udata: &[u8]) -> Option<&[u8]> {
    let mut rest = udata;
    while let [kind, len, tail @ ..] = rest {
        let value = tail.get(..usize::from(*len))?;
        if *kind == NFTNL_UDATA_COMMENT {
            let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
            return value.get(..end);
        }
        rest = tail.get(usize::from(*len)..)?;
    }
    None
}

// ---------------------------------------------------------------- objects

/// A table (NEWTABLE/DELTABLE requests, GETTABLE replies).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableRepr {
    pub family: u8,
    pub name: String,
    pub flags: Option<u32>,
    pub handle: Option<u64>,
    pub userdata: Option<Vec<u8>>,
}

impl TableRepr {
    pub fn parse(family: u8, attrs: &[u8]) -> Result<Self> {
        let mut t = TableRepr {
            family,
            ..Default::default()
        };
        for a in Attrs::new(attrs) {
            let a = a?;
            match a.kind {
                NFTA_TABLE_NAME => t.name = a.string(),
                NFTA_TABLE_FLAGS => t.flags = Some(a.be32()?),
                NFTA_TABLE_HANDLE => t.handle = Some(a.be64()?),
                NFTA_TABLE_USERDATA => t.userdata = Some(a.value.to_vec()),
                _ => {}
            }
        }
        if t.name.is_empty() {
            return Err(malformed("table without a name"));
        }
        Ok(t)
    }

    pub fn emit(&self, w: &mut Writer) {
        w.string(NFTA_TABLE_NAME, &self.name);
        if let Some(f) = self.flags {
            w.be32(NFTA_TABLE_FLAGS, f);
        }
        if let Some(h) = self.handle {
            w.be64(NFTA_TABLE_HANDLE, h);
        }
        if let Some(u) = &self.userdata {
            w.bytes(NFTA_TABLE_USERDATA, u);
        }
    }
}

/// A base chain's hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hook {
    pub num: u32,
    pub priority: i32,
}

/// A chain (NEWCHAIN/DELCHAIN requests, GETCHAIN replies).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChainRepr {
    pub family: u8,
    pub table: String,
    pub name: String,
    pub handle: Option<u64>,
    pub hook: Option<Hook>,
    pub policy: Option<u32>,
    /// `filter`, `nat` or `route`; base chains only.
    pub chain_type: Option<String>,
    pub flags: Option<u32>,
    pub userdata: Option<Vec<u8>>,
}

impl ChainRepr {
    pub fn parse(family: u8, attrs: &[u8]) -> Result<Self> {
        let mut c = ChainRepr {
            family,
            ..Default::default()
        };
        for a in Attrs::new(attrs) {
            let a = a?;
            match a.kind {
                NFTA_CHAIN_TABLE => c.table = a.string(),
                NFTA_CHAIN_NAME => c.name = a.string(),
                NFTA_CHAIN_HANDLE => c.handle = Some(a.be64()?),
                NFTA_CHAIN_POLICY => c.policy = Some(a.be32()?),
                NFTA_CHAIN_TYPE => c.chain_type = Some(a.string()),
                NFTA_CHAIN_FLAGS => c.flags = Some(a.be32()?),
                NFTA_CHAIN_USERDATA => c.userdata = Some(a.value.to_vec()),
                NFTA_CHAIN_HOOK => {
                    let (mut num, mut priority) = (None, None);
                    for h in a.nested() {
                        let h = h?;
                        match h.kind {
                            NFTA_HOOK_HOOKNUM => num = Some(h.be32()?),
                            NFTA_HOOK_PRIORITY => priority = Some(h.be32()? as i32),
                            _ => {}
                        }
                    }
                    if let (Some(num), Some(priority)) = (num, priority) {
                        c.hook = Some(Hook { num, priority });
                    }
                }
                _ => {}
            }
        }
        if c.table.is_empty() || c.name.is_empty() {
            return Err(malformed("chain without a table or name"));
        }
        Ok(c)
    }

    pub fn emit(&self, w: &mut Writer) {
        w.string(NFTA_CHAIN_TABLE, &self.table);
        w.string(NFTA_CHAIN_NAME, &self.name);
        if let Some(h) = self.handle {
            w.be64(NFTA_CHAIN_HANDLE, h);
        }
        if let Some(hook) = self.hook {
            w.nest(NFTA_CHAIN_HOOK, |w| {
                w.be32(NFTA_HOOK_HOOKNUM, hook.num);
                w.be32(NFTA_HOOK_PRIORITY, hook.priority as u32);
            });
        }
        if let Some(p) = self.policy {
            w.be32(NFTA_CHAIN_POLICY, p);
        }
        if let Some(t) = &self.chain_type {
            w.string(NFTA_CHAIN_TYPE, t);
        }
        if let Some(f) = self.flags {
            w.be32(NFTA_CHAIN_FLAGS, f);
        }
        if let Some(u) = &self.userdata {
            w.bytes(NFTA_CHAIN_USERDATA, u);
        }
    }
}

/// A rule (NEWRULE/DELRULE requests, GETRULE replies). A DELRULE with no
/// handle flushes the chain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuleRepr {
    pub family: u8,
    pub table: String,
    pub chain: String,
    pub handle: Option<u64>,
    pub position: Option<u64>,
    pub exprs: Vec<Expr>,
    pub userdata: Option<Vec<u8>>,
}

impl RuleRepr {
    pub fn parse(family: u8, attrs: &[u8]) -> Result<Self> {
        Self::parse_with(family, attrs, true)
    }

    /// Everything but the expressions (left empty): enough to find a rule by
    /// its comment, at a fraction of the cost on large dumps.
    pub fn parse_head(family: u8, attrs: &[u8]) -> Result<Self> {
        Self::parse_with(family, attrs, false)
    }

    fn parse_with(family: u8, attrs: &[u8], exprs: bool) -> Result<Self> {
        let mut r = RuleRepr {
            family,
            ..Default::default()
        };
        for a in Attrs::new(attrs) {
            let a = a?;
            match a.kind {
                NFTA_RULE_TABLE => r.table = a.string(),
                NFTA_RULE_CHAIN => r.chain = a.string(),
                NFTA_RULE_HANDLE => r.handle = Some(a.be64()?),
                NFTA_RULE_POSITION => r.position = Some(a.be64()?),
                NFTA_RULE_USERDATA => r.userdata = Some(a.value.to_vec()),
                NFTA_RULE_EXPRESSIONS if exprs => {
                    for e in a.nested() {
                        let e = e?;
                        if e.kind == NFTA_LIST_ELEM {
                            r.exprs.push(Expr::parse(e.value)?);
                        }
                    }
                }
                _ => {}
            }
        }
        if r.table.is_empty() || r.chain.is_empty() {
            return Err(malformed("rule without a table or chain"));
        }
        Ok(r)
    }

    pub fn emit(&self, w: &mut Writer) {
        w.string(NFTA_RULE_TABLE, &self.table);
        w.string(NFTA_RULE_CHAIN, &self.chain);
        if let Some(h) = self.handle {
            w.be64(NFTA_RULE_HANDLE, h);
        }
        if let Some(p) = self.position {
            w.be64(NFTA_RULE_POSITION, p);
        }
        if !self.exprs.is_empty() {
            w.nest(NFTA_RULE_EXPRESSIONS, |w| {
                for e in &self.exprs {
                    w.nest(NFTA_LIST_ELEM, |w| e.emit(w));
                }
            });
        }
        if let Some(u) = &self.userdata {
            w.bytes(NFTA_RULE_USERDATA, u);
        }
    }

    /// The rule's comment (from its userdata), if any.
    pub fn comment(&self) -> Option<&[u8]> {
        self.userdata.as_deref().and_then(udata_comment)
    }
}

/// The ruleset generation (NEWGEN replies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenRepr {
    pub id: u32,
}

impl GenRepr {
    pub fn parse(attrs: &[u8]) -> Result<Self> {
        for a in Attrs::new(attrs) {
            let a = a?;
            if a.kind == NFTA_GEN_ID {
                return Ok(GenRepr { id: a.be32()? });
            }
        }
        Err(malformed("generation message without an id"))
    }

    pub fn emit(&self, w: &mut Writer) {
        w.be32(NFTA_GEN_ID, self.id);
    }
}

// ---------------------------------------------------------------- expressions

/// The value an immediate loads: data, or a verdict for the verdict register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    Value(Vec<u8>),
    Verdict { code: i32, chain: Option<String> },
}

impl Data {
    fn parse(a: Attr) -> Result<Self> {
        for d in a.nested() {
            let d = d?;
            match d.kind {
                NFTA_DATA_VALUE => return Ok(Data::Value(d.value.to_vec())),
                NFTA_DATA_VERDICT => {
                    let (mut code, mut chain) = (None, None);
                    for v in d.nested() {
                        let v = v?;
                        match v.kind {
                            NFTA_VERDICT_CODE => code = Some(v.be32()? as i32),
                            NFTA_VERDICT_CHAIN => chain = Some(v.string()),
                            _ => {}
                        }
                    }
                    let code = code.ok_or_else(|| malformed("verdict without a code"))?;
                    return Ok(Data::Verdict { code, chain });
                }
                _ => {}
            }
        }
        Err(malformed("data attribute without a value or verdict"))
    }

    fn emit(&self, w: &mut Writer, kind: u16) {
        match self {
            Data::Value(v) => emit_value(w, kind, v),
            Data::Verdict { code, chain } => w.nest(kind, |w| {
                w.nest(NFTA_DATA_VERDICT, |w| {
                    w.be32(NFTA_VERDICT_CODE, *code as u32);
                    if let Some(c) = chain {
                        w.string(NFTA_VERDICT_CHAIN, c);
                    }
                })
            }),
        }
    }
}

/// A nested NFTA_DATA_VALUE holding `v`.
fn emit_value(w: &mut Writer, kind: u16, v: &[u8]) {
    w.nest(kind, |w| w.bytes(NFTA_DATA_VALUE, v));
}

/// One rule expression. The ones we write or look for are typed; any other is
/// kept as [`Expr::Other`] with its raw attributes, so parsing never fails on
/// expressions we do not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Meta {
        key: u32,
        dreg: u32,
    },
    Cmp {
        sreg: u32,
        op: u32,
        data: Vec<u8>,
    },
    Payload {
        dreg: u32,
        base: u32,
        offset: u32,
        len: u32,
    },
    /// `dreg = (sreg & mask) ^ xor`; `op` 0 (boolean) is the only one we use.
    Bitwise {
        sreg: u32,
        dreg: u32,
        len: u32,
        op: u32,
        mask: Vec<u8>,
        xor: Vec<u8>,
    },
    Immediate {
        dreg: u32,
        data: Data,
    },
    Masq {
        flags: u32,
    },
    Counter {
        bytes: u64,
        packets: u64,
    },
    /// An xtables match run through nft_compat (iptables-nft), e.g. `comment`.
    Match {
        name: String,
        rev: u32,
        info: Vec<u8>,
    },
    /// An xtables target run through nft_compat, e.g. `MASQUERADE`.
    Target {
        name: String,
        rev: u32,
        info: Vec<u8>,
    },
    Other {
        name: String,
        data: Vec<u8>,
    },
}

impl Expr {
    /// Parse one NFTA_LIST_ELEM's contents.
    pub fn parse(elem: &[u8]) -> Result<Self> {
        let (mut name, mut data) = (None, &[][..]);
        for a in Attrs::new(elem) {
            let a = a?;
            match a.kind {
                NFTA_EXPR_NAME => name = Some(a.string()),
                NFTA_EXPR_DATA => data = a.value,
                _ => {}
            }
        }
        let name = name.ok_or_else(|| malformed("expression without a name"))?;
        Ok(Self::typed(&name, data)?.unwrap_or(Expr::Other {
            name,
            data: data.to_vec(),
        }))
    }

    /// The typed form, or None when `name` is unknown or its attributes have
    /// a shape we do not model.
    fn typed(name: &str, data: &[u8]) -> Result<Option<Self>> {
        let mut u32s = [None::<u32>; 8];
        let mut u64s = [None::<u64>; 3];
        let mut blobs: [Option<Vec<u8>>; 8] = Default::default();
        let mut imm = None;
        let mut text = None;
        for a in Attrs::new(data) {
            let a = a?;
            let k = usize::from(a.kind);
            match (name, a.kind) {
                ("cmp", NFTA_CMP_DATA) | ("bitwise", NFTA_BITWISE_MASK | NFTA_BITWISE_XOR) => {
                    match Data::parse(a)? {
                        Data::Value(v) => blobs[k] = Some(v),
                        Data::Verdict { .. } => return Ok(None),
                    }
                }
                ("immediate", NFTA_IMMEDIATE_DATA) => imm = Some(Data::parse(a)?),
                ("counter", NFTA_COUNTER_BYTES | NFTA_COUNTER_PACKETS) => u64s[k] = Some(a.be64()?),
                ("match" | "target", NFTA_MATCH_NAME) => text = Some(a.string()),
                ("match" | "target", NFTA_MATCH_INFO) => blobs[k] = Some(a.value.to_vec()),
                (_, 1..=7) if a.value.len() == 4 => u32s[k] = Some(a.be32()?),
                _ => {}
            }
        }
        let e = match name {
            "meta" => match (u32s[NFTA_META_KEY as usize], u32s[NFTA_META_DREG as usize]) {
                (Some(key), Some(dreg)) => Expr::Meta { key, dreg },
                _ => return Ok(None),
            },
            "cmp" => match (
                u32s[NFTA_CMP_SREG as usize],
                u32s[NFTA_CMP_OP as usize],
                blobs[NFTA_CMP_DATA as usize].take(),
            ) {
                (Some(sreg), Some(op), Some(data)) => Expr::Cmp { sreg, op, data },
                _ => return Ok(None),
            },
            "payload" => match (
                u32s[NFTA_PAYLOAD_DREG as usize],
                u32s[NFTA_PAYLOAD_BASE as usize],
                u32s[NFTA_PAYLOAD_OFFSET as usize],
                u32s[NFTA_PAYLOAD_LEN as usize],
            ) {
                (Some(dreg), Some(base), Some(offset), Some(len)) => Expr::Payload {
                    dreg,
                    base,
                    offset,
                    len,
                },
                _ => return Ok(None),
            },
            "bitwise" => match (
                u32s[NFTA_BITWISE_SREG as usize],
                u32s[NFTA_BITWISE_DREG as usize],
                u32s[NFTA_BITWISE_LEN as usize],
                u32s[NFTA_BITWISE_OP as usize].unwrap_or(0),
                blobs[NFTA_BITWISE_MASK as usize].take(),
                blobs[NFTA_BITWISE_XOR as usize].take(),
            ) {
                (Some(sreg), Some(dreg), Some(len), 0, Some(mask), Some(xor)) => Expr::Bitwise {
                    sreg,
                    dreg,
                    len,
                    op: 0,
                    mask,
                    xor,
                },
                _ => return Ok(None),
            },
            "immediate" => match (u32s[NFTA_IMMEDIATE_DREG as usize], imm) {
                (Some(dreg), Some(data)) => Expr::Immediate { dreg, data },
                _ => return Ok(None),
            },
            "masq" => Expr::Masq {
                flags: u32s[NFTA_MASQ_FLAGS as usize].unwrap_or(0),
            },
            "counter" => Expr::Counter {
                bytes: u64s[NFTA_COUNTER_BYTES as usize].unwrap_or(0),
                packets: u64s[NFTA_COUNTER_PACKETS as usize].unwrap_or(0),
            },
            "match" | "target" => match (text, u32s[NFTA_MATCH_REV as usize]) {
                (Some(n), Some(rev)) => {
                    let info = blobs[NFTA_MATCH_INFO as usize].take().unwrap_or_default();
                    if name == "match" {
                        Expr::Match { name: n, rev, info }
                    } else {
                        Expr::Target { name: n, rev, info }
                    }
                }
                _ => return Ok(None),
            },
            _ => return Ok(None),
        };
        Ok(Some(e))
    }

    pub fn name(&self) -> &str {
        match self {
            Expr::Meta { .. } => "meta",
            Expr::Cmp { .. } => "cmp",
            Expr::Payload { .. } => "payload",
            Expr::Bitwise { .. } => "bitwise",
            Expr::Immediate { .. } => "immediate",
            Expr::Masq { .. } => "masq",
            Expr::Counter { .. } => "counter",
            Expr::Match { .. } => "match",
            Expr::Target { .. } => "target",
            Expr::Other { name, .. } => name,
        }
    }

    /// Write NFTA_EXPR_NAME and NFTA_EXPR_DATA (the list element's contents).
    pub fn emit(&self, w: &mut Writer) {
        w.string(NFTA_EXPR_NAME, self.name());
        if let Expr::Other { data, .. } = self {
            if !data.is_empty() {
                w.bytes(NFTA_EXPR_DATA | NLA_F_NESTED, data);
            }
            return;
        }
        if let Expr::Masq { flags: 0 } = self {
            return;
        }
        w.nest(NFTA_EXPR_DATA, |w| match self {
            Expr::Meta { key, dreg } => {
                w.be32(NFTA_META_KEY, *key);
                w.be32(NFTA_META_DREG, *dreg);
            }
            Expr::Cmp { sreg, op, data } => {
                w.be32(NFTA_CMP_SREG, *sreg);
                w.be32(NFTA_CMP_OP, *op);
                emit_value(w, NFTA_CMP_DATA, data);
            }
            Expr::Payload {
                dreg,
                base,
                offset,
                len,
            } => {
                w.be32(NFTA_PAYLOAD_DREG, *dreg);
                w.be32(NFTA_PAYLOAD_BASE, *base);
                w.be32(NFTA_PAYLOAD_OFFSET, *offset);
                w.be32(NFTA_PAYLOAD_LEN, *len);
            }
            Expr::Bitwise {
                sreg,
                dreg,
                len,
                op,
                mask,
                xor,
            } => {
                w.be32(NFTA_BITWISE_SREG, *sreg);
                w.be32(NFTA_BITWISE_DREG, *dreg);
                w.be32(NFTA_BITWISE_LEN, *len);
                // Kernels before 5.6 reject the attribute; 0 is their only op.
                if *op != 0 {
                    w.be32(NFTA_BITWISE_OP, *op);
                }
                emit_value(w, NFTA_BITWISE_MASK, mask);
                emit_value(w, NFTA_BITWISE_XOR, xor);
            }
            Expr::Immediate { dreg, data } => {
                w.be32(NFTA_IMMEDIATE_DREG, *dreg);
                data.emit(w, NFTA_IMMEDIATE_DATA);
            }
            Expr::Masq { flags } => w.be32(NFTA_MASQ_FLAGS, *flags),
            Expr::Counter { bytes, packets } => {
                w.be64(NFTA_COUNTER_BYTES, *bytes);
                w.be64(NFTA_COUNTER_PACKETS, *packets);
            }
            Expr::Match { name, rev, info } | Expr::Target { name, rev, info } => {
                w.string(NFTA_MATCH_NAME, name);
                w.be32(NFTA_MATCH_REV, *rev);
                w.bytes(NFTA_MATCH_INFO, info);
            }
            Expr::Other { .. } => {}
        });
    }

    /// The chain this expression jumps or goes to, if it is such a verdict.
    pub fn jump_target(&self) -> Option<&str> {
        match self {
            Expr::Immediate {
                dreg: NFT_REG_VERDICT,
                data:
                    Data::Verdict {
                        code: NFT_JUMP | NFT_GOTO,
                        chain: Some(c),
                    },
            } => Some(c),
            _ => None,
        }
    }

    /// The text of an xtables `comment` match (iptables-nft stores
    /// `-m comment --comment` this way: a NUL-padded string).
    pub fn xt_comment(&self) -> Option<&[u8]> {
        match self {
            Expr::Match { name, info, .. } if name == "comment" => {
                let end = info.iter().position(|&b| b == 0).unwrap_or(info.len());
                info.get(..end)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emit_attrs(f: impl FnOnce(&mut Writer)) -> Vec<u8> {
        let mut buf = Vec::new();
        let hdr = MsgHeader {
            msg_type: nft_type(NFT_MSG_NEWRULE),
            flags: 1,
            seq: 7,
            family: NFPROTO_INET,
            res_id: 0,
        };
        push_msg(&mut buf, &hdr, f).unwrap();
        buf
    }

    /// Emit a message, walk it back with the incoming parser, return attrs.
    fn round_trip(f: impl FnOnce(&mut Writer)) -> (MsgHeader, Vec<u8>) {
        let buf = emit_attrs(f);
        let msgs: Vec<_> = parse_incoming(&buf).collect::<Result<_>>().unwrap();
        assert_eq!(msgs.len(), 1);
        match &msgs[0] {
            Incoming::Msg { hdr, attrs } => (*hdr, attrs.to_vec()),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn sample_exprs() -> Vec<Expr> {
        vec![
            Expr::Meta {
                key: NFT_META_NFPROTO,
                dreg: NFT_REG_1,
            },
            Expr::Cmp {
                sreg: NFT_REG_1,
                op: NFT_CMP_EQ,
                data: vec![2],
            },
            Expr::Payload {
                dreg: NFT_REG_1,
                base: NFT_PAYLOAD_NETWORK_HEADER,
                offset: 16,
                len: 4,
            },
            Expr::Bitwise {
                sreg: 1,
                dreg: 1,
                len: 4,
                op: 0,
                mask: vec![0xff, 0xff, 0xf8, 0],
                xor: vec![0; 4],
            },
            Expr::Cmp {
                sreg: 1,
                op: NFT_CMP_NEQ,
                data: vec![10, 1, 0, 0],
            },
            Expr::Counter {
                bytes: 1 << 40,
                packets: 3,
            },
            Expr::Match {
                name: "comment".into(),
                rev: 0,
                info: b"hello\0\0\0".to_vec(),
            },
            Expr::Target {
                name: "MASQUERADE".into(),
                rev: 0,
                info: vec![1, 2, 3],
            },
            Expr::Immediate {
                dreg: NFT_REG_VERDICT,
                data: Data::Verdict {
                    code: NFT_JUMP,
                    chain: Some("CNI-abc".into()),
                },
            },
            Expr::Immediate {
                dreg: NFT_REG_1,
                data: Data::Value(vec![9; 5]),
            },
            Expr::Masq { flags: 0 },
            Expr::Masq { flags: 4 },
            Expr::Other {
                name: "lookup".into(),
                data: vec![8, 0, 1, 0, 0, 0, 0, 1],
            },
        ]
    }

    #[test]
    fn table_round_trip() {
        let t = TableRepr {
            family: NFPROTO_INET,
            name: "cni_plugins_masquerade".into(),
            flags: Some(0),
            handle: Some(42),
            userdata: Some(comment_udata(b"hi")),
        };
        let (hdr, attrs) = round_trip(|w| t.emit(w));
        assert_eq!(TableRepr::parse(hdr.family, &attrs).unwrap(), t);
    }

    #[test]
    fn chain_round_trip() {
        let c = ChainRepr {
            family: NFPROTO_INET,
            table: "t".into(),
            name: "postrouting".into(),
            handle: Some(3),
            hook: Some(Hook {
                num: NF_INET_POST_ROUTING,
                priority: -150,
            }),
            policy: Some(1),
            chain_type: Some("nat".into()),
            flags: Some(1),
            userdata: Some(comment_udata(b"a chain")),
        };
        let (hdr, attrs) = round_trip(|w| c.emit(w));
        assert_eq!(ChainRepr::parse(hdr.family, &attrs).unwrap(), c);
    }

    #[test]
    fn rule_round_trip_with_every_expression() {
        let r = RuleRepr {
            family: NFPROTO_INET,
            table: "t".into(),
            chain: "c".into(),
            handle: Some(77),
            position: Some(5),
            exprs: sample_exprs(),
            userdata: Some(comment_udata(b"abc, net: x")),
        };
        let (hdr, attrs) = round_trip(|w| r.emit(w));
        let back = RuleRepr::parse(hdr.family, &attrs).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.comment(), Some(&b"abc, net: x"[..]));
        assert_eq!(back.exprs[8].jump_target(), Some("CNI-abc"));
        assert_eq!(back.exprs[6].xt_comment(), Some(&b"hello"[..]));
        let head = RuleRepr::parse_head(hdr.family, &attrs).unwrap();
        assert_eq!(head, RuleRepr { exprs: vec![], ..r });
    }

    #[test]
    fn gen_round_trip() {
        let g = GenRepr { id: 0xdead_beef };
        let (_, attrs) = round_trip(|w| g.emit(w));
        assert_eq!(GenRepr::parse(&attrs).unwrap(), g);
    }

    /// Bytes nft 1.0.6 sends for `add table inet t { comment "hi" ; }`
    /// (from `nft --debug=mnl`), after nlmsghdr.
    #[test]
    fn table_matches_nft_encoding() {
        let t = TableRepr {
            family: NFPROTO_INET,
            name: "t".into(),
            flags: Some(0),
            handle: None,
            userdata: Some(comment_udata(b"hi")),
        };
        let buf = emit_attrs(|w| t.emit(w));
        let expect: &[u8] = &[
            1, 0, 0, 0, // nfgenmsg: inet, v0, res_id 0
            6, 0, 1, 0, b't', 0, 0, 0, // NAME "t"
            8, 0, 2, 0, 0, 0, 0, 0, // FLAGS 0
            9, 0, 6, 0, 0, 3, b'h', b'i', 0, 0, 0, 0, // USERDATA comment "hi"
        ];
        assert_eq!(&buf[NLMSG_HDRLEN..], expect);
        assert_eq!(
            buf.len() as u32,
            u32::from_ne_bytes(buf[..4].try_into().unwrap())
        );
    }

    /// nft sends `meta load nfproto => reg 1` as KEY 15 then DREG 1.
    #[test]
    fn meta_matches_nft_encoding() {
        let mut buf = Vec::new();
        let mut w = Writer {
            buf: &mut buf,
            too_long: false,
        };
        Expr::Meta {
            key: NFT_META_NFPROTO,
            dreg: NFT_REG_1,
        }
        .emit(&mut w);
        let expect: &[u8] = &[
            9, 0, 1, 0, b'm', b'e', b't', b'a', 0, 0, 0, 0, // NAME "meta"
            20, 0, 2, 0x80, // DATA (nested)
            8, 0, 2, 0, 0, 0, 0, 15, // KEY nfproto
            8, 0, 1, 0, 0, 0, 0, 1, // DREG 1
        ];
        assert_eq!(buf, expect);
    }

    #[test]
    fn udata_comment_parsing() {
        assert_eq!(udata_comment(&comment_udata(b"x")), Some(&b"x"[..]));
        // Another TLV first, then the comment.
        let mut u = vec![1, 2, 0xaa, 0xbb];
        u.extend(comment_udata(b"c"));
        assert_eq!(udata_comment(&u), Some(&b"c"[..]));
        assert_eq!(udata_comment(&[]), None);
        assert_eq!(udata_comment(&[0, 9, 1]), None);
        assert_eq!(udata_comment(&[1]), None);
        // Too long for one TLV: cut, not wrapped.
        let long = vec![b'a'; 300];
        let u = comment_udata(&long);
        assert_eq!(udata_comment(&u).unwrap().len(), 254);
    }

    #[test]
    fn hostile_attributes_do_not_panic() {
        // Every prefix of a valid rule, and every single-byte corruption,
        // parses to Ok or Err without panicking.
        let r = RuleRepr {
            family: NFPROTO_INET,
            table: "t".into(),
            chain: "c".into(),
            handle: Some(1),
            position: None,
            exprs: sample_exprs(),
            userdata: Some(comment_udata(b"z")),
        };
        let (_, attrs) = round_trip(|w| r.emit(w));
        for n in 0..attrs.len() {
            let _ = RuleRepr::parse(1, &attrs[..n]);
        }
        for i in 0..attrs.len() {
            for v in [0u8, 1, 3, 0x7f, 0xff] {
                let mut a = attrs.clone();
                a[i] = v;
                let _ = RuleRepr::parse(1, &a);
                let _ = ChainRepr::parse(1, &a);
                let _ = TableRepr::parse(1, &a);
            }
        }
        assert!(Attrs::new(&[200, 0, 1, 0]).next().unwrap().is_err());
        assert!(Attrs::new(&[2, 0, 1, 0]).next().unwrap().is_err());
        assert!(Attrs::new(&[4, 0]).next().unwrap().is_err());
    }

    #[test]
    fn incoming_error_done_and_garbage() {
        // An error for seq 9 with errno -2 and a capped original header.
        let mut buf = Vec::new();
        buf.extend_from_slice(&36u32.to_ne_bytes());
        buf.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        buf.extend_from_slice(&0x100u16.to_ne_bytes());
        buf.extend_from_slice(&9u32.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&(-2i32).to_ne_bytes());
        buf.extend_from_slice(&[0; 16]);
        // A DONE for seq 10 carrying errno -1.
        buf.extend_from_slice(&20u32.to_ne_bytes());
        buf.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        buf.extend_from_slice(&2u16.to_ne_bytes());
        buf.extend_from_slice(&10u32.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&(-1i32).to_ne_bytes());
        let got: Vec<_> = parse_incoming(&buf).collect::<Result<_>>().unwrap();
        assert_eq!(
            got,
            vec![
                Incoming::Error {
                    seq: 9,
                    errno: -2,
                    text: None
                },
                Incoming::Done { seq: 10, errno: -1 }
            ]
        );
        for n in 0..buf.len() {
            let _ = parse_incoming(&buf[..n]).count();
        }
        // A length field beyond the buffer is an error, not a panic.
        let mut bad = buf.clone();
        bad[0] = 200;
        assert!(parse_incoming(&bad).next().unwrap().is_err());
    }

    #[test]
    fn oversized_attribute_is_refused() {
        let mut buf = Vec::new();
        let hdr = MsgHeader {
            msg_type: nft_type(NFT_MSG_NEWRULE),
            flags: 1,
            seq: 1,
            family: 1,
            res_id: 0,
        };
        let big = vec![0u8; 70000];
        assert!(push_msg(&mut buf, &hdr, |w| w.bytes(1, &big)).is_err());
        assert!(buf.is_empty());
    }
}
