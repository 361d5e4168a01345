/** A fetched page: status, body text and headers. */
export interface FetchedPage {
  readonly status: number;
  readonly body: string;
  readonly headers: Headers;
}

/** Fetches a URL with a timeout; network errors come back as a message, never thrown. */
export async function fetchPage(
  url: string,
  init: RequestInit & { timeoutMs: number },
): Promise<FetchedPage | { error: string }> {
  try {
    const response = await fetch(url, { ...init, signal: AbortSignal.timeout(init.timeoutMs), redirect: 'manual' });
    return { status: response.status, body: await response.text(), headers: response.headers };
  } catch (error) {
    const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : '';
    return { error: `${error instanceof Error ? error.message : String(error)}${cause}` };
  }
}

/** Waits the backoff before retry `attempt` (1-based): 0.5 s, 1 s, 2 s, ... at most 5 s. */
export function backoff(attempt: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.min(5000, 500 * 2 ** (attempt - 1))));
}
