// Direct convolution (NCHW) for layers with few channels, where im2col's products leave most
// of a 64×64 matmul tile idle (LeNet-5: 1→6 and 6→16 channels). In the forward and dx each
// thread computes eight channels of four consecutive pixels (eight vec4 accumulators); the
// weights the workgroup shares are staged in workgroup memory as vec4 pairs, each read once
// for the four pixels (on software adapters those reads, not the image's, were the cost:
// one pixel per thread ran 3-8× slower). Terms outside the (zero-padded) image read
// element 0 and count as 0, so the four pixels need no branches. In dW each thread sums
// one weight of eight output channels over one image's pixels.
//   direct_forward: y[b, co, oy, ox] = Σ_{ci, ky, kx} W[co, ci, ky, kx]·x[b, ci, iy, ix] (+ bias[co])
//                   with iy = oy·sh + ky − ph, ix = ox·sw + kx − pw; (ci, ky, kx) ascending,
//                   the bias added last. Workgroup y = channel group co0 = 8·y.
//   direct_dx:      dx[b, ci, iy, ix] = Σ_{ky, kx, co} W[co, ci, ky, kx]·dy[b, co, oy, ox]
//                   over the (ky, kx) with iy + ph − ky = oy·sh, ix + pw − kx = ox·sw inside
//                   the output (a gather: no atomics); workgroup y = input channel group.
//   direct_dw:      parts[b, co, r] = Σ_{oy, ox} dy[b, co, oy, ox]·x[b, ci, iy, ix] for the
//                   weight r = (ci·kh + ky)·kw + kx of image b = workgroup y (pixels
//                   ascending); `sum_batch` (conv.wgsl) then adds the images in order.
// The staged weights hold at most KMAX vec4 pairs: K = Cin·kh·kw (forward) or Cout·kh·kw
// (dx); the launcher uses im2col beyond that.

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
    bias: u32, // 1: add `bias` in direct_forward
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> aux: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

const KMAX: u32 = 512u; // = conv_direct.rs KMAX (16 KiB of workgroup storage)
var<workgroup> wlo: array<vec4<f32>, KMAX>;
var<workgroup> whi: array<vec4<f32>, KMAX>;

// W[co, ci, ky, kx] (in `aux`), 0 for a channel past the last.
fn weight(co: u32, ci: u32, r: u32) -> f32 {
    if (co >= p.cout || ci >= p.cin) {
        return 0.0;
    }
    return aux[(co * p.cin + ci) * p.kh * p.kw + r];
}

// dst[(b·count + c)·plane + pix] = v where channel c < count.
fn put(b: u32, c: u32, count: u32, plane: u32, pix: u32, v: f32) {
    if (c < count) {
        dst[(b * count + c) * plane + pix] = v;
    }
}

// Stores channels c0..c0+7 (those below `count`) of one pixel.
fn store8(b: u32, c0: u32, count: u32, plane: u32, pix: u32, lo: vec4<f32>, hi: vec4<f32>) {
    put(b, c0, count, plane, pix, lo.x);
    put(b, c0 + 1u, count, plane, pix, lo.y);
    put(b, c0 + 2u, count, plane, pix, lo.z);
    put(b, c0 + 3u, count, plane, pix, lo.w);
    put(b, c0 + 4u, count, plane, pix, hi.x);
    put(b, c0 + 5u, count, plane, pix, hi.y);
    put(b, c0 + 6u, count, plane, pix, hi.z);
    put(b, c0 + 7u, count, plane, pix, hi.w);
}

// One output pixel's eight channels: the bias (if any) added, stored when the pixel exists.
fn finish(o: u32, co0: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (o >= p.total) {
        return;
    }
    var l = lo;
    var h = hi;
    if (p.bias != 0u) {
        l += vec4<f32>(bias_at(co0), bias_at(co0 + 1u), bias_at(co0 + 2u), bias_at(co0 + 3u));
        h += vec4<f32>(bias_at(co0 + 4u), bias_at(co0 + 5u), bias_at(co0 + 6u), bias_at(co0 + 7u));
    }
    let hwo = p.hout * p.wout;
    store8(o / hwo, co0, p.cout, hwo, o % hwo, l, h);
}

