"""Validated tables handed from a run's pre-flight to its kernel, and the kernel's environment."""

from __future__ import annotations

import json
import struct

import pandas as pd
import pytest

from lcstats.core.errors import LcstatsError
from lcstats.data.inputs import hand_over, load_inputs, reads_a_database
from lcstats.params import load_params
from lcstats.running.kernel import kernel_environment
from tests.conftest import write_params


@pytest.fixture
def params(tmp_path, small_programme_dir):
    return load_params(write_params(tmp_path / "small.yaml", small_programme_dir))


def test_handed_over_tables_equal_the_files_read_again(params, tmp_path):
    read = load_inputs(params)
    path = hand_over(read, params, tmp_path / "inputs.pickle")
    taken = load_inputs(params, prepared=path)
    for table in ("learners", "action_items", "skill_assessments"):
        pd.testing.assert_frame_equal(taken.table(table), read.table(table))
    assert taken.sources == read.sources
    raw = path.read_bytes()  # the text went by Arrow streams: the trailer says where each one is
    size = struct.unpack("<Q", raw[-8:])[0]
    assert set(json.loads(raw[-8 - size : -8])) == {"learners", "action_items", "skill_assessments"}


def test_text_is_handed_over_by_arrow_whatever_the_index_and_the_other_columns(params, tmp_path):
    from dataclasses import replace

    read = load_inputs(params)
    n = len(read.learners)
    mixed = read.learners.assign(
        note=([1, "a"] * n)[:n], nickname=pd.Series(["x"] * n, dtype=object)
    )
    shuffled = read.action_items.sample(frac=1.0, random_state=1)
    odd = replace(read, learners=mixed, action_items=shuffled)
    taken = load_inputs(params, prepared=hand_over(odd, params, tmp_path / "inputs.pickle"))
    pd.testing.assert_frame_equal(taken.learners, mixed)
    pd.testing.assert_frame_equal(taken.action_items, shuffled)
    pd.testing.assert_frame_equal(taken.skill_assessments, read.skill_assessments)
    assert taken.coaching_sessions is None and taken.excluded == read.excluded


def test_tables_prepared_for_other_parameters_are_refused(params, tmp_path):
    path = hand_over(load_inputs(params), params, tmp_path / "inputs.pickle")
    other = params.model_copy(update={"alpha": 0.1})
    with pytest.raises(LcstatsError, match="prepared for other parameters"):
        load_inputs(other, prepared=path)


def test_tables_handed_over_in_an_older_format_are_refused_clearly(params, tmp_path):
    import pickle

    from lcstats.data.inputs import params_fingerprint

    path = tmp_path / "inputs.pickle"
    old = ("lcstats-validated-inputs-1", params_fingerprint(params), load_inputs(params))
    path.write_bytes(pickle.dumps(old))
    with pytest.raises(LcstatsError, match="prepared for other parameters"):
        load_inputs(params, prepared=path)


def test_kernel_uses_one_blas_thread_unless_told_otherwise():
    assert kernel_environment({})["OPENBLAS_NUM_THREADS"] == "1"
    env = kernel_environment({"OPENBLAS_NUM_THREADS": "4", "PATH": "/bin"})
    assert env["OPENBLAS_NUM_THREADS"] == "4" and env["PATH"] == "/bin"
    assert env["OMP_NUM_THREADS"] == "1"


def test_kernel_keeps_large_arrays_on_its_heap_unless_told_otherwise():
    assert int(kernel_environment({})["MALLOC_MMAP_THRESHOLD_"]) == 256 << 20
    assert kernel_environment({"MALLOC_TRIM_THRESHOLD_": "0"})["MALLOC_TRIM_THRESHOLD_"] == "0"
    assert kernel_environment({})["MALLOC_ARENA_MAX"] == "1"


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


def test_reads_a_database_when_any_input_is_a_table_of_a_database(small_programme_dir, tmp_path):
    files = write_params(tmp_path / "files.yaml", small_programme_dir)
    database = write_params(
        tmp_path / "db.yaml",
        small_programme_dir,
        learners={"source": "postgresql://127.0.0.1/hr", "table": "hr.learners"},
    )
    assert not reads_a_database(load_params(files))
    assert reads_a_database(load_params(database))
