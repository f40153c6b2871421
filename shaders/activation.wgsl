// Activations over flat f32 arrays of length n, forward and backward.
//   relu_forward:  y[i]  = max(x[i], 0)
//   relu_backward: dx[i] = dy[i] if x[i] > 0 else 0   (gradient 0 at x = 0, as PyTorch)
//   gelu_forward:  y[i]  = 0.5·x·(1 + tanh(u)),  u = √(2/π)·(x + 0.044715·x³)
//   gelu_backward: dx[i] = dy[i]·(0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²)),
//                  t = tanh(u)
// GELU is the tanh approximation (PyTorch's `approximate='tanh'`). Some drivers evaluate
// tanh through exp(±2u) and return NaN (inf/inf) once |u| passes ~44, so u is clamped to
// ±15 first: tanh(15) = 1 − 1.9e-13 rounds to exactly 1 in f32, so the clamp changes no
// result (an x³ that overflows to ±inf for huge |x| is clamped too). Where t² rounds to 1
// the backward's second term is exactly 0 and is skipped, so 0·inf cannot give NaN there.
// 256 threads per workgroup with grid-stride loops (any n within the workgroup limit).
// Bindings: x (1) is the forward input in both passes; dy (2) only in the backward;
// out (3) is y in the forward and dx in the backward (must not alias x or dy).

struct Params {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const SQRT_2_OVER_PI: f32 = 0.7978845608028654;
const GELU_A: f32 = 0.044715;
const TANH_CLAMP: f32 = 15.0;

fn gelu_tanh(v: f32) -> f32 {
    let u = SQRT_2_OVER_PI * (v + GELU_A * v * v * v);
    return tanh(clamp(u, -TANH_CLAMP, TANH_CLAMP));
}

@compute @workgroup_size(256)
fn relu_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.n; i += nwg.x * 256u) {
        out[i] = max(x[i], 0.0);
    }
}

@compute @workgroup_size(256)
fn relu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.n; i += nwg.x * 256u) {
        out[i] = select(0.0, dy[i], x[i] > 0.0);
    }
}

@compute @workgroup_size(256)
fn gelu_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.n; i += nwg.x * 256u) {
        let v = x[i];
        out[i] = 0.5 * v * (1.0 + gelu_tanh(v));
    }
}

@compute @workgroup_size(256)
fn gelu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.n; i += nwg.x * 256u) {
        let v = x[i];
        let t = gelu_tanh(v);
        let du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_A * v * v);
        let sech2 = 1.0 - t * t;
        let tail = select(0.5 * v * sech2 * du, 0.0, sech2 == 0.0);
        out[i] = dy[i] * (0.5 * (1.0 + t) + tail);
    }
}
