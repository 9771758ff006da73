"""Names renamed in 0.4 (docs/changes.md) still resolve, to the new objects, with a DeprecationWarning."""

import pytest

import theory
from theory import paths, sparsity


@pytest.mark.parametrize("module, old, new", [
    (theory, "critical_sparsity", "critical_sparsity_from_scores"),
    (sparsity, "critical_sparsity", "critical_sparsity_from_scores"),
    (paths, "path_kernel_trace", "chain_path_kernel_trace"),
    (paths, "log_path_objective", "chain_log_path_objective"),
    (paths, "path_statistics", "chain_path_statistics"),
])
def test_an_old_name_warns_and_is_the_new_function(module, old, new):
  with pytest.warns(DeprecationWarning, match=f"{old} is now .*{new}"):
    assert getattr(module, old) is getattr(module, new)


def test_an_unknown_name_is_still_an_attribute_error():
  with pytest.raises(AttributeError, match="has no attribute 'path_kernel_tarce'"):
    paths.path_kernel_tarce  # noqa: B018
