//! The command line's files and standard output: bounded reads, output places checked
//! before any training, writers that cannot collide (a unique temporary name per process,
//! an atomic rename, an advisory lock for `run --out`), and a standard output whose errors
//! end the program with a sentence instead of a panic: a closed pipe (`| head -1`) ends
//! quietly with exit code 141, as a program killed by SIGPIPE; a full disk is a sentence and
//! exit code 1. Either way the work goes on and its files are written.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use varlab::data::file::{read_text, special, FileKind};

use super::Fail;

/// The first error standard output gave; nothing more is written to it after one.
static STDOUT_ERROR: Mutex<Option<std::io::Error>> = Mutex::new(None);

/// Writes `args` to standard output and flushes, remembering the first error.
pub fn write_out(args: fmt::Arguments) {
    let mut error = STDOUT_ERROR.lock().unwrap_or_else(|e| e.into_inner());
    if error.is_some() {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|_| out.flush()) {
        *error = Some(e);
    }
}

/// `print!` that never panics (see [`write_out`]).
macro_rules! say {
    ($($t:tt)*) => { $crate::io::write_out(format_args!($($t)*)) };
}

/// `println!` that never panics (see [`write_out`]).
macro_rules! sayln {
    () => { $crate::io::write_out(format_args!("\n")) };
    ($($t:tt)*) => { $crate::io::write_out(format_args!("{}\n", format_args!($($t)*))) };
}
pub(crate) use say;
pub(crate) use sayln;

/// What standard output's error, if any, makes of the exit: a closed pipe is exit code 141
/// with no word (what a shell shows for a program killed by SIGPIPE), any other error a
/// sentence and exit code 1.
pub fn stdout_outcome() -> Option<(u8, Option<String>)> {
    let error = STDOUT_ERROR.lock().unwrap_or_else(|e| e.into_inner());
    error.as_ref().map(|e| match e.kind() {
        std::io::ErrorKind::BrokenPipe => (141, None),
        _ => (1, Some(format!("cannot write to standard output: {e}."))),
    })
}

/// The text of a file given to varlab, read through the bounded reader (exit code 2 when
/// it is refused).
pub fn read_input(path: &Path, kind: FileKind) -> Result<String, Fail> {
    read_text(path, kind).map_err(|e| Fail::Usage(e.to_string()))
}

/// Fails with a usage error unless `path` can be written, before any training: it is not a
/// directory, a device or anything else but a regular file, a file already there can be
/// opened for writing (not immutable, not read-only), and a file can be created beside it.
pub fn check_writable(path: &Path) -> Result<(), Fail> {
    let shown = path.display();
    if let Some(what) = special(path) {
        return Err(Fail::Usage(format!(
            "cannot write {shown}: it is {what}; give a file name."
        )));
    }
    if path.exists() {
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| Fail::Usage(format!("cannot write {shown}: {e}")))?;
    }
    let dir = parent(path);
    let probe = temporary(&dir.join(".varlab-probe"));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| {
            Fail::Usage(format!(
                "cannot write {shown}: no file can be created in {}: {e}",
                dir.display()
            ))
        })
}

/// The directory `path` is in (`.` for a bare name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A temporary name beside `path`, unique to this process and this call:
/// `.NAME.PID-RANDOM.partial`.
fn temporary(path: &Path) -> PathBuf {
    use std::hash::{BuildHasher, Hasher};
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let name = path
        .file_name()
        .map_or("out".into(), |n| n.to_string_lossy());
    parent(path).join(format!(
        ".{name}.{}-{:016x}.partial",
        std::process::id(),
        h.finish()
    ))
}

/// Writes every `(path, bytes)` as a set: all to temporary files first (names unique to
/// this process), then all renamed, so a failure leaves none of them half-written and two
/// writers never share a temporary file.
pub fn write_files(files: &[(&Path, &[u8])]) -> Result<(), Fail> {
    let tmps: Vec<PathBuf> = files.iter().map(|(p, _)| temporary(p)).collect();
    let clean = || tmps.iter().for_each(|t| drop(std::fs::remove_file(t)));
    let fail = |path: &Path, e: std::io::Error| {
        clean();
        Fail::Run(format!("cannot write {}: {e}", path.display()))
    };
    for ((path, bytes), tmp) in files.iter().zip(&tmps) {
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(tmp)
            .and_then(|mut f| f.write_all(bytes));
        if let Err(e) = written {
            return Err(fail(path, e));
        }
    }
    for ((path, _), tmp) in files.iter().zip(&tmps) {
        if let Err(e) = std::fs::rename(tmp, path) {
            return Err(fail(path, e));
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically: [`write_files`] of one file.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Fail> {
    write_files(&[(path, bytes)])
}

/// The advisory lock of `run --out DIR/NAME`: the hidden file `DIR/.NAME.lock`, locked
/// (flock) while the run trains and writes, removed when it is done. A second `run` on the
/// same `--out` is told another run is writing it (exit code 1).
pub struct OutLock {
    path: PathBuf,
    _file: std::fs::File,
}

impl Drop for OutLock {
    fn drop(&mut self) {
        // Removed while still held: a run that opened it meanwhile finds, once it holds the
        // lock, that it is no longer the file at that path, and takes the new one.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Takes the lock of `out` (see [`OutLock`]), or says who holds it.
pub fn lock_out(out: &Path) -> Result<OutLock, Fail> {
    #[cfg(unix)]
    use std::os::unix::fs::MetadataExt;
    let name = out
        .file_name()
        .map_or("out".into(), |n| n.to_string_lossy());
    let path = parent(out).join(format!(".{name}.lock"));
    let cannot = |e: std::io::Error| Fail::Usage(format!("cannot write {}: {e}", path.display()));
    loop {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(cannot)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Fail::Run(format!(
                    "another varlab run is writing {} (it holds {}); this one stops without \
                     training.",
                    out.display(),
                    path.display()
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(cannot(e)),
        }
        #[cfg(unix)]
        {
            let held = file.metadata().map_err(cannot)?;
            let now = std::fs::metadata(&path).ok();
            if !now.is_some_and(|m| m.ino() == held.ino() && m.dev() == held.dev()) {
                continue; // removed by the run that held it: lock the file there now
            }
        }
        return Ok(OutLock { path, _file: file });
    }
}
