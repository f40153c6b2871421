// Gathers one normalised (and optionally augmented) batch from a dataset kept on the device.
// The pixels may span several buffers (chunks of whole images, each within one storage
// binding): one dispatch per chunk writes the rows whose image lies in it, images
// first .. first + images; the others are left to the other chunks' dispatches.
//   pixels:  the u8 images [images, C, H, W] of this chunk, packed 4 per u32 word
//            (little-endian);
//   labels:  u32 [len];
//   indices: u32 [count], the epoch order (image numbers);
//   crops:   u32 [count], per order entry dx | dy << 8 | flip << 16 (read when augment = 1);
//   norm:    f32 [2C]: a[c] then b[c], so that a pixel byte v becomes v·a[c] + b[c]
//            (a = 1/(255·std), b = −mean/std, as Dataset::normalized);
// and writes x [N, C, H, W] f32 and y [N] u32 for the order entries offset .. offset + N.
// An entry past the end (offset + r ≥ count, a partial last batch) repeats the last valid
// entry's image and gets the label IGNORE (0xffffffff), which the loss does not count.
// Augmentation is data::augment's Crop::apply on the normalised image: out[c][y][x] =
// image[c][y + dy − pad][x' + dx − pad] with x' = W−1−x when flipping, 0 outside the image.

struct Params {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    count: u32,
    offset: u32,
    pad: u32,
    augment: u32,
    first: u32,
    images: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pixels: array<u32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read> indices: array<u32>;
@group(0) @binding(4) var<storage, read> crops: array<u32>;
@group(0) @binding(5) var<storage, read> norm: array<f32>;
@group(0) @binding(6) var<storage, read_write> x: array<f32>;
@group(0) @binding(7) var<storage, read_write> y: array<u32>;

const IGNORE: u32 = 0xffffffffu;

@compute @workgroup_size(256)
fn gather(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let plane = p.h * p.w;
    let per = p.c * plane;
    let total = p.n * per;
    for (var i = gid.x; i < total; i += nwg.x * 256u) {
        let r = i / per;
        let rem = i % per;
        let ch = rem / plane;
        let yy = (rem % plane) / p.w;
        let xx = rem % p.w;
        let wanted = p.offset + r;
        let valid = wanted < p.count;
        let e = min(wanted, p.count - 1u);
        let image = indices[e];
        let local = image - p.first; // wraps for images before the chunk
        if (local >= p.images) {
            continue;
        }
        var sy = i32(yy);
        var sx = i32(xx);
        if (p.augment != 0u) {
            let crop = crops[e];
            let dx = i32(crop & 0xffu);
            let dy = i32((crop >> 8u) & 0xffu);
            if (((crop >> 16u) & 1u) != 0u) {
                sx = i32(p.w) - 1 - sx;
            }
            sy += dy - i32(p.pad);
            sx += dx - i32(p.pad);
        }
        var v = 0.0;
        if (sy >= 0 && sy < i32(p.h) && sx >= 0 && sx < i32(p.w)) {
            let at = local * per + ch * plane + u32(sy) * p.w + u32(sx);
            let byte = (pixels[at / 4u] >> (8u * (at % 4u))) & 0xffu;
            v = f32(byte) * norm[ch] + norm[p.c + ch];
        }
        x[i] = v;
        if (rem == 0u) {
            y[r] = select(IGNORE, labels[image], valid);
        }
    }
}
