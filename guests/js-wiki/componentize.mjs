// Runs componentize-js: node componentize.mjs APP.js WIT_DIR WORLD OUT.wasm
import { componentize } from '@bytecodealliance/componentize-js';
import { writeFile } from 'node:fs/promises';

const [, , sourcePath, witPath, worldName, out] = process.argv;
const { component } = await componentize({ sourcePath, witPath, worldName });
await writeFile(out, component);
