//! CIFAR-100 in its binary format (https://www.cs.toronto.edu/~kriz/cifar.html): records of
//! 3074 bytes, the coarse label (0–19), the fine label (0–99), then the 32×32 image as 1024
//! red, 1024 green and 1024 blue bytes. The official `cifar-100-binary.tar.gz` holds
//! `cifar-100-binary/train.bin` (50 000 records) and `cifar-100-binary/test.bin` (10 000).
//! The fine labels are the classes (100); the coarse ones are checked and dropped.
//!
//! Read from record bytes, from the tarball (the two files in any directory), from dropped
//! files by name, or natively from a directory holding `train.bin` and `test.bin` (or the
//! tarball's `cifar-100-binary/` under it). CIFAR-10's subset uses the same two file names
//! with 3073-byte records: [`is_cifar100_records`] tells them apart by length.

use std::collections::BTreeMap;
use std::io::Read;

use super::cifar::{CHANNELS, SIDE};
use super::{is_gzip, DataError, Dataset, Result, Split};

pub const CLASSES: usize = 100;
pub const COARSE_CLASSES: usize = 20;
/// Bytes per record: coarse label, fine label, then `3 × 32 × 32` pixels.
pub const RECORD: usize = 2 + CHANNELS * SIDE * SIDE;
/// The most one file may hold: the 50 000 training records. No tar member is inflated past it.
pub const MAX_FILE_BYTES: u64 = 50_000 * RECORD as u64;
/// The two files, training then test.
pub const FILES: [&str; 2] = ["train.bin", "test.bin"];
/// The directory of the official tarball.
pub const DIR: &str = "cifar-100-binary";

const EXPECTED: &str = "CIFAR-100 in binary form is train.bin and test.bin (the official \
                        cifar-100-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html)";

/// Whether `len` bytes are whole CIFAR-100 records and not whole CIFAR-10 ones (3073 bytes):
/// a length of both kinds (a multiple of 3073·3074 bytes) counts as CIFAR-10.
pub fn is_cifar100_records(len: usize) -> bool {
    len > 0 && len.is_multiple_of(RECORD) && !len.is_multiple_of(super::cifar::RECORD)
}

/// The records of one file as a dataset named `name` (errors name `file`).
fn parse(name: &str, file: &str, bytes: &[u8]) -> Result<Dataset> {
    super::cifar::check_records(file, bytes, RECORD)?;
    let n = bytes.len() / RECORD;
    let (mut images, mut labels) = (Vec::with_capacity(n * (RECORD - 2)), Vec::with_capacity(n));
    for (index, record) in bytes.chunks_exact(RECORD).enumerate() {
        for (label, classes) in [(record[0], COARSE_CLASSES), (record[1], CLASSES)] {
            if label as usize >= classes {
                return Err(DataError::LabelOutOfRange {
                    file: file.to_string(),
                    index,
                    label,
                    classes,
                });
            }
        }
        labels.push(record[1]);
        images.extend_from_slice(&record[2..]);
    }
    Ok(Dataset {
        name: name.to_string(),
        images,
        labels,
        channels: CHANNELS,
        height: SIDE,
        width: SIDE,
        classes: CLASSES,
    })
}

/// A dataset from the bytes of one CIFAR-100 binary file; `name` names it and the file.
pub fn cifar100_from_records(name: &str, bytes: &[u8]) -> Result<Dataset> {
    parse(name, name, bytes)
}

/// The split from `(file shown in errors, bytes)` of `train.bin` and `test.bin`.
fn split(train: (&str, &[u8]), test: (&str, &[u8])) -> Result<Split> {
    Ok(Split {
        train: parse("CIFAR-100 train", train.0, train.1)?,
        test: parse("CIFAR-100 test", test.0, test.1)?,
    })
}

/// The split from the files found in `container`, keyed by base name.
fn from_map(container: &str, files: &BTreeMap<String, (String, Vec<u8>)>) -> Result<Split> {
    let missing: Vec<String> = FILES
        .iter()
        .filter(|f| !files.contains_key(**f))
        .map(|f| f.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(DataError::Missing {
            file: container.to_string(),
            missing,
            expected: EXPECTED,
        });
    }
    let get = |n: &str| {
        let (file, bytes) = &files[n];
        (file.as_str(), bytes.as_slice())
    };
    split(get(FILES[0]), get(FILES[1]))
}

