"""The weight sidecar of a network: one ``.npz`` file of named arrays (``docs/import.md``).

Keys are ``<layer>.<tensor>``: ``weight`` and ``bias`` of every trainable layer, exactly as
:func:`wavecore.golden.train.init_params` names them (conv ``(out, in/groups, kh, kw)``, linear ``(out, in)``,
norm gamma = ``weight`` and beta = ``bias``, ``(C,)``), and optionally ``running_mean``/``running_var`` of
batch-norm layers (the running statistics of :func:`wavecore.golden.train.init_state`). They equal the
``state_dict`` keys of the module :mod:`wavecore.golden.torch_export` builds. ``wavecore import`` writes the file,
``wavecore train --weights`` starts from it.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from wavecore.files import write_atomic
from wavecore.golden.network import Network
from wavecore.golden.train import init_state

__all__ = ["WeightsError", "expected_shapes", "load_weights", "save_weights", "weights_bytes", "weights_path_for"]

_RUNNING = ("running_mean", "running_var")


class WeightsError(ValueError):
    """A weight file that does not fit its network; the message is one line naming the key."""


def weights_path_for(yaml_path) -> Path:
    """The sidecar beside a network YAML: ``net.yaml`` -> ``net.weights.npz``."""
    path = Path(yaml_path)
    return path.with_name(f"{path.stem}.weights.npz")


def expected_shapes(network: Network) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    """``(required, optional)``: the shape of every parameter key and of every BN running-statistics key."""
    required, optional = {}, {}
    for layer in network.layers:
        if layer.weight_shape is not None:
            required[f"{layer.name}.weight"] = layer.weight_shape
        if layer.bias_shape is not None:
            required[f"{layer.name}.bias"] = layer.bias_shape
        if layer.op == "batchnorm":
            for key in _RUNNING:
                optional[f"{layer.name}.{key}"] = layer.bias_shape
    return required, optional


def weights_bytes(network: Network, params: dict, state: dict | None = None) -> bytes:
    """The sidecar's content for ``params`` (``{layer: {"weight", "bias"}}``) and BN running statistics."""
    arrays = {}
    for name, entry in params.items():
        for key, value in entry.items():
            arrays[f"{name}.{key}"] = np.asarray(value)
    for name, entry in (state or {}).get("running", {}).items():
        for key in _RUNNING:
            arrays[f"{name}.{key}"] = np.asarray(entry[key])
    _check(network, arrays, "(in memory)")
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def save_weights(path, network: Network, params: dict, state: dict | None = None) -> None:
    """Write :func:`weights_bytes` atomically."""
    write_atomic(path, weights_bytes(network, params, state))


def load_weights(path, network: Network, *, dtype=np.float64) -> tuple[dict, dict]:
    """``(params, state)`` from a sidecar, validated against ``network`` (names and shapes), cast to ``dtype``.

    Every parameter must be present; BN running statistics default to :func:`init_state`'s (mean 0, var 1)
    when the file has none. Raises :class:`WeightsError` (one line) on a missing, unknown or misshapen key.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise WeightsError(f"weights file {str(path)!r} does not exist") from None
    except (OSError, ValueError, zipfile.BadZipFile):
        raise WeightsError(f"weights file {str(path)!r} is not a NumPy .npz file") from None
    _check(network, arrays, str(path))
    params: dict = {}
    state = init_state(network, dtype=dtype)
    for key, value in arrays.items():
        name, tensor = key.rsplit(".", 1)
        if tensor in _RUNNING:
            state["running"][name][tensor] = value.astype(dtype)
        else:
            params.setdefault(name, {})[tensor] = value.astype(dtype)
    ordered = {}
    for layer in network.layers:  # parameter order of init_params
        if layer.name in params:
            entry = params[layer.name]
            ordered[layer.name] = {key: entry[key] for key in ("weight", "bias") if key in entry}
    return ordered, state


def _check(network: Network, arrays: dict, where: str) -> None:
    required, optional = expected_shapes(network)
    for key, value in arrays.items():
        shape = required.get(key, optional.get(key))
        if shape is None:
            known = ", ".join(list(required)[:4]) + (", ..." if len(required) > 4 else "")
            raise WeightsError(
                f"weights file {where!r}: key {key!r} is not a parameter of network {network.name!r} "
                f"(keys are <layer>.weight/bias/running_mean/running_var: {known})"
            )
        if tuple(value.shape) != tuple(shape):
            raise WeightsError(
                f"weights file {where!r}: {key!r} has shape {tuple(value.shape)}, the network needs {tuple(shape)}"
            )
        if not np.issubdtype(value.dtype, np.floating):
            raise WeightsError(f"weights file {where!r}: {key!r} has dtype {value.dtype}, not a float type")
    missing = [key for key in required if key not in arrays]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise WeightsError(f"weights file {where!r}: parameter {missing[0]!r} is missing{more}")
