//! Kernel buffers of the peer socket. A follower that is busy for a moment (an fsync, a burst
//! of large entries) must not lose the datagrams that arrive meanwhile: Linux's default receive
//! buffer (`net.core.rmem_default`, about 208 KiB) holds three fragments of one 256 KiB entry,
//! and every datagram beyond it is dropped by the kernel before this process sees it, which
//! costs the whole message and a retransmission round. So the socket asks for
//! [`RECEIVE_BUFFER_BYTES`]; the kernel grants at most `net.core.rmem_max`, and what it granted
//! is logged.

use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;

/// What the peer socket asks for: enough for a full window of appends to every follower.
pub const RECEIVE_BUFFER_BYTES: usize = 8 * 1024 * 1024;
/// The send side: a leader writes a whole batch to each follower before it reads again.
pub const SEND_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// Asks for larger kernel buffers on `socket` and returns what was granted (receive, send).
/// Asking cannot fail the node: a kernel that grants less still works, only with more loss.
pub fn enlarge(socket: &UdpSocket) -> io::Result<(usize, usize)> {
    set(socket, libc::SO_RCVBUF, RECEIVE_BUFFER_BYTES)?;
    set(socket, libc::SO_SNDBUF, SEND_BUFFER_BYTES)?;
    // Linux reports twice the usable size (it counts its bookkeeping); halve it back.
    Ok((
        get(socket, libc::SO_RCVBUF)? / 2,
        get(socket, libc::SO_SNDBUF)? / 2,
    ))
}

fn set(socket: &UdpSocket, option: libc::c_int, bytes: usize) -> io::Result<()> {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt(2) reads `size_of::<c_int>()` bytes from the value we pass, on a
    // descriptor `socket` keeps open for the duration of the call.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn get(socket: &UdpSocket, option: libc::c_int) -> io::Result<usize> {
    let mut value: libc::c_int = 0;
    let mut length = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt(2) writes at most `length` bytes into `value`, and `length` back.
    let result = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&mut value as *mut libc::c_int).cast(),
            &mut length,
        )
    };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(value).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_gets_at_least_the_default_buffers_and_never_less_than_it_had() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let before = get(&socket, libc::SO_RCVBUF).unwrap() / 2;
        let (receive, send) = enlarge(&socket).unwrap();
        assert!(
            receive >= before.min(RECEIVE_BUFFER_BYTES),
            "{receive} < {before}"
        );
        assert!(receive <= RECEIVE_BUFFER_BYTES);
        assert!(send > 0 && send <= SEND_BUFFER_BYTES);
    }
}
