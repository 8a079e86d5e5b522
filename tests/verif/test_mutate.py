"""wavecore.verif.mutate: mutant listing, the import hook, the equivalence check, reports, and a sampled run.

The sampled run is the default tier's guard that a weakened test is noticed: a few mutants of the processing
element, drawn with a printed seed (``WAVECORE_SEED`` replays it), must each be set aside as unchanged or
proven equivalent, or be killed by the PE's tests. The full run is ``make mutation`` (``docs/benchmarks.md``).
"""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from wavecore.verif import mutate

ROOT = Path(__file__).resolve().parents[2]

SAMPLE_MODULE = '''
def check_width(width):
    return width > 0          # construction-time check: never mutated


class Block:
    def __init__(self, width):
        self.width = width + 1  # constructor: never mutated

    def elaborate(self, platform):
        total = self.a + self.b
        shifted = total << 2
        small = total <= 3
        flag = ~self.c
        return total, shifted, small, flag, True
'''


def _sample_root(tmp_path):
    (tmp_path / "hdl").mkdir()
    (tmp_path / "hdl" / "sample.py").write_text(SAMPLE_MODULE)
    return tmp_path


def test_mutants_are_listed_by_position_then_replacement_with_exact_changes(tmp_path):
    mutants = mutate.list_mutants("hdl/sample.py", root=_sample_root(tmp_path))
    changes = [(m.line, m.original, m.replacement, m.kind) for m in mutants]
    assert changes == [
        (11, "+", "-", "operator"),
        (12, "<<", ">>", "operator"),
        (12, "2", "1", "constant"),
        (12, "2", "3", "constant"),
        (13, "<=", "<", "compare"),
        (13, "3", "2", "constant"),
        (13, "3", "4", "constant"),
        (14, "~self.c", "self.c", "invert"),
        (15, "True", "False", "boolean"),
    ]
    for mutant in mutants:  # one line changed, the rest of the file as it was
        diff = mutant.diff(SAMPLE_MODULE)
        assert sum(1 for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")) == 1
    assert len({m.identifier for m in mutants}) == len(mutants)
    assert mutants[0].identifier == mutate.list_mutants("hdl/sample.py", root=tmp_path)[0].identifier


def test_every_subsystem_module_has_mutants_and_existing_tests():
    for subsystem in mutate.SUBSYSTEMS.values():
        for module, tests in subsystem.tests.items():
            assert mutate.list_mutants(module, subsystem=subsystem.name), module
            assert all((ROOT / test).is_file() for test in tests), module


def test_a_served_mutant_changes_the_generated_verilog_and_the_original_stays(tmp_path):
    (mutant,) = [m for m in mutate.list_mutants("hdl/array/pe.py", subsystem="array")
                 if m.original == "&" and m.replacement == "|"][:1]
    mutant_file = tmp_path / "mutant.json"
    mutant_file.write_text(json.dumps({"module": mutant.module, "source": mutant.source,
                                       "filename": str(ROOT / mutant.path)}))
    configuration = [{"block": "systolic", "rows": 2, "cols": 2}]
    original = mutate._verilog(configuration, None, tmp_path)
    mutated = mutate._verilog(configuration, mutant_file, tmp_path)
    assert original != mutated
    assert mutate._verilog(configuration, None, tmp_path) == original


def test_installing_after_the_import_is_refused(tmp_path):
    import wavecore.hdl.array.pe  # noqa: F401

    mutant_file = tmp_path / "mutant.json"
    mutant_file.write_text(json.dumps({"module": "wavecore.hdl.array.pe", "source": "", "filename": "pe.py"}))
    with pytest.raises(RuntimeError, match="imported before the mutant"):
        mutate.install(mutant_file)


@pytest.mark.parametrize(("gate", "equivalent"), [
    ("assign y = b & a;", True),                      # commuted: same function
    ("assign y = (a > 4'd7) ? 4'd7 : a & b;", False),  # different function
    ("assign y = a | b;", False),
])
def test_equivalence_check_proves_only_equal_netlists(tmp_path, gate, equivalent):
    template = "module top(input [3:0] a, input [3:0] b, output [3:0] y);\n{}\nendmodule\n"
    assert mutate._equivalent(template.format("assign y = a & b;"), template.format(gate), tmp_path, 120) \
        is equivalent


def test_report_scores_and_lists_survivors(tmp_path):
    def record(status, subsystem="array", line=1):
        return {"id": f"{status}{line}", "subsystem": subsystem, "status": status, "path": "hdl/array/pe.py",
                "line": line, "original": "+", "replacement": "-", "tests": ["tests/hdl/array/test_pe.py"],
                "diff": "-a + b\n+a - b\n"}

    records = [record("killed"), record("killed", line=2), record("timeout"), record("survived"),
               record("survived", line=5), record("unchanged"), record("equivalent"), record("killed", "norm")]
    argued = {"survived5": {"mutant": "x", "why it survives": "both branches give 0"}}
    mutate.write_report(records, tmp_path, population={"array": 70, "norm": 9}, argued=argued)
    report = json.loads((tmp_path / "report.json").read_text())
    table = report["subsystems"]
    # 3 killed (a timeout counts as killed) of 5 judged; with the argued survivor set aside, 3 of 4
    assert table["array"]["score"] == 0.6 and table["array"]["mutants"] == 7
    assert table["array"]["argued_score"] == 0.75 and table["array"]["population"] == 70
    assert table["norm"]["score"] == 1.0
    assert [r["id"] for r in report["survivors"]] == ["survived1"]
    assert [r["id"] for r in report["argued_survivors"]] == ["survived5"]
    text = (tmp_path / "report.md").read_text()
    low, high = mutate.wilson_interval(3, 4)
    interval = f"({100 * low:.1f}-{100 * high:.1f})"
    assert f"| array | 7 of 70 | 1 | 1 | 2 | 1 | 2 | 1 | 0 | 60.0 % | 75.0 % {interval} |" in text
    assert "## Survivors" in text and "## Timeouts" in text and "-a + b" in text
    assert "Why it survives: both branches give 0" in text


@pytest.mark.parametrize(("successes", "trials", "low", "high"), [
    # Wilson score intervals at 95 % (z = 1.96); 0 of 10 gives the textbook 0-27.8 %
    (95, 100, 0.8882, 0.9785), (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (40, 40, 0.9124, 1.0),
])
def test_wilson_interval_matches_the_closed_form(successes, trials, low, high):
    assert mutate.wilson_interval(successes, trials) == pytest.approx((low, high), abs=1e-4)


def test_sample_each_draws_the_same_number_from_every_subsystem_reproducibly(tmp_path):
    run = mutate.MutationRun(output=tmp_path, subsystems=["array", "norm"], each=7, seed=4)
    mutants = run.mutants()
    assert [m.subsystem for m in mutants].count("array") == 7 and [m.subsystem for m in mutants].count("norm") == 7
    again = mutate.MutationRun(output=tmp_path, subsystems=["array", "norm"], each=7, seed=4).mutants()
    assert [m.identifier for m in mutants] == [m.identifier for m in again]
    other = mutate.MutationRun(output=tmp_path, subsystems=["array", "norm"], each=7, seed=5).mutants()
    assert [m.identifier for m in mutants] != [m.identifier for m in other]
    # a larger draw with the same seed extends this one, so its finished results carry over
    larger = mutate.MutationRun(output=tmp_path, subsystems=["array", "norm"], each=20, seed=4).mutants()
    for name in ("array", "norm"):
        assert [m.identifier for m in larger if m.subsystem == name][:7] == \
               [m.identifier for m in mutants if m.subsystem == name]
    population = run.population()
    assert population["array"] == len(mutate.MutationRun(output=tmp_path, subsystems=["array"]).mutants())


@pytest.mark.parametrize(("args", "message"), [
    (["--module", "hdl/nothing.py"], "--module must be one of"),
    (["--sample", "0"], "--sample must be a positive integer, not 0"),
    (["--sample-each", "-2"], "--sample-each must be a positive integer, not -2"),
    (["--sample-each", "2", "--sample", "3"], "--sample-each cannot be combined with sample"),
    (["--jobs", "0"], "--jobs must be a positive integer, not 0"),
    (["--subsystem", "cpu"], "argument --subsystem: invalid choice: 'cpu'"),
])
def test_cli_refuses_bad_options_in_one_line(tmp_path, args, message):
    result = subprocess.run([sys.executable, "-m", "wavecore", "mutate", "--list", "-o", str(tmp_path / "m"), *args],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()


def test_changed_modules_are_the_generator_files_a_change_touched(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    for name in ("hdl/array/pe.py", "hdl/memory/dma.py", "docs/notes.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    (tmp_path / "hdl/memory/dma.py").write_text("x = 2\n")
    (tmp_path / "docs/notes.md").write_text("changed\n")
    assert mutate.changed_modules("HEAD", root=tmp_path) == ["hdl/memory/dma.py"]
    with pytest.raises(ValueError, match="changed must name a git revision of .*, not 'nope'"):
        mutate.changed_modules("nope", root=tmp_path)


def test_sampled_mutants_of_the_last_change_are_caught(tmp_path):
    # A few mutants (seed printed; WAVECORE_SEED replays it) of the generator modules the last commit touched,
    # or of the PE when it touched none, against the module's own tests: each must be unchanged, proven
    # equivalent or killed; a survivor not argued equivalent in mutation_known_survivors.json (reason given
    # there) means a test got weaker or the change is not tested.
    seed = int(os.environ.get("WAVECORE_SEED", random.SystemRandom().randrange(1 << 31)))
    try:
        changed = mutate.changed_modules("HEAD~1")
    except ValueError:  # a clone without the parent commit
        changed = []
    print(f"mutation sample seed {seed} (WAVECORE_SEED={seed} replays it); modules: {changed or 'the PE'}")
    known = json.loads((Path(__file__).parent / "mutation_known_survivors.json").read_text())
    if changed:
        run = mutate.MutationRun(output=tmp_path, modules=changed, sample=3, seed=seed, timeout=600, jobs=2,
                                 subsystems=[name for name, subsystem in mutate.SUBSYSTEMS.items()
                                             if set(changed) & set(subsystem.modules)])
    else:
        run = mutate.MutationRun(output=tmp_path, subsystems=["array"],
                                 modules=["hdl/array/pe.py", "hdl/array/multiplier.py"], sample=3, seed=seed,
                                 tests=["tests/hdl/array/test_pe.py"], timeout=600, jobs=2)
    records = run.run()
    assert len(records) == min(3, len(run.mutants()))
    assert all(record["status"] != "error" for record in records), records
    unexpected = [f"{r['path']}:{r['line']} {r['original']} -> {r['replacement']} (seed {seed})"
                  for r in records if r["status"] == "survived" and r["id"] not in known]
    assert unexpected == [], f"mutants the tests no longer catch: {unexpected}; see {tmp_path / 'report.md'}"
    assert (tmp_path / "report.md").is_file()


def test_a_mutant_is_elaborated_only_in_the_configurations_that_load_its_module(tmp_path):
    # The memory subsystem's configurations are one block each (registry component paths): the DMA's module is
    # loaded by the DMA configuration alone, the banked reader by the three feeders that build on it.
    subsystem = mutate.SUBSYSTEMS["memory"]
    original = mutate._Original.of(subsystem, tmp_path)
    blocks = [configuration["block"] for configuration in subsystem.configurations]
    assert [blocks[i] for i in original.exposing("hdl/memory/dma.py")] == ["dma"]
    assert sorted(blocks[i] for i in original.exposing("hdl/memory/bank_reader.py")) == \
        ["feeder", "position_feeder", "weight_feeder"]
    assert original.exposing("hdl/array/pe.py") == []


def test_netlists_with_memories_are_not_sent_to_yosys(tmp_path):
    # equiv_make refuses memories: such a pair is "not proven" at once, without a Yosys process
    with_memory = "module top(input clk);\n  reg [7:0] buffer0 [2047:0];\nendmodule\n"
    without = "module top(input clk);\n  reg [7:0] data;\nendmodule\n"
    assert mutate._has_memory(with_memory) and not mutate._has_memory(without)
    assert mutate._equivalent(with_memory, with_memory, tmp_path, timeout=1e-3) is False
    assert not (tmp_path / "gold.v").exists()


def test_two_operators_of_one_expression_are_two_mutants_with_their_own_ids(tmp_path):
    # `a & b & c` is one expression node holding another, both starting at `a`: each mutant is named by its own
    # token (line and column), so the two have different ids and positions (one id for both lost a result)
    (tmp_path / "hdl").mkdir()
    (tmp_path / "hdl" / "block.py").write_text("def elaborate(self, platform):\n    return a & b & c\n")
    mutants = mutate.list_mutants("hdl/block.py", root=tmp_path)
    assert [(m.line, m.column, m.original, m.replacement) for m in mutants] == [(2, 13, "&", "|"), (2, 17, "&", "|")]
    assert len({m.identifier for m in mutants}) == 2


def test_every_known_survivor_is_a_mutant_of_the_current_tree():
    # An argued survivor is keyed by its mutant's position: when its module changes, the entry must move with it
    # (else the mutant, drawn by the sample, is reported as unexpected, and the argument is lost).
    known = json.loads((Path(__file__).parent / "mutation_known_survivors.json").read_text())
    paths = sorted({entry["mutant"].split(":")[0] for entry in known.values()})
    current = {}
    for path in paths:
        current.update({mutant.identifier: mutant for mutant in mutate.list_mutants(path, root=ROOT, parse=False)})
    stale = [f"{key}: {entry['mutant']}" for key, entry in known.items() if key not in current]
    assert stale == []
    moved = [f"{key}: {entry['mutant']} is at line {current[key].line}" for key, entry in known.items()
             if int(entry["mutant"].split(":")[1]) != current[key].line]
    assert moved == []


def test_a_timed_out_test_run_takes_its_simulators_with_it(tmp_path):
    # the tests of a mutant that hangs the design: pytest's child (a simulator) must not outlive the timeout
    import subprocess
    import sys
    import time

    marker = tmp_path / "grandchild.pid"
    script = ("import subprocess, sys; child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
              f"open({str(marker)!r}, 'w').write(str(child.pid)); child.wait()")
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        mutate.run_process_group([sys.executable, "-c", script], cwd=tmp_path, env=None, timeout=2)
    assert time.monotonic() - started < 20  # not held until the grandchild's 60 s are over
    grandchild = int(marker.read_text())
    time.sleep(0.2)
    stat = Path(f"/proc/{grandchild}/stat")  # gone, or a zombie waiting for init to reap it: not running
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    finished = mutate.run_process_group([sys.executable, "-c", "print('done')"], cwd=tmp_path, env=None, timeout=30)
    assert (finished.returncode, finished.stdout) == (0, "done\n")
