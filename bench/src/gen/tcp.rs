//! TCP sessions as a real stack puts them on the wire: three-way handshake with MSS, data in
//! MSS-sized segments with correct sequence/acknowledgement numbers, delayed ACKs from the
//! receiver, and a FIN close. Ethernet + IPv4 with valid checksums.

use crate::pcap::PcapWriter;
use std::io::{self, Write};
use std::net::Ipv4Addr;

const ETH_LEN: usize = 14;
const IP_LEN: usize = 20;
const TCP_LEN: usize = 20;

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

/// Where frames go, with the packet clock.
pub struct Wire<W: Write> {
    pub pcap: PcapWriter<W>,
    /// Packet time in nanoseconds since the epoch.
    pub now: u64,
    /// Time between two frames of a session.
    pub frame_gap: u64,
    buf: Vec<u8>,
}

impl<W: Write> Wire<W> {
    pub fn new(pcap: PcapWriter<W>, start_nanos: u64) -> Self {
        Wire {
            pcap,
            now: start_nanos,
            frame_gap: 12_000,
            buf: Vec::with_capacity(2048),
        }
    }
    /// Moves the clock on (between sessions).
    pub fn pause(&mut self, nanos: u64) {
        self.now += nanos;
    }
}

/// One side of a connection.
#[derive(Copy, Clone, Debug)]
pub struct Host {
    pub mac: [u8; 6],
    pub ip: Ipv4Addr,
    pub port: u16,
}

/// Which side sends.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum From {
    Client,
    Server,
}

/// An open TCP connection being written.
pub struct Session {
    client: Host,
    server: Host,
    /// Next sequence number each side sends.
    seq_client: u32,
    seq_server: u32,
    ip_id_client: u16,
    ip_id_server: u16,
    pub mss: usize,
    /// Segments the receiver has not acknowledged yet (delayed ACK every second segment).
    unacked: u32,
}

fn checksum_add(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        sum += (*last as u32) << 8;
    }
    sum
}

fn checksum_fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

impl Session {
    /// Writes the handshake (SYN, SYN-ACK, ACK; MSS 1460 both ways) and returns the session.
    pub fn open<W: Write>(
        wire: &mut Wire<W>,
        client: Host,
        server: Host,
        isn_client: u32,
        isn_server: u32,
    ) -> io::Result<Session> {
        let mut s = Session {
            client,
            server,
            seq_client: isn_client,
            seq_server: isn_server,
            ip_id_client: (isn_client >> 16) as u16,
            ip_id_server: (isn_server >> 16) as u16,
            mss: 1460,
            unacked: 0,
        };
        s.segment(wire, From::Client, SYN, &[], true)?;
        s.seq_client = s.seq_client.wrapping_add(1);
        s.segment(wire, From::Server, SYN | ACK, &[], true)?;
        s.seq_server = s.seq_server.wrapping_add(1);
        s.segment(wire, From::Client, ACK, &[], false)?;
        Ok(s)
    }

    /// Sends `data` from one side in MSS-sized segments (PSH on the last), the other side
    /// acknowledging every second segment and the end.
    pub fn send<W: Write>(&mut self, wire: &mut Wire<W>, from: From, data: &[u8]) -> io::Result<()> {
        let peer = match from {
            From::Client => From::Server,
            From::Server => From::Client,
        };
        let n = data.chunks(self.mss).len();
        for (i, chunk) in data.chunks(self.mss).enumerate() {
            let flags = if i + 1 == n { ACK | PSH } else { ACK };
            self.segment(wire, from, flags, chunk, false)?;
            self.unacked += 1;
            if self.unacked >= 2 {
                self.segment(wire, peer, ACK, &[], false)?;
                self.unacked = 0;
            }
        }
        if self.unacked > 0 {
            self.segment(wire, peer, ACK, &[], false)?;
            self.unacked = 0;
        }
        Ok(())
    }

    /// Active close by `from`: FIN, FIN-ACK, ACK.
    pub fn close<W: Write>(mut self, wire: &mut Wire<W>, from: From) -> io::Result<()> {
        let peer = match from {
            From::Client => From::Server,
            From::Server => From::Client,
        };
        self.segment(wire, from, FIN | ACK, &[], false)?;
        self.advance(from, 1);
        self.segment(wire, peer, FIN | ACK, &[], false)?;
        self.advance(peer, 1);
        self.segment(wire, from, ACK, &[], false)
    }

    fn advance(&mut self, from: From, n: u32) {
        match from {
            From::Client => self.seq_client = self.seq_client.wrapping_add(n),
            From::Server => self.seq_server = self.seq_server.wrapping_add(n),
        }
    }

