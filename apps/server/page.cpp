// The chat page served at "/": one self-contained HTML file (no build step). It talks to
// /v1/chat/completions with streaming, shows reasoning in a collapsed <details>, tool calls
// as cards, and has a stop button (AbortController -> the server cancels the request).
#include "server.h"

namespace dsv4::server {

const std::string& chat_page_html() {
  static const std::string page = R"PAGE(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dsv4 chat</title>
<style>
  :root { --bg:#f6f7f9; --fg:#1d2330; --muted:#6b7385; --card:#fff; --accent:#3b5bdb; --border:#dde1e8; }
  * { box-sizing: border-box; }
  body { margin:0; font:15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background:var(--bg); color:var(--fg);
         display:flex; flex-direction:column; height:100vh; }
  header { display:flex; gap:12px; align-items:center; padding:10px 16px; background:var(--card); border-bottom:1px solid var(--border); }
  header h1 { font-size:17px; margin:0 8px 0 0; }
  header .model { color:var(--muted); font-size:13px; }
  header label { font-size:13px; color:var(--muted); display:flex; gap:4px; align-items:center; }
  header input[type=password] { width:140px; }
  header .spacer { flex:1; }
  #log { flex:1; overflow-y:auto; padding:16px; display:flex; flex-direction:column; gap:12px; }
  .msg { max-width:820px; width:100%; margin:0 auto; padding:10px 14px; border-radius:10px; background:var(--card);
         border:1px solid var(--border); white-space:pre-wrap; word-wrap:break-word; }
  .msg.user { background:#e7edff; border-color:#c9d4fb; }
  .msg .role { font-size:12px; color:var(--muted); margin-bottom:4px; text-transform:uppercase; letter-spacing:.04em; }
  details.thinking { margin:4px 0 8px; color:var(--muted); font-size:13px; border-left:3px solid var(--border); padding-left:8px; }
  details.thinking summary { cursor:pointer; }
  .tool { margin-top:8px; padding:6px 10px; font:13px ui-monospace, monospace; background:#fff8e6; border:1px solid #f1d9a0; border-radius:6px; }
  .meta { font-size:12px; color:var(--muted); margin-top:6px; }
  .error { color:#c92a2a; }
  form { display:flex; gap:8px; padding:12px 16px; background:var(--card); border-top:1px solid var(--border); }
  textarea { flex:1; resize:none; height:60px; padding:8px; font:inherit; border:1px solid var(--border); border-radius:8px; }
  button { padding:0 18px; border:0; border-radius:8px; background:var(--accent); color:#fff; font:inherit; cursor:pointer; }
  button#stop { background:#c92a2a; }
  button:disabled { opacity:.45; cursor:default; }
</style>
</head>
<body>
<header>
  <h1>dsv4</h1><span class="model" id="model">…</span>
  <span class="spacer"></span>
  <label><input type="checkbox" id="think" checked> thinking</label>
  <label>max tokens <input type="number" id="maxtok" value="512" min="1" style="width:70px"></label>
  <label>API key <input type="password" id="key" placeholder="(none)"></label>
  <button type="button" id="toolsbtn" style="background:#868e96;padding:6px 12px">Tools</button>
  <button type="button" id="clear" style="background:#868e96;padding:6px 12px">New chat</button>
</header>
<div id="toolsbox" style="display:none;padding:8px 16px;background:var(--card);border-bottom:1px solid var(--border)">
  <div style="font-size:13px;color:var(--muted)">Tools offered to the model (OpenAI <code>tools</code> JSON array; empty = none)</div>
  <textarea id="tools" style="width:100%;height:90px;font:12px ui-monospace,monospace" placeholder='[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]'></textarea>
</div>
<div id="log"></div>
<form id="form">
  <textarea id="input" placeholder="Message (Enter to send, Shift+Enter for a new line)"></textarea>
  <button id="send" type="submit">Send</button>
  <button id="stop" type="button" disabled>Stop</button>
</form>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const log = $("log"), input = $("input");
let history = [], controller = null, modelName = "dsv4";
$("key").value = localStorage.getItem("dsv4-key") || "";
$("key").addEventListener("change", () => { localStorage.setItem("dsv4-key", $("key").value); loadModel(); });
function headers() {
  const h = { "Content-Type": "application/json" };
  if ($("key").value) h["Authorization"] = "Bearer " + $("key").value;
  return h;
}
async function loadModel() {
  try {
    const r = await fetch("/v1/models", { headers: headers() });
    const j = await r.json();
    if (j.data && j.data.length) { modelName = j.data[0].id; $("model").textContent = modelName; }
    else $("model").textContent = (j.error && j.error.message) || "?";
  } catch (e) { $("model").textContent = "offline"; }
}
function addMessage(role) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  const r = document.createElement("div"); r.className = "role"; r.textContent = role;
  div.appendChild(r);
  log.appendChild(div);
  return div;
}
function addUser(text) {
  const d = addMessage("user");
  d.appendChild(document.createTextNode(text));
  log.scrollTop = log.scrollHeight;
}
async function send(text) {
  addUser(text);
  history.push({ role: "user", content: text });
  const box = addMessage("assistant");
  const details = document.createElement("details"); details.className = "thinking";
  const summary = document.createElement("summary"); summary.textContent = "Thinking…";
  const thought = document.createElement("div");
  details.appendChild(summary); details.appendChild(thought);
  const content = document.createElement("div");
  const meta = document.createElement("div"); meta.className = "meta";
  box.appendChild(details); box.appendChild(content); box.appendChild(meta);
  details.style.display = "none";
  const calls = [];
  let reasoning = "", answer = "", usage = null, finish = "";
  controller = new AbortController();
  $("send").disabled = true; $("stop").disabled = false;
  const t0 = performance.now();
  try {
    const body = { model: modelName, messages: history, stream: true, stream_options: { include_usage: true },
                   max_tokens: Number($("maxtok").value) || 512 };
    if (!$("think").checked) body.reasoning_effort = "none";
    const toolsText = $("tools").value.trim();
    if (toolsText) body.tools = JSON.parse(toolsText);
    const res = await fetch("/v1/chat/completions", { method: "POST", headers: headers(), body: JSON.stringify(body),
                                                      signal: controller.signal });
    if (!res.ok) {
      const j = await res.json().catch(() => ({}));
      throw new Error((j.error && j.error.message) || ("HTTP " + res.status));
    }
    const reader = res.body.getReader(), dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const ev = buf.slice(0, i); buf = buf.slice(i + 2);
        for (const line of ev.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") continue;
          const j = JSON.parse(data);
          if (j.error) throw new Error(j.error.message);
          if (j.usage) usage = j.usage;
          const c = j.choices && j.choices[0];
          if (!c) continue;
          if (c.finish_reason) finish = c.finish_reason;
          const d = c.delta || {};
          if (d.reasoning_content) { reasoning += d.reasoning_content; thought.textContent = reasoning; details.style.display = ""; }
          if (d.content) { answer += d.content; content.textContent = answer; if (reasoning) summary.textContent = "Thought"; }
          for (const tc of d.tool_calls || []) {
            calls.push(tc);
            const t = document.createElement("div"); t.className = "tool";
            t.textContent = "tool call: " + tc.function.name + "(" + tc.function.arguments + ")";
            box.insertBefore(t, meta);
          }
          log.scrollTop = log.scrollHeight;
        }
      }
    }
  } catch (e) {
    if (e.name === "AbortError") finish = "stopped";
    else { const er = document.createElement("div"); er.className = "error"; er.textContent = "Error: " + e.message; box.insertBefore(er, meta); }
  }
  if (reasoning) summary.textContent = "Thought (" + reasoning.length + " chars)";
  const secs = (performance.now() - t0) / 1000;
  meta.textContent = [finish && ("finish: " + finish), usage && (usage.completion_tokens + " tokens"),
                      usage && (usage.completion_tokens / secs).toFixed(1) + " tok/s",
                      usage && usage.prompt_tokens_details && usage.prompt_tokens_details.cached_tokens ? "cached " + usage.prompt_tokens_details.cached_tokens : ""]
                      .filter(Boolean).join(" · ");
  const msg = { role: "assistant", content: answer };
  if (calls.length) msg.tool_calls = calls.map((c) => ({ id: c.id, type: "function", function: c.function }));
  history.push(msg);
  controller = null;
  $("send").disabled = false; $("stop").disabled = true;
}
$("form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = input.value.trim();
  if (!text || controller) return;
  input.value = "";
  send(text);
});
input.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("form").requestSubmit(); }
});
$("stop").addEventListener("click", () => { if (controller) controller.abort(); });
$("tools").value = localStorage.getItem("dsv4-tools") || "";
$("tools").addEventListener("change", () => localStorage.setItem("dsv4-tools", $("tools").value));
$("toolsbtn").addEventListener("click", () => {
  const b = $("toolsbox"); b.style.display = b.style.display === "none" ? "" : "none";
});
$("clear").addEventListener("click", () => { if (!controller) { history = []; log.innerHTML = ""; } });
loadModel();
</script>
</body>
</html>
)PAGE";
  return page;
}

}  // namespace dsv4::server
