// The carlang extension: starts `carlang lsp` (setting `carlang.server.command`) for .car files.
"use strict";
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const [command, ...args] = vscode.workspace
    .getConfiguration("carlang")
    .get("server.command", ["carlang", "lsp"]);
  client = new LanguageClient(
    "carlang",
    "carlang language server",
    { command, args },
    {
      documentSelector: [{ scheme: "file", language: "carlang" }],
      synchronize: { fileEvents: vscode.workspace.createFileSystemWatcher("**/{*.car,carlang.toml}") },
    }
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