    fn segment<W: Write>(
        &mut self,
        wire: &mut Wire<W>,
        from: From,
        flags: u8,
        payload: &[u8],
        mss_opt: bool,
    ) -> io::Result<()> {
        let (src, dst, seq, ack, ip_id) = match from {
            From::Client => (
                self.client,
                self.server,
                self.seq_client,
                self.seq_server,
                &mut self.ip_id_client,
            ),
            From::Server => (
                self.server,
                self.client,
                self.seq_server,
                self.seq_client,
                &mut self.ip_id_server,
            ),
        };
        let ack = if flags & ACK != 0 { ack } else { 0 };
        let mss = mss_opt.then_some(self.mss as u16);
        build_frame(&mut wire.buf, src, dst, seq, ack, flags, *ip_id, mss, payload);
        *ip_id = ip_id.wrapping_add(1);

        self.advance(from, payload.len() as u32);
        wire.now += wire.frame_gap;
        wire.pcap.write_frame(wire.now, &wire.buf)
    }
}

/// Writes into `b` one Ethernet + IPv4 + TCP frame from `src` to `dst` with valid checksums: DF set,
/// TTL 64, window 64240, the MSS option when `mss` is given. `ack` is written as given (pass 0
/// when the ACK flag is not set).
#[allow(clippy::too_many_arguments)]
pub fn build_frame(
    b: &mut Vec<u8>,
    src: Host,
    dst: Host,
    seq: u32,
    ack: u32,
    flags: u8,
    ip_id: u16,
    mss: Option<u16>,
    payload: &[u8],
) {
    let opt_len = if mss.is_some() { 4 } else { 0 };
    let tcp_len = TCP_LEN + opt_len + payload.len();
    let total = IP_LEN + tcp_len;
    b.clear();
    // Ethernet
    b.extend_from_slice(&dst.mac);
    b.extend_from_slice(&src.mac);
    b.extend_from_slice(&0x0800u16.to_be_bytes());
    // IPv4
    let ip_start = b.len();
    b.extend_from_slice(&[0x45, 0]);
    b.extend_from_slice(&(total as u16).to_be_bytes());
    b.extend_from_slice(&ip_id.to_be_bytes());
    b.extend_from_slice(&0x4000u16.to_be_bytes()); // DF
    b.extend_from_slice(&[64, 6, 0, 0]);
    b.extend_from_slice(&src.ip.octets());
    b.extend_from_slice(&dst.ip.octets());
    let ip_sum = checksum_fold(checksum_add(0, &b[ip_start..ip_start + IP_LEN]));
    b[ip_start + 10..ip_start + 12].copy_from_slice(&ip_sum.to_be_bytes());
    // TCP
    let tcp_start = b.len();
    b.extend_from_slice(&src.port.to_be_bytes());
    b.extend_from_slice(&dst.port.to_be_bytes());
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&ack.to_be_bytes());
    b.push((((TCP_LEN + opt_len) / 4) as u8) << 4);
    b.push(flags);
    b.extend_from_slice(&64240u16.to_be_bytes()); // window
    b.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent
    if let Some(mss) = mss {
        b.extend_from_slice(&[2, 4]);
        b.extend_from_slice(&mss.to_be_bytes());
    }
    b.extend_from_slice(payload);
    let mut sum = checksum_add(0, &src.ip.octets());
    sum = checksum_add(sum, &dst.ip.octets());
    sum += 6 + tcp_len as u32;
    sum = checksum_add(sum, &b[tcp_start..]);
    let tcp_sum = checksum_fold(sum);
    b[tcp_start + 16..tcp_start + 18].copy_from_slice(&tcp_sum.to_be_bytes());
    debug_assert_eq!(b.len(), ETH_LEN + total);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap;

    #[test]
    fn writes_handshake_data_and_close_with_valid_checksums() {
        let mut wire = Wire::new(PcapWriter::new(Vec::new()).unwrap(), 1_000_000_000);
        let c = Host {
            mac: [2, 0, 0, 0, 0, 1],
            ip: Ipv4Addr::new(192, 0, 2, 1),
            port: 40000,
        };
        let s = Host {
            mac: [2, 0, 0, 0, 0, 2],
            ip: Ipv4Addr::new(198, 51, 100, 2),
            port: 80,
        };
        let mut sess = Session::open(&mut wire, c, s, 1000, 5000).unwrap();
        sess.send(&mut wire, From::Client, &[7u8; 3000]).unwrap();
        sess.close(&mut wire, From::Client).unwrap();
        let buf = wire.pcap.into_inner();
        let (_, frames) = pcap::parse(&buf).unwrap();
        // 3 handshake + 3 data + 2 acks (one after two segments, one at the end) + 3 close
        assert_eq!(frames.len(), 11);
        for f in &frames {
            let ip = &f.data[ETH_LEN..];
            assert_eq!(checksum_fold(checksum_add(0, &ip[..IP_LEN])), 0, "IP checksum");
            let tcp = &ip[IP_LEN..];
            let mut sum = checksum_add(0, &ip[12..20]);
            sum += 6 + tcp.len() as u32;
            assert_eq!(checksum_fold(checksum_add(sum, tcp)), 0, "TCP checksum");
        }
        // Third data segment starts at ISN + 1 + 2 * 1460 and carries the rest.
        let d3 = &frames[6].data[ETH_LEN + IP_LEN..];
        assert_eq!(u32::from_be_bytes(d3[4..8].try_into().unwrap()), 1001 + 2920);
        assert_eq!(d3.len() - TCP_LEN, 80);
    }
}
