// The optimizer step over flat parameter/gradient/momentum buffers, every tensor of a model
// in one dispatch each (src/optim/gpu.rs):
//   update:  per chunk (≤ 4096 elements of one tensor), the tensor's regulariser
//            coefficients from the statistics pass (src/ops/stats.rs), then per element
//              g ← g (+ extra, CrAM+) + regulariser term
//              d ← g + wd·w;  v ← μ·v + d;  d ← d + μ·v (Nesterov) or v;  w ← (w − lr·d)·mask
//            regulariser terms (reg): 1 VAR  −c·(w̃ − m)·w/w̃, c = 2λ/(n(V+ε)²);
//            2 ℓ1  λ·sign(w);  3 Hoyer-square  a·sign(w) − b·w (coefficients in reg.rs).
//   perturb: saved_w ← w; (saved_g ← g); w ← w + s·g with s = ρ/‖g‖ (SAM, 0 when ‖g‖ = 0)
//            or s = ρ (CrAM).
//   restore: w ← saved_w.
//   S²-SAM uses perturb/restore around its only pass with g = the kept gradient of the
//   previous step (binding 2) and its norm; update copies the loss gradient into `kept`.
// Gaps between tensors are outside every chunk of `update` and stay zero under the others
// (their gradients are zero).

// The regulariser codes; optim/gpu.rs `reg_code` writes the same numbers.
const REG_NONE: u32 = 0u;
const REG_VAR: u32 = 1u;
const REG_L1: u32 = 2u;
const REG_HOYER: u32 = 3u;

struct Step {
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    nesterov: u32,
    lambda: f32,
    reg: u32, // REG_NONE, REG_VAR, REG_L1 or REG_HOYER (the codes of optim/gpu.rs)
    chunks: u32,
    use_mask: u32,
    add_extra: u32,
    r: f32,
    eps: f32,
    keep_grad: u32,
}

struct Perturb {
    n: u32,
    rho: f32,
    normalise: u32,
    save_grad: u32,
}

@group(0) @binding(0) var<uniform> p: Step;
@group(0) @binding(1) var<storage, read_write> params: array<f32>;
@group(0) @binding(2) var<storage, read> grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> mom: array<f32>;
// (start, end, statistics slot or NONE, the tensor's length)
@group(0) @binding(4) var<storage, read> chunks: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read> stats: array<f32>;
@group(0) @binding(6) var<storage, read> mask: array<f32>;
@group(0) @binding(7) var<storage, read> extra: array<f32>;
@group(0) @binding(8) var<uniform> q: Perturb;
@group(0) @binding(9) var<storage, read_write> saved_w: array<f32>;
@group(0) @binding(10) var<storage, read_write> saved_g: array<f32>;
@group(0) @binding(11) var<storage, read> norm: array<f32>;
@group(0) @binding(12) var<storage, read_write> kept: array<f32>;

const WG: u32 = 256u;
const NONE: u32 = 0xFFFFFFFFu;

@compute @workgroup_size(256)
fn update(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>) {
    let chunk = wid.y * nwg.x + wid.x;
    if (chunk >= p.chunks) {
        return;
    }
    let c = chunks[chunk];
    // This tensor's regulariser coefficients (all 0 when it is not regularised).
    var cv = 0.0;
    var m = 0.0;
    var a = 0.0;
    var b = 0.0;
    if (c.z != NONE && p.reg != REG_NONE) {
        let sum_smooth = stats[4u * c.z];
        let sum_sq = stats[4u * c.z + 1u];
        let sum_abs = stats[4u * c.z + 2u];
        let n = f32(c.w);
        if (p.reg == REG_VAR) {
            m = sum_smooth / n;
            let v = max(sum_sq / n + p.r - m * m, 0.0);
            cv = 2.0 * p.lambda / (n * (v + p.eps) * (v + p.eps));
        } else if (p.reg == REG_L1) {
            a = p.lambda;
        } else if (p.reg == REG_HOYER && sum_sq > 0.0) {
            a = 2.0 * p.lambda * sum_abs / sum_sq;
            b = a * sum_abs / sum_sq;
        }
    }
    for (var i = c.x + lid; i < c.y; i += WG) {
        let w = params[i];
        var g = grads[i];
        if (p.keep_grad != 0u) {
            kept[i] = g;
        }
        if (p.add_extra != 0u) {
            g += extra[i];
        }
        if (p.reg == REG_VAR) {
            let wt = sqrt(w * w + p.r);
            g -= cv * (wt - m) * w / wt;
        } else if (p.reg != REG_NONE) {
            g += a * sign(w) - b * w;
        }
        var d = g + p.weight_decay * w;
        if (p.momentum != 0.0) {
            let v = p.momentum * mom[i] + d;
            mom[i] = v;
            d = select(v, d + p.momentum * v, p.nesterov != 0u);
        }
        var nw = w - p.lr * d;
        if (p.use_mask != 0u) {
            nw *= mask[i];
        }
        params[i] = nw;
    }
}

@compute @workgroup_size(256)
fn perturb(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    var s = q.rho;
    if (q.normalise != 0u) {
        let g_norm = norm[0];
        s = select(0.0, q.rho / g_norm, g_norm > 0.0);
    }
    for (var i = gid.x; i < q.n; i += nwg.x * WG) {
        let w = params[i];
        let g = grads[i];
        saved_w[i] = w;
        if (q.save_grad != 0u) {
            saved_g[i] = g;
        }
        params[i] = w + s * g;
    }
}

@compute @workgroup_size(256)
fn restore(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < q.n; i += nwg.x * WG) {
        params[i] = saved_w[i];
    }
}
