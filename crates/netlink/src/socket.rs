//! The netlink socket: send requests (several in one datagram), match the
//! kernel's ACKs, errors and echoes to them by sequence number, and read
//! multi-part dumps.

use crate::error::{Error, Result};
use crate::wire;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket};

// Bigger than any datagram the kernel sends here: it builds dump datagrams
// of at most 32 KiB. A larger one is reported as truncated, never misread.
const RECV_BUF: usize = 64 * 1024;
// A dump that a concurrent change interrupted is tried this many times.
const DUMP_TRIES: usize = 5;

/// A route-netlink socket, bound to the namespace it was created in.
///
/// Get one with [`Handle::new`] (current namespace) or
/// [`crate::Netns::handle`] (another namespace). All operations are methods
/// on it (see the `link`, `addr` and `route` modules) or queued in a
/// [`crate::Batch`].
pub struct Handle {
    sock: Socket,
    seq: u32,
    netns: Option<String>,
    buf: Vec<u8>,
}

/// One request: the message, its flags (without REQUEST/ACK, added here),
/// and the words for errors.
pub(crate) struct Request {
    pub msg: RouteNetlinkMessage,
    pub flags: u16,
    pub op: String,
}

impl Handle {
    /// A socket in the calling thread's current namespace.
    pub fn new() -> Result<Handle> {
        Handle::open(None)
    }

    pub(crate) fn open(netns: Option<String>) -> Result<Handle> {
        let op = || match &netns {
            Some(ns) => format!("opening a netlink socket in {ns}"),
            None => "opening a netlink socket".to_string(),
        };
        let sock = Socket::new(NETLINK_ROUTE).map_err(|e| Error::os(op(), e))?;
        // Errors carry only the request's header back, plus the kernel's text.
        // Both options are best effort: old kernels simply ignore them.
        let _ = sock.set_cap_ack(true);
        let _ = sock.set_ext_ack(true);
        // Let the kernel filter dumps by the header fields we set.
        let _ = sock.set_netlink_get_strict_chk(true);
        Ok(Handle {
            sock,
            seq: 0,
            netns: netns.clone(),
            // Not zeroed: the kernel fills what it sends, and untouched
            // pages of the buffer are never faulted in.
            buf: Vec::with_capacity(RECV_BUF),
        })
    }

    /// The namespace path given when the socket was opened, if any.
    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    /// `op` plus where it happens, for error messages.
    pub(crate) fn op(&self, op: impl std::fmt::Display) -> String {
        match &self.netns {
            Some(ns) => format!("{op} in {ns}"),
            None => op.to_string(),
        }
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Receive one datagram into the internal buffer and return its length.
    fn recv(&mut self, op: &str) -> Result<usize> {
        loop {
            self.buf.clear();
            match self.sock.recv(&mut self.buf, libc::MSG_TRUNC) {
                Ok(n) if n > self.buf.len() => {
                    return Err(Error::decode(
                        op,
                        format!("reply of {n} bytes was truncated"),
                    ))
                }
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::os(op, e)),
            }
        }
    }

