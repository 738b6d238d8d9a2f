// What both labelling pages (records at /, pairs at /pairs) share: the status line, the
// JSON API with its OpenAI-style errors, element building, the request, and sign-in.
"use strict";
const $ = (id) => document.getElementById(id);

function status(text, isError) {
  $("status").textContent = text || "";
  $("status").className = isError ? "error" : "";
}

async function api(path, options) {
  const resp = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
  let body = null;
  try { body = await resp.json(); } catch (e) { body = null; }
  if (!resp.ok) {
    const err = new Error(body && body.error ? body.error.message : resp.statusText);
    err.status = resp.status;
    throw err;
  }
  return body;
}

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function renderRequest(req) {
  const box = $("request");
  box.replaceChildren();
  if (Array.isArray(req.messages)) {
    for (const m of req.messages) {
      box.appendChild(el("div", { class: "msg-role" }, m.role));
      const content = typeof m.content === "string" ? m.content : JSON.stringify(m.content, null, 2);
      box.appendChild(el("pre", {}, content));
    }
  } else if (req.prompt !== undefined) {
    box.appendChild(el("pre", {}, typeof req.prompt === "string" ? req.prompt : JSON.stringify(req.prompt)));
  } else {
    box.appendChild(el("pre", {}, JSON.stringify(req, null, 2)));
  }
}

// The signed-in labeller (or null, with the sign-in form shown), then `start` on sign-in.
async function whoAmI(start) {
  $("signin-form").onsubmit = async (ev) => {
    ev.preventDefault();
    try {
      await api("api/session", { method: "POST", headers: { "content-type": "application/json" },
                                  body: JSON.stringify({ key: $("key").value }) });
    } catch (e) { status(e.message, true); return; }
    $("signin").hidden = true;
    start();
  };
  try {
    return await api("api/me");
  } catch (e) {
    if (e.status === 401 || e.status === 403) {
      $("signin").hidden = false;
      status(e.status === 403 ? e.message : "");
      $("key").focus();
    } else {
      status(e.message, true);
    }
    return null;
  }
}
