"""Leaderboards as one self-contained HTML page: inline CSS, inline JS for sorting, inline
SVG for the intervals and the headline chart of each board."""

from __future__ import annotations

import html
import re
from pathlib import Path

from minbench.scoring.render.rows import (REFERENCE_MARK, TaskSection, board_title, board_view, boards_of, columns,
                                          dataset_line, fmt, fmt_ci, headline_note, is_fraction, is_reference,
                                          method_text, origin, shown_name)

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#1d2430;background:#fff;padding:0 1rem}
h1{font-size:1.6rem}h2{margin-top:2.5rem;border-bottom:2px solid #d8dee8;padding-bottom:.3rem}
h3{font-size:1.05rem;margin:1.6rem 0 .2rem}.meta{color:#5b6678;margin:.1rem 0 .6rem}
nav a{margin-right:1rem}
table.lb{border-collapse:collapse;width:100%;margin:.4rem 0 .6rem}
table.lb th,table.lb td{padding:.3rem .5rem;border-bottom:1px solid #e3e7ee;text-align:left;vertical-align:middle}
table.lb th{background:#f3f5f9;cursor:pointer;user-select:none;white-space:nowrap}
table.lb th[aria-sort=ascending]::after{content:" \\25B2";font-size:.7em}
table.lb th[aria-sort=descending]::after{content:" \\25BC";font-size:.7em}
table.lb td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.lb td.head{font-weight:600}
.cibar{vertical-align:middle;margin-left:.4rem}.citext{color:#5b6678;font-weight:400;margin-left:.3rem}
.ref table.lb{opacity:.9}.ref h3{color:#6b4f00}
.chart{margin:.3rem 0 1rem}.chart text{font-size:11px;fill:#1d2430}
.src{color:#5b6678;font-size:.9em}.origin{font-size:.75em;color:#5b6678;font-weight:400}
table.floors{opacity:.8;width:auto}.empty{color:#5b6678;font-style:italic}
tr.reference td{background:#f7f8fa;color:#4a5466}.refmark{font-size:.8em;color:#5b6678;font-weight:600}
"""

_JS = r"""
(function(){
  function cellValue(row, i, type){
    var c = row.cells[i]; var v = c.getAttribute('data-value');
    if (type === 'num'){ var x = parseFloat(v); return isNaN(x) ? null : x; }
    return (v !== null ? v : c.textContent).toLowerCase();
  }
  function sortTable(table, i, dir){
    var th = table.tHead.rows[0].cells[i], type = th.getAttribute('data-type');
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    rows.sort(function(a, b){
      var x = cellValue(a, i, type), y = cellValue(b, i, type);
      if (x === null && y === null) return 0; if (x === null) return 1; if (y === null) return -1;
      var r = x < y ? -1 : x > y ? 1 : 0; return dir === 'ascending' ? r : -r;
    });
    rows.forEach(function(r){ body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function(c){ c.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', dir);
  }
  document.querySelectorAll('table.lb').forEach(function(table){
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function(th, i){
      th.addEventListener('click', function(){
        var now = th.getAttribute('aria-sort');
        var dir = now ? (now === 'ascending' ? 'descending' : 'ascending')
                      : (th.getAttribute('data-type') === 'num' && th.getAttribute('data-hib') !== 'false'
                         && th.getAttribute('data-key') !== 'rank' ? 'descending' : 'ascending');
        sortTable(table, i, dir);
      });
    });
  });
  // #sort=TABLE_ID:COLUMN_KEY:asc|desc opens the page sorted (links, tests)
  var m = /sort=([^:&]+):([^:&]+):(asc|desc)/.exec(decodeURIComponent(location.hash));
  if (m){
    var t = document.getElementById(m[1]);
    if (t){ Array.prototype.forEach.call(t.tHead.rows[0].cells, function(th, i){
      if (th.getAttribute('data-key') === m[2]) sortTable(t, i, m[3] === 'asc' ? 'ascending' : 'descending');
    }); }
  }
  document.documentElement.setAttribute('data-sortable', 'ready');
})();
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _scale(board: dict, col: dict) -> tuple[float, float]:
    if is_fraction(col):
        return 0.0, 1.0
    values = []
    for e in board["entries"]:
        v = e["metrics"].get(col["name"])
        if v is not None:
            values.append(v)
        ci = e.get("ci", {}).get(col["name"]) or {}
        values += [x for x in (ci.get("low"), ci.get("high")) if x is not None]
    lo = min([0.0] + values)
    hi = max(values + [lo + 1e-9])
    return lo, hi + 0.05 * (hi - lo)


def _ci_bar(value, ci, lo, hi, width=90, height=12) -> str:
    """A small SVG: the scale's track, the interval as a bar, the value as a dot."""
    def x(v):
        return 3 + (width - 6) * (min(max(v, lo), hi) - lo) / (hi - lo if hi > lo else 1)

    parts = [f'<svg class="cibar" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="95% interval">',
             f'<line x1="3" x2="{width - 3}" y1="{height / 2}" y2="{height / 2}" stroke="#d5dbe5" stroke-width="2"/>']
    if ci and ci.get("low") is not None and ci.get("high") is not None:
        parts.append(f'<rect class="ci" x="{x(ci["low"]):.1f}" y="2" width="{max(x(ci["high"]) - x(ci["low"]), 1.5):.1f}" '
                     f'height="{height - 4}" rx="2" fill="#7aa7e6"/>')
    if value is not None:
        parts.append(f'<circle cx="{x(value):.1f}" cy="{height / 2}" r="3" fill="#173e7a"/>')
    return "".join(parts) + "</svg>"


def _chart(board: dict, col: dict, rows: list[tuple[int | None, dict]]) -> str:
    """Dot-and-whisker chart of the headline per entry (inline SVG)."""
    lo, hi = _scale(board, col)
    items = [(r, e) for r, e in rows if e["metrics"].get(col["name"]) is not None]
    if not items:
        return ""
    left, width, row_h, top = 220, 640, 22, 26
    plot_w = width - left - 45  # room for the last tick label
    height = top + row_h * len(items) + 24

    def x(v):
        return left + plot_w * (min(max(v, lo), hi) - lo) / (hi - lo if hi > lo else 1)

    direction = "higher" if col["higher_is_better"] else "lower"
    out = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{_e(col["name"])} per entry">',
           f'<text x="{left}" y="14" font-weight="600">{_e(col["name"])} per entry ({direction} is better)'
           f'{"; bars: 95% interval" if any(e.get("ci", {}).get(col["name"]) for _, e in items) else ""}</text>']
    for i in range(6):
        v = lo + (hi - lo) * i / 5
        xx = x(v)
        out.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{top - 4}" y2="{height - 20}" stroke="#eef1f5"/>')
        out.append(f'<text x="{xx:.1f}" y="{height - 6}" text-anchor="middle">{_e(fmt(v, col))}</text>')
    for j, (rank, e) in enumerate(items):
        y = top + row_h * j + row_h / 2
        v = e["metrics"][col["name"]]
        label = (f"{rank}. " if rank else "") + shown_name(e)
        label = label if len(label) <= 34 else label[:33] + "…"
        out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{_e(label)}</text>')
        ci = e.get("ci", {}).get(col["name"]) or {}
        if ci.get("low") is not None and ci.get("high") is not None:
            x1, x2 = x(ci["low"]), x(ci["high"])
            out.append(f'<line class="whisker" x1="{x1:.1f}" x2="{x2:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                       f'stroke="#7aa7e6" stroke-width="3"/>')
            for xx in (x1, x2):
                out.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{y - 5:.1f}" y2="{y + 5:.1f}" stroke="#7aa7e6" stroke-width="2"/>')
        colour = "#b7791f" if e["source"] == "published" else "#8a94a6" if is_reference(e) else "#173e7a"
        out.append(f'<circle class="point" cx="{x(v):.1f}" cy="{y:.1f}" r="5" fill="{colour}">'
                   f'<title>{_e(e["name"])}: {_e(fmt(v, col))} {_e(fmt_ci(ci, col))}</title></circle>')
    return "".join(out) + "</svg>"


def _html_board(s: TaskSection, board: dict, table_id: str, path: Path) -> str:
    cols = board["metrics"]
    head = board.get("headline")
    view = board_view(path, board)
    rows = [(r.rank, r.entry) for r in view.rows]
    head_col = columns(board).get(head) if head else None
    scale = _scale(board, head_col) if head_col else (0.0, 1.0)
    out = [f'<div class="board{" ref" if board["reference"] else ""}">',
           f'<h3>{_e(board_title(s, board))} <span class="origin">{_e(origin(path))}</span></h3>',
           f'<p class="meta">{_e(dataset_line(board))} · {_e(headline_note(board))} · {len(rows)} {"entry" if len(rows) == 1 else "entries"}</p>']
    if not rows:
        return "".join(out) + '<p class="empty">No entries yet.</p></div>'
    if head_col:
        out.append(f'<figure class="chart">{_chart(board, head_col, rows)}</figure>')
    ths = ['<th data-key="rank" data-type="num">#</th>', '<th data-key="name" data-type="text">Name</th>',
           '<th data-key="method" data-type="text">Method</th>', '<th data-key="source" data-type="text">Source</th>']
    for c in cols:
        label = c["name"] + (" [95% CI]" if c["name"] == head and not board["reference"] else "")
        ths.append(f'<th data-key="{_e(c["name"])}" data-type="num" data-hib="{str(c["higher_is_better"]).lower()}">'
                   f'{_e(label)}</th>')
    ths += ['<th data-key="n" data-type="num">n</th>', '<th data-key="seeds" data-type="text">Seeds</th>',
            '<th data-key="date" data-type="text">Added</th>']
    out.append(f'<table class="lb" id="{_e(table_id)}"><thead><tr>{"".join(ths)}</tr></thead><tbody>')
    for r in view.rows:
        rank, e = r.rank, r.entry
        tds = [f'<td class="num" data-value="{rank if rank else ""}">{_e(r.group)}</td>',
               f'<td data-value="{_e(e["name"])}">' + (f'<span class="refmark">{_e(REFERENCE_MARK)}</span> '
                                                       if is_reference(e) else "") + f'{_e(e["name"])}</td>',
               f'<td>{_e(method_text(e))}</td>', f'<td>{_e(e["source"])}</td>']
        for c in cols:
            v = e["metrics"].get(c["name"])
            cell = _e(fmt(v, c))
            if c["name"] == head:
                ci = e.get("ci", {}).get(c["name"])
                cell += f'<span class="citext">{_e(fmt_ci(ci, c))}</span>' + _ci_bar(v, ci, *scale)
            tds.append(f'<td class="num{" head" if c["name"] == head else ""}" '
                       f'data-value="{"" if v is None else repr(float(v))}">{cell}</td>')
        tds += [f'<td class="num" data-value="{e["n_samples"] if e["n_samples"] is not None else ""}">'
                f'{e["n_samples"] if e["n_samples"] is not None else ""}</td>', f'<td class="num">{_e(r.seeds)}</td>',
                f'<td>{_e(e["date"][:10])}</td>']
        ref = ' class="reference"' if is_reference(e) else ""
        out.append(f'<tr data-name="{_e(e["name"])}"{ref}>{"".join(tds)}</tr>')
    out.append("</tbody></table>")
    if view.floors:
        out.append('<table class="lb floors"><thead><tr><th>Floor (not ranked)</th>'
                   + "".join(f"<th>{_e(c['name'])}</th>" for c in cols) + "</tr></thead><tbody>")
        for f in view.floors:
            out.append(f'<tr><td title="{_e(f["description"])}">{_e(f["name"])}</td>'
                       + "".join(f'<td class="num">{_e(fmt(f["metrics"].get(c["name"]), c))}</td>' for c in cols)
                       + "</tr>")
        out.append("</tbody></table>")
    out += [f'<p class="src">{_e(n)}</p>' for n in view.notes]
    cites = sorted({e["citation"] for e in board["entries"] if e.get("citation")})
    out += [f'<p class="src">Source: {_e(c)}</p>' for c in cites]
    return "".join(out) + "</div>"


def _table_id(section: TaskSection, path: Path) -> str:
    return "t-" + re.sub(r"[^A-Za-z0-9_-]+", "-", f"{section.card.id}-{path.stem}")


def render_html(sections: list[TaskSection], *, generated: str = "") -> str:
    """One self-contained HTML page (no network at view time)."""
    body = ['<h1>minbench leaderboards</h1>',
            '<p class="meta">Mineral recognition benchmarks. Each table ranks entries scored on one dataset '
            '(its truth fingerprint: ids, splits, labels, masks, sizes); published and reference numbers are listed apart and never ranked '
            f'against them. Click a column to sort.{(" Generated " + _e(generated) + ".") if generated else ""}</p>']
    if sections:
        body.append("<nav>" + "".join(f'<a href="#task-{_e(s.card.id)}">{_e(s.card.id)}</a>' for s in sections)
                    + "</nav>")
    else:
        body.append('<p class="empty">No leaderboards yet: score a submission with <code>minbench score</code>.</p>')
    for s in sections:
        body.append(f'<section id="task-{_e(s.card.id)}"><h2>{_e(s.card.id)} · {_e(s.card.title)}</h2>')
        boards = boards_of(s)
        if not boards:
            body.append('<p class="empty">No entries yet.</p>')
        for path, board in boards:
            body.append(_html_board(s, board, _table_id(s, path), path))
        body.append("</section>")
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<title>minbench leaderboards</title>"
            f"<style>{_CSS}</style></head><body>{''.join(body)}<script>{_JS}</script></body></html>\n")
