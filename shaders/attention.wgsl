// Multi-head self-attention pieces (the products themselves run in matmul.wgsl).
// Shapes: B batch, T tokens, C channels, H heads, D = C / H.
//   split_qkv:        qkv [B, T, 3C] -> q, k, v [B, H, T, D] (columns 0..C of qkv are Q,
//                     C..2C K, 2C..3C V; within each, head h owns columns h*D..(h+1)*D)
//   merge_qkv:        its backward: dq, dk, dv [B, H, T, D] -> dqkv [B, T, 3C]
//   merge_heads:      heads [B, H, T, D] -> tokens [B, T, C]
//   split_heads:      its backward: tokens [B, T, C] -> heads [B, H, T, D]
//   softmax_rows:     x [rows, cols] <- softmax of each row, in place (max subtracted)
//   softmax_backward: dp [rows, cols] <- scale * p * (dp - sum_j dp_j p_j), in place
// The bias addition and bias gradients are linear.wgsl's bias_add / column_sum.
// The permutations use 256 threads and grid-stride loops; the row kernels loop over rows
// with a grid stride of workgroups, so any size stays within the limits.

struct Params {
    batch: u32,
    tokens: u32,
    dim: u32,
    heads: u32,
    head_dim: u32,
    rows: u32,
    cols: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> q: array<f32>;
@group(0) @binding(3) var<storage, read_write> k: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<storage, read_write> heads: array<f32>;
@group(0) @binding(6) var<storage, read_write> tokens: array<f32>;
@group(0) @binding(7) var<storage, read_write> rows_x: array<f32>;
@group(0) @binding(8) var<storage, read> rows_p: array<f32>;

// Index in a [B, H, T, D] tensor of channel `c` (0..C) of token (b, t).
fn head_index(b: u32, t: u32, c: u32) -> u32 {
    let h = c / p.head_dim;
    let d = c % p.head_dim;
    return ((b * p.heads + h) * p.tokens + t) * p.head_dim + d;
}

// Element i of qkv [B, T, 3C]: its index in q, k or v [B, H, T, D] (x), and which of the
// three it belongs to (y: 0, 1, 2).
fn qkv_place(i: u32) -> vec2<u32> {
    let width = 3u * p.dim;
    let j = i % width;
    let bt = i / width;
    return vec2<u32>(head_index(bt / p.tokens, bt % p.tokens, j % p.dim), j / p.dim);
}

@compute @workgroup_size(256)
fn split_qkv(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = p.batch * p.tokens * 3u * p.dim;
    for (var i = gid.x; i < n; i += nwg.x * 256u) {
        let place = qkv_place(i);
        let dst = place.x;
        let which = place.y;
        if (which == 0u) {
            q[dst] = qkv[i];
        } else if (which == 1u) {
            k[dst] = qkv[i];
        } else {
            v[dst] = qkv[i];
        }
    }
}

@compute @workgroup_size(256)
fn merge_qkv(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = p.batch * p.tokens * 3u * p.dim;
    for (var i = gid.x; i < n; i += nwg.x * 256u) {
        let place = qkv_place(i);
        let src = place.x;
        let which = place.y;
        if (which == 0u) {
            qkv[i] = q[src];
        } else if (which == 1u) {
            qkv[i] = k[src];
        } else {
            qkv[i] = v[src];
        }
    }
}

@compute @workgroup_size(256)
fn merge_heads(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = p.batch * p.tokens * p.dim;
    for (var i = gid.x; i < n; i += nwg.x * 256u) {
        let bt = i / p.dim;
        tokens[i] = heads[head_index(bt / p.tokens, bt % p.tokens, i % p.dim)];
    }
}

@compute @workgroup_size(256)
fn split_heads(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = p.batch * p.tokens * p.dim;
    for (var i = gid.x; i < n; i += nwg.x * 256u) {
        let bt = i / p.dim;
        heads[head_index(bt / p.tokens, bt % p.tokens, i % p.dim)] = tokens[i];
    }
}

const ROW_THREADS: u32 = 64u;
var<workgroup> red: array<f32, 64>;

// Tree reduction of red[0..64] (max when `is_max`, else sum); every thread gets the result.
fn reduce_row(lid: u32, value: f32, is_max: bool) -> f32 {
    red[lid] = value;
    workgroupBarrier();
    for (var s = ROW_THREADS / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            if (is_max) {
                red[lid] = max(red[lid], red[lid + s]);
            } else {
                red[lid] = red[lid] + red[lid + s];
            }
        }
        workgroupBarrier();
    }
    let result = red[0];
    workgroupBarrier();
    return result;
}

@compute @workgroup_size(64)
fn softmax_rows(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    for (var r = wid.x; r < p.rows; r += nwg.x) {
        let base = r * p.cols;
        var m = -3.402823e38;
        for (var j = lid; j < p.cols; j += ROW_THREADS) {
            m = max(m, rows_x[base + j]);
        }
        m = reduce_row(lid, m, true);
        var s = 0.0;
        for (var j = lid; j < p.cols; j += ROW_THREADS) {
            s += exp(rows_x[base + j] - m);
        }
        s = reduce_row(lid, s, false);
        for (var j = lid; j < p.cols; j += ROW_THREADS) {
            rows_x[base + j] = exp(rows_x[base + j] - m) / s;
        }
    }
}

@compute @workgroup_size(64)
fn softmax_backward(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    for (var r = wid.x; r < p.rows; r += nwg.x) {
        let base = r * p.cols;
        var s = 0.0;
        for (var j = lid; j < p.cols; j += ROW_THREADS) {
            s += rows_x[base + j] * rows_p[base + j];
        }
        s = reduce_row(lid, s, false);
        for (var j = lid; j < p.cols; j += ROW_THREADS) {
            rows_x[base + j] = p.scale * (rows_p[base + j] * (rows_x[base + j] - s));
        }
    }
}
