// The classifier page: loads a model (one of the site's own, or a file the user picks or drops),
// then classifies every image picked or dropped, one after another in a worker (worker.js), each
// shown with its thumbnail, its three most probable classes and its time. Each result's JSON Lines
// row (as `runtime classify --format jsonl` writes it) is left in its item's data-result.
// document.body.dataset.state says where the page is: loading, ready (no model yet), model-loaded,
// busy (images queued), done, or error (the last model could not be loaded).

const $ = (id) => document.getElementById(id);
const TOP_K = 3;
// What a folder is searched for, as `runtime classify` searches one (runtime::batch::IMAGE_EXTENSIONS).
const IMAGE_FILE = /\.(png|jpe?g|bmp|gif|webp|jfif)$/i;

// The worker that runs the classifier, restarted when the engine panics.
class Engine {
  constructor() {
    this.next = 0;
    this.pending = new Map();
    this.start();
  }

  start() {
    this.worker = new Worker("worker.js", { type: "module" });
    // How many workers the page has started: one, and one more after each engine panic.
    document.body.dataset.workers = String(Number(document.body.dataset.workers ?? 0) + 1);
    this.worker.onmessage = ({ data }) => {
      const done = this.pending.get(data.id);
      this.pending.delete(data.id);
      done?.(data);
    };
    this.worker.onerror = (e) => this.fail(e.message || "the classifier could not start");
  }

  fail(error) {
    for (const done of this.pending.values()) done({ crashed: true, error });
    this.pending.clear();
  }

  restart() {
    this.worker.terminate();
    this.fail("the classifier was restarted");
    this.start();
  }

  request(message, transfer = []) {
    const id = this.next++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.worker.postMessage({ id, ...message }, transfer);
    });
  }
}

const engine = new Engine();
let model = null; // {bytes, name, info} of the model loaded in the worker
let queue = Promise.resolve();
let queued = 0;
const stats = { images: 0, failed: 0, ms: 0, started: 0 };

function setState(state) {
  document.body.dataset.state = state;
}

function status(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

function enableImages(on) {
  for (const id of ["images", "folder"]) $(id).disabled = !on;
}

function showInfo(info) {
  const fmt = (v) => (Array.isArray(v) ? v.map((x) => +x.toFixed(4)).join(", ") : String(v));
  const classes = info.classes ? `${info.classes.length}: ${info.classes.join(", ")}` : `${info.num_classes ?? "?"} (no names in the file)`;
  const rows = [
    ["File", info.model],
    ["Input", `${info.input_name} ${info.input_shape}, ${info.width}×${info.height} pixels, ${info.layout}`],
    ["Preprocessing", `${info.channel_order}, × ${fmt(info.scale)}, − [${fmt(info.mean)}], ÷ [${fmt(info.std)}]${info.outputs_probabilities ? "" : ", softmax on the output"}`],
    ["Classes", classes],
    ["Variant", info.variant ?? "fp32"],
    ["Engine", `${info.engine} (WebAssembly${info.opset ? `, opset ${info.opset}` : ""})`],
  ];
  $("model-info").replaceChildren(...rows.flatMap(([term, value]) => {
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = term;
    dd.textContent = value;
    return [dt, dd];
  }));
}

// Loads a model into the worker. The message of a model that cannot be loaded names its file.
async function loadModel(bytes, name) {
  setState("loading");
  enableImages(false);
  status(`Loading ${name}…`);
  const reply = await engine.request({ kind: "model", bytes, name });
  if (reply.info) {
    model = { bytes, name, info: reply.info };
    showInfo(reply.info);
    enableImages(true);
    status(`${name} is loaded: choose or drop images.`);
    setState("model-loaded");
    return;
  }
  if (reply.crashed) engine.restart();
  model = null;
  $("model-info").replaceChildren();
  status(reply.crashed ? `${name}: the engine cannot run this model (${reply.error})` : reply.error, true);
  setState("error");
}

function newItem(name, file) {
  const item = document.createElement("li");
  const img = document.createElement("img");
  img.alt = `Thumbnail of ${name}`;
  img.src = URL.createObjectURL(file);
  img.onerror = () => img.removeAttribute("src");
  const body = document.createElement("div");
  body.className = "body";
  body.innerHTML = `<div class="name"></div><div class="time">waiting…</div>`;
  body.firstChild.textContent = name;
  item.append(img, body);
  $("results").append(item);
  return item;
}

function showRow(item, row, ms) {
  item.dataset.result = JSON.stringify(row);
  const body = item.querySelector(".body");
  body.querySelector(".time").textContent = ms === null ? "" : `${ms.toFixed(1)} ms`;
  if (!row.ok) {
    const error = document.createElement("p");
    error.className = "error";
    error.textContent = row.error;
    body.append(error);
    return;
  }
  const table = document.createElement("table");
  const caption = document.createElement("caption");
  caption.className = "visually-hidden";
  caption.textContent = `Most probable classes of ${row.path}`;
  table.append(caption);
  for (const t of row.top) {
    const tr = table.insertRow();
    tr.innerHTML = `<td></td><td class="bar" aria-hidden="true"><div></div></td><td class="p"></td>`;
    tr.cells[0].textContent = t.label;
    tr.cells[1].firstChild.style.width = `${(100 * t.probability).toFixed(1)}%`;
    tr.cells[2].textContent = `${(100 * t.probability).toFixed(1)} %`;
  }
  body.append(table);
}

function summary() {
  const done = stats.images;
  if (done === 0) return $("summary").textContent = "";
  const ok = done - stats.failed;
  const wall = (performance.now() - stats.started) / 1000;
  $("summary").textContent = `${done} image${done === 1 ? "" : "s"}: ${ok} classified, ${stats.failed} failed` +
    (ok ? `; mean ${(stats.ms / done).toFixed(1)} ms per image, ${(done / wall).toFixed(1)} images/s` : "") +
    (queued ? `; ${queued} to go` : "");
}

async function classifyOne(file, name, item) {
  let row;
  let ms = null;
  if (!model) {
    row = { path: name, ok: false, error: `${name}: no model is loaded` };
  } else {
    const bytes = new Uint8Array(await file.arrayBuffer());
    const reply = await engine.request({ kind: "classify", bytes, name, topK: TOP_K }, [bytes.buffer]);
    if (reply.row) {
      row = reply.row;
      ms = reply.ms;
      stats.ms += ms;
    } else {
      row = { path: name, ok: false, error: reply.crashed ? `${name}: the engine stopped on this file (${reply.error})` : reply.error };
      if (reply.crashed) {
        // The instance is finished: a new one gets the same model, and the rest go on.
        engine.restart();
        const again = await engine.request({ kind: "model", bytes: model.bytes, name: model.name });
        if (!again.info) model = null;
      }
    }
  }
  stats.images += 1;
  if (!row.ok) stats.failed += 1;
  showRow(item, row, ms);
}

function addImages(files) {
  if (!files.length) return;
  if (queued === 0 && stats.images === 0) stats.started = performance.now();
  $("clear").disabled = false;
  for (const file of files) {
    const name = file.webkitRelativePath || file.relativePath || file.name;
    const item = newItem(name, file);
    queued += 1;
    setState("busy");
    queue = queue.then(() => classifyOne(file, name, item)).finally(() => {
      queued -= 1;
      summary();
      if (queued === 0) setState("done");
    });
  }
  summary();
}

function clearResults() {
  for (const img of $("results").querySelectorAll("img[src]")) URL.revokeObjectURL(img.src);
  $("results").replaceChildren();
  Object.assign(stats, { images: 0, failed: 0, ms: 0, started: performance.now() });
  summary();
  $("clear").disabled = true;
}

// Every file under the dropped items: folders are walked, keeping the image files.
async function droppedFiles(dataTransfer) {
  const entries = [...dataTransfer.items].map((i) => i.webkitGetAsEntry?.()).filter(Boolean);
  if (!entries.length) return [...dataTransfer.files];
  const files = [];
  const walk = async (entry, path) => {
    if (entry.isFile) {
      const file = await new Promise((ok, fail) => entry.file(ok, fail));
      if (!path || IMAGE_FILE.test(file.name)) {
        file.relativePath = path + file.name;
        files.push(file);
      }
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((ok, fail) => reader.readEntries(ok, fail));
        if (!batch.length) break;
        batch.sort((a, b) => a.name.localeCompare(b.name));
        for (const child of batch) await walk(child, `${path}${entry.name}/`);
      }
    }
  };
  for (const entry of entries) await walk(entry, "");
  return files;
}

