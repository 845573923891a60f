// Copy the browser libraries installed from the npm lock file into app/static/vendor.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const vendor = join(root, "app", "static", "vendor");
mkdirSync(vendor, { recursive: true });
const files = [
  ["node_modules/socket.io-client/dist/socket.io.min.js", "socket.io.min.js"],
  ["node_modules/socket.io-client/dist/socket.io.min.js.map", "socket.io.min.js.map"],
];
for (const [from, to] of files) copyFileSync(join(root, from), join(vendor, to));
console.log(`copied ${files.length} files to app/static/vendor`);
