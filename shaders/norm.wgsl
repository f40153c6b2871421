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
//   bn_stats + bn_apply: the same training forward split for channels with many values
//                (few channels, large N·H·W): workgroup (piece s, channel c) of bn_stats
//                sums its piece [s·chunk, (s+1)·chunk) of the channel's M values and the
//                squared deviations from the piece's own mean, writing (sum, M2) to
//                pieces[(c·splits + s)·2]; bn_apply merges the pieces of its channel in
//                ascending order (Chan et al.: M2 = Σ M2_s + n_s·(mean_s − mean)²), every
//                workgroup the same way, then writes y over its piece; piece 0 writes saved
//                and the running statistics. Deterministic (the pieces follow the shape).
//   bn_eval:     elementwise, y = (x − running_mean)/√(running_var + eps)·gamma + beta.
//   bn_backward: training-mode backward, one workgroup per channel:
//                dbeta = Σ dy, dgamma = Σ dy·xhat, xhat = (x − mean)·rstd,
//                dx = gamma·rstd/M · (M·dy − dbeta − xhat·dgamma).
//   bn_backward_sums + bn_backward_apply: the same split: per piece (Σ dy, Σ dy·xhat) into
//                pieces, then every piece's workgroup adds its channel's pieces in
//                ascending order and writes dx over its piece; piece 0 writes dgamma, dbeta.
//   bn_eval_backward: the backward after an eval-mode forward, BatchNorm being the fixed
//                affine map of the running statistics; one workgroup per channel:
//                rstd = 1/√(running_var + eps), xhat = (x − running_mean)·rstd,
//                dx = dy·gamma·rstd, dgamma = Σ dy·xhat, dbeta = Σ dy.
//
// LayerNorm over the last dimension of x [rows, C], affine gamma, beta [C]; `saved` [2·rows]
// holds mean[r] at r and rstd[r] at rows + r.
// Short rows share a workgroup: the 64 threads are 64/lanes row segments of `lanes` threads
// (a power of two chosen by the launcher, fewer for short rows: 16 lanes × 4 rows for
// C = 64), each segment reducing its row with its own tree in workgroup memory.
//   ln_forward:   a segment per row (grid-stride over groups of rows): mean, biased
//                 variance (two passes), y = xhat·gamma + beta.
//   ln_backward_dx: a segment per row, g = dy·gamma:
//                 dx = rstd·(g − mean_j(g) − xhat·mean_j(g·xhat)).
//   ln_backward_params: dgamma[j] = Σ_r dy·xhat, dbeta[j] = Σ_r dy; 16×16 workgroups,
//                 x = 16 adjacent columns, y = 16 lanes striding over the rows of the
//                 workgroup's piece (workgroup y = piece s: rows [s·chunk, (s+1)·chunk)),
//                 then a tree over the lanes (no float atomics). Unsplit (splits = 1) it
//                 writes dgamma, dbeta; split, the pieces [splits, 2C] (dgamma's then
//                 dbeta's), which ln_params_finish adds in ascending order.

