//! Conversion from the kernel's `CLOCK_BOOTTIME` timestamps to wall-clock time.
//!
//! Events carry `bpf_ktime_get_boot_ns()`, which keeps counting across suspend and
//! never jumps. The offset to `CLOCK_REALTIME` is sampled when the clock is built.

use std::time::{Duration, SystemTime};

/// Maps boot-time nanoseconds to wall-clock time.
#[derive(Clone, Copy, Debug)]
pub struct BootClock {
    /// Wall-clock time at `boot_ns_at`.
    wall_at: SystemTime,
    boot_ns_at: u64,
}

impl BootClock {
    /// Samples both clocks now.
    #[must_use]
    pub fn now() -> Self {
        let boot_ns_at = boot_ns_now();
        Self { wall_at: SystemTime::now(), boot_ns_at }
    }

    /// A clock with a fixed correspondence (tests).
    #[must_use]
    pub fn fixed(wall_at: SystemTime, boot_ns_at: u64) -> Self {
        Self { wall_at, boot_ns_at }
    }

    /// Wall-clock time of a boot-time timestamp.
    #[must_use]
    pub fn wall_time(&self, boot_ns: u64) -> SystemTime {
        if boot_ns >= self.boot_ns_at {
            self.wall_at + Duration::from_nanos(boot_ns - self.boot_ns_at)
        } else {
            self.wall_at - Duration::from_nanos(self.boot_ns_at - boot_ns)
        }
    }
}

/// `CLOCK_BOOTTIME` now, in nanoseconds.
#[must_use]
pub fn boot_ns_now() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &raw mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}
