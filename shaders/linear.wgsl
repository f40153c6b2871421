// Per-channel bias kernels over a tensor laid out [outer, channels, inner] (row-major):
// a linear layer's [N, out] is outer = N, inner = 1; a convolution's [N, C, H·W] is
// outer = N, inner = H·W.
//   bias_add:     y[o, c, i] += bias[c]                    (total = outer·channels·inner)
//   channel_sum:  out[c] = Σ_{o, i} x[o, c, i]              (the bias gradient)
// bias_add: 256 threads per workgroup, grid-stride loop. channel_sum: one workgroup per
// channel (a grid-stride loop over channels when there are more channels than workgroups),
// per-thread sums then a tree in workgroup memory; no atomics.

struct Params {
    outer: u32,
    channels: u32,
    inner: u32,
    total: u32,
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

// src = x [outer, channels, inner], dst = out [channels].
@compute @workgroup_size(256)
fn channel_sum(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let count = p.outer * p.inner;
    for (var c = wid.x; c < p.channels; c += nwg.x) {
        var acc = 0.0;
        for (var t = lid; t < count; t += 256u) {
            let o = t / p.inner;
            let j = t % p.inner;
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
            dst[c] = partial[0];
        }
        // Everyone has read partial[0] before the next channel overwrites it.
        workgroupBarrier();
    }
}
