//! The resolver's sockets: bind UDP and TCP, run the UDP loop (fast path first, hickory's
//! generic path for the rest), hand TCP to [`super::tcp`], follow devenv.yaml, and shut down
//! cleanly.
//!
//! UDP runs on its own thread with a blocking socket: for the zone's names a query costs a
//! table lookup and its share of one batched receive and one batched send (see
//! [`super::udp`]), with no task, no wakeup, no lock and no allocation. The rest is parsed once
//! and spawned on the tokio runtime, bounded so that a flood of slow queries cannot grow
//! memory without limit.
//!
//! Not for: what the answers are (see [`super::handler`], [`super::records`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use hickory_proto::op::{Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use tokio::sync::Semaphore;

use super::fast::{self, Outcome};
use super::handler::Handler;
use super::store::Store;
use super::udp::{Batch, Reply};
use crate::error::Failure;

/// Queries on the generic path at once (forwarding waits on upstreams); beyond, UDP queries
/// are dropped and the client retries.
const MAX_IN_FLIGHT: usize = 256;
/// Of those, the most one client address may hold: a client flooding names that are slow to
/// resolve is shed, and everyone else still gets a share.
const MAX_IN_FLIGHT_PER_CLIENT: usize = MAX_IN_FLIGHT / 8;
/// How often the UDP thread looks at the stop flag when no query arrives.
const STOP_POLL: Duration = Duration::from_millis(200);

/// A running resolver. Dropping it without [`Running::shutdown`] leaves the UDP thread to end
/// at its next poll.
pub struct Running {
    udp: SocketAddr,
    tcp: SocketAddr,
    stop: Arc<AtomicBool>,
    udp_thread: Option<std::thread::JoinHandle<()>>,
    tcp_stop: tokio::sync::watch::Sender<bool>,
    tcp_task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("udp", &self.udp)
            .field("tcp", &self.tcp)
            .finish_non_exhaustive()
    }
}

fn bind_failure(e: std::io::Error, addr: SocketAddr, proto: &str) -> anyhow::Error {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => Failure::environment(
            format!("binding {addr}/{proto}: permission denied (ports below 1024 need privilege)"),
            Some(
                "use an unprivileged port (`dns.port` in devenv.yaml, default 20053, or `devenv dns serve --port 20053`), or allow devenv to bind low ports: sudo setcap cap_net_bind_service=+ep $(which devenv)"
                    .to_string(),
            ),
        )
        .into(),
        std::io::ErrorKind::AddrInUse => Failure::environment(
            format!("binding {addr}/{proto}: the address is already in use (another resolver, or devenv dns already running?)"),
            Some(format!("see who holds it with `ss -lupn 'sport = :{}'`, or use `--port`", addr.port())),
        )
        .into(),
        _ => anyhow::Error::new(e).context(format!("binding {addr}/{proto}")),
    }
}

/// Bind UDP and TCP on the same address and port. Port 0 picks a free port for both.
fn bind(addr: SocketAddr) -> anyhow::Result<(UdpSocket, std::net::TcpListener)> {
    let mut last = None;
    for _ in 0..if addr.port() == 0 { 20 } else { 1 } {
        let udp = UdpSocket::bind(addr).map_err(|e| bind_failure(e, addr, "udp"))?;
        let port = udp
            .local_addr()
            .context("reading the bound UDP address")?
            .port();
        let tcp_addr = SocketAddr::new(addr.ip(), port);
        match std::net::TcpListener::bind(tcp_addr) {
            Ok(tcp) => return Ok((udp, tcp)),
            // The port chosen for UDP may be taken for TCP: choose again.
            Err(e) if addr.port() == 0 && e.kind() == std::io::ErrorKind::AddrInUse => {
                last = Some(e)
            }
            Err(e) => return Err(bind_failure(e, tcp_addr, "tcp")),
        }
    }
    Err(bind_failure(
        last.unwrap_or_else(|| std::io::ErrorKind::AddrInUse.into()),
        addr,
        "tcp",
    ))
}

