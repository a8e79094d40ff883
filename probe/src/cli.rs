//! Command line: clap structures whose doc comments are the `--help` text. They hold
//! raw user input; `config.rs` validates them into settings before anything runs.

// Doc comments here are --help text for users, where Markdown backticks would show.
#![allow(clippy::doc_markdown)]

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
// Parsed once per run: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Trace every TCP and UDP socket and print flow records (the main job).
    ///
    /// One JSON object per line on stdout:
    ///   "kind":"flow"        a connection (TCP) or a socket's exchange with one peer
    ///                        (UDP): src = client, dst = server, direction
    ///                        (local|inbound|outbound), state (open|update|closed),
    ///                        bytes and packets each way, retransmits, RTT, connect
    ///                        latency, end reason, and the processes of both ends when
    ///                        they are on this host (one record, not two).
    ///   "kind":"listen"      a listening TCP socket or bound UDP socket.
    ///   "kind":"dependency"  a destination of this host's outbound flows.
    ///   "kind":"local_ip"    an address of this host.
    /// Listen, dependency and local_ip records are repeated every
    /// --inventory-interval and at exit. SIGTERM or Ctrl-C emits the last record
    /// of every open flow, the inventory, then a {"kind":"stats",...} line; a
    /// second signal exits at once.
    ///
    /// Needs root, or CAP_BPF + CAP_PERFMON + CAP_NET_ADMIN, and a kernel with BTF.
    #[command(verbatim_doc_comment)]
    Run(RunArgs),

    /// Print every socket event as the kernel reports it, one line each.
    ///
    /// Events: connect (with handshake latency), connect_failed (with the reason),
    /// accept (attributed to the accepting process), close (final byte, segment and
    /// retransmit counters, RTT), retransmit, send/recv (UDP datagrams with peer and
    /// size), listen (TCP listen, UDP bind), udp_close.
    ///
    /// Without filters every event is shown. -i/-o/-r/-c choose event kinds and may be
    /// combined; -t/-u choose protocols. Ctrl-C or SIGTERM ends the command after
    /// printing the kernel-side loss counters (on stderr, or as a final
    /// {"event":"stats",...} line with --json).
    ///
    /// Needs root, or CAP_BPF + CAP_PERFMON + CAP_NET_ADMIN, and a kernel with BTF.
    #[command(verbatim_doc_comment)]
    Watch(WatchArgs),
}

/// Options shared by every command that traces.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Trace only these network namespaces: `self`, a name from `ip netns`
    /// (/var/run/netns/NAME), a path such as /proc/PID/ns/net, or an inode number.
    /// Repeat the option for several. Sockets elsewhere are neither traced nor
    /// counted as this host's. Default: every namespace.
    #[arg(long = "netns", value_name = "NETNS")]
    pub netns: Vec<String>,

    /// Size of the kernel's event ring buffer in bytes: a power of two, at least 4096
    /// (suffixes K and M accepted). Raise it if `ringbuf_full` losses are reported.
    #[arg(long, default_value = "8M", value_name = "BYTES")]
    pub ring_buffer_size: String,

    /// Events held between the kernel reader and the next stage before new ones are
    /// dropped (and counted as channel_full).
    #[arg(long, default_value_t = 262_144, value_name = "EVENTS")]
    pub queue: usize,

    /// Hooks that trace TCP: `btf` (BTF-typed tracepoints), `tracepoint` (classic
    /// tracepoints through tracefs, plus sockops), or `auto` (btf when the kernel
    /// accepts it, else tracepoint).
    #[arg(long, value_enum, default_value = "auto", value_name = "RUNG")]
    pub tcp_hooks: TcpHooksArg,
}

