// Tiled matrix multiply with transpose flags, batched, optionally split along K:
//   C[b] = alpha * op(A[b]) · op(B[b]) + beta * C[b]
// op(A) is M×K (A stored M×K row-major, or K×M when TRANS_A);
// op(B) is K×N (B stored K×N row-major, or N×K when TRANS_B).
// A workgroup of 16×16 threads computes a 64×64 block of C, each thread a 4×4
// sub-block (rows ty+16i, columns tx+16j, so that stores are coalesced along N) held in four
// vec4 registers (no dynamically indexed private arrays: those spill to slow local memory).
// K is walked in slices of 16 staged through workgroup memory (rows padded to 65 words so
// that the staging stores do not collide in one bank); loads read along the contiguous
// dimension of each operand. Sizes need not be multiples of the tile.
//
// Split-K (splits > 1), for products with few output tiles and a long K (a weight gradient
// summed over thousands of rows): workgroup z = item·splits + split covers K range
// [split·k_chunk, (split+1)·k_chunk) and writes its raw sum to partials[split][item][M][N]
// (bound where C is); `matmul_reduce` then adds the splits in ascending order — the same
// order every run — and applies alpha and beta to C.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    flags: u32, // bit 0: TRANS_A, bit 1: TRANS_B
    stride_a: u32, // elements between consecutive batch items
    stride_b: u32,
    stride_c: u32,
    alpha: f32,
    beta: f32,
    splits: u32,
    k_chunk: u32, // a multiple of 16
    batch: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read> partials: array<f32>;

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;
const STRIDE: u32 = 65u; // padded row of a staged tile

var<workgroup> tile_a: array<f32, 1040>; // [BK][STRIDE], columns 0..BM used
var<workgroup> tile_b: array<f32, 1040>; // [BK][STRIDE], columns 0..BN used

fn load_a(base: u32, row: u32, kk: u32, k_end: u32) -> f32 {
    if (row >= p.m || kk >= k_end) {
        return 0.0;
    }
    if ((p.flags & 1u) != 0u) {
        return a[base + kk * p.m + row];
    }
    return a[base + row * p.k + kk];
}

fn load_b(base: u32, kk: u32, col: u32, k_end: u32) -> f32 {
    if (kk >= k_end || col >= p.n) {
        return 0.0;
    }
    if ((p.flags & 2u) != 0u) {
        return b[base + col * p.k + kk];
    }
    return b[base + kk * p.n + col];
}

// Writes one row of a thread's 4×4 block: columns col, col+16, col+32, col+48.
fn store_row(item: u32, split: u32, row: u32, col: u32, v: vec4<f32>) {
    if (row >= p.m) {
        return;
    }
    store(item, split, row, col, v.x);
    store(item, split, row, col + 16u, v.y);
    store(item, split, row, col + 32u, v.z);
    store(item, split, row, col + 48u, v.w);
}

fn store(item: u32, split: u32, row: u32, col: u32, v: f32) {
    if (col >= p.n) {
        return;
    }
    if (p.splits > 1u) {
        c[((split * p.batch + item) * p.m + row) * p.n + col] = v;
        return;
    }
    let idx = item * p.stride_c + row * p.n + col;
    var out = p.alpha * v;
    if (p.beta != 0.0) {
        out = out + p.beta * c[idx];
    }
    c[idx] = out;
}

@compute @workgroup_size(16, 16, 1)
fn matmul(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let split = wid.z % p.splits;
    let item = wid.z / p.splits;
    let row0 = wid.y * BM;
    let col0 = wid.x * BN;
    let base_a = item * p.stride_a;
    let base_b = item * p.stride_b;
    let tid = lid.y * 16u + lid.x;
    let trans_a = (p.flags & 1u) != 0u;
    let trans_b = (p.flags & 2u) != 0u;
    let k_begin = split * p.k_chunk;
    let k_end = min(p.k, k_begin + p.k_chunk);

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);

    for (var k0 = k_begin; k0 < k_end; k0 += BK) {
        // Stage a BM×BK slice of op(A) and a BK×BN slice of op(B): 1024 values each,
        // four per thread, consecutive threads reading consecutive addresses.
        for (var l = 0u; l < 4u; l++) {
            let e = tid + l * 256u;
            var mi: u32;
            var ka: u32;
            if (trans_a) {
                ka = e / BM;
                mi = e % BM;
            } else {
                mi = e / BK;
                ka = e % BK;
            }
            tile_a[ka * STRIDE + mi] = load_a(base_a, row0 + mi, k0 + ka, k_end);
            var ni: u32;
            var kb: u32;
            if (trans_b) {
                ni = e / BK;
                kb = e % BK;
            } else {
                kb = e / BN;
                ni = e % BN;
            }
            tile_b[kb * STRIDE + ni] = load_b(base_b, k0 + kb, col0 + ni, k_end);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            let ra = kk * STRIDE + lid.y;
            let rb = kk * STRIDE + lid.x;
            let av = vec4<f32>(tile_a[ra], tile_a[ra + 16u], tile_a[ra + 32u], tile_a[ra + 48u]);
            let bv = vec4<f32>(tile_b[rb], tile_b[rb + 16u], tile_b[rb + 32u], tile_b[rb + 48u]);
            acc0 = fma(vec4<f32>(av.x), bv, acc0);
            acc1 = fma(vec4<f32>(av.y), bv, acc1);
            acc2 = fma(vec4<f32>(av.z), bv, acc2);
            acc3 = fma(vec4<f32>(av.w), bv, acc3);
        }
        workgroupBarrier();
    }

    let row = row0 + lid.y;
    let col = col0 + lid.x;
    store_row(item, split, row, col, acc0);
    store_row(item, split, row + 16u, col, acc1);
    store_row(item, split, row + 32u, col, acc2);
    store_row(item, split, row + 48u, col, acc3);
}

// C[i] = alpha · Σ_split partials[split][i] + beta · C[i] over the batch·M·N outputs
// (C is contiguous: stride_c = M·N), splits added in ascending order; 256 threads, grid-stride.
@compute @workgroup_size(256)
fn matmul_reduce(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let total = p.batch * p.m * p.n;
    for (var i = gid.x; i < total; i += nwg.x * 256u) {
        var sum = 0.0;
        for (var s = 0u; s < p.splits; s++) {
            sum += partials[s * total + i];
        }
        var out = p.alpha * sum;
        if (p.beta != 0.0) {
            out = out + p.beta * c[i];
        }
        c[i] = out;
    }
}
