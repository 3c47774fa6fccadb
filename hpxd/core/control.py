"""Server commands: serverquit, serverrestart, requestauth.

Commands act on this node only (a rolling restart behind a load balancer
quits one node at a time). Quit and restart need a role with
``server_commands = true``.
"""

from hpxd.core import errors

QUIT, RESTART, REQUESTAUTH = "serverquit", "serverrestart", "requestauth"
BY_NUMBER = {1: QUIT, 2: RESTART, 3: REQUESTAUTH}
# Exit status after serverrestart: EX_TEMPFAIL from sysexits.h. A supervisor
# restarts on it (systemd: RestartForceExitStatus=75); 0 means "stay stopped".
RESTART_EXIT_STATUS = 75


def parse_command(data):
    """The command name for a string (any case) or 1/2/3; InvalidMessage otherwise."""
    if isinstance(data, bool):
        data = None
    if isinstance(data, int) and data in BY_NUMBER:
        return BY_NUMBER[data]
    if isinstance(data, str) and data.lower() in (QUIT, RESTART, REQUESTAUTH):
        return data.lower()
    raise errors.InvalidMessage(
        f"unknown server command {data!r}: use serverquit, serverrestart, requestauth or 1, 2, 3")


class ServerControl:
    def __init__(self, node):
        self.node = node
        self.stopping = None

    def authorize(self, session, name):
        if name == REQUESTAUTH:
            return
        if session is None:
            raise errors.AuthRequired(f"{name} needs a session of a role with server_commands")
        if not self.node.auth.can_send_commands(session.user_info):
            raise errors.PermissionDenied(
                f"{name}: role {session.role!r} may not send server commands")

    def run(self, session, name, peer=None):
        """Stop the node for ``name`` (requestauth: nothing to do).

        The node's stop sequence answers the calls in flight, THEN pushes
        ``name`` to this node's clients, then closes them and exits. Fires
        when the node has stopped.
        """
        self.authorize(session, name)
        if name == REQUESTAUTH:
            return None
        if self.stopping is not None:
            raise errors.ShuttingDown(f"{name}: this node is already stopping")
        self.node.log.info("{command} from user {user!r} at {peer}: stopping this node",
                           command=name, user=session.user_name, peer=peer)
        status = 0 if name == QUIT else RESTART_EXIT_STATUS
        self.stopping = self.node.stop(status, name)
        return self.stopping
