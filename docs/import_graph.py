"""Draw the package's layers and the imports between them (docs/figures/imports.png).

Run: ``python docs/import_graph.py``. The graph is the one tests/test_architecture.py
checks (every import, also inside functions, between the package's layers).
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_architecture import graph, layer  # noqa: E402

#: drawing rows, top to bottom: the command line and the sweeps; the flow config → sim →
#: io ← analysis ← report (left to right); what both sides share; the helpers everyone
#: may import
ROWS = [["runner", "cli", "sweep"], ["config", "sim", "io", "analysis", "report"],
        ["systems", "rules", "inputs"], ["units", "errors", "__init__"]]


def main():
    layers = nx.DiGraph()
    for a, b in graph().edges:
        if layer(a) != layer(b):
            layers.add_edge(layer(a), layer(b))
    assert nx.is_directed_acyclic_graph(layers)
    position = {}
    for row, names in enumerate(ROWS):
        for column, name in enumerate(names):
            position[name] = ((column - (len(names) - 1) / 2) * 2.4, -1.3 * row)
    missing = set(layers) - set(position)
    assert not missing, f"place these layers in ROWS: {missing}"
    fig, ax = plt.subplots(figsize=(10.5, 5.5))
    nx.draw_networkx_nodes(layers, position, node_color="#dfe9f5", node_size=2200, ax=ax)
    nx.draw_networkx_labels(layers, position, font_size=9, ax=ax)
    nx.draw_networkx_edges(layers, position, arrows=True, arrowsize=12, node_size=2200,
                           edge_color="#555", connectionstyle="arc3,rad=0.12", ax=ax)
    ax.set_title("plasticity: imports between layers (no cycle)", fontsize=11)
    ax.axis("off")
    fig.tight_layout()
    out = ROOT / "docs" / "figures" / "imports.png"
    fig.savefig(out, dpi=90)
    print(out)


if __name__ == "__main__":
    main()
