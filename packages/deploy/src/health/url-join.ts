/** Joins a URL prefix (e.g. /static/) and a relative file path, escaping each path segment. */
export function joinUrlPath(prefix: string, relative: string): string {
  const base = prefix.endsWith('/') ? prefix : `${prefix}/`;
  return (
    base +
    relative
      .split('/')
      .filter((segment) => segment !== '')
      .map(encodeURIComponent)
      .join('/')
  );
}
