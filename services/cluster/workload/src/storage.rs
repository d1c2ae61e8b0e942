//! Storage-heavy work: write files in blocks, fsync each, read them back and check every byte,
//! then remove them. Contents derive from the file's and block's numbers, so a read that
//! returns other bytes than were written is found. The files go into a directory of this run's
//! own under the one given, so instances sharing a volume (pods, parallel tests) never meet.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use svckit::expo::Registry;

#[derive(Debug, Clone)]
pub struct Plan {
    pub dir: PathBuf, // where this run makes its own directory
    pub files: u64,
    pub size: u64,  // bytes per file
    pub block: u64, // bytes per write and read call
    pub keep: bool,
}

#[derive(Debug, Default)]
pub struct Report {
    pub bytes_written: u64,
    pub bytes_read: u64,
    pub writes: u64,
    pub reads: u64,
    pub fsyncs: Vec<f64>, // seconds each
    pub write_seconds: f64,
    pub read_seconds: f64,
    pub mismatches: u64, // files whose contents did not read back as written
}

/// Block `index` of file `file`: `length` bytes from a 64-bit generator seeded by both.
pub fn block(file: u64, index: u64, length: usize) -> Vec<u8> {
    let mut state = file.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index.wrapping_add(1).wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut out = Vec::with_capacity(length + 8);
    while out.len() < length {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(length);
    out
}

fn path(dir: &Path, file: u64) -> PathBuf {
    dir.join(format!("file-{file:06}.dat"))
}

/// A new directory under `parent`, named for this process (and a number, should a directory of
/// an earlier process with the same id be left there).
fn own_dir(parent: &Path) -> io::Result<PathBuf> {
    fs::create_dir_all(parent)?;
    for n in 0.. {
        let dir = parent.join(format!("workload-{}-{n}", std::process::id()));
        match fs::create_dir(&dir) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            other => return other.map(|()| dir),
        }
    }
    unreachable!("an unbounded range")
}

fn blocks(plan: &Plan) -> impl Iterator<Item = (u64, usize)> {
    let (size, block) = (plan.size, plan.block.max(1));
    (0..size.div_ceil(block)).map(move |i| (i, (size - i * block).min(block) as usize))
}

fn write_file(plan: &Plan, dir: &Path, file: u64, report: &mut Report) -> io::Result<()> {
    let started = Instant::now();
    let mut out = File::create(path(dir, file))?;
    for (index, length) in blocks(plan) {
        out.write_all(&block(file, index, length))?;
        report.writes += 1;
        report.bytes_written += length as u64;
    }
    let synced = Instant::now();
    out.sync_all()?;
    report.fsyncs.push(synced.elapsed().as_secs_f64());
    report.write_seconds += started.elapsed().as_secs_f64();
    Ok(())
}

fn check_file(plan: &Plan, dir: &Path, file: u64, report: &mut Report) -> io::Result<bool> {
    let started = Instant::now();
    let mut input = File::open(path(dir, file))?;
    let mut same = true;
    let mut buffer = vec![0u8; plan.block.max(1) as usize];
    for (index, length) in blocks(plan) {
        input.read_exact(&mut buffer[..length])?;
        report.reads += 1;
        report.bytes_read += length as u64;
        same &= buffer[..length] == block(file, index, length)[..];
    }
    same &= input.read(&mut buffer[..1])? == 0; // and nothing after
    report.read_seconds += started.elapsed().as_secs_f64();
    Ok(same)
}

/// The report, and the directory the files were in (removed, unless the plan keeps them).
pub fn run(plan: &Plan) -> io::Result<(Report, PathBuf)> {
    let dir = own_dir(&plan.dir)?;
    let mut report = Report::default();
    for file in 0..plan.files {
        write_file(plan, &dir, file, &mut report)?;
    }
    for file in 0..plan.files {
        if !check_file(plan, &dir, file, &mut report)? {
            report.mismatches += 1;
        }
    }
    if !plan.keep {
        fs::remove_dir_all(&dir)?;
    }
    Ok((report, dir))
}

impl Report {
    pub fn metrics(&self, r: &mut Registry, dir: &Path) {
        let d = dir.display().to_string();
        let dir = [("dir", d.as_str())];
        r.counter("workload_storage_written_bytes_total", "Bytes written.", &dir, self.bytes_written as f64);
        r.counter("workload_storage_read_bytes_total", "Bytes read back and checked.", &dir, self.bytes_read as f64);
        r.counter("workload_storage_write_ops_total", "write() calls (one block each).", &dir, self.writes as f64);
        r.counter("workload_storage_read_ops_total", "read() calls (one block each).", &dir, self.reads as f64);
        r.summary("workload_storage_fsync_seconds", "Time of each file's fsync.", &dir, &self.fsyncs, &[0.5, 0.9, 0.99]);
        r.gauge("workload_storage_write_seconds", "Time writing files, fsync included.", &dir, self.write_seconds);
        r.gauge("workload_storage_read_seconds", "Time reading files back.", &dir, self.read_seconds);
        r.counter("workload_storage_mismatched_files_total", "Files that did not read back as written.", &dir, self.mismatches as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(name: &str, files: u64, size: u64, block: u64) -> Plan {
        let dir = std::env::temp_dir().join(format!("workload-storage-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        Plan { dir, files, size, block, keep: false }
    }

    #[test]
    fn blocks_are_deterministic_and_differ() {
        assert_eq!(block(1, 2, 100), block(1, 2, 100));
        assert_ne!(block(1, 2, 100), block(2, 1, 100));
        assert_eq!(block(3, 0, 5).len(), 5);
        assert_eq!(&block(3, 0, 16)[..5], &block(3, 0, 5)[..]);
    }

    #[test]
    fn writes_checks_and_removes() {
        let p = plan("run", 3, 10_000, 4096);
        let (r, dir) = run(&p).unwrap();
        assert_eq!((r.bytes_written, r.bytes_read, r.writes, r.reads, r.fsyncs.len(), r.mismatches), (30_000, 30_000, 9, 9, 3, 0));
        assert!(dir.starts_with(&p.dir) && !dir.exists());
        assert_eq!(fs::read_dir(&p.dir).unwrap().count(), 0);
        fs::remove_dir_all(&p.dir).unwrap();
    }

    #[test]
    fn a_changed_byte_is_found() {
        let p = Plan { keep: true, ..plan("flip", 2, 5000, 1000) };
        let (_, dir) = run(&p).unwrap();
        let (_, other) = run(&p).unwrap(); // a second run beside the first: its own directory
        assert_ne!(dir, other);
        let victim = path(&dir, 1);
        let mut bytes = fs::read(&victim).unwrap();
        bytes[4321] ^= 1;
        fs::write(&victim, bytes).unwrap();
        let mut report = Report::default();
        assert!(check_file(&p, &dir, 0, &mut report).unwrap());
        assert!(!check_file(&p, &dir, 1, &mut report).unwrap());
        fs::remove_dir_all(&p.dir).unwrap();
    }
}
