/** Parses `username=...` / `password=...` lines (the sample app's secrets/admin.credentials). */
export function parseCredentials(text: string): { username: string; password: string } {
  const values = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^([A-Za-z_]+)=(.*)$/.exec(line.trim());
    if (match) values.set(match[1]!, match[2]!);
  }
  const username = values.get('username');
  const password = values.get('password');
  if (!username || !password) throw new Error('credentials text lacks username= or password=');
  return { username, password };
}

/** A signed-in HTTP client of the notes sample app (cookie session, like a browser). */
export class NotesClient {
  private cookie = '';

  constructor(readonly baseUrl: string) {}

  /** Logs in with the form; throws unless the app answers with a redirect and a session cookie. */
  async login(username: string, password: string): Promise<void> {
    const response = await fetch(`${this.baseUrl}/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ username, password }).toString(),
    });
    const setCookie = response.headers.get('set-cookie') ?? '';
    await response.arrayBuffer();
    const session = /^(notes_session=[^;]+)/.exec(setCookie);
    if ((response.status !== 302 && response.status !== 303) || !session) {
      throw new Error(`login as ${username} failed: HTTP ${response.status}, cookie ${setCookie ? 'set' : 'absent'}`);
    }
    this.cookie = session[1]!;
  }

  /** Adds a note through the form; throws unless the app redirects back to /notes. */
  async addNote(title: string, body: string): Promise<void> {
    const response = await fetch(`${this.baseUrl}/notes`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: this.cookie },
      body: new URLSearchParams({ title, body }).toString(),
    });
    const text = await response.text();
    if (response.status !== 302 && response.status !== 303)
      throw new Error(`adding note "${title}" failed: HTTP ${response.status} ${text.trim()}`);
  }

  /** Uploads a file (raw body, name in X-Filename); returns the app's JSON answer. */
  async upload(name: string, content: Uint8Array | string): Promise<{ name: string; bytes: number; url: string }> {
    const response = await fetch(`${this.baseUrl}/upload`, {
      method: 'POST',
      headers: { 'X-Filename': name, Cookie: this.cookie, 'Content-Type': 'application/octet-stream' },
      body: typeof content === 'string' ? content : Buffer.from(content),
    });
    const text = await response.text();
    if (response.status !== 201) throw new Error(`upload of ${name} failed: HTTP ${response.status} ${text.trim()}`);
    return JSON.parse(text) as { name: string; bytes: number; url: string };
  }

  /** GET a path with the session cookie; returns status and body. */
  async get(path: string): Promise<{ status: number; body: Buffer }> {
    const response = await fetch(`${this.baseUrl}${path}`, { redirect: 'manual', headers: { Cookie: this.cookie } });
    return { status: response.status, body: Buffer.from(await response.arrayBuffer()) };
  }
}
