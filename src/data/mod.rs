//! Datasets on the CPU: MNIST (IDX files) and CIFAR-10 (binary records, or the official
//! `cifar-10-binary.tar.gz`), parsed from bytes so that the same code runs natively and in
//! the browser; light augmentation for CIFAR.
//!
//! Images are kept as raw bytes, `N × C × H × W`, channel-planar (the CIFAR / NCHW layout);
//! [`Dataset::normalized`] turns them into the f32 the network eats. File-reading helpers
//! ([`mnist::load_mnist_dir`], [`cifar::load_cifar`]) exist natively only; on wasm the page
//! hands the bytes it got from the user (or from `fetch`) to the `*_from_bytes` functions.

pub mod augment;
pub mod cifar;
pub mod cifar100;
#[cfg(not(target_arch = "wasm32"))]
pub mod file;
pub mod mnist;

use std::borrow::Cow;
use std::io::Read;

/// MNIST's per-channel mean and standard deviation of `pixel / 255` over the training set.
pub const MNIST_MEAN: [f32; 1] = [0.1307];
pub const MNIST_STD: [f32; 1] = [0.3081];
/// CIFAR-10's per-channel (R, G, B) mean and standard deviation of `pixel / 255`.
pub const CIFAR10_MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
pub const CIFAR10_STD: [f32; 3] = [0.2470, 0.2435, 0.2616];
/// CIFAR-100's per-channel mean and standard deviation of `pixel / 255` over its training
/// set (the figures of the S²-SAM and CrAM code bases, rounded).
pub const CIFAR100_MEAN: [f32; 3] = [0.5071, 0.4865, 0.4409];
pub const CIFAR100_STD: [f32; 3] = [0.2673, 0.2564, 0.2762];
/// CIFAR-10's class names, in label order.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Everything that can go wrong while reading a dataset, as sentences naming the file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("Reading '{path}' failed: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "The file '{file}' is truncated: it should hold {needed} bytes for {what} but has only \
         {found}; download it again."
    )]
    Truncated {
        file: String,
        what: String,
        needed: usize,
        found: usize,
    },
    #[error(
        "The file '{file}' is not an {kind}: its magic number is {found} where {expected} was \
         expected."
    )]
    BadMagic {
        file: String,
        kind: &'static str,
        expected: u32,
        found: u32,
    },
    #[error(
        "The file '{file}' holds {len} bytes, which is not a whole number of {record}-byte \
         records ({} bytes left over); it is not a CIFAR-10 binary batch, or it is cut short.",
        len % record
    )]
    RecordSize {
        file: String,
        len: usize,
        record: usize,
    },
    #[error("The file '{file}' holds no images.")]
    Empty { file: String },
    #[error("The file '{file}' has images of {found} where {expected} was expected.")]
    Dimensions {
        file: String,
        found: String,
        expected: String,
    },
    #[error(
        "The files '{images_file}' ({images} images) and '{labels_file}' ({labels} labels) \
         do not match: every image needs one label."
    )]
    CountMismatch {
        images_file: String,
        images: usize,
        labels_file: String,
        labels: usize,
    },
    #[error(
        "The file '{file}' has label {label} at index {index}, out of range for {classes} \
         classes (labels are 0 to {}).",
        classes.saturating_sub(1)
    )]
    LabelOutOfRange {
        file: String,
        index: usize,
        label: u8,
        classes: usize,
    },
    #[error("'{file}' lacks {}; {expected}.", missing.join(", "))]
    Missing {
        file: String,
        missing: Vec<String>,
        expected: &'static str,
    },
    #[error(
        "The file '{file}' would hold {what} once decompressed, more than the {limit} bytes \
         varlab reads from it; it is not a dataset file, or its header lies."
    )]
    TooLarge {
        file: String,
        what: String,
        limit: u64,
    },
    #[error("The file '{file}' could not be read as gzip: {source}")]
    Gzip {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("The file '{file}' is not a readable tar archive: {source}")]
    Tar {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// A file refused before parsing: not a regular file, or past its kind's size cap.
    #[cfg(not(target_arch = "wasm32"))]
    #[error(transparent)]
    Read(#[from] file::ReadError),
}

pub type Result<T> = std::result::Result<T, DataError>;

/// A labelled image set held as bytes: `images` is `N × C × H × W`, channel-planar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    pub name: String,
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub classes: usize,
}

/// A training set and its test set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    pub train: Dataset,
    pub test: Dataset,
}

