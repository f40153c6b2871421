// Normalisation layers, forward and backward.
//
// BatchNorm2d over x [N, C, H, W] (NCHW), affine gamma, beta [C]; per channel c the M = N·H·W
// values x[(n·C + c)·HW + i]. `saved` [2C] holds what the backward needs: mean[c] at c and
// rstd[c] = 1/√(var_biased + eps) at C + c.
//   bn_train:    one workgroup per channel (grid-stride over channels), 256 threads: mean,
//                then biased variance Σ(x − mean)²/M (two passes, for accuracy), both by
//                tree reduction in workgroup memory; writes y, saved, and updates
//                running_mean/var as PyTorch: r = (1 − momentum)·r + momentum·stat, with the
//                UNBIASED variance (·M/(M − 1)) for running_var. PyTorch refuses a
//                training batch with M = 1; here running_var then takes the biased value 0.
//                y = (x − mean)·(gamma·rstd) + beta.
//   bn_eval:     elementwise, y = (x − running_mean)/√(running_var + eps)·gamma + beta.
//   bn_backward: training-mode backward, one workgroup per channel:
//                dbeta = Σ dy, dgamma = Σ dy·xhat, xhat = (x − mean)·rstd,
//                dx = gamma·rstd/M · (M·dy − dbeta − xhat·dgamma).
//   bn_eval_backward: the backward after an eval-mode forward, BatchNorm being the fixed
//                affine map of the running statistics; one workgroup per channel:
//                rstd = 1/√(running_var + eps), xhat = (x − running_mean)·rstd,
//                dx = dy·gamma·rstd, dgamma = Σ dy·xhat, dbeta = Σ dy.
//
// LayerNorm over the last dimension of x [rows, C], affine gamma, beta [C]; `saved` [2·rows]
// holds mean[r] at r and rstd[r] at rows + r.
//   ln_forward:   one 64-thread workgroup per row (grid-stride over rows): mean, biased
//                 variance (two passes), y = xhat·gamma + beta.
//   ln_backward_dx: one workgroup per row, g = dy·gamma:
//                 dx = rstd·(g − mean_j(g) − xhat·mean_j(g·xhat)).
//   ln_backward_params: dgamma[j] = Σ_r dy·xhat, dbeta[j] = Σ_r dy; 16×16 workgroups,
//                 x = 16 adjacent columns, y = 16 lanes striding over rows, then a tree over
//                 the lanes (no float atomics).

// One parameter block for both layers. BatchNorm: n, c, hw = H·W, m = N·H·W. LayerNorm:
// n = rows, c = C (hw, m and momentum unused).
struct Params {
    n: u32,
    c: u32,
    hw: u32,
    m: u32,
    eps: f32,
    momentum: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// Forward bindings (both layers).
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> saved: array<f32>;
@group(0) @binding(6) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(7) var<storage, read_write> running_var: array<f32>;

// Backward bindings (x at 1 and gamma at 2 as above).
@group(0) @binding(8) var<storage, read> dy: array<f32>;
@group(0) @binding(9) var<storage, read> saved_in: array<f32>;
@group(0) @binding(10) var<storage, read_write> dx: array<f32>;
@group(0) @binding(11) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(12) var<storage, read_write> dbeta: array<f32>;

// ---- BatchNorm2d ----------------------------------------------------------------------

var<workgroup> bn_a: array<f32, 256>;
var<workgroup> bn_b: array<f32, 256>;

// Sum of v over the 256 threads; every thread gets the total. Call in uniform control flow.
fn bn_sum(lid: u32, v: f32) -> f32 {
    bn_a[lid] = v;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            bn_a[lid] += bn_a[lid + stride];
        }
        workgroupBarrier();
    }
    let total = bn_a[0];
    workgroupBarrier();
    return total;
}

