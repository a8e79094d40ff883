//! What procfs says about a live process: executable, command line, root, cgroup,
//! start time. Behind [`ProcSource`] so tests can use fakes; [`ProcFs`] reads
//! `/proc` (or a host's procfs mounted elsewhere, as in a container).

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// Longest command line kept (bytes); longer ones are cut and end with `...`.
pub const MAX_CMDLINE: usize = 4096;

/// Identity of a process's root directory (device, inode): processes with the same
/// root share `/etc/passwd`.
pub type RootKey = (u64, u64);

/// Source of process facts.
pub trait ProcSource: Send {
    /// The path of the process's executable.
    ///
    /// # Errors
    /// When the process is gone or not readable.
    fn exe(&self, pid: u32) -> io::Result<String>;
    /// The raw command line (NUL-separated arguments).
    ///
    /// # Errors
    /// As [`ProcSource::exe`].
    fn cmdline(&self, pid: u32) -> io::Result<Vec<u8>>;
    /// Start time in clock ticks since boot (`/proc/<pid>/stat` field 22).
    ///
    /// # Errors
    /// As [`ProcSource::exe`].
    fn start_ticks(&self, pid: u32) -> io::Result<u64>;
    /// The text of `/proc/<pid>/cgroup`.
    ///
    /// # Errors
    /// As [`ProcSource::exe`].
    fn cgroup(&self, pid: u32) -> io::Result<String>;
    /// The identity of the process's root directory.
    ///
    /// # Errors
    /// As [`ProcSource::exe`].
    fn root_key(&self, pid: u32) -> io::Result<RootKey>;
    /// A file under the process's root (e.g. `etc/passwd`).
    ///
    /// # Errors
    /// As [`ProcSource::exe`].
    fn root_file(&self, pid: u32, relative: &str) -> io::Result<Vec<u8>>;
}

/// The real procfs.
#[derive(Clone, Debug)]
pub struct ProcFs {
    root: PathBuf,
}

impl ProcFs {
    /// procfs mounted at `root` (normally `/proc`).
    #[must_use]
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, pid: u32, rest: &str) -> PathBuf {
        self.root.join(pid.to_string()).join(rest)
    }
}

impl ProcSource for ProcFs {
    fn exe(&self, pid: u32) -> io::Result<String> {
        Ok(std::fs::read_link(self.path(pid, "exe"))?.to_string_lossy().into_owned())
    }

    fn cmdline(&self, pid: u32) -> io::Result<Vec<u8>> {
        std::fs::read(self.path(pid, "cmdline"))
    }

    fn start_ticks(&self, pid: u32) -> io::Result<u64> {
        parse_start_ticks(&std::fs::read_to_string(self.path(pid, "stat"))?)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed stat"))
    }

    fn cgroup(&self, pid: u32) -> io::Result<String> {
        std::fs::read_to_string(self.path(pid, "cgroup"))
    }

    fn root_key(&self, pid: u32) -> io::Result<RootKey> {
        let meta = std::fs::metadata(self.path(pid, "root"))?;
        Ok((meta.dev(), meta.ino()))
    }

    fn root_file(&self, pid: u32, relative: &str) -> io::Result<Vec<u8>> {
        std::fs::read(self.path(pid, "root").join(relative))
    }
}

/// Field 22 of `/proc/<pid>/stat`. The command name (field 2) may contain spaces
/// and parentheses: fields are counted after its last `)`.
#[must_use]
pub fn parse_start_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    // After the name come fields 3 (state) onwards: field 22 is the 20th of them.
    after.split_whitespace().nth(19)?.parse().ok()
}

/// A NUL-separated command line as one string, arguments joined by spaces, cut
/// at [`MAX_CMDLINE`] bytes on a character boundary.
#[must_use]
pub fn format_cmdline(raw: &[u8]) -> String {
    let joined: Vec<u8> =
        raw.strip_suffix(&[0]).unwrap_or(raw).iter().map(|&b| if b == 0 { b' ' } else { b }).collect();
    let text = String::from_utf8_lossy(&joined);
    if text.len() <= MAX_CMDLINE {
        return text.into_owned();
    }
    let mut end = MAX_CMDLINE - 3;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 almost everywhere).
#[must_use]
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_survives_odd_command_names() {
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 200";
        assert_eq!(parse_start_ticks(stat), Some(98765));
        assert_eq!(parse_start_ticks("garbage"), None);
        assert_eq!(parse_start_ticks("1 (x) S 1"), None);
    }

    #[test]
    fn cmdlines_are_joined_and_bounded() {
        assert_eq!(format_cmdline(b"curl\0-s\0https://example.org\0"), "curl -s https://example.org");
        assert_eq!(format_cmdline(b""), "");
        let long = format_cmdline(&vec![b'a'; 10_000]);
        assert_eq!(long.len(), MAX_CMDLINE);
        assert!(long.ends_with("..."));
    }

    #[test]
    fn own_process_is_readable() {
        let proc = ProcFs::new("/proc");
        let pid = std::process::id();
        assert!(proc.exe(pid).unwrap().starts_with('/'));
        assert!(proc.start_ticks(pid).unwrap() > 0);
        assert!(proc.root_key(pid).is_ok());
        assert!(!proc.cgroup(pid).unwrap().is_empty());
    }
}
