// Exact k-th smallest |w| per segment of a flat buffer, without sorting: a radix select
// over the f32 bit patterns of |w| (for non-negative floats the u32 order of the bits is
// the order of the values). A segment is a set of element ranges (one tensor, or every
// prunable tensor for a global threshold); the chunk table maps each chunk (≤ 4096
// elements inside one range) to its segment.
//
// state[s] = (prefix, krem, below, k):
//   prefix: the high bits of the answer found so far;
//   krem:   the rank (1-based) of the answer among the elements matching the prefix;
//   below:  how many elements of the segment are strictly smaller than the answer;
//   k:      the requested rank (0: nothing selected, the answer reads 0).
// Passes: `init` (state from ks, histograms cleared), then three times `histogram` (count
// the next digit of every element whose bits match the prefix: bits 31..21, 20..10, 9..0)
// and `scan` (find the digit where the cumulative count reaches krem; clears the
// histogram for the next pass). After the third scan, `prefix` is the answer's bits.
// `zero_at_or_below`: w[i] = 0 where the segment's k > 0 and |w[i]| ≤ the answer.

struct Params {
    chunks: u32,
    segments: u32,
    pass_: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> chunks: array<vec4<u32>>; // (start, end, segment, 0)
@group(0) @binding(3) var<storage, read> ks: array<u32>;
@group(0) @binding(4) var<storage, read_write> state: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read_write> hist: array<atomic<u32>>;
@group(0) @binding(6) var<storage, read_write> wz: array<f32>;

const WG: u32 = 256u;
const BINS: u32 = 2048u;
const PER_THREAD: u32 = 8u; // BINS / WG

var<workgroup> local_hist: array<atomic<u32>, 2048>;
var<workgroup> scan_buf: array<u32, 256>;

fn digit(bits: u32, pass_: u32) -> u32 {
    if (pass_ == 0u) {
        return bits >> 21u;
    }
    if (pass_ == 1u) {
        return (bits >> 10u) & 0x7FFu;
    }
    return bits & 0x3FFu;
}

fn matches(bits: u32, pass_: u32, prefix: u32) -> bool {
    if (pass_ == 0u) {
        return true;
    }
    if (pass_ == 1u) {
        return (bits >> 21u) == prefix;
    }
    return (bits >> 10u) == prefix;
}

@compute @workgroup_size(256)
fn init(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = wid.y * nwg.x + wid.x;
    if (s >= p.segments) {
        return;
    }
    if (lid == 0u) {
        state[s] = vec4<u32>(0u, ks[s], 0u, ks[s]);
    }
    for (var b = lid; b < BINS; b += WG) {
        atomicStore(&hist[s * BINS + b], 0u);
    }
}

@compute @workgroup_size(256)
fn histogram(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    let chunk = wid.y * nwg.x + wid.x;
    if (chunk >= p.chunks) {
        return; // uniform per workgroup
    }
    for (var b = lid; b < BINS; b += WG) {
        atomicStore(&local_hist[b], 0u);
    }
    workgroupBarrier();
    let c = chunks[chunk];
    let st = state[c.z];
    if (st.y != 0u) {
        for (var i = c.x + lid; i < c.y; i += WG) {
            let bits = bitcast<u32>(abs(w[i]));
            if (matches(bits, p.pass_, st.x)) {
                atomicAdd(&local_hist[digit(bits, p.pass_)], 1u);
            }
        }
    }
    workgroupBarrier();
    for (var b = lid; b < BINS; b += WG) {
        let n = atomicLoad(&local_hist[b]);
        if (n != 0u) {
            atomicAdd(&hist[c.z * BINS + b], n);
        }
    }
}

@compute @workgroup_size(256)
fn scan(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = wid.y * nwg.x + wid.x;
    if (s >= p.segments) {
        return;
    }
    let st = state[s]; // read by every thread before the one writer below (barriers between)
    let base = s * BINS + lid * PER_THREAD;
    var counts: array<u32, 8>;
    var total = 0u;
    for (var j = 0u; j < PER_THREAD; j++) {
        counts[j] = atomicLoad(&hist[base + j]);
        total += counts[j];
    }
    // Inclusive scan of the per-thread totals (Hillis–Steele).
    scan_buf[lid] = total;
    workgroupBarrier();
    for (var off = 1u; off < WG; off <<= 1u) {
        var v = 0u;
        if (lid >= off) {
            v = scan_buf[lid - off];
        }
        workgroupBarrier();
        scan_buf[lid] += v;
        workgroupBarrier();
    }
    let width = select(11u, 10u, p.pass_ == 2u);
    let excl = scan_buf[lid] - total;
    let krem = st.y;
    if (krem > excl && krem <= excl + total) {
        var before = excl;
        for (var j = 0u; j < PER_THREAD; j++) {
            if (before + counts[j] >= krem) {
                let b = lid * PER_THREAD + j;
                state[s] = vec4<u32>((st.x << width) | b, krem - before, st.z + before, st.w);
                break;
            }
            before += counts[j];
        }
    }
    if (krem == 0u && lid == 0u) {
        state[s] = vec4<u32>(st.x << width, 0u, st.z, st.w);
    }
    for (var j = 0u; j < PER_THREAD; j++) {
        atomicStore(&hist[base + j], 0u);
    }
}

@compute @workgroup_size(256)
fn zero_at_or_below(@builtin(local_invocation_index) lid: u32,
                    @builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let chunk = wid.y * nwg.x + wid.x;
    if (chunk >= p.chunks) {
        return;
    }
    let c = chunks[chunk];
    let st = state[c.z];
    if (st.w == 0u) {
        return;
    }
    let t = bitcast<f32>(st.x);
    for (var i = c.x + lid; i < c.y; i += WG) {
        if (abs(wz[i]) <= t) {
            wz[i] = 0.0;
        }
    }
}
