//! The standard CIFAR augmentation on f32 NCHW images: a random `H × W` crop of the image
//! zero-padded by `pad` on every side (4 for CIFAR), then a horizontal flip with
//! probability ½. Driven by [`Rng`], so a seed gives the same augmentations everywhere.
//!
//! Applied to normalized images, the zero padding is the per-channel mean colour.

use crate::rng::Rng;

/// The padding of the usual CIFAR crop.
pub const CIFAR_PAD: usize = 4;

/// Shape of one image: channels, height, width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl Shape {
    pub fn len(&self) -> usize {
        self.channels * self.height * self.width
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One draw of the augmentation: the crop's top-left corner in the padded image
/// (`0..=2·pad` each; `(pad, pad)` is the uncropped image) and whether to flip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crop {
    pub pad: usize,
    pub dy: usize,
    pub dx: usize,
    pub flip: bool,
}

impl Crop {
    /// The crop that changes nothing.
    pub fn identity(pad: usize) -> Crop {
        Crop {
            pad,
            dy: pad,
            dx: pad,
            flip: false,
        }
    }

    /// Offsets uniform in `0..=2·pad`, flip with probability ½.
    pub fn random(pad: usize, rng: &mut Rng) -> Crop {
        let span = 2 * pad as u64 + 1;
        Crop {
            pad,
            dy: (rng.next_u64() % span) as usize,
            dx: (rng.next_u64() % span) as usize,
            flip: rng.next_u64() >> 63 == 1,
        }
    }

    /// Writes the cropped (and maybe flipped) `image` into `out`, both of `shape`:
    /// `out[c][y][x] = image[c][y + dy − pad][x' + dx − pad]` with `x' = W−1−x` when
    /// flipping, and 0 where that falls outside the image.
    ///
    /// # Panics
    /// When `image` or `out` does not hold `shape.len()` values (a programming error).
    pub fn apply(&self, shape: Shape, image: &[f32], out: &mut [f32]) {
        let Shape {
            channels,
            height: h,
            width: w,
        } = shape;
        assert_eq!(image.len(), shape.len(), "crop: the image is not {shape:?}");
        assert_eq!(out.len(), shape.len(), "crop: the output is not {shape:?}");
        let p = self.pad as isize;
        let (dy, dx) = (self.dy as isize - p, self.dx as isize - p);
        for c in 0..channels {
            let (src, dst) = (&image[c * h * w..][..h * w], &mut out[c * h * w..][..h * w]);
            for y in 0..h {
                let sy = y as isize + dy;
                let row = &mut dst[y * w..][..w];
                if sy < 0 || sy >= h as isize {
                    row.fill(0.0);
                    continue;
                }
                let src_row = &src[sy as usize * w..][..w];
                for (x, v) in row.iter_mut().enumerate() {
                    let x = if self.flip { w - 1 - x } else { x };
                    let sx = x as isize + dx;
                    *v = if sx < 0 || sx >= w as isize {
                        0.0
                    } else {
                        src_row[sx as usize]
                    };
                }
            }
        }
    }
}

/// Flips one image left–right in place.
pub fn flip_horizontal(shape: Shape, image: &mut [f32]) {
    assert_eq!(image.len(), shape.len(), "flip: the image is not {shape:?}");
    if shape.width > 0 {
        image
            .chunks_exact_mut(shape.width)
            .for_each(|row| row.reverse());
    }
}

/// Augments one image into `out` with a random [`Crop`] of padding `pad`; returns the draw.
pub fn augment_image(
    shape: Shape,
    pad: usize,
    image: &[f32],
    out: &mut [f32],
    rng: &mut Rng,
) -> Crop {
    let crop = Crop::random(pad, rng);
    crop.apply(shape, image, out);
    crop
}

/// Augments every image of an NCHW `batch` in place, each with its own random draw, in
/// batch order.
///
/// # Panics
/// When `batch` is not a whole number of images of `shape`.
pub fn augment_batch(shape: Shape, pad: usize, batch: &mut [f32], rng: &mut Rng) {
    let n = shape.len();
    assert!(
        n > 0 && batch.len().is_multiple_of(n),
        "augment_batch: {} values are not a whole number of {shape:?} images",
        batch.len()
    );
    let mut scratch = vec![0.0; n];
    for image in batch.chunks_exact_mut(n) {
        augment_image(shape, pad, image, &mut scratch, rng);
        image.copy_from_slice(&scratch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_by_the_offset() {
        let shape = Shape {
            channels: 1,
            height: 2,
            width: 3,
        };
        let img = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut out = [9.0; 6];
        // One pixel right and down in the padded image: content moves up-left.
        let crop = Crop {
            pad: 1,
            dy: 2,
            dx: 2,
            flip: false,
        };
        crop.apply(shape, &img, &mut out);
        assert_eq!(out, [5.0, 6.0, 0.0, 0.0, 0.0, 0.0]);
        Crop { flip: true, ..crop }.apply(shape, &img, &mut out);
        assert_eq!(out, [0.0, 6.0, 5.0, 0.0, 0.0, 0.0]);
        Crop::identity(1).apply(shape, &img, &mut out);
        assert_eq!(out, img);
    }

    #[test]
    fn random_offsets_cover_the_range() {
        let mut rng = Rng::new(3);
        let crops: Vec<Crop> = (0..2000).map(|_| Crop::random(4, &mut rng)).collect();
        assert!(crops.iter().all(|c| c.dy <= 8 && c.dx <= 8));
        assert!(crops.iter().any(|c| c.dy == 0) && crops.iter().any(|c| c.dx == 8));
        let flips = crops.iter().filter(|c| c.flip).count();
        assert!((850..1150).contains(&flips), "{flips} flips of 2000");
    }
}