// src = x [N, Cin, H, W], aux = W, dst = y; total = N·Hout·Wout; four consecutive output
// pixels per thread (each staged weight read once for four), total/4 threads;
// workgroups [·, ⌈Cout/8⌉, 1].
@compute @workgroup_size(256)
fn direct_forward(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let khw = p.kh * p.kw;
    let kk = p.cin * khw;
    let co0 = wid.y * 8u;
    for (var r = lid.x; r < kk; r += 256u) {
        let ci = r / khw;
        let q = r % khw;
        wlo[r] = vec4<f32>(weight(co0, ci, q), weight(co0 + 1u, ci, q), weight(co0 + 2u, ci, q), weight(co0 + 3u, ci, q));
        whi[r] = vec4<f32>(weight(co0 + 4u, ci, q), weight(co0 + 5u, ci, q), weight(co0 + 6u, ci, q), weight(co0 + 7u, ci, q));
    }
    workgroupBarrier();
    let hwo = p.hout * p.wout;
    let threads = (p.total + 3u) / 4u;
    let hw = i32(p.h);
    let ww = i32(p.w);
    for (var t = wid.x * 256u + lid.x; t < threads; t += nwg.x * 256u) {
        // Per pixel j: its image's plane, its window's top-left corner, whether it exists.
        let o = vec4<u32>(4u * t) + vec4<u32>(0u, 1u, 2u, 3u);
        let live = o < vec4<u32>(p.total);
        let pix = o % vec4<u32>(hwo);
        let plane = (o / vec4<u32>(hwo)) * vec4<u32>(p.cin * p.h * p.w);
        let y0 = vec4<i32>((pix / vec4<u32>(p.wout)) * p.sh) - vec4<i32>(i32(p.ph));
        let x0 = vec4<i32>((pix % vec4<u32>(p.wout)) * p.sw) - vec4<i32>(i32(p.pw));
        var l0 = vec4<f32>(0.0);
        var h0 = vec4<f32>(0.0);
        var l1 = vec4<f32>(0.0);
        var h1 = vec4<f32>(0.0);
        var l2 = vec4<f32>(0.0);
        var h2 = vec4<f32>(0.0);
        var l3 = vec4<f32>(0.0);
        var h3 = vec4<f32>(0.0);
        for (var ci = 0u; ci < p.cin; ci++) {
            for (var ky = 0u; ky < p.kh; ky++) {
                let iy = y0 + vec4<i32>(i32(ky));
                let row_ok = live & (iy >= vec4<i32>(0)) & (iy < vec4<i32>(hw));
                let row = plane + (vec4<u32>(ci * p.h) + vec4<u32>(iy)) * p.w;
                let r0 = (ci * p.kh + ky) * p.kw;
                for (var kx = 0u; kx < p.kw; kx++) {
                    let ix = x0 + vec4<i32>(i32(kx));
                    let ok = row_ok & (ix >= vec4<i32>(0)) & (ix < vec4<i32>(ww));
                    // Padding and missing pixels read element 0 and then count as 0.
                    let at = select(vec4<u32>(0u), row + vec4<u32>(ix), ok);
                    let v = select(vec4<f32>(0.0), vec4<f32>(src[at.x], src[at.y], src[at.z], src[at.w]), ok);
                    let wl = wlo[r0 + kx];
                    let wh = whi[r0 + kx];
                    l0 = fma(vec4<f32>(v.x), wl, l0);
                    h0 = fma(vec4<f32>(v.x), wh, h0);
                    l1 = fma(vec4<f32>(v.y), wl, l1);
                    h1 = fma(vec4<f32>(v.y), wh, h1);
                    l2 = fma(vec4<f32>(v.z), wl, l2);
                    h2 = fma(vec4<f32>(v.z), wh, h2);
                    l3 = fma(vec4<f32>(v.w), wl, l3);
                    h3 = fma(vec4<f32>(v.w), wh, h3);
                }
            }
        }
        finish(o.x, co0, l0, h0);
        finish(o.y, co0, l1, h1);
        finish(o.z, co0, l2, h2);
        finish(o.w, co0, l3, h3);
    }
}

