// Softmax cross-entropy over logits [N, K] with u32 labels [N], fused with its gradient and
// with on-GPU metrics.
//   xent_rows:   one 64-thread workgroup per row (grid-stride over rows). With
//                mx = max_j z_j (subtracted for stability) and s = Σ_j exp(z_j − mx):
//                  loss_r = log(s) − (z_label − mx)
//                  dlogits_rj = (exp(z_j − mx)/s − [j = label]) / N   (mean over the batch)
//                  correct_r = 1 if argmax_j z_j = label (ties: the first maximum, as
//                              torch.argmax) else 0
//                rows[r] = loss_r, rows[N + r] = correct_r, rows[2N + r] = counted_r (as f32).
//                A label ≥ K is invalid: its row gets loss NaN (visible in the metrics),
//                correct 0 and a zero gradient. The label IGNORE (0xffffffff) marks a
//                padding row (past the end of a partial last batch): loss 0, correct 0,
//                zero gradient and not counted (counted_r = 0; every other row counts 1).
//   xent_reduce: one 256-thread workgroup: tree sums of rows[0..N] and rows[N..2N];
//                metrics[0] = loss sum, metrics[1] = correct count (f32: exact up to 2^24),
//                metrics[2] = rows counted (N minus the IGNORE rows). With accumulate = 1
//                the three are ADDED to
//                metrics (running totals over steps) instead of written.
//   xent_reset:  metrics[0..3] = 0 (encode it in the same submission as a step, or alone).

struct Params {
    n: u32,
    k: u32,
    accumulate: u32,
    // The bits of a quiet NaN, from the host (a NaN literal is a WGSL creation error).
    nan_bits: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(4) var<storage, read_write> rows: array<f32>;
@group(0) @binding(5) var<storage, read> rows_in: array<f32>;
@group(0) @binding(6) var<storage, read_write> metrics: array<f32>;

var<workgroup> wg_val: array<f32, 64>;
var<workgroup> wg_idx: array<u32, 64>;

// The most negative finite f32, written exactly in hex: Tint refuses a decimal literal
// beyond the f32 range (such as -3.40282347e38) even when it would round to -f32::MAX.
const NEG_MAX: f32 = -0x1.fffffep+127f;

// The label of a padding row (see xent_rows).
const IGNORE: u32 = 0xffffffffu;

@compute @workgroup_size(64)
fn xent_rows(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let k = p.k;
    let inv_n = 1.0 / f32(p.n);
    for (var r = wid.x; r < p.n; r += nwg.x) {
        let base = r * k;
        // Max and first argmax: each thread scans ascending j (strict > keeps the first),
        // then the tree prefers the larger value, or the smaller index on a tie.
        var best = NEG_MAX;
        var best_i = 0xffffffffu;
        for (var j = lid; j < k; j += 64u) {
            let v = logits[base + j];
            if (v > best) {
                best = v;
                best_i = j;
            }
        }
        wg_val[lid] = best;
        wg_idx[lid] = best_i;
        workgroupBarrier();
        for (var stride = 32u; stride > 0u; stride >>= 1u) {
            if (lid < stride) {
                let ov = wg_val[lid + stride];
                let oi = wg_idx[lid + stride];
                let mv = wg_val[lid];
                if (ov > mv || (ov == mv && oi < wg_idx[lid])) {
                    wg_val[lid] = ov;
                    wg_idx[lid] = oi;
                }
            }
            workgroupBarrier();
        }
        let mx = wg_val[0];
        let arg = wg_idx[0];
        workgroupBarrier();
        var acc = 0.0;
        for (var j = lid; j < k; j += 64u) {
            acc += exp(logits[base + j] - mx);
        }
        wg_val[lid] = acc;
        workgroupBarrier();
        for (var stride = 32u; stride > 0u; stride >>= 1u) {
            if (lid < stride) {
                wg_val[lid] += wg_val[lid + stride];
            }
            workgroupBarrier();
        }
        let s = wg_val[0];
        workgroupBarrier();
        let label = labels[r];
        let ignored = label == IGNORE;
        let valid = label < k;
        let inv_s = 1.0 / s;
        for (var j = lid; j < k; j += 64u) {
            let sm = exp(logits[base + j] - mx) * inv_s;
            let g = (sm - select(0.0, 1.0, j == label)) * inv_n;
            dlogits[base + j] = select(0.0, g, valid);
        }
        if (lid == 0u) {
            if (valid) {
                rows[r] = log(s) - (logits[base + label] - mx);
            } else if (ignored) {
                rows[r] = 0.0;
            } else {
                rows[r] = bitcast<f32>(p.nan_bits);
            }
            rows[p.n + r] = select(0.0, 1.0, valid && arg == label);
            rows[2u * p.n + r] = select(1.0, 0.0, ignored);
        }
    }
}

var<workgroup> red_a: array<f32, 256>;
var<workgroup> red_b: array<f32, 256>;
var<workgroup> red_c: array<f32, 256>;

@compute @workgroup_size(256)
fn xent_reduce(@builtin(local_invocation_index) lid: u32) {
    var a = 0.0;
    var b = 0.0;
    var c = 0.0;
    for (var r = lid; r < p.n; r += 256u) {
        a += rows_in[r];
        b += rows_in[p.n + r];
        c += rows_in[2u * p.n + r];
    }
    red_a[lid] = a;
    red_b[lid] = b;
    red_c[lid] = c;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            red_a[lid] += red_a[lid + stride];
            red_b[lid] += red_b[lid + stride];
            red_c[lid] += red_c[lid + stride];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        let count = red_c[0];
        if (p.accumulate != 0u) {
            metrics[0] += red_a[0];
            metrics[1] += red_b[0];
            metrics[2] += count;
        } else {
            metrics[0] = red_a[0];
            metrics[1] = red_b[0];
            metrics[2] = count;
        }
    }
}

@compute @workgroup_size(1)
fn xent_reset() {
    metrics[0] = 0.0;
    metrics[1] = 0.0;
    metrics[2] = 0.0;
}
