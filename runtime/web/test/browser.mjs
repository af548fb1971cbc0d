// Opens the classifier page in headless Chromium and uses it as a person would: refuses files
// that are not models (naming them), loads a model (picked through the file input, or one the site
// carries, chosen in its list), checks what the page says about it, then picks every image of a
// folder at once, with broken files among them, and writes the page's rows as JSON Lines.
//
//   node browser.mjs SITE IMAGES_DIR OUT.jsonl [--model M.onnx | --bundled NAME]
//        [--not-model FILE]... [--broken FILE]... [--by files|folder|drop] [--screenshot OUT.png]
//
// --model picks M.onnx through the page's file input after each --not-model file has been
// refused; without it, the page must load the site's first model by itself (or NAME, chosen in
// the site's list). Each --broken file is picked with the images and must get an error naming
// it, while the others classify. OUT.jsonl holds the rows of IMAGES_DIR's files. --by says how
// the images reach the page: picked as files (the default), picked as a folder, or dropped on it.
import { parseArgs } from "node:util";
import { readdir, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { serve, launch } from "./serve.mjs";

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    model: { type: "string" }, bundled: { type: "string" }, screenshot: { type: "string" },
    by: { type: "string", default: "files" },
    "not-model": { type: "string", multiple: true, default: [] },
    broken: { type: "string", multiple: true, default: [] },
  },
});
const [site, images, out] = positionals;
const { server, origin } = await serve(site);
const browser = await launch();
const errors = [];
const foreign = [];
const state = (s) => `document.body.dataset.state === ${JSON.stringify(s)}`;
try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => errors.push(String(e)));
  // The page asks for models.json and model.onnx; their 404 is expected when the site carries none.
  page.on("console", (m) => m.type() === "error" && !m.text().startsWith("Failed to load resource") && errors.push(m.text()));
  // Nothing may leave the machine: every request goes to the page's own server.
  page.on("request", (r) => { if (!/^(blob|data):/.test(r.url()) && !r.url().startsWith(origin)) foreign.push(r.url()); });
  await page.goto(`${origin}/`);
  const status = () => page.locator("#status").textContent();

  if (opt.model) {
    await page.waitForFunction(state("ready"), null, { timeout: 60_000 });
    for (const bad of opt["not-model"]) {
      // The state the page is left in by the file before must not pass for this one's.
      await page.evaluate(() => { document.body.dataset.state = "picking"; });
      await page.setInputFiles("#model", bad);
      await page.waitForFunction(state("error"), null, { timeout: 60_000 });
      if (await page.locator("#status.error").count() !== 1) throw new Error("the refusal is not shown as an error");
      const text = await status();
      // A panic ends the worker's WebAssembly instance: the page must have started a new one.
      const workers = await page.evaluate(() => Number(document.body.dataset.workers));
      if (text.includes("panicked") && workers < 2) throw new Error(`the engine panicked and the page kept its worker: ${text}`);
      if (!text.includes(basename(bad))) throw new Error(`no file name in the page's error: ${text}`);
      console.log(`browser: ${basename(bad)} picked as the model is refused: ${text}`);
    }
    await page.setInputFiles("#model", opt.model);
  } else if (opt.bundled) {
    await page.waitForFunction(state("model-loaded"), null, { timeout: 60_000 });
    await page.selectOption("#bundled", { label: opt.bundled });
  }
  const name = opt.model ? basename(opt.model) : opt.bundled;
  await page.waitForFunction(([s, n]) => document.body.dataset.state === s
    && (!n || document.getElementById("model-info").textContent.includes(n)), ["model-loaded", name], { timeout: 120_000 });
  const info = await page.locator("#model-info").textContent();
  for (const part of ["Input", "Preprocessing", "Classes", "Variant", "tract"]) {
    if (!info.includes(part)) throw new Error(`the model's description lacks ${part}: ${info}`);
  }

  // Every control has a label a screen reader reads.
  const unlabelled = await page.$$eval("input, select, button", (els) =>
    els.filter((e) => !(e.labels?.length || e.textContent.trim() || e.getAttribute("aria-label"))).map((e) => e.id));
  if (unlabelled.length) throw new Error(`controls without a label: ${unlabelled}`);

  const files = (await readdir(images)).sort().map((f) => join(images, f));
  const picked = [...files, ...opt.broken];
  if (opt.by === "folder") {
    if (opt.broken.length) throw new Error("--broken files go with --by files or drop");
    await page.setInputFiles("#folder", images);
  } else if (opt.by === "drop") {
    // A drop of the files on the page, as from a file manager.
    const { readFile } = await import("node:fs/promises");
    const payload = await Promise.all(picked.map(async (f) => ({ name: basename(f), bytes: [...await readFile(f)] })));
    const transfer = await page.evaluateHandle((items) => {
      const dt = new DataTransfer();
      for (const { name, bytes } of items) dt.items.add(new File([new Uint8Array(bytes)], name));
      return dt;
    }, payload);
    await page.dispatchEvent("#drop", "drop", { dataTransfer: transfer });
  } else {
    await page.setInputFiles("#images", picked);
  }
  await page.waitForFunction(state("done"), null, { timeout: 600_000 });
  const rows = await page.$$eval("#results li", (items) => items.map((li) => li.dataset.result));
  if (rows.length !== files.length + opt.broken.length) throw new Error(`${rows.length} results for ${files.length + opt.broken.length} files`);
  const parsed = rows.map((r) => JSON.parse(r));
  for (const [i, bad] of opt.broken.entries()) {
    const row = parsed[files.length + i];
    if (row.ok || !row.error.includes(basename(bad))) throw new Error(`not refused: ${JSON.stringify(row)}`);
    console.log(`browser: ${basename(bad)} among the images gets its own error: ${row.error}`);
  }
  const alts = await page.$$eval("#results img", (imgs) => imgs.filter((i) => !i.alt).length);
  if (alts) throw new Error(`${alts} thumbnails without alt text`);
  const summary = await page.locator("#summary").textContent();
  if (!summary.startsWith(`${rows.length} images`)) throw new Error(`summary: ${summary}`);
  if (opt.screenshot) await page.screenshot({ path: opt.screenshot, fullPage: true });
  await writeFile(out, rows.slice(0, files.length).join("\n") + "\n");
  console.log(`browser: ${summary} (${name ?? "the site's model"})`);
} finally {
  await browser.close();
  server.close();
}
if (foreign.length) errors.push(`requests beyond the page's server: ${foreign.join(", ")}`);
if (errors.length) {
  console.error(`page errors:\n${errors.join("\n")}`);
  process.exit(1);
}
