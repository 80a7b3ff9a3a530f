"""Validated tables handed from a run's pre-flight to its kernel, and the kernel's environment."""

from __future__ import annotations

import pandas as pd
import pytest

from lcstats.core.errors import LcstatsError
from lcstats.data.inputs import hand_over, load_inputs
from lcstats.params import load_params
from lcstats.running.kernel import kernel_environment
from tests.conftest import write_params


@pytest.fixture
def params(tmp_path, small_programme_dir):
    return load_params(write_params(tmp_path / "small.yaml", small_programme_dir))


def test_handed_over_tables_equal_the_files_read_again(params, tmp_path):
    read = load_inputs(params)
    taken = load_inputs(params, prepared=hand_over(read, params, tmp_path / "inputs.pickle"))
    for table in ("learners", "action_items", "skill_assessments"):
        pd.testing.assert_frame_equal(taken.table(table), read.table(table))
    assert taken.sources == read.sources


def test_tables_prepared_for_other_parameters_are_refused(params, tmp_path):
    path = hand_over(load_inputs(params), params, tmp_path / "inputs.pickle")
    other = params.model_copy(update={"alpha": 0.1})
    with pytest.raises(LcstatsError, match="prepared for other parameters"):
        load_inputs(other, prepared=path)


def test_kernel_uses_one_blas_thread_unless_told_otherwise():
    assert kernel_environment({})["OPENBLAS_NUM_THREADS"] == "1"
    env = kernel_environment({"OPENBLAS_NUM_THREADS": "4", "PATH": "/bin"})
    assert env["OPENBLAS_NUM_THREADS"] == "4" and env["PATH"] == "/bin"
    assert env["OMP_NUM_THREADS"] == "1"


def test_kernels_side_by_side_have_their_own_sockets_and_leave_no_files(tmp_path):
    from pathlib import Path

    from jupyter_core.utils import run_sync

    from lcstats.running.kernel import start_kernel, stop_kernel

    kms = [start_kernel(tmp_path, warm_imports="") for _ in range(2)]
    try:
        assert kms[0].transport == kms[1].transport == "ipc"
        assert kms[0].ip != kms[1].ip
        files = [Path(km.connection_file) for km in kms]
        assert all(f.is_file() for f in files)
        for km in kms:
            client = km.client()
            client.start_channels()
            run_sync(client.wait_for_ready)(timeout=60)
            client.stop_channels()
    finally:
        for km in kms:
            stop_kernel(km)
    assert not any(f.exists() for f in files)
    assert not list(tmp_path.iterdir())  # nothing left in the kernel's working folder
