"""The operator documentation names only commands, flags and routes that exist.

docs/operations.md's "Operating a consortium" is the path a newcomer copies from a fresh
clone to a promoted model. Its shell blocks are parsed here (no process is started):

- every ``fedembed ...`` command is resolved in the real Typer app
  (``typer.main.get_command(fedembed.cli.app)``): the subcommand path must exist, every
  ``--flag`` must be an option of that command and every required option must be given;
- every ``curl`` command's method and path must be a route of the admin API
  (:func:`coordinator.admin.app.create_admin_app` over a consortium home in ``tmp_path``)
  for ``$ADMIN``, or of the query gateway (:data:`index_client.routes.GATEWAY_ROUTES`)
  for ``$GATEWAY``;
- the walkthrough covers the whole path, in order (keys before provisioning, registration
  before the nodes start, a run before its model is promoted ...).

docs/admin_api.md's shell blocks get the same command and route checks, and the relative
links of the README and of both documents must lead to a file (and a heading there).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import fastapi.routing
import pytest
import typer.main

from coordinator.admin.app import create_admin_app
from coordinator.admin.server import build_parts
from coordinator.admin.settings import AdminSettings
from fedembed.cli import app as fedembed_app
from index_client.routes import GATEWAY_ROUTES

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
OPERATIONS = REPO_ROOT / "docs" / "operations.md"
ADMIN_API_DOC = REPO_ROOT / "docs" / "admin_api.md"
WALKTHROUGH = "Operating a consortium"

OPERATORS = {"|", "||", "&", "&&", ";", ";;", "(", ")"}
REDIRECTIONS = {">", ">>", "<", "<<", "<<<", ">&", "<&"}
COMMAND_PREFIXES = {"export", "sudo", "exec", "env", "nohup", "time", "do", "then", "else"}
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
HEREDOC = re.compile(r"<<-?\s*'?\"?([A-Za-z_]+)'?\"?")
BASES = {"$ADMIN": "admin", "$GATEWAY": "gateway"}
DATA_FLAGS = {"-d", "--data", "--data-raw", "--data-binary", "--json", "-F", "--form"}


@dataclass(frozen=True)
class Curl:
    """One documented HTTP call: which service, the method, the path."""

    service: str
    method: str
    path: str
    line: str


# --- reading the documents --------------------------------------------------------------


def _section(markdown: str, heading: str) -> str:
    """The text under the level-2 heading ``heading``, up to the next level-2 heading."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    assert match, f"no '## {heading}' heading"
    return match.group(1)


def _shell_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```(?:bash|sh|shell)\n(.*?)^```", markdown, re.M | re.S)


def _logical_lines(block: str) -> Iterator[str]:
    """The block's command lines: continuations joined, here-document bodies left out."""
    lines = iter(block.replace("\\\n", " ").splitlines())
    for line in lines:
        heredoc = HEREDOC.search(line)
        if heredoc:
            for body in lines:
                if body.strip() == heredoc.group(1):
                    break
        yield line


def _simple_commands(line: str) -> Iterator[list[str]]:
    """The words of each simple command on ``line``, command substitutions included."""
    lexer = shlex.shlex(line.replace("$(", " ( "), posix=True, punctuation_chars=True)
    lexer.commenters = "#"
    lexer.whitespace_split = True
    words: list[str] = []
    for token in lexer:
        if token in OPERATORS:
            if words:
                yield words
            words = []
        else:
            words.append(token)
    if words:
        yield words


def _command_words(words: list[str]) -> list[str]:
    """``words`` from the command name on (assignments and prefixes such as sudo dropped)."""
    index = 0
    while index < len(words) and (
        ASSIGNMENT.match(words[index]) or words[index] in COMMAND_PREFIXES
    ):
        index += 1
    return words[index:]


def _commands(markdown: str) -> list[tuple[list[str], str]]:
    """Every simple command of the document's shell blocks, with its source line."""
    found = []
    for block in _shell_blocks(markdown):
        for line in _logical_lines(block):
            for words in _simple_commands(line):
                command = _command_words(words)
                if command:
                    found.append((command, line.strip()))
    return found


def _fedembed_commands(markdown: str) -> list[tuple[list[str], str]]:
    return [
        (words[1:], line)
        for words, line in _commands(markdown)
        if words[0] == "fedembed" or words[0].endswith("/fedembed")
    ]


