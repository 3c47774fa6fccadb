import pytest
from twisted.internet import defer

from hpxd.core import control, errors
from hpxd.core.auth import Authenticator, Role
from hpxd.core.sessions import Session


class FakeNode:
    def __init__(self):
        roles = {"admin": Role("admin", admin=True, server_commands=True),
                 "ops": Role("ops", server_commands=True), "guest": Role("guest")}
        self.auth = Authenticator(roles, {}, clock=object())
        self.commands = []
        self.stops = []
        self.hub = self
        from twisted.logger import Logger
        self.log = Logger()

    def command(self, name):
        self.commands.append(name)

    def stop(self, status, command):
        self.stops.append((status, command))
        return defer.Deferred()


@pytest.mark.parametrize("data, name", [
    ("serverquit", "serverquit"), ("ServerQuit", "serverquit"), (1, "serverquit"),
    ("SERVERRESTART", "serverrestart"), (2, "serverrestart"), (3, "requestauth"),
    ("requestAuth", "requestauth")])
def test_parse_command(data, name):
    assert control.parse_command(data) == name


@pytest.mark.parametrize("data", [0, 4, True, None, 1.0, "quit", "", [1]])
def test_parse_unknown_command(data):
    with pytest.raises(errors.InvalidMessage):
        control.parse_command(data)


def session(role):
    return Session("sid", {"user_name": "u", "role": role})


def test_quit_needs_server_commands():
    node = FakeNode()
    ctl = control.ServerControl(node)
    with pytest.raises(errors.AuthRequired):
        ctl.run(None, control.QUIT)
    with pytest.raises(errors.PermissionDenied):
        ctl.run(session("guest"), control.QUIT)
    assert node.commands == [] and node.stops == []
    assert ctl.run(None, control.REQUESTAUTH) is None  # a new handshake: no privilege


def test_quit_and_restart_statuses_and_a_repeat_is_refused():
    node = FakeNode()
    ctl = control.ServerControl(node)
    ctl.run(session("ops"), control.RESTART)
    # The command is not pushed here: the node's stop sequence pushes it
    # once the calls in flight are answered.
    assert node.commands == []
    assert node.stops == [(control.RESTART_EXIT_STATUS, "serverrestart")]
    with pytest.raises(errors.ShuttingDown):
        ctl.run(session("admin"), control.QUIT)
    assert len(node.stops) == 1
    other = control.ServerControl(FakeNode())
    other.run(session("admin"), control.QUIT)
    assert other.node.stops == [(0, "serverquit")]
