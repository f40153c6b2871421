#!/usr/bin/env python3
"""Writes tests/fixtures/*.json: inputs, outputs and gradients computed by JAX (CPU, float64),
an independent check of varlab's CPU twins (tests/reference.rs reads these files).

    pip install "jax[cpu]" numpy && python3 scripts/make_fixtures.py

Each layer is written exactly as PyTorch defines it (NCHW, conv weight [out, in, kh, kw],
linear weight [out, in], BatchNorm running stats with momentum and the unbiased variance,
GELU with the tanh approximation). Gradients are of L = Σ dy·y for a random upstream dy.
Inputs are float32 values; JAX computes in float64 so the reference carries no f32 rounding.
"""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)
OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")
rng = np.random.default_rng(2511_14282)


def f32(shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def save(name, **arrays):
    doc = {}
    for k, v in arrays.items():
        a = np.asarray(v)
        if a.dtype.kind == "f":
            a = a.astype(np.float64)
        doc[k] = {"shape": list(a.shape), "data": [float(x) if a.dtype.kind == "f" else int(x) for x in a.ravel()]}
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, f"{name}.json"), "w") as fh:
        json.dump(doc, fh, separators=(",", ":"))
    print(f"wrote {name}.json")


def vjp(fn, dy, *args):
    y, pullback = jax.vjp(fn, *[jnp.asarray(a, jnp.float64) for a in args])
    return (y,) + pullback(jnp.asarray(dy, jnp.float64))


def conv2d(x, w, b, stride, pad):
    y = jax.lax.conv_general_dilated(x, w, (stride, stride), [(pad, pad), (pad, pad)],
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return y + b[None, :, None, None]


def linear_fixture():
    x, w, b = f32((3, 5)), f32((4, 5)), f32((4,))
    dy = f32((3, 4))
    y, dx, dw, db = vjp(lambda x, w, b: x @ w.T + b, dy, x, w, b)
    save("linear", x=x, w=w, b=b, dy=dy, y=y, dx=dx, dw=dw, db=db)


def conv_fixture():
    x, w, b = f32((2, 3, 7, 7)), f32((5, 3, 3, 3), 0.3), f32((5,))
    stride, pad = 2, 1
    y0 = conv2d(jnp.asarray(x, jnp.float64), jnp.asarray(w, jnp.float64), jnp.asarray(b, jnp.float64), stride, pad)
    dy = f32(y0.shape)
    y, dx, dw, db = vjp(lambda x, w, b: conv2d(x, w, b, stride, pad), dy, x, w, b)
    save("conv2d", x=x, w=w, b=b, dy=dy, y=y, dx=dx, dw=dw, db=db, stride=np.array(stride), pad=np.array(pad))


def pool_fixture():
    # A ramp added to random values keeps every max-pool window free of ties.
    x = f32((2, 3, 7, 7)) + np.arange(2 * 3 * 7 * 7, dtype=np.float32).reshape(2, 3, 7, 7) * 1e-3

    def maxpool(x):
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    def avgpool(x):
        return jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 1, 3, 3), (1, 1, 2, 2), "VALID") / 9.0

    dy = f32((2, 3, 3, 3))
    y, dx = vjp(maxpool, dy, x)
    save("maxpool2", x=x, dy=dy, y=y, dx=dx)
    y, dx = vjp(avgpool, dy, x)
    save("avgpool3s2", x=x, dy=dy, y=y, dx=dx)
    dy = f32((2, 3))
    y, dx = vjp(lambda x: x.mean(axis=(2, 3)), dy, x)
    save("global_avgpool", x=x, dy=dy, y=y, dx=dx)


def activation_fixture():
    x = f32((37,), 2.0)
    x[np.abs(x) < 0.05] = 0.5  # keep ReLU away from its kink
    dy = f32((37,))
    y, dx = vjp(jax.nn.relu, dy, x)
    save("relu", x=x, dy=dy, y=y, dx=dx)
    y, dx = vjp(lambda x: jax.nn.gelu(x, approximate=True), dy, x)
    save("gelu_tanh", x=x, dy=dy, y=y, dx=dx)


def batchnorm_fixture():
    n, c, h, w_ = 3, 5, 4, 3
    x, gamma, beta = f32((n, c, h, w_)), f32((c,)), f32((c,))
    rm, rv = f32((c,), 0.1), (1.0 + np.abs(f32((c,), 0.2))).astype(np.float32)
    eps, momentum = 1e-5, 0.1

    def bn(x, g, b):
        mean = x.mean(axis=(0, 2, 3))
        var = x.var(axis=(0, 2, 3))
        xh = (x - mean[None, :, None, None]) / jnp.sqrt(var[None, :, None, None] + eps)
        return g[None, :, None, None] * xh + b[None, :, None, None]

    dy = f32((n, c, h, w_))
    y, dx, dg, db = vjp(bn, dy, x, gamma, beta)
    m = n * h * w_
    xd = x.astype(np.float64)
    new_rm = (1 - momentum) * rm + momentum * xd.mean(axis=(0, 2, 3))
    new_rv = (1 - momentum) * rv + momentum * xd.var(axis=(0, 2, 3)) * m / (m - 1)
    y_eval = gamma[None, :, None, None] * (xd - rm[None, :, None, None]) / np.sqrt(rv[None, :, None, None] + eps) \
        + beta[None, :, None, None]
    save("batchnorm2d", x=x, gamma=gamma, beta=beta, running_mean=rm, running_var=rv, dy=dy, y=y, dx=dx,
         dgamma=dg, dbeta=db, new_running_mean=new_rm, new_running_var=new_rv, y_eval=y_eval,
         eps=np.array(eps), momentum=np.array(momentum))