/// CIFAR-100 from the bytes of `cifar-100-binary.tar.gz` (or any gzipped tar holding
/// `train.bin` and `test.bin`, whatever their directory). Errors name `file`.
pub fn cifar100_from_tar_gz(file: &str, bytes: &[u8]) -> Result<Split> {
    let bad = |source: std::io::Error| DataError::Gzip {
        file: file.to_string(),
        source,
    };
    if !is_gzip(bytes) {
        return Err(bad(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "it does not start with the gzip magic bytes 1f 8b",
        )));
    }
    let tar_error = |e: std::io::Error| DataError::Tar {
        file: file.to_string(),
        source: e,
    };
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut files = BTreeMap::new();
    for entry in archive.entries().map_err(tar_error)? {
        let mut entry = entry.map_err(tar_error)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(tar_error)?.into_owned();
        let Some(base) = path.file_name().and_then(|b| b.to_str()) else {
            continue;
        };
        if !FILES.contains(&base) || files.contains_key(base) {
            continue;
        }
        let shown = format!("{file}/{}", path.display());
        let mut data = Vec::new();
        (&mut entry)
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut data)
            .map_err(tar_error)?;
        if data.len() as u64 > MAX_FILE_BYTES {
            return Err(DataError::TooLarge {
                file: shown,
                what: "more than 50 000 CIFAR-100 records".into(),
                limit: MAX_FILE_BYTES,
            });
        }
        files.insert(base.to_string(), (shown, data));
    }
    from_map(file, &files)
}

/// Whether dropped files are CIFAR-100: a tarball whose name says `cifar-100`, or a
/// `train.bin` whose length is whole CIFAR-100 records ([`is_cifar100_records`]).
pub fn looks_like_cifar100(files: &[(String, Vec<u8>)]) -> bool {
    files.iter().any(|(name, bytes)| {
        let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
        (base.starts_with("cifar-100") && (base.ends_with(".tar.gz") || base.ends_with(".tgz")))
            || (base == FILES[0] && is_cifar100_records(bytes.len()))
    })
}

/// CIFAR-100 from `(file name, bytes)` pairs (an upload): the tarball, or `train.bin` and
/// `test.bin`.
pub fn cifar100_from_named_files(files: &[(String, Vec<u8>)]) -> Result<Split> {
    if let Some((name, data)) = files
        .iter()
        .find(|(n, _)| n.ends_with(".tar.gz") || n.ends_with(".tgz"))
    {
        return cifar100_from_tar_gz(name, data);
    }
    let mut map = BTreeMap::new();
    for (file, bytes) in files {
        let base = file.rsplit(['/', '\\']).next().unwrap_or(file);
        if FILES.contains(&base) {
            map.insert(base.to_string(), (file.clone(), bytes.clone()));
        }
    }
    from_map("the CIFAR-100 files given", &map)
}

