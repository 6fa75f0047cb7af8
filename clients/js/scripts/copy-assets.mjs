// Copies non-TypeScript assets (the components' CSS) next to the compiled output.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";

for (const [from, to] of [["src/react/styles.css", "dist/react/styles.css"]]) {
  mkdirSync(dirname(to), { recursive: true });
  copyFileSync(from, to);
}
