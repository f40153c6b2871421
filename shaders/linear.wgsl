// Per-channel bias kernels over a tensor laid out [outer, channels, inner] (row-major):
// a linear layer's [N, out] is outer = N, inner = 1; a convolution's [N, C, H·W] is
// outer = N, inner = H·W.
//   bias_add:     y[o, c, i] += bias[c]                    (total = outer·channels·inner)
//   channel_sum:  out[c] = Σ_{o, i} x[o, c, i]              (the bias gradient)
//   column_sum:   the same for inner = 1, i.e. column sums of a [rows, cols] matrix
// bias_add: 256 threads per workgroup, grid-stride loop.
//
// Both sums may be split (splits > 1, for layers with few channels and many terms each):
// workgroup y = split s sums its piece of every channel's terms — terms
// [s·chunk, (s+1)·chunk) of the outer·inner (channel_sum) or rows [s·chunk, (s+1)·chunk)
// (column_sum) — and writes dst[s·channels + c]: the partial sums [splits, channels],
// which a second column_sum (unsplit, over `splits` rows) adds in a fixed order. Unsplit
// (splits = 1, chunk = all), dst[c] is the result.
// channel_sum: one workgroup per (channel, piece) (a grid-stride loop over channels when
// there are more channels than workgroups), per-thread sums then a tree in workgroup
// memory. column_sum: a workgroup of 32 adjacent columns × 8 row lanes (so each row's 32
// reads are contiguous), each lane summing every 8th row of the piece, then the 8 lanes
// added in a fixed order; a grid-stride loop over column blocks. No atomics; every
// summation order is fixed by the shape, so results are deterministic.

struct Params {
    outer: u32,
    channels: u32,
    inner: u32,
    total: u32,
    chunk: u32,  // terms (channel_sum) or rows (column_sum) per piece
    splits: u32, // pieces; dst is [splits, channels]
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

var<workgroup> partial: array<f32, 256>;

// src = bias [channels], dst = y [outer, channels, inner] (updated in place).
@compute @workgroup_size(256)
fn bias_add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.total; i += nwg.x * 256u) {
        dst[i] = dst[i] + src[(i / p.inner) % p.channels];
    }
}

// src = x [outer, channels, inner], dst = partial sums [splits, channels].
@compute @workgroup_size(256)
fn channel_sum(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let count = p.outer * p.inner;
    let s = wid.y;
    let begin = s * p.chunk;
    let end = min(count, begin + p.chunk);
    for (var c = wid.x; c < p.channels; c += nwg.x) {
        var acc = 0.0;
        for (var t = begin + lid; t < end; t += 256u) {
            let o = t / p.inner;
            let j = t - o * p.inner;
            acc += src[(o * p.channels + c) * p.inner + j];
        }
        partial[lid] = acc;
        workgroupBarrier();
        for (var stride = 128u; stride > 0u; stride >>= 1u) {
            if (lid < stride) {
                partial[lid] += partial[lid + stride];
            }
            workgroupBarrier();
        }
        if (lid == 0u) {
            dst[s * p.channels + c] = partial[0];
        }
        // Everyone has read partial[0] before the next channel overwrites it.
        workgroupBarrier();
    }
}

// src = x [rows = outer, cols = channels], dst = partial sums [splits, channels].
@compute @workgroup_size(32, 8)
fn column_sum(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let s = wid.y;
    let begin = s * p.chunk;
    let end = min(p.outer, begin + p.chunk);
    for (var block = wid.x; block * 32u < p.channels; block += nwg.x) {
        let col = block * 32u + lid.x;
        var acc = 0.0;
        if (col < p.channels) {
            for (var r = begin + lid.y; r < end; r += 8u) {
                acc += src[r * p.channels + col];
            }
        }
        partial[lid.y * 32u + lid.x] = acc;
        workgroupBarrier();
        if (lid.y == 0u && col < p.channels) {
            var total = 0.0;
            for (var l = 0u; l < 8u; l++) {
                total += partial[l * 32u + lid.x];
            }
            dst[s * p.channels + col] = total;
        }
        // Every lane has been read before the next block overwrites them.
        workgroupBarrier();
    }
}