/// CIFAR-100 from `path`: a directory holding `train.bin` and `test.bin` (directly or in
/// `cifar-100-binary/`), or the `.tar.gz`.
#[cfg(not(target_arch = "wasm32"))]
pub fn load_cifar100(path: impl AsRef<std::path::Path>) -> Result<Split> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    if !path.is_dir() {
        return cifar100_from_tar_gz(&shown, &super::read_file(path)?);
    }
    let dir = if path.join(FILES[0]).is_file() || !path.join(DIR).is_dir() {
        path.to_path_buf()
    } else {
        path.join(DIR)
    };
    let mut files = BTreeMap::new();
    for name in FILES {
        let file = dir.join(name);
        if file.is_file() {
            let bytes = super::read_file(&file)?;
            files.insert(name.to_string(), (file.display().to_string(), bytes));
        }
    }
    from_map(&dir.display().to_string(), &files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(coarse: u8, fine: u8, fill: u8) -> Vec<u8> {
        let mut r = vec![fill; RECORD];
        r[0] = coarse;
        r[1] = fine;
        r
    }

    #[test]
    fn fine_labels_are_the_classes() {
        let bytes = [record(3, 99, 1), record(19, 0, 2)].concat();
        let d = cifar100_from_records("train.bin", &bytes).unwrap();
        assert_eq!((d.len(), d.classes, d.channels), (2, 100, 3));
        assert_eq!(d.labels, [99, 0]);
        assert_eq!(d.image(1).unwrap(), &[2; RECORD - 2][..]);
    }

    #[test]
    fn bad_records_are_named() {
        let e = cifar100_from_records("t.bin", &[0; RECORD + 1]).unwrap_err();
        assert!(e.to_string().contains("1 bytes left over"), "{e}");
        let e = cifar100_from_records("t.bin", &record(20, 0, 0)).unwrap_err();
        assert!(e.to_string().contains("20 classes"), "{e}");
        let e = cifar100_from_records("t.bin", &record(0, 100, 0)).unwrap_err();
        assert!(e.to_string().contains("label 100"), "{e}");
    }

    fn tar_gz(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, data) in members {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, path, *data).unwrap();
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar.into_inner().unwrap()).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn the_official_layout_reads_from_a_tarball_named_files_and_a_directory() {
        let train = [record(0, 5, 1), record(1, 6, 2), record(2, 7, 3)].concat();
        let test = record(4, 42, 9);
        let gz = tar_gz(&[
            (
                "cifar-100-binary/coarse_label_names.txt",
                b"aquatic_mammals\n",
            ),
            ("cifar-100-binary/train.bin", &train),
            ("cifar-100-binary/test.bin", &test),
        ]);
        let s = cifar100_from_tar_gz("cifar-100-binary.tar.gz", &gz).unwrap();
        assert_eq!(
            (s.train.labels.clone(), s.test.labels.clone()),
            (vec![5, 6, 7], vec![42])
        );
        assert_eq!(s.train.classes, 100);
        // Dropped on the page: the tarball, or the two files; CIFAR-10 files are not taken.
        let tarball = vec![("cifar-100-binary.tar.gz".to_string(), gz.clone())];
        assert!(looks_like_cifar100(&tarball));
        let dropped = super::super::split_from_named_files(&tarball).unwrap();
        assert_eq!(dropped.train, s.train);
        let files = vec![
            ("train.bin".to_string(), train.clone()),
            ("test.bin".to_string(), test.clone()),
        ];
        let dropped = super::super::split_from_named_files(&files).unwrap();
        assert_eq!(dropped.test, s.test);
        let ten = vec![("train.bin".to_string(), vec![0u8; 3073])];
        assert!(!looks_like_cifar100(&ten));
        // A tarball without test.bin names what is missing.
        let e = cifar100_from_tar_gz("c.tar.gz", &tar_gz(&[("d/train.bin", &train)])).unwrap_err();
        assert!(e.to_string().contains("test.bin"), "{e}");
        let e = cifar100_from_tar_gz("c.tar.gz", b"not gzip").unwrap_err();
        assert!(e.to_string().contains("'c.tar.gz'"), "{e}");
        #[cfg(not(target_arch = "wasm32"))]
        from_a_directory(&train, &test, &gz, &s);
    }

    /// A directory holding the tarball's directory, or the files themselves; the tarball.
    #[cfg(not(target_arch = "wasm32"))]
    fn from_a_directory(train: &[u8], test: &[u8], gz: &[u8], s: &Split) {
        let dir = std::env::temp_dir().join(format!("varlab-cifar100-{}", std::process::id()));
        let inner = dir.join(DIR);
        std::fs::create_dir_all(&inner).unwrap();
        std::fs::write(inner.join("train.bin"), train).unwrap();
        std::fs::write(inner.join("test.bin"), test).unwrap();
        assert_eq!(load_cifar100(&dir).unwrap().train, s.train);
        assert_eq!(load_cifar100(&inner).unwrap().test, s.test);
        std::fs::write(dir.join("c.tar.gz"), gz).unwrap();
        assert_eq!(load_cifar100(dir.join("c.tar.gz")).unwrap().test, s.test);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn record_lengths_tell_the_two_cifars_apart() {
        assert!(is_cifar100_records(3 * RECORD));
        assert!(!is_cifar100_records(3 * super::super::cifar::RECORD));
        assert!(!is_cifar100_records(0));
        // Both whole: CIFAR-10 wins.
        assert!(!is_cifar100_records(RECORD * super::super::cifar::RECORD));
    }
}
