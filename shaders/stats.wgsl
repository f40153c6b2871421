// Per-tensor statistics of a flat parameter (or gradient) buffer that holds many tensors,
// for every tensor at once in a constant number of dispatches:
//   stats[4·t + 0] = Σ sqrt(w² + r)     (smoothed |w|, the w̃ of VAR)
//   stats[4·t + 1] = Σ w²
//   stats[4·t + 2] = Σ |w|
//   stats[4·t + 3] = max |w|
// Pass `chunk_stats`: one workgroup per chunk (a run of ≤ CHUNK elements inside one tensor;
// the chunk table is built on the CPU once per model) writes the chunk's four partials.
// Pass `tensor_stats`: one workgroup per tensor folds the partials of its chunks.
// Pass `global_norm`: one workgroup folds Σ w² of all tensors into sqrt(Σ w²).
// `histogram`: per-tensor histogram of w (signed, on [−max|w|, max|w|]) or of |w|
// (on [0, max|w|]), the range read from `stats` so nothing is read back; u32 counts.

struct Params {
    r: f32,
    chunks: u32,
    tensors: u32,
    bins: u32,    // histogram bins (≤ 1024)
    signed_: u32, // histogram of w (1) or of |w| (0)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<f32>;
// chunk_stats: (start, end) element range per chunk
@group(0) @binding(2) var<storage, read> chunks: array<vec2<u32>>;
// tensor_stats / histogram: (offset, len, first_chunk, end_chunk) per tensor
@group(0) @binding(3) var<storage, read> tensors: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read_write> partials: array<f32>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;
@group(0) @binding(6) var<storage, read_write> norm: array<f32>;
@group(0) @binding(7) var<storage, read_write> hist: array<atomic<u32>>;

const WG: u32 = 256u;
var<workgroup> s0: array<f32, 256>;
var<workgroup> s1: array<f32, 256>;
var<workgroup> s2: array<f32, 256>;
var<workgroup> s3: array<f32, 256>;

// Folds each thread's (Σ, Σ, Σ, max) `a` over the workgroup and returns the totals to every
// thread. Call in uniform control flow.
fn fold(lid: u32, a: vec4<f32>) -> vec4<f32> {
    s0[lid] = a.x;
    s1[lid] = a.y;
    s2[lid] = a.z;
    s3[lid] = a.w;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            s0[lid] += s0[lid + stride];
            s1[lid] += s1[lid + stride];
            s2[lid] += s2[lid + stride];
            s3[lid] = max(s3[lid], s3[lid + stride]);
        }
        workgroupBarrier();
    }
    return vec4<f32>(s0[0], s1[0], s2[0], s3[0]);
}

@compute @workgroup_size(256)
fn chunk_stats(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let chunk = wid.y * nwg.x + wid.x;
    if (chunk >= p.chunks) {
        return; // uniform per workgroup: no barrier is skipped by part of it
    }
    let range = chunks[chunk];
    var a0 = 0.0;
    var a1 = 0.0;
    var a2 = 0.0;
    var a3 = 0.0;
    for (var i = range.x + lid; i < range.y; i += WG) {
        let v = w[i];
        a0 += sqrt(v * v + p.r);
        a1 += v * v;
        a2 += abs(v);
        a3 = max(a3, abs(v));
    }
    let total = fold(lid, vec4<f32>(a0, a1, a2, a3));
    if (lid == 0u) {
        for (var k = 0u; k < 4u; k++) {
            partials[4u * chunk + k] = total[k];
        }
    }
}

@compute @workgroup_size(256)
fn tensor_stats(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = wid.y * nwg.x + wid.x;
    if (t >= p.tensors) {
        return;
    }
    let info = tensors[t];
    var a0 = 0.0;
    var a1 = 0.0;
    var a2 = 0.0;
    var a3 = 0.0;
    for (var c = info.z + lid; c < info.w; c += WG) {
        a0 += partials[4u * c + 0u];
        a1 += partials[4u * c + 1u];
        a2 += partials[4u * c + 2u];
        a3 = max(a3, partials[4u * c + 3u]);
    }
    let total = fold(lid, vec4<f32>(a0, a1, a2, a3));
    if (lid == 0u) {
        for (var k = 0u; k < 4u; k++) {
            stats[4u * t + k] = total[k];
        }
    }
}

@compute @workgroup_size(256)
fn global_norm(@builtin(local_invocation_index) lid: u32) {
    var a1 = 0.0;
    for (var t = lid; t < p.tensors; t += WG) {
        a1 += stats[4u * t + 1u];
    }
    let total = fold(lid, vec4<f32>(0.0, a1, 0.0, 0.0));
    if (lid == 0u) {
        norm[0] = sqrt(total.y);
    }
}

var<workgroup> local_hist: array<atomic<u32>, 1024>;

// The tensor a chunk belongs to: the last tensor whose first chunk is ≤ c (tensors are in
// order, and empty tensors own no chunk).
fn tensor_of_chunk(c: u32, n_tensors: u32) -> u32 {
    var lo = 0u;
    var hi = n_tensors;
    while (hi - lo > 1u) {
        let mid = (lo + hi) / 2u;
        if (tensors[mid].z <= c) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return lo;
}

@compute @workgroup_size(256)
fn histogram(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    let chunk = wid.y * nwg.x + wid.x;
    if (chunk >= p.chunks) {
        return;
    }
    for (var b = lid; b < p.bins; b += WG) {
        atomicStore(&local_hist[b], 0u);
    }
    workgroupBarrier();
    let t = tensor_of_chunk(chunk, p.tensors);
    let hi = stats[4u * t + 3u];
    let range = chunks[chunk];
    let fb = f32(p.bins);
    for (var i = range.x + lid; i < range.y; i += WG) {
        let v = w[i];
        var x: f32;
        if (p.signed_ != 0u) {
            x = select(0.5, 0.5 + 0.5 * v / hi, hi > 0.0); // [−hi, hi] → [0, 1]
        } else {
            x = select(0.0, abs(v) / hi, hi > 0.0);
        }
        let b = min(u32(max(x, 0.0) * fb), p.bins - 1u);
        atomicAdd(&local_hist[b], 1u);
    }
    workgroupBarrier();
    for (var b = lid; b < p.bins; b += WG) {
        let c = atomicLoad(&local_hist[b]);
        if (c != 0u) {
            atomicAdd(&hist[t * p.bins + b], c);
        }
    }
}

@compute @workgroup_size(256)
fn clear_histogram(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.tensors * p.bins; i += nwg.x * WG) {
        atomicStore(&hist[i], 0u);
    }
}
