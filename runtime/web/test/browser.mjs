// Opens the classifier page in headless Chromium, picks a model and then each image through the
// page's file inputs as a user would, and writes the page's results as JSON Lines.
//
//   node browser.mjs SITE_DIR MODEL.onnx IMAGES_DIR OUT.jsonl [SCREENSHOT.png]
//
// With MODEL `-`, the site carries its own model.onnx, which the page must load by itself.
import { chromium } from "playwright-core";
import { createServer } from "node:http";
import { readFile, readdir, writeFile } from "node:fs/promises";
import { basename, extname, join, normalize } from "node:path";

const [site, model, images, out, screenshot] = process.argv.slice(2);
const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm" };

// A static file server, nothing more.
const server = createServer(async (req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname));
  try {
    const body = await readFile(join(site, path === "/" ? "index.html" : path));
    res.writeHead(200, { "content-type": types[extname(path) || ".html"] ?? "application/octet-stream" });
    res.end(body);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const errors = [];
try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => errors.push(String(e)));
  // The page asks for model.onnx first; its 404 is expected when the site carries no model.
  page.on("console", (m) => m.type() === "error" && !m.text().startsWith("Failed to load resource") && errors.push(m.text()));
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  if (model !== "-") {
    await page.waitForSelector("body[data-state=ready]", { timeout: 60_000 });
    // A file that is not a model: the page says so, naming it, and stays usable.
    const notModel = join(images, (await readdir(images)).sort()[0]);
    await page.setInputFiles("#model", notModel);
    await page.waitForSelector("body[data-state=error]", { timeout: 60_000 });
    const status = await page.locator("#status").textContent();
    if (!status.includes(basename(notModel))) throw new Error(`no file name in the page's error: ${status}`);
    console.log(`browser: a PNG picked as the model is refused: ${status}`);
    await page.setInputFiles("#model", model);
  }
  await page.waitForSelector("body[data-state=model-loaded]", { timeout: 60_000 });

  // A file that is not an image: reported, naming it, and the next image still classifies.
  const notImage = model !== "-" ? model : join(site, "model.onnx");
  await page.setInputFiles("#image", notImage);
  await page.waitForFunction(() => document.getElementById("result").textContent !== "", null, { timeout: 60_000 });
  const refused = JSON.parse(await page.locator("#result").textContent());
  if (refused.ok || !refused.error.includes(basename(notImage))) throw new Error(`not refused: ${JSON.stringify(refused)}`);
  console.log(`browser: a model picked as the image is refused: ${refused.error}`);

  const lines = [];
  for (const name of (await readdir(images)).sort()) {
    await page.evaluate(() => { document.getElementById("result").textContent = ""; });
    await page.setInputFiles("#image", join(images, name));
    await page.waitForFunction(() => document.getElementById("result").textContent !== "", null, { timeout: 60_000 });
    lines.push(await page.locator("#result").textContent());
  }
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  await writeFile(out, lines.join("\n") + "\n");
  console.log(`browser: ${lines.length} images classified in ${await page.locator("#model-info").textContent()}`);
} finally {
  await browser.close();
  server.close();
}
if (errors.length) {
  console.error(`page errors:\n${errors.join("\n")}`);
  process.exit(1);
}
