//! Moving datagrams on the resolver's UDP socket in batches: on Linux one `recvmmsg` takes
//! every query already queued (waiting only for the first) and one `sendmmsg` sends all their
//! answers, so that under load a query costs a fraction of two system calls; elsewhere one
//! `recv_from` and one `send_to` per query.
//!
//! Not for: what the answers are; the caller's closure decides, per datagram.

use std::net::{SocketAddr, UdpSocket};

/// Datagrams received (and answered) per system call at most.
pub const BATCH: usize = 32;
/// The largest UDP payload; every receive buffer holds one, so nothing is cut short.
const MAX_DATAGRAM: usize = 65_535;

/// What the closure did with one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Send the bytes it left in the output buffer back to the sender.
    Send,
    /// Send nothing (dropped, or answered some other way).
    Nothing,
}

/// Receive buffers, output buffers and (on Linux) the system call headers for one batch,
/// allocated once and reused for every batch.
pub struct Batch {
    #[cfg(target_os = "linux")]
    linux: linux::Headers,
    buffers: Vec<u8>,
    sources: Vec<Option<SocketAddr>>,
    lengths: Vec<usize>,
    outputs: Vec<Vec<u8>>,
    replies: Vec<Reply>,
}

impl Default for Batch {
    fn default() -> Batch {
        Batch::new()
    }
}

impl Batch {
    /// Buffers for [`BATCH`] datagrams. The receive buffers are zeroed lazily by the kernel,
    /// so only the pages datagrams touch become resident.
    pub fn new() -> Batch {
        Batch {
            #[cfg(target_os = "linux")]
            linux: linux::Headers::new(),
            buffers: vec![0u8; BATCH * MAX_DATAGRAM],
            sources: vec![None; BATCH],
            lengths: vec![0; BATCH],
            outputs: (0..BATCH).map(|_| Vec::with_capacity(1_500)).collect(),
            replies: vec![Reply::Nothing; BATCH],
        }
    }

    /// Wait for datagrams on `socket` (up to its read timeout), call `each` on every one with
    /// its sender and an output buffer, and send the replies it asks for. Returns how many
    /// datagrams came; errors other than a timeout are the caller's to log.
    pub fn serve(
        &mut self,
        socket: &UdpSocket,
        mut each: impl FnMut(&[u8], SocketAddr, &mut Vec<u8>) -> Reply,
    ) -> std::io::Result<usize> {
        let count = self.receive(socket)?;
        for i in 0..count {
            self.replies[i] = match self.sources[i] {
                Some(src) => {
                    let packet = &self.buffers[i * MAX_DATAGRAM..][..self.lengths[i]];
                    each(packet, src, &mut self.outputs[i])
                }
                // An address family devenv does not listen on: nothing to answer.
                None => Reply::Nothing,
            };
        }
        self.send(socket, count);
        Ok(count)
    }

    #[cfg(target_os = "linux")]
    fn receive(&mut self, socket: &UdpSocket) -> std::io::Result<usize> {
        let count = self
            .linux
            .receive(socket, &mut self.buffers, MAX_DATAGRAM)?;
        for i in 0..count {
            let (len, src) = self.linux.received(i);
            self.lengths[i] = len;
            self.sources[i] = src;
        }
        Ok(count)
    }

    #[cfg(not(target_os = "linux"))]
    fn receive(&mut self, socket: &UdpSocket) -> std::io::Result<usize> {
        let (len, src) = socket.recv_from(&mut self.buffers[..MAX_DATAGRAM])?;
        self.lengths[0] = len;
        self.sources[0] = Some(src);
        Ok(1)
    }

    #[cfg(target_os = "linux")]
    fn send(&mut self, socket: &UdpSocket, count: usize) {
        self.linux
            .send(socket, &self.outputs[..count], &self.replies[..count]);
    }

