//! A synchronous nfnetlink socket for nf_tables: dumps, single gets, and
//! transactions (one batch, committed atomically by the kernel).

use super::wire::{
    consts::*, nft_type, parse_incoming, push_msg, ChainRepr, GenRepr, Incoming, MsgHeader,
    RuleRepr, TableRepr, Writer, NLMSG_HDRLEN,
};
use crate::{Error, Result};
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket as NlSocket};
use std::cell::Cell;

/// Replies to one dump can come in datagrams of up to 32 KiB.
const RECV_BUF: usize = 64 * 1024;

/// A netlink socket talking to nf_tables in the network namespace of the
/// thread that opened it.
pub struct Socket {
    sock: NlSocket,
    seq: Cell<u32>,
}

/// A message received for one of our requests: its family and attributes.
struct Reply {
    msg_type: u16,
    family: u8,
    attrs: Vec<u8>,
}

impl Socket {
    pub fn open() -> Result<Socket> {
        let sock = NlSocket::new(NETLINK_NETFILTER).map_err(|e| Error::Io {
            what: "opening a netfilter netlink socket".into(),
            source: e,
        })?;
        // Best effort: errors then carry the kernel's explanation and only the
        // header of the message they refer to.
        let _ = sock.set_ext_ack(true);
        let _ = sock.set_cap_ack(true);
        Ok(Socket {
            sock,
            seq: Cell::new(0),
        })
    }

