// Convolution helpers (NCHW) around the matmul kernel:
//   im2col:    cols[b, (ci·kh + ky)·kw + kx, oy·Wout + ox]
//                = x[b, ci, oy·sh + ky − ph, ox·sw + kx − pw]   (0 outside the image)
//   col2im:    dx[b, ci, iy, ix] = Σ_{ky, kx} dcols[b, (ci·kh + ky)·kw + kx, oy·Wout + ox]
//                over the (ky, kx) for which iy + ph − ky = oy·sh and ix + pw − kx = ox·sw
//                with 0 ≤ oy < Hout, 0 ≤ ox < Wout — a gather (each input pixel sums the
//                column entries that came from it), so no atomics; ky, kx ascending.
//   sum_batch: out[i] = Σ_b parts[b·total + i], b ascending (the weight gradient summed
//                over the batch).
// 256 threads per workgroup, grid-stride loops over `total` outputs.

struct Params {
    n: u32,
    cin: u32,
    h: u32,
    w: u32,
    cout: u32,
    kh: u32,
    kw: u32,
    sh: u32,
    sw: u32,
    ph: u32,
    pw: u32,
    hout: u32,
    wout: u32,
    total: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

// src = x [N, Cin, H, W], dst = cols [N, Cin·kh·kw, Hout·Wout]; total = N·Cin·kh·kw·Hout·Wout.
@compute @workgroup_size(256)
fn im2col(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let hwo = p.hout * p.wout;
    let kk = p.cin * p.kh * p.kw;
    for (var i = gid.x; i < p.total; i += nwg.x * 256u) {
        let pix = i % hwo;
        let t = i / hwo;
        let r = t % kk;
        let b = t / kk;
        let kx = r % p.kw;
        let ky = (r / p.kw) % p.kh;
        let ci = r / (p.kw * p.kh);
        let oy = pix / p.wout;
        let ox = pix % p.wout;
        let iy = i32(oy * p.sh + ky) - i32(p.ph);
        let ix = i32(ox * p.sw + kx) - i32(p.pw);
        var v = 0.0;
        if (iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w)) {
            v = src[((b * p.cin + ci) * p.h + u32(iy)) * p.w + u32(ix)];
        }
        dst[i] = v;
    }
}

// src = dcols [N, Cin·kh·kw, Hout·Wout], dst = dx [N, Cin, H, W]; total = N·Cin·H·W.
@compute @workgroup_size(256)
fn col2im(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let hwo = p.hout * p.wout;
    let kk = p.cin * p.kh * p.kw;
    for (var i = gid.x; i < p.total; i += nwg.x * 256u) {
        let ix = i % p.w;
        let t = i / p.w;
        let iy = t % p.h;
        let t2 = t / p.h;
        let ci = t2 % p.cin;
        let b = t2 / p.cin;
        var acc = 0.0;
        for (var ky = 0u; ky < p.kh; ky++) {
            let ty = i32(iy + p.ph) - i32(ky);
            if (ty < 0 || (u32(ty) % p.sh) != 0u) {
                continue;
            }
            let oy = u32(ty) / p.sh;
            if (oy >= p.hout) {
                continue;
            }
            for (var kx = 0u; kx < p.kw; kx++) {
                let tx = i32(ix + p.pw) - i32(kx);
                if (tx < 0 || (u32(tx) % p.sw) != 0u) {
                    continue;
                }
                let ox = u32(tx) / p.sw;
                if (ox >= p.wout) {
                    continue;
                }
                let row = (ci * p.kh + ky) * p.kw + kx;
                acc += src[(b * kk + row) * hwo + oy * p.wout + ox];
            }
        }
        dst[i] = acc;
    }
}

// src = parts [N, total], dst = out [total].
@compute @workgroup_size(256)
fn sum_batch(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.total; i += nwg.x * 256u) {
        var acc = 0.0;
        for (var b = 0u; b < p.n; b++) {
            acc += src[b * p.total + i];
        }
        dst[i] = acc;
    }
}