def _curl(words: list[str], line: str) -> Curl:
    """The service, method and path of one ``curl`` command's words."""
    method = None
    has_data = False
    urls = []
    args = iter(words[1:])
    for word in args:
        if word in {"-X", "--request"} or re.fullmatch(r"-[a-zA-Z]*X", word):
            method = next(args, None)
        elif word in DATA_FLAGS or re.fullmatch(r"-[a-zA-Z]*d", word):
            has_data = True
            next(args, None)
        elif word == "--header" or re.fullmatch(r"-[a-zA-Z]*H", word):
            next(args, None)
        elif word.startswith(tuple(BASES)):
            urls.append(word)
    assert len(urls) == 1, f"{line!r}: name one URL, as $ADMIN/... or $GATEWAY/..."
    base = next(b for b in sorted(BASES, key=len, reverse=True) if urls[0].startswith(b))
    path = urls[0][len(base) :].split("?", 1)[0]
    return Curl(BASES[base], method or ("POST" if has_data else "GET"), path, line)


def _curls(markdown: str) -> list[Curl]:
    return [_curl(words, line) for words, line in _commands(markdown) if words[0] == "curl"]


# --- what exists ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli() -> click.Group:
    command = typer.main.get_command(fedembed_app)
    assert isinstance(command, click.Group)
    return command


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[tuple[str, str]]]:
    """Service -> (method, path template) of every route it serves."""
    home = tmp_path_factory.mktemp("home")
    settings = AdminSettings(home=home, port=0)
    admin = create_admin_app(settings, parts=build_parts(settings))
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)  # lazily included routers
    admin_routes = {
        (method, str(getattr(route, "path", "")))
        for route in (flatten(admin.routes) if flatten is not None else admin.routes)
        for method in getattr(route, "methods", None) or ()
    }
    return {
        "admin": admin_routes,
        "gateway": {(route.method, route.template) for route in GATEWAY_ROUTES},
    }


def _resolve(cli: click.Group, words: list[str], line: str) -> tuple[click.Command, list[str]]:
    """The leaf command ``words`` names, and the words after its name."""
    command: click.Command = cli
    rest = list(words)
    while isinstance(command, click.Group):
        while rest and rest[0] in {"-v", "--verbose", "-q", "--quiet"}:
            rest.pop(0)
        assert rest, f"{line!r}: names a command group, not a command"
        context = click.Context(command)  # the root group imports its groups on demand
        sub = command.get_command(context, rest[0])
        assert sub is not None, (
            f"{line!r}: `{command.name} {rest[0]}` does not exist "
            f"(commands: {', '.join(sorted(command.list_commands(context)))})"
        )
        command, rest = sub, rest[1:]
    return command, rest


def _check_flags(command: click.Command, args: list[str], line: str) -> None:
    options = [p for p in command.params if isinstance(p, click.Option)]
    known = {"--help"} | {o for p in options for o in (*p.opts, *p.secondary_opts)}
    used = set()
    for word in args:
        if word in REDIRECTIONS:
            break
        if word.startswith("-") and word != "-":
            flag = word.split("=", 1)[0]
            assert flag in known, (
                f"{line!r}: `{command.name}` has no option {flag} "
                f"(options: {', '.join(sorted(known))})"
            )
            used.add(flag)
    for option in options:
        if option.required and not used & {*option.opts, *option.secondary_opts}:
            pytest.fail(f"{line!r}: `{command.name}` requires {'/'.join(option.opts)}")


def _matches(template: str, path: str) -> bool:
    pattern = "".join(
        "[^/]+" if i % 2 else re.escape(part)
        for i, part in enumerate(re.split(r"\{([^}]+)\}", template))
    )
    return re.fullmatch(pattern, path) is not None


def _route_of(call: Curl, routes: dict[str, set[tuple[str, str]]]) -> str:
    """The template ``call`` reaches (fails when no route of its service matches)."""
    served = routes[call.service]
    # A literal path wins over a template with a parameter in its place.
    candidates = sorted(
        (t for m, t in served if m == call.method and _matches(t, call.path)),
        key=lambda t: t.count("{"),
    )
    assert candidates, (
        f"{call.line!r}: the {call.service} serves no {call.method} {call.path} "
        f"(its {call.method} routes: {sorted(t for m, t in served if m == call.method)})"
    )
    return f"{call.method} {candidates[0]}"