// Two sums at once (u in the first component, v in the second) over the first `threads`
// threads of the workgroup (a power of two, at most 256); every thread gets the totals.
// Call in uniform control flow.
fn sum2(lid: u32, u: f32, v: f32, threads: u32) -> vec2<f32> {
    bn_a[lid] = u;
    bn_b[lid] = v;
    workgroupBarrier();
    for (var stride = threads / 2u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            bn_a[lid] += bn_a[lid + stride];
            bn_b[lid] += bn_b[lid + stride];
        }
        workgroupBarrier();
    }
    let total = vec2<f32>(bn_a[0], bn_b[0]);
    workgroupBarrier();
    return total;
}

// Index of the j-th value (0 ≤ j < M) of channel c.
fn bn_index(c: u32, j: u32) -> u32 {
    let n = j / p.hw;
    return (n * p.c + c) * p.hw + (j - n * p.hw);
}

@compute @workgroup_size(256)
fn bn_train(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let m = p.m;
    let mf = f32(m);
    for (var c = wid.x; c < p.c; c += nwg.x) {
        var acc = 0.0;
        for (var j = lid; j < m; j += 256u) {
            acc += x[bn_index(c, j)];
        }
        let mean = bn_sum(lid, acc) / mf;
        acc = 0.0;
        for (var j = lid; j < m; j += 256u) {
            let d = x[bn_index(c, j)] - mean;
            acc += d * d;
        }
        let var_b = bn_sum(lid, acc) / mf;
        let rstd = 1.0 / sqrt(var_b + p.eps);
        let scale = gamma[c] * rstd;
        let shift = beta[c];
        for (var j = lid; j < m; j += 256u) {
            let i = bn_index(c, j);
            y[i] = (x[i] - mean) * scale + shift;
        }
        if (lid == 0u) {
            saved[c] = mean;
            saved[p.c + c] = rstd;
            let mo = p.momentum;
            let var_u = var_b * mf / f32(max(m, 2u) - 1u);
            running_mean[c] = (1.0 - mo) * running_mean[c] + mo * mean;
            running_var[c] = (1.0 - mo) * running_var[c] + mo * var_u;
        }
    }
}

@compute @workgroup_size(256)
fn bn_eval(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let total = p.n * p.c * p.hw;
    for (var i = gid.x; i < total; i += nwg.x * 256u) {
        let c = (i / p.hw) % p.c;
        let scale = gamma[c] / sqrt(running_var[c] + p.eps);
        y[i] = (x[i] - running_mean[c]) * scale + beta[c];
    }
}

@compute @workgroup_size(256)
fn bn_backward(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let m = p.m;
    let mf = f32(m);
    for (var c = wid.x; c < p.c; c += nwg.x) {
        let mean = saved_in[c];
        let rstd = saved_in[p.c + c];
        var sum_dy = 0.0;
        var sum_dy_xhat = 0.0;
        for (var j = lid; j < m; j += 256u) {
            let i = bn_index(c, j);
            let g = dy[i];
            sum_dy += g;
            sum_dy_xhat += g * (x[i] - mean) * rstd;
        }
        let sums = sum2(lid, sum_dy, sum_dy_xhat, 256u);
        let k = gamma[c] * rstd / mf;
        for (var j = lid; j < m; j += 256u) {
            let i = bn_index(c, j);
            let xhat = (x[i] - mean) * rstd;
            dx[i] = k * (mf * dy[i] - sums.x - xhat * sums.y);
        }
        if (lid == 0u) {
            dbeta[c] = sums.x;
            dgamma[c] = sums.y;
        }
    }
}

@compute @workgroup_size(256)
fn bn_eval_backward(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    for (var c = wid.x; c < p.c; c += nwg.x) {
        let mean = running_mean[c];
        let rstd = 1.0 / sqrt(running_var[c] + p.eps);
        var sum_dy = 0.0;
        var sum_dy_xhat = 0.0;
        for (var j = lid; j < p.m; j += 256u) {
            let i = bn_index(c, j);
            let g = dy[i];
            sum_dy += g;
            sum_dy_xhat += g * (x[i] - mean) * rstd;
            dx[i] = g * gamma[c] * rstd;
        }
        let sums = sum2(lid, sum_dy, sum_dy_xhat, 256u);
        if (lid == 0u) {
            dbeta[c] = sums.x;
            dgamma[c] = sums.y;
        }
    }
}

