"""Helpers of the report tests: parse a page, make a small sweep folder."""

import csv
import re
from html.parser import HTMLParser
from pathlib import Path


class PageParser(HTMLParser):
    """Collects what the report tests check: images, links, every URL-bearing attribute,
    the verdict table's cells, the text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.images, self.links, self.urls, self.text = [], [], [], []
        self.verdict_rows, self._in_verdicts, self._row, self._cell = [], False, None, None
        self.tags = 0

    def handle_starttag(self, tag, attrs):
        self.tags += 1
        attrs = dict(attrs)
        for key in ("src", "href", "data", "action", "poster", "srcset"):
            if attrs.get(key):
                self.urls.append(attrs[key])
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "a":
            self.links.append(attrs.get("href", ""))
        if tag == "table" and attrs.get("id") == "verdicts":
            self._in_verdicts = True
        if self._in_verdicts and tag == "tr":
            self._row = []
        if self._row is not None and tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if self._cell is not None and tag in ("td", "th"):
            self._row.append("".join(self._cell).strip())
            self._cell = None
        if self._row is not None and tag == "tr":
            self.verdict_rows.append(self._row)
            self._row = None
        if tag == "table":
            self._in_verdicts = False

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def parse_page(path):
    parser = PageParser()
    text = Path(path).read_text(encoding="utf-8")
    parser.feed(text)
    parser.close()
    parser.source = text
    return parser


def check_self_contained(page):
    """Every image embedded, no http(s) URL loaded (links to http are not loads, but
    the pages have none anyway), no script."""
    assert page.images, "the page has no figure"
    for src in page.images:
        assert src.startswith("data:image/png;base64,"), src[:60]
    assert not re.search(r"(src|href|url\()\s*=?\s*[\"']?https?://", page.source)
    assert "<script" not in page.source.lower()
    assert "@import" not in page.source


def fmt(x):
    return "–" if x is None else format(x, ".4g")


def check_verdicts(page, document):
    """The verdict table holds the numbers of the analyze JSON document."""
    header, *rows = page.verdict_rows
    assert len(rows) == len(document["results"]), (page.verdict_rows, document["results"])
    col = {name: i for i, name in enumerate(header)}
    for row, r in zip(rows, document["results"]):
        assert row[col["loss"]] == r["loss"]
        assert row[col["verdict"]] == r["verdict"]
        assert row[col["descent fraction"]] == fmt(r["descent_fraction"])
        assert row[col["moving / records"]] == f"{r['moving_records']}/{r['records']}"
        assert row[col["ψ (°) median / p95 / max"]] == " / ".join(fmt(r["psi_deg"][k]) for k in ("median", "p95", "max"))
        assert row[col["κ_min median / p95 / max"]] == " / ".join(fmt(r["kappa_min"][k]) for k in ("median", "p95", "max"))
        assert row[col["resid cI"]] == fmt(r["scalar_metric"]["relative_residual"])


def write_sweep(directory, runs, stability):
    """A sweep folder as ``plasticity sweep`` writes it: ``runs/`` holds the run files
    (moved there), ``sweep.csv`` one row per run and loss, from each run's stored
    analysis. ``runs``: ``[(eta text, seed, run file)]``; ``stability``: eta text → value."""
    import h5py

    from plasticity.analysis import analyze_file

    directory = Path(directory)
    (directory / "runs").mkdir(parents=True, exist_ok=True)
    columns = ["run", "seed", "rule.eta", "status", "message", "file", "wall_s", "loss", "verdict",
               "descent_fraction", "psi_deg_median", "kappa_min_median", "stability_max_real"]
    with open(directory / "sweep.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        for k, (eta, seed, path) in enumerate(runs):
            target = directory / "runs" / Path(path).name
            Path(path).rename(target)
            doc = analyze_file(target)            # as the sweep does after each run
            with h5py.File(target, "r") as f:
                status = f.attrs["status"]
            for r in doc["results"]:
                writer.writerow({"run": k, "seed": seed, "rule.eta": eta, "status": status, "message": "",
                                 "file": f"runs/{target.name}", "wall_s": 1.0, "loss": r["loss"],
                                 "verdict": r["verdict"], "descent_fraction": r["descent_fraction"],
                                 "psi_deg_median": r["psi_deg"]["median"],
                                 "kappa_min_median": r["kappa_min"]["median"],
                                 "stability_max_real": stability[eta]})
    return directory
