//! Datasets resident on the device and the batch gather (`shaders/data.wgsl`): the u8
//! images are uploaded once, packed 4 per u32 word, with u32 labels; each step one dispatch
//! writes the normalised (optionally augmented) batch `[N, C, H, W]` and its labels from an
//! epoch order kept on the device, so no image crosses the bus during training.
//!
//! The batch is the order entries `offset .. offset + N`. Entries past the end of the order
//! (a partial last batch) repeat the last valid image and get the label
//! [`crate::ops::loss::IGNORE`], which the loss does not count. Augmentation (CIFAR) is
//! [`Crop::apply`] on the normalised image, one crop per order entry, drawn on the CPU and
//! packed with [`pack_crop`].

use super::kernel::{check_sizes, grid_1d, prepare};
use crate::data::augment::{Crop, Shape as ImageShape};
use crate::data::Dataset;
use crate::gpu::{Context, Dispatch, GpuError, Result, Shader, Slice};
use crate::ops::loss::IGNORE;

const SHADER: Shader = Shader {
    name: "data",
    source: include_str!(concat!(env!("OUT_DIR"), "/shaders/data.wgsl")),
};

/// `[a; C]` then `[b; C]` with `a = 1/(255·std)`, `b = −mean/std`, so that a pixel byte `v`
/// normalises to `v·a + b` exactly as [`Dataset::normalized`] computes it. `mean` and `std`
/// hold one value per channel or a single value for all.
pub fn norm_coefficients(channels: usize, mean: &[f32], std: &[f32]) -> Result<Vec<f32>> {
    let per_channel = |v: &[f32], what: &str| match v.len() {
        1 => Ok(vec![v[0]; channels]),
        n if n == channels => Ok(v.to_vec()),
        n => Err(GpuError::Validation {
            what: "a device dataset".into(),
            message: format!(
                "the normalisation {what} has {n} values for images with {channels} channels"
            ),
        }),
    };
    let (mean, std) = (per_channel(mean, "mean")?, per_channel(std, "std")?);
    let a = std.iter().map(|&s| 1.0 / (255.0 * s));
    let b = mean.iter().zip(&std).map(|(&m, &s)| -m / s);
    Ok(a.chain(b).collect())
}

/// The u32 a crop travels as: `dx | dy << 8 | flip << 16` (offsets below 256).
pub fn pack_crop(crop: &Crop) -> u32 {
    crop.dx as u32 | (crop.dy as u32) << 8 | (crop.flip as u32) << 16
}

/// The crop of padding `pad` that [`pack_crop`] packed into `v`.
pub fn unpack_crop(pad: usize, v: u32) -> Crop {
    Crop {
        pad,
        dx: (v & 0xff) as usize,
        dy: ((v >> 8) & 0xff) as usize,
        flip: (v >> 16) & 1 == 1,
    }
}

/// CPU twin of the gather: the batch `[n, C, H, W]` and labels `[n]` of order entries
/// `offset .. offset + n` of `indices`, with `crops` (packed, one per order entry, and
/// their padding) applied when given. `norm` is [`norm_coefficients`].
///
/// # Panics
/// On an empty `indices`, an index past the dataset or a short `crops` (programming errors).
pub fn gather_cpu(
    data: &Dataset,
    norm: &[f32],
    indices: &[u32],
    crops: Option<(&[u32], usize)>,
    offset: usize,
    n: usize,
) -> (Vec<f32>, Vec<u32>) {
    let (c, plane) = (data.channels, data.height * data.width);
    let shape = ImageShape {
        channels: c,
        height: data.height,
        width: data.width,
    };
    let (mut x, mut y) = (Vec::with_capacity(n * c * plane), Vec::with_capacity(n));
    for r in 0..n {
        let wanted = offset + r;
        let e = wanted.min(indices.len() - 1);
        let image = indices[e] as usize;
        let bytes = data.image(image).expect("index within the dataset");
        let mut img: Vec<f32> = bytes
            .iter()
            .enumerate()
            .map(|(i, &v)| v as f32 * norm[i / plane] + norm[c + i / plane])
            .collect();
        if let Some((crops, pad)) = crops {
            let mut out = vec![0.0; img.len()];
            unpack_crop(pad, crops[e]).apply(shape, &img, &mut out);
            img = out;
        }
        x.extend_from_slice(&img);
        y.push(if wanted < indices.len() {
            data.labels[image] as u32
        } else {
            IGNORE
        });
    }
    (x, y)
}

