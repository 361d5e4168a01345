import { startLab, type Lab, type LabOptions } from '@deploykit/testlab';

/** Starts a lab, runs `fn` with it and always stops it (also when `fn` throws); returns what `fn` returned. */
export async function withLab<T>(options: LabOptions, fn: (lab: Lab) => Promise<T>): Promise<T> {
  const lab = await startLab(options);
  try {
    return await fn(lab);
  } finally {
    await lab.down();
  }
}
