// Run a Python file under the real MicroPython (WebAssembly port, pinned in package.json) with the
// portable ikecore modules installed in its filesystem.
//
//   node run.mjs SCRIPT.py [INPUT.json]
//
// The portable modules listed in portable-modules.json are copied from firmware/ikecore/ into
// /lib/ikecore/ (on MicroPython's sys.path). The package's own __init__.py is CPython-only (it
// edits sys.path with os.path), so an empty one stands in. INPUT.json, if given, is copied to
// /input.json for the script to read. Exit status: 0 when the script ran to the end, 1 when it
// raised (the Python exception is printed on stderr).
import fs from "fs";
import path from "path";
import { fileURLToPath } from "url";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const here = path.dirname(fileURLToPath(import.meta.url));
const firmware = path.resolve(here, "..", "..", "firmware", "ikecore");
const [script, input] = process.argv.slice(2);
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

const { modules } = JSON.parse(fs.readFileSync(path.join(here, "portable-modules.json"), "utf8"));
mp.FS.mkdirTree("/lib/ikecore");
mp.FS.writeFile("/lib/ikecore/__init__.py", "# portable stand-in for the CPython package init\n");
const installed = [];
for (const name of modules) {
  const file = path.join(firmware, name + ".py");
  if (fs.existsSync(file)) {
    mp.FS.writeFile(`/lib/ikecore/${name}.py`, fs.readFileSync(file));
    installed.push(name);
  }
}
if (input) mp.FS.writeFile("/input.json", fs.readFileSync(input));
mp.FS.writeFile("/installed.json", JSON.stringify(installed));

try {
  mp.runPython(fs.readFileSync(script, "utf8"));
} catch (error) {
  if (error.name !== "PythonError") throw error;
  console.error(`MicroPython raised ${error.type}: ${error.message}`);
  process.exit(1);
}
