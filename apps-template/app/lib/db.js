// All SQL the app runs. The schema itself lives in app/migrations/*.sql and is applied by bin/install.
import pg from 'pg';

/** Creates the connection pool; the app connects as its own role (DB_USER), never as an admin. */
export function createPool(db) {
  return new pg.Pool({
    ...db,
    max: 5,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30000,
    application_name: 'notes',
  });
}

/** Returns { count, titles } for the public page. */
export async function listNoteTitles(pool) {
  const result = await pool.query('SELECT title FROM notes ORDER BY id');
  return { count: result.rowCount, titles: result.rows.map((row) => row.title) };
}

/** Returns every note with author and time, newest first. */
export async function listNotes(pool) {
  const result = await pool.query(
    'SELECT n.id, n.title, n.body, n.created_at, u.username AS author FROM notes n LEFT JOIN users u ON u.id = n.author_id ORDER BY n.id DESC',
  );
  return result.rows;
}

/** Inserts a note and returns its id. */
export async function addNote(pool, authorId, title, body) {
  const result = await pool.query('INSERT INTO notes (title, body, author_id) VALUES ($1, $2, $3) RETURNING id', [
    title,
    body,
    authorId,
  ]);
  return result.rows[0].id;
}

/** Returns { id, username, password_hash } or undefined. */
export async function findUser(pool, username) {
  const result = await pool.query('SELECT id, username, password_hash FROM users WHERE username = $1', [username]);
  return result.rows[0];
}

/** Stores a session (by token hash) and returns nothing. */
export async function createSession(pool, tokenHash, userId, hours) {
  await pool.query(
    'INSERT INTO sessions (token_hash, user_id, expires_at) VALUES ($1, $2, now() + make_interval(hours => $3))',
    [tokenHash, userId, hours],
  );
}

/** Returns { id, username } for a live session, or undefined. */
export async function findSessionUser(pool, tokenHash) {
  const result = await pool.query(
    'SELECT u.id, u.username FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1 AND s.expires_at > now()',
    [tokenHash],
  );
  return result.rows[0];
}

/** Deletes one session; expired ones go too, so the table does not grow forever. */
export async function deleteSession(pool, tokenHash) {
  await pool.query('DELETE FROM sessions WHERE token_hash = $1 OR expires_at < now()', [tokenHash]);
}

/** Round-trips to the database; throws when it is unreachable. */
export async function pingDatabase(pool) {
  await pool.query('SELECT 1');
}
