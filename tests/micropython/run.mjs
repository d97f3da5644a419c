// Run a Python file under the real MicroPython (WebAssembly port, pinned in package.json) with the
// portable ikecore modules installed in its filesystem.
//
//   node run.mjs SCRIPT.py [INPUT.json]
//   node run.mjs --serve SCRIPT.py [INPUT.json]
//
// The portable core, every module of firmware/ikecore/protocol/, is copied into
// /lib/ikecore/protocol/ (/lib is on MicroPython's sys.path). The host package's own __init__.py
// is not part of the core, so an empty one stands in for it. INPUT.json, if given, is copied to
// /input.json for the script to read. Exit status: 0 when the script ran to the end, 1 when it
// raised (the Python exception is printed on stderr).
// --serve: after the script ran, each line read from stdin is passed to the script's function
// step(line) and its result (a str) is written as one line to stdout -- a pipe through which a
// CPython test talks to code living inside MicroPython. Ends at end of input.
import fs from "fs";
import path from "path";
import { fileURLToPath } from "url";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const here = path.dirname(fileURLToPath(import.meta.url));
const core = path.resolve(here, "..", "..", "firmware", "ikecore", "protocol");
const args = process.argv.slice(2);
const serve = args[0] === "--serve";
const [script, input] = serve ? args.slice(1) : args;
if (!script) {
  console.error("usage: node run.mjs SCRIPT.py [INPUT.json]");
  process.exit(2);
}

const mp = await loadMicroPython({
  heapsize: 64 * 1024 * 1024,
  pystack: 16 * 1024,
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
});

mp.FS.mkdirTree("/lib/ikecore/protocol");
mp.FS.writeFile("/lib/ikecore/__init__.py", "# stand-in for the host package's init\n");
const installed = [];
for (const file of fs.readdirSync(core).filter((f) => f.endsWith(".py")).sort()) {
  mp.FS.writeFile(`/lib/ikecore/protocol/${file}`, fs.readFileSync(path.join(core, file)));
  if (file !== "__init__.py") installed.push(file.slice(0, -3));
}
if (input) mp.FS.writeFile("/input.json", fs.readFileSync(input));
mp.FS.writeFile("/installed.json", JSON.stringify(installed));

function python(run) {
  try {
    return run();
  } catch (error) {
    if (error.name !== "PythonError") throw error;
    console.error(`MicroPython raised ${error.type}: ${error.message}`);
    process.exit(1);
  }
}

python(() => mp.runPython(fs.readFileSync(script, "utf8")));
if (serve) {
  const step = mp.globals.get("step");
  const readline = await import("readline");
  for await (const line of readline.createInterface({ input: process.stdin })) {
    process.stdout.write(python(() => step(line)) + "\n");
  }
}