impl Dataset {
    /// A dataset after checking that `images` holds one `C × H × W` image per label and
    /// that every label is below `classes`; errors name the dataset `name`.
    pub fn new(
        name: &str,
        images: Vec<u8>,
        labels: Vec<u8>,
        [channels, height, width]: [usize; 3],
        classes: usize,
    ) -> Result<Dataset> {
        let image_len = channels * height * width;
        if image_len == 0 || images.len() != labels.len() * image_len {
            return Err(DataError::Dimensions {
                file: name.to_string(),
                found: format!("{} bytes in all", images.len()),
                expected: format!(
                    "{} labels × {channels}×{height}×{width} bytes",
                    labels.len()
                ),
            });
        }
        check_labels(name, &labels, classes)?;
        Ok(Dataset {
            name: name.to_string(),
            images,
            labels,
            channels,
            height,
            width,
            classes,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image, `C × H × W`.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The bytes of image `i` (`C × H × W`), or `None` past the end.
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        let n = self.image_len();
        self.images.get(i * n..(i + 1) * n)
    }

    /// The first `n` images (all of them when `n >= len()`).
    pub fn subset(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset {
            name: self.name.clone(),
            images: self.images[..n * self.image_len()].to_vec(),
            labels: self.labels[..n].to_vec(),
            ..*self
        }
    }

    /// How many images each class has (labels past `classes` are not counted).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &l in &self.labels {
            if let Some(n) = counts.get_mut(l as usize) {
                *n += 1;
            }
        }
        counts
    }

    /// All images as f32, NCHW: `(x / 255 − mean[c]) / std[c]`. `mean` and `std` hold one
    /// value per channel, or a single value used for every channel.
    ///
    /// # Panics
    /// When `mean` or `std` has neither 1 nor `channels` entries (a programming error:
    /// pass the constants of this module).
    pub fn normalized(&self, mean: &[f32], std: &[f32]) -> Vec<f32> {
        let per_channel = |v: &[f32], what: &str| -> Vec<f32> {
            match v.len() {
                1 => vec![v[0]; self.channels],
                n if n == self.channels => v.to_vec(),
                n => panic!(
                    "normalized: {what} has {n} values for a dataset with {} channels",
                    self.channels
                ),
            }
        };
        let (mean, std) = (per_channel(mean, "mean"), per_channel(std, "std"));
        // x / 255 − m) / s  =  x · a + b, with a = 1 / (255 s) and b = −m / s.
        let (a, b): (Vec<f32>, Vec<f32>) = mean
            .iter()
            .zip(&std)
            .map(|(&m, &s)| (1.0 / (255.0 * s), -m / s))
            .unzip();
        let plane = self.height * self.width;
        if plane == 0 || self.channels == 0 {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(self.images.len());
        for image in self.images.chunks_exact(self.image_len()) {
            for (c, channel) in image.chunks_exact(plane).enumerate() {
                out.extend(channel.iter().map(|&x| x as f32 * a[c] + b[c]));
            }
        }
        out
    }
}

/// The first label `>= classes`, as an error naming `file`.
fn check_labels(file: &str, labels: &[u8], classes: usize) -> Result<()> {
    match labels.iter().position(|&l| l as usize >= classes) {
        None => Ok(()),
        Some(index) => Err(DataError::LabelOutOfRange {
            file: file.to_string(),
            index,
            label: labels[index],
            classes,
        }),
    }
}

/// Whether `bytes` starts with the gzip magic number.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// The most an IDX file may hold decompressed: 256 MiB (full MNIST's training images are
/// 47 MB). A gzip "bomb" stops here, not at the end of memory.
pub const MAX_IDX_BYTES: u64 = 256 << 20;

/// `bytes` decompressed when they are gzip (an IDX file), borrowed unchanged otherwise.
///
/// Streaming and bounded: the IDX header is inflated first (magic, then one big-endian u32
/// per dimension), and the rest only up to the size the header announces (header + product
/// of the dimensions, at most [`MAX_IDX_BYTES`]). A header that announces more is refused
/// before anything else is inflated; bytes beyond the announced size are never inflated.
/// A stream that is not IDX at all is inflated up to the header and handed on, so the
/// parser names the bad magic number.
pub fn gunzip_if_needed<'a>(file: &str, bytes: &'a [u8]) -> Result<Cow<'a, [u8]>> {
    if !is_gzip(bytes) {
        return Ok(Cow::Borrowed(bytes));
    }
    let gzip = |source| DataError::Gzip {
        file: file.to_string(),
        source,
    };
    let mut dec = flate2::read::GzDecoder::new(bytes);
    let mut out = Vec::new();
    (&mut dec).take(4).read_to_end(&mut out).map_err(gzip)?;
    // IDX magic: 0, 0, type (0x08 = u8), number of dimensions.
    let dims = match out[..] {
        [0, 0, 0x08, d] if (1..=4).contains(&d) => d as u64,
        _ => return Ok(Cow::Owned(out)),
    };
    (&mut dec)
        .take(4 * dims)
        .read_to_end(&mut out)
        .map_err(gzip)?;
    if out.len() as u64 != 4 + 4 * dims {
        return Ok(Cow::Owned(out)); // truncated header: the parser says so
    }
    let body = out[4..]
        .chunks(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u64)
        .try_fold(1u64, |acc, d| acc.checked_mul(d));
    let total = body.and_then(|b| b.checked_add(out.len() as u64));
    match total {
        Some(total) if total <= MAX_IDX_BYTES => {
            // No reservation from the header: memory grows with what really inflates.
            let rest = total - out.len() as u64;
            (&mut dec).take(rest).read_to_end(&mut out).map_err(gzip)?;
            Ok(Cow::Owned(out))
        }
        _ => Err(DataError::TooLarge {
            file: file.to_string(),
            what: match total {
                Some(t) => format!("{t} bytes (its IDX header says so)"),
                None => "more than 2^64 bytes (its IDX header says so)".to_string(),
            },
            limit: MAX_IDX_BYTES,
        }),
    }
}

