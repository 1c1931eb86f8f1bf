"""The console: pages for analysts and operations at ``/console``.

Each page is a Jinja template that the browser fills from the same ``/v1`` API every
other client uses (``static/console.js``); the console adds no operation of its own.
A person signs in once with an API key (``sessions``); the pages and the API calls they
make then carry the session cookie, and every change carries the session's CSRF token.
What a page shows, and whether it opens at all, follows the key's role as in the API.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, g, redirect, render_template, request, url_for

from app.edges.console import sessions
from app.platform.db import get_db
from app.platform.errors import ApiError, Unauthorized

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
)

AUTHORS = ("admin", "analyst")
EVERYONE = sessions.ROLES
# The sign-in form's CSRF token lives in a cookie of its own until there is a session.
SIGN_IN_COOKIE = "dom_sign_in"
SECURITY_HEADERS = {
    # Scripts, styles and images come from this service only; nothing is framed.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
        " connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Page:
    """One console page: its path under /console, title, template and who may open it."""

    path: str
    title: str
    template: str
    roles: tuple[str, ...]
    section: str  # the navigation entry it belongs to


PAGES = {
    "home": Page("/", "Overview", "home.html", EVERYONE, "home"),
    "rulesets": Page("/rulesets", "Rulesets", "rulesets.html", AUTHORS, "rulesets"),
    "ruleset": Page("/rulesets/<name>", "Ruleset", "ruleset.html", AUTHORS, "rulesets"),
    "diff": Page("/rulesets/<name>/diff", "Compare versions", "diff.html", AUTHORS, "rulesets"),
    "editor": Page("/rulesets/<name>/edit", "Edit rules", "editor.html", AUTHORS, "rulesets"),
    "simulate": Page("/simulate", "Simulate an order", "simulate.html", EVERYONE, "simulate"),
    "experiments": Page("/experiments", "Experiments", "experiments.html", AUTHORS, "experiments"),
    "experiment": Page(
        "/experiments/<experiment_id>", "Experiment", "experiment.html", AUTHORS, "experiments"
    ),
    "replays": Page("/replays", "Replays", "replays.html", AUTHORS, "replays"),
    "replay": Page("/replays/<replay_id>", "Replay", "replay.html", AUTHORS, "replays"),
    "decisions": Page(
        "/decisions", "Orders and decisions", "decisions.html", EVERYONE, "decisions"
    ),
    "order": Page("/orders/<order_id>", "Order", "decision.html", EVERYONE, "decisions"),
    "open_orders": Page("/open-orders", "Open orders", "open_orders.html", EVERYONE, "open_orders"),
    "decision": Page(
        "/decisions/<decision_id>", "Decision", "decision.html", EVERYONE, "decisions"
    ),
    "network": Page("/network", "Network and stock", "network.html", EVERYONE, "network"),
}
# The navigation, in order: (section, label).
NAVIGATION = (
    ("home", "Overview"),
    ("rulesets", "Rulesets"),
    ("simulate", "Simulate"),
    ("experiments", "Experiments"),
    ("replays", "Replays"),
    ("decisions", "Orders"),
    ("open_orders", "Open orders"),
    ("network", "Network"),
)


@bp.context_processor
def _choices():
    from app.domain.orders import TRANSITIONS
    from app.lifecycle.waiting import REASONS

    return {"order_statuses": tuple(TRANSITIONS), "open_reasons": REASONS}


def _session():
    """``(principal, csrf)`` of the browser's session, or None when it has none."""
    token = request.cookies.get(sessions.COOKIE)
    if not token:
        return None
    try:
        return sessions.session_of(get_db(), token)
    except Unauthorized:
        return None


def _render(page_name: str, status: int = 200, **values):
    page = PAGES[page_name]
    principal, csrf = g.console_session
    sections = {p.section for p in PAGES.values() if principal.role in p.roles}
    return (
        render_template(
            f"console/{page.template}",
            page=page,
            page_name=page_name,
            principal=principal,
            csrf=csrf,
            navigation=[(s, label) for s, label in NAVIGATION if s in sections],
            **values,
        ),
        status,
    )


def _page_view(page_name: str):
    page = PAGES[page_name]

    def view(**values):
        session = _session()
        if session is None:
            return redirect(url_for("console.sign_in", next=request.full_path.rstrip("?")))
        g.console_session = session
        g.principal = session[0]  # for the request's log line, as for the API
        if session[0].role not in page.roles:
            return _render(
                "home",
                403,
                refused=f"{page.title} is for {' and '.join(page.roles)} keys;"
                f" this session's key is a {session[0].role} key.",
            )
        return _render(page_name, **values)

    view.__name__ = page_name
    return view


for _name, _page in PAGES.items():
    bp.add_url_rule(_page.path, endpoint=_name, view_func=_page_view(_name))


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: a path under /console, never another site."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and parts.path.startswith("/console"):
            return target
    return url_for("console.home")


def _cookie(response, name: str, value: str, max_age: float | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=None if max_age is None else int(max_age),
        httponly=True,
        samesite="Strict",
        secure=current_app.config["CONSOLE_SECURE_COOKIE"],
        path="/",
    )


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    """The sign-in form (GET) and signing in with an API key (POST)."""
    error, status = None, 200
    if request.method == "POST":
        sent = request.form.get("csrf_token", "")
        expected = request.cookies.get(SIGN_IN_COOKIE, "")
        key = request.form.get("api_key", "").strip()
        if not expected or not secrets.compare_digest(sent, expected):
            error, status = "The form had expired: sign in again.", 400
        elif not key:
            error, status = "Enter your API key.", 422
        else:
            try:
                token, _, _ = sessions.sign_in(
                    get_db(), key, current_app.config["CONSOLE_SESSION_HOURS"]
                )
            except ApiError as exc:
                error, status = exc.message[:1].upper() + exc.message[1:] + ".", exc.status
            else:
                response = redirect(_safe_next(request.form.get("next")))
                hours = current_app.config["CONSOLE_SESSION_HOURS"]
                _cookie(response, sessions.COOKIE, token, hours * 3600)
                response.delete_cookie(SIGN_IN_COOKIE, path="/")
                return response
    form_token = secrets.token_urlsafe(32)
    response = current_app.make_response(
        (
            render_template(
                "console/sign_in.html",
                csrf=form_token,
                error=error,
                next=request.values.get("next", ""),
            ),
            status,
        )
    )
    _cookie(response, SIGN_IN_COOKIE, form_token, 3600)
    return response


@bp.route("/sign-out", methods=["POST"])
def sign_out():
    """End the session (the form carries the CSRF token) and go back to the sign-in form."""
    session = _session()
    token = request.cookies.get(sessions.COOKIE)
    if session is not None:
        sessions.check_csrf(session[1], request.form.get("csrf_token"))
        sessions.sign_out(get_db(), token)
    response = redirect(url_for("console.sign_in"))
    response.delete_cookie(sessions.COOKIE, path="/")
    return response


@bp.after_request
def _secure(response):
    response.headers.update(SECURITY_HEADERS)
    if request.endpoint == "console.static":
        # The script and stylesheet may be kept, but asked again each time (they change
        # with the service, under the same names).
        response.headers["Cache-Control"] = "no-cache"
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.add_url_rule("/", "root", lambda: redirect(url_for("console.home")))