    fn send(&mut self, data: &[u8], op: &str) -> Result<()> {
        loop {
            match self.sock.send(data, 0) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::os(op, e)),
            }
        }
    }

    /// Send all `reqs` in one datagram and wait until each is acknowledged.
    ///
    /// The kernel runs every request even when an earlier one fails; the
    /// first failure (in request order) is returned after all were answered.
    /// On success, returns for each request the messages it echoed or
    /// returned (a GET's answer, a NEW's echo with `NLM_F_ECHO`).
    pub(crate) fn execute(&mut self, reqs: Vec<Request>) -> Result<Vec<Vec<RouteNetlinkMessage>>> {
        if reqs.is_empty() {
            return Ok(Vec::new());
        }
        let first_seq = self.seq.wrapping_add(1);
        let mut data = Vec::new();
        let mut ops = Vec::with_capacity(reqs.len());
        for r in reqs {
            let seq = self.next_seq();
            wire::encode(
                r.msg,
                r.flags | wire::NLM_F_REQUEST | wire::NLM_F_ACK,
                seq,
                &mut data,
            );
            ops.push(self.op(&r.op));
        }
        let count = ops.len();
        let send_op = ops.first().cloned().unwrap_or_default();
        self.send(&data, &send_op)?;

        let mut replies: Vec<Vec<RouteNetlinkMessage>> = (0..count).map(|_| Vec::new()).collect();
        let mut acked = vec![false; count];
        let mut failures: Vec<Option<Error>> = (0..count).map(|_| None).collect();
        let mut pending = count;
        while pending > 0 {
            let n = self.recv(&send_op)?;
            let frames = wire::frames(&self.buf[..n]).map_err(|e| Error::decode(&send_op, e))?;
            for (h, payload) in frames {
                // This batch used sequence numbers first_seq .. first_seq + count.
                let i = h.seq.wrapping_sub(first_seq) as usize;
                let (Some(done), Some(failure), Some(op)) =
                    (acked.get_mut(i), failures.get_mut(i), ops.get(i))
                else {
                    continue; // not an answer to this batch
                };
                match h.kind {
                    wire::NLMSG_ERROR => {
                        if !*done {
                            *done = true;
                            pending -= 1;
                        }
                        match wire::parse_error(&h, payload) {
                            Ok((0, _)) => {}
                            Ok((errno, extack)) => {
                                *failure = Some(Error::kernel(op.clone(), errno, extack))
                            }
                            Err(e) => *failure = Some(Error::decode(op.clone(), e)),
                        }
                    }
                    wire::NLMSG_NOOP | wire::NLMSG_DONE | wire::NLMSG_OVERRUN => {}
                    _ => match wire::decode(&h, payload) {
                        Ok(m) => {
                            if let Some(r) = replies.get_mut(i) {
                                r.push(m)
                            }
                        }
                        Err(e) => *failure = Some(Error::decode(op.clone(), e)),
                    },
                }
            }
        }
        if let Some(e) = failures.into_iter().flatten().next() {
            return Err(e);
        }
        Ok(replies)
    }

    /// One request, waiting for its ACK; returns what it echoed or answered.
    pub(crate) fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: impl Into<String>,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let req = Request {
            msg,
            flags,
            op: op.into(),
        };
        Ok(self
            .execute(vec![req])?
            .into_iter()
            .next()
            .unwrap_or_default())
    }

    /// A dump: every message the kernel sends until NLMSG_DONE. Retried when a
    /// concurrent change interrupted it, so the result is consistent.
    pub(crate) fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
        op: &str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let op = self.op(op);
        for _ in 0..DUMP_TRIES {
            let seq = self.next_seq();
            let mut data = Vec::new();
            wire::encode(
                msg.clone(),
                wire::NLM_F_REQUEST | wire::NLM_F_DUMP,
                seq,
                &mut data,
            );
            self.send(&data, &op)?;
            let mut out = Vec::new();
            let mut interrupted = false;
            'recv: loop {
                let n = self.recv(&op)?;
                let frames = wire::frames(&self.buf[..n]).map_err(|e| Error::decode(&op, e))?;
                for (h, payload) in frames {
                    if h.seq != seq {
                        continue;
                    }
                    interrupted |= h.flags & wire::NLM_F_DUMP_INTR != 0;
                    match h.kind {
                        wire::NLMSG_DONE => match wire::parse_done(payload) {
                            0 => break 'recv,
                            errno => return Err(Error::kernel(op, errno, None)),
                        },
                        wire::NLMSG_ERROR => match wire::parse_error(&h, payload) {
                            Ok((0, _)) => break 'recv,
                            Ok((errno, extack)) => return Err(Error::kernel(op, errno, extack)),
                            Err(e) => return Err(Error::decode(op, e)),
                        },
                        wire::NLMSG_NOOP | wire::NLMSG_OVERRUN => {}
                        _ => {
                            out.push(wire::decode(&h, payload).map_err(|e| Error::decode(&op, e))?)
                        }
                    }
                }
            }
            if !interrupted {
                return Ok(out);
            }
        }
        Err(Error::kernel(
            op,
            libc::EINTR,
            Some("dump kept being interrupted".into()),
        ))
    }
}

/// Requests queued to be sent together in one datagram by [`Batch::commit`].
///
/// The kernel applies them in order and carries on after a failure, so batch
/// only steps whose partial application is harmless or undone as a whole
/// (e.g. several settings of a link the caller deletes on error).
#[derive(Default)]
pub struct Batch {
    reqs: Vec<Request>,
    /// A request that could not even be built: reported by `commit`
    /// before anything is sent.
    error: Option<Error>,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    pub fn len(&self) -> usize {
        self.reqs.len()
    }

    pub(crate) fn push(&mut self, msg: RouteNetlinkMessage, flags: u16, op: String) -> &mut Batch {
        self.reqs.push(Request { msg, flags, op });
        self
    }

    pub(crate) fn invalid(&mut self, e: Error) -> &mut Batch {
        self.error.get_or_insert(e);
        self
    }

    /// Send everything queued; the first failure in queue order, if any.
    /// Nothing is sent when a queued request was invalid.
    pub fn commit(self, handle: &mut Handle) -> Result<()> {
        if let Some(e) = self.error {
            return Err(e);
        }
        handle.execute(self.reqs).map(|_| ())
    }
}
