// How long a preset takes on the page in headless Chromium (SwiftShader: the CPU executor),
// the figure behind the first preset's size ("about two minutes").
//
//   node scripts/time-preset.mjs [QUERY]      (default: the bare URL, i.e. the first preset)
//
// Needs `trunk build --release` (dist/). Prints the seconds and the page's verdict sentences.
import { serve, launch, openPage } from "../tests/browser/harness.mjs";

const query = process.argv[2] ?? "";
const server = await serve();
const browser = await launch({ webgpu: true });
try {
  const { page } = await openPage(browser, `${server.url}?${query}`);
  const t0 = Date.now();
  await page.click("#run-btn");
  await page.waitForFunction(() => ["done", "error", "cancelled"].includes(window.__varlab.run), null, { timeout: 1_800_000 });
  const seconds = (Date.now() - t0) / 1000;
  const v = await page.evaluate(() => ({ run: window.__varlab.run, config: window.__varlab.result?.config, verdicts: window.__varlab.result?.verdicts, executor: window.__varlab.result?.environment?.executor }));
  console.log(`query "${query}": ${v.run} in ${seconds.toFixed(1)} s on the ${v.executor} executor`);
  console.log(`config: ${JSON.stringify(v.config)}`);
  for (const s of v.verdicts ?? []) console.log(`verdict: ${s}`);
} finally {
  await browser.close();
  await server.close();
}
