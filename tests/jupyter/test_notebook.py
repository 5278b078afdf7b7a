"""A real notebook, executed by nbclient in a real ipykernel: the sync API, top-level
``async for`` and ``await asyncio.gather`` in a kernel whose event loop is running."""

import pathlib

import nbclient
import nbformat
import pytest

from llmproviders.testing import reply_for

HERE = pathlib.Path(__file__).parent
ROOT = HERE.parent.parent
MESSAGES = [{"role": "user", "content": "Привет из Jupyter!"}]


def stdout_of(cell) -> str:
    errors = [o for o in cell.outputs if o.output_type == "error"]
    assert not errors, errors
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


@pytest.mark.timeout(180)
def test_notebook_runs_in_a_real_kernel():
    notebook = nbformat.read(HERE / "streaming.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=60,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT)}},  # the kernel imports this checkout
        allow_errors=False,
    )
    client.execute()
    setup, loop_cell, async_cell, gather_cell, teardown = [c for c in notebook.cells if c.cell_type == "code"]
    expected = reply_for(MESSAGES)
    assert stdout_of(setup).strip() == "loop running: True"  # Jupyter's loop is running
    assert stdout_of(loop_cell) == expected  # the plain for-loop
    assert stdout_of(async_cell) == expected  # top-level async for
    assert stdout_of(gather_cell).strip() == "3 True"  # three streams gathered
    assert stdout_of(teardown).strip() == "[]"  # no worker thread outlived its stream
