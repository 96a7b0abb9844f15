//! Netlink framing: encoding requests into one datagram, splitting received
//! datagrams into messages, and reading ACK/error and DONE payloads.
//!
//! The envelope is parsed here by hand so that nothing the kernel sends can
//! make us panic; only the payloads of data messages go to
//! `netlink-packet-route`.

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;

pub(crate) const HEADER_LEN: usize = 16;

pub(crate) const NLMSG_NOOP: u16 = 1;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
pub(crate) const NLMSG_OVERRUN: u16 = 4;

pub(crate) const NLM_F_REQUEST: u16 = 0x1;
pub(crate) const NLM_F_ACK: u16 = 0x4;
pub(crate) const NLM_F_ECHO: u16 = 0x8;
pub(crate) const NLM_F_DUMP_INTR: u16 = 0x10;
pub(crate) const NLM_F_DUMP: u16 = 0x300;
pub(crate) const NLM_F_REPLACE: u16 = 0x100;
pub(crate) const NLM_F_EXCL: u16 = 0x200;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
// Flags of an NLMSG_ERROR message.
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
// Extended-ACK attribute holding the kernel's error text.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// The fixed 16-byte header of every netlink message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub len: u32,
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let bytes = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes(bytes.try_into().ok()?))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let bytes = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_ne_bytes(bytes.try_into().ok()?))
}

fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

impl Header {
    fn parse(b: &[u8]) -> Option<Header> {
        Some(Header {
            len: u32_at(b, 0)?,
            kind: u16_at(b, 4)?,
            flags: u16_at(b, 6)?,
            seq: u32_at(b, 8)?,
        })
    }
}

/// Split one received datagram into (header, payload) pairs.
pub(crate) fn frames(mut buf: &[u8]) -> Result<Vec<(Header, &[u8])>, String> {
    let mut out = Vec::new();
    while buf.len() >= HEADER_LEN {
        let h = Header::parse(buf).ok_or("short netlink header")?;
        let len = h.len as usize;
        if len < HEADER_LEN || len > buf.len() {
            return Err(format!(
                "netlink message claims {len} bytes, {} available",
                buf.len()
            ));
        }
        out.push((h, &buf[HEADER_LEN..len]));
        buf = buf.get(align4(len)..).unwrap_or_default();
    }
    Ok(out)
}

/// What an NLMSG_ERROR says: 0 for an ACK, or a positive errno, plus the
/// kernel's extended-ACK text if it sent one.
pub(crate) fn parse_error(h: &Header, payload: &[u8]) -> Result<(i32, Option<String>), String> {
    let code = u32_at(payload, 0).ok_or("truncated netlink error message")? as i32;
    let mut msg = None;
    if h.flags & NLM_F_ACK_TLVS != 0 {
        // The TLVs follow the echoed request: only its header when capped.
        let echoed = if h.flags & NLM_F_CAPPED != 0 {
            HEADER_LEN
        } else {
            u32_at(payload, 4).unwrap_or(0) as usize
        };
        msg = find_string_attr(payload.get(align4(4 + echoed)..).unwrap_or_default());
    }
    Ok((code.saturating_neg(), msg))
}

/// The errno carried by NLMSG_DONE (a dump can fail at its end), 0 if none.
pub(crate) fn parse_done(payload: &[u8]) -> i32 {
    u32_at(payload, 0).map_or(0, |c| (c as i32).saturating_neg())
}