def layernorm_fixture():
    rows, c = 13, 33
    x, gamma, beta = f32((rows, c)), f32((c,)), f32((c,))
    eps = 1e-5

    def ln(x, g, b):
        mean = x.mean(axis=-1, keepdims=True)
        var = x.var(axis=-1, keepdims=True)
        return g * (x - mean) / jnp.sqrt(var + eps) + b

    dy = f32((rows, c))
    y, dx, dg, db = vjp(ln, dy, x, gamma, beta)
    save("layernorm", x=x, gamma=gamma, beta=beta, dy=dy, y=y, dx=dx, dgamma=dg, dbeta=db, eps=np.array(eps))


def cross_entropy_fixture():
    n, k = 37, 10
    logits = f32((n, k), 3.0)
    labels = rng.integers(0, k, n).astype(np.int64)

    def ce(z):
        logp = jax.nn.log_softmax(z, axis=-1)
        return -jnp.mean(logp[jnp.arange(n), labels])

    loss, grad = jax.value_and_grad(ce)(jnp.asarray(logits, jnp.float64))
    correct = int((np.argmax(logits, axis=-1) == labels).sum())
    save("cross_entropy", logits=logits, labels=labels, loss=np.array(loss), dlogits=grad,
         correct=np.array(correct))


def attention_fixture():
    b, t, c, h = 2, 5, 12, 3
    d = c // h
    x = f32((b, t, c))
    wqkv, bqkv = f32((3 * c, c), 0.3), f32((3 * c,), 0.1)
    wo, bo = f32((c, c), 0.3), f32((c,), 0.1)

    def block(x, wqkv, bqkv, wo, bo):
        qkv = x @ wqkv.T + bqkv
        q, k, v = jnp.split(qkv, 3, axis=-1)
        split = lambda z: z.reshape(b, t, h, d).transpose(0, 2, 1, 3)
        q, k, v = split(q), split(k), split(v)
        p = jax.nn.softmax(q @ k.transpose(0, 1, 3, 2) / np.sqrt(d), axis=-1)
        o = (p @ v).transpose(0, 2, 1, 3).reshape(b, t, c)
        return o @ wo.T + bo

    dy = f32((b, t, c))
    y, dx, dwqkv, dbqkv, dwo, dbo = vjp(block, dy, x, wqkv, bqkv, wo, bo)
    save("attention", x=x, wqkv=wqkv, bqkv=bqkv, wo=wo, bo=bo, heads=np.array(h), dy=dy, y=y, dx=dx,
         dwqkv=dwqkv, dbqkv=dbqkv, dwo=dwo, dbo=dbo)


def patch_embed_fixture():
    n, c, hw, p, e = 2, 3, 12, 4, 8
    x, w, b = f32((n, c, hw, hw)), f32((e, c, p, p), 0.3), f32((e,))

    def embed(x, w, b):
        y = conv2d(x, w, b, p, 0)  # [N, E, H/P, W/P]
        return y.reshape(n, e, -1).transpose(0, 2, 1)  # [N, T, E]

    dy = f32((n, (hw // p) ** 2, e))
    y, dx, dw, db = vjp(embed, dy, x, w, b)
    save("patch_embed", x=x, w=w, b=b, patch=np.array(p), dy=dy, y=y, dx=dx, dw=dw, db=db)


def var_fixture():
    # VAR's ψ for one tensor with many exact zeros, and its gradient (METHODS.md).
    w = f32((257,), 0.05)
    w[::4] = 0.0
    r, eps = 1e-8, 1e-8

    def psi(w):
        wt = jnp.sqrt(w * w + r)
        v = jnp.mean(wt * wt) - jnp.mean(wt) ** 2
        return 1.0 / (jnp.maximum(v, 0.0) + eps)

    val, grad = jax.value_and_grad(psi)(jnp.asarray(w, jnp.float64))
    save("var_psi", w=w, psi=np.array(val), dpsi=grad)


if __name__ == "__main__":
    for make in (linear_fixture, conv_fixture, pool_fixture, activation_fixture, batchnorm_fixture,
                 layernorm_fixture, cross_entropy_fixture, attention_fixture, patch_embed_fixture, var_fixture):
        make()