    #[cfg(not(target_os = "linux"))]
    fn send(&mut self, socket: &UdpSocket, count: usize) {
        for i in 0..count {
            if let (Reply::Send, Some(dst)) = (self.replies[i], self.sources[i]) {
                // A client that went away is not the server's problem.
                let _ = socket.send_to(&self.outputs[i], dst);
            }
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    //! `recvmmsg`/`sendmmsg` through libc, with the headers kept between batches.

    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
    use std::os::fd::AsRawFd;

    use super::{BATCH, Reply};

    /// The per-datagram headers. The pointers in them are set on every call, from buffers
    /// borrowed for that call only, so nothing here refers to memory it does not own between
    /// calls.
    pub(super) struct Headers {
        addresses: Vec<libc::sockaddr_storage>,
        iovecs: Vec<libc::iovec>,
        messages: Vec<libc::mmsghdr>,
        send_iovecs: Vec<libc::iovec>,
        send_messages: Vec<libc::mmsghdr>,
    }

    fn zeroed<T>() -> T {
        // SAFETY: only used for plain C structs (sockaddr_storage, iovec, mmsghdr), for which
        // all-zero bytes are a valid value.
        unsafe { std::mem::zeroed() }
    }

    impl Headers {
        pub(super) fn new() -> Headers {
            Headers {
                addresses: (0..BATCH).map(|_| zeroed()).collect(),
                iovecs: (0..BATCH).map(|_| zeroed()).collect(),
                messages: (0..BATCH).map(|_| zeroed()).collect(),
                send_iovecs: (0..BATCH).map(|_| zeroed()).collect(),
                send_messages: (0..BATCH).map(|_| zeroed()).collect(),
            }
        }

        /// Block for one datagram (up to the socket's read timeout), then take those already
        /// queued, into consecutive `size`-byte slots of `buffers`.
        pub(super) fn receive(
            &mut self,
            socket: &UdpSocket,
            buffers: &mut [u8],
            size: usize,
        ) -> std::io::Result<usize> {
            for (i, slot) in buffers.chunks_exact_mut(size).take(BATCH).enumerate() {
                self.iovecs[i] = libc::iovec {
                    iov_base: slot.as_mut_ptr().cast(),
                    iov_len: size,
                };
                let m = &mut self.messages[i];
                m.msg_hdr = zeroed();
                m.msg_hdr.msg_name = (&mut self.addresses[i] as *mut libc::sockaddr_storage).cast();
                m.msg_hdr.msg_namelen =
                    std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                m.msg_hdr.msg_iov = &mut self.iovecs[i];
                m.msg_hdr.msg_iovlen = 1;
                m.msg_len = 0;
            }
            // SAFETY: `messages` holds BATCH headers, each pointing at its own address slot
            // and iovec, which point into `buffers` (BATCH slots of `size` bytes, borrowed
            // mutably for this call). The socket's read timeout bounds the wait for the first.
            let n = unsafe {
                libc::recvmmsg(
                    socket.as_raw_fd(),
                    self.messages.as_mut_ptr(),
                    BATCH as libc::c_uint,
                    libc::MSG_WAITFORONE,
                    std::ptr::null_mut(),
                )
            };
            if n < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(n as usize)
        }

        /// The length and sender of received datagram `i`.
        pub(super) fn received(&self, i: usize) -> (usize, Option<SocketAddr>) {
            let m = &self.messages[i];
            (
                m.msg_len as usize,
                to_socket_addr(&self.addresses[i], m.msg_hdr.msg_namelen),
            )
        }

        /// Send `outputs[i]` to the sender of datagram `i` wherever `replies[i]` says so.
        pub(super) fn send(&mut self, socket: &UdpSocket, outputs: &[Vec<u8>], replies: &[Reply]) {
            let mut count = 0;
            for (i, out) in outputs.iter().enumerate() {
                if replies[i] != Reply::Send {
                    continue;
                }
                self.send_iovecs[count] = libc::iovec {
                    // sendmmsg only reads through this pointer.
                    iov_base: out.as_ptr() as *mut libc::c_void,
                    iov_len: out.len(),
                };
                let m = &mut self.send_messages[count];
                m.msg_hdr = zeroed();
                m.msg_hdr.msg_name = (&mut self.addresses[i] as *mut libc::sockaddr_storage).cast();
                m.msg_hdr.msg_namelen = self.messages[i].msg_hdr.msg_namelen;
                m.msg_hdr.msg_iov = &mut self.send_iovecs[count];
                m.msg_hdr.msg_iovlen = 1;
                m.msg_len = 0;
                count += 1;
            }
            let mut sent = 0;
            while sent < count {
                // SAFETY: the first `count` send headers point at the received addresses and
                // at iovecs over `outputs`, all alive and unchanged during this call.
                let n = unsafe {
                    libc::sendmmsg(
                        socket.as_raw_fd(),
                        self.send_messages[sent..].as_mut_ptr(),
                        (count - sent) as libc::c_uint,
                        0,
                    )
                };
                if n > 0 {
                    sent += n as usize;
                } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
                {
                    // The first unsent datagram failed (its client went away, say): skip it
                    // and send the rest, as one send_to per answer would.
                    sent += 1;
                }
            }
        }
    }

    /// A received `sockaddr_storage` as a SocketAddr; `None` for a family other than IP.
    fn to_socket_addr(s: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
        let len = len as usize;
        match s.ss_family as libc::c_int {
            libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: the kernel wrote a sockaddr_in (family AF_INET, length checked);
                // sockaddr_storage is large and aligned enough for any sockaddr.
                let a =
                    unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above, for a sockaddr_in6.
                let a =
                    unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(a.sin6_addr.s6_addr),
                    u16::from_be(a.sin6_port),
                    u32::from_be(a.sin6_flowinfo),
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_answers_each_datagram_to_its_own_sender() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let addr = server.local_addr().unwrap();
        let clients: Vec<UdpSocket> = (0..5)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        for (i, c) in clients.iter().enumerate() {
            c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            c.send_to(&[i as u8; 3], addr).unwrap();
        }
        let mut batch = Batch::new();
        let mut seen = 0;
        while seen < clients.len() {
            seen += batch
                .serve(&server, |packet, src, out| {
                    out.clear();
                    out.extend_from_slice(packet);
                    out.extend_from_slice(&src.port().to_be_bytes());
                    // Every other one unanswered, to check replies go to the right senders.
                    if packet[0] % 2 == 0 {
                        Reply::Send
                    } else {
                        Reply::Nothing
                    }
                })
                .unwrap();
        }
        for (i, c) in clients.iter().enumerate() {
            if i % 2 == 1 {
                continue;
            }
            let mut buf = [0u8; 16];
            let (n, from) = c.recv_from(&mut buf).unwrap();
            assert_eq!(from, addr);
            let port = c.local_addr().unwrap().port().to_be_bytes();
            assert_eq!(&buf[..n], &[i as u8, i as u8, i as u8, port[0], port[1]]);
        }
    }
}
