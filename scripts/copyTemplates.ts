/**
 * The last step of `npm run build:agent`: the built mail/render.js reads its templates
 * from dist/templates/. Node's fs rather than `cp -r`, so that it also runs on Windows.
 */
import { cpSync, rmSync } from 'node:fs';

const target = new URL('../dist/templates/', import.meta.url);
rmSync(target, { recursive: true, force: true });
cpSync(new URL('../templates/', import.meta.url), target, { recursive: true });