/// Options of `packetless run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Tracing options.
    #[command(flatten)]
    pub trace: TraceArgs,

    /// Records on stdout: `json` (one object per line) or `none`. Default: json,
    /// or none when --zmq is given.
    #[arg(long, value_enum)]
    pub output: Option<OutputArg>,

    /// Export flows over ZeroMQ in ntopng's format. `tcp://HOST:PORTc` (trailing c):
    /// connect to a collector that binds, for ntopng `-i tcp://*:PORTc`.
    /// `tcp://*:PORT`: bind and let the collector connect, for ntopng
    /// `-i tcp://PROBE:PORT`. Repeat for several collectors.
    #[arg(long = "zmq", value_name = "ENDPOINT")]
    pub zmq: Vec<String>,

    /// Flow payload format: `tlv` (nDPI TLV, read by every ntopng since 6.0), `json`
    /// (read only by ntopng builds with Pro code), or `protobuf` (packetless's own
    /// schema, every record kind, topic `pl-records`; for collectors other than
    /// ntopng).
    #[arg(long, value_enum, default_value = "tlv", value_name = "FORMAT")]
    pub zmq_format: ZmqFormatArg,

    /// Message header: `v2` (28 bytes; ntopng 5.4 and later) or `v3` (36 bytes;
    /// ntopng 6.4 and later).
    #[arg(long, value_enum, default_value = "v2", value_name = "VERSION")]
    pub zmq_header: ZmqHeaderArg,

    /// zlib-compress payloads (needs --zmq-header v3).
    #[arg(long)]
    pub zmq_compress: bool,

    /// ntopng's CURVE public key: 40 Z85 characters (the datadir's zmq-key.pub), or
    /// the 80 hexadecimal digits ntopng's interface page shows. The probe is the
    /// CURVE client, with a key pair made at start.
    #[arg(long, value_name = "KEY", env = "PACKETLESS_ZMQ_KEY", hide_env_values = true)]
    pub zmq_encryption_key: Option<String>,

    /// This probe's id in every message header (a non-zero number). Give each
    /// probe exporting to one collector its own. Default: derived from /etc/machine-id.
    #[arg(long, value_name = "ID")]
    pub source_id: Option<u32>,

    /// Interval of the `event` (probe status, timeouts, drops) and `listening-ports`
    /// messages.
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub zmq_event_interval: String,

    /// Flow messages queued per collector while it is slow or away (the latest
    /// `event` and `listening-ports` wait too); beyond, the oldest are dropped and
    /// counted.
    #[arg(long, default_value_t = 256, value_name = "MESSAGES")]
    pub zmq_queue: usize,

    /// Interval between records of a flow that stays open (e.g. 30s, 5m).
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    pub update_interval: String,

    /// A UDP flow without datagrams for this long is closed with end_reason timeout.
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    pub udp_idle_timeout: String,

    /// How long a new flow waits for the other end of an intra-host connection before
    /// its first record (both ends then share one record). The kernel holds each
    /// connection's open back for half of it, so that a shorter connection costs
    /// one event per socket.
    #[arg(long, default_value = "500ms", value_name = "DURATION")]
    pub pair_window: String,

    /// Interval between repetitions of the listen, dependency and local_ip records.
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    pub inventory_interval: String,

    /// Most flows held at once; beyond it the oldest are dropped and counted
    /// (flows_evicted).
    #[arg(long, default_value_t = 1_000_000, value_name = "FLOWS")]
    pub max_flows: usize,

    /// Do not ask the Docker engine for container names, images and Kubernetes
    /// labels (container ids and runtimes still come from cgroups).
    #[arg(long)]
    pub no_docker: bool,

    /// The Docker engine's socket. A missing or stopped engine is not an error: names
    /// appear when it answers.
    #[arg(long, default_value = "/var/run/docker.sock", value_name = "PATH")]
    pub docker_socket: std::path::PathBuf,
}

/// `--output` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputArg {
    /// One JSON object per line.
    Json,
    /// Nothing on stdout.
    None,
}

/// `--zmq-format` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ZmqFormatArg {
    /// nDPI TLV.
    Tlv,
    /// ntopng JSON.
    Json,
    /// packetless protobuf.
    Protobuf,
}

/// `--zmq-header` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ZmqHeaderArg {
    /// 28-byte header.
    V2,
    /// 36-byte header.
    V3,
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

    /// Show outgoing events: connect, connect_failed, and UDP send.
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

    /// Tracing options.
    #[command(flatten)]
    pub trace: TraceArgs,
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