// One parameter block for both layers. BatchNorm: n, c, hw = H·W, m = N·H·W. LayerNorm:
// n = rows, c = C (hw, m and momentum unused). splits, chunk: the pieces of a split
// reduction (values per channel for BatchNorm, rows for LayerNorm's dgamma/dbeta); lanes:
// LayerNorm's threads per row.
struct Params {
    n: u32,
    c: u32,
    hw: u32,
    m: u32,
    eps: f32,
    momentum: f32,
    splits: u32,
    chunk: u32,
    lanes: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
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

// Partial sums of a split reduction (bn_stats/bn_apply, bn_backward_sums/_apply,
// ln_backward_params/ln_params_finish).
@group(0) @binding(15) var<storage, read_write> pieces: array<f32>;

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

// The piece [begin, end) of channel values of workgroup piece s.
fn piece_end(s: u32) -> u32 {
    return min(p.m, (s + 1u) * p.chunk);
}

@compute @workgroup_size(256)
fn bn_stats(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let s = wid.x;
    let begin = s * p.chunk;
    let end = piece_end(s);
    let count = f32(end - begin);
    for (var c = wid.y; c < p.c; c += nwg.y) {
        var acc = 0.0;
        for (var j = begin + lid; j < end; j += 256u) {
            acc += x[bn_index(c, j)];
        }
        let sum = bn_sum(lid, acc);
        let mean = sum / count;
        acc = 0.0;
        for (var j = begin + lid; j < end; j += 256u) {
            let d = x[bn_index(c, j)] - mean;
            acc += d * d;
        }
        let m2 = bn_sum(lid, acc);
        if (lid == 0u) {
            let at = (c * p.splits + s) * 2u;
            pieces[at] = sum;
            pieces[at + 1u] = m2;
        }
    }
}

@compute @workgroup_size(256)
fn bn_apply(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let m = p.m;
    let mf = f32(m);
    let s = wid.x;
    let begin = s * p.chunk;
    let end = piece_end(s);
    for (var c = wid.y; c < p.c; c += nwg.y) {
        // Merge the pieces in ascending order (the same in every workgroup).
        var total = 0.0;
        for (var q = 0u; q < p.splits; q++) {
            total += pieces[(c * p.splits + q) * 2u];
        }
        let mean = total / mf;
        var m2 = 0.0;
        for (var q = 0u; q < p.splits; q++) {
            let at = (c * p.splits + q) * 2u;
            let nq = f32(piece_end(q) - q * p.chunk);
            let d = pieces[at] / nq - mean;
            m2 += pieces[at + 1u] + nq * d * d;
        }
        let var_b = m2 / mf;
        let rstd = 1.0 / sqrt(var_b + p.eps);
        let scale = gamma[c] * rstd;
        let shift = beta[c];
        for (var j = begin + lid; j < end; j += 256u) {
            let i = bn_index(c, j);
            y[i] = (x[i] - mean) * scale + shift;
        }
        if (s == 0u && lid == 0u) {
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
fn bn_backward_sums(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let s = wid.x;
    let begin = s * p.chunk;
    let end = piece_end(s);
    for (var c = wid.y; c < p.c; c += nwg.y) {
        let mean = saved_in[c];
        let rstd = saved_in[p.c + c];
        var sum_dy = 0.0;
        var sum_dy_xhat = 0.0;
        for (var j = begin + lid; j < end; j += 256u) {
            let i = bn_index(c, j);
            let g = dy[i];
            sum_dy += g;
            sum_dy_xhat += g * (x[i] - mean) * rstd;
        }
        let sums = sum2(lid, sum_dy, sum_dy_xhat, 256u);
        if (lid == 0u) {
            let at = (c * p.splits + s) * 2u;
            pieces[at] = sums.x;
            pieces[at + 1u] = sums.y;
        }
    }
}

@compute @workgroup_size(256)
fn bn_backward_apply(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let mf = f32(p.m);
    let s = wid.x;
    let begin = s * p.chunk;
    let end = piece_end(s);
    for (var c = wid.y; c < p.c; c += nwg.y) {
        let mean = saved_in[c];
        let rstd = saved_in[p.c + c];
        var sums = vec2<f32>(0.0);
        for (var q = 0u; q < p.splits; q++) {
            let at = (c * p.splits + q) * 2u;
            sums += vec2<f32>(pieces[at], pieces[at + 1u]);
        }
        let k = gamma[c] * rstd / mf;
        for (var j = begin + lid; j < end; j += 256u) {
            let i = bn_index(c, j);
            let xhat = (x[i] - mean) * rstd;
            dx[i] = k * (mf * dy[i] - sums.x - xhat * sums.y);
        }
        if (s == 0u && lid == 0u) {
            dbeta[c] = sums.x;
            dgamma[c] = sums.y;
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

// Two sums over each row segment of `lanes` threads (lane = lid % lanes, a power of two ≤ 64)
// of a 64-thread workgroup; every thread gets its segment's totals. Call in uniform control
// flow.
fn seg_sum2(lid: u32, u: f32, v: f32) -> vec2<f32> {
    let lane = lid % p.lanes;
    bn_a[lid] = u;
    bn_b[lid] = v;
    workgroupBarrier();
    for (var stride = p.lanes / 2u; stride > 0u; stride >>= 1u) {
        if (lane < stride) {
            bn_a[lid] += bn_a[lid + stride];
            bn_b[lid] += bn_b[lid + stride];
        }
        workgroupBarrier();
    }
    let head = lid - lane;
    let total = vec2<f32>(bn_a[head], bn_b[head]);
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(64)
fn ln_forward(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let c = p.c;
    let cf = f32(c);
    let lanes = p.lanes;
    let per_group = 64u / lanes;
    let lane = lid % lanes;
    for (var grp = wid.x; grp * per_group < p.n; grp += nwg.x) {
        let r = grp * per_group + lid / lanes;
        // Threads past the last row take part in the barriers only.
        let width = select(0u, c, r < p.n);
        let base = r * c;
        var acc = 0.0;
        for (var j = lane; j < width; j += lanes) {
            acc += x[base + j];
        }
        let mean = seg_sum2(lid, acc, 0.0).x / cf;
        acc = 0.0;
        for (var j = lane; j < width; j += lanes) {
            let d = x[base + j] - mean;
            acc += d * d;
        }
        let rstd = 1.0 / sqrt(seg_sum2(lid, acc, 0.0).x / cf + p.eps);
        for (var j = lane; j < width; j += lanes) {
            y[base + j] = (x[base + j] - mean) * rstd * gamma[j] + beta[j];
        }
        if (lane == 0u && r < p.n) {
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
    let lanes = p.lanes;
    let per_group = 64u / lanes;
    let lane = lid % lanes;
    for (var grp = wid.x; grp * per_group < p.n; grp += nwg.x) {
        let r = grp * per_group + lid / lanes;
        let live = r < p.n;
        let width = select(0u, c, live);
        let base = r * c;
        var mean = 0.0;
        var rstd = 0.0;
        if (live) {
            mean = saved_in[r];
            rstd = saved_in[p.n + r];
        }
        var sum_g = 0.0;
        var sum_g_xhat = 0.0;
        for (var j = lane; j < width; j += lanes) {
            let g = dy[base + j] * gamma[j];
            sum_g += g;
            sum_g_xhat += g * (x[base + j] - mean) * rstd;
        }
        let sums = seg_sum2(lid, sum_g, sum_g_xhat) / cf;
        for (var j = lane; j < width; j += lanes) {
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
    let s = wid.y;
    let begin = s * p.chunk;
    let end = min(p.n, begin + p.chunk);
    for (var tile = wid.x; tile * 16u < c; tile += nwg.x) {
        let col = tile * 16u + l.x;
        var sg = 0.0;
        var sb = 0.0;
        if (col < c) {
            for (var r = begin + l.y; r < end; r += 16u) {
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
            if (p.splits == 1u) {
                dgamma[col] = lnp_a[l.x];
                dbeta[col] = lnp_b[l.x];
            } else {
                pieces[s * 2u * c + col] = lnp_a[l.x];
                pieces[s * 2u * c + c + col] = lnp_b[l.x];
            }
        }
        workgroupBarrier();
    }
}

// dgamma[j], dbeta[j] = the pieces of ln_backward_params added in ascending order.
@compute @workgroup_size(256)
fn ln_params_finish(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = p.c;
    for (var j = gid.x; j < c; j += nwg.x * 256u) {
        var sg = 0.0;
        var sb = 0.0;
        for (var q = 0u; q < p.splits; q++) {
            sg += pieces[q * 2u * c + j];
            sb += pieces[q * 2u * c + c + j];
        }
        dgamma[j] = sg;
        dbeta[j] = sb;
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
