// The hpxd console (docs/console.md): one WebSocket back to this server's
// /ws, speaking the protocol of docs/websocket.md. Whatever the server sends
// is shown with textContent, never parsed as HTML. No build step, no library.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const MAX_LINES = 2000; // the log keeps the newest lines only: memory stays bounded
  const LONG_LINE = 600; // characters: a longer line is folded, with a button to show it all
  const streams = new Map(); // streamId -> {data, error, close} of a call in flight
  const callable = new Map(); // name -> {name, requires, parameters, doc} from "functions"
  let socket = null;
  let nextStream = 1;
  let sessionId = null; // in memory only: to re-attach after a reconnect

  // -- the log: one line per message, newest at the bottom ---------------------

  function clock() {
    const d = new Date();
    const two = (n) => String(n).padStart(2, "0");
    return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.` +
      String(d.getMilliseconds()).padStart(3, "0");
  }

  // JSON on one line (JSON.stringify escapes newlines), so a string "3" and
  // the number 3 look different.
  function compact(value) {
    return value === undefined ? "" : JSON.stringify(value);
  }

  function show(kind, stream, text) {
    const log = $("log");
    // Follow new lines only while the reader is at the bottom already.
    const following = log.scrollHeight - log.scrollTop - log.clientHeight < 8;
    const line = document.createElement("li");
    line.className = kind;
    for (const [part, value] of [["time", clock()], ["kind", kind],
                                 ["stream", stream], ["text", text]]) {
      const span = document.createElement("span");
      span.className = part;
      span.textContent = value;
      line.append(span);
    }
    if (text.length > LONG_LINE) {
      line.classList.add("long");
      const more = document.createElement("button");
      more.type = "button";
      more.className = "more";
      line.append(more);
      fold(line, true);
    }
    log.append(line);
    while (log.childElementCount > MAX_LINES) log.firstElementChild.remove();
    if (following) log.scrollTop = log.scrollHeight;
  }

  // A long line shows its first few rows, or (unfolded) all of it.
  function fold(line, folded) {
    const more = line.querySelector("button.more");
    line.classList.toggle("open", !folded);
    more.setAttribute("aria-expanded", String(!folded));
    more.textContent = folded
      ? `show all ${line.querySelector(".text").textContent.length} characters` : "show less";
  }

  function foldOnClick(event) {
    const more = event.target.closest("button.more");
    if (more !== null) fold(more.parentElement, more.parentElement.classList.contains("open"));
  }

  // Every error from the server reads "CODE message" (docs/errors.md); the
  // stream column says what it answers: "#n" for a call, or the built-in
  // action. Errors the console finds itself have no code.
  function failed(stream, failure) {
    if (failure.shown) return;
    show("error", stream,
         failure.code === undefined ? failure.error : `${failure.code} ${failure.error}`);
  }

  // -- the socket ------------------------------------------------------------------

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${scheme}//${location.host}/ws`;
    $("connection").textContent = `connecting to ${url}…`;
    $("reconnect").hidden = true;
    socket = new WebSocket(url);
    socket.addEventListener("open", () => opened(url));
    socket.addEventListener("message", (event) => received(event.data));
    socket.addEventListener("close", closed);
  }

  async function opened(url) {
    $("connection").textContent = `connected to ${url}`;
    show("socket", "", `open ${url}`);
    if (sessionId !== null) {
      // The session outlives the connection for a grace period: keep it.
      await ask("attach", {session: sessionId}).catch((failure) => {
        sessionId = null;
        failed("attach", failure);
      });
    }
    await refresh();
  }

  function closed(event) {
    const why = `closed (code ${event.code}${event.reason ? ": " + event.reason : ""})`;
    $("connection").textContent = why;
    show("socket", "", why);
    for (const handlers of streams.values()) {
      handlers.error({error: `the connection closed (code ${event.code})`});
      handlers.close();
    }
    streams.clear();
    $("reconnect").hidden = false;
  }

  function received(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch (e) {
      show("error", "", `not JSON from the server: ${text}`);
      return;
    }
    if (message === null || typeof message !== "object") {
      show("error", "", `unexpected message: ${text}`);
    } else if ("action" in message) {
      pushed(message);
    } else if (streams.has(message.streamId)) {
      answered(message);
    } else if ("error" in message) { // a protocol error without a stream
      failed(compact(message.streamId), message);
    } else {
      show("unknown", compact(message.streamId), text);
    }
  }

  // A process push (its name as stream), a broadcast (stream null) or a
  // server command (stream "server").
  function pushed(message) {
    const stream = message.streamId;
    if (stream === "server") {
      show("server", "server", `${message.action} ${compact(message.data)}`);
    } else if (stream === null) {
      show("broadcast", "—", `${message.action} ${compact(message.data)}`);
    } else {
      show("push", String(stream), `${message.action} ${compact(message.data)}`);
    }
  }

  function answered(message) {
    const handlers = streams.get(message.streamId);
    if ("error" in message) {
      handlers.error(message);
    } else if (message.close) {
      streams.delete(message.streamId);
      handlers.close();
    } else if ("data" in message) {
      handlers.data(message.data);
    }
  }

  // Send one action; ``handlers`` get each data value, the error, the close.
  function send(action, data, handlers) {
    if (socket === null || socket.readyState !== WebSocket.OPEN) {
      show("error", "", `not connected: ${action} not sent`);
      return null;
    }
    const id = nextStream++;
    streams.set(id, handlers);
    socket.send(JSON.stringify({streamId: id, action: action, data: data}));
    return id;
  }

  // A built-in action as a promise of its last data value (or its error).
  function ask(action, data) {
    return new Promise((resolve, reject) => {
      let last = null;
      let failure = null;
      const id = send(action, data, {
        data: (value) => { last = value; },
        error: (message) => { failure = message; },
        close: () => (failure ? reject(failure) : resolve(last)),
      });
      if (id === null) reject({error: "not connected", shown: true}); // send said so
    });
  }

  // -- session and functions -------------------------------------------------------

  function showSession(session) {
    sessionId = session.session;
    $("who").textContent = session.user === null
      ? `a guest (role ${session.role})` : `${session.user} (role ${session.role})`;
    $("logout").hidden = session.user === null; // a guest has nothing to log out of
    show("session", "", $("who").textContent);
  }

  async function refresh() {
    try {
      showSession(await ask("session", null));
    } catch (failure) {
      failed("session", failure);
      $("who").textContent = "not logged in";
      $("logout").hidden = true;
      show("session", "", "not logged in");
    }
    try {
      listFunctions(await ask("functions", null));
    } catch (failure) {
      failed("functions", failure);
      listFunctions([]);
    }
  }

  function signature(f) {
    const names = f.parameters.map((p) => (p.required ? p.name : `${p.name}?`));
    return `${f.name}(${names.join(", ")})`;
  }

  function listFunctions(functions) {
    const select = $("function");
    const chosen = select.value;
    select.replaceChildren();
    callable.clear();
    for (const f of functions) {
      callable.set(f.name, f);
      const option = document.createElement("option");
      option.value = f.name;
      option.textContent = signature(f);
      select.append(option);
    }
    if (callable.has(chosen)) select.value = chosen;
    showChosen();
    show("functions", "", `${functions.length} you may call`);
  }

  // What the arguments of ``f`` look like, from its parameters' names.
  function placeholder(f) {
    const names = f.parameters.map((p) => p.name);
    if (names.length === 0) return "no arguments: leave it empty";
    const optional = f.parameters.filter((p) => !p.required).map((p) => p.name);
    return `{${names.map((name) => `"${name}": …`).join(", ")}}  or  [${names.join(", ")}]` +
      (optional.length ? `  (optional: ${optional.join(", ")})` : "");
  }

  function showChosen() {
    const f = callable.get($("function").value);
    $("function-needs").textContent = f ? `needs ${f.requires}` : "no function you may call";
    $("function-doc").textContent = f ? f.doc : "";
    $("args").placeholder = f ? placeholder(f) : "";
  }

  async function logIn(event) {
    event.preventDefault();
    const user = $("user").value;
    show("call", "login", compact({user: user})); // never the password
    try {
      showSession(await ask("login", {user: user, password: $("password").value}));
      $("password").value = "";
    } catch (failure) {
      failed("login", failure);
      return;
    }
    try {
      listFunctions(await ask("functions", null));
    } catch (failure) {
      failed("functions", failure);
    }
  }

  async function logOut() {
    show("call", "logout", "");
    try {
      await ask("logout", null);
      sessionId = null;
    } catch (failure) {
      failed("logout", failure);
    }
    await refresh();
  }

  // -- calling a function ------------------------------------------------------------

  // Empty means no arguments; otherwise a JSON list (positional) or object
  // (keyword). Anything else is refused here, not sent.
  function parseArguments(text) {
    if (text.trim() === "") return {value: null};
    let value;
    try {
      value = JSON.parse(text);
    } catch (e) {
      return {problem: `arguments are not valid JSON (${e.message})`};
    }
    if (value !== null && typeof value !== "object") {
      return {problem: "arguments must be a JSON list (positional) or object (keyword)"};
    }
    return {value: value};
  }

  function call(event) {
    event.preventDefault();
    const name = $("function").value;
    const args = parseArguments($("args").value);
    if (!name) {
      failed("", {error: "choose a function first"});
      return;
    }
    if (args.problem !== undefined) {
      failed("", {error: `${name} not sent: ${args.problem}`});
      return;
    }
    const id = send(name, args.value, {
      data: (value) => show("data", `#${id}`, compact(value)),
      error: (failure) => failed(`#${id}`, failure),
      close: () => show("close", `#${id}`, "closed"),
    });
    if (id !== null) show("call", `#${id}`, `${name} ${args.value === null ? "" : compact(args.value)}`);
  }

  function callOnCtrlEnter(event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      $("call-form").requestSubmit();
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", logIn);
    $("logout").addEventListener("click", logOut);
    $("call-form").addEventListener("submit", call);
    $("function").addEventListener("change", showChosen);
    $("args").addEventListener("keydown", callOnCtrlEnter);
    $("reconnect").addEventListener("click", connect);
    $("clear").addEventListener("click", () => $("log").replaceChildren());
    $("log").addEventListener("click", foldOnClick);
    connect();
  });
})();
