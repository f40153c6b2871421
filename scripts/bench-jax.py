#!/usr/bin/env python3
"""Training throughput of varlab's CPU executor next to JAX (XLA:CPU), side by side.

For each model (the MLP 784-300-100-10 and LeNet-5 of `varlab model mlp` / `varlab model
lenet5`, src/nn/models.rs) at batch 128 on synthetic MNIST-shaped data, the script
alternates, round by round in one run:

- JAX: one jitted training step (forward, softmax cross-entropy, backward, SGD with momentum
  0.9 and coupled weight decay 5e-4, i.e. torch.optim.SGD as varlab's `sgd`), parameters and
  momentum donated; `--reps` blocks of `--steps` steps, each timed up to
  `block_until_ready`, and the median block kept;
- varlab: `varlab bench step --model M --optim sgd --batch 128 --executor cpu --steps S
  --rounds REPS` (the release binary; its own warm-up round), its median round.

It prints the images/s of each (median over the rounds) and the ratio varlab / JAX.
Threads: `--threads 1` (default) keeps both to one core: the script pins itself (and so the
varlab processes it starts) to one CPU with `sched_setaffinity` before JAX starts, sets
`MATMUL_NUM_THREADS=1` for varlab and `--xla_cpu_multi_thread_eigen=false` for XLA (the XLA
flag alone still let JAX use 1.7 cores: the "cores used" column checks it).

Setup (not in the repository): python3 -m venv /tmp/jax && /tmp/jax/bin/pip install jax
Run:   cargo build --release --bin varlab
       /tmp/jax/bin/python scripts/bench-jax.py [--rounds 5] [--reps 10] [--steps 5] [--threads 1]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--varlab", default="target/release/varlab", help="the varlab binary")
    p.add_argument("--models", default="mlp,lenet5", help="comma list: mlp, lenet5")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=5, help="steps per timed block")
    p.add_argument("--reps", type=int, default=10, help="timed blocks per round (median)")
    p.add_argument("--rounds", type=int, default=5, help="alternations JAX / varlab")
    p.add_argument("--threads", type=int, default=1, help="threads for both (1 or more)")
    p.add_argument("--json", help="also write the figures to this file")
    return p.parse_args()


ARGS = parse_args()
# XLA sizes its thread pools and reads its flags when the CPU client starts: pin and set them
# before importing jax.
if ARGS.threads == 1:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
    )
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

LR, MOMENTUM, WEIGHT_DECAY = 0.01, 0.9, 5e-4


def uniform(key, shape, fan_in):
    """PyTorch's default init for Linear/Conv2d weights and biases: U(±1/√fan_in)."""
    bound = 1.0 / fan_in**0.5
    return jax.random.uniform(key, shape, jnp.float32, -bound, bound)


def linear(key, n_in, n_out):
    kw, kb = jax.random.split(key)
    return {"w": uniform(kw, (n_in, n_out), n_in), "b": uniform(kb, (n_out,), n_in)}


def conv(key, c_in, c_out, k=5):
    kw, kb = jax.random.split(key)
    fan_in = c_in * k * k
    return {"w": uniform(kw, (k, k, c_in, c_out), fan_in), "b": uniform(kb, (c_out,), fan_in)}


def init(model, key):
    keys = jax.random.split(key, 5)
    if model == "mlp":
        return [linear(keys[0], 784, 300), linear(keys[1], 300, 100), linear(keys[2], 100, 10)]
    return [
        conv(keys[0], 1, 6),
        conv(keys[1], 6, 16),
        linear(keys[2], 400, 120),
        linear(keys[3], 120, 84),
        linear(keys[4], 84, 10),
    ]


def conv2d(x, p, pad):
    y = jax.lax.conv_general_dilated(
        x, p["w"], (1, 1), [(pad, pad), (pad, pad)], dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    return y + p["b"]


def max_pool2(x):
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def forward(model, params, x):
    """x: (batch, 28, 28, 1). The architectures of src/nn/models.rs."""
    if model == "mlp":
        h = x.reshape(x.shape[0], -1)
        h = jax.nn.relu(h @ params[0]["w"] + params[0]["b"])
        h = jax.nn.relu(h @ params[1]["w"] + params[1]["b"])
        return h @ params[2]["w"] + params[2]["b"]
    h = max_pool2(jax.nn.relu(conv2d(x, params[0], 2)))  # 28 → 28 → 14
    h = max_pool2(jax.nn.relu(conv2d(h, params[1], 0)))  # 14 → 10 → 5
    h = h.reshape(h.shape[0], -1)  # 16·5·5 = 400
    h = jax.nn.relu(h @ params[2]["w"] + params[2]["b"])
    h = jax.nn.relu(h @ params[3]["w"] + params[3]["b"])
    return h @ params[4]["w"] + params[4]["b"]


def make_step(model):
    def loss(params, x, y):
        logits = forward(model, params, x)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))

    def step(params, momentum, x, y):
        grads = jax.grad(loss)(params, x, y)
        d = jax.tree.map(lambda g, w: g + WEIGHT_DECAY * w, grads, params)
        momentum = jax.tree.map(lambda v, g: MOMENTUM * v + g, momentum, d)
        params = jax.tree.map(lambda w, v: w - LR * v, params, momentum)
        return params, momentum

    return jax.jit(step, donate_argnums=(0, 1))


