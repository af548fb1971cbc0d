// Runs the WebAssembly classifier off the page's main thread. Messages in: {id, kind: "model",
// bytes, name} loads a model; {id, kind: "classify", bytes, name, topK} classifies one image file.
// Replies: {id, info} (the model's description), {id, row, ms} (the CLI's JSON Lines row and the
// time it took), {id, error} (an error naming the file), or {id, crashed: true, error} when the
// engine panicked: WebAssembly cannot unwind, so this instance is finished and the page starts a
// new worker.
import init, { WebClassifier } from "./pkg/runtime_web.js";

let classifier = null;
let panic = null;
// Called by the module with a panic's message, before the instance traps.
globalThis.runtimePanic = (message) => { panic = message; };
const ready = init();

onmessage = async ({ data }) => {
  const reply = (body) => postMessage({ id: data.id, ...body });
  try {
    await ready;
    if (data.kind === "model") {
      classifier?.free();
      classifier = null;
      classifier = new WebClassifier(data.bytes, data.name);
      const info = JSON.parse(classifier.describe());
      // One run on a blank image: a model that loads but cannot run is refused now, not on every
      // image, and the first image's time is not the engine's first-run set-up.
      classifier.run(new Float32Array(3 * info.height * info.width), 1);
      reply({ info });
    } else if (data.kind === "classify") {
      const started = performance.now();
      const row = classifier.classify(data.bytes, data.name, data.topK);
      reply({ row: JSON.parse(row), ms: performance.now() - started });
    }
  } catch (e) {
    if (panic !== null || e instanceof WebAssembly.RuntimeError) {
      reply({ crashed: true, error: panic ?? String(e) });
    } else {
      reply({ error: String(e?.message ?? e) });
    }
  }
};
