"""Regenerates ``ntk_reference.json``: neural-tangents stax kernels of small nets on four fixed inputs, in float64.

Run once, from the repository root, with neural-tangents installed (``theory.ntk_compat`` patches it for current
JAX)::

    JAX_ENABLE_X64=1 .venv/bin/python tests/theory/data/make_ntk_reference.py

The file is committed; ``tests/theory/test_ntk_compat.py`` checks that neural-tangents still reproduces it and
``tests/theory/test_kernels.py`` that :mod:`theory.kernels` does. :func:`build_network` (also used by the tests) turns
one case's ``kwargs`` (the keyword arguments of the ``theory.kernels`` function named by ``function``) into the
equivalent stax network.
"""

from __future__ import annotations

import json
import math
import pathlib
import sys
import warnings

import numpy as np

PATH = pathlib.Path(__file__).with_name("ntk_reference.json")

# Four inputs of dimension 3, written out so that the file does not depend on a random generator.
INPUTS = [
    [0.5, -1.2, 0.8],
    [1.1, 0.3, -0.4],
    [-0.7, 0.9, 1.5],
    [0.2, 0.1, -0.6],
]

CASES = [
    {"name": "relu_chain", "function": "mlp_kernels",
     "kwargs": {"activation": "relu", "depth": 3, "sigma_w": 1.4, "sigma_b": 0.1}},
    {"name": "erf_chain", "function": "mlp_kernels",
     "kwargs": {"activation": "erf", "depth": 3, "sigma_w": 1.2, "sigma_b": 0.3}},
    {"name": "gelu_chain", "function": "mlp_kernels",
     "kwargs": {"activation": "gelu", "depth": 2, "sigma_w": 1.1, "sigma_b": 0.2}},
    {"name": "relu_chain_standard", "function": "mlp_kernels",
     "kwargs": {"activation": "relu", "depth": 3, "sigma_w": 1.3, "sigma_b": 0.2, "parameterization": "standard",
                "widths": 16}},
    {"name": "relu_residual_block", "function": "resnet_kernels",
     "kwargs": {"activation": "relu", "depth": 2, "sigma_w": 1.3, "sigma_b": 0.2}},
]

_ACTIVATIONS = {"relu": "Relu", "erf": "Erf", "gelu": "Gelu"}


def _phi(stax, name: str):
  if name == "gelu":
    return stax.Gelu(approximate=False)
  return getattr(stax, _ACTIVATIONS[name])()


def build_network(nt, function: str, kwargs: dict):
  """The stax ``(init_fn, apply_fn, kernel_fn)`` equal to ``theory.kernels.<function>(**kwargs)``.

  Supports ``mlp_kernels`` (either parameterisation) and ``resnet_kernels`` with the NTK parameterisation (blocks
  ``FanOut(2), parallel(Identity, serial(φ, Dense(σw·s, σb·s))), FanInSum``).
  """
  stax = nt.stax
  sw, sb, depth = kwargs["sigma_w"], kwargs["sigma_b"], kwargs["depth"]
  parameterization = kwargs.get("parameterization", "ntk")
  width = kwargs.get("widths") or 1
  phi = lambda: _phi(stax, kwargs["activation"])
  dense = lambda w, b: stax.Dense(width, w, b, parameterization=parameterization)
  if function == "mlp_kernels":
    layers = [dense(sw, sb)]
    for _ in range(depth - 1):
      layers += [phi(), dense(sw, sb)]
    return stax.serial(*layers)
  if function == "resnet_kernels" and parameterization == "ntk":
    s = 1.0 / math.sqrt(depth - 1) if kwargs.get("stable", False) else 1.0
    block = stax.serial(stax.FanOut(2), stax.parallel(stax.Identity(), stax.serial(phi(), dense(sw * s, sb * s))),
                        stax.FanInSum())
    return stax.serial(dense(sw, sb), *[block] * (depth - 1))
  raise ValueError(f"no stax equivalent for {function} with {kwargs}")


def main() -> None:
  import jax

  jax.config.update("jax_enable_x64", True)
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3]))
  from theory import ntk_compat

  nt = ntk_compat.import_neural_tangents()
  x = np.asarray(INPUTS, np.float64)
  cases = []
  for case in CASES:
    _, _, kernel_fn = build_network(nt, case["function"], case["kwargs"])
    with warnings.catch_warnings():
      warnings.filterwarnings("ignore", message="`FanIn` layers assume independent inputs")  # a Dense is in the branch
      kernels = kernel_fn(x, None, ("nngp", "ntk"))
    cases.append({**case, "nngp": np.asarray(kernels.nngp).tolist(), "ntk": np.asarray(kernels.ntk).tolist()})
  payload = {
      "description": "neural-tangents stax kernels (x1 = x2 = inputs), float64; regenerate with "
                     "tests/theory/data/make_ntk_reference.py",
      "neural_tangents": nt.__version__,
      "jax": jax.__version__,
      "inputs": INPUTS,
      "cases": cases,
  }
  PATH.write_text(json.dumps(payload, indent=1) + "\n")
  print(f"wrote {PATH} ({len(cases)} cases)")


if __name__ == "__main__":
  main()
