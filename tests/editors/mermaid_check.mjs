// Parse Mermaid files with mermaid's own parser (in jsdom, as mermaid needs a DOM) and print a
// JSON report: the diagram type of each file, or its parse error.
// Usage: node mermaid_check.mjs NODE_MODULES FILE...
import fs from "fs";
import path from "path";
import { pathToFileURL } from "url";

const [modules, ...files] = process.argv.slice(2);
const { JSDOM } = await import(pathToFileURL(path.join(modules, "jsdom", "lib", "api.js")).href);
const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const mermaidPath = path.join(modules, "mermaid", "dist", "mermaid.core.mjs");
const { default: mermaid } = await import(pathToFileURL(mermaidPath).href);
const report = {};
for (const file of files) {
  try {
    const parsed = await mermaid.parse(fs.readFileSync(file, "utf8"));
    report[file] = { type: parsed.diagramType };
  } catch (error) {
    report[file] = { error: String(error.message || error) };
  }
}
process.stdout.write(JSON.stringify(report));
