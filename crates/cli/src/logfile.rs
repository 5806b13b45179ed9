//! The daemon's log file (`<log-dir>/berth.log`), besides stderr, rotated by
//! size: past `[logs] daemon_max_bytes` it becomes `berth.log.1` (and `.1`
//! `.2`, …, keeping `daemon_max_files`). Written by tracing-appender's own
//! thread, so a slow disk never holds the daemon's workers.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub struct RotatingFile {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    max_bytes: u64,
    max_files: u32,
}

impl RotatingFile {
    pub fn open(dir: &Path, max_bytes: u64, max_files: u32) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("berth.log");
        let file = OpenOptions::new().create(true).append(true).mode(0o640).open(&path)?;
        let size = file.metadata()?.len();
        Ok(Self { path, file: Some(file), size, max_bytes: max_bytes.max(1), max_files })
    }

    fn numbered(&self, n: u32) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        if self.max_files == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            let _ = std::fs::remove_file(self.numbered(self.max_files));
            for n in (1..self.max_files).rev() {
                let _ = std::fs::rename(self.numbered(n), self.numbered(n + 1));
            }
            std::fs::rename(&self.path, self.numbered(1))?;
        }
        self.file = Some(OpenOptions::new().create(true).append(true).mode(0o640).open(&self.path)?);
        self.size = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.size > 0 && self.size + buf.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => return Err(std::io::Error::other("the log file is not open")),
        };
        file.write_all(buf)?;
        self.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().map_or(Ok(()), Write::flush)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_so_many_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RotatingFile::open(dir.path(), 100, 2).unwrap();
        for _ in 0..10 {
            log.write_all(&[b'x'; 60]).unwrap();
        }
        let names: Vec<String> = {
            let mut n: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            n.sort();
            n
        };
        assert_eq!(names, ["berth.log", "berth.log.1", "berth.log.2"]);
        assert!(std::fs::metadata(dir.path().join("berth.log")).unwrap().len() <= 100);
    }
}
