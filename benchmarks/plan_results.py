"""Reproduce the planner figures of ``docs/results.md``.

Run: ``.venv/bin/python benchmarks/plan_results.py [--section mbs|small|bnff|occam|lrcnn|caterpillar]``.
"""

from __future__ import annotations

import argparse

from wavecore.golden.network import load_network
from wavecore.golden.plan import caterpillar, occam
from wavecore.golden.plan.bnff import fusion_saving, site_passes
from wavecore.golden.plan.mbs import plan_baseline, plan_greedy, plan_optimal
from wavecore.golden.plan.report import MBS_SCHEDULES, lrcnn_rows, plan_mbs_family
from wavecore.golden.plan.traffic import NetworkModel, TrafficOptions

MIB = 1 << 20


def mbs():
    print("## MBS: batch 32, buffer 10 MiB, bf16, GN, options = TrafficOptions() defaults")
    print(
        "| network | baseline MiB | greedy MiB | optimal MiB | greedy reduction | optimal reduction | "
        "optimal sub-batches | lower bound MiB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in ("resnet50", "googlenet", "densenet121"):
        network = load_network(name, norm="gn")
        model = NetworkModel(network, TrafficOptions())
        base = plan_baseline(network, 32, model=model).traffic
        greedy = plan_greedy(network, 32, 10 * MIB, model=model)
        optimal = plan_optimal(network, 32, 10 * MIB, model=model)
        serial = [b for i, (_, b) in enumerate(optimal.groups) if i not in optimal.tiled]
        print(
            f"| {name} | {base.total / MIB:,.0f} | {greedy.traffic.total / MIB:,.0f} | "
            f"{optimal.traffic.total / MIB:,.0f} | "
            f"{100 * (1 - greedy.traffic.total / base.total):.1f}% | "
            f"{100 * (1 - optimal.traffic.total / base.total):.1f}% | {serial} | "
            f"{base.lower_bound / MIB:,.0f} |"
        )
    mbs_details()


def _reduction(plan, baseline):
    return 100 * (1 - plan.traffic.total / baseline.traffic.total)


def mbs_details():
    """The other MBS figures of docs/results.md: MBS's share against a fused baseline, BN, the bound, the sweep."""
    print("\nMBS against a baseline that fuses its norm passes too (norm_variant='fused' for both):")
    for name in ("resnet50", "googlenet", "densenet121"):
        model = NetworkModel(load_network(name, norm="gn"), TrafficOptions(norm_variant="fused"))
        network = model.network
        base = plan_baseline(network, 32, model=model)
        optimal = plan_optimal(network, 32, 10 * MIB, model=model)
        greedy = plan_greedy(network, 32, 10 * MIB, model=model)
        print(f"  {name}: optimal {_reduction(optimal, base):.1f} %, greedy {_reduction(greedy, base):.1f} %")
    print("With BatchNorm (--norm bn), optimal MBS vs baseline:")
    for name in ("resnet50", "densenet121"):
        network = load_network(name, norm="bn")
        model = NetworkModel(network, TrafficOptions())
        base = plan_baseline(network, 32, model=model)
        print(f"  {name}: {_reduction(plan_optimal(network, 32, 10 * MIB, model=model), base):.1f} %")
    network = load_network("resnet50", norm="gn")
    model = NetworkModel(network, TrafficOptions())
    optimal = plan_optimal(network, 32, 10 * MIB, model=model).traffic
    print(
        f"resnet50 optimal: {optimal.total / optimal.lower_bound:.1f}x the compulsory bound; stash "
        f"{optimal.per_class['stash'] / (1 << 30):.1f} GiB of {optimal.total / (1 << 30):.1f} GiB, weight grads "
        f"{optimal.per_class['weight_grads'] / (1 << 30):.2f} GiB"
    )
    sweep = (1, 2, 4, 8, 16, 32, 64)
    print("\nTraffic vs buffer (resnet50, MiB per iteration)")
    print("| schedule | " + " | ".join(f"{m} MiB" for m in sweep) + " |")
    print("|---|" + "---|" * len(sweep))
    for schedule in MBS_SCHEDULES:
        values = [
            plan_mbs_family(network, 32, m * MIB, TrafficOptions(), (schedule,))[schedule].traffic.total
            for m in sweep
        ]
        print(f"| {schedule} | " + " | ".join(f"{v / MIB:,.0f}" for v in values) + " |")


def small_buffers():
    """FPGA-size buffers: the tiny nets at batch 8, int8, 8x8 os array, weight-tile reserve sized per group."""
    print("## Small buffers: batch 8, int8, 8x8 os array, GN, TrafficOptions(dtype_bytes=1, array 8x8)")
    print("| network | buffer | baseline B | optimal B | cut | groups | sub-batches | peak footprint B | reserve B |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in ("tiny_resnet", "tiny_concat", "tiny_mobilenet"):
        network = load_network(name)
        options = TrafficOptions(dtype_bytes=1, array_rows=8, array_cols=8)
        model = NetworkModel(network, options)
        base = plan_baseline(network, 8, model=model)
        for kib in (16, 32, 64, 128, 256, 512):
            optimal = plan_optimal(network, 8, kib * 1024, model=model)
            traffic = optimal.traffic
            reserves = sorted({g.weight_buffer for g in traffic.groups if not g.tiled})
            print(
                f"| {name} | {kib} KiB | {base.traffic.total:,} | {traffic.total:,} | "
                f"{_reduction(optimal, base):.1f}% | {len(optimal.groups)} | "
                f"{[b if i not in optimal.tiled else 'tiled' for i, (_, b) in enumerate(optimal.groups)]} | "
                f"{traffic.peak_footprint if traffic.peak_footprint is not None else '-':,} | "
                f"{', '.join(f'{r:,}' for r in reserves)} |"
            )


def bnff():
    print("## BN fission-fusion: BN networks, batch 32, bf16, layer-by-layer baseline")
    print(
        "| network | BN-ReLU sites | BN-only sites | ReLU-only sites | norm passes two-pass MiB | "
        "one-pass MiB | fused MiB | total two-pass MiB | total fused MiB | saving |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in ("densenet121", "resnet50"):
        network = load_network(name, norm="bn")
        sites = site_passes(network, 32)
        kinds = {k: sum(1 for s in sites if s.kind == k) for k in ("norm_relu", "norm", "relu")}
        unfused, fused = fusion_saving(plan_baseline, network, 32)
        one = plan_baseline(network, 32, options=TrafficOptions(norm_variant="one_pass")).traffic
        print(
            f"| {name} | {kinds['norm_relu']} | {kinds['norm']} | {kinds['relu']} | "
            f"{unfused.traffic.per_class['norm_passes'] / MIB:,.0f} | "
            f"{one.per_class['norm_passes'] / MIB:,.0f} | "
            f"{fused.traffic.per_class['norm_passes'] / MIB:,.0f} | {unfused.traffic.total / MIB:,.0f} | "
            f"{fused.traffic.total / MIB:,.0f} | "
            f"{100 * (1 - fused.traffic.total / unfused.traffic.total):.1f}% |"
        )


def occam_section():
    print("## Occam: per-image traffic vs layer by layer (bf16, filters on chip, write+read per cut)")
    print(
        "| network | capacity | memory model | stages | occam MiB/image | layer-by-layer MiB/image | fewer |"
    )
    print("|---|---|---|---|---|---|---|")
    cases = [("vgg16", "pool5"), ("vgg16", None), ("resnet18", None), ("resnet50", None)]
    for name, last in cases:
        network = load_network(name, norm="none")
        label = name + (" (conv part, to pool5)" if last else "")
        for mib in (2, 4, 8, 16, 32):
            for model in ("line_buffer", "closure"):
                try:
                    found = occam.partition(network, mib * MIB, memory_model=model, last_layer=last)
                except ValueError:
                    print(f"| {label} | {mib} MiB | {model} | infeasible | - | - | - |")
                    continue
                print(
                    f"| {label} | {mib} MiB | {model} | {len(found.stages)} | "
                    f"{found.traffic_bytes / MIB:.2f} | "
                    f"{found.baseline_bytes / MIB:.2f} | {found.reduction:.1f}x |"
                )


def lrcnn_section():
    print("## LR-CNN: estimated peak stored activations (conv part, per image) vs layer by layer")
    print(
        "| network | schedule | region | input slices | peak M elem | baseline M elem | of baseline | "
        "reduction |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in ("vgg16", "resnet50"):
        network = load_network(name)
        for row in lrcnn_rows(network):
            slices = " ".join(f"{a}:{b}" for a, b in row["input_slices"])
            print(
                f"| {name} | {row['schedule']} | ..{row['region_end']} | {slices} | "
                f"{row['peak_elements'] / 1e6:.2f} | {row['baseline_elements'] / 1e6:.2f} | "
                f"{100 * row['fraction_of_baseline']:.0f}% | {100 * row['reduction']:.0f}% |"
            )


def caterpillar_section():
    print("## CATERPILLAR: GFLOPS/W of the cost kit vs Table 2 (MBGD at b = 50)")
    n1 = [784, 500, 500, 500, 10]
    n2 = [784, 2500, 2000, 1500, 1000, 500, 10]
    paper = {"a": (177, 204, 195), "b": (98, 127, 187), "c": (185, 211, 195)}
    print("| case | fits | SGD (paper) | CP (paper) | MBGD (paper) |")
    print("|---|---|---|---|---|")
    for case, widths, chip in (
        ("a", n1, caterpillar.CONFIG_A),
        ("b", n2, caterpillar.CONFIG_A),
        ("c", n2, caterpillar.CONFIG_B),
    ):
        values = [
            caterpillar.method_cost(widths, m, samples=60000, batch=b, chip=chip).gflops_per_watt
            for m, b in (("sgd", 1), ("cp", 1), ("mbgd", 50))
        ]
        cells = " | ".join(f"{v:.0f} ({p})" for v, p in zip(values, paper[case]))
        print(f"| ({case}) | {caterpillar.fits(widths, chip)} | {cells} |")
    print(
        f"area A {caterpillar.area_mm2(caterpillar.CONFIG_A):.1f} mm2 (paper 103.2), "
        f"B {caterpillar.area_mm2(caterpillar.CONFIG_B):.1f} mm2 (paper 178.9)"
    )


SECTIONS = {
    "mbs": mbs,
    "small": small_buffers,
    "bnff": bnff,
    "occam": occam_section,
    "lrcnn": lrcnn_section,
    "caterpillar": caterpillar_section,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", choices=sorted(SECTIONS), default=None)
    args = parser.parse_args()
    for name, function in SECTIONS.items():
        if args.section in (None, name):
            function()
            print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