async function onDrop(e) {
  e.preventDefault();
  $("drop").classList.remove("over");
  const files = await droppedFiles(e.dataTransfer);
  const models = files.filter((f) => /\.onnx$/i.test(f.name));
  if (models.length) await loadModel(new Uint8Array(await models.at(-1).arrayBuffer()), models.at(-1).name);
  const images = files.filter((f) => !/\.onnx$/i.test(f.name));
  if (images.length && !model) status("Load a model first, then drop the images.", true);
  else addImages(images);
}

$("model").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  if (file) await loadModel(new Uint8Array(await file.arrayBuffer()), file.name);
});
$("images").addEventListener("change", (e) => {
  addImages([...e.target.files]);
  e.target.value = "";
});
$("folder").addEventListener("change", (e) => {
  addImages([...e.target.files].filter((f) => IMAGE_FILE.test(f.name))
    .sort((a, b) => a.webkitRelativePath.localeCompare(b.webkitRelativePath)));
  e.target.value = "";
});
$("clear").addEventListener("click", clearResults);
$("bundled").addEventListener("change", (e) => loadBundled(e.target.value));
document.addEventListener("dragover", (e) => {
  e.preventDefault();
  $("drop").classList.add("over");
});
document.addEventListener("dragleave", (e) => {
  if (!e.relatedTarget) $("drop").classList.remove("over");
});
document.addEventListener("drop", onDrop);

async function loadBundled(name) {
  const response = await fetch(name).catch(() => null);
  if (response?.ok) await loadModel(new Uint8Array(await response.arrayBuffer()), name.split("/").pop());
  else {
    status(`${name}: the site could not serve it`, true);
    setState("error");
  }
}

// The site's own models: listed in models.json by build.sh, else a model.onnx put beside the page.
const listed = await fetch("models.json").then((r) => (r.ok ? r.json() : null)).catch(() => null);
const bundled = Array.isArray(listed) ? listed : [];
if (!bundled.length && (await fetch("model.onnx", { method: "HEAD" }).catch(() => null))?.ok) bundled.push("model.onnx");
if (bundled.length) {
  $("bundled").replaceChildren(...bundled.map((path) => new Option(path.split("/").pop(), path)));
  $("bundled-row").hidden = false;
  await loadBundled(bundled[0]);
} else {
  status("Choose a model (.onnx), then images.");
  setState("ready");
}
