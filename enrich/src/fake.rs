//! A procfs held in memory, for tests and benchmarks of enrichment (here and in the
//! crates that use it): processes by pid, each with what [`ProcSource`] reads.

use std::collections::HashMap;
use std::io;

use crate::procfs::{ProcSource, RootKey};

/// A fake procfs: processes by pid; a pid not in the map is gone.
#[derive(Clone, Debug, Default)]
pub struct FakeProc {
    /// The live processes.
    pub processes: HashMap<u32, FakeProcess>,
}

/// One process of a [`FakeProc`].
#[derive(Clone, Debug, Default)]
pub struct FakeProcess {
    /// `/proc/<pid>/exe`.
    pub exe: String,
    /// `/proc/<pid>/cmdline`, NUL-separated.
    pub cmdline: Vec<u8>,
    /// Start time in clock ticks since boot.
    pub start_ticks: u64,
    /// `/proc/<pid>/cgroup`.
    pub cgroup: String,
    /// The identity of its root directory.
    pub root: RootKey,
    /// `etc/passwd` under its root.
    pub passwd: String,
    /// `etc/group` under its root.
    pub group: String,
}

impl FakeProc {
    /// A procfs holding `processes`.
    pub fn new(processes: impl IntoIterator<Item = (u32, FakeProcess)>) -> Self {
        Self { processes: processes.into_iter().collect() }
    }

    fn get(&self, pid: u32) -> io::Result<&FakeProcess> {
        self.processes.get(&pid).ok_or_else(|| io::ErrorKind::NotFound.into())
    }
}

impl ProcSource for FakeProc {
    fn exe(&self, pid: u32) -> io::Result<String> {
        self.get(pid).map(|p| p.exe.clone())
    }
    fn cmdline(&self, pid: u32) -> io::Result<Vec<u8>> {
        self.get(pid).map(|p| p.cmdline.clone())
    }
    fn start_ticks(&self, pid: u32) -> io::Result<u64> {
        self.get(pid).map(|p| p.start_ticks)
    }
    fn cgroup(&self, pid: u32) -> io::Result<String> {
        self.get(pid).map(|p| p.cgroup.clone())
    }
    fn root_key(&self, pid: u32) -> io::Result<RootKey> {
        self.get(pid).map(|p| p.root)
    }
    fn root_file(&self, pid: u32, relative: &str) -> io::Result<Vec<u8>> {
        let p = self.get(pid)?;
        Ok(match relative {
            "etc/passwd" => p.passwd.clone().into_bytes(),
            "etc/group" => p.group.clone().into_bytes(),
            _ => return Err(io::ErrorKind::NotFound.into()),
        })
    }
}
