"""The example's HTML pages (tiny, no template engine; every user value is escaped)."""

from __future__ import annotations

from html import escape

from fastapi_oidc_guard import User

_HEAD = (
    "<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>"
    "body{{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}}"
    "nav a{{margin-right:1rem}}pre{{background:#f4f4f4;padding:.8rem;border-radius:6px;"
    "white-space:pre-wrap;word-break:break-all}}"
    ".dev{{background:#fff3cd;padding:.5rem;border-radius:6px}}</style></head><body>"
    "<nav><a href='/'>Home</a><a href='/profile'>Profile</a><a href='/fetch-demo'>Fetch demo</a>"
    "<a href='/live'>Live</a></nav>"
)


# Logging out is a POST (a cross-site GET must never end a session): a form, not a link.
LOGOUT_FORM = (
    "<form id='logout-form' method='post' action='/auth/logout'>"
    "<button id='logout' type='submit'>Log out</button></form>"
)


def _page(title: str, body: str) -> str:
    return _HEAD.format(title=escape(title)) + body + "</body></html>"


def home(user: User | None, *, development: bool) -> str:
    banner = (
        "<p class='dev'>Running against the built-in <b>development issuer</b>: "
        "not for production.</p>"
        if development
        else ""
    )
    if user is None:
        body = (
            "<h1>Welcome</h1><p>You are not signed in.</p>"
            "<a id='login' href='/auth/login'>Log in</a>"
        )
    else:
        name = escape(user.name or user.sub)
        body = f"<h1>Welcome</h1><p id='greeting'>Hello, {name}!</p>{LOGOUT_FORM}"
    return _page("Home", banner + body)


def profile(user: User) -> str:
    rows = "".join(
        f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>"
        for k, v in sorted(user.claims.items())
    )
    return _page(
        "Profile", f"<h1 id='profile'>Profile of {escape(user.sub)}</h1><table>{rows}</table>"
    )


def fetch_demo(user: User) -> str:
    script = """
<script>
async function show(path, target) {
  const response = await fetch(path, {credentials: "same-origin"});
  const body = await response.json();
  document.getElementById(target).textContent = response.status + " " + JSON.stringify(body);
}
show("/api/protected", "result");
document.getElementById("external-button").addEventListener("click",
  () => show("/api/external-data", "external"));
</script>"""
    body = (
        f"<h1>Fetch demo for {escape(user.sub)}</h1>"
        "<p>This page calls <code>/api/protected</code> with <code>fetch</code> and the session "
        "cookie:</p><pre id='result'>loading...</pre>"
        "<button id='external-button'>Call the bundled API with an access token</button>"
        "<pre id='external'></pre>" + script
    )
    return _page("Fetch demo", body)


def live(user: User) -> str:
    """A socket that lives as long as the session: log out in another tab and it closes."""
    script = """
<script>
const socket = new WebSocket(location.origin.replace(/^http/, "ws") + "/ws/live");
const log = document.getElementById("log");
socket.onopen = () => { log.textContent = "open"; socket.send("hello"); };
socket.onmessage = (event) => { log.textContent = "open " + event.data; };
socket.onclose = (event) => {
  document.getElementById("closed").textContent = event.code + " " + event.reason;
};
</script>"""
    body = (
        f"<h1>Live for {escape(user.sub)}</h1><p>A WebSocket authenticated by the session "
        "cookie; it closes when the session ends (log out in another tab).</p>"
        "<pre id='log'>connecting...</pre><pre id='closed'></pre>"
    )
    return _page("Live", body + script)