    /// Open a socket and read the generation; None when this kernel has no
    /// nf_tables at all.
    pub fn probe() -> Result<Option<(Socket, u32)>> {
        let sock = match Socket::open() {
            Ok(s) => s,
            Err(e) if e.is_unsupported() => return Ok(None),
            Err(e) => return Err(e),
        };
        match sock.generation() {
            Ok(g) => Ok(Some((sock, g))),
            Err(e) if e.is_unsupported() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn next_seq(&self) -> u32 {
        let s = self.seq.get().wrapping_add(1);
        self.seq.set(s);
        s
    }

    fn send(&self, buf: &[u8], what: &str) -> Result<()> {
        let n = self.sock.send(buf, 0).map_err(|e| Error::Io {
            what: format!("sending {what}"),
            source: e,
        })?;
        if n != buf.len() {
            return Err(Error::Malformed(format!("{what}: short send")));
        }
        Ok(())
    }

    /// Receive one datagram; refuses truncated ones.
    fn recv(&self, buf: &mut Vec<u8>, what: &str) -> Result<()> {
        buf.clear();
        let n = self
            .sock
            .recv(buf, libc::MSG_TRUNC)
            .map_err(|e| Error::Io {
                what: format!("receiving the reply to {what}"),
                source: e,
            })?;
        if n > buf.len() {
            return Err(Error::Malformed(format!("{what}: reply truncated")));
        }
        Ok(())
    }

    /// Send one request and collect its replies: all parts of a dump, or the
    /// single answer to a get. Returns the kernel's errno on refusal.
    fn request(
        &self,
        msg: u8,
        flags: u16,
        family: u8,
        what: &str,
        body: impl FnOnce(&mut Writer),
    ) -> Result<std::result::Result<Vec<Reply>, i32>> {
        let seq = self.next_seq();
        let mut out = Vec::new();
        let hdr = MsgHeader {
            msg_type: nft_type(msg),
            flags: NLM_F_REQUEST | flags,
            seq,
            family,
            res_id: 0,
        };
        push_msg(&mut out, &hdr, body)?;
        self.send(&out, what)?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut replies = Vec::new();
        let mut buf = Vec::with_capacity(RECV_BUF);
        let mut interrupted = false;
        loop {
            self.recv(&mut buf, what)?;
            for m in parse_incoming(&buf) {
                match m? {
                    Incoming::Error { seq: s, errno, .. } if s == seq => {
                        if errno != 0 {
                            return Ok(Err(-errno));
                        }
                        if !dump {
                            return Ok(Ok(replies));
                        }
                    }
                    Incoming::Done { seq: s, errno } if s == seq => {
                        if errno != 0 {
                            return Ok(Err(-errno));
                        }
                        if interrupted {
                            // The ruleset changed while it was dumped.
                            return Err(Error::Kernel {
                                what: what.to_string(),
                                errno: libc::EINTR,
                                text: None,
                            });
                        }
                        return Ok(Ok(replies));
                    }
                    Incoming::Msg { hdr, attrs } if hdr.seq == seq => {
                        interrupted |= hdr.flags & NLM_F_DUMP_INTR != 0;
                        replies.push(Reply {
                            msg_type: hdr.msg_type,
                            family: hdr.family,
                            attrs: attrs.to_vec(),
                        });
                        if !dump {
                            return Ok(Ok(replies));
                        }
                    }
                    _ => {} // stale replies to earlier requests
                }
            }
        }
    }

    /// The current ruleset generation; a batch carrying it is refused with
    /// ERESTART if anything changed since.
    pub fn generation(&self) -> Result<u32> {
        let what = "reading the nf_tables generation";
        match self.request(NFT_MSG_GETGEN, 0, NFPROTO_UNSPEC, what, |_| {})? {
            Ok(r) => match r.first() {
                Some(m) if m.msg_type == nft_type(NFT_MSG_NEWGEN) => {
                    Ok(GenRepr::parse(&m.attrs)?.id)
                }
                _ => Err(Error::Malformed(format!("{what}: no generation in reply"))),
            },
            Err(errno) => Err(Error::kernel(what, errno)),
        }
    }

    /// All tables of `family` (NFPROTO_UNSPEC: every family).
    pub fn tables(&self, family: u8) -> Result<Vec<TableRepr>> {
        let what = "listing nf_tables tables";
        let r = self
            .request(NFT_MSG_GETTABLE, NLM_F_DUMP, family, what, |_| {})?
            .map_err(|e| Error::kernel(what, e))?;
        r.iter()
            .map(|m| TableRepr::parse(m.family, &m.attrs))
            .collect()
    }

    /// The chains of `table` in `family`.
    pub fn chains(&self, family: u8, table: &str) -> Result<Vec<ChainRepr>> {
        let what = format!(
            "listing the chains of table {} {table}",
            family_name(family)
        );
        let r = self
            .request(NFT_MSG_GETCHAIN, NLM_F_DUMP, family, &what, |w| {
                w.string(NFTA_CHAIN_TABLE, table)
            })?
            .map_err(|e| Error::kernel(&what, e))?;
        let mut out = Vec::new();
        for m in &r {
            let c = ChainRepr::parse(m.family, &m.attrs)?;
            // Older kernels ignore the table filter of a chain dump.
            if c.table == table && c.family == family {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// One chain, or None when it (or its table) does not exist.
    pub fn chain(&self, family: u8, table: &str, name: &str) -> Result<Option<ChainRepr>> {
        let what = format!("looking up chain {} {table} {name}", family_name(family));
        let r = self.request(NFT_MSG_GETCHAIN, 0, family, &what, |w| {
            w.string(NFTA_CHAIN_TABLE, table);
            w.string(NFTA_CHAIN_NAME, name);
        })?;
        match r {
            Ok(r) => match r.first() {
                Some(m) => Ok(Some(ChainRepr::parse(m.family, &m.attrs)?)),
                None => Ok(None),
            },
            Err(libc::ENOENT) => Ok(None),
            Err(e) => Err(Error::kernel(&what, e)),
        }
    }

    /// The rules of `table` (all chains, or only `chain`) in `family`.
    /// Missing tables and chains have no rules.
    pub fn rules(&self, family: u8, table: &str, chain: Option<&str>) -> Result<Vec<RuleRepr>> {
        self.dump_rules(family, table, chain, RuleRepr::parse)
    }

    /// Like [`Socket::rules`] without decoding expressions (see
    /// [`RuleRepr::parse_head`]).
    pub fn rule_heads(
        &self,
        family: u8,
        table: &str,
        chain: Option<&str>,
    ) -> Result<Vec<RuleRepr>> {
        self.dump_rules(family, table, chain, RuleRepr::parse_head)
    }

    fn dump_rules(
        &self,
        family: u8,
        table: &str,
        chain: Option<&str>,
        parse: fn(u8, &[u8]) -> Result<RuleRepr>,
    ) -> Result<Vec<RuleRepr>> {
        let what = format!(
            "listing the rules of {} {table} {}",
            family_name(family),
            chain.unwrap_or("")
        );
        let r = self.request(NFT_MSG_GETRULE, NLM_F_DUMP, family, &what, |w| {
            w.string(NFTA_RULE_TABLE, table);
            if let Some(c) = chain {
                w.string(NFTA_RULE_CHAIN, c);
            }
        })?;
        let r = match r {
            Ok(r) => r,
            Err(libc::ENOENT) => return Ok(Vec::new()),
            Err(e) => return Err(Error::kernel(&what, e)),
        };
        let mut out = Vec::new();
        for m in &r {
            let rule = parse(m.family, &m.attrs)?;
            if rule.table == table && chain.is_none_or(|c| rule.chain == c) {
                out.push(rule);
            }
        }
        Ok(out)
    }

    /// Send `batch` as one transaction. Errors name the message that failed.
    /// A batch bound to a generation that is no longer current fails with
    /// ERESTART (see [`Error::is_retry`]).
    pub fn commit(&self, batch: &Batch) -> Result<()> {
        if batch.ops.is_empty() {
            // Nothing to send, but "nothing to do" was planned from dumps of
            // that generation: a dump that raced with another change may have
            // missed a rule, so the plan holds only if nothing changed since.
            return match batch.genid {
                Some(g) if self.generation()? != g => Err(Error::kernel(
                    "committing an empty plan of a changed ruleset",
                    libc::ERESTART,
                )),
                _ => Ok(()),
            };
        }
        let mut out = Vec::with_capacity(batch.msgs.len() + 64);
        let begin_seq = self.next_seq();
        let control = |out: &mut Vec<u8>, msg_type, seq, genid: Option<u32>| {
            let hdr = MsgHeader {
                msg_type,
                flags: NLM_F_REQUEST,
                seq,
                family: NFPROTO_UNSPEC,
                res_id: NFNL_SUBSYS_NFTABLES,
            };
            push_msg(out, &hdr, |w| {
                if let Some(g) = genid {
                    w.be32(NFNL_BATCH_GENID, g);
                }
            })
        };
        control(&mut out, NFNL_MSG_BATCH_BEGIN, begin_seq, batch.genid)?;
        // Stamp our sequence numbers into the queued messages.
        let first_seq = begin_seq.wrapping_add(1);
        let mut body = batch.msgs.clone();
        for (i, op) in batch.ops.iter().enumerate() {
            let seq = first_seq.wrapping_add(i as u32);
            if let Some(b) = body.get_mut(op.offset + 8..op.offset + 12) {
                b.copy_from_slice(&seq.to_ne_bytes());
            }
        }
        out.extend_from_slice(&body);
        let n = batch.ops.len() as u32;
        self.seq.set(first_seq.wrapping_add(n));
        let end_seq = self.next_seq();
        control(&mut out, NFNL_MSG_BATCH_END, end_seq, None)?;
        self.send(&out, "an nf_tables transaction")?;

        // The kernel has processed the whole batch before send() returns and
        // only reports failures; a get sent now is answered after them.
        let sync_seq = self.next_seq();
        let mut sync = Vec::new();
        let hdr = MsgHeader {
            msg_type: nft_type(NFT_MSG_GETGEN),
            flags: NLM_F_REQUEST | NLM_F_ACK,
            seq: sync_seq,
            family: NFPROTO_UNSPEC,
            res_id: 0,
        };
        push_msg(&mut sync, &hdr, |_| {})?;
        self.send(&sync, "a generation request")?;

        let mut failure: Option<Error> = None;
        let mut buf = Vec::with_capacity(RECV_BUF);
        loop {
            self.recv(&mut buf, "an nf_tables transaction")?;
            for m in parse_incoming(&buf) {
                match m? {
                    Incoming::Error { seq, .. } if seq == sync_seq => {
                        return failure.map_or(Ok(()), Err);
                    }
                    Incoming::Error { seq, errno, text } if errno != 0 && failure.is_none() => {
                        let what = if seq == begin_seq {
                            "starting the nf_tables transaction".to_string()
                        } else {
                            let i = seq.wrapping_sub(first_seq) as usize;
                            match batch.ops.get(i) {
                                Some(op) => op.what.clone(),
                                None => "the nf_tables transaction".to_string(),
                            }
                        };
                        failure = Some(Error::Kernel {
                            what,
                            errno: -errno,
                            text,
                        });
                    }
                    _ => {}
                }
            }
        }
    }
}

/// `ip`, `ip6`, `inet`: the family as nft spells it.
pub fn family_name(family: u8) -> &'static str {
    match family {
        NFPROTO_INET => "inet",
        NFPROTO_IPV4 => "ip",
        NFPROTO_IPV6 => "ip6",
        _ => "?",
    }
}

struct Op {
    offset: usize,
    what: String,
}

/// The messages of one transaction, in order, each with a description used
/// if the kernel refuses it.
#[derive(Default)]
pub struct Batch {
    msgs: Vec<u8>,
    ops: Vec<Op>,
    /// When set, the kernel refuses the batch if the ruleset changed since
    /// this generation (the batch was planned from a dump).
    pub genid: Option<u32>,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    fn push(
        &mut self,
        msg: u8,
        flags: u16,
        family: u8,
        what: String,
        body: impl FnOnce(&mut Writer),
    ) -> Result<()> {
        let offset = self.msgs.len();
        let hdr = MsgHeader {
            msg_type: nft_type(msg),
            flags: NLM_F_REQUEST | flags,
            seq: 0,
            family,
            res_id: 0,
        };
        push_msg(&mut self.msgs, &hdr, body)?;
        debug_assert!(self.msgs.len() >= offset + NLMSG_HDRLEN);
        self.ops.push(Op { offset, what });
        Ok(())
    }

    /// Create the table unless it exists.
    pub fn add_table(&mut self, t: &TableRepr) -> Result<()> {
        let what = format!("creating table {} {}", family_name(t.family), t.name);
        self.push(NFT_MSG_NEWTABLE, NLM_F_CREATE, t.family, what, |w| {
            t.emit(w)
        })
    }

    /// Create the chain unless it exists.
    pub fn add_chain(&mut self, c: &ChainRepr) -> Result<()> {
        let what = format!(
            "creating chain {} {} {}",
            family_name(c.family),
            c.table,
            c.name
        );
        self.push(NFT_MSG_NEWCHAIN, NLM_F_CREATE, c.family, what, |w| {
            c.emit(w)
        })
    }

    /// Delete a chain and the rules in it.
    pub fn del_chain(&mut self, family: u8, table: &str, name: &str) -> Result<()> {
        let what = format!("deleting chain {} {table} {name}", family_name(family));
        self.push(NFT_MSG_DELCHAIN, 0, family, what, |w| {
            w.string(NFTA_CHAIN_TABLE, table);
            w.string(NFTA_CHAIN_NAME, name);
        })
    }

    /// Append a rule at the end of its chain.
    pub fn add_rule(&mut self, r: &RuleRepr, what: String) -> Result<()> {
        self.push(
            NFT_MSG_NEWRULE,
            NLM_F_CREATE | NLM_F_APPEND,
            r.family,
            what,
            |w| r.emit(w),
        )
    }

    /// Delete one rule by handle.
    pub fn del_rule(&mut self, family: u8, table: &str, chain: &str, handle: u64) -> Result<()> {
        let what = format!(
            "deleting rule {handle} of {} {table} {chain}",
            family_name(family)
        );
        self.push(NFT_MSG_DELRULE, 0, family, what, |w| {
            w.string(NFTA_RULE_TABLE, table);
            w.string(NFTA_RULE_CHAIN, chain);
            w.be64(NFTA_RULE_HANDLE, handle);
        })
    }

    /// Delete every rule of a chain.
    pub fn flush_chain(&mut self, family: u8, table: &str, chain: &str) -> Result<()> {
        let what = format!("flushing chain {} {table} {chain}", family_name(family));
        self.push(NFT_MSG_DELRULE, 0, family, what, |w| {
            w.string(NFTA_RULE_TABLE, table);
            w.string(NFTA_RULE_CHAIN, chain);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_messages_are_framed_in_order() {
        let mut b = Batch::new();
        b.flush_chain(NFPROTO_INET, "t", "c").unwrap();
        b.del_rule(NFPROTO_IPV4, "nat", "POSTROUTING", 9).unwrap();
        b.del_chain(NFPROTO_IPV6, "nat", "CNI-x").unwrap();
        assert_eq!(b.len(), 3);
        let msgs: Vec<_> = parse_incoming(&b.msgs).collect::<Result<_>>().unwrap();
        let kinds: Vec<_> = msgs
            .iter()
            .map(|m| match m {
                Incoming::Msg { hdr, attrs } => (hdr.msg_type, hdr.family, attrs.len()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(kinds[0].0, nft_type(NFT_MSG_DELRULE));
        assert_eq!(kinds[1].0, nft_type(NFT_MSG_DELRULE));
        assert_eq!(kinds[2].0, nft_type(NFT_MSG_DELCHAIN));
        assert_eq!(kinds[2].1, NFPROTO_IPV6);
        match &msgs[1] {
            Incoming::Msg { hdr, attrs } => {
                let r = RuleRepr::parse(hdr.family, attrs).unwrap();
                assert_eq!((r.table.as_str(), r.chain.as_str()), ("nat", "POSTROUTING"));
                assert_eq!(r.handle, Some(9));
            }
            _ => unreachable!(),
        }
        assert_eq!(b.ops[1].offset, b.ops[0].offset + NLMSG_HDRLEN + 4 + 8 + 8);
    }
}
