//! The resolver's TCP side: accept connections, answer each length-framed query on them in
//! turn through the generic path, and keep their number under a cap that fits the process's
//! open-file limit. At the cap, a new connection closes the connection idle the longest (a
//! client that opened it and went quiet) or, when none is idle, the one that has been sending
//! its query the longest (a client trickling bytes), so that a crowd of idle or slow
//! connections can never lock out the next client (RFC 7766 section 6.2.3 lets a server close
//! idle ones). A connection whose query is being answered is never closed to make room.
//!
//! Not for: what the answers are (see [`super::handler`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

use super::handler::Handler;

/// How long a connection may stay idle between queries, and a query may take to arrive or
/// its answer to be taken.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections kept at most, however high the open-file limit.
pub const MAX_CONNECTIONS: usize = 1_024;
/// Descriptors left for everything else (forwarding sockets, the run file, config reloads).
const FD_RESERVE: u64 = 256;
/// How long to wait before accepting again when the process is out of descriptors.
const FULL_PAUSE: Duration = Duration::from_millis(10);

/// The connection cap for an open-file limit of `limit`.
pub fn cap_for(limit: u64) -> usize {
    usize::try_from(limit.saturating_sub(FD_RESERVE))
        .unwrap_or(usize::MAX)
        .clamp(16, MAX_CONNECTIONS)
}

/// What a connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the next query.
    Idle,
    /// Its query's length came; the rest is still arriving.
    Reading,
    /// Its query is being answered: it is not closed to make room.
    Answering,
}

struct Connection {
    phase: Phase,
    /// When it entered its phase.
    since: Instant,
    close: Arc<Notify>,
}

/// The open connections, by number.
#[derive(Default)]
struct Table {
    open: HashMap<u64, Connection>,
    next: u64,
}

impl Table {
    /// Make room for one more under `cap` by closing the connection idle the longest, else
    /// the one that has been sending its query the longest. `false` when every connection is
    /// being answered.
    fn make_room(&mut self, cap: usize) -> bool {
        if self.open.len() < cap {
            return true;
        }
        let oldest_in = |phase: Phase| {
            self.open
                .iter()
                .filter(|(_, c)| c.phase == phase)
                .min_by_key(|(_, c)| c.since)
                .map(|(id, _)| *id)
        };
        let victim = oldest_in(Phase::Idle).or_else(|| oldest_in(Phase::Reading));
        match victim.and_then(|id| self.open.remove(&id)) {
            Some(c) => {
                c.close.notify_one();
                true
            }
            None => false,
        }
    }

    fn set_phase(&mut self, id: u64, phase: Phase) {
        if let Some(c) = self.open.get_mut(&id) {
            c.phase = phase;
            c.since = Instant::now();
        }
    }
}

fn lock(t: &Mutex<Table>) -> std::sync::MutexGuard<'_, Table> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}

/// Accept on `listener` until `stop` turns true, answering with `handler`, at most `cap`
/// connections at once.
pub async fn serve(
    listener: TcpListener,
    handler: Handler,
    cap: usize,
    mut stop: watch::Receiver<bool>,
) {
    let table = Arc::new(Mutex::new(Table::default()));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => break,
        };
        let (stream, src) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors: free one by closing the longest-idle connection, and
                // let the closing task run before accepting again.
                if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) {
                    let mut t = lock(&table);
                    let cap = t.open.len().saturating_sub(1).max(1);
                    t.make_room(cap);
                }
                tracing::debug!("accepting a TCP connection: {e}");
                tokio::time::sleep(FULL_PAUSE).await;
                continue;
            }
        };
        let close = Arc::new(Notify::new());
        let id = {
            let mut t = lock(&table);
            if !t.make_room(cap) {
                // Every connection is being answered: this one waits for none of them.
                drop(stream);
                continue;
            }
            let id = t.next;
            t.next += 1;
            t.open.insert(
                id,
                Connection {
                    phase: Phase::Idle,
                    since: Instant::now(),
                    close: close.clone(),
                },
            );
            id
        };
        let handler = handler.clone();
        let table = table.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            connection(stream, src, &handler, id, &table, &close, stop).await;
            lock(&table).open.remove(&id);
        });
    }
}