impl Running {
    /// Bind `addr` (UDP and TCP) and start answering with `handler`. Needs a tokio runtime
    /// (the generic path and TCP run on it).
    pub fn start(addr: SocketAddr, handler: Handler) -> anyhow::Result<Running> {
        let (udp, tcp) = bind(addr)?;
        let udp_addr = udp.local_addr().context("reading the bound UDP address")?;
        tcp.set_nonblocking(true)
            .context("configuring the TCP listener")?;
        let tcp_addr = tcp.local_addr().context("reading the bound TCP address")?;
        let tcp = tokio::net::TcpListener::from_std(tcp).context("registering the TCP listener")?;
        let cap = super::tcp::cap_for(super::tcp::open_file_limit());
        let (tcp_stop, stopped) = tokio::sync::watch::channel(false);
        let tcp_task = tokio::spawn(super::tcp::serve(tcp, handler.clone(), cap, stopped));

        udp.set_read_timeout(Some(STOP_POLL))
            .context("configuring the UDP socket")?;
        grow_receive_buffer(&udp);
        let stop = Arc::new(AtomicBool::new(false));
        let runtime = tokio::runtime::Handle::current();
        let udp_thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("devenv-dns-udp".into())
                .spawn(move || udp_loop(udp, handler, runtime, stop))
                .context("starting the UDP thread")?
        };
        tracing::info!(
            "listening on {udp_addr}/udp and {tcp_addr}/tcp (at most {cap} TCP connections)"
        );
        Ok(Running {
            udp: udp_addr,
            tcp: tcp_addr,
            stop,
            udp_thread: Some(udp_thread),
            tcp_stop,
            tcp_task: Some(tcp_task),
        })
    }

    /// The bound UDP address.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp
    }

    /// The bound TCP address.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp
    }

    /// Stop accepting queries and wait for the UDP thread and TCP connections to finish.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.udp_thread.take() {
            tokio::task::spawn_blocking(move || t.join())
                .await
                .context("waiting for the UDP thread")?
                .map_err(|_| anyhow::anyhow!("the UDP thread panicked"))?;
        }
        self.tcp_stop.send_replace(true);
        if let Some(t) = self.tcp_task.take() {
            t.await.context("waiting for the TCP listener")?;
        }
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.tcp_stop.send_replace(true);
    }
}

/// Ask for a 1 MiB receive buffer so that a burst (many clients starting at once) queues
/// instead of being dropped. The kernel caps it at `net.core.rmem_max`; failure is harmless.
fn grow_receive_buffer(socket: &UdpSocket) {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let size: libc::c_int = 1 << 20;
        // SAFETY: a valid socket descriptor and a pointer to a c_int of the stated length.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    #[cfg(not(unix))]
    let _ = socket;
}

/// A header-only FORMERR for a packet that has a header but does not parse.
fn formerr(packet: &[u8]) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..2].copy_from_slice(&packet[..2]);
    // QR, the request's opcode, RD; RCODE 1.
    out[2] = 0x80 | (packet[2] & 0x79);
    out[3] = 0x01;
    out
}

fn udp_loop(
    socket: UdpSocket,
    handler: Handler,
    runtime: tokio::runtime::Handle,
    stop: Arc<AtomicBool>,
) {
    let socket = Arc::new(socket);
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let per_client = Arc::new(Mutex::new(HashMap::new()));
    let mut batch = Batch::new();
    let store = handler.store().clone();
    while !stop.load(Ordering::Relaxed) {
        let served = batch.serve(&socket, |packet, src, out| {
            // Loaded per datagram, after it came: an update is seen by the very next query.
            match fast::answer(&store.load(), packet, src.ip(), out) {
                Outcome::Answered => Reply::Send,
                Outcome::Drop => Reply::Nothing,
                Outcome::Generic => {
                    if src.port() == 0 {
                        return Reply::Nothing;
                    }
                    let request = match Request::from_bytes(packet.to_vec(), src, Protocol::Udp) {
                        Ok(r) => r,
                        Err(_) => {
                            out.clear();
                            out.extend_from_slice(&formerr(packet));
                            return Reply::Send;
                        }
                    };
                    let Some(share) = Share::take(&per_client, src.ip()) else {
                        return Reply::Nothing;
                    };
                    let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                        return Reply::Nothing;
                    };
                    let limit = request
                        .edns
                        .as_ref()
                        .map_or(512, |e| e.max_payload().clamp(512, fast::EDNS_PAYLOAD));
                    let responder = UdpResponder {
                        socket: socket.clone(),
                        dst: src,
                        limit,
                    };
                    let handler = handler.clone();
                    runtime.spawn(async move {
                        handler
                            .handle_request::<_, TokioTime>(&request, responder)
                            .await;
                        drop(permit);
                        drop(share);
                    });
                    Reply::Nothing
                }
            }
        });
        match served {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            // An ICMP error from an earlier send surfaces here on some systems; keep serving.
            Err(e) => tracing::debug!("receiving on the UDP socket: {e}"),
        }
    }
}

/// Generic-path queries in flight, by client address.
type PerClient = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// One client's share of the generic path, given back when dropped.
struct Share {
    table: PerClient,
    client: IpAddr,
}

