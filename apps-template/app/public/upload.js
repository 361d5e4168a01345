// Sends the chosen file as the raw request body with its name in X-Filename (what POST /upload expects).
const form = document.getElementById('upload');
form?.addEventListener('submit', async (event) => {
  event.preventDefault();
  const file = form.elements.file.files[0];
  if (!file) return;
  const response = await fetch('/upload', { method: 'POST', headers: { 'X-Filename': file.name }, body: file });
  if (response.ok) location.reload();
  else alert(await response.text());
});
