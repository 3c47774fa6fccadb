"""hpxd.core.app.load_task: the app module named by [app] module, and what
a sysadmin is told when it cannot be loaded (issue 18 D)."""

import os
import sys

import pytest

from hpxd.core.app import Task, load_task

APP = 'from hpxd.app import Task\ntask = Task("found")\n'


def test_loads_the_task_of_an_importable_module(tmp_path, monkeypatch):
    (tmp_path / "hpxd_test_found_app.py").write_text(APP)
    monkeypatch.syspath_prepend(str(tmp_path))
    task = load_task("hpxd_test_found_app")
    assert isinstance(task, Task) and task.name == "found"


def test_a_module_not_found_names_pythonpath_and_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError) as info:
        load_task("hpxd_test_no_such_app")
    text = str(info.value)
    assert "No module named 'hpxd_test_no_such_app'" in text
    assert "PYTHONPATH" in text
    searched = [os.path.abspath(p) for p in sys.path]
    assert searched and all(p in text for p in searched)
    assert "\n" not in text


def test_a_missing_parent_package_gets_the_same_hint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError) as info:
        load_task("hpxd_test_no_such_pkg.app")
    assert "PYTHONPATH" in str(info.value)


def test_a_module_in_the_working_directory_that_is_not_searched(tmp_path, monkeypatch):
    """The ``twistd`` script puts its own directory first on sys.path, not
    the working directory: an app beside the config is not found."""
    (tmp_path / "hpxd_test_beside_app.py").write_text(APP)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path
                                      if p and os.path.abspath(p) != str(tmp_path)])
    with pytest.raises(ValueError) as info:
        load_task("hpxd_test_beside_app")
    text = str(info.value)
    assert f"{tmp_path}/hpxd_test_beside_app.py" in text
    assert "working directory" in text and f"PYTHONPATH={tmp_path}" in text


def test_a_module_missing_inside_the_app_is_named_without_the_path_hint(tmp_path, monkeypatch):
    (tmp_path / "hpxd_test_needy_app.py").write_text("import hpxd_test_not_installed\n" + APP)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError) as info:
        load_task("hpxd_test_needy_app")
    text = str(info.value)
    assert "No module named 'hpxd_test_not_installed'" in text
    assert "PYTHONPATH" not in text


def test_a_module_without_a_task(tmp_path, monkeypatch):
    (tmp_path / "hpxd_test_taskless_app.py").write_text("task = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError) as info:
        load_task("hpxd_test_taskless_app")
    assert "no attribute 'task' that is a hpxd.app.Task" in str(info.value)
