import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** Test helper: a temp folder removed by `dispose`, with a way to write files at given modes. */
export interface TempTree {
  readonly root: string;
  /** Writes `content` at `relativePath` (parents created) with `mode`. */
  write(relativePath: string, content: string, mode?: number): Promise<string>;
  dispose(): Promise<void>;
}

/** Creates a temp folder for one test; call dispose in t.after so failures clean up too. */
export async function createTempTree(prefix = 'deploykit-manifest-'): Promise<TempTree> {
  const root = await mkdtemp(join(tmpdir(), prefix));
  return {
    root,
    async write(relativePath, content, mode = 0o644) {
      const path = join(root, relativePath);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, content);
      // chmod after writing: writeFile's mode is filtered by the umask.
      await chmod(path, mode);
      return path;
    },
    dispose: () => rm(root, { recursive: true, force: true }),
  };
}

/** Writes a complete, valid app folder `folder` under the tree with manifest text `manifest`. */
export async function writeAppFolder(tree: TempTree, folder: string, manifest: string): Promise<string> {
  await tree.write(`${folder}/app.yaml`, manifest);
  for (const phase of ['install', 'start', 'stop', 'backup', 'restore']) {
    await tree.write(`${folder}/bin/${phase}`, '#!/bin/sh\nexit 0\n', 0o755);
  }
  return join(tree.root, folder);
}
