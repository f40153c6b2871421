// Pooling over NCHW planes, kernel kh×kw, stride sh×sw, no padding:
// Hout = (H − kh)/sh + 1, Wout = (W − kw)/sw + 1 (floor; trailing rows/columns that no
// window reaches get zero gradient). Global average pooling is avg_pool with kh = H, kw = W.
//   max_pool:          y[o] = max over the window; arg[o] = iy·W + ix of the first maximum
//                      (row-major window order), the index within the plane.
//   max_pool_backward: dx[i] = Σ dy[o] over the windows o that contain pixel i and whose
//                      arg[o] is i — a gather, (oy, ox) ascending, no atomics.
//   avg_pool:          y[o] = (Σ window) / (kh·kw).
//   avg_pool_backward: dx[i] = (Σ dy[o] over the windows o containing i) / (kh·kw).
// 256 threads per workgroup, grid-stride loops over `total` outputs.

struct Params {
    planes: u32, // N·C
    h: u32,
    w: u32,
    kh: u32,
    kw: u32,
    sh: u32,
    sw: u32,
    hout: u32,
    wout: u32,
    total: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<storage, read_write> arg: array<u32>;

// src = x [planes, H, W], dst = y [planes, Hout, Wout], arg = argmax [planes, Hout, Wout].
@compute @workgroup_size(256)
fn max_pool(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let hwo = p.hout * p.wout;
    for (var i = gid.x; i < p.total; i += nwg.x * 256u) {
        let plane = i / hwo;
        let pix = i % hwo;
        let y0 = (pix / p.wout) * p.sh;
        let x0 = (pix % p.wout) * p.sw;
        let base = plane * p.h * p.w;
        var best_at = y0 * p.w + x0;
        var best = src[base + best_at];
        for (var ky = 0u; ky < p.kh; ky++) {
            for (var kx = 0u; kx < p.kw; kx++) {
                let at = (y0 + ky) * p.w + x0 + kx;
                let v = src[base + at];
                if (v > best) {
                    best = v;
                    best_at = at;
                }
            }
        }
        dst[i] = best;
        arg[i] = best_at;
    }
}

// First and last window index (inclusive) along one dimension containing input i;
// empty when first > last.
fn window_range(i: u32, k: u32, s: u32, count: u32) -> vec2<u32> {
    var first = 0u;
    if (i + 1u > k) {
        first = (i + 1u - k + s - 1u) / s;
    }
    let last = min(i / s, count - 1u);
    return vec2<u32>(first, last);
}

// src = dy [planes, Hout, Wout], arg = argmax, dst = dx [planes, H, W].
@compute @workgroup_size(256)
fn max_pool_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let hwo = p.hout * p.wout;
    for (var i = gid.x; i < p.total; i += nwg.x * 256u) {
        let plane = i / (p.h * p.w);
        let at = i % (p.h * p.w);
        let ry = window_range(at / p.w, p.kh, p.sh, p.hout);
        let rx = window_range(at % p.w, p.kw, p.sw, p.wout);
        var acc = 0.0;
        for (var oy = ry.x; oy <= ry.y; oy++) {
            for (var ox = rx.x; ox <= rx.y; ox++) {
                let o = plane * hwo + oy * p.wout + ox;
                if (arg[o] == at) {
                    acc += src[o];
                }
            }
        }
        dst[i] = acc;
    }
}

// src = x [planes, H, W], dst = y [planes, Hout, Wout].
@compute @workgroup_size(256)
fn avg_pool(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let hwo = p.hout * p.wout;
    for (var i = gid.x; i < p.total; i += nwg.x * 256u) {
        let plane = i / hwo;
        let pix = i % hwo;
        let y0 = (pix / p.wout) * p.sh;
        let x0 = (pix % p.wout) * p.sw;
        let base = plane * p.h * p.w;
        var acc = 0.0;
        for (var ky = 0u; ky < p.kh; ky++) {
            for (var kx = 0u; kx < p.kw; kx++) {
                acc += src[base + (y0 + ky) * p.w + x0 + kx];
            }
        }
        dst[i] = acc / f32(p.kh * p.kw);
    }
}

// src = dy [planes, Hout, Wout], dst = dx [planes, H, W].
@compute @workgroup_size(256)
fn avg_pool_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let hwo = p.hout * p.wout;
    for (var i = gid.x; i < p.total; i += nwg.x * 256u) {
        let plane = i / (p.h * p.w);
        let at = i % (p.h * p.w);
        let ry = window_range(at / p.w, p.kh, p.sh, p.hout);
        let rx = window_range(at % p.w, p.kw, p.sw, p.wout);
        var acc = 0.0;
        for (var oy = ry.x; oy <= ry.y; oy++) {
            for (var ox = rx.x; ox <= rx.y; ox++) {
                acc += src[plane * hwo + oy * p.wout + ox];
            }
        }
        dst[i] = acc / f32(p.kh * p.kw);
    }
}
