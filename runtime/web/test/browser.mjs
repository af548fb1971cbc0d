// Opens the classifier page in headless Chromium, picks a model and then each image through the
// page's file inputs as a user would, and writes the page's results as JSON Lines.
//
//   node browser.mjs SITE_DIR MODEL.onnx IMAGES_DIR OUT.jsonl [SCREENSHOT.png]
import { chromium } from "playwright-core";
import { createServer } from "node:http";
import { readFile, readdir, writeFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";

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
  await page.waitForSelector("body[data-state=ready]", { timeout: 60_000 });
  await page.setInputFiles("#model", model);
  await page.waitForSelector("body[data-state=model-loaded]", { timeout: 60_000 });

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
