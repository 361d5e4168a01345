// HTML for every page. Every dynamic value goes through escapeHtml.
import { escapeHtml as e } from './http.js';

function layout(title, body, user) {
  const nav = user
    ? `<form method="post" action="/logout" class="inline"><span>Signed in as ${e(user.username)}</span> <button>Log out</button></form>`
    : '<a href="/login">Log in</a>';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${e(title)} - notes</title>
<link rel="stylesheet" href="/static/style.css"></head>
<body><header><a href="/">notes</a> <nav>${nav}</nav></header>
<main><h1>${e(title)}</h1>
${body}
</main></body></html>
`;
}

/** The public, database-backed page: the number of notes and each title. */
export function renderPublicNotes({ count, titles }) {
  const items = titles.map((title) => `<li>${e(title)}</li>`).join('\n');
  return layout('Public notes', `<p id="count">${count} notes</p>\n<ul id="titles">\n${items}\n</ul>`);
}

/** The login form, with an optional error. */
export function renderLogin(error) {
  const message = error ? `<p class="error">${e(error)}</p>` : '';
  return layout(
    'Log in',
    `${message}<form method="post" action="/login">
<label>Username <input name="username" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button>Log in</button></form>`,
  );
}

/** The signed-in notes page: every note, the add form and the upload form. */
export function renderNotes(user, notes, uploads) {
  const list = notes
    .map(
      (note) =>
        `<article><h2>${e(note.title)}</h2><p>${e(note.body)}</p><small>${e(note.author ?? 'unknown')}, ${e(new Date(note.created_at).toISOString())}</small></article>`,
    )
    .join('\n');
  const files = uploads
    .map((name) => `<li><a href="/uploads/${encodeURIComponent(name)}">${e(name)}</a></li>`)
    .join('\n');
  return layout(
    'Notes',
    `<p>${notes.length} notes</p>
<form method="post" action="/notes"><label>Title <input name="title" maxlength="200" required></label>
<label>Text <textarea name="body" maxlength="10000"></textarea></label><button>Add note</button></form>
<section>${list}</section>
<h2>Uploads</h2>
<form id="upload"><input type="file" name="file" required> <button>Upload</button></form>
<ul id="uploads">${files}</ul>
<script src="/static/upload.js"></script>`,
    user,
  );
}

/** The landing page. */
export function renderHome(user) {
  return layout('Welcome', '<p><a href="/notes-public">Public notes</a> | <a href="/notes">Your notes</a></p>', user);
}
