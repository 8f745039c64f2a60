// Tokenize .car files with the VS Code TextMate engine (vscode-textmate + vscode-oniguruma) and
// report, as JSON, every non-blank token that has no scope beyond the file's own and every file
// that ends with a scope still open. Usage: node textmate_check.js NODE_MODULES GRAMMAR FILE...
"use strict";
const fs = require("fs");
const path = require("path");
const [modules, grammarPath, ...files] = process.argv.slice(2);
const vsctm = require(path.join(modules, "vscode-textmate"));
const oniguruma = require(path.join(modules, "vscode-oniguruma"));

async function main() {
  const wasm = fs.readFileSync(path.join(modules, "vscode-oniguruma", "release", "onig.wasm")).buffer;
  await oniguruma.loadWASM(wasm);
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (sources) => new oniguruma.OnigScanner(sources),
      createOnigString: (text) => new oniguruma.OnigString(text),
    }),
    loadGrammar: async () =>
      vsctm.parseRawGrammar(fs.readFileSync(grammarPath, "utf8"), grammarPath),
  });
  const grammar = await registry.loadGrammar("source.carlang");
  const report = { files: 0, tokens: 0, unscoped: [], unclosed: [], scopes: {} };
  for (const file of files) {
    report.files += 1;
    let stack = vsctm.INITIAL;
    const lines = fs.readFileSync(file, "utf8").split("\n");
    lines.forEach((line, index) => {
      const result = grammar.tokenizeLine(line, stack);
      for (const token of result.tokens) {
        const text = line.slice(token.startIndex, token.endIndex);
        if (!text.trim()) continue;
        report.tokens += 1;
        const inner = token.scopes[token.scopes.length - 1];
        report.scopes[inner] = (report.scopes[inner] || 0) + 1;
        if (token.scopes.length < 2) {
          report.unscoped.push(`${file}:${index + 1}:${token.startIndex + 1}: ${JSON.stringify(text)}`);
        }
      }
      stack = result.ruleStack;
    });
    if (stack !== vsctm.INITIAL && stack.depth !== 1) report.unclosed.push(`${file} (depth ${stack.depth})`);
  }
  process.stdout.write(JSON.stringify(report));
}
main().catch((error) => {
  process.stderr.write(String(error && error.stack || error));
  process.exit(1);
});
