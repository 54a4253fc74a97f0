//! Multus's node-local configuration directory (`--cni-conf-dir`, default
//! `/etc/cni/multus/net.d`): the agent's own files there ([`super::cni::is_owned`]) are made
//! exactly the wanted ones; no other file is read, written or removed.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::manager::cni::is_owned;
use crate::manager::files::write_atomically_if_changed;

/// The directory could not be listed, or a file not written or removed.
#[derive(Debug, thiserror::Error)]
#[error(
    "CNI configuration directory {dir}: {reason} (check the agent's hostPath mount of --cni-conf-dir)"
)]
pub struct CniDirError {
    dir: PathBuf,
    reason: String,
}

impl CniDirError {
    /// A stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        "cni_conf_dir"
    }
}

/// The directory.
#[derive(Clone, Debug)]
pub struct CniConfDir {
    dir: PathBuf,
}

impl CniConfDir {
    pub fn new(dir: impl Into<PathBuf>) -> CniConfDir {
        CniConfDir { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes each of `files` (file name to content) that differs, through a temporary file
    /// and a rename, and removes the agent's files not in `files`; with `dry_run`, only says
    /// what it would do. Returns what changed (`write <path>`, `remove <path>`).
    pub fn sync(
        &self,
        files: &BTreeMap<String, String>,
        dry_run: bool,
    ) -> Result<Vec<String>, CniDirError> {
        let mut changes = Vec::new();
        for name in self.owned_files()? {
            if !files.contains_key(&name) {
                let path = self.dir.join(&name);
                if !dry_run {
                    remove(&path).map_err(|e| self.error(&name, &e))?;
                }
                changes.push(format!("remove {}", path.display()));
            }
        }
        for (name, content) in files {
            let path = self.dir.join(name);
            let changed = if dry_run {
                std::fs::read(&path).ok().as_deref() != Some(content.as_bytes())
            } else {
                write_atomically_if_changed(&path, content.as_bytes())
                    .map_err(|e| self.error(name, &e))?
            };
            if changed {
                changes.push(format!("write {}", path.display()));
            }
        }
        Ok(changes)
    }

    /// The names of the agent's files in the directory (none when it does not exist).
    fn owned_files(&self) -> Result<Vec<String>, CniDirError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(self.error("", &error)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.error("", &e))?;
            if let Some(name) = entry.file_name().to_str().filter(|name| is_owned(name)) {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }

    fn error(&self, file: &str, error: &io::Error) -> CniDirError {
        let reason = if file.is_empty() {
            error.to_string()
        } else {
            format!("{file}: {error}")
        };
        CniDirError {
            dir: self.dir.clone(),
            reason,
        }
    }
}

fn remove(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        result => result,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::CniConfDir;

    #[test]
    fn writes_wanted_files_removes_its_own_others_and_leaves_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let conf = CniConfDir::new(dir.path().join("net.d"));
        let wanted = BTreeMap::from([
            ("multi-eni-a.conf".to_string(), "a\n".to_string()),
            ("multi-eni-b.conf".into(), "b\n".into()),
        ]);
        assert_eq!(conf.sync(&wanted, false).unwrap().len(), 2);
        std::fs::write(conf.path().join("other.conf"), "foreign").unwrap();
        std::fs::write(conf.path().join("multi-eni.conf"), "foreign too").unwrap();
        assert!(conf.sync(&wanted, false).unwrap().is_empty());

        let only_a = BTreeMap::from([("multi-eni-a.conf".to_string(), "a2\n".to_string())]);
        let dry = conf.sync(&only_a, true).unwrap();
        assert_eq!(dry.len(), 2, "{dry:?}");
        assert!(conf.path().join("multi-eni-b.conf").exists());
        let mut changes = conf.sync(&only_a, false).unwrap();
        changes.sort();
        assert!(changes[0].starts_with("remove ") && changes[1].starts_with("write "));
        let mut names: Vec<_> = std::fs::read_dir(conf.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["multi-eni-a.conf", "multi-eni.conf", "other.conf"]);
        let a = std::fs::read_to_string(conf.path().join("multi-eni-a.conf")).unwrap();
        assert_eq!(a, "a2\n");
    }

    #[test]
    fn a_missing_directory_with_nothing_to_write_is_left_missing() {
        let dir = tempfile::tempdir().unwrap();
        let conf = CniConfDir::new(dir.path().join("absent"));
        assert!(conf.sync(&BTreeMap::new(), false).unwrap().is_empty());
        assert!(!conf.path().exists());
    }
}
