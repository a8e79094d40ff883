//! Validated configuration: the CLI's raw strings turned into typed settings before
//! anything is loaded. Every error names the flag and what it accepts.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use std::time::Duration;

use crate::cli::{RunArgs, TcpHooksArg, TraceArgs, WatchArgs};
use crate::flow::FlowConfig;
use crate::loader::{LoaderConfig, TcpHooks};
use crate::sink::watch::EventFilter;

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
        Ok(Self {
            trace: TraceConfig::from_args(&args.trace, true, true)?,
            flows: FlowConfig {
                pair_window: parse_duration("pair-window", &args.pair_window)?,
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
            inventory_interval: positive(
                parse_duration("inventory-interval", &args.inventory_interval)?,
                "inventory-interval",
                &args.inventory_interval,
            )?,
        })
    }
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