/// Reads a whole dataset file through the bounded reader ([`file::read_bounded`]).
#[cfg(not(target_arch = "wasm32"))]
fn read_file(path: &std::path::Path) -> Result<Vec<u8>> {
    Ok(file::read_bounded(path, file::FileKind::Data)?)
}

/// A split from files the user handed over by name (the page's upload, or the built-in
/// MNIST asset): the four MNIST IDX files (plain or `.gz`, recognised by their official
/// names), CIFAR-10 batches (`data_batch_N.bin` + `test_batch.bin`, or a subset's
/// `train.bin` + `test.bin`), or the official `cifar-10-binary.tar.gz`; CIFAR-100's
/// `train.bin` + `test.bin` or `cifar-100-binary.tar.gz` ([`cifar100::looks_like_cifar100`]).
pub fn split_from_named_files(files: &[(String, Vec<u8>)]) -> Result<Split> {
    let base = |name: &str| -> String {
        let name = name.rsplit(['/', '\\']).next().unwrap_or(name);
        name.strip_suffix(".gz").unwrap_or(name).to_string()
    };
    let find = |official: &str| files.iter().find(|(n, _)| base(n) == official);
    if files.iter().any(|(n, _)| base(n).contains("-idx")) {
        let found: Vec<_> = mnist::FILES.iter().map(|f| find(f)).collect();
        let missing: Vec<String> = mnist::FILES
            .iter()
            .zip(&found)
            .filter(|(_, f)| f.is_none())
            .map(|(n, _)| n.to_string())
            .collect();
        if !missing.is_empty() {
            return Err(DataError::Missing {
                file: "the MNIST files given".into(),
                missing,
                expected: "MNIST needs its four IDX files",
            });
        }
        let bytes = |i: usize| {
            let (name, data) = found[i].expect("checked above");
            gunzip_if_needed(name, data)
        };
        return mnist::mnist_from_bytes(&bytes(0)?, &bytes(1)?, &bytes(2)?, &bytes(3)?);
    }
    if cifar100::looks_like_cifar100(files) {
        return cifar100::cifar100_from_named_files(files);
    }
    if let Some((name, data)) = files
        .iter()
        .find(|(n, _)| n.ends_with(".tar.gz") || n.ends_with(".tgz"))
    {
        return cifar::cifar_from_tar_gz(name, data);
    }
    cifar::cifar_from_named_files("the CIFAR-10 files given", files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Dataset {
        // 3 images, 2 channels of 1×2.
        Dataset::new(
            "tiny",
            vec![0, 255, 51, 102, 1, 2, 3, 4, 5, 6, 7, 8],
            vec![0, 1, 2],
            [2, 1, 2],
            3,
        )
        .unwrap()
    }

    #[test]
    fn normalized_is_per_channel_nchw() {
        let d = tiny();
        let x = d.normalized(&[0.0, 0.2], &[1.0, 0.5]);
        assert_eq!(x.len(), 12);
        let want = [0.0, 1.0, (0.2 - 0.2) / 0.5, (0.4 - 0.2) / 0.5];
        for (got, want) in x[..4].iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
        // A single value applies to every channel.
        assert_eq!(d.normalized(&[0.0], &[1.0])[1], 1.0);
    }

    #[test]
    fn subset_image_and_counts() {
        let d = tiny();
        let s = d.subset(2);
        assert_eq!((s.len(), s.images.len()), (2, 8));
        assert_eq!(s.image(1), Some(&[1, 2, 3, 4][..]));
        assert_eq!(s.image(2), None);
        assert_eq!(d.subset(99), d);
        assert_eq!(d.class_counts(), vec![1, 1, 1]);
    }

    #[test]
    fn new_rejects_bad_shapes_and_labels() {
        let e = Dataset::new("t", vec![0; 5], vec![0, 0], [1, 1, 2], 2).unwrap_err();
        assert!(matches!(e, DataError::Dimensions { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("5 bytes in all where 2 labels × 1×1×2"),
            "{e}"
        );
        let e = Dataset::new("t", vec![0; 4], vec![0, 2], [1, 1, 2], 2).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::LabelOutOfRange {
                    index: 1,
                    label: 2,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("'t'"), "{e}");
    }

    #[test]
    fn gunzip_passes_plain_bytes_and_reports_bad_gzip() {
        assert_eq!(&*gunzip_if_needed("f", b"abc").unwrap(), b"abc");
        let e = gunzip_if_needed("f.gz", &[0x1f, 0x8b, 8, 0, 1]).unwrap_err();
        assert!(matches!(e, DataError::Gzip { .. }), "{e}");
        assert!(e.to_string().contains("'f.gz'"), "{e}");
    }
}