fn find_string_attr(mut tlvs: &[u8]) -> Option<String> {
    while tlvs.len() >= 4 {
        let len = u16_at(tlvs, 0)? as usize;
        let kind = u16_at(tlvs, 2)?;
        if len < 4 || len > tlvs.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &tlvs[4..len];
            let text = text.split(|&c| c == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        tlvs = tlvs.get(align4(len)..).unwrap_or_default();
    }
    None
}

/// Append `msg` as one netlink message with `flags` and `seq` to `out`.
pub(crate) fn encode(msg: RouteNetlinkMessage, flags: u16, seq: u32, out: &mut Vec<u8>) {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
    packet.finalize();
    let start = out.len();
    out.resize(start + packet.buffer_len(), 0);
    packet.serialize(&mut out[start..]);
    out.resize(align4(out.len()), 0);
}

/// Decode the payload of a data message (`RTM_NEWLINK` and friends).
pub(crate) fn decode(h: &Header, payload: &[u8]) -> Result<RouteNetlinkMessage, String> {
    let mut header = NetlinkHeader::default();
    header.message_type = h.kind;
    header.flags = h.flags;
    header.sequence_number = h.seq;
    header.length = h.len;
    <RouteNetlinkMessage as netlink_packet_core::NetlinkDeserializable>::deserialize(
        &header, payload,
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::link::{LinkAttribute, LinkMessage};

    fn raw(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = (HEADER_LEN + payload.len()) as u32;
        let mut v = Vec::new();
        v.extend_from_slice(&len.to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(payload);
        v.resize(align4(v.len()), 0);
        v
    }

    fn link_request(name: &str) -> RouteNetlinkMessage {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.into()));
        RouteNetlinkMessage::GetLink(m)
    }

    #[test]
    fn batches_several_requests_in_one_buffer() {
        let mut buf = Vec::new();
        encode(link_request("a"), NLM_F_REQUEST | NLM_F_ACK, 7, &mut buf);
        encode(
            link_request("bbbbb"),
            NLM_F_REQUEST | NLM_F_ACK,
            8,
            &mut buf,
        );
        let f = frames(&buf).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].0.seq, 7);
        assert_eq!(f[1].0.seq, 8);
        assert_eq!(f[0].0.kind, 18); // RTM_GETLINK
        assert_eq!(f[1].0.flags, NLM_F_REQUEST | NLM_F_ACK);
        let back = decode(&f[1].0, f[1].1).unwrap();
        assert_eq!(back, link_request("bbbbb"));
        assert_eq!(buf.len() % 4, 0);
    }

    #[test]
    fn rejects_lying_lengths_without_panicking() {
        let mut buf = raw(NLMSG_DONE, 0, 1, &[0, 0, 0, 0]);
        buf[0] = 200; // claims more than there is
        assert!(frames(&buf).is_err());
        let mut buf = raw(NLMSG_DONE, 0, 1, &[]);
        buf[0] = 3; // shorter than a header
        assert!(frames(&buf).is_err());
        // A trailing fragment shorter than a header is ignored.
        assert_eq!(frames(&[1, 2, 3]).unwrap().len(), 0);
    }

    #[test]
    fn reads_ack_and_error_codes() {
        let ack = raw(NLMSG_ERROR, 0, 3, &[0; 20]);
        let f = frames(&ack).unwrap();
        assert_eq!(parse_error(&f[0].0, f[0].1).unwrap(), (0, None));

        let mut payload = (-17i32).to_ne_bytes().to_vec();
        payload.extend_from_slice(&[0; 16]);
        let err = raw(NLMSG_ERROR, 0, 3, &payload);
        let f = frames(&err).unwrap();
        assert_eq!(parse_error(&f[0].0, f[0].1).unwrap(), (17, None));
        assert!(parse_error(&f[0].0, &[1]).is_err());
    }

    #[test]
    fn reads_the_kernels_extended_ack_text() {
        let mut payload = (-95i32).to_ne_bytes().to_vec();
        payload.extend_from_slice(&[0; 16]); // the capped request header
        let text = b"Unknown device type\0";
        let tlv_len = (4 + text.len()) as u16;
        payload.extend_from_slice(&tlv_len.to_ne_bytes());
        payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        payload.extend_from_slice(text);
        let err = raw(NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, 3, &payload);
        let f = frames(&err).unwrap();
        assert_eq!(
            parse_error(&f[0].0, f[0].1).unwrap(),
            (95, Some("Unknown device type".into()))
        );
    }

    #[test]
    fn done_may_carry_an_error() {
        assert_eq!(parse_done(&(-16i32).to_ne_bytes()), 16);
        assert_eq!(parse_done(&[0; 4]), 0);
        assert_eq!(parse_done(&[]), 0);
    }
}
