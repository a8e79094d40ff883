//! Validated configuration: the CLI's raw strings turned into typed settings before
//! anything is loaded. Every error names the flag and what it accepts.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use std::time::Duration;

use crate::cli::{OutputArg, RunArgs, TcpHooksArg, TraceArgs, WatchArgs, ZmqFormatArg, ZmqHeaderArg};
use crate::flow::FlowConfig;
use crate::loader::{LoaderConfig, TcpHooks};
use crate::sink::watch::EventFilter;
use crate::sink::zmq::{Endpoint, HeaderKind, ZmqConfig, ZmqFormat};

/// A command-line value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--netns` names something that is not a network namespace.
    #[error("--netns {spec}: {reason}")]
    Netns {
        /// The value given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `--ring-buffer-size` is not usable.
    #[error("--ring-buffer-size {value}: {reason}")]
    RingBufferSize {
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `--queue` is zero.
    #[error("--queue must be at least 1")]
    Queue,
    /// A duration option is malformed or out of range.
    #[error("--{flag} {value}: {reason}")]
    Duration {
        /// The option, without dashes.
        flag: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `--max-flows` is zero.
    #[error("--max-flows must be at least 1")]
    MaxFlows,
    /// A `--zmq` endpoint is malformed.
    #[error("--zmq {endpoint}: {reason}")]
    ZmqEndpoint {
        /// The value given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A ZMQ option that needs `--zmq`, or options that do not go together.
    #[error("{0}")]
    ZmqOption(&'static str),
    /// `--zmq-encryption-key` is not a CURVE public key.
    #[error(
        "--zmq-encryption-key: expected ntopng's CURVE public key, 40 Z85 characters (zmq-key.pub in ntopng's \
         data directory) or the 80 hexadecimal digits ntopng's interface page shows"
    )]
    ZmqKey,
    /// `--source-id 0`.
    #[error("--source-id must not be 0 (ntopng treats 0 as no id)")]
    SourceId,
}

/// Settings of the tracer, shared by every command that traces.
#[derive(Clone, Debug)]
pub struct TraceConfig {
    /// Kernel side.
    pub loader: LoaderConfig,
    /// Capacity of the channel after the ring-buffer reader.
    pub queue: usize,
}

impl TraceConfig {
    /// Validates the shared tracing options; `snapshots` loads the socket iterator.
    ///
    /// # Errors
    /// [`ConfigError`] naming the offending flag.
    pub fn from_args(args: &TraceArgs, udp: bool, snapshots: bool) -> Result<Self, ConfigError> {
        if args.queue == 0 {
            return Err(ConfigError::Queue);
        }
        Ok(Self {
            loader: LoaderConfig {
                netns: args.netns.iter().map(|s| netns_inode(s)).collect::<Result<_, _>>()?,
                udp,
                ring_buffer_bytes: parse_ring_buffer_size(&args.ring_buffer_size)?,
                snapshots,
                tcp_hooks: match args.tcp_hooks {
                    TcpHooksArg::Auto => TcpHooks::Auto,
                    TcpHooksArg::Btf => TcpHooks::Btf,
                    TcpHooksArg::Tracepoint => TcpHooks::Tracepoint,
                },
                hold_opens: None,
            },
            queue: args.queue,
        })
    }
}

/// Settings of `packetless run`.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Tracer.
    pub trace: TraceConfig,
    /// Flow table.
    pub flows: FlowConfig,
    /// Interval of the inventory (listen, dependency and `local_ip` records).
    pub inventory_interval: Duration,
    /// JSON lines on stdout.
    pub stdout: bool,
    /// ZMQ export, when asked for.
    pub zmq: Option<ZmqConfig>,
    /// The Docker engine to ask for container names, unless disabled.
    pub docker_socket: Option<std::path::PathBuf>,
}

impl RunConfig {
    /// Validates the `run` arguments.
    ///
    /// # Errors
    /// [`ConfigError`] naming the offending flag.
    pub fn from_args(args: &RunArgs) -> Result<Self, ConfigError> {
        if args.max_flows == 0 {
            return Err(ConfigError::MaxFlows);
        }
        let pair_window = parse_duration("pair-window", &args.pair_window)?;
        let mut trace = TraceConfig::from_args(&args.trace, true, true)?;
        // Opens reach the table well inside the window, so a flow's first record
        // is not later for it, and a connection shorter than half of it sends one
        // event instead of two.
        trace.loader.hold_opens = Some(pair_window / 2);
        Ok(Self {
            trace,
            flows: FlowConfig {
                pair_window,
                update_interval: positive(
                    parse_duration("update-interval", &args.update_interval)?,
                    "update-interval",
                    &args.update_interval,
                )?,
                udp_idle_timeout: positive(
                    parse_duration("udp-idle-timeout", &args.udp_idle_timeout)?,
                    "udp-idle-timeout",
                    &args.udp_idle_timeout,
                )?,
                max_flows: args.max_flows,
            },
            stdout: match args.output {
                Some(OutputArg::Json) => true,
                Some(OutputArg::None) => false,
                None => args.zmq.is_empty(),
            },
            zmq: zmq_config(args)?,
            docker_socket: (!args.no_docker).then(|| args.docker_socket.clone()),
            inventory_interval: positive(
                parse_duration("inventory-interval", &args.inventory_interval)?,
                "inventory-interval",
                &args.inventory_interval,
            )?,
        })
    }
}

/// The ZMQ sink's settings, or `None` without `--zmq`.
fn zmq_config(args: &RunArgs) -> Result<Option<ZmqConfig>, ConfigError> {
    if args.zmq.is_empty() {
        if args.zmq_encryption_key.is_some() || args.zmq_compress {
            return Err(ConfigError::ZmqOption("--zmq-encryption-key and --zmq-compress need --zmq"));
        }
        return Ok(None);
    }
    let endpoints = args
        .zmq
        .iter()
        .map(|e| Endpoint::parse(e).map_err(|reason| ConfigError::ZmqEndpoint { endpoint: e.clone(), reason }))
        .collect::<Result<Vec<_>, _>>()?;
    let header = match args.zmq_header {
        ZmqHeaderArg::V2 => HeaderKind::V2,
        ZmqHeaderArg::V3 => HeaderKind::V3,
    };
    if args.zmq_compress && header != HeaderKind::V3 {
        return Err(ConfigError::ZmqOption(
            "--zmq-compress needs --zmq-header v3: ntopng inflates v2 payloads only in an older, unverified form",
        ));
    }
    if args.zmq_queue == 0 {
        return Err(ConfigError::ZmqOption("--zmq-queue must be at least 1"));
    }
    let source_id = match args.source_id {
        Some(0) => return Err(ConfigError::SourceId),
        Some(id) => id,
        None => default_source_id(),
    };
    Ok(Some(ZmqConfig {
        endpoints,
        format: match args.zmq_format {
            ZmqFormatArg::Tlv => ZmqFormat::Tlv,
            ZmqFormatArg::Json => ZmqFormat::Json,
            ZmqFormatArg::Protobuf => ZmqFormat::Protobuf,
        },
        header,
        compress: args.zmq_compress,
        source_id,
        server_key: args.zmq_encryption_key.as_deref().map(parse_curve_key).transpose()?,
        event_interval: positive(
            parse_duration("zmq-event-interval", &args.zmq_event_interval)?,
            "zmq-event-interval",
            &args.zmq_event_interval,
        )?,
        queue: args.zmq_queue,
        update_interval: parse_duration("update-interval", &args.update_interval)?,
    }))
}

/// ntopng's public key as Z85: given as Z85, or as the hex of the Z85 text that
/// ntopng's interface page shows.
///
/// # Errors
/// [`ConfigError::ZmqKey`] when it is neither.
pub fn parse_curve_key(key: &str) -> Result<String, ConfigError> {
    let key = key.trim();
    let z85 = if key.len() == 80 && key.bytes().all(|b| b.is_ascii_hexdigit()) {
        let bytes: Vec<u8> = (0..80)
            .step_by(2)
            .map(|i| u8::from_str_radix(&key[i..i + 2], 16))
            .collect::<Result<_, _>>()
            .map_err(|_| ConfigError::ZmqKey)?;
        String::from_utf8(bytes).map_err(|_| ConfigError::ZmqKey)?
    } else {
        key.to_owned()
    };
    if crate::sink::zmq::socket::is_z85_key(&z85) {
        Ok(z85)
    } else {
        Err(ConfigError::ZmqKey)
    }
}

/// A stable non-zero id for this host: FNV-1a of /etc/machine-id (or, lacking
/// one, of the host name), folded to 32 bits.
#[must_use]
pub fn default_source_id() -> u32 {
    let seed = std::fs::read_to_string("/etc/machine-id")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .unwrap_or_default();
    let hash = seed.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    #[allow(clippy::cast_possible_truncation, reason = "folding 64 bits into 32 on purpose")]
    let id = (hash ^ (hash >> 32)) as u32;
    id.max(1)
}

fn positive(d: Duration, flag: &'static str, value: &str) -> Result<Duration, ConfigError> {
    if d.is_zero() {
        Err(ConfigError::Duration { flag, value: value.to_owned(), reason: "must be greater than zero" })
    } else {
        Ok(d)
    }
}

/// `500ms`, `30s`, `5m`, `2h`; a bare number is seconds.
///
/// # Errors
/// [`ConfigError::Duration`] naming `flag` when malformed.
pub fn parse_duration(flag: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let err = |reason| ConfigError::Duration { flag, value: value.to_owned(), reason };
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let n: u64 = digits.parse().map_err(|_| err("expected a number with a unit: ms, s, m or h (e.g. 30s)"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(err("unknown unit: use ms, s, m or h")),
    };
    Ok(d)
}

/// Settings of `packetless watch`.
#[derive(Clone, Debug)]
pub struct WatchConfig {
    /// Tracer.
    pub trace: TraceConfig,
    /// Which events to print.
    pub filter: EventFilter,
    /// JSON lines instead of text.
    pub json: bool,
}

impl WatchConfig {
    /// Validates the `watch` arguments.
    ///
    /// # Errors
    /// [`ConfigError`] naming the offending flag.
    pub fn from_args(args: &WatchArgs) -> Result<Self, ConfigError> {
        let filter = EventFilter {
            tcp: args.tcp || !args.udp,
            udp: args.udp || !args.tcp,
            incoming: args.incoming,
            outgoing: args.outgoing,
            retransmits: args.retransmits,
            tcp_close: args.tcp_close,
        };
        Ok(Self { trace: TraceConfig::from_args(&args.trace, filter.udp, false)?, filter, json: args.json })
    }
}

/// The inode of a network namespace given as `self`, a name, a path or a number.
///
/// # Errors
/// [`ConfigError::Netns`] when it does not exist or is not a network namespace.
pub fn netns_inode(spec: &str) -> Result<u32, ConfigError> {
    let err = |reason: String| ConfigError::Netns { spec: spec.to_owned(), reason };
    if let Ok(inode) = spec.parse::<u32>() {
        return Ok(inode);
    }
    let path: PathBuf = if spec == "self" {
        PathBuf::from("/proc/self/ns/net")
    } else if spec.contains('/') {
        PathBuf::from(spec)
    } else {
        Path::new("/var/run/netns").join(spec)
    };
    let meta = std::fs::metadata(&path).map_err(|e| {
        err(format!(
            "cannot open {}: {e} (expected self, a name listed by `ip netns`, /proc/PID/ns/net, or an inode)",
            path.display()
        ))
    })?;
    // nsfs inodes live on the nsfs device; a plain file would give a meaningless inode.
    let link = std::fs::read_link(&path).ok();
    let is_nsfs_link = link.as_ref().is_some_and(|l| l.to_string_lossy().starts_with("net:["));
    if !is_nsfs_link && !is_nsfs_mount(&path) {
        return Err(err(format!("{} is not a network namespace", path.display())));
    }
    u32::try_from(meta.ino()).map_err(|_| err("namespace inode does not fit 32 bits".to_owned()))
}

/// A bind mount of a namespace (as `ip netns add` makes) reports the nsfs magic.
fn is_nsfs_mount(path: &Path) -> bool {
    const NSFS_MAGIC: i64 = 0x6e73_6673;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs writes into the zeroed struct we own; the path is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), &raw mut st) };
    #[allow(clippy::useless_conversion, reason = "f_type is i64 on x86_64 but differs on other targets")]
    let magic = i64::from(st.f_type);
    rc == 0 && magic == NSFS_MAGIC
}