fn bias_at(co: u32) -> f32 {
    if (co >= p.cout) {
        return 0.0;
    }
    return bias[co];
}

// One input pixel's eight channels, stored when the pixel exists.
fn finish_dx(o: u32, ci0: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (o < p.total) {
        let hw = p.h * p.w;
        store8(o / hw, ci0, p.cin, hw, o % hw, lo, hi);
    }
}

// src = dy [N, Cout, Hout, Wout], aux = W, dst = dx [N, Cin, H, W]; total = N·H·W; four
// consecutive input pixels per thread, total/4 threads; workgroups [·, ⌈Cin/8⌉, 1].
@compute @workgroup_size(256)
fn direct_dx(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let khw = p.kh * p.kw;
    let kk = p.cout * khw;
    let ci0 = wid.y * 8u;
    for (var r = lid.x; r < kk; r += 256u) {
        let co = r / khw;
        let q = r % khw;
        wlo[r] = vec4<f32>(weight(co, ci0, q), weight(co, ci0 + 1u, q), weight(co, ci0 + 2u, q), weight(co, ci0 + 3u, q));
        whi[r] = vec4<f32>(weight(co, ci0 + 4u, q), weight(co, ci0 + 5u, q), weight(co, ci0 + 6u, q), weight(co, ci0 + 7u, q));
    }
    workgroupBarrier();
    let hw = p.h * p.w;
    let hwo = p.hout * p.wout;
    let threads = (p.total + 3u) / 4u;
    let sh = vec4<u32>(p.sh);
    let sw = vec4<u32>(p.sw);
    for (var t = wid.x * 256u + lid.x; t < threads; t += nwg.x * 256u) {
        let o = vec4<u32>(4u * t) + vec4<u32>(0u, 1u, 2u, 3u);
        let live = o < vec4<u32>(p.total);
        let pix = o % vec4<u32>(hw);
        let plane = (o / vec4<u32>(hw)) * vec4<u32>(p.cout * hwo);
        let ty0 = vec4<i32>(pix / vec4<u32>(p.w)) + vec4<i32>(i32(p.ph));
        let tx0 = vec4<i32>(pix % vec4<u32>(p.w)) + vec4<i32>(i32(p.pw));
        var l0 = vec4<f32>(0.0);
        var h0 = vec4<f32>(0.0);
        var l1 = vec4<f32>(0.0);
        var h1 = vec4<f32>(0.0);
        var l2 = vec4<f32>(0.0);
        var h2 = vec4<f32>(0.0);
        var l3 = vec4<f32>(0.0);
        var h3 = vec4<f32>(0.0);
        // (ky, kx) outside, so that the integer divisions (slow in software) are not per term.
        for (var ky = 0u; ky < p.kh; ky++) {
            let ty = vec4<u32>(max(ty0 - vec4<i32>(i32(ky)), vec4<i32>(-1)) + vec4<i32>(1));
            // ty is (iy + ph − ky) + 1, so that 0 marks a row above the output.
            let oy = (ty - vec4<u32>(1u)) / sh;
            let row_ok = live & (ty > vec4<u32>(0u)) & ((ty - vec4<u32>(1u)) % sh == vec4<u32>(0u)) & (oy < vec4<u32>(p.hout));
            let row = plane + oy * p.wout;
            for (var kx = 0u; kx < p.kw; kx++) {
                let tx = vec4<u32>(max(tx0 - vec4<i32>(i32(kx)), vec4<i32>(-1)) + vec4<i32>(1));
                let ox = (tx - vec4<u32>(1u)) / sw;
                let ok = row_ok & (tx > vec4<u32>(0u)) & ((tx - vec4<u32>(1u)) % sw == vec4<u32>(0u)) & (ox < vec4<u32>(p.wout));
                // Terms outside the output read element co·Hout·Wout and then count as 0.
                let at = select(vec4<u32>(0u), row + ox, ok);
                let q = ky * p.kw + kx;
                for (var co = 0u; co < p.cout; co++) {
                    let a = at + vec4<u32>(co * hwo);
                    let v = select(vec4<f32>(0.0), vec4<f32>(src[a.x], src[a.y], src[a.z], src[a.w]), ok);
                    let wl = wlo[co * khw + q];
                    let wh = whi[co * khw + q];
                    l0 = fma(vec4<f32>(v.x), wl, l0);
                    h0 = fma(vec4<f32>(v.x), wh, h0);
                    l1 = fma(vec4<f32>(v.y), wl, l1);
                    h1 = fma(vec4<f32>(v.y), wh, h1);
                    l2 = fma(vec4<f32>(v.z), wl, l2);
                    h2 = fma(vec4<f32>(v.z), wh, h2);
                    l3 = fma(vec4<f32>(v.w), wl, l3);
                    h3 = fma(vec4<f32>(v.w), wh, h3);
                }
            }
        }
        finish_dx(o.x, ci0, l0, h0);
        finish_dx(o.y, ci0, l1, h1);
        finish_dx(o.z, ci0, l2, h2);
        finish_dx(o.w, ci0, l3, h3);
    }
}

