// Tiled matrix multiply with transpose flags, batched:
//   C[b] = alpha * op(A[b]) · op(B[b]) + beta * C[b]
// op(A) is M×K (A stored M×K row-major, or K×M when TRANS_A);
// op(B) is K×N (B stored K×N row-major, or N×K when TRANS_B).
// A workgroup of 16×16 threads computes a 64×64 block of C, each thread a 4×4
// sub-block (rows ty+16i, columns tx+16j, so that stores are coalesced along N).
// K is walked in slices of 16 staged through workgroup memory; loads read along the
// contiguous dimension of each operand. Sizes need not be multiples of the tile.

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
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;

var<workgroup> tile_a: array<f32, 1024>; // [BK][BM]
var<workgroup> tile_b: array<f32, 1024>; // [BK][BN]

fn load_a(base: u32, row: u32, kk: u32) -> f32 {
    if (row >= p.m || kk >= p.k) {
        return 0.0;
    }
    if ((p.flags & 1u) != 0u) {
        return a[base + kk * p.m + row];
    }
    return a[base + row * p.k + kk];
}

fn load_b(base: u32, kk: u32, col: u32) -> f32 {
    if (kk >= p.k || col >= p.n) {
        return 0.0;
    }
    if ((p.flags & 2u) != 0u) {
        return b[base + col * p.k + kk];
    }
    return b[base + kk * p.n + col];
}

@compute @workgroup_size(16, 16, 1)
fn matmul(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let row0 = wid.y * BM;
    let col0 = wid.x * BN;
    let base_a = wid.z * p.stride_a;
    let base_b = wid.z * p.stride_b;
    let base_c = wid.z * p.stride_c;
    let tid = lid.y * 16u + lid.x;
    let trans_a = (p.flags & 1u) != 0u;
    let trans_b = (p.flags & 2u) != 0u;

    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = 0.0;
    }

    for (var k0 = 0u; k0 < p.k; k0 += BK) {
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
            tile_a[ka * BM + mi] = load_a(base_a, row0 + mi, k0 + ka);
            var ni: u32;
            var kb: u32;
            if (trans_b) {
                ni = e / BK;
                kb = e % BK;
            } else {
                kb = e / BN;
                ni = e % BN;
            }
            tile_b[kb * BN + ni] = load_b(base_b, k0 + kb, col0 + ni);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            var ar: array<f32, 4>;
            var br: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                ar[i] = tile_a[kk * BM + lid.y + 16u * i];
                br[i] = tile_b[kk * BN + lid.x + 16u * i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] = acc[i * 4u + j] + ar[i] * br[j];
                }
            }
        }
        workgroupBarrier();
    }

    for (var i = 0u; i < 4u; i++) {
        let row = row0 + lid.y + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + lid.x + 16u * j;
            if (row < p.m && col < p.n) {
                let idx = base_c + row * p.n + col;
                var v = p.alpha * acc[i * 4u + j];
                if (p.beta != 0.0) {
                    v = v + p.beta * c[idx];
                }
                c[idx] = v;
            }
        }
    }
}
