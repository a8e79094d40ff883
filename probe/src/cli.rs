//! Command line: clap structures whose doc comments are the `--help` text. They hold
//! raw user input; `config.rs` validates them into a `Config` before anything runs.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// packetless: a packetless network-flow probe. eBPF programs follow every TCP and
/// UDP socket in the kernel and say which process made each connection.
#[derive(Debug, Parser)]
#[command(name = "packetless", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,

    /// Log level for messages on stderr: error, warn, info, debug, trace, or a
    /// tracing filter such as `packetless=debug`.
    #[arg(long, global = true, env = "PACKETLESS_LOG", default_value = "info", value_name = "LEVEL")]
    pub log_level: String,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print every socket event as the kernel reports it, one line each.
    ///
    /// Events: connect (with handshake latency), `connect_failed` (with the reason),
    /// accept (attributed to the accepting process), close (final byte, segment and
    /// retransmit counters, RTT), retransmit, send/recv (UDP datagrams with peer and
    /// size), listen (TCP listen, UDP bind), `udp_close`.
    ///
    /// Without filters every event is shown. -i/-o/-r/-c choose event kinds and may be
    /// combined; -t/-u choose protocols. Ctrl-C or SIGTERM ends the command after
    /// printing the kernel-side loss counters (on stderr, or as a final
    /// {"event":"stats",...} line with --json).
    ///
    /// Needs root, or `CAP_BPF` + `CAP_PERFMON` + `CAP_NET_ADMIN`, and a kernel with BTF.
    #[command(verbatim_doc_comment)]
    Watch(WatchArgs),
}

/// Options of `packetless watch`.
#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools, reason = "each bool is one independent command-line switch")]
pub struct WatchArgs {
    /// Show TCP events only (with -u: both).
    #[arg(short = 't', long = "tcp")]
    pub tcp: bool,

    /// Show UDP events only (with -t: both).
    #[arg(short = 'u', long = "udp")]
    pub udp: bool,

    /// Show incoming events: accept, and UDP recv.
    #[arg(short = 'i', long = "in")]
    pub incoming: bool,

    /// Show outgoing events: connect, `connect_failed`, and UDP send.
    #[arg(short = 'o', long = "out")]
    pub outgoing: bool,

    /// Show TCP retransmissions.
    #[arg(short = 'r', long = "retr")]
    pub retransmits: bool,

    /// Show TCP close events (with final counters).
    #[arg(short = 'c', long = "tcpclose")]
    pub tcp_close: bool,

    /// Print one JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,

    /// Trace only these network namespaces: `self`, a name from `ip netns`
    /// (/var/run/netns/NAME), a path such as /proc/PID/ns/net, or an inode number.
    /// Repeat the option for several. Default: every namespace.
    #[arg(long = "netns", value_name = "NETNS")]
    pub netns: Vec<String>,

    /// Size of the kernel's event ring buffer in bytes: a power of two, at least 4096
    /// (suffixes K and M accepted). Raise it if `ringbuf_full` losses are reported.
    #[arg(long, default_value = "16M", value_name = "BYTES")]
    pub ring_buffer_size: String,

    /// Hooks that trace TCP: `btf` (BTF-typed tracepoints), `tracepoint` (classic
    /// tracepoints through tracefs, plus sockops), or `auto` (btf when the kernel
    /// accepts it, else tracepoint).
    #[arg(long, value_enum, default_value = "auto", value_name = "RUNG")]
    pub tcp_hooks: TcpHooksArg,

    /// Events held between the kernel reader and the printer before new ones are
    /// dropped (and counted as `channel_full`).
    #[arg(long, default_value_t = 262_144, value_name = "EVENTS")]
    pub queue: usize,
}

/// `--tcp-hooks` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TcpHooksArg {
    /// BTF-typed tracepoints when accepted, else classic tracepoints.
    Auto,
    /// BTF-typed tracepoints only.
    Btf,
    /// Classic tracepoints (tracefs) and sockops.
    Tracepoint,
}