// dy[b, co, pix], 0 for a channel past the last.
fn grad_at(b: u32, co: u32, plane: u32, pix: u32) -> f32 {
    if (co >= p.cout) {
        return 0.0;
    }
    return aux[(b * p.cout + co) * plane + pix];
}

// src = x, aux = dy, dst = parts [N, Cout, Cin·kh·kw]; total = ⌈Cout/8⌉·Cin·kh·kw threads
// (weight r, channel group g) per image; 64 threads per workgroup; workgroups [·, N, 1].
@compute @workgroup_size(64)
fn direct_dw(@builtin(global_invocation_id) gid: vec3<u32>) {
    let khw = p.kh * p.kw;
    let kk = p.cin * khw;
    let b = gid.y;
    if (gid.x >= p.total || b >= p.n) {
        return;
    }
    let r = gid.x % kk;
    let co0 = (gid.x / kk) * 8u;
    let ci = r / khw;
    let ky = (r % khw) / p.kw;
    let kx = r % p.kw;
    let hwo = p.hout * p.wout;
    var lo = vec4<f32>(0.0);
    var hi = vec4<f32>(0.0);
    for (var oy = 0u; oy < p.hout; oy++) {
        let iy = i32(oy * p.sh + ky) - i32(p.ph);
        if (iy < 0 || iy >= i32(p.h)) {
            continue;
        }
        let row = ((b * p.cin + ci) * p.h + u32(iy)) * p.w;
        for (var ox = 0u; ox < p.wout; ox++) {
            let ix = i32(ox * p.sw + kx) - i32(p.pw);
            if (ix < 0 || ix >= i32(p.w)) {
                continue;
            }
            let v = vec4<f32>(src[row + u32(ix)]);
            let pix = oy * p.wout + ox;
            lo = fma(v, vec4<f32>(grad_at(b, co0, hwo, pix), grad_at(b, co0 + 1u, hwo, pix), grad_at(b, co0 + 2u, hwo, pix), grad_at(b, co0 + 3u, hwo, pix)), lo);
            hi = fma(v, vec4<f32>(grad_at(b, co0 + 4u, hwo, pix), grad_at(b, co0 + 5u, hwo, pix), grad_at(b, co0 + 6u, hwo, pix), grad_at(b, co0 + 7u, hwo, pix)), hi);
        }
    }
    store8(b, co0, p.cout, kk, r, lo, hi);
}
