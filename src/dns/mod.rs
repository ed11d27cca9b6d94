//! devenv's resolver for the local domain: authoritative for `*.<domain>` from the devenv.yaml
//! model, split horizon for Docker and KinD networks, a forwarder with a cache for every other
//! name (loopback clients only), live updates, and the OS split-DNS setup that sends the domain
//! to it.
//!
//! ```text
//! records  the pure table (Records) and the compiled Zone (hickory records per view)
//! fast     precomputed wire answers for the zone's names; no allocation per query
//! store    the live Zone: atomically swapped snapshots plus a change channel
//! handler  hickory RequestHandler: the generic path, forwarding, REFUSED for the network
//! forward  upstreams (system resolvers minus devenv), the cache
//! exchange one query to a server: UDP, TCP when truncated (forwarder and client)
//! server   sockets: the UDP loop, shutdown, following devenv.yaml
//! routes   the user's routes as a source of the zone, followed like devenv.yaml
//! tcp      TCP connections under a cap that fits the open-file limit, oldest idle closed first
//! udp      batched datagram receive and send (recvmmsg/sendmmsg on Linux)
//! service  the resolver in the background while the environment runs (up starts, down stops)
//! runfile  the run file (dns.json) a serving resolver keeps for `query` and `status`
//! client   asking a resolver, or answering in-process
//! login    the per-user service that starts the resolver at login (systemd, launchd)
//! os       split-DNS install/uninstall (systemd-resolved, NetworkManager, macOS, Windows),
//!          and whether the host sends the domain to devenv
//! ```
//!
//! Not for: command-line handling or printing (see `commands::dns`).

pub mod client;
pub mod exchange;
pub mod fast;
pub mod forward;
pub mod handler;
pub mod login;
pub mod os;
pub mod records;
pub mod routes;
pub mod runfile;
pub mod server;
pub mod service;
pub mod store;
pub mod tcp;
pub mod udp;

pub use forward::Forwarder;
pub use handler::Handler;
pub use records::{Data, Entry, Records, Zone};
pub use runfile::RunFile;
pub use server::Running;
pub use store::Store;
