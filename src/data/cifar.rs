//! CIFAR-10 in its binary format: records of 3073 bytes, one label byte (0–9) then the
//! 32×32 image as 1024 red, 1024 green and 1024 blue bytes (row-major planes). Read from
//! record bytes, from the official `cifar-10-binary.tar.gz` (members `data_batch_1.bin` …
//! `data_batch_5.bin` and `test_batch.bin`, in any directory), or natively from a directory
//! holding those files or the test subset's `train.bin` and `test.bin`.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{self, Read};

use super::{is_gzip, DataError, Dataset, Result, Split};

pub const SIDE: usize = 32;
pub const CHANNELS: usize = 3;
pub const CLASSES: usize = 10;
/// Bytes per record: the label, then `3 × 32 × 32` pixels.
pub const RECORD: usize = 1 + CHANNELS * SIDE * SIDE;
/// The most one batch file may hold: 50 000 records (all of CIFAR-10's training set in one
/// file). A tar member is never inflated past this.
pub const MAX_BATCH_BYTES: u64 = 50_000 * RECORD as u64;
/// The official batches: five of training data, then the test batch.
pub const OFFICIAL: [&str; 6] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
    "test_batch.bin",
];
/// The two files of a subset in the same format (as in `../shared/data/cifar10/`).
pub const SUBSET: [&str; 2] = ["train.bin", "test.bin"];

const EXPECTED: &str = "CIFAR-10 in binary form is data_batch_1.bin … data_batch_5.bin and \
                        test_batch.bin (the official cifar-10-binary.tar.gz from \
                        https://www.cs.toronto.edu/~kriz/cifar.html), or a subset's train.bin \
                        and test.bin";

/// Whether `bytes` is a whole, non-empty number of `record`-byte records (errors name `file`);
/// CIFAR-100's parser checks its records the same way.
pub(super) fn check_records(file: &str, bytes: &[u8], record: usize) -> Result<()> {
    if !bytes.len().is_multiple_of(record) {
        return Err(DataError::RecordSize {
            file: file.to_string(),
            len: bytes.len(),
            record,
        });
    }
    if bytes.is_empty() {
        return Err(DataError::Empty {
            file: file.to_string(),
        });
    }
    Ok(())
}

/// Appends the records of `bytes` to `images` and `labels`; errors name `file`.
fn append_records(
    file: &str,
    bytes: &[u8],
    images: &mut Vec<u8>,
    labels: &mut Vec<u8>,
) -> Result<()> {
    check_records(file, bytes, RECORD)?;
    for (index, record) in bytes.chunks_exact(RECORD).enumerate() {
        if record[0] as usize >= CLASSES {
            return Err(DataError::LabelOutOfRange {
                file: file.to_string(),
                index,
                label: record[0],
                classes: CLASSES,
            });
        }
        labels.push(record[0]);
        images.extend_from_slice(&record[1..]);
    }
    Ok(())
}

/// A dataset named `name` from the records of several files, in order: `(file, bytes)`.
fn from_files<'a>(
    name: &str,
    files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<Dataset> {
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for (file, bytes) in files {
        labels.reserve(bytes.len() / RECORD);
        images.reserve(bytes.len() / RECORD * (RECORD - 1));
        append_records(file, bytes, &mut images, &mut labels)?;
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

/// A dataset from the bytes of one binary file of records; `name` names both the dataset
/// and the file in errors.
pub fn cifar_from_records(name: &str, bytes: &[u8]) -> Result<Dataset> {
    from_files(name, [(name, bytes)])
}

/// Which files make the split: the official batches when all six are there, else the
/// subset's two; otherwise the error lists what is missing from the layout `container`
/// comes closest to.
fn layout(
    container: &str,
    present: impl Fn(&str) -> bool,
) -> Result<(&'static [&'static str], &'static str)> {
    let missing = |names: &[&str]| -> Vec<String> {
        names
            .iter()
            .filter(|n| !present(n))
            .map(|n| n.to_string())
            .collect()
    };
    let (official, subset) = (missing(&OFFICIAL), missing(&SUBSET));
    if official.is_empty() {
        return Ok((&OFFICIAL[..5], OFFICIAL[5]));
    }
    if subset.is_empty() {
        return Ok((&SUBSET[..1], SUBSET[1]));
    }
    let closer_to_subset = subset.len() < SUBSET.len() && official.len() == OFFICIAL.len();
    Err(DataError::Missing {
        file: container.to_string(),
        missing: if closer_to_subset { subset } else { official },
        expected: EXPECTED,
    })
}

/// The split from files found in `container` (a tarball or a directory): `files` maps a
/// base name to the name used in errors and the bytes.
fn split_from_files(container: &str, files: &BTreeMap<String, (String, Vec<u8>)>) -> Result<Split> {
    let (train, test) = layout(container, |n| files.contains_key(n))?;
    let get = |n: &str| {
        let (file, bytes) = &files[n];
        (file.as_str(), bytes.as_slice())
    };
    Ok(Split {
        train: from_files("CIFAR-10 train", train.iter().map(|n| get(n)))?,
        test: from_files("CIFAR-10 test", [get(test)])?,
    })
}

/// A reader that remembers whether its inner reader ever failed, to tell gzip errors from
/// tar errors when the tar reader reports them.
struct Tracked<'a, R> {
    inner: R,
    failed: &'a Cell<bool>,
}

