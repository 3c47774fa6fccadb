"""The service knows doors only through IDoor and the registry in hpxd.doors."""

from pathlib import Path

from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from hpxd import config as configmod, doors
from hpxd.core.interfaces import IDoor
from hpxd.demo import task as demo_task
from hpxd.service import HpxdService
from tests.support import imported_modules

HPXD = Path(__file__).resolve().parent.parent / "hpxd"


def test_service_imports_no_door_module_by_name():
    imported = imported_modules(HPXD / "service.py")
    assert "hpxd.doors" in imported  # the registry
    assert not [m for m in imported if m.startswith("hpxd.doors.") and m != "hpxd.doors.build"]
    assert "TcpDoor" not in (HPXD / "service.py").read_text()


def door_names():
    """A door is a module or a package of hpxd/doors."""
    doors_dir = HPXD / "doors"
    return ({p.stem for p in doors_dir.glob("*.py") if p.stem != "__init__"}
            | {p.parent.name for p in doors_dir.glob("*/__init__.py")})


def door_of(module):
    """"hpxd.doors.web.health" -> "web"; None for anything that is no door."""
    parts = module.split(".")
    if parts[:2] == ["hpxd", "doors"] and len(parts) > 2 and parts[2] in door_names():
        return parts[2]
    return None


def test_no_door_imports_another_and_the_core_imports_no_door():
    doors_dir = HPXD / "doors"
    assert {"tcp", "web"} <= door_names()
    for path in doors_dir.rglob("*.py"):
        if path == doors_dir / "__init__.py":
            continue
        own = path.relative_to(doors_dir).parts[0].removesuffix(".py")
        others = {door_of(m) for m in imported_modules(path)} - {None, own}
        assert not others, (path, others)
    for path in (HPXD / "core").glob("*.py"):
        assert not [m for m in imported_modules(path) if m.startswith(("hpxd.doors",
                                                                        "hpxd.backends"))], path


def config_with(tcp_listen, tmp_path):
    raw = {"tcp": {"listen": tcp_listen}, "web": {"listen": []},
           "server": {"data_dir": str(tmp_path)}}
    config = configmod.from_dict(raw)
    config.resolve_paths()
    return config


def test_every_registered_door_provides_idoor(tmp_path):
    config = config_with(["tcp:0:interface=127.0.0.1"], tmp_path)
    service = HpxdService(config, demo_task, Clock())
    assert [door.name for door in service.doors] == ["tcp"]  # [web] listen = [] here
    for door in service.doors:
        assert verifyObject(IDoor, door)
        assert door.parent is service
    assert set(doors.DOORS) <= set(configmod.SCHEMA)  # each door has its config section
    service.node.records.close()


def test_an_empty_listen_list_switches_a_door_off(tmp_path):
    service = HpxdService(config_with([], tmp_path), demo_task, Clock())
    assert service.doors == []
    service.node.records.close()