/// A dataset on the device: packed pixels, labels and the normalisation coefficients.
/// Cloning shares the buffers (several executors can read one upload).
#[derive(Clone, Debug)]
pub struct DeviceDataset {
    /// `[C, H, W]` of one image.
    pub image: [usize; 3],
    /// Number of images.
    pub len: usize,
    pub classes: usize,
    /// The u8 images in chunks of [`DeviceDataset::per_chunk`] whole images, each chunk
    /// its own buffer within one storage binding ([`images_per_binding`]), 4 bytes per u32
    /// word, little-endian, every chunk starting at a word.
    pub pixels: Vec<wgpu::Buffer>,
    /// Images per chunk of `pixels` (the last chunk may hold fewer).
    pub per_chunk: usize,
    /// u32 `[len]`.
    pub labels: wgpu::Buffer,
    /// f32 `[2C]`, see [`norm_coefficients`].
    pub norm: wgpu::Buffer,
}

/// Whole images of `image_bytes` bytes that one storage binding of at most `binding_bytes`
/// holds, packed 4 per u32 word, with every byte index below 2³² (the gather's u32): 0 when
/// not even one image fits.
pub fn images_per_binding(image_bytes: usize, binding_bytes: u64) -> usize {
    let usable = (binding_bytes / 4 * 4).min(u32::MAX as u64 / 4 * 4);
    (usable / image_bytes.max(1) as u64) as usize
}

/// CPU twin of the upload: the pixel bytes `images` (whole images of `image_bytes`) in
/// chunks of `per_chunk` images, each packed 4 bytes per u32 word (little-endian, the last
/// word of a chunk zero-padded).
pub fn pack_chunks(images: &[u8], image_bytes: usize, per_chunk: usize) -> Vec<Vec<u32>> {
    images
        .chunks((per_chunk * image_bytes).max(1))
        .map(|chunk| {
            chunk
                .chunks(4)
                .map(|b| {
                    let mut w = [0u8; 4];
                    w[..b.len()].copy_from_slice(b);
                    u32::from_le_bytes(w)
                })
                .collect()
        })
        .collect()
}

