// Times the page's classifier (tract in WebAssembly) against onnxruntime-web's WebAssembly
// backend in the same headless Chromium, on the same models and the same input tensors (each
// image decoded and prepared once, by the page's own preprocessing), one image a run. Checks that
// the two agree, prints a line per model and writes the figures as JSON.
//
//   node compare.mjs SITE IMAGES_DIR OUT.json MODEL.onnx...
//
// onnxruntime-web runs single-threaded, as the page does, and again with as many threads as the
// machine has cores (its threads need a cross-origin isolated page: the server sends the headers).
import { readdir, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { cpus } from "node:os";
import { serve, launch, describe } from "./serve.mjs";

const [site, images, out, ...models] = process.argv.slice(2);
const here = dirname(fileURLToPath(import.meta.url));
const mounts = [["/ort/", join(here, "node_modules/onnxruntime-web/dist")], ["/compare/", here],
  ["/images/", resolve(images)], ...models.map((m, i) => [`/m${i}/`, dirname(resolve(m))])];
const { server, origin } = await serve(site, mounts, { isolated: true });
const browser = await launch();
const imageUrls = (await readdir(images)).sort().map((f) => `/images/${f}`);
const modelList = models.map((m, i) => ({ url: `/m${i}/${basename(m)}`, name: basename(m) }));

// Runs in the page: both engines on each model, `threads` threads for onnxruntime-web.
async function measure({ modelList, imageUrls, threads }) {
  const { default: init, WebClassifier } = await import("/pkg/runtime_web.js");
  await init();
  const ort = await import("/ort/ort.wasm.min.mjs");
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.wasmPaths = "/ort/";
  const fetchBytes = async (url) => new Uint8Array(await (await fetch(url)).arrayBuffer());
  const images = await Promise.all(imageUrls.map(fetchBytes));
  const results = [];
  for (const m of modelList) {
    const bytes = await fetchBytes(m.url);
    const tract = new WebClassifier(bytes, m.name);
    const d = JSON.parse(tract.describe());
    const inputs = images.map((b, i) => tract.prepare(b, imageUrls[i]));
    const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
    const dims = d.layout === "NHWC" ? [1, d.height, d.width, 3] : [1, 3, d.height, d.width];
    const runOrt = async (x) => {
      const outputs = await session.run({ [session.inputNames[0]]: new ort.Tensor("float32", x, dims) });
      const p = Float32Array.from(outputs[session.outputNames[0]].data);
      if (!d.outputs_probabilities) {
        const top = Math.max(...p);
        let sum = 0;
        for (let i = 0; i < p.length; i++) sum += (p[i] = Math.exp(p[i] - top));
        for (let i = 0; i < p.length; i++) p[i] /= sum;
      }
      return p;
    };
    // Warm-up, and agreement: the same top-1 and probabilities within 1e-4.
    let worst = 0;
    let sameTop = 0;
    for (const x of inputs) {
      const a = tract.run(x, 1);
      const b = await runOrt(x);
      worst = Math.max(worst, ...a.map((v, i) => Math.abs(v - b[i])));
      const argmax = (p) => p.indexOf(Math.max(...p));
      if (argmax(a) === argmax(b)) sameTop += 1;
    }
    // Rounds over all images, the engines taking turns, until each has run for 3 s (3 to 1000 rounds).
    let tractMs = 0, ortMs = 0, rounds = 0;
    while (rounds < 3 || (rounds < 1000 && Math.min(tractMs, ortMs) < 3000)) {
      let t = performance.now();
      for (const x of inputs) tract.run(x, 1);
      tractMs += performance.now() - t;
      t = performance.now();
      for (const x of inputs) await runOrt(x);
      ortMs += performance.now() - t;
      rounds += 1;
    }
    const runs = rounds * inputs.length;
    results.push({
      model: m.name, input: `${d.width}x${d.height}`, images: inputs.length, rounds,
      tract_images_per_s: (1000 * runs) / tractMs, ort_images_per_s: (1000 * runs) / ortMs,
      same_top1: sameTop, max_abs_diff: worst,
    });
    tract.free();
    await session.release();
  }
  return { results, isolated: globalThis.crossOriginIsolated };
}

const report = { ...(await describe(browser)), ort_web: (await import("./node_modules/onnxruntime-web/package.json", { with: { type: "json" } })).default.version, runs: [] };
let failed = false;
try {
  for (const threads of [1, cpus().length]) {
    const page = await browser.newPage();
    await page.goto(`${origin}/compare/compare.html`);
    const { results, isolated } = await page.evaluate(measure, { modelList, imageUrls, threads });
    await page.close();
    for (const r of results) {
      const ratio = r.tract_images_per_s / r.ort_images_per_s;
      console.log(`compare: ${r.model} (${r.input}, ${r.images} images x ${r.rounds} rounds): tract wasm ${r.tract_images_per_s.toFixed(1)} images/s, ` +
        `onnxruntime-web ${report.ort_web} wasm (${threads} thread${threads > 1 ? "s" : ""}${threads > 1 && !isolated ? ", not isolated" : ""}) ${r.ort_images_per_s.toFixed(1)} images/s: ratio ${ratio.toFixed(2)}x; ` +
        `same top-1 on ${r.same_top1}/${r.images}, max abs diff ${r.max_abs_diff.toExponential(1)}`);
      if (r.same_top1 !== r.images || r.max_abs_diff > 1e-4) failed = true;
      report.runs.push({ threads, isolated, ratio, ...r });
    }
  }
} finally {
  await browser.close();
  server.close();
}
await writeFile(out, JSON.stringify(report, null, 1) + "\n");
console.log(`compare: ${report.browser}, ${report.cpu} (${report.cores} cores)`);
if (failed) {
  console.error("compare: the engines disagree");
  process.exit(1);
}
