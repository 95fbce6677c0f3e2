#include "server/chat_page.h"

namespace skv::server {

// One self-contained page (no build step, no external resources): it keeps the conversation,
// streams each answer from /v1/chat/completions and shows time to first token and tokens/s.
const char* chat_page_html() {
  return R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>swiftkv chat</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0; background: #f6f6f4; color: #222; }
  header { padding: 10px 16px; background: #24343f; color: #fff; display: flex; gap: 12px; align-items: center; }
  header h1 { font-size: 17px; margin: 0; font-weight: 600; }
  header .model { font-size: 13px; opacity: .8; }
  main { max-width: 820px; margin: 0 auto; padding: 12px 16px 140px; }
  .msg { margin: 10px 0; padding: 10px 12px; border-radius: 8px; white-space: pre-wrap; line-height: 1.45; }
  .user { background: #dfe9f2; }
  .assistant { background: #fff; border: 1px solid #e2e2e2; }
  .stats { font-size: 12px; color: #777; margin-top: 6px; }
  .error { background: #fbe3e3; color: #8a1f1f; }
  form { position: fixed; bottom: 0; left: 0; right: 0; background: #fff; border-top: 1px solid #ddd; padding: 10px 16px; }
  .row { max-width: 820px; margin: 0 auto; display: flex; gap: 8px; }
  textarea { flex: 1; resize: none; height: 54px; font: inherit; padding: 8px; }
  button { padding: 0 18px; font: inherit; }
  .opts { max-width: 820px; margin: 6px auto 0; font-size: 12px; color: #666; display: flex; gap: 14px; }
  .opts input { width: 70px; }
</style>
</head>
<body>
<header><h1>swiftkv</h1><span class="model" id="model"></span></header>
<main id="log"></main>
<form id="form">
  <div class="row">
    <textarea id="input" placeholder="Ask something (Enter sends, Shift+Enter for a new line)"></textarea>
    <button id="send" type="submit">Send</button>
    <button id="reset" type="button">New chat</button>
  </div>
  <div class="opts">
    <label>max tokens <input id="max_tokens" type="number" value="256" min="1"></label>
    <label>temperature <input id="temperature" type="number" value="0.7" step="0.1" min="0"></label>
    <label>API key <input id="key" type="password" style="width:140px"></label>
  </div>
</form>
<script>
const log = document.getElementById('log');
const input = document.getElementById('input');
let history = [];
let model = '';

function headers() {
  const h = {'Content-Type': 'application/json'};
  const key = document.getElementById('key').value;
  if (key) h['Authorization'] = 'Bearer ' + key;
  return h;
}

function add(role, text) {
  const div = document.createElement('div');
  div.className = 'msg ' + role;
  div.textContent = text;
  log.appendChild(div);
  window.scrollTo(0, document.body.scrollHeight);
  return div;
}

async function loadModel() {
  try {
    const r = await fetch('/v1/models', {headers: headers()});
    const j = await r.json();
    model = j.data[0].id;
    document.getElementById('model').textContent = model;
  } catch (e) { document.getElementById('model').textContent = '(models unavailable: ' + e + ')'; }
}

async function send(text) {
  history.push({role: 'user', content: text});
  add('user', text);
  const out = add('assistant', '');
  out.id = 'answer-' + history.length;
  const stats = document.createElement('div');
  stats.className = 'stats';
  const t0 = performance.now();
  let tFirst = 0, answer = '', tokens = 0, usage = null;
  try {
    const r = await fetch('/v1/chat/completions', {method: 'POST', headers: headers(), body: JSON.stringify({
      model, messages: history, stream: true, stream_options: {include_usage: true},
      max_tokens: parseInt(document.getElementById('max_tokens').value) || 256,
      temperature: parseFloat(document.getElementById('temperature').value) || 0})});
    if (!r.ok) {
      const j = await r.json().catch(() => ({}));
      throw new Error((j.error && j.error.message) || ('HTTP ' + r.status));
    }
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buf += dec.decode(value, {stream: true});
      let cut;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const ev = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        if (!ev.startsWith('data: ')) continue;
        const data = ev.slice(6);
        if (data === '[DONE]') continue;
        const j = JSON.parse(data);
        if (j.error) throw new Error(j.error.message);
        if (j.usage) usage = j.usage;
        for (const c of j.choices || []) {
          const piece = (c.delta && c.delta.content) || '';
          if (piece) {
            if (!tFirst) tFirst = performance.now();
            answer += piece;
            tokens += 1;
            out.textContent = answer;
          }
        }
      }
    }
    const n = usage ? usage.completion_tokens : tokens;
    const tEnd = performance.now();
    const decodeS = tFirst ? (tEnd - tFirst) / 1000 : 0;
    stats.textContent = 'time to first token ' + (tFirst ? ((tFirst - t0) / 1000).toFixed(2) + ' s' : '-') +
      ' · ' + n + ' tokens · ' + (decodeS > 0 && n > 1 ? ((n - 1) / decodeS).toFixed(1) : '-') + ' tokens/s';
    out.appendChild(stats);
    history.push({role: 'assistant', content: answer});
  } catch (e) {
    out.className = 'msg error';
    out.textContent = 'Error: ' + e.message;
    history.pop();
  }
}

document.getElementById('form').addEventListener('submit', ev => {
  ev.preventDefault();
  const text = input.value.trim();
  if (!text) return;
  input.value = '';
  send(text);
});
input.addEventListener('keydown', ev => {
  if (ev.key === 'Enter' && !ev.shiftKey) { ev.preventDefault(); document.getElementById('send').click(); }
});
document.getElementById('reset').addEventListener('click', () => { history = []; log.innerHTML = ''; });
loadModel();
</script>
</body>
</html>
)HTML";
}

}  // namespace skv::server
