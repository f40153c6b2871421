// LeNet-5 training steps with TensorFlow.js in a page of the caller's Chromium, for the side
// by side with varlab's GPU `bench_step` in scripts/bench-browser.mjs (issue 15: the GPU
// executor against TF.js's WebGPU backend on the same adapter; WebGL for reference).
//
// TF.js is not part of the repository. Install it anywhere and pass its node_modules:
//   npm install --prefix /tmp/tfjs @tensorflow/tfjs@4.22.0 @tensorflow/tfjs-backend-webgpu@4.22.0
//   node scripts/bench-browser.mjs lenet5 sgd 128 2 3 --skip-pool --tfjs=/tmp/tfjs/node_modules
// (or TFJS=/tmp/tfjs/node_modules in the environment). Without it the caller prints one line
// and skips this part.
//
// The model is `varlab model lenet5` on MNIST-shaped input: conv 1→6 5×5 pad 2 ('same' on
// 28×28), ReLU, max-pool 2; conv 6→16 5×5, ReLU, max-pool 2; flatten; dense 400→120 ReLU,
// 120→84 ReLU, 84→10; softmax cross-entropy; SGD with momentum 0.9 (varlab's `sgd` preset),
// one synthetic batch (normal images, cycling labels) reused every step, as varlab's
// benchmark does. TF.js lays images out NHWC, its native layout.
import { existsSync } from "node:fs";
import { join } from "node:path";

/** The TF.js bundles under `dir` (a node_modules folder), or null when absent. */
export function tfjsBundles(dir) {
  if (!dir) return null;
  const files = [
    join(dir, "@tensorflow/tfjs/dist/tf.min.js"),
    join(dir, "@tensorflow/tfjs-backend-webgpu/dist/tf-backend-webgpu.min.js"),
  ];
  return files.every(existsSync) ? files : null;
}

/**
 * A page of `browser` at `url` (any page of an http://127.0.0.1 server: WebGPU needs a
 * secure context, which about:blank is not) training LeNet-5 with TF.js on `backend` ("webgpu" or "webgl") at
 * batch `batch`, warmed up (one step). `steps(n)` runs n steps and returns the wall-clock
 * ms per step (the last loss read back, so all the GPU work is counted); `close()`.
 */
export async function tfjsLenet(browser, url, bundles, backend, batch) {
  const page = await browser.newPage();
  await page.goto(url);
  for (const path of bundles) await page.addScriptTag({ path });
  const info = await page.evaluate(async ({ backend, batch }) => {
    const tf = window.tf;
    if (!(await tf.setBackend(backend))) throw new Error(`TF.js backend ${backend} did not start`);
    await tf.ready();
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 6, kernelSize: 5, padding: "same", activation: "relu" }),
        tf.layers.maxPooling2d({ poolSize: 2, strides: 2 }),
        tf.layers.conv2d({ filters: 16, kernelSize: 5, padding: "valid", activation: "relu" }),
        tf.layers.maxPooling2d({ poolSize: 2, strides: 2 }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 120, activation: "relu" }),
        tf.layers.dense({ units: 84, activation: "relu" }),
        tf.layers.dense({ units: 10 }),
      ],
    });
    const x = tf.randomNormal([batch, 28, 28, 1]);
    const y = tf.oneHot(tf.tensor1d(Array.from({ length: batch }, (_, i) => i % 10), "int32"), 10);
    const opt = tf.train.momentum(0.01, 0.9);
    const step = () => opt.minimize(() => tf.losses.softmaxCrossEntropy(y, model.predict(x)), true);
    window.__tfjsSteps = async (n) => {
      const t0 = performance.now();
      let loss = null;
      for (let i = 0; i < n; i++) {
        if (loss) loss.dispose();
        loss = step();
      }
      const value = (await loss.data())[0];
      loss.dispose();
      return { ms: (performance.now() - t0) / n, loss: value };
    };
    await window.__tfjsSteps(1);
    return { backend: tf.getBackend(), params: model.countParams() };
  }, { backend, batch });
  return {
    info,
    steps: (n) => page.evaluate((n) => window.__tfjsSteps(n), n),
    close: () => page.close(),
  };
}
