// A static file server for a built site (and, for the comparison, onnxruntime-web's files under
// /ort/) and headless Chromium, for the page's tests.
import { chromium } from "playwright-core";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";

const types = {
  ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript",
  ".wasm": "application/wasm", ".json": "application/json",
};

// Serves `site` at / and each [prefix, folder] of `mounts` under its prefix, on 127.0.0.1;
// `isolated` adds the headers that make the page cross-origin isolated (for wasm threads).
export async function serve(site, mounts = [], { isolated = false } = {}) {
  const isolation = isolated ? { "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp" } : {};
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname));
    const [prefix, root] = mounts.find(([p]) => path.startsWith(p)) ?? ["/", site];
    try {
      const body = await readFile(join(root, path === "/" ? "index.html" : path.slice(prefix.length)));
      res.writeHead(200, { "content-type": types[extname(path) || ".html"] ?? "application/octet-stream", ...isolation });
      res.end(req.method === "HEAD" ? undefined : body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

// The browser's name and version, and the machine's CPU, for reports.
export async function describe(browser) {
  const { cpus } = await import("node:os");
  return { browser: `Chromium ${browser.version()}`, cpu: cpus()[0]?.model ?? "?", cores: cpus().length };
}
