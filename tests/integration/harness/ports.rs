//! Free TCP ports for an instance.
//!
//! Ports come from 20000-32767: below the kernel's ephemeral range, so our
//! own outgoing connections never squat on them. A port is skipped when
//! `/proc/net/tcp{,6}` lists it in any state, when this process handed it
//! out before, or when a test bind fails (which also catches sockets that are
//! bound but not listening, invisible in `/proc/net/tcp`). Races with other
//! processes remain possible; the caller retries on "Address already in use".

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Mutex, PoisonError};

const FIRST: u16 = 20000;
const LAST: u16 = 32767;

/// Ports handed out by this process; never handed out twice, so stacks in
/// parallel threads cannot collide with each other.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A random number from the standard library's per-process random keys.
pub fn random_u64() -> u64 {
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// `count` distinct free ports, each bindable on every address in `hosts`.
pub fn pick(count: usize, hosts: &[Ipv4Addr]) -> Vec<u16> {
    let taken = listed_in_proc();
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    let mut ports = Vec::with_capacity(count);
    let span = u64::from(LAST - FIRST) + 1;
    for _ in 0..100_000 {
        if ports.len() == count {
            break;
        }
        let port = FIRST + u16::try_from(random_u64() % span).unwrap_or(0);
        if taken.contains(&port) || handed_out.contains(&port) {
            continue;
        }
        let free = hosts.iter().all(|h| match TcpListener::bind((*h, port)) {
            Ok(_) => true,
            Err(e) if e.kind() == io::ErrorKind::AddrNotAvailable => panic!(
                "cannot bind {h}: {e}; the test servers need the loopback addresses 127.0.0.1 and 127.0.0.2"
            ),
            Err(_) => false,
        });
        if free {
            handed_out.insert(port);
            ports.push(port);
        }
    }
    assert_eq!(
        ports.len(),
        count,
        "no free TCP ports left in {FIRST}-{LAST}"
    );
    ports
}

/// Local ports of every TCP socket in `/proc/net/tcp` and `/proc/net/tcp6`.
fn listed_in_proc() -> HashSet<u16> {
    let mut taken = HashSet::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            // "  0: 0100007F:7A69 00000000:0000 0A ..."
            let port = line
                .split_whitespace()
                .nth(1)
                .and_then(|local| local.rsplit(':').next())
                .and_then(|hex| u16::from_str_radix(hex, 16).ok());
            taken.extend(port);
        }
    }
    taken
}