// ---- LayerNorm ------------------------------------------------------------------------

@compute @workgroup_size(64)
fn ln_forward(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let c = p.c;
    let cf = f32(c);
    for (var r = wid.x; r < p.n; r += nwg.x) {
        let base = r * c;
        var acc = 0.0;
        for (var j = lid; j < c; j += 64u) {
            acc += x[base + j];
        }
        let mean = sum2(lid, acc, 0.0, 64u).x / cf;
        acc = 0.0;
        for (var j = lid; j < c; j += 64u) {
            let d = x[base + j] - mean;
            acc += d * d;
        }
        let rstd = 1.0 / sqrt(sum2(lid, acc, 0.0, 64u).x / cf + p.eps);
        for (var j = lid; j < c; j += 64u) {
            y[base + j] = (x[base + j] - mean) * rstd * gamma[j] + beta[j];
        }
        if (lid == 0u) {
            saved[r] = mean;
            saved[p.n + r] = rstd;
        }
    }
}

@compute @workgroup_size(64)
fn ln_backward_dx(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let c = p.c;
    let cf = f32(c);
    for (var r = wid.x; r < p.n; r += nwg.x) {
        let base = r * c;
        let mean = saved_in[r];
        let rstd = saved_in[p.n + r];
        var sum_g = 0.0;
        var sum_g_xhat = 0.0;
        for (var j = lid; j < c; j += 64u) {
            let g = dy[base + j] * gamma[j];
            sum_g += g;
            sum_g_xhat += g * (x[base + j] - mean) * rstd;
        }
        let sums = sum2(lid, sum_g, sum_g_xhat, 64u) / cf;
        for (var j = lid; j < c; j += 64u) {
            let g = dy[base + j] * gamma[j];
            let xhat = (x[base + j] - mean) * rstd;
            dx[base + j] = rstd * (g - sums.x - xhat * sums.y);
        }
    }
}

var<workgroup> lnp_a: array<f32, 256>;
var<workgroup> lnp_b: array<f32, 256>;

@compute @workgroup_size(16, 16)
fn ln_backward_params(
    @builtin(local_invocation_id) l: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let c = p.c;
    let slot = l.y * 16u + l.x;
    for (var tile = wid.x; tile * 16u < c; tile += nwg.x) {
        let col = tile * 16u + l.x;
        var sg = 0.0;
        var sb = 0.0;
        if (col < c) {
            for (var r = l.y; r < p.n; r += 16u) {
                let g = dy[r * c + col];
                sg += g * (x[r * c + col] - saved_in[r]) * saved_in[p.n + r];
                sb += g;
            }
        }
        lnp_a[slot] = sg;
        lnp_b[slot] = sb;
        workgroupBarrier();
        for (var stride = 8u; stride > 0u; stride >>= 1u) {
            if (l.y < stride) {
                lnp_a[slot] += lnp_a[slot + stride * 16u];
                lnp_b[slot] += lnp_b[slot + stride * 16u];
            }
            workgroupBarrier();
        }
        if (l.y == 0u && col < c) {
            dgamma[col] = lnp_a[l.x];
            dbeta[col] = lnp_b[l.x];
        }
        workgroupBarrier();
    }
}

// count_batches: counters[offsets[i]] += 1 for i < p.n — the num_batches_tracked entries of
// every BatchNorm of a model, bumped once per training forward (p.n = number of entries;
// the offsets are distinct, one thread each).
@group(0) @binding(13) var<storage, read> offsets: array<u32>;
@group(0) @binding(14) var<storage, read_write> counters: array<f32>;

@compute @workgroup_size(64)
fn count_batches(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x < p.n) {
        counters[offsets[gid.x]] += 1.0;
    }
}
