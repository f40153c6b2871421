//! The one way varlab reads a file it is given (natively): the kind of file decides a size
//! cap, checked while reading (at most cap + 1 bytes are ever read), and anything but a
//! regular file — a directory, a character or block device (`/dev/zero`, `/dev/urandom`), a
//! FIFO, a socket — is refused from its metadata before it is read, and opened without
//! blocking, so a FIFO with no writer cannot hang the program. Every refusal is one sentence
//! naming the file. RELIABILITY.md lists the caps.

use std::io::Read;
use std::path::Path;

/// What a file is for, which sets how large it may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A config JSON (`--config`, a planned run's `runs/NNNN.json`).
    Config,
    /// A plan (`plan.json`).
    Plan,
    /// A result JSON (one run's `results/NNNN.json`, or a compare's).
    Result,
    /// A dataset file: an MNIST IDX file (plain or gzipped), a CIFAR-10 batch, the tarball.
    Data,
}

impl FileKind {
    /// The most bytes a file of this kind may hold.
    pub const fn cap(self) -> u64 {
        match self {
            FileKind::Config => 1 << 20,
            FileKind::Plan => 64 << 20,
            FileKind::Result => 64 << 20,
            // Full MNIST's training images are 47 MB, CIFAR-10's tarball 163 MB.
            FileKind::Data => 256 << 20,
        }
    }

    /// The kind in words, for sentences.
    pub const fn name(self) -> &'static str {
        match self {
            FileKind::Config => "a config",
            FileKind::Plan => "a plan",
            FileKind::Result => "a result",
            FileKind::Data => "a dataset",
        }
    }
}

/// Why a file was not read, as one sentence naming it.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("'{path}' is {what}, not a regular file; give {kind} file.")]
    NotAFile {
        path: String,
        what: &'static str,
        kind: &'static str,
    },
    #[error("'{path}' holds more than {limit} bytes, the most varlab reads for {kind}.")]
    TooLarge {
        path: String,
        limit: u64,
        kind: &'static str,
    },
    #[error("Cannot read '{path}': {source}.")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// What a file type is, in words, when it is not a regular file.
fn not_regular(ft: std::fs::FileType) -> Option<&'static str> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_char_device() {
            return Some("a character device");
        }
        if ft.is_block_device() {
            return Some("a block device");
        }
        if ft.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if ft.is_socket() {
            return Some("a socket");
        }
    }
    if ft.is_dir() {
        return Some("a directory");
    }
    (!ft.is_file()).then_some("not a regular file")
}

/// The file type of `path` in words when it exists and is not a regular file (symbolic links
/// followed), `None` otherwise.
pub fn special(path: &Path) -> Option<&'static str> {
    std::fs::metadata(path)
        .ok()
        .and_then(|m| not_regular(m.file_type()))
}

/// Reads the whole of `path`, refusing anything but a regular file of at most `kind`'s cap.
pub fn read_bounded(path: &Path, kind: FileKind) -> Result<Vec<u8>, ReadError> {
    let shown = || path.display().to_string();
    let io = |source| ReadError::Io {
        path: shown(),
        source,
    };
    let refuse = |what| ReadError::NotAFile {
        path: shown(),
        what,
        kind: kind.name(),
    };
    if let Some(what) = special(path) {
        return Err(refuse(what));
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        // Not blocking in open(2): a FIFO put in the file's place after the check above.
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(O_NONBLOCK);
    }
    let file = options.open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if let Some(what) = not_regular(meta.file_type()) {
        return Err(refuse(what));
    }
    let cap = kind.cap();
    let too_large = || ReadError::TooLarge {
        path: shown(),
        limit: cap,
        kind: kind.name(),
    };
    if meta.len() > cap {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > cap {
        return Err(too_large());
    }
    Ok(bytes)
}

/// [`read_bounded`] as UTF-8 text.
pub fn read_text(path: &Path, kind: FileKind) -> Result<String, ReadError> {
    String::from_utf8(read_bounded(path, kind)?).map_err(|_| ReadError::Io {
        path: path.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "it is not UTF-8 text"),
    })
}

/// `O_NONBLOCK` of open(2) (the same on every Linux and BSD libc varlab builds for, except
/// a few exotic Linux ports).
#[cfg(unix)]
#[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
const O_NONBLOCK: i32 = 0x4;
#[cfg(unix)]
#[cfg(not(any(target_os = "macos", target_os = "ios", target_os = "freebsd")))]
const O_NONBLOCK: i32 = 0o4000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_files_are_refused_before_reading() {
        let e = read_bounded(Path::new("/dev/zero"), FileKind::Config).unwrap_err();
        assert_eq!(
            e.to_string(),
            "'/dev/zero' is a character device, not a regular file; give a config file."
        );
        let e = read_bounded(Path::new("/"), FileKind::Data).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
    }

    #[test]
    fn a_file_past_its_cap_is_refused() {
        let path = std::env::temp_dir().join(format!("varlab-cap-{}", std::process::id()));
        std::fs::write(&path, vec![b' '; (FileKind::Config.cap() + 1) as usize]).unwrap();
        let e = read_bounded(&path, FileKind::Config).unwrap_err();
        assert!(matches!(e, ReadError::TooLarge { .. }), "{e}");
        std::fs::write(&path, b"{}").unwrap();
        assert_eq!(read_text(&path, FileKind::Config).unwrap(), "{}");
        std::fs::remove_file(&path).unwrap();
    }
}
