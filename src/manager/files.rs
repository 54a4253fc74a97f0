//! Files the agent owns on the node, written so that a reader (or a crash) never sees half.

use std::io::{self, Write};
use std::path::Path;

/// Replaces `path` with `content` through a temporary file in the same directory and a
/// rename, flushed to disk first; does nothing when the file already holds `content`.
/// Returns whether it wrote.
pub fn write_atomically_if_changed(path: &Path, content: &[u8]) -> io::Result<bool> {
    match std::fs::read(path) {
        Ok(current) if current == content => return Ok(false),
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = std::fs::File::create(&temporary)?;
    let written = file.write_all(content).and_then(|()| file.sync_all());
    if let Err(error) = written.and_then(|()| std::fs::rename(&temporary, path)) {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::write_atomically_if_changed;

    #[test]
    fn writes_only_changes_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.json");
        assert!(write_atomically_if_changed(&path, b"one").unwrap());
        assert!(!write_atomically_if_changed(&path, b"one").unwrap());
        assert!(write_atomically_if_changed(&path, b"two").unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["config.json"]);
    }
}