/// `16M`, `256K`, `1048576`: a power of two of at least one page.
///
/// # Errors
/// [`ConfigError::RingBufferSize`] when malformed, too small or not a power of two.
pub fn parse_ring_buffer_size(value: &str) -> Result<u32, ConfigError> {
    let err = |reason| ConfigError::RingBufferSize { value: value.to_owned(), reason };
    let (digits, multiplier) = match value.trim().to_ascii_uppercase() {
        v if v.ends_with('M') => (v.trim_end_matches('M').to_owned(), 1u64 << 20),
        v if v.ends_with('K') => (v.trim_end_matches('K').to_owned(), 1u64 << 10),
        v => (v, 1),
    };
    let n: u64 = digits.parse().map_err(|_| err("expected a number of bytes, optionally with K or M"))?;
    let bytes = n.checked_mul(multiplier).ok_or_else(|| err("too large"))?;
    if bytes < 4096 {
        return Err(err("must be at least 4096 bytes"));
    }
    if !bytes.is_power_of_two() {
        return Err(err("must be a power of two (the kernel requires it)"));
    }
    u32::try_from(bytes).map_err(|_| err("must be below 4G"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_buffer_sizes_accept_suffixes_and_powers_of_two_only() {
        assert_eq!(parse_ring_buffer_size("16M").unwrap(), 16 << 20);
        assert_eq!(parse_ring_buffer_size("256k").unwrap(), 256 << 10);
        assert_eq!(parse_ring_buffer_size("8192").unwrap(), 8192);
        assert!(parse_ring_buffer_size("3M").unwrap_err().to_string().contains("power of two"));
        assert!(parse_ring_buffer_size("1024").unwrap_err().to_string().contains("at least 4096"));
        assert!(parse_ring_buffer_size("lots").unwrap_err().to_string().starts_with("--ring-buffer-size lots"));
    }

    #[test]
    fn durations_take_units_and_name_the_flag_when_wrong() {
        assert_eq!(parse_duration("x", "500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("x", "30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("x", "5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("x", "2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("x", "7").unwrap(), Duration::from_secs(7));
        let e = parse_duration("update-interval", "soon").unwrap_err().to_string();
        assert!(e.starts_with("--update-interval soon: expected a number"), "{e}");
        assert!(parse_duration("x", "5d").unwrap_err().to_string().contains("unknown unit"));
    }

    #[test]
    fn curve_keys_are_taken_as_z85_or_as_its_hex() {
        let (public, _) = crate::sink::zmq::socket::curve_keypair().unwrap();
        assert_eq!(parse_curve_key(&public).unwrap(), public);
        let hex: String = public.bytes().fold(String::new(), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        });
        assert_eq!(parse_curve_key(&hex).unwrap(), public);
        assert!(parse_curve_key("nope").unwrap_err().to_string().starts_with("--zmq-encryption-key"));
        assert!(parse_curve_key(&"0".repeat(80)).is_err(), "hex of something that is not Z85");
    }

    #[test]
    fn default_source_id_is_stable_and_not_zero() {
        assert_eq!(default_source_id(), default_source_id());
        assert_ne!(default_source_id(), 0);
    }

    #[test]
    fn netns_self_resolves_and_garbage_is_refused_with_the_flag_name() {
        let own = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
        assert_eq!(u64::from(netns_inode("self").unwrap()), own);
        assert_eq!(netns_inode("4026531840").unwrap(), 4_026_531_840);
        let e = netns_inode("no-such-namespace-here").unwrap_err().to_string();
        assert!(
            e.starts_with("--netns no-such-namespace-here: cannot open /var/run/netns/no-such-namespace-here"),
            "{e}"
        );
        let e = netns_inode("/etc/hostname").unwrap_err().to_string();
        assert!(e.contains("is not a network namespace"), "{e}");
    }
}
