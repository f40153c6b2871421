// Sum reduction: out[workgroup] = sum of x[i] over the indices i that the workgroup's
// threads visit with a grid-stride loop. Run once with G workgroups (G partial sums),
// then once more with a single workgroup over the G partials to get the total.
// Within a workgroup: per-thread sums, then a tree reduction in workgroup memory.

struct Params {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn sum(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    var acc = 0.0;
    for (var i = gid.x; i < p.n; i += nwg.x * 256u) {
        acc += x[i];
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
        out[wid.x] = partial[0];
    }
}
