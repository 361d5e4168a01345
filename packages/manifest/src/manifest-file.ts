/** The manifest's file name inside an app folder. */
export const MANIFEST_FILE = 'app.yaml';
