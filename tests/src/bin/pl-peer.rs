//! pl-peer: the far end of packetless's kernel tests. Each subcommand is one small,
//! deterministic socket program run as its own process (so pids and comms differ
//! from the test's), optionally inside a network namespace via `ip netns exec`.
//!
//! It names itself (`comm`) after its role before creating any socket, prints one
//! `READY <port> <pid>` line on stdout when the test may proceed, and exits 0 when
//! the exchange went exactly as asked (non-zero with a message otherwise).
//!
//! Subcommands:
//!   tcp-server ADDR SEND EXPECT     accept one connection, read EXPECT bytes, write SEND, close
//!   tcp-client ADDR SEND EXPECT [wait]
//!                                   connect, (wait for a line on stdin,) write SEND,
//!                                   read EXPECT bytes (then EOF), close
//!   tcp-accept-loop ADDR COUNT      accept COUNT connections, read each to EOF, close
//!   tcp-storm ADDR COUNT            COUNT times: connect, close
//!   tcp-hold ADDR                   connect, wait for a line on stdin, close
//!   tcp-sink ADDR                   accept one connection, read it to EOF
//!   tcp-trickle ADDR COUNT BYTES MS connect, then COUNT times: write BYTES, pause MS ms
//!   udp-server ADDR REPLY           receive one datagram, send REPLY bytes back to its source
//!   udp-client ADDR SEND [connected]
//!                                   send SEND bytes (sendto, or connect+send), receive the reply
//!   connect-refused ADDR            connect, expect ECONNREFUSED
//!   connect-timeout ADDR            connect, expect ETIMEDOUT (SYNs dropped on the way)

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::ExitCode;

fn set_comm(name: &str) {
    let c = std::ffi::CString::new(name).expect("no NUL in role names");
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c.as_ptr(), 0, 0, 0) };
}

fn ready(port: u16) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY {port} {}", std::process::id()).expect("stdout");
    out.flush().expect("stdout");
}

fn read_exact_then_eof(stream: &mut TcpStream, expect: usize, eof: bool) -> Result<(), String> {
    let mut buf = vec![0u8; expect];
    stream.read_exact(&mut buf).map_err(|e| format!("reading {expect} bytes: {e}"))?;
    if eof {
        let mut extra = [0u8; 1];
        let n = stream.read(&mut extra).map_err(|e| format!("reading EOF: {e}"))?;
        if n != 0 {
            return Err("more bytes than expected".into());
        }
    }
    Ok(())
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> Result<T, String> {
    args.get(i).ok_or_else(|| format!("missing {what}"))?.parse().map_err(|_| format!("bad {what}"))
}

fn port_of(addr: std::io::Result<SocketAddr>) -> Result<u16, String> {
    addr.map(|a| a.port()).map_err(|e| e.to_string())
}

fn wait_for_stdin_line() -> Result<(), String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map(drop).map_err(|e| e.to_string())
}

