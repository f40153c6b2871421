// ViT glue kernels. Images are NCHW [N, C, H, W]; patches are P×P with stride P, giving
// T = (H/P)·(W/P) tokens in row-major patch order; a patch vector is ordered (c, py, px),
// matching a Conv2d weight [E, C, P, P] flattened to [E, C·P·P].
//   patchify:        image [N, C, H, W] -> cols [N, T, C·P·P]
//   unpatchify:      its backward (a permutation): dcols -> dimage
//   cls_pos:         out [N, T+1, E]: row 0 = cls + pos[0], row t+1 = tokens[t] + pos[t+1]
//   cls_pos_tokens:  dtokens [N, T, E] = dout [N, T+1, E] without row 0
//   mean_pool:       out [N, E] = (sum_t x [N, T, E]) / T
//   mean_pool_back:  dx [N, T, E] = dout [N, E] / T
//   cls_select:      out [N, E] = x [N, 0, E]
//   cls_select_back: dx [N, T, E] = dout at row 0, zero elsewhere
// The patch embedding's bias and the column sums (db, dcls, dpos) run on linear.wgsl's
// bias_add / column_sum. All use 256 threads per workgroup and grid-stride loops.

struct Params {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    psize: u32,
    tokens: u32, // T: patches, or tokens per item for the pooling kernels
    dim: u32,    // E
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> image: array<f32>;
@group(0) @binding(2) var<storage, read_write> cols: array<f32>;
@group(0) @binding(3) var<storage, read> dcols: array<f32>;
@group(0) @binding(4) var<storage, read_write> dimage: array<f32>;
@group(0) @binding(7) var<storage, read> src: array<f32>;
@group(0) @binding(8) var<storage, read_write> dst: array<f32>;
@group(0) @binding(9) var<storage, read> tokens_in: array<f32>;
@group(0) @binding(10) var<storage, read> cls: array<f32>;
@group(0) @binding(11) var<storage, read> pos: array<f32>;
@group(0) @binding(12) var<storage, read_write> seq: array<f32>;

// Index in cols [N, T, C·P·P] of image element i = (ni, ci, yy, xx) of [N, C, H, W].
fn col_index(i: u32) -> u32 {
    let xx = i % p.w;
    let yy = (i / p.w) % p.h;
    let ci = (i / (p.w * p.h)) % p.c;
    let ni = i / (p.w * p.h * p.c);
    let pp = p.psize;
    let t = (yy / pp) * (p.w / pp) + xx / pp;
    let f = (ci * pp + yy % pp) * pp + xx % pp;
    return (ni * p.tokens + t) * (p.c * pp * pp) + f;
}

@compute @workgroup_size(256)
fn patchify(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let total = p.n * p.c * p.h * p.w;
    for (var i = gid.x; i < total; i += nwg.x * 256u) {
        cols[col_index(i)] = image[i];
    }
}

@compute @workgroup_size(256)
fn unpatchify(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let total = p.n * p.c * p.h * p.w;
    for (var i = gid.x; i < total; i += nwg.x * 256u) {
        dimage[i] = dcols[col_index(i)];
    }
}

@compute @workgroup_size(256)
fn cls_pos(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = p.dim;
    let per_item = (p.tokens + 1u) * e;
    let total = p.n * per_item;
    for (var i = gid.x; i < total; i += nwg.x * 256u) {
        let ni = i / per_item;
        let j = i % per_item; // row·E + channel within the item
        let row = j / e;
        var v: f32;
        if (row == 0u) {
            v = cls[j];
        } else {
            v = tokens_in[(ni * p.tokens + row - 1u) * e + j % e];
        }
        seq[i] = v + pos[j];
    }
}

@compute @workgroup_size(256)
fn cls_pos_tokens(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let per_item = p.tokens * p.dim;
    let total = p.n * per_item;
    for (var i = gid.x; i < total; i += nwg.x * 256u) {
        let ni = i / per_item;
        dst[i] = src[ni * (per_item + p.dim) + p.dim + i % per_item];
    }
}

@compute @workgroup_size(256)
fn mean_pool(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let total = p.n * p.dim;
    for (var i = gid.x; i < total; i += nwg.x * 256u) {
        let ni = i / p.dim;
        let e = i % p.dim;
        var acc = 0.0;
        for (var t = 0u; t < p.tokens; t++) {
            acc += src[(ni * p.tokens + t) * p.dim + e];
        }
        dst[i] = acc / f32(p.tokens);
    }
}

@compute @workgroup_size(256)
fn mean_pool_back(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let per_item = p.tokens * p.dim;
    let total = p.n * per_item;
    for (var i = gid.x; i < total; i += nwg.x * 256u) {
        let ni = i / per_item;
        dst[i] = src[ni * p.dim + i % p.dim] / f32(p.tokens);
    }
}

@compute @workgroup_size(256)
fn cls_select(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let total = p.n * p.dim;
    for (var i = gid.x; i < total; i += nwg.x * 256u) {
        dst[i] = src[(i / p.dim) * p.tokens * p.dim + i % p.dim];
    }
}

@compute @workgroup_size(256)
fn cls_select_back(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let per_item = p.tokens * p.dim;
    let total = p.n * per_item;
    for (var i = gid.x; i < total; i += nwg.x * 256u) {
        let j = i % per_item;
        if (j < p.dim) {
            dst[i] = src[(i / per_item) * p.dim + j];
        } else {
            dst[i] = 0.0;
        }
    }
}