/// Answer the queries of one connection in turn until the client closes it, it idles past
/// [`IDLE_TIMEOUT`], it is closed to make room, or the server stops.
async fn connection(
    mut stream: TcpStream,
    src: SocketAddr,
    handler: &Handler,
    id: u64,
    table: &Mutex<Table>,
    close: &Notify,
    mut stop: watch::Receiver<bool>,
) {
    let set_phase = |phase: Phase| lock(table).set_phase(id, phase);
    loop {
        let len = tokio::select! {
            r = tokio::time::timeout(IDLE_TIMEOUT, stream.read_u16()) => match r {
                Ok(Ok(len)) => usize::from(len),
                _ => return,
            },
            _ = close.notified() => return,
            _ = stop.changed() => return,
        };
        set_phase(Phase::Reading);
        let mut query = vec![0u8; len];
        tokio::select! {
            r = tokio::time::timeout(IDLE_TIMEOUT, stream.read_exact(&mut query)) => match r {
                Ok(Ok(_)) => {}
                _ => return,
            },
            _ = close.notified() => return,
            _ = stop.changed() => return,
        }
        set_phase(Phase::Answering);
        let answer = match super::server::answer_in_process(handler, query, src).await {
            Ok(bytes) if !bytes.is_empty() => bytes,
            // Not a query that parses: nothing sensible to say on this stream.
            _ => return,
        };
        let mut framed = Vec::with_capacity(answer.len() + 2);
        framed.extend_from_slice(&(answer.len() as u16).to_be_bytes());
        framed.extend_from_slice(&answer);
        match tokio::time::timeout(IDLE_TIMEOUT, stream.write_all(&framed)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
        set_phase(Phase::Idle);
    }
}

/// Raise the soft open-file limit to the hard limit, so that the resolver can hold as many
/// connections as the system lets it. Returns the soft limit now in force.
pub fn raise_open_file_limit() -> u64 {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit with a valid resource and a pointer to an rlimit.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return 1_024;
            }
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: limit.rlim_max,
                    rlim_max: limit.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    limit = raised;
                } else {
                    tracing::debug!(
                        "raising the open-file limit: {}",
                        std::io::Error::last_os_error()
                    );
                }
            }
        }
        #[allow(clippy::useless_conversion)]
        u64::try_from(limit.rlim_cur).unwrap_or(u64::MAX)
    }
    #[cfg(not(unix))]
    {
        u64::MAX
    }
}

/// The soft open-file limit in force.
pub fn open_file_limit() -> u64 {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit with a valid resource and a pointer to an rlimit.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return 1_024;
        }
        #[allow(clippy::useless_conversion)]
        u64::try_from(limit.rlim_cur).unwrap_or(u64::MAX)
    }
    #[cfg(not(unix))]
    {
        u64::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_other_descriptors() {
        assert_eq!(cap_for(1_024), 768);
        assert_eq!(cap_for(1_048_576), MAX_CONNECTIONS);
        assert_eq!(cap_for(100), 16);
    }

    fn table(phases: &[Phase]) -> Table {
        let mut t = Table::default();
        let start = Instant::now();
        for (i, phase) in phases.iter().enumerate() {
            t.open.insert(
                i as u64,
                Connection {
                    phase: *phase,
                    since: start + Duration::from_secs(i as u64),
                    close: Arc::new(Notify::new()),
                },
            );
        }
        t
    }

    #[test]
    fn room_is_made_by_closing_the_longest_idle_and_never_one_being_answered() {
        let mut t = table(&[Phase::Answering, Phase::Idle, Phase::Idle]);
        assert!(t.make_room(3));
        // 0 is being answered, so 1 (idle the longest of the rest) went.
        assert!(!t.open.contains_key(&1) && t.open.contains_key(&0) && t.open.contains_key(&2));
        t.set_phase(2, Phase::Answering);
        assert!(!t.make_room(2), "every one left is being answered");
        assert!(t.make_room(3), "under the cap nothing is closed");
        assert_eq!(t.open.len(), 2);
    }

    #[test]
    fn without_an_idle_one_the_slowest_sender_makes_room() {
        let mut t = table(&[Phase::Answering, Phase::Reading, Phase::Reading]);
        assert!(t.make_room(3));
        assert!(!t.open.contains_key(&1), "the one reading the longest goes");
        let mut t = table(&[Phase::Reading, Phase::Idle]);
        assert!(t.make_room(2));
        assert!(
            !t.open.contains_key(&1),
            "an idle one goes before a reading one"
        );
    }
}