# --- the tests ----------------------------------------------------------------------------


@pytest.mark.parametrize("document", [OPERATIONS, ADMIN_API_DOC], ids=lambda p: p.name)
def test_every_documented_command_and_flag_exists(cli: click.Group, document: Path) -> None:
    # Prepare
    commands = _fedembed_commands(document.read_text(encoding="utf-8"))

    # Execute / Assert
    assert commands, f"{document.name}: no fedembed command found in its shell blocks"
    for words, line in commands:
        command, args = _resolve(cli, words, line)
        _check_flags(command, args, line)


@pytest.mark.parametrize("document", [OPERATIONS, ADMIN_API_DOC], ids=lambda p: p.name)
def test_every_documented_http_call_is_a_route(
    routes: dict[str, set[tuple[str, str]]], document: Path
) -> None:
    # Prepare
    calls = _curls(document.read_text(encoding="utf-8"))

    # Execute / Assert
    assert calls, f"{document.name}: no curl command found in its shell blocks"
    for call in calls:
        _route_of(call, routes)


def test_the_walkthrough_covers_the_path_in_order(
    cli: click.Group, routes: dict[str, set[tuple[str, str]]]
) -> None:
    # Prepare
    section = _section(OPERATIONS.read_text(encoding="utf-8"), WALKTHROUGH)

    # Execute: every step as it first appears, commands and HTTP calls in document order.
    steps: list[str] = []
    for words, line in _commands(section):
        if words[0] == "fedembed":
            _, args = _resolve(cli, words[1:], line)
            steps.append(" ".join(words[1 : len(words) - len(args)]))
        elif words[0] == "curl":
            steps.append(_route_of(_curl(words, line), routes))

    # Assert: each step is there, after the steps it needs.
    order = [
        "node keygen",
        "coordinator provision",
        "node install-auth-key",
        "node ckks-keygen",
        "node ckks-install",
        "coordinator ckks-install-public",
        "coordinator superlink",
        "coordinator admin serve",
        "coordinator admin token create",
        "POST /v1/members/{name}/register",
        "node start",
        "POST /v1/runs",
        "GET /v1/runs/{name}",
        "GET /v1/budgets",
        "POST /v1/models/register",
        "POST /v1/models/{version}/promote",
        "POST /v1/partners",
        "POST /v1/collections/{collection}/query",
        "POST /v1/members",
        "node accept-members",
        "node ckks-seal",
        "POST /v1/members/{name}/revoke",
        "GET /metrics",
        "coordinator admin verify-trail",
    ]
    positions = []
    for step in order:
        assert step in steps, f"the walkthrough lacks {step!r}"
        positions.append(steps.index(step))
    for before, after, at_before, at_after in zip(
        order, order[1:], positions, positions[1:], strict=False
    ):
        assert at_before < at_after, f"the walkthrough has {after!r} before {before!r}"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def _anchors(markdown: str) -> set[str]:
    text = re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S)
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


@pytest.mark.parametrize("document", [README, OPERATIONS, ADMIN_API_DOC], ids=lambda p: p.name)
def test_relative_links_lead_to_files_and_headings(document: Path) -> None:
    # Prepare
    text = re.sub(r"^```.*?^```", "", document.read_text(encoding="utf-8"), flags=re.M | re.S)
    links = re.findall(r"\]\(([^)\s]+)\)", text)

    # Execute / Assert
    relative = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert relative, f"{document.name}: no relative link"
    for link in relative:
        target, _, anchor = link.partition("#")
        path = (document.parent / target).resolve() if target else document
        assert path.exists(), f"{document.name}: link {link!r} leads to no file"
        if anchor and path.suffix == ".md":
            assert anchor in _anchors(path.read_text(encoding="utf-8")), (
                f"{document.name}: link {link!r}: {path.name} has no heading #{anchor}"
            )


def test_the_readme_points_to_the_walkthrough_and_the_admin_api() -> None:
    # Prepare
    section = _section(README.read_text(encoding="utf-8"), WALKTHROUGH)

    # Assert
    assert "docs/operations.md#operating-a-consortium" in section
    assert "docs/admin_api.md" in section
