"""The release page as one HTML file: inline CSS, no script, nothing fetched at view time; prints cleanly."""

from __future__ import annotations

from html import escape
from typing import Any

from gitops.release.diff import ParameterChange, ResourceChange, StackDiff, StepChange, ValueChange
from gitops.report.page import FAILED, MISSING, NOT_READ, OK, WAITING, PinChange, ReleasePage, StagePage
from gitops.report.scan_results import ScanResults

_SHOWN_CHANGES = 20  # value changes per resource or step; `gitops diff --format json` has all of them
_SIGN = {"add": "+", "remove": "−", "modify": "~"}
_WORD = {"add": "added", "remove": "removed", "modify": "changed"}
_STATE_WORD = {OK: "yes", MISSING: "missing", WAITING: "waiting", FAILED: "failed", NOT_READ: "not read"}

CSS = """
:root { --ink:#1b1f24; --dim:#57606a; --line:#d0d7de; --bg:#f6f8fa; --add:#1a7f37; --del:#cf222e;
        --mod:#9a6700; --warn-bg:#fff1e5; --warn:#bc4c00; --ok-bg:#dafbe1; --bad-bg:#ffebe9; --wait-bg:#fff8c5; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); background: #fff; }
main { max-width: 1120px; margin: 0 auto; padding: 20px 24px 40px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; padding-bottom: 4px;
     border-bottom: 1px solid var(--line); } h3 { font-size: 15px; margin: 18px 0 6px; }
code, .mono { font: 12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
td code, td .mono, li code { overflow-wrap: anywhere; } /* ARNs, digests and URIs wrap inside their cell */
table { table-layout: auto; } td { overflow-wrap: anywhere; }
.dim { color: var(--dim); } .meta { color: var(--dim); margin: 0 0 12px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: var(--bg); font-weight: 600; } td.num, th.num { text-align: right; white-space: nowrap; }
tr { page-break-inside: avoid; break-inside: avoid; }
.sign { font-weight: 700; width: 1.5em; text-align: center; }
.add .sign { color: var(--add); } .remove .sign { color: var(--del); } .modify .sign { color: var(--mod); }
.badge { display: inline-block; padding: 0 6px; border-radius: 10px; font-size: 11.5px; font-weight: 600;
         border: 1px solid currentColor; white-space: nowrap; }
.badge.replace { color: var(--warn); background: var(--warn-bg); }
.badge.delete { color: var(--del); background: var(--bad-bg); }
.badge.ok { color: var(--add); background: var(--ok-bg); } .badge.failed, .badge.missing { color: var(--del);
       background: var(--bad-bg); } .badge.waiting { color: var(--mod); background: var(--wait-bg); }
.badge.notread { color: var(--dim); background: var(--bg); }
.callout { border: 1px solid var(--warn); background: var(--warn-bg); border-radius: 6px; padding: 8px 12px;
           margin: 8px 0 12px; }
.callout h3 { margin: 0 0 4px; color: var(--warn); } .callout ul { margin: 0; padding-left: 20px; }
.change { display: block; } .before { color: var(--del); } .after { color: var(--add); }
.flow { display: flex; flex-wrap: wrap; align-items: center; gap: 4px; margin: 10px 0 6px; }
.flow .node { border: 1px solid var(--line); border-radius: 14px; padding: 2px 10px; font-size: 12.5px;
              background: #fff; color: var(--dim); }
.flow .node.done { background: var(--ok-bg); color: var(--add); border-color: var(--add); }
.flow .node.current { background: var(--wait-bg); color: var(--ink); border: 2px solid var(--mod); font-weight: 700; }
.flow .node.failed { background: var(--bad-bg); color: var(--del); border-color: var(--del); }
.flow .arrow { color: var(--dim); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 10px; margin: 10px 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; }
.card b { font-size: 15px; } .here { background: var(--wait-bg); }
section.stage { page-break-before: auto; }
@media print {
  body { font-size: 10.5pt; } main { max-width: none; padding: 0; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  h2 { page-break-after: avoid; break-after: avoid; } a { color: inherit; text-decoration: none; }
}
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _badge(kind: str, text: str) -> str:
    return f'<span class="badge {kind}">{_e(text)}</span>'


def _changes(changes: list[ValueChange]) -> str:
    parts = []
    for c in changes[:_SHOWN_CHANGES]:
        before = f'<span class="before">{_e(c.before)}</span>' if c.before is not None else '<span class="dim">∅</span>'
        after = f'<span class="after">{_e(c.after)}</span>' if c.after is not None else '<span class="dim">∅</span>'
        flag = " " + _badge("replace", "forces replacement") if c.replacement else ""
        parts.append(f'<span class="change"><code>{_e(c.path)}</code>: {before} → {after}{flag}</span>')
    if len(changes) > _SHOWN_CHANGES:
        parts.append(f'<span class="dim">and {len(changes) - _SHOWN_CHANGES} more (gitops diff --format json)</span>')
    return "".join(parts)


def _cell(item: ResourceChange | StepChange | ParameterChange) -> str:
    if item.changes:
        return _changes(item.changes)
    return f'<span class="dim">{_WORD[item.action]}</span>'


def _flow(page: ReleasePage) -> str:
    nodes = []
    for i, step in enumerate(page.flow):
        if i:
            nodes.append('<span class="arrow">→</span>')
        mark = {"done": "✓ ", "failed": "✗ ", "current": "▶ "}.get(step.state, "")
        nodes.append(f'<span class="node {step.state}" title="{_e(step.state)}">{mark}{_e(step.label)}</span>')
    return f'<div class="flow" aria-label="where this release is">{"".join(nodes)}</div>'


def _n(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _stage_card(stage: StagePage) -> str:
    diff = stage.diff
    repl = sum(s.replacements for s in diff.stacks)
    dels = sum(s.count("remove") for s in diff.stacks)
    steps = sum(len(p.steps) for p in diff.pipelines)
    pins = [p.name for p in stage.pins if p.changed]
    lines = [
        f"<b>{_e(stage.stage)}</b> <span class='dim'>{_e(stage.account)} / {_e(stage.region)}</span>",
        f"{_n(len(diff.stacks), 'stack')} changed: {_n(repl, 'replacement')}, {_n(dels, 'deletion')}",
        f"{_n(len(diff.pipelines), 'pipeline')} changed: {_n(steps, 'step')} added, changed or removed",
    ]
    if pins:
        lines.append("new " + ", ".join(pins))
    if diff.empty and not pins:
        lines.append("no change to this stage")
    warn = repl or dels
    return f'<div class="card{" here" if warn else ""}">' + "<br>".join(lines) + "</div>"


def _flagged(stacks: list[StackDiff]) -> str:
    items = []
    for s in stacks:
        for r in s.resources:
            if r.action == "remove":
                items.append(
                    f"{_badge('delete', 'deletion')} <code>{_e(s.stack)}/{_e(r.logical_id)}</code> ({_e(r.type)})"
                )
            elif r.replacement:
                causes = ", ".join(f"<code>{_e(c.path)}</code>" for c in r.changes if c.replacement)
                because = f", because {causes} cannot change in place" if causes else ""
                items.append(
                    f"{_badge('replace', 'replacement')} <code>{_e(s.stack)}/{_e(r.logical_id)}</code>"
                    f" ({_e(r.type)}){because}"
                )
    if not items:
        return ""
    return (
        '<div class="callout"><h3>Replacements and deletions</h3><ul>'
        + "".join(f"<li>{item}</li>" for item in items)
        + "</ul></div>"
    )


def _stacks(stacks: list[StackDiff]) -> str:
    if not stacks:
        return '<p class="dim">No template changes.</p>'
    rows = "".join(
        f"<tr><td><code>{_e(s.stack)}</code></td><td>{_WORD[s.change]}</td><td class='num'>{s.count('add')}</td>"
        f"<td class='num'>{s.count('modify')}</td><td class='num'>{s.count('remove')}</td>"
        f"<td class='num'>{s.replacements}</td></tr>"
        for s in stacks
    )
    head = (
        "<table><tr><th>stack</th><th>change</th><th class='num'>added</th><th class='num'>changed</th>"
        "<th class='num'>removed</th><th class='num'>replaced</th></tr>"
    )
    resources = []
    for s in stacks:
        for r in s.resources:
            flag = (
                " " + _badge("delete", "deletion")
                if r.action == "remove"
                else (" " + _badge("replace", "replacement") if r.replacement else "")
            )
            resources.append(
                f"<tr class='{r.action}'><td class='sign'>{_SIGN[r.action]}</td>"
                f"<td><code>{_e(s.stack)}/{_e(r.logical_id)}</code>{flag}</td><td>{_e(r.type)}</td>"
                f"<td>{_cell(r)}</td></tr>"
            )
        resources += [
            f"<tr class='modify'><td class='sign'>~</td><td colspan='3'><code>{_e(s.stack)}</code>: {_e(o)}</td></tr>"
            for o in s.other
        ]
    table = head + rows + "</table>"
    if resources:
        table += (
            "<h3>Resources</h3><table><tr><th></th><th>resource</th><th>type</th><th>change</th></tr>"
            + "".join(resources)
            + "</table>"
        )
    return _flagged(stacks) + table


def _pipelines(stage: StagePage) -> str:
    if not stage.diff.pipelines:
        return '<p class="dim">No pipeline changes.</p>'
    out = []
    for p in stage.diff.pipelines:
        out.append(f"<h3>Pipeline <code>{_e(p.pipeline)}</code> ({_WORD[p.change]})</h3>")
        rows = [
            f"<tr class='{st.action}'><td class='sign'>{_SIGN[st.action]}</td><td>step <code>{_e(st.name)}</code></td>"
            f"<td>{_e(st.type)}</td><td>{_cell(st)}</td></tr>"
            for st in p.steps
        ]
        rows += [
            f"<tr class='{pa.action}'><td class='sign'>{_SIGN[pa.action]}</td><td>parameter <code>{_e(pa.name)}</code>"
            f"</td><td></td><td>{_cell(pa)}</td></tr>"
            for pa in p.parameters
        ]
        if rows:
            out.append(
                "<table><tr><th></th><th>step / parameter</th><th>type</th><th>change</th></tr>"
                + "".join(rows)
                + "</table>"
            )
        if p.other:
            out.append("<p>Also changed: " + ", ".join(f"<code>{_e(o)}</code>" for o in p.other) + "</p>")
    return "".join(out)


def _flat(value: Any) -> dict[str, str]:
    """A pin file as dotted keys -> short text, for a before/after table."""
    found: dict[str, str] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key in sorted(node):
                walk(f"{prefix}.{key}" if prefix else str(key), node[key])
        else:
            text = str(node)
            found[prefix] = text if len(text) <= 90 else text[:60] + "…" + text[-20:]

    walk("", value or {})
    return found


def _pins(pins: list[PinChange]) -> str:
    if not pins:
        return (
            '<p class="dim">This release pins no model or app image (no <code>model.json</code> /'
            " <code>app.json</code>).</p>"
        )
    out = []
    for pin in pins:
        before, after = _flat(pin.before), _flat(pin.after)
        rows = []
        for key in sorted(set(before) | set(after)):
            old, new = before.get(key), after.get(key)
            if old == new:
                rows.append(f"<tr><td><code>{_e(key)}</code></td><td colspan='2' class='dim'>{_e(new)}</td></tr>")
            else:
                rows.append(
                    f"<tr class='modify'><td><code>{_e(key)}</code></td><td class='before'>{_e(old or '∅')}</td>"
                    f"<td class='after'>{_e(new or '∅')}</td></tr>"
                )
        state = "unchanged" if not pin.changed else ("new" if pin.before is None else "changed")
        out.append(
            f"<h3>{_e(pin.name)} <span class='dim'>({_e(pin.file)}, {state})</span></h3>"
            "<table><tr><th>field</th><th>the stage holds</th><th>this release</th></tr>" + "".join(rows) + "</table>"
        )
    return "".join(out)


def _evidence(stage: StagePage) -> str:
    if not stage.evidence:
        return ""
    rows = "".join(
        f"<tr><td>{_e(item.label)}</td><td>{_badge(item.state.replace(' ', ''), _STATE_WORD[item.state])}</td>"
        f"<td>{_e(item.detail)}</td></tr>"
        for item in stage.evidence
    )
    return (
        f"<h3>What <code>gitops promote --from {_e(stage.stage)} --to {_e(stage.promote_to)}</code> will check</h3>"
        f"<table><tr><th>evidence</th><th>now</th><th>detail</th></tr>{rows}</table>"
    )


def _history(stage: StagePage, release_id: str) -> str:
    if stage.history is None:
        return f"<h3>Release history</h3><p class='dim'>{_e(stage.history_note)}</p>"
    if not stage.history:
        return "<h3>Release history</h3><p class='dim'>The env repository has no commits.</p>"
    rows = []
    for h in stage.history:
        here = " class='here'" if h.release_id == release_id else ""
        rid = _e(h.release_id[:12]) if h.release_id else "<span class='dim'>(seed)</span>"
        mark = " " + _badge("waiting", "this release") if h.release_id == release_id else ""
        rows.append(
            f"<tr{here}><td class='mono'>{_e(h.date[:16].replace('T', ' '))}</td><td class='mono'>{rid}{mark}</td>"
            f"<td>{_e(h.subject)}</td><td class='mono'>{_e(h.commit[:10])}</td></tr>"
        )
    return (
        "<h3>Release history <span class='dim'>(env repository, newest first)</span></h3>"
        "<table><tr><th>date</th><th>release</th><th>commit message</th><th>commit</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _stage(stage: StagePage, release_id: str) -> str:
    return (
        f"<section class='stage'><h2>Stage {_e(stage.stage)}"
        f" <span class='dim'>({_e(stage.account)} / {_e(stage.region)}) against {_e(stage.against)}</span></h2>"
        "<h3>Stacks</h3>"
        + _stacks(stage.diff.stacks)
        + "<h3>Pipelines</h3>"
        + _pipelines(stage)
        + "<h3>Model and app</h3>"
        + _pins(stage.pins)
        + _evidence(stage)
        + _history(stage, release_id)
        + "</section>"
    )


def _scan(scan: ScanResults | None, note: str, release_id: str) -> str:
    if scan is None:
        return f"<h2>Scan</h2><p class='dim'>{_e(note or 'no scan results were given (--scan)')}</p>"
    verdict = _badge("ok", "passed") if scan.passed else _badge("failed", "failed")
    stale = ""
    if scan.release_id != release_id:
        stale = (
            f" {_badge('failed', 'another release')} <span class='dim'>the log names release"
            f" {_e((scan.release_id or 'none')[:12])}</span>"
        )
    rows = "".join(
        f"<tr><td>{_e(t.tool)}</td><td class='mono'>{_e(t.version[:20])}</td><td class='num'>{t.passed}</td>"
        f"<td class='dim'>{_e(t.passed_unit)}</td><td class='num'>{t.failed}</td>"
        f"<td class='num'>{t.suppressed}</td></tr>"
        for t in scan.tools
    )
    out = [
        f"<h2>Scan {verdict}{stale}</h2><p class='meta'>from <code>{_e(scan.source)}</code></p>",
        "<table><tr><th>tool</th><th>version</th><th class='num'>passed</th><th>counted as</th>"
        f"<th class='num'>failed</th><th class='num'>suppressed</th></tr>{rows}</table>",
    ]
    if scan.failures:
        out.append("<h3>Unsuppressed findings</h3><ul>" + "".join(f"<li>{_e(f)}</li>" for f in scan.failures) + "</ul>")
    if scan.suppressions:
        srows = "".join(
            f"<tr><td>{_e(s.tool)}</td><td><code>{_e(s.rule_id)}</code></td><td><code>{_e(s.target)}</code></td>"
            f"<td>{_e(s.reason)}</td><td class='mono'>{_e(s.expires or 'no expiry')}</td></tr>"
            for s in scan.suppressions
        )
        out.append(
            f"<h3>Suppressions ({len(scan.suppressions)}, from policy.yaml)</h3>"
            "<table><tr><th>tool</th><th>rule</th><th>resource</th><th>reason</th><th>expires</th></tr>"
            + srows
            + "</table>"
        )
    return "".join(out)


def _assets(page: ReleasePage) -> str:
    if not page.assets:
        return ""
    rows = "".join(
        f"<tr class='{a.action}'><td class='sign'>{_SIGN[a.action]}</td><td><code>{_e(a.name)}</code></td>"
        f"<td class='mono'>{_e((a.before or '').split('/')[1][:12] if a.before else '')}</td>"
        f"<td class='mono'>{_e((a.after or '').split('/')[1][:12] if a.after else '')}</td></tr>"
        for a in page.assets
    )
    return (
        f"<h2>Assets ({len(page.assets)} changed)</h2><table><tr><th></th><th>file</th><th>sha256 before</th>"
        f"<th>sha256 after</th></tr>{rows}</table>"
    )


def render_html(page: ReleasePage) -> str:
    """The page, as one self-contained document."""
    short = page.release_id[:12]
    commit = f" · source commit <code>{_e(page.source_commit[:12])}</code>" if page.source_commit else ""
    target = {"none": "no target read", "local": "the embedded target", "aws": "AWS"}.get(page.target, page.target)
    versions = ", ".join(f"{_e(k)} {_e(v)}" for k, v in sorted(page.tool_versions.items()))
    body = (
        f"<main><h1>Release <code>{_e(short)}</code></h1>"
        f"<p class='meta'>id <code>{_e(page.release_id)}</code>{commit} · made {_e(page.made_at)} from {target}</p>"
        + _flow(page)
        + "<div class='cards'>"
        + "".join(_stage_card(s) for s in page.stages)
        + "</div>"
        + "".join(_stage(s, page.release_id) for s in page.stages)
        + _assets(page)
        + _scan(page.scan, page.scan_note, page.release_id)
        + f"<p class='meta'>Tools: {versions or 'not recorded'}. Approve exactly this release:"
        f" <code>gitops approve --release {_e(short)}</code>.</p></main>"
    )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        # Nothing may be fetched at view time: the page's own policy says so to the browser.
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>Release {_e(short)}</title><style>{CSS}</style></head><body>{body}</body></html>\n"
    )