fn tcp_server(addr: SocketAddr, send: usize, expect: usize) -> Result<(), String> {
    set_comm("pl-server");
    let listener = TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
    ready(port_of(listener.local_addr())?);
    let (mut stream, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
    read_exact_then_eof(&mut stream, expect, false)?;
    stream.write_all(&vec![b's'; send]).map_err(|e| format!("write: {e}"))
}

fn tcp_client(addr: SocketAddr, send: usize, expect: usize, wait: bool) -> Result<(), String> {
    set_comm("pl-client");
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    ready(port_of(stream.local_addr())?);
    if wait {
        wait_for_stdin_line()?;
    }
    stream.write_all(&vec![b'c'; send]).map_err(|e| format!("write: {e}"))?;
    read_exact_then_eof(&mut stream, expect, true)
}

fn tcp_accept_loop(addr: SocketAddr, count: usize) -> Result<(), String> {
    set_comm("pl-server");
    let listener = TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
    ready(port_of(listener.local_addr())?);
    for _ in 0..count {
        let (mut stream, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
        read_exact_then_eof(&mut stream, 0, true)?;
    }
    Ok(())
}

fn tcp_storm(addr: SocketAddr, count: usize) -> Result<(), String> {
    set_comm("pl-storm");
    ready(0);
    for i in 0..count {
        drop(TcpStream::connect(addr).map_err(|e| format!("connect #{i} to {addr}: {e}"))?);
    }
    Ok(())
}

fn tcp_hold(addr: SocketAddr) -> Result<(), String> {
    set_comm("pl-holder");
    let stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    ready(port_of(stream.local_addr())?);
    wait_for_stdin_line()
}

fn tcp_sink(addr: SocketAddr) -> Result<(), String> {
    set_comm("pl-sink");
    let listener = TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
    ready(port_of(listener.local_addr())?);
    let (mut stream, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
    std::io::copy(&mut stream, &mut std::io::sink()).map(drop).map_err(|e| format!("read: {e}"))
}

fn tcp_trickle(addr: SocketAddr, count: usize, bytes: usize, pause_ms: u64) -> Result<(), String> {
    set_comm("pl-trickle");
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    ready(port_of(stream.local_addr())?);
    for _ in 0..count {
        stream.write_all(&vec![b't'; bytes]).map_err(|e| format!("write: {e}"))?;
        // The pause is the traffic pattern under test (a long-lived, slowly
        // growing connection), not synchronisation.
        std::thread::sleep(std::time::Duration::from_millis(pause_ms));
    }
    Ok(())
}

fn udp_server(mut addr: SocketAddr, reply: usize) -> Result<(), String> {
    set_comm("pl-userver");
    if addr.port() == 0 {
        // Servers bind the port they serve: binding port 0 is what clients do, and
        // the probe tells them apart by that. Find a free port, then bind it.
        let probe = UdpSocket::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
        addr.set_port(port_of(probe.local_addr())?);
    }
    let socket = UdpSocket::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
    ready(port_of(socket.local_addr())?);
    let mut buf = vec![0u8; 65536];
    let (_, from) = socket.recv_from(&mut buf).map_err(|e| format!("recvfrom: {e}"))?;
    socket.send_to(&vec![b'r'; reply], from).map_err(|e| format!("sendto: {e}"))?;
    Ok(())
}

fn udp_client(addr: SocketAddr, send: usize, connected: bool) -> Result<(), String> {
    set_comm("pl-uclient");
    let any: SocketAddr = if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal");
    let socket = UdpSocket::bind(any).map_err(|e| format!("bind: {e}"))?;
    let mut buf = vec![0u8; 65536];
    if connected {
        socket.connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        socket.send(&vec![b'q'; send]).map_err(|e| format!("send: {e}"))?;
        socket.recv(&mut buf).map_err(|e| format!("recv: {e}"))?;
    } else {
        socket.send_to(&vec![b'q'; send], addr).map_err(|e| format!("sendto {addr}: {e}"))?;
        socket.recv_from(&mut buf).map_err(|e| format!("recvfrom: {e}"))?;
    }
    ready(port_of(socket.local_addr())?);
    Ok(())
}

fn connect_fails(addr: SocketAddr, comm: &str, expected: std::io::ErrorKind) -> Result<(), String> {
    set_comm(comm);
    match TcpStream::connect(addr) {
        Err(e) if e.kind() == expected => {
            ready(0);
            Ok(())
        }
        other => Err(format!("expected {expected:?} from {addr}, got {other:?}")),
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let cmd = args.first().map(String::as_str).unwrap_or_default();
    let addr: SocketAddr = arg(args, 1, "ADDR")?;
    match cmd {
        "tcp-server" => tcp_server(addr, arg(args, 2, "SEND")?, arg(args, 3, "EXPECT")?),
        "tcp-client" => tcp_client(
            addr,
            arg(args, 2, "SEND")?,
            arg(args, 3, "EXPECT")?,
            args.get(4).map(String::as_str) == Some("wait"),
        ),
        "tcp-accept-loop" => tcp_accept_loop(addr, arg(args, 2, "COUNT")?),
        "tcp-storm" => tcp_storm(addr, arg(args, 2, "COUNT")?),
        "tcp-hold" => tcp_hold(addr),
        "tcp-sink" => tcp_sink(addr),
        "tcp-trickle" => tcp_trickle(addr, arg(args, 2, "COUNT")?, arg(args, 3, "BYTES")?, arg(args, 4, "MS")?),
        "udp-server" => udp_server(addr, arg(args, 2, "REPLY")?),
        "udp-client" => udp_client(addr, arg(args, 2, "SEND")?, args.get(3).map(String::as_str) == Some("connected")),
        "connect-refused" => connect_fails(addr, "pl-refused", std::io::ErrorKind::ConnectionRefused),
        "connect-timeout" => connect_fails(addr, "pl-timeout", std::io::ErrorKind::TimedOut),
        other => Err(format!("unknown subcommand {other:?}")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pl-peer {}: {e}", args.join(" "));
            ExitCode::FAILURE
        }
    }
}