impl<R: Read> Read for Tracked<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|_| self.failed.set(true))
    }
}

/// CIFAR-10 from the bytes of the official `cifar-10-binary.tar.gz` (or any gzipped tar
/// holding the files of [`OFFICIAL`] or [`SUBSET`], whatever their directory). The archive
/// is decompressed as it is read; only the batch files are kept. Errors name `file`.
pub fn cifar_from_tar_gz(file: &str, bytes: &[u8]) -> Result<Split> {
    if !is_gzip(bytes) {
        return Err(DataError::Gzip {
            file: file.to_string(),
            source: io::Error::new(
                io::ErrorKind::InvalidData,
                "it does not start with the gzip magic bytes 1f 8b",
            ),
        });
    }
    let gzip_failed = Cell::new(false);
    let mut archive = tar::Archive::new(Tracked {
        inner: flate2::read::GzDecoder::new(bytes),
        failed: &gzip_failed,
    });
    // The last member read whole: a broken header is named by the member before it.
    let last: std::cell::RefCell<Option<String>> = Default::default();
    let fail = |source: io::Error, member: Option<&str>| {
        let file = file.to_string();
        if gzip_failed.get() {
            return DataError::Gzip { file, source };
        }
        let place = match (member, last.borrow().as_deref()) {
            (Some(m), _) => format!("member '{m}'"),
            (None, Some(prev)) => format!("the header after member '{prev}'"),
            (None, None) => "the first header".to_string(),
        };
        DataError::Tar {
            file,
            source: io::Error::new(source.kind(), format!("{place}: {}", tar_defect(&source))),
        }
    };
    let mut files = BTreeMap::new();
    for entry in archive.entries().map_err(|e| fail(e, None))? {
        let mut entry = entry.map_err(|e| fail(e, None))?;
        let path = entry.path().map_err(|e| fail(e, None))?.into_owned();
        let shown = path.display().to_string();
        let regular = entry.header().entry_type().is_file();
        let base = path.file_name().and_then(|b| b.to_str());
        let wanted = base.filter(|b| {
            regular && (OFFICIAL.contains(b) || SUBSET.contains(b)) && !files.contains_key(*b)
        });
        let Some(base) = wanted else {
            *last.borrow_mut() = Some(shown);
            continue;
        };
        // The header's size is not trusted: no member is inflated past one batch's limit.
        let mut data = Vec::with_capacity((entry.size() as usize).min(10_001 * RECORD));
        (&mut entry)
            .take(MAX_BATCH_BYTES + 1)
            .read_to_end(&mut data)
            .map_err(|e| fail(e, Some(&shown)))?;
        if data.len() as u64 > MAX_BATCH_BYTES {
            return Err(DataError::TooLarge {
                file: format!("{file}/{shown}"),
                what: "more than 50 000 CIFAR-10 records".into(),
                limit: MAX_BATCH_BYTES,
            });
        }
        let base = base.to_string();
        files.insert(base, (format!("{file}/{shown}"), data));
        *last.borrow_mut() = Some(shown);
    }
    split_from_files(file, &files)
}

/// A tar reader's error in words, without the raw header bytes it may quote.
fn tar_defect(e: &io::Error) -> &'static str {
    let text = e.to_string();
    let has = |s: &str| text.contains(s);
    if e.kind() == io::ErrorKind::UnexpectedEof || has("entire block") || has("unexpected EOF") {
        "the archive ends in the middle of it (truncated)"
    } else if has("checksum") {
        "its header's checksum does not match (the header is damaged)"
    } else if has("numeric field") || has("size overflow") || has("out of range") {
        "a number in its header (size, mode or time) is not a number (the header is damaged)"
    } else if has("path") || has("utf-8") || has("name") {
        "its name in the header is not readable (the header is damaged)"
    } else {
        "the tar data there is damaged"
    }
}

