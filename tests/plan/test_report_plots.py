"""golden/plan/report.py plots: layer names on the per-layer axis, log axes with plain-number ticks, the chosen
buffer marked, and no stale plot left behind in a reused output directory."""

import pytest
from matplotlib.figure import Figure

from wavecore.cli import main
from wavecore.golden.network import load_network


@pytest.fixture
def figures(monkeypatch):
    """Every figure the report saves, by file name (captured on the way to ``savefig``)."""
    saved = {}
    original = Figure.savefig

    def record(self, path, *args, **kwargs):
        name = str(path).rsplit("/", 1)[-1]
        saved[next(plot for plot in ("per_layer_traffic", "traffic_vs_buffer", "row_blocks") if plot in name)] = self
        return original(self, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    return saved


def _labels(axis, which):
    axis.figure.canvas.draw()
    ticks = axis.get_xticklabels() if which == "x" else axis.get_yticklabels()
    low, high = axis.get_xlim() if which == "x" else axis.get_ylim()
    positions = axis.get_xticks() if which == "x" else axis.get_yticks()
    return [tick.get_text() for tick, at in zip(ticks, positions) if min(low, high) <= at <= max(low, high)]


def test_plots_name_layers_use_readable_log_axes_and_mark_the_buffer(tmp_path, figures, capsys):
    assert main(["plan", "--network", "tiny_resnet", "--batch", "4", "--buffer", "2MiB", "--quiet",
                 "-o", str(tmp_path)]) == 0
    network = load_network("tiny_resnet", norm="gn")
    folded = ("batchnorm", "groupnorm", "relu", "flatten")
    producers = [layer.name for layer in network.layers if layer.op not in folded]
    per_layer = figures["per_layer_traffic"].axes[0]
    assert _labels(per_layer, "x") == producers  # every producing layer by name, in topological order
    assert per_layer.get_yscale() == "log"
    y_labels = _labels(per_layer, "y")
    assert y_labels and all("$" not in label and "e" not in label for label in y_labels)
    sweep = figures["traffic_vs_buffer"].axes[0]
    assert (sweep.get_xscale(), sweep.get_yscale()) == ("log", "log")
    assert _labels(sweep, "x") == ["1", "2", "4", "8", "16", "32", "64"]
    assert all("$" not in label for label in _labels(sweep, "y"))
    marks = [line for line in sweep.get_lines() if line.get_label().startswith("chosen buffer")]
    assert len(marks) == 1 and marks[0].get_label() == "chosen buffer (2 MiB)"
    assert list(marks[0].get_xdata()) == [2.0, 2.0]


def test_a_reused_output_directory_keeps_no_stale_plot(tmp_path, capsys):
    assert main(["plan", "--network", "tiny_resnet", "--batch", "4", "--quiet", "-o", str(tmp_path)]) == 0
    (tmp_path / "mine.png").write_bytes(b"not a report plot")
    assert {path.name for path in tmp_path.glob("*.png")} == {"per_layer_traffic.png", "traffic_vs_buffer.png",
                                                              "mine.png"}
    assert main(["plan", "--network", "resnet18", "--schedule", "lrcnn", "--quiet", "-o", str(tmp_path)]) == 0
    assert {path.name for path in tmp_path.glob("*.png")} == {"row_blocks.png", "mine.png"}
    report = (tmp_path / "report.md").read_text()
    assert "![row_blocks.png](row_blocks.png)" in report and "per_layer_traffic" not in report
