//! User and group names from `/etc/passwd` and `/etc/group`: the files of the
//! process's own root, so a process in a container is named by the container's
//! files, not the host's.

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::Arc;

/// id -> name, from a passwd or group file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameTable(HashMap<u32, Arc<str>>);

impl NameTable {
    /// The name of `id`.
    #[must_use]
    pub fn name(&self, id: u32) -> Option<&str> {
        self.0.get(&id).map(AsRef::as_ref)
    }

    /// The name of `id`, shared.
    #[must_use]
    pub fn shared(&self, id: u32) -> Option<Arc<str>> {
        self.0.get(&id).cloned()
    }

    /// Entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Parses passwd (`name:x:uid:gid:...`) or group (`name:x:gid:members`) lines: the
/// id is the third field in both. Comments, blank, malformed and NIS (`+`, `-`)
/// lines are skipped; the first entry of an id wins, as `getpwuid()` does.
pub fn parse(reader: impl BufRead) -> NameTable {
    let mut table = HashMap::new();
    for line in reader.lines().map_while(Result::ok) {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') || line.starts_with('+') || line.starts_with('-') {
            continue;
        }
        let mut fields = line.split(':');
        let (Some(name), Some(_password), Some(id)) = (fields.next(), fields.next(), fields.next()) else { continue };
        if name.is_empty() {
            continue;
        }
        if let Ok(id) = id.parse::<u32>() {
            table.entry(id).or_insert_with(|| Arc::from(name));
        }
    }
    NameTable(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_and_group_lines() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n# comment\n\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\n\
                      +nisuser::::::\nbroken-line\nnobody:x:notanumber:1::/:/bin/false\ndup:x:33:33::/:/bin/sh\n";
        let t = parse(passwd.as_bytes());
        assert_eq!(t.name(0), Some("root"));
        assert_eq!(t.name(33), Some("www-data"), "first entry wins");
        assert_eq!(t.len(), 2);
        let group = "root:x:0:\nadm:x:4:syslog,ubuntu\n";
        assert_eq!(parse(group.as_bytes()).name(4), Some("adm"));
    }
}