class JaxRun:
    """One model's state and jitted step, warmed up (compiled) on construction."""

    def __init__(self, model, batch):
        key = jax.random.PRNGKey(0)
        self.params = init(model, key)
        self.momentum = jax.tree.map(jnp.zeros_like, self.params)
        self.x = jax.random.normal(jax.random.PRNGKey(1), (batch, 28, 28, 1), jnp.float32)
        self.y = jnp.arange(batch, dtype=jnp.int32) % 10
        self.step = make_step(model)
        self.run(2)

    def run(self, steps):
        """Seconds per step over `steps` steps, and the cores used (process CPU time / wall
        time: about 1 when XLA keeps to one thread)."""
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            self.params, self.momentum = self.step(self.params, self.momentum, self.x, self.y)
        jax.block_until_ready(self.params)
        wall = time.perf_counter() - t0
        return wall / steps, (time.process_time() - c0) / wall


def jax_ms_per_step(run):
    """JAX's median ms/step over `--reps` blocks of `--steps` steps, and the cores used."""
    blocks = [run.run(ARGS.steps) for _ in range(ARGS.reps)]
    return 1e3 * statistics.median(b[0] for b in blocks), statistics.median(b[1] for b in blocks)


def varlab_ms_per_step(model, batch, steps):
    """varlab's median ms/step for SGD from one `bench step` run of `--reps` rounds (its own
    warm-up round first)."""
    env = dict(os.environ)
    if ARGS.threads == 1:
        env["MATMUL_NUM_THREADS"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "step.json")
        cmd = [ARGS.varlab, "bench", "step", "--model", model, "--optim", "sgd",
               "--batch", str(batch), "--executor", "cpu", "--steps", str(steps),
               "--rounds", str(ARGS.reps), "--json", out]
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        with open(out) as f:
            return json.load(f)["rows"][0]["ms_per_step"]


def main():
    if not os.path.exists(ARGS.varlab):
        sys.exit(f"{ARGS.varlab} not found: cargo build --release --bin varlab")
    cpus = sorted(os.sched_getaffinity(0))
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, threads {ARGS.threads} "
          f"(CPUs {cpus}), "
          f"batch {ARGS.batch}, {ARGS.rounds} alternations of {ARGS.reps} blocks × {ARGS.steps} steps")
    rows = []
    for model in ARGS.models.split(","):
        run = JaxRun(model, ARGS.batch)
        jax_ms, jax_cores, varlab_ms = [], [], []
        for _ in range(ARGS.rounds):
            ms, cores = jax_ms_per_step(run)
            jax_ms.append(ms)
            jax_cores.append(cores)
            varlab_ms.append(varlab_ms_per_step(model, ARGS.batch, ARGS.steps))
        jm, vm = statistics.median(jax_ms), statistics.median(varlab_ms)
        rows.append({
            "model": model,
            "jax_ms_per_step": jm,
            "varlab_ms_per_step": vm,
            "jax_images_per_s": ARGS.batch / jm * 1e3,
            "varlab_images_per_s": ARGS.batch / vm * 1e3,
            "varlab_over_jax": jm / vm,
            "jax_ms_rounds": jax_ms,
            "varlab_ms_rounds": varlab_ms,
            "jax_cores_used": statistics.median(jax_cores),
        })
    print(f"{'model':<8} {'JAX img/s':>10} {'varlab img/s':>13} {'varlab/JAX':>11}"
          f"   (ms/step: JAX, varlab; medians of the rounds; JAX's cores used)")
    for r in rows:
        print(f"{r['model']:<8} {r['jax_images_per_s']:>10.0f} {r['varlab_images_per_s']:>13.0f}"
              f" {r['varlab_over_jax']:>11.3f}   ({r['jax_ms_per_step']:.2f}, "
              f"{r['varlab_ms_per_step']:.2f}; {r['jax_cores_used']:.2f})")
    if ARGS.json:
        env = {"jax": jax.__version__, "threads": ARGS.threads, "batch": ARGS.batch,
               "steps": ARGS.steps, "reps": ARGS.reps, "rounds": ARGS.rounds}
        with open(ARGS.json, "w") as f:
            json.dump({"rows": rows, "environment": env}, f, indent=2)


if __name__ == "__main__":
    main()