/// CIFAR-10 from `(file name, bytes)` pairs (an upload): the official batches or a
/// subset's `train.bin` + `test.bin`; `container` names them in errors.
pub fn cifar_from_named_files(container: &str, files: &[(String, Vec<u8>)]) -> Result<Split> {
    let base = |n: &str| n.rsplit(['/', '\\']).next().unwrap_or(n).to_string();
    let present = |n: &str| files.iter().any(|(f, _)| base(f) == n);
    let (train, test) = match layout(container, present) {
        Ok(l) => l,
        Err(missing) => {
            // A set that is not whole: a broken batch file is named by its own defect first.
            for (file, bytes) in files
                .iter()
                .filter(|(f, b)| f.ends_with(".bin") && !is_gzip(b))
            {
                cifar_from_records(file, bytes)?;
            }
            return Err(missing);
        }
    };
    let mut map = BTreeMap::new();
    for (file, bytes) in files {
        let b = base(file);
        if train.contains(&b.as_str()) || b == test {
            map.insert(b, (file.clone(), bytes.clone()));
        }
    }
    split_from_files(container, &map)
}

/// CIFAR-10 from `path`: a directory holding the official batches (`data_batch_*.bin`,
/// `test_batch.bin`) or a subset's `train.bin` and `test.bin`, or a `.tar.gz` file.
#[cfg(not(target_arch = "wasm32"))]
pub fn load_cifar(path: impl AsRef<std::path::Path>) -> Result<Split> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    if !path.is_dir() {
        let bytes = super::read_file(path)?;
        if !is_gzip(&bytes) && shown.ends_with(".bin") {
            // One batch file: parse it, so that its own defect is named; a whole one still
            // lacks the other files of a split.
            cifar_from_records(&shown, &bytes)?;
            return Err(DataError::Missing {
                file: shown.clone(),
                missing: vec!["the other batch files (give the directory holding them)".into()],
                expected: EXPECTED,
            });
        }
        return cifar_from_tar_gz(&shown, &bytes);
    }
    let (train, test) = layout(&shown, |n| path.join(n).is_file())?;
    let mut files = BTreeMap::new();
    for &name in train.iter().chain([&test]) {
        let file = path.join(name);
        let bytes = super::read_file(&file)?;
        files.insert(name.to_string(), (file.display().to_string(), bytes));
    }
    split_from_files(&shown, &files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(label: u8, fill: u8) -> Vec<u8> {
        let mut r = vec![fill; RECORD];
        r[0] = label;
        r
    }

    #[test]
    fn records_parse_in_order() {
        let bytes = [record(3, 1), record(9, 2)].concat();
        let d = cifar_from_records("b.bin", &bytes).unwrap();
        assert_eq!((d.len(), d.channels, d.height, d.width), (2, 3, 32, 32));
        assert_eq!(d.labels, [3, 9]);
        assert_eq!(d.image(1).unwrap(), &[2; RECORD - 1][..]);
    }

    #[test]
    fn bad_records() {
        let e = cifar_from_records("b.bin", &[0; RECORD + 5]).unwrap_err();
        assert!(matches!(e, DataError::RecordSize { len: 3078, .. }), "{e}");
        assert!(e.to_string().contains("5 bytes left over"), "{e}");
        let e = cifar_from_records("b.bin", &[]).unwrap_err();
        assert!(matches!(e, DataError::Empty { .. }), "{e}");
        let bytes = [record(0, 0), record(10, 0)].concat();
        let e = cifar_from_records("b.bin", &bytes).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::LabelOutOfRange {
                    index: 1,
                    label: 10,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn a_lone_broken_batch_is_named_by_its_defect() {
        let named =
            |bytes: Vec<u8>| cifar_from_named_files("given", &[("test_batch.bin".into(), bytes)]);
        let e = named(vec![]).unwrap_err();
        assert!(matches!(e, DataError::Empty { .. }), "{e}");
        let e = named(b"hello".to_vec()).unwrap_err();
        assert!(matches!(e, DataError::RecordSize { .. }), "{e}");
        let e = named(record(12, 0)).unwrap_err();
        assert!(
            matches!(e, DataError::LabelOutOfRange { label: 12, .. }),
            "{e}"
        );
        let e = named(record(1, 0)).unwrap_err();
        assert!(matches!(e, DataError::Missing { .. }), "{e}");
    }

    #[test]
    fn layout_prefers_official_and_lists_what_is_missing() {
        let all = |_: &str| true;
        assert_eq!(layout("d", all).unwrap().1, "test_batch.bin");
        let subset = |n: &str| SUBSET.contains(&n);
        assert_eq!(
            layout("d", subset).unwrap(),
            (&["train.bin"][..], "test.bin")
        );
        let e = layout("d", |n| n == "train.bin").unwrap_err();
        assert!(matches!(&e, DataError::Missing { missing, .. } if missing == &["test.bin"]));
        let e = layout("d", |n| n.starts_with("data")).unwrap_err();
        assert!(matches!(&e, DataError::Missing { missing, .. } if missing == &["test_batch.bin"]));
    }
}
