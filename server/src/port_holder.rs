//! Which process holds a local port, read from Linux's `/proc`, so that a refusal can say
//! "port 8001 is held by pid 4242 (rafting node --id 1 ...)" rather than only "in use".
//!
//! Best effort: on another system, or for a process of another user whose descriptors cannot
//! be read, the answer is `None` and the caller says only that the port is in use.

use std::fmt;
use std::path::Path;

/// Longest command line quoted in a description.
const COMMAND_LINE_CHARS_MAX: usize = 120;
const TCP_STATE_LISTEN: &str = "0A";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        })
    }
}

/// A process holding a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub command_line: String,
}

impl fmt::Display for Holder {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "pid {} ({})", self.pid, self.command_line)
    }
}

/// The process bound to `port` (listening, for TCP), if it can be found.
pub fn find(protocol: Protocol, port: u16) -> Option<Holder> {
    let tables: &[&str] = match protocol {
        Protocol::Tcp => &["/proc/net/tcp", "/proc/net/tcp6"],
        Protocol::Udp => &["/proc/net/udp", "/proc/net/udp6"],
    };
    let inodes: Vec<String> = tables
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|text| socket_inodes(&text, protocol, port))
        .collect();
    if inodes.is_empty() {
        return None;
    }
    process_with_socket(&inodes)
}

/// The inodes of the sockets bound to `port` in one `/proc/net/{tcp,udp}[6]` table.
fn socket_inodes(table: &str, protocol: Protocol, port: u16) -> Vec<String> {
    let port_hex = format!("{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields.get(1)?.rsplit(':').next()?;
            let state = fields.get(3)?;
            let inode = fields.get(9)?;
            let bound =
                local_port == port_hex && (protocol == Protocol::Udp || *state == TCP_STATE_LISTEN);
            (bound && *inode != "0").then(|| (*inode).to_owned())
        })
        .collect()
}

fn process_with_socket(inodes: &[String]) -> Option<Holder> {
    let links: Vec<String> = inodes
        .iter()
        .map(|inode| format!("socket:[{inode}]"))
        .collect();
    for process in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = process
            .file_name()
            .to_str()
            .and_then(|name| name.parse().ok())
        else {
            continue;
        };
        let Ok(descriptors) = std::fs::read_dir(process.path().join("fd")) else {
            continue;
        };
        let holds = descriptors.flatten().any(|descriptor| {
            std::fs::read_link(descriptor.path())
                .is_ok_and(|target| links.iter().any(|link| Path::new(link) == target))
        });
        if holds {
            return Some(Holder {
                pid,
                command_line: command_line(&process.path()),
            });
        }
    }
    None
}

fn command_line(process: &Path) -> String {
    let bytes = std::fs::read(process.join("cmdline")).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).replace('\0', " ");
    let text = text.trim();
    if text.chars().count() > COMMAND_LINE_CHARS_MAX {
        let shortened: String = text.chars().take(COMMAND_LINE_CHARS_MAX).collect();
        format!("{shortened}...")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port this test process listens on is found, and the holder is this process.
    #[test]
    fn the_holder_of_a_listening_port_is_this_process() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let holder = find(Protocol::Tcp, port).expect("found in /proc");
        assert_eq!(holder.pid, std::process::id());
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        assert_eq!(
            find(Protocol::Udp, port).map(|holder| holder.pid),
            Some(std::process::id())
        );
    }

    /// The table parser picks the listening socket on the port and skips others.
    #[test]
    fn only_sockets_bound_to_the_port_are_picked() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
            0: 0100007F:1F41 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1\n\
            1: 0100007F:1F41 0100007F:D000 01 00000000:00000000 00:00000000 00000000  1000        0 222 1\n\
            2: 0100007F:1F42 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 333 1\n";
        assert_eq!(socket_inodes(table, Protocol::Tcp, 8001), vec!["111"]);
        assert_eq!(socket_inodes(table, Protocol::Udp, 8002), vec!["333"]);
    }
}
