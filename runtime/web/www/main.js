// Loads the WebAssembly classifier, a model (model.onnx beside the page, or one the user picks)
// and classifies the image the user picks. The last result is also left as JSON in #result.
import init, { WebClassifier } from "./pkg/runtime_web.js";

const $ = (id) => document.getElementById(id);
let classifier = null;

function status(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

function loadModel(bytes, name) {
  classifier?.free();
  classifier = null;
  try {
    classifier = new WebClassifier(bytes, name);
  } catch (e) {
    $("image").disabled = true;
    status(String(e.message ?? e), true); // the message names the file
    document.body.dataset.state = "error";
    return;
  }
  const info = JSON.parse(classifier.describe());
  $("model-info").textContent =
    `${info.model}: ${info.width}x${info.height} input, ${info.classes?.length ?? "?"} classes, engine ${info.engine}`;
  $("image").disabled = false;
  status("Choose an image.");
  document.body.dataset.state = "model-loaded";
}

async function classify(file) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  $("preview").src = URL.createObjectURL(file);
  $("preview").style.display = "block";
  const started = performance.now();
  const result = JSON.parse(classifier.classify(bytes, file.name, 5));
  if (result.ok) {
    status(`${file.name}: ${(performance.now() - started).toFixed(1)} ms`);
  } else {
    status(result.error, true); // the message names the file
  }
  $("top").replaceChildren(...(result.top ?? []).map((t) => {
    const row = document.createElement("tr");
    row.innerHTML = `<td></td><td class="bar"><div></div></td><td class="p"></td>`;
    row.cells[0].textContent = t.label;
    row.cells[1].firstChild.style.width = `${(100 * t.probability).toFixed(1)}%`;
    row.cells[2].textContent = `${(100 * t.probability).toFixed(2)} %`;
    return row;
  }));
  $("result").textContent = JSON.stringify(result);
  document.body.dataset.state = "classified";
}

$("model").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  if (file) loadModel(new Uint8Array(await file.arrayBuffer()), file.name);
});
$("image").addEventListener("change", (e) => {
  const file = e.target.files[0];
  if (file && classifier) classify(file);
});

await init();
const response = await fetch("model.onnx").catch(() => null);
if (response?.ok) {
  loadModel(new Uint8Array(await response.arrayBuffer()), "model.onnx");
} else {
  status("Choose a model (.onnx), then an image.");
  document.body.dataset.state = "ready";
}
