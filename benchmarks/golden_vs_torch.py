"""One training step of ResNet-18 at 32x32, batch 8, float32: golden model vs PyTorch CPU.

Both run in the same process on the same thread count (``--threads``, default 1: OpenBLAS via
``OPENBLAS_NUM_THREADS`` set before NumPy loads, torch via ``torch.set_num_threads``). Each side does
``--warmup`` untimed steps, then ``--repeats`` timed steps; the median is reported. The golden step's
peak memory is the high-water mark of Python/NumPy allocations (``tracemalloc``) during one step.
PyTorch runs the same DAG as the ``nn.Module`` of ``wavecore.golden.torch_export.to_torch`` and
``torch.optim.SGD``. Target: golden <= 2x PyTorch.

    .venv/bin/python benchmarks/golden_vs_torch.py [--threads 1] [--norm bn] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--norm", default="bn", choices=["bn", "gn"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--input", type=int, default=32)
    parser.add_argument("--network", default="resnet18")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(args.threads)

    import statistics
    import time
    import tracemalloc

    import numpy as np
    import torch

    from wavecore.golden.network import load_network
    from wavecore.golden.torch_export import to_torch
    from wavecore.golden.train import SGD, Trainer, init_params, init_state

    torch.set_num_threads(args.threads)
    net = load_network(args.network, norm=args.norm, input_size=args.input)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, *net.input_shape)).astype(np.float32)
    labels = rng.integers(0, net.num_classes, args.batch)
    params = init_params(net, dtype=np.float32)
    state = init_state(net, dtype=np.float32)
    trainer = Trainer(net, numerics="float32", optimizer=SGD(lr=0.01, momentum=0.9, weight_decay=1e-4))

    def golden_step():
        return trainer.step(params, state, x, labels)

    module = to_torch(net, params, state, dtype=torch.float32).train()
    optimizer = torch.optim.SGD(module.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x_t, labels_t = torch.tensor(x), torch.tensor(labels)

    def torch_step():
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(module(x_t), labels_t)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    def timed(function):
        for _ in range(args.warmup):
            function()
        samples = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            function()
            samples.append(time.perf_counter() - start)
        return statistics.median(samples), min(samples)

    golden_median, golden_best = timed(golden_step)
    torch_median, torch_best = timed(torch_step)
    tracemalloc.start()
    golden_step()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"{args.network} {args.input}x{args.input}, batch {args.batch}, float32, norm {args.norm}, "
        f"{args.threads} thread(s), median of {args.repeats} after {args.warmup} warm-up steps"
    )
    print(f"golden : {golden_median * 1e3:8.1f} ms (best {golden_best * 1e3:.1f})")
    print(f"pytorch: {torch_median * 1e3:8.1f} ms (best {torch_best * 1e3:.1f})")
    print(f"ratio golden/pytorch: {golden_median / torch_median:.2f} (target <= 2)")
    print(f"golden peak memory of one step (tracemalloc): {peak / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