impl DeviceDataset {
    /// Uploads `data` once, with the per-channel (or single) `mean` and `std` of its
    /// normalisation, its pixels split over as many buffers as the device's storage binding
    /// limit needs. An empty dataset, an image larger than one binding or a wrong number of
    /// mean/std values is refused.
    pub fn new(ctx: &Context, data: &Dataset, mean: &[f32], std: &[f32]) -> Result<Self> {
        if data.is_empty() || data.image_len() == 0 {
            return Err(GpuError::Validation {
                what: format!("the dataset '{}'", data.name),
                message: "it has no images to keep on the device".into(),
            });
        }
        let limits = &ctx.report.limits;
        let binding = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        let per_chunk = images_per_binding(data.image_len(), binding);
        if per_chunk == 0 {
            return Err(GpuError::LimitExceeded {
                limit: "max_storage_buffer_binding_size",
                what: format!("one image of the dataset '{}'", data.name),
                requested: data.image_len() as u64,
                allowed: binding,
            });
        }
        let norm = norm_coefficients(data.channels, mean, std)?;
        let pixels = pack_chunks(&data.images, data.image_len(), per_chunk)
            .iter()
            .enumerate()
            .map(|(k, words)| ctx.storage(&format!("{} pixels {k}", data.name), words))
            .collect::<Result<Vec<_>>>()?;
        let labels: Vec<u32> = data.labels.iter().map(|&l| l as u32).collect();
        Ok(DeviceDataset {
            image: [data.channels, data.height, data.width],
            len: data.len(),
            classes: data.classes,
            pixels,
            per_chunk,
            labels: ctx.storage(&format!("{} labels", data.name), &labels)?,
            norm: ctx.storage(&format!("{} normalisation", data.name), &norm)?,
        })
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    count: u32,
    offset: u32,
    pad: u32,
    augment: u32,
    /// The images of this dispatch's chunk: `first .. first + images`.
    first: u32,
    images: u32,
}

/// A prepared gather of `n` images from a [`DeviceDataset`] through an order buffer
/// (`indices`, u32, one image number per entry) and a crop buffer (`crops`, u32, one
/// [`pack_crop`] per entry) into `x [n, C, H, W]` and `y [n]`: one dispatch per chunk of
/// the dataset's pixels, each writing the rows whose image lies in its chunk. Set the batch
/// with [`Gather::set`] (a queue write, seen by the next submit), then encode
/// [`Gather::dispatches`].
pub struct Gather {
    chunks: Vec<(Dispatch, wgpu::Buffer, Params)>,
}

impl Gather {
    #[allow(clippy::too_many_arguments)]
    pub async fn new<'a>(
        ctx: &Context,
        data: &DeviceDataset,
        n: usize,
        indices: &wgpu::Buffer,
        crops: &wgpu::Buffer,
        x: impl Into<Slice<'a>>,
        y: &wgpu::Buffer,
    ) -> Result<Gather> {
        let x: Slice = x.into();
        let [c, h, w] = data.image;
        let what = format!("a gather of {n} images of {:?}", data.image);
        check_sizes(&what, &[("x", x, n * c * h * w)])?;
        check_sizes(&what, &[("y", y, n)])?;
        let workgroups = [grid_1d(ctx, n * c * h * w), 1, 1];
        let mut chunks = Vec::with_capacity(data.pixels.len());
        for (k, pixels) in data.pixels.iter().enumerate() {
            let first = k * data.per_chunk;
            let base = Params {
                n: n as u32,
                c: c as u32,
                h: h as u32,
                w: w as u32,
                count: data.len as u32,
                offset: 0,
                pad: 0,
                augment: 0,
                first: first as u32,
                images: data.per_chunk.min(data.len - first) as u32,
            };
            let buffers = [
                (1, Slice::from(pixels)),
                (2, Slice::from(&data.labels)),
                (3, Slice::from(indices)),
                (4, Slice::from(crops)),
                (5, Slice::from(&data.norm)),
                (6, x),
                (7, Slice::from(y)),
            ];
            let (dispatch, params) =
                prepare(ctx, &SHADER, "gather", &base, workgroups, &buffers).await?;
            chunks.push((dispatch, params, base));
        }
        Ok(Gather { chunks })
    }

    /// The dispatches of one gather, one per chunk of the dataset's pixels (encode them
    /// together, in this order, in the step's submit).
    pub fn dispatches(&self) -> impl Iterator<Item = &Dispatch> {
        self.chunks.iter().map(|(d, _, _)| d)
    }

    /// The next dispatches gather order entries `offset .. offset + n` of an order of
    /// `count` entries (at least 1), cropping with padding `pad` when `augment`.
    pub fn set(&self, ctx: &Context, offset: usize, count: usize, augment: Option<usize>) {
        for (_, params, base) in &self.chunks {
            let p = Params {
                offset: offset as u32,
                count: count.max(1) as u32,
                pad: augment.unwrap_or(0) as u32,
                augment: augment.is_some() as u32,
                ..*base
            };
            ctx.write(params, &[p]);
        }
    }
}