impl Share {
    /// A share for `client`, unless it already holds [`MAX_IN_FLIGHT_PER_CLIENT`].
    fn take(table: &PerClient, client: IpAddr) -> Option<Share> {
        let mut t = table.lock().unwrap_or_else(|e| e.into_inner());
        let held = t.entry(client).or_insert(0);
        if *held >= MAX_IN_FLIGHT_PER_CLIENT {
            return None;
        }
        *held += 1;
        Some(Share {
            table: table.clone(),
            client,
        })
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = t.get_mut(&self.client) {
            *held -= 1;
            if *held == 0 {
                t.remove(&self.client);
            }
        }
    }
}

/// Sends a generic-path answer back over the UDP socket, truncated (TC) to the client's size.
#[derive(Clone)]
struct UdpResponder {
    socket: Arc<UdpSocket>,
    dst: SocketAddr,
    limit: u16,
}

#[async_trait::async_trait]
impl ResponseHandler for UdpResponder {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let (info, bytes) = encode(response, self.limit)?;
        self.socket
            .send_to(&bytes, self.dst)
            .map_err(NetError::from)?;
        Ok(info)
    }
}

fn encode<'a>(
    response: MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
    limit: u16,
) -> Result<(ResponseInfo, Vec<u8>), NetError> {
    let id = response.metadata().id;
    let mut bytes = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_max_size(limit);
    match response.destructive_emit(&mut encoder) {
        Ok(info) => Ok((info, bytes)),
        Err(e) => {
            tracing::warn!("encoding a response: {e}");
            bytes.clear();
            let mut metadata = Metadata::new(id, MessageType::Response, OpCode::Query);
            metadata.response_code = ResponseCode::ServFail;
            let header = Header {
                metadata,
                counts: HeaderCounts::default(),
            };
            let mut encoder = BinEncoder::new(&mut bytes);
            header.emit(&mut encoder).map_err(NetError::from)?;
            Ok((ResponseInfo::from(header), bytes))
        }
    }
}

/// Keeps the response of an in-process query (no socket), for `devenv dns query` when no
/// resolver runs.
#[derive(Clone, Default)]
pub struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

impl Capture {
    /// The response bytes captured.
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let (info, bytes) = encode(response, u16::MAX)?;
        if let Ok(mut b) = self.0.lock() {
            *b = bytes;
        }
        Ok(info)
    }
}

/// Answer one query (wire bytes) in-process, as a client at `src` asking over TCP would get
/// it (no size limit).
pub async fn answer_in_process(
    handler: &Handler,
    query: Vec<u8>,
    src: SocketAddr,
) -> anyhow::Result<Vec<u8>> {
    let request = Request::from_bytes(query, src, Protocol::Tcp)
        .map_err(|e| anyhow::anyhow!("decoding the query: {e}"))?;
    let capture = Capture::default();
    handler
        .handle_request::<_, TokioTime>(&request, capture.clone())
        .await;
    Ok(capture.bytes())
}

/// Follow `path` (devenv.yaml): when its contents change, load and validate it and apply it
/// to `store`. A file that fails to load keeps the zone in force and logs why. Returns when
/// `stop` is set.
pub async fn follow_config(path: PathBuf, store: Arc<Store>, stop: Arc<AtomicBool>) {
    let read = |p: &Path| std::fs::read(p).ok();
    let mut last = read(&path);
    // Compared with the file's previous values, not with where serve listens: `--port` and
    // `--address` override the file on purpose.
    let listen_of = |c: &crate::config::Config| (c.dns.address, c.dns.port);
    let mut listen = crate::config::load(Some(&path))
        .ok()
        .map(|l| listen_of(&l.config));
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while !stop.load(Ordering::Relaxed) {
        ticker.tick().await;
        // Comparing contents (not only mtime) catches edits within the same second and
        // ignores touches.
        let now = read(&path);
        if now == last {
            continue;
        }
        last = now;
        match crate::config::load(Some(&path)) {
            Ok(loaded) => {
                let now_listen = listen_of(&loaded.config);
                if listen.is_some_and(|before| before != now_listen) {
                    tracing::warn!(
                        "{}: dns.address/dns.port changed; restart `devenv dns serve` to listen there",
                        path.display()
                    );
                }
                listen = Some(now_listen);
                match store.apply_config(&loaded.config) {
                    Ok(serial) => {
                        tracing::info!("{}: reloaded (zone serial {serial})", path.display())
                    }
                    Err(e) => tracing::error!("{}: not applied: {e:#}", path.display()),
                }
            }
            Err(e) => {
                let chain: Vec<String> = e.chain().map(ToString::to_string).collect();
                tracing::error!(
                    "{}: not reloaded, keeping the records in force: {}",
                    path.display(),
                    chain.join(": ")
                );
            }
        }
    }
}

/// Wait for SIGINT or SIGTERM (Ctrl-C off Unix): the resolver's signal to shut down.
pub async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("listening for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("listening for SIGINT")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("listening for Ctrl-C")?;
    Ok(())
}
